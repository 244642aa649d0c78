/* A fresh directory for a test program's files (tests/tmpdir_support.c). */
#ifndef TESTS_TMPDIR_SUPPORT_H
#define TESTS_TMPDIR_SUPPORT_H

/* The directory, between the group's setup and teardown. */
extern char *test_dir;
/* cmocka group setup and teardown: make it, remove it with its contents. */
int test_dir_setup(void **state);
int test_dir_teardown(void **state);
/* Run a shell command in that directory: its exit status, its output in
 * *out (harness_sh's). */
int test_dir_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
