/*
 * benchenv.h - what the benchmarks share: EAL started the same way, the
 * clock they measure by, and sorting figures.
 */
#ifndef FOCUSD_BENCH_BENCHENV_H
#define FOCUSD_BENCH_BENCHENV_H

/*
 * EAL for a benchmark on this machine: no hugepages, no PCI, no shared
 * config or telemetry, 512 MB, the main lcore only (the bench polls what
 * it measures itself). 0, or -1 after saying so on stderr.
 */
int bench_eal_init(const char *prog);
/* The calling thread's CPU time in ns: what the work costs, without the
 * time other processes on this shared machine take the core from it. */
double bench_cpu_ns(void);
/* qsort's comparison for doubles, ascending. */
int bench_cmp_double(const void *x, const void *y);

#endif
