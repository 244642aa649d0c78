/* Small statistics for benchmarks, and their lists of sizes. */
#ifndef HARNESS_STATS_H
#define HARNESS_STATS_H

/* The median of v[0 .. n) (sorts v); NAN for n == 0. */
double harness_median(double *v, int n);

/* "1,4,16" into out[0 .. max): how many were read. */
unsigned harness_parse_list(const char *s, unsigned *out, unsigned max);

#endif
