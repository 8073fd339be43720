/*
 * benchenv.c - what the benchmarks share (see benchenv.h).
 */
#include <stdio.h>
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

int
bench_cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}
