/*
 * benchenv.h - what the benchmarks share: EAL started the same way, the
 * clock they measure by, medians and pseudo-random numbers.
 */
#ifndef FOCUSD_BENCH_BENCHENV_H
#define FOCUSD_BENCH_BENCHENV_H

#include <stdint.h>

/*
 * EAL for a benchmark on this machine: no hugepages, no PCI, no shared
 * config or telemetry, 512 MB, the main lcore only (the bench polls what
 * it measures itself). 0, or -1 after saying so on stderr.
 */
int bench_eal_init(const char *prog);
/* The calling thread's CPU time in ns: what the work costs, without the
 * time other processes on this shared machine take the core from it. */
double bench_cpu_ns(void);
/* The median of v's n figures; v is left sorted (v[0]: the least). */
double bench_median(double *v, unsigned n);
/* xorshift32: the next of *x's pseudo-random sequence (*x not 0). */
uint32_t bench_rng_next(uint32_t *x);

#endif
