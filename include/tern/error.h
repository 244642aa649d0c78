/*
 * tern's one error convention.
 *
 * Functions return 0 (or a non-negative count) on success and a negative
 * errno on failure.  Where the failure will reach a person, the function
 * also takes a struct tern_error and writes into it what was wrong and
 * what to do about it; callers may pass NULL when they only need the code.
 */
#ifndef TERN_ERROR_H
#define TERN_ERROR_H

#define TERN_ERROR_MAX 512

struct tern_error {
	char msg[TERN_ERROR_MAX];
};

/* Format a message into *err (if non-NULL) and return `code` (a negative
 * errno), so that failures read: return tern_errorf(err, -EINVAL, ...). */
int tern_errorf(struct tern_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an existing message with context ("loading kernel: ..."). */
void tern_error_prefix(struct tern_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
