/*
 * The migration engine without KVM, through files: a fake guest saved to
 * a file loads whole; a file that is damaged or cut short is refused and
 * never runs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/fake_guest.h"
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
	uint8_t *buf = malloc(*len);
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


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(file_round_trip),
		cmocka_unit_test(damaged_streams_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
