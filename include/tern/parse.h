/* Parsing numbers and sizes given by people (command lines, QMP). */
#ifndef TERN_PARSE_H
#define TERN_PARSE_H

#include <stdint.h>

#include "tern/error.h"

/*
 * A size such as "512", "512M", "4G", "1T", "64k" or "2MiB".  Suffixes are
 * binary multiples (K = 1024).  `default_shift` applies without a suffix:
 * 20 makes "512" mean 512 MiB as QEMU's -m does, 0 makes it bytes.
 */
int tern_parse_size(const char *s, unsigned default_shift, uint64_t *out,
		    struct tern_error *err);

/* An unsigned decimal (or 0x hex) integer, all of the string, no overflow. */
int tern_parse_u64(const char *s, uint64_t *out, struct tern_error *err);

#endif
