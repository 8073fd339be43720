/*
 * focusctl.c - the command-line client of focusd's management socket.
 *
 *   focusctl [--socket PATH] [--json] [--timeout SECONDS] COMMAND [ARGS]
 *
 * One connection, one JSON-RPC 2.0 request, one reply line, then exit.
 * For people it prints aligned tables (list, show) or a column of counters
 * (stats); with --json it prints the reply's "result" as indented JSON for
 * scripts, and `call METHOD [PARAMS]` sends any method with any params and
 * prints its result the same way, for methods this file does not know.
 *
 * Exit status: 0 success; 1 the server answered with an error (printed as
 * "focusctl: MESSAGE (CODE)") or with something that is not a JSON-RPC
 * reply; 2 the server could not be reached or did not answer in time; 64
 * (EX_USAGE) a usage error.
 *
 * Design: a blocking connect bounded by SO_SNDTIMEO (a Unix socket's
 * connect waits when the server's backlog is full), then non-blocking send
 * and receive under poll() with one deadline for the whole exchange.
 * Strings from the server came from SIP peers, so control characters in
 * table cells are printed as '?' (no escape sequences on a NOC terminal).
 * It links jansson and mgmt/path.c only; rejected: linking the server
 * library for mgmt_default_path, which would drag Sofia-SIP and DPDK into a
 * small client.
 *
 * Threads: one.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "mgmt/mgmt.h"

#define EXIT_RPC     1
#define EXIT_CONNECT 2
#define EXIT_USAGE   64
#define REPLY_MAX    (256u << 20)
#define TIMEOUT_DEF  5.0

static const char usage_text[] =
	"usage: focusctl [--socket PATH] [--json] [--timeout SECONDS] "
	"COMMAND [ARGS]\n"
	"\n"
	"commands:\n"
	"  list                     conferences\n"
	"  show ID                  one conference and its participants\n"
	"  stats                    process-wide counters\n"
	"  call METHOD [PARAMS]     any JSON-RPC method; PARAMS is a JSON\n"
	"                           object or array; prints the result\n"
	"\n"
	"options:\n"
	"  -s, --socket PATH        the management socket (default %s)\n"
	"  -j, --json               print the result as JSON\n"
	"  -t, --timeout SECONDS    give up after this long (default 5)\n"
	"  -h, --help               this text\n"
	"\n"
	"exit status: 0 ok, 1 the server answered an error, 2 no answer "
	"from the\nserver, 64 usage error\n";

static void
usage(FILE *f)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	mgmt_default_path(path, sizeof(path));
	fprintf(f, usage_text, path);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_fail(const char *fmt, ...)
{
	va_list ap;

	if (fmt != NULL) {
		fputs("focusctl: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	usage(stderr);
	exit(EXIT_USAGE);
}

/* Talking to the server. */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Milliseconds left before the deadline, for poll(); 0 when past it. */
static int
ms_left(uint64_t deadline)
{
	uint64_t now = now_ms();

	if (now >= deadline)
		return 0;
	return deadline - now > INT32_MAX ? INT32_MAX : (int)(deadline - now);
}

static int
ctl_connect(const char *path, double timeout)
{
	struct sockaddr_un sa;
	struct timeval tv;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "focusctl: socket path too long: %s\n", path);
		exit(EXIT_CONNECT);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "focusctl: socket: %s\n", strerror(errno));
		exit(EXIT_CONNECT);
	}
	tv.tv_sec = (time_t)timeout;
	tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
	if (tv.tv_sec == 0 && tv.tv_usec == 0)
		tv.tv_usec = 1;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	if (errno == EAGAIN || errno == EINPROGRESS)
		fprintf(stderr, "focusctl: cannot connect to %s: timed out\n",
			path);
	else if (errno == ENOENT || errno == ECONNREFUSED)
		fprintf(stderr,
			"focusctl: cannot connect to %s: %s (is "
			"focusd running? see --socket)\n",
			path, strerror(errno));
	else
		fprintf(stderr, "focusctl: cannot connect to %s: %s\n", path,
			strerror(errno));
	exit(EXIT_CONNECT);
}

/* Wait for ev on fd until the deadline: true if ready. */
static bool
ctl_wait(int fd, short ev, uint64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = ev};
	int r;

	for (;;) {
		r = poll(&pfd, 1, ms_left(deadline));
		if (r > 0)
			return true;
		if (r == 0)
			return false;
		if (errno != EINTR)
			return false;
	}
}

/*
 * Send buf; false if the server went away meanwhile (it may have answered
 * already, e.g. that the request was too long: read on).
 */
static bool
ctl_send(int fd, const char *buf, size_t len, uint64_t deadline)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!ctl_wait(fd, POLLOUT, deadline)) {
				fputs("focusctl: timed out sending the "
				      "request\n",
				      stderr);
				exit(EXIT_CONNECT);
			}
			continue;
		}
		if (errno == EPIPE || errno == ECONNRESET)
			return false;
		fprintf(stderr, "focusctl: send: %s\n", strerror(errno));
		exit(EXIT_CONNECT);
	}
	return true;
}

/* Read one line; returns it NUL-terminated, without its newline. */
static char *
ctl_recv_line(int fd, uint64_t deadline, size_t *lenp)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap), *nl;
	ssize_t n;

	if (buf == NULL) {
		fputs("focusctl: out of memory\n", stderr);
		exit(EXIT_CONNECT);
	}
	for (;;) {
		if (len + 1 >= cap) {
			if (cap >= REPLY_MAX) {
				fputs("focusctl: reply too long\n", stderr);
				exit(EXIT_RPC);
			}
			cap *= 2;
			buf = realloc(buf, cap);
			if (buf == NULL) {
				fputs("focusctl: out of memory\n", stderr);
				exit(EXIT_CONNECT);
			}
		}
		n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
		if (n > 0) {
			nl = memchr(buf + len, '\n', (size_t)n);
			len += (size_t)n;
			if (nl != NULL) {
				*nl = '\0';
				*lenp = (size_t)(nl - buf);
				return buf;
			}
			continue;
		}
		if (n == 0) {
			fputs("focusctl: the server closed the connection "
			      "without answering\n",
			      stderr);
			exit(EXIT_CONNECT);
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			fprintf(stderr, "focusctl: receive: %s\n",
				strerror(errno));
			exit(EXIT_CONNECT);
		}
		if (!ctl_wait(fd, POLLIN, deadline)) {
			fputs("focusctl: timed out waiting for the server\n",
			      stderr);
			exit(EXIT_CONNECT);
		}
	}
}

/*
 * Send one request and return its result (a new reference). A JSON-RPC
 * error is printed and exits 1.
 */
static json_t *
ctl_call(const char *path, double timeout, const char *method,
	 json_t *params /* stolen, may be NULL */)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout * 1000.0);
	json_t *req, *rep, *err, *result;
	json_error_t jerr;
	char *text, *line;
	size_t len;
	int fd;

	req = json_pack("{s:s, s:s, s:o*, s:i}", "jsonrpc", "2.0", "method",
			method, "params", params, "id", 1);
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (text == NULL) {
		fputs("focusctl: cannot encode the request\n", stderr);
		exit(EXIT_USAGE);
	}
	json_decref(req);

	fd = ctl_connect(path, timeout);
	len = strlen(text);
	text[len] = '\n'; /* json_dumps's NUL, no longer needed */
	ctl_send(fd, text, len + 1, deadline);
	free(text);
	line = ctl_recv_line(fd, deadline, &len);
	close(fd);

	rep = json_loadb(line, len, 0, &jerr);
	free(line);
	if (!json_is_object(rep)) {
		fprintf(stderr,
			"focusctl: the server's reply is not a "
			"JSON-RPC response: %s\n",
			rep ? "not an object" : jerr.text);
		exit(EXIT_RPC);
	}
	err = json_object_get(rep, "error");
	if (err != NULL) {
		json_t *msg = json_object_get(err, "message");
		json_t *code = json_object_get(err, "code");

		fprintf(stderr, "focusctl: %s (%lld)\n",
			json_is_string(msg) ? json_string_value(msg)
					    : "unknown error",
			json_is_integer(code)
				? (long long)json_integer_value(code)
				: 0ll);
		exit(EXIT_RPC);
	}
	result = json_object_get(rep, "result");
	if (result == NULL) {
		fputs("focusctl: the server's reply has neither result nor "
		      "error\n",
		      stderr);
		exit(EXIT_RPC);
	}
	json_incref(result);
	json_decref(rep);
	return result;
}

/* Output. */

static void
print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	putchar('\n');
}

/*
 * A copy of s fit for a terminal: control characters become '?', NULL
 * becomes "-".
 */
static char *
clean_dup(const char *s)
{
	char *d = strdup(s ? s : "-");

	if (d == NULL) {
		fputs("focusctl: out of memory\n", stderr);
		exit(EXIT_RPC);
	}
	for (char *p = d; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	return d;
}

/* An aligned table; the first row is the header. */
struct table {
	unsigned ncol;
	unsigned nrow;
	unsigned cap;
	char **cell; /* nrow * ncol, owned */
};

static void
table_add(struct table *t, const char *const *cells)
{
	if (t->nrow == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cell = realloc(t->cell, sizeof(*t->cell) * t->cap * t->ncol);
		if (t->cell == NULL) {
			fputs("focusctl: out of memory\n", stderr);
			exit(EXIT_RPC);
		}
	}
	for (unsigned i = 0; i < t->ncol; i++)
		t->cell[t->nrow * t->ncol + i] = clean_dup(cells[i]);
	t->nrow++;
}

/* Print and free. Two spaces between columns, none after the last. */
static void
table_print(struct table *t)
{
	size_t w[16] = {0};
	size_t n;

	for (unsigned r = 0; r < t->nrow; r++) {
		for (unsigned i = 0; i < t->ncol; i++) {
			n = strlen(t->cell[r * t->ncol + i]);
			if (n > w[i])
				w[i] = n;
		}
	}
	for (unsigned r = 0; r < t->nrow; r++) {
		for (unsigned i = 0; i < t->ncol; i++) {
			char *s = t->cell[r * t->ncol + i];

			if (i + 1 < t->ncol)
				printf("%-*s  ", (int)w[i], s);
			else
				printf("%s\n", s);
			free(s);
		}
	}
	free(t->cell);
	t->cell = NULL;
	t->nrow = t->cap = 0;
}

/* A member as text: strings as they are, numbers in decimal, else "-". */
static const char *
field(const json_t *o, const char *key, char *buf, size_t len)
{
	const json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
		return buf;
	}
	if (json_is_real(v)) {
		snprintf(buf, len, "%g", json_real_value(v));
		return buf;
	}
	if (json_is_true(v))
		return "yes";
	if (json_is_false(v))
		return "no";
	return "-";
}

static int
conf_cmp(const void *a, const void *b)
{
	const char *x =
		json_string_value(json_object_get(*(json_t *const *)a, "id"));
	const char *y =
		json_string_value(json_object_get(*(json_t *const *)b, "id"));

	return strcmp(x ? x : "", y ? y : "");
}

static void
print_list(const json_t *result)
{
	const json_t *confs = json_object_get(result, "conferences");
	struct table t = {.ncol = 4};
	char n1[24], n2[24];
	size_t n = json_array_size(confs);
	json_t **v;

	table_add(&t, (const char *[]){"ID", "PARTICIPANTS", "WORKER", "URI"});
	v = calloc(n ? n : 1, sizeof(*v));
	if (v == NULL) {
		fputs("focusctl: out of memory\n", stderr);
		exit(EXIT_RPC);
	}
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(confs, i);
	qsort(v, n, sizeof(*v), conf_cmp);
	for (size_t i = 0; i < n; i++) {
		table_add(&t,
			  (const char *[]){
				  field(v[i], "id", NULL, 0),
				  field(v[i], "participants", n1, sizeof(n1)),
				  field(v[i], "worker", n2, sizeof(n2)),
				  field(v[i], "uri", NULL, 0)});
	}
	free(v);
	table_print(&t);
}

static void
print_show(const json_t *result)
{
	const json_t *parts = json_object_get(result, "participants");
	const json_t *created = json_object_get(result, "created");
	struct table t = {.ncol = 8};
	char when[32] = "-", n1[24], rx[24], tx[24];
	const json_t *p, *rtp;
	char *id, *uri;
	struct tm tm;
	time_t secs;

	if (json_is_integer(created)) {
		secs = (time_t)json_integer_value(created);
		if (gmtime_r(&secs, &tm) != NULL)
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	id = clean_dup(field(result, "id", NULL, 0));
	uri = clean_dup(field(result, "uri", NULL, 0));
	printf("%s  %s  worker %s  created %s  %zu participant%s\n", id, uri,
	       field(result, "worker", n1, sizeof(n1)), when,
	       json_array_size(parts), json_array_size(parts) == 1 ? "" : "s");
	free(id);
	free(uri);

	table_add(&t, (const char *[]){"URI", "CODEC", "STATE", "DIR", "RX",
				       "TX", "LOCAL RTP", "REMOTE RTP"});
	for (size_t i = 0; i < json_array_size(parts); i++) {
		p = json_array_get(parts, i);
		rtp = json_object_get(p, "rtp");
		table_add(&t, (const char *[]){
				      field(p, "uri", NULL, 0),
				      field(p, "codec", NULL, 0),
				      field(p, "state", NULL, 0),
				      field(p, "direction", NULL, 0),
				      field(rtp, "rx_packets", rx, sizeof(rx)),
				      field(rtp, "tx_packets", tx, sizeof(tx)),
				      field(p, "local_rtp", NULL, 0),
				      field(p, "remote_rtp", NULL, 0)});
	}
	table_print(&t);
}

/* Nested objects and arrays become dotted keys: io.rx_packets,
 * workers.0.ticks. */
static void
stats_rows(struct table *t, const char *prefix, const json_t *v)
{
	char key[128], buf[32];

	if (json_is_object(v)) {
		const char *k;
		json_t *e;

		json_object_foreach((json_t *)v, k, e) {
			snprintf(key, sizeof(key), "%s%s%s", prefix,
				 *prefix ? "." : "", k);
			stats_rows(t, key, e);
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *e;

		json_array_foreach(v, i, e) {
			snprintf(key, sizeof(key), "%s.%zu", prefix, i);
			stats_rows(t, key, e);
		}
	} else {
		json_t *o = json_pack("{sO}", "v", v);

		table_add(t, (const char *[]){prefix,
					      field(o, "v", buf, sizeof(buf))});
		json_decref(o);
	}
}

static void
print_stats(const json_t *result)
{
	struct table t = {.ncol = 2};

	/* In the server's order; counters added later show up unchanged. */
	stats_rows(&t, "", result);
	table_print(&t);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *sock = NULL, *cmd;
	double timeout = TIMEOUT_DEF;
	json_t *params = NULL, *result;
	json_error_t jerr;
	bool json = false;
	char *end;
	int opt, nargs;

	while ((opt = getopt_long(argc, argv, "+s:jt:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 't':
			errno = 0;
			timeout = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !isfinite(timeout) || timeout <= 0 ||
			    timeout > 86400)
				usage_fail("bad timeout: %s", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage_fail(NULL);
		}
	}
	if (optind >= argc)
		usage_fail("no command");
	cmd = argv[optind];
	nargs = argc - optind - 1;
	if (sock == NULL) {
		mgmt_default_path(path, sizeof(path));
		sock = path;
	}
	if (sock[0] == '\0')
		usage_fail("empty socket path");

	if (strcmp(cmd, "list") == 0) {
		if (nargs != 0)
			usage_fail("list takes no arguments");
		result = ctl_call(sock, timeout, "conference.list", NULL);
		if (json)
			print_json(result);
		else
			print_list(result);
	} else if (strcmp(cmd, "show") == 0) {
		if (nargs != 1)
			usage_fail("show takes one conference ID");
		params = json_pack("{s:s}", "id", argv[optind + 1]);
		if (params == NULL)
			usage_fail("bad conference ID: %s", argv[optind + 1]);
		result = ctl_call(sock, timeout, "conference.show", params);
		if (json)
			print_json(result);
		else
			print_show(result);
	} else if (strcmp(cmd, "stats") == 0) {
		if (nargs != 0)
			usage_fail("stats takes no arguments");
		result = ctl_call(sock, timeout, "stats", NULL);
		if (json)
			print_json(result);
		else
			print_stats(result);
	} else if (strcmp(cmd, "call") == 0) {
		if (nargs < 1 || nargs > 2)
			usage_fail("call takes METHOD [PARAMS]");
		if (nargs == 2) {
			params = json_loads(argv[optind + 2], 0, &jerr);
			if (params == NULL)
				usage_fail("PARAMS is not JSON: %s", jerr.text);
			if (!json_is_object(params) && !json_is_array(params))
				usage_fail("PARAMS must be a JSON object or "
					   "array");
		}
		result = ctl_call(sock, timeout, argv[optind + 1], params);
		print_json(result);
	} else {
		usage_fail("unknown command: %s", cmd);
	}
	json_decref(result);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "focusctl: writing output: %s\n",
			strerror(errno));
		return EXIT_RPC;
	}
	return 0;
}
