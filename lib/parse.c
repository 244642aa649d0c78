/* Parsing numbers and sizes; see include/tern/parse.h. */
#include "tern/parse.h"

#include <errno.h>
#include <strings.h>

int tern_parse_u64(const char *s, uint64_t *out, struct tern_error *err)
{
	uint64_t v = 0;
	unsigned base = 10;
	const char *p = s;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	if (*p == '\0')
		return tern_errorf(err, -EINVAL, "'%s' is not a number", s);
	for (; *p != '\0'; p++) {
		unsigned d;
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned)(*p - 'A' + 10);
		else
			return tern_errorf(err, -EINVAL, "'%s' is not a number", s);
		if (v > (UINT64_MAX - d) / base)
			return tern_errorf(err, -ERANGE, "'%s' is too large", s);
		v = v * base + d;
	}
	*out = v;
	return 0;
}

int tern_parse_size(const char *s, unsigned default_shift, uint64_t *out,
		    struct tern_error *err)
{
	uint64_t v = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return tern_errorf(err, -EINVAL,
				   "'%s' is not a size (examples: 512M, 4G, 1T)", s);
	for (; *p >= '0' && *p <= '9'; p++) {
		uint64_t d = (uint64_t)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return tern_errorf(err, -ERANGE, "size '%s' is too large", s);
		v = v * 10 + d;
	}
	unsigned shift = default_shift;
	if (*p != '\0') {
		static const struct {
			const char *suffix;
			unsigned shift;
		} units[] = {
			{ "b", 0 },    { "k", 10 },   { "kb", 10 },  { "kib", 10 }, { "m", 20 },
			{ "mb", 20 },  { "mib", 20 }, { "g", 30 },   { "gb", 30 },  { "gib", 30 },
			{ "t", 40 },   { "tb", 40 },  { "tib", 40 },
		};
		unsigned i = 0;
		for (; i < sizeof units / sizeof units[0]; i++)
			if (strcasecmp(p, units[i].suffix) == 0)
				break;
		if (i == sizeof units / sizeof units[0])
			return tern_errorf(err, -EINVAL,
					   "size '%s' has an unknown suffix (use K, M, G or T)", s);
		shift = units[i].shift;
	}
	if (shift > 0 && v > (UINT64_MAX >> shift))
		return tern_errorf(err, -ERANGE, "size '%s' is too large", s);
	*out = v << shift;
	return 0;
}
