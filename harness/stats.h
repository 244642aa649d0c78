/* Small statistics for benchmarks. */
#ifndef HARNESS_STATS_H
#define HARNESS_STATS_H

/* The median of v[0 .. n) (sorts v); NAN for n == 0. */
double harness_median(double *v, int n);

#endif
