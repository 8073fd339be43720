/*
 * benchenv.c - what the benchmarks share (see benchenv.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <rte_eal.h>

#include "bench/benchenv.h"
#include "common/common.h"

int
bench_eal_init(const char *prog)
{
	char *eal[] = {(char *)prog,
		       "--no-huge",
		       "--no-pci",
		       "--no-shconf",
		       "--no-telemetry",
		       "-m",
		       "512",
		       "-l",
		       "0",
		       "--log-level=lib.eal:error"};

	if (rte_eal_init((int)FC_ARRAY_SIZE(eal), eal) < 0) {
		fprintf(stderr, "%s: EAL did not start\n", prog);
		return -1;
	}
	return 0;
}

double
bench_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int
cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

double
bench_median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

uint32_t
bench_rng_next(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}
