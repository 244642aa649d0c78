/* A fresh directory for a test program's files (tests/tmpdir_support.c). */
#ifndef TESTS_TMPDIR_SUPPORT_H
#define TESTS_TMPDIR_SUPPORT_H

/* The directory, between the group's setup and teardown. */
extern char *test_dir;
/* cmocka group setup and teardown: make it, remove it with its contents. */
int test_dir_setup(void **state);
int test_dir_teardown(void **state);

#endif
