/*
 * The migration engine without KVM, through files and pipes: a fake guest
 * saved to a file loads whole; a file that is damaged, cut short or longer
 * than its stream is refused and never runs; a save that fails leaves no
 * partial file that could pass for a saved guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/fake_guest.h"
#include "../harness/memio.h"
#include "mig_support.h"
#include "tern/migration.h"

static void file_round_trip(void **state)
{
	(void)state;
	struct fake src, dst;
	fake_init(&src, 1);
	fake_init(&dst, 0);
	writer_start(&src, WRITE_FULL);
	const char *path = temp_path("file");
	struct tern_mig_stats ss, ds;
	save_to_file(&src, path, 1, &ss);
	char uri[300];
	snprintf(uri, sizeof uri, "file:%s", path);
	struct tern_error err = { .msg = "" };
	int rc = dest_run(&dst, uri, &ds, &err);
	if (rc != 0)
		fail_msg("%s", err.msg);
	check_arrived(&src, &dst, &ss);
	assert_int_equal(ds.transferred, ss.transferred); /* no replies on a file */
	unlink(path);
	fake_destroy(&src);
	fake_destroy(&dst);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *in = fopen(path, "rb");
	assert_non_null(in);
	fseek(in, 0, SEEK_END);
	*len = (size_t)ftell(in);
	rewind(in);
	uint8_t *buf = malloc(*len + 4096); /* room for a tail */
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, *len, in), *len);
	fclose(in);
	return buf;
}

/* Load these bytes as a file: refused (saying `want`, and never `never`),
 * nothing applied, never run. */
static void load_refused(const uint8_t *buf, size_t len, const char *want, const char *never)
{
	const char *bad = temp_path("bad");
	FILE *out = fopen(bad, "wb");
	assert_non_null(out);
	assert_int_equal(fwrite(buf, 1, len, out), len);
	fclose(out);
	struct fake dst;
	fake_init(&dst, 0);
	char uri[300];
	snprintf(uri, sizeof uri, "file:%s", bad);
	struct tern_error err = { .msg = "" };
	struct tern_mig_stats ds;
	int rc = dest_run(&dst, uri, &ds, &err);
	assert_true(rc < 0);
	assert_false(dst.ran);
	assert_false(dst.finished);
	assert_int_equal(ds.status, TERN_MIG_FAILED);
	assert_string_equal(ds.error, err.msg);
	if (strstr(err.msg, want) == NULL || (never != NULL && strstr(err.msg, never) != NULL))
		fail_msg("error '%s': wanted '%s'%s%s", err.msg, want, never ? ", never " : "",
			 never ? never : "");
	unlink(bad);
	fake_destroy(&dst);
}

/* A damaged copy of a saved stream: `cut` bytes off its end, a bit flipped
 * at `flip` (if >= 0). */
static void refuses_damaged(const char *path, size_t cut, long flip, const char *want)
{
	size_t len;
	uint8_t *buf = slurp(path, &len);
	if (flip >= 0)
		buf[(size_t)flip % len] ^= 0x10;
	load_refused(buf, cut ? len - cut : len, want, NULL);
	free(buf);
}

static void damaged_streams_are_refused(void **state)
{
	(void)state;
	struct fake src;
	fake_init(&src, 1);
	const char *path = temp_path("good");
	char saved[256];
	snprintf(saved, sizeof saved, "%s", path);
	struct tern_mig_stats ss;
	save_to_file(&src, saved, 0, &ss);
	refuses_damaged(saved, 1, -1, "");         /* cut by a byte: no END */
	refuses_damaged(saved, 5000, -1, "");
	refuses_damaged(saved, 0, 12, "");         /* header */
	refuses_damaged(saved, 0, 100000, "");     /* a page */
	refuses_damaged(saved, 0, (long)ss.transferred - 3, ""); /* the END frame */
	for (long at = 7; at < (long)ss.transferred; at += (long)ss.transferred / 13)
		refuses_damaged(saved, 0, at, "");
	unlink(saved);
	fake_destroy(&src);
}

/* Where each frame of a well-formed stream ends; returns how many. */
static size_t frame_ends(const uint8_t *buf, size_t len, size_t *ends, size_t max)
{
	size_t n = 0;
	for (size_t at = 0; at + TERN_STREAM_FRAME_HEADER <= len && n < max;) {
		uint32_t plen = (uint32_t)buf[at + 8] | (uint32_t)buf[at + 9] << 8 |
				(uint32_t)buf[at + 10] << 16 | (uint32_t)buf[at + 11] << 24;
		at += TERN_STREAM_FRAME_HEADER + plen;
		ends[n++] = at;
	}
	return n;
}

/* A guest saved whole into a file (its path in saved), read back. */
static uint8_t *saved_stream(struct fake *src, const char *name, char *saved, size_t room,
			     size_t *len)
{
	fake_init(src, 1);
	snprintf(saved, room, "%s", temp_path(name));
	struct tern_mig_stats ss;
	save_to_file(src, saved, 0, &ss);
	return slurp(saved, len);
}

/* A file cut anywhere says that the file ends early, not that a pipe
 * broke. */
static void truncated_file_says_so(void **state)
{
	(void)state;
	struct fake src;
	char saved[256];
	size_t len, ends[64];
	uint8_t *buf = saved_stream(&src, "whole", saved, sizeof saved, &len);
	size_t frames = frame_ends(buf, len, ends, 64);
	assert_true(frames >= 3);
	assert_int_equal(ends[frames - 1], len);
	const char *want = "the file ends before the stream's END";
	load_refused(buf, ends[0] + 7, want, "Broken pipe");    /* inside a header */
	load_refused(buf, ends[0] + 100, want, "Broken pipe");  /* inside a payload */
	load_refused(buf, ends[frames - 2], want, "Broken pipe"); /* between frames */
	load_refused(buf, len - 1, want, "Broken pipe");
	free(buf);
	unlink(saved);
	fake_destroy(&src);
}

/* Nothing may follow END in a file: a byte, random bytes, or one more
 * well-formed frame. */
static void bytes_after_end_are_refused(void **state)
{
	(void)state;
	struct fake src;
	char saved[256];
	size_t len, ends[64];
	uint8_t *buf = saved_stream(&src, "end", saved, sizeof saved, &len);
	const char *want = "continues after the stream's END";
	buf[len] = 0;
	load_refused(buf, len + 1, want, NULL);
	uint64_t seed = 42;
	for (size_t i = 0; i < 100; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		buf[len + i] = (uint8_t)(seed >> 56);
	}
	load_refused(buf, len + 100, want, NULL);
	/* The frame that would come next: the right sequence number, a SYNC. */
	struct memio m;
	memio_init(&m);
	struct tern_stream_writer w;
	assert_int_equal(tern_stream_writer_init(&w, &m.io), 0);
	w.seq = (uint32_t)frame_ends(buf, len, ends, 64);
	assert_int_equal(tern_stream_sync(&w, 9), 0);
	tern_stream_writer_destroy(&w);
	assert_true(m.len < 4096);
	memcpy(buf + len, m.data, m.len);
	load_refused(buf, len + m.len, want, NULL);
	memio_free(&m);
	free(buf);
	unlink(saved);
	fake_destroy(&src);
}

/* A small saved stream (a guest of zero pages): it fits a pipe's buffer. */
static uint8_t *small_stream(size_t *len)
{
	struct fake src;
	fake_init(&src, 0);
	char path[256];
	snprintf(path, sizeof path, "%s", temp_path("small"));
	struct tern_mig_stats ss;
	save_to_file(&src, path, 0, &ss);
	uint8_t *buf = slurp(path, len);
	unlink(path);
	fake_destroy(&src);
	assert_true(*len < 60000);
	return buf;
}

/* Load a stream from a pipe whose write end stays open (as an fd:N the
 * source does not close). */
static int load_from_pipe(const uint8_t *buf, size_t len, struct fake *dst, struct tern_error *err)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], buf, len), (ssize_t)len);
	char uri[32];
	snprintf(uri, sizeof uri, "fd:%d", p[0]);
	struct tern_mig_stats ds;
	alarm(20); /* waiting for the writer to close would hang here */
	int rc = dest_run(dst, uri, &ds, err);
	alarm(0);
	close(p[0]);
	close(p[1]);
	return rc;
}

/* A pipe is read to END and checked only for what is in it already: a
 * writer that keeps it open does not hold the guest up, and bytes after
 * END that are there are refused. */
static void pipes_end_at_end(void **state)
{
	(void)state;
	size_t len;
	uint8_t *buf = small_stream(&len);
	struct fake dst;
	fake_init(&dst, 0);
	struct tern_error err = { .msg = "" };
	if (load_from_pipe(buf, len, &dst, &err) != 0)
		fail_msg("%s", err.msg);
	assert_true(dst.ran);
	fake_destroy(&dst);
	fake_init(&dst, 0);
	buf[len] = 0x5a;
	assert_true(load_from_pipe(buf, len + 1, &dst, &err) < 0);
	assert_false(dst.ran);
	if (strstr(err.msg, "continues after the stream's END") == NULL)
		fail_msg("%s", err.msg);
	fake_destroy(&dst);
	free(buf);
}

struct save_result {
	int rc;
	enum tern_mig_status status;
	char error[TERN_ERROR_MAX];
};

/* Save a fake guest (some MiB of stream) to uri in a child process whose
 * files may grow to fsize bytes (0: as they may here), SIGXFSZ ignored
 * as tern ignores it. */
static void save_in_child(const char *uri, rlim_t fsize, struct save_result *out)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct save_result r = { 0 };
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl;
		getrlimit(RLIMIT_FSIZE, &rl);
		rl.rlim_cur = fsize;
		if (fsize && setrlimit(RLIMIT_FSIZE, &rl) < 0)
			r.rc = -errno;
		struct fake src;
		fake_init(&src, 1);
		struct tern_channel ch;
		struct tern_error err = { .msg = "" };
		if (r.rc == 0 && (r.rc = tern_channel_connect(&ch, uri, &err)) == 0) {
			struct tern_mig_params params;
			tern_mig_params_default(&params);
			struct tern_migration m;
			tern_migration_init(&m, &params, &fake_source_ops, &src, &ch);
			r.rc = tern_migration_run(&m);
			struct tern_mig_stats st;
			tern_migration_get_stats(&m, &st);
			r.status = st.status;
			memcpy(r.error, st.error, sizeof r.error);
			tern_migration_destroy(&m);
			tern_channel_close(&ch);
		} else {
			memcpy(r.error, err.msg, sizeof r.error);
		}
		_exit(write(p[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
	}
	close(p[1]);
	assert_int_equal(read(p[0], out, sizeof *out), (ssize_t)sizeof *out);
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void expect_failed_save(const struct save_result *r, int rc, const char *a, const char *b)
{
	if (r->rc != rc || r->status != TERN_MIG_FAILED || strstr(r->error, a) == NULL ||
	    strstr(r->error, b) == NULL)
		fail_msg("save: %d (%s), '%s'; wanted %d, '%s' and '%s'", r->rc,
			 tern_mig_status_name(r->status), r->error, rc, a, b);
}

/* A save that fails (here: the file may not grow past 256 KiB) removes
 * the file it created, and says so. */
static void failed_save_removes_its_file(void **state)
{
	(void)state;
	char path[256], uri[300];
	snprintf(path, sizeof path, "%s", temp_path("efbig"));
	unlink(path);
	snprintf(uri, sizeof uri, "file:%s", path);
	struct save_result r;
	save_in_child(uri, 256 << 10, &r);
	expect_failed_save(&r, -EFBIG, strerror(EFBIG), "nothing was kept");
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

/* A file that was there before is never removed: the error says that
 * what it holds now is incomplete. */
static void failed_save_keeps_a_file_it_did_not_make(void **state)
{
	(void)state;
	char path[256], uri[300];
	snprintf(path, sizeof path, "%s", temp_path("there"));
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("precious\n", f);
	fclose(f);
	snprintf(uri, sizeof uri, "file:%s", path);
	struct save_result r;
	save_in_child(uri, 256 << 10, &r);
	expect_failed_save(&r, -EFBIG, "incomplete", "existed before");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(path);
}

/* Nor is a device: /dev/full stays, and the error says what went there
 * is incomplete. */
static void dev_full_is_left_alone(void **state)
{
	(void)state;
	struct stat st;
	if (stat("/dev/full", &st) != 0 || !S_ISCHR(st.st_mode))
		skip();
	struct save_result r;
	save_in_child("file:/dev/full", 0, &r);
	expect_failed_save(&r, -ENOSPC, strerror(ENOSPC), "incomplete");
	assert_int_equal(stat("/dev/full", &st), 0);
	assert_true(S_ISCHR(st.st_mode));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(file_round_trip),
		cmocka_unit_test(damaged_streams_are_refused),
		cmocka_unit_test(truncated_file_says_so),
		cmocka_unit_test(bytes_after_end_are_refused),
		cmocka_unit_test(pipes_end_at_end),
		cmocka_unit_test(failed_save_removes_its_file),
		cmocka_unit_test(failed_save_keeps_a_file_it_did_not_make),
		cmocka_unit_test(dev_full_is_left_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
