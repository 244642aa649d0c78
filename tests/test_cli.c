/* `tern run` option parsing: values and clear errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"

static int parse(struct run_options *o, struct tern_error *err, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	va_start(ap, err);
	argv[argc++] = "run";
	for (char *a; (a = va_arg(ap, char *)) != NULL;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return cli_parse_run(argc, argv, o, err);
}

static void defaults(void **state)
{
	(void)state;
	struct run_options o;
	assert_int_equal(parse(&o, NULL, NULL), 0);
	assert_int_equal(o.memory, 512ULL << 20);
	assert_int_equal(o.vcpus, 1);
	assert_int_equal(o.memslots, 0);
	assert_null(o.kernel);
	assert_null(o.qmp);
	assert_string_equal(o.serial, "stdio");
	assert_string_equal(o.append, "");
}

static void values(void **state)
{
	(void)state;
	struct run_options o;
	assert_int_equal(parse(&o, NULL, "-m", "2G", "--vcpus", "2", "--memslots", "8", "--kernel",
			       "/k.elf", "--append", "ws=1M", "--workload", "sparse", "--serial",
			       "null", "--qmp", "unix:/q", "-S", NULL),
			 0);
	assert_int_equal(o.memory, 2ULL << 30);
	assert_int_equal(o.vcpus, 2);
	assert_int_equal(o.memslots, 8);
	assert_string_equal(o.kernel, "/k.elf");
	assert_string_equal(o.append, "ws=1M workload=sparse");
	assert_string_equal(o.serial, "null");
	assert_string_equal(o.qmp, "unix:/q");
	assert_true(o.start_paused);
	assert_int_equal(o.dirty_mode, DIRTY_MODE_LOG);
	assert_int_equal(parse(&o, NULL, "--memory=300", "--dirty-tracking", "ring",
			       "--dirty-ring-size", "1024", NULL),
			 0);
	assert_int_equal(o.dirty_mode, DIRTY_MODE_RING);
	assert_int_equal(o.dirty_ring_entries, 1024);
	assert_int_equal(o.memory, 300ULL << 20);
}

static void expect_error(const char *words, ...)
{
	char *argv[8] = { "run" };
	int argc = 1;
	va_list ap;
	va_start(ap, words);
	for (char *a; (a = va_arg(ap, char *)) != NULL;)
		argv[argc++] = a;
	va_end(ap);
	struct run_options o;
	struct tern_error err = { .msg = "" };
	assert_int_equal(cli_parse_run(argc, argv, &o, &err), -EINVAL);
	if (strstr(err.msg, words) == NULL)
		fail_msg("error '%s' does not say '%s'", err.msg, words);
}

static void errors(void **state)
{
	(void)state;
	expect_error("unknown option '--bogus'", "--bogus", NULL);
	expect_error("needs a value", "--memory", NULL);
	expect_error("--memory", "--memory", "lots", NULL);
	expect_error("unknown workload 'dance'", "--workload", "dance", NULL);
	expect_error("--vcpus '0'", "--vcpus", "0", NULL);
	expect_error("--vcpus 'x'", "--vcpus", "x", NULL);
	expect_error("--memslots", "--memslots", "-3", NULL);
	expect_error("unexpected argument 'extra'", "extra", NULL);
	expect_error("choose log or ring", "--dirty-tracking", "bitmap", NULL);
	expect_error("power of two", "--dirty-ring-size", "1000", NULL);
}

static void help(void **state)
{
	(void)state;
	struct run_options o;
	assert_int_equal(parse(&o, NULL, "--help", NULL), 0);
	assert_true(o.help);
	assert_non_null(strstr(cli_run_usage, "--workload"));
	assert_true(cli_known_workload("hotcold"));
	assert_false(cli_known_workload("HOTCOLD"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(values),
		cmocka_unit_test(errors),
		cmocka_unit_test(help),
	};
	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
