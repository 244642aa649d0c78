/*
 * Migrations that go wrong, with real VMs: cancelled mid-way, the
 * destination killed, the source killed, a stream with flipped bits or cut
 * short, a destination of another shape.  The source guest runs on and
 * verifies its memory; a destination never runs a half-loaded guest and
 * says why it stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/migrate.h"
#include "qmp/qmp_client.h"
#include "../harness/tern.h"
#include "kvm_skip.h"

#define EXIT_START_FAILED 125

/* A source whose guest writes for a few seconds and then verifies; it has
 * filled its working set when this returns. */
static void start_source(struct tern_vm *src, struct qmp_conn *q, const char *memory)
{
	memset(src, 0, sizeof *src);
	char append[96]; /* the guest outlasts migrations where all else is slower */
	snprintf(append, sizeof append, "workload=random ws=24M rate=50000 seconds=%d seed=11",
		 4 * time_scale() * time_scale());
	assert_int_equal(tern_vm_start(src, "--memory", memory, "--append", append, NULL), 0);
	assert_true(proc_wait_for(&src->proc, "tern-guest: start", 0, 20000) > 0);
	struct timespec nap = { 0, 800000000 };
	nanosleep(&nap, NULL);
	assert_int_equal(qmp_connect(q, src->qmp_path, 1, 10000), 0);
	assert_int_equal(mig_set_capabilities(q, 0, 0, 1), 0);
}

static void set_bandwidth(struct qmp_conn *q, long long bytes_per_second)
{
	assert_int_equal(qmp_do(q, "migrate-set-parameters",
				json_pack("{s:I}", "max-bandwidth", (json_int_t)bytes_per_second),
				NULL, 5000), 0);
}

static void start_migration(struct qmp_conn *q, const char *uri)
{
	assert_int_equal(qmp_do(q, "migrate", json_pack("{s:s}", "uri", uri), NULL, 5000), 0);
}

static void start_destination(struct tern_vm *dst, const char *uri, const char *memory)
{
	assert_int_equal(mig_start_destination(dst, uri, "--memory", memory, NULL), 0);
	struct qmp_conn dq;
	assert_int_equal(qmp_connect(&dq, dst->qmp_path, 1, 10000), 0);
	qmp_close(&dq);
}

/* Wait until query-migrate says active and some pages went. */
static void wait_active(struct qmp_conn *q)
{
	double deadline = deadline_ms(10000);
	while (now_ms() < deadline) {
		json_t *r = qmp_execute(q, "query-migrate", NULL, 5000);
		json_t *info = qmp_return(r);
		int active = strcmp(mig_status(info), "active") == 0 &&
			     mig_number(info, "ram.transferred") > 0;
		json_decref(r);
		if (active)
			return;
		struct timespec nap = { 0, 20000000 };
		nanosleep(&nap, NULL);
	}
	fail_msg("the migration never became active");
}

static const char *vm_status(struct qmp_conn *q)
{
	static char status[32];
	json_t *r = qmp_execute(q, "query-status", NULL, 5000);
	snprintf(status, sizeof status, "%s",
		 json_string_value(json_object_get(qmp_return(r), "status")));
	json_decref(r);
	return status;
}

/* The source guest ran on: it finishes its run and its memory verifies. */
static void source_survived(struct tern_vm *src, struct qmp_conn *q)
{
	assert_string_equal(vm_status(q), "running");
	int status = proc_wait(&src->proc, 30000 + 4000 * time_scale());
	if (status != 0 || strstr(proc_output(&src->proc), "verify ok (end)") == NULL)
		fail_msg("the source exited %d:\n%s", status, proc_output(&src->proc));
}

/* The destination refused: exit status, a reason, and no guest output. */
static void destination_refused(struct tern_vm *dst, const char *why)
{
	int status = proc_wait(&dst->proc, 30000);
	const char *out = proc_output(&dst->proc);
	if (status != EXIT_START_FAILED || strstr(out, "the incoming migration failed") == NULL ||
	    strstr(out, why) == NULL)
		fail_msg("destination exited %d, wanted %d and '%s':\n%s", status, EXIT_START_FAILED,
			 why, out);
	assert_null(strstr(out, "tern-guest")); /* the guest never ran here */
}

static void cancel_mid_migration(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm src, dst = { 0 };
	struct qmp_conn q;
	char path[256], uri[300];
	assert_int_equal(tern_vm_prepare(&dst), 0);
	snprintf(uri, sizeof uri, "unix:%s", tern_vm_path(&dst, "m.sock", path, sizeof path));
	start_destination(&dst, uri, "128M");
	start_source(&src, &q, "128M");
	set_bandwidth(&q, 10 << 20); /* about 3 s for what there is */
	start_migration(&q, uri);
	wait_active(&q);
	assert_int_equal(qmp_do(&q, "migrate_cancel", NULL, NULL, 5000), 0);
	json_t *info = mig_wait(&q, 20, 10000, NULL, NULL);
	assert_non_null(info);
	assert_string_equal(mig_status(info), "cancelled");
	json_decref(info);
	json_t *ev = qmp_wait_event(&q, "MIGRATION", 5000);
	assert_non_null(ev);
	json_decref(ev);
	source_survived(&src, &q);
	destination_refused(&dst, "");
	qmp_close(&q);
	tern_vm_end(&src);
	tern_vm_end(&dst);
}

static void destination_killed(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm src, dst = { 0 };
	struct qmp_conn q;
	char uri[64];
	snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", harness_free_tcp_port());
	start_destination(&dst, uri, "128M");
	start_source(&src, &q, "128M");
	set_bandwidth(&q, 10 << 20);
	start_migration(&q, uri);
	wait_active(&q);
	proc_kill(&dst.proc, SIGKILL);
	json_t *info = mig_wait(&q, 20, 10000, NULL, NULL);
	assert_non_null(info);
	assert_string_equal(mig_status(info), "failed");
	assert_non_null(json_object_get(info, "error-desc"));
	json_decref(info);
	source_survived(&src, &q);
	qmp_close(&q);
	tern_vm_end(&src);
	tern_vm_end(&dst);
}

static void source_killed(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm src, dst = { 0 };
	struct qmp_conn q;
	char uri[64];
	snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", harness_free_tcp_port());
	start_destination(&dst, uri, "128M");
	start_source(&src, &q, "128M");
	set_bandwidth(&q, 10 << 20);
	start_migration(&q, uri);
	wait_active(&q);
	proc_kill(&src.proc, SIGKILL);
	destination_refused(&dst, "the link broke"); /* between frames or inside one */
	qmp_close(&q);
	tern_vm_end(&src);
	tern_vm_end(&dst);
}

/* The guest ends its run (exit port) while it is being migrated: the
 * source ends with it, and the destination never runs a guest that had
 * already ended. */
static void guest_ends_mid_migration(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm src = { 0 }, dst = { 0 };
	struct qmp_conn q;
	char path[256], uri[300];
	assert_int_equal(tern_vm_prepare(&dst), 0);
	snprintf(uri, sizeof uri, "unix:%s", tern_vm_path(&dst, "m.sock", path, sizeof path));
	start_destination(&dst, uri, "128M");
	assert_int_equal(tern_vm_start(&src, "--memory", "128M", "--append",
				       "workload=random ws=24M rate=50000 seconds=2 seed=12", NULL), 0);
	assert_true(proc_wait_for(&src.proc, "tern-guest: start", 0, 20000) > 0);
	struct timespec nap = { 0, 800000000 };
	nanosleep(&nap, NULL);
	assert_int_equal(qmp_connect(&q, src.qmp_path, 1, 10000), 0);
	set_bandwidth(&q, 8 << 20); /* about 3 s: the guest ends first */
	start_migration(&q, uri);
	int status = proc_wait(&src.proc, 20000);
	if (status != 0 || strstr(proc_output(&src.proc), "verify ok (end)") == NULL)
		fail_msg("the source exited %d:\n%s", status, proc_output(&src.proc));
	destination_refused(&dst, "");
	qmp_close(&q);
	tern_vm_end(&src);
	tern_vm_end(&dst);
}

/* Save a guest to a file; the path is written to `path`. */
static void save_guest(struct tern_vm *src, char *path, size_t len)
{
	struct qmp_conn q;
	start_source(src, &q, "64M");
	char uri[300];
	tern_vm_path(src, "guest.tmf", path, len);
	snprintf(uri, sizeof uri, "file:%s", path);
	start_migration(&q, uri);
	json_t *info = mig_wait(&q, 20, 30000, NULL, NULL);
	assert_non_null(info);
	assert_string_equal(mig_status(info), "completed");
	json_decref(info);
	assert_int_equal(qmp_do(&q, "quit", NULL, NULL, 5000), 0);
	assert_int_equal(proc_wait(&src->proc, 10000), 0);
	qmp_close(&q);
}

/* Load a damaged copy: flip one byte at `flip` (if >= 0), keep `keep`
 * bytes (if > 0), then add `tail_len` bytes of `tail`. */
static void load_damaged(const char *saved, long flip, long keep, const void *tail,
			 size_t tail_len, const char *why)
{
	int fd = open(saved, O_RDONLY);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	struct tern_vm dst = { 0 };
	assert_int_equal(tern_vm_prepare(&dst), 0);
	char path[256], uri[300];
	tern_vm_path(&dst, "bad.tmf", path, sizeof path);
	if (flip >= 0)
		buf[flip] ^= 0x04;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	size_t n = keep > 0 ? (size_t)keep : (size_t)st.st_size;
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	if (tail_len > 0)
		assert_int_equal(write(fd, tail, tail_len), (ssize_t)tail_len);
	close(fd);
	free(buf);
	snprintf(uri, sizeof uri, "file:%s", path);
	assert_int_equal(mig_start_destination(&dst, uri, "--memory", "64M", NULL), 0);
	destination_refused(&dst, why);
	tern_vm_end(&dst);
}

static void damaged_streams(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm src;
	char saved[256];
	save_guest(&src, saved, sizeof saved);
	struct stat st;
	assert_int_equal(stat(saved, &st), 0);
	long size = (long)st.st_size;
	load_damaged(saved, 9, 0, NULL, 0, "damaged header");  /* the first frame's header */
	load_damaged(saved, size / 2, 0, NULL, 0, "damaged");   /* a page in the middle */
	load_damaged(saved, size - 40, 0, NULL, 0, "damaged");  /* the state at the end */
	const char *early = "the file ends before the stream's END";
	load_damaged(saved, -1, size / 3, NULL, 0, early);      /* cut mid-frame */
	load_damaged(saved, -1, size - 1, NULL, 0, early);
	/* Nothing may follow END: a byte, or more. */
	uint8_t tail[100];
	for (size_t i = 0; i < sizeof tail; i++)
		tail[i] = (uint8_t)(i * 151 + 17);
	const char *after = "continues after the stream's END";
	load_damaged(saved, -1, 0, tail, 1, after);
	load_damaged(saved, -1, 0, tail, sizeof tail, after);
	tern_vm_end(&src);
}

/* A destination started with --memory MEMORY --vcpus VCPUS (the source
 * has 128M and one) refuses the stream before any RAM is sent (the shape
 * comes first), saying `why`, which error-desc says too; the source runs
 * on unharmed.  Each refusal gets a fresh source, so none has to outlast
 * two migrations. */
static void refused_for_its_shape(const char *memory, const char *vcpus, const char *why)
{
	struct tern_vm src, dst = { 0 };
	struct qmp_conn q;
	char path[256], uri[300];
	assert_int_equal(tern_vm_prepare(&dst), 0);
	snprintf(uri, sizeof uri, "unix:%s", tern_vm_path(&dst, "m.sock", path, sizeof path));
	assert_int_equal(mig_start_destination(&dst, uri, "--memory", memory, "--vcpus", vcpus,
					       NULL), 0);
	struct qmp_conn dq;
	assert_int_equal(qmp_connect(&dq, dst.qmp_path, 1, 10000), 0);
	qmp_close(&dq);
	start_source(&src, &q, "128M");
	start_migration(&q, uri);
	json_t *info = mig_wait(&q, 20, 30000, NULL, NULL);
	assert_non_null(info);
	assert_string_equal(mig_status(info), "failed");
	const char *desc = json_string_value(json_object_get(info, "error-desc"));
	if (desc == NULL || strstr(desc, why) == NULL)
		fail_msg("error-desc: %s", desc ? desc : "(none)");
	if (mig_number(info, "ram.transferred") >= (16 << 20)) /* one frame at most */
		fail_msg("%lld bytes of RAM went before the refusal",
			 (long long)mig_number(info, "ram.transferred"));
	json_decref(info);
	destination_refused(&dst, why);
	source_survived(&src, &q);
	qmp_close(&q);
	tern_vm_end(&src);
	tern_vm_end(&dst);
}

/* Shapes that differ: RAM size, vCPU count. */
static void destination_of_another_shape(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	refused_for_its_shape("96M", "1", "same --memory");
	refused_for_its_shape("128M", "2", "the source's --vcpus");
}

/* Takes in everything the source sends and never answers, until the
 * source hangs up. */
static void *silent_peer(void *arg)
{
	int lfd = *(int *)arg, fd;
	while ((fd = accept(lfd, NULL, NULL)) < 0 && errno == EINTR)
		;
	if (fd < 0)
		return NULL;
	static char sink[65536];
	ssize_t n;
	while ((n = read(fd, sink, sizeof sink)) != 0)
		if (n < 0 && errno != EINTR)
			break;
	close(fd);
	return NULL;
}

/* A destination that never says READY: the source's guest waits the
 * downtime limit and a grace (not 30 s), then runs on; query-migrate says
 * failed, and why. */
static void destination_never_answers(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm src, dir = { 0 };
	struct qmp_conn q;
	assert_int_equal(tern_vm_prepare(&dir), 0);
	char path[256], uri[300];
	tern_vm_path(&dir, "m.sock", path, sizeof path);
	snprintf(uri, sizeof uri, "unix:%s", path);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	assert_true(lfd >= 0 && strlen(path) < sizeof a.sun_path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(lfd, 1), 0);
	pthread_t peer;
	assert_int_equal(pthread_create(&peer, NULL, silent_peer, &lfd), 0);
	start_source(&src, &q, "128M");
	assert_int_equal(qmp_do(&q, "migrate-set-parameters",
				json_pack("{s:I}", "downtime-limit", (json_int_t)100), NULL, 5000), 0);
	double t0 = now_ms();
	start_migration(&q, uri);
	json_t *info = mig_wait(&q, 20, 25000, NULL, NULL);
	assert_non_null(info);
	assert_string_equal(mig_status(info), "failed");
	const char *desc = json_string_value(json_object_get(info, "error-desc"));
	if (desc == NULL || strstr(desc, "did not answer in time") == NULL)
		fail_msg("error-desc: %s", desc ? desc : "(none)");
	json_decref(info);
	if (now_ms() - t0 > 20000.0 * time_scale())
		fail_msg("the source gave up only after %.1f s", (now_ms() - t0) / 1000);
	pthread_join(peer, NULL); /* the source hung up */
	close(lfd);
	source_survived(&src, &q);
	qmp_close(&q);
	tern_vm_end(&src);
	tern_vm_end(&dir);
}

/* `migrate file:` into a file that cannot grow (RLIMIT_FSIZE): tern gets
 * EFBIG rather than dying of SIGXFSZ, removes the partial file, says so,
 * and its guest runs on. */
static void save_fails_on_a_file_that_cannot_grow(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm src;
	struct qmp_conn q;
	start_source(&src, &q, "64M");
	struct rlimit rl;
	assert_int_equal(prlimit(src.proc.pid, RLIMIT_FSIZE, NULL, &rl), 0);
	rl.rlim_cur = 4 << 20; /* the soft limit: the stream is about 30 MiB */
	assert_int_equal(prlimit(src.proc.pid, RLIMIT_FSIZE, &rl, NULL), 0);
	char path[256], uri[300];
	tern_vm_path(&src, "full.tmf", path, sizeof path);
	snprintf(uri, sizeof uri, "file:%s", path);
	start_migration(&q, uri);
	json_t *info = mig_wait(&q, 20, 30000, NULL, NULL);
	if (info == NULL)
		fail_msg("no answer; tern said:\n%s", proc_output(&src.proc));
	assert_string_equal(mig_status(info), "failed");
	const char *desc = json_string_value(json_object_get(info, "error-desc"));
	if (desc == NULL || strstr(desc, "File too large") == NULL ||
	    strstr(desc, "nothing was kept") == NULL)
		fail_msg("error-desc: %s", desc ? desc : "(none)");
	json_decref(info);
	assert_int_equal(access(path, F_OK), -1);
	source_survived(&src, &q);
	qmp_close(&q);
	tern_vm_end(&src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cancel_mid_migration),
		cmocka_unit_test(destination_killed),
		cmocka_unit_test(source_killed),
		cmocka_unit_test(guest_ends_mid_migration),
		cmocka_unit_test(damaged_streams),
		cmocka_unit_test(destination_of_another_shape),
		cmocka_unit_test(destination_never_answers),
		cmocka_unit_test(save_fails_on_a_file_that_cannot_grow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
