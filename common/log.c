/*
 * log.c - one line an event to stderr.
 *
 * Each line is "LEVEL part: message", written with one write() so lines
 * from different threads do not interleave. Callers are the control thread
 * and lcores at start-up or on rare events; the fast path never logs (it
 * counts). The level is a relaxed atomic read, so FC_DEBUG() costs one load
 * when debug is off.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"

static _Atomic int log_level = FC_LOG_INFO;

static const char *const level_names[] = {
	[FC_LOG_ERR] = "error",
	[FC_LOG_WARN] = "warning",
	[FC_LOG_INFO] = "info",
	[FC_LOG_DEBUG] = "debug",
};

void
fc_log_level_set(enum fc_log_level level)
{
	atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

enum fc_log_level
fc_log_level_get(void)
{
	return atomic_load_explicit(&log_level, memory_order_relaxed);
}

int
fc_log_level_parse(const char *name)
{
	if (name == NULL)
		return -EINVAL;
	for (size_t i = 0; i < FC_ARRAY_SIZE(level_names); i++) {
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	}
	if (strcasecmp(name, "err") == 0)
		return FC_LOG_ERR;
	if (strcasecmp(name, "warn") == 0)
		return FC_LOG_WARN;
	return -EINVAL;
}

void
fc_log(enum fc_log_level level, const char *part, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, m;

	if ((int)level > (int)fc_log_level_get())
		return;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		     level_names[level], part);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line; a short write on stderr is not worth a retry. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

uint64_t
fc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
