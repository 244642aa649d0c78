/* A fresh directory per test program; see tmpdir_support.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "../harness/env.h"
#include "../harness/shell.h"
#include "tmpdir_support.h"

char *test_dir;

int test_dir_setup(void **state)
{
	(void)state;
	test_dir = harness_tmpdir();
	return test_dir ? 0 : -1;
}

int test_dir_teardown(void **state)
{
	(void)state;
	harness_rmtree(test_dir);
	free(test_dir);
	test_dir = NULL;
	return 0;
}

int test_dir_sh(char **out, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return harness_sh(out, "cd '%s' && %s", test_dir, cmd);
}
