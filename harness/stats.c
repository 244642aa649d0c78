/* Small statistics for benchmarks; see stats.h. */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double harness_median(double *v, int n)
{
	if (n <= 0)
		return NAN;
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

unsigned harness_parse_list(const char *s, unsigned *out, unsigned max)
{
	unsigned n = 0;
	for (const char *p = s; *p && n < max; p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
		out[n++] = (unsigned)strtoul(p, NULL, 10);
	return n;
}
