/*
 * config.c - settings from defaults, a config file and flags, in that
 * order, each overriding the one before.
 *
 * The config file is "key = value" lines; '#' starts a comment; keys are
 * the long flag names (sip-listen, rtp-ports, auto-create, ...). One table
 * describes every setting, so a flag and its key can never drift apart.
 * Every value is checked here, with a message naming the setting, so the
 * rest of the daemon can trust it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "common/common.h"
#include "daemon/config.h"
#include "mgmt/mgmt.h"

enum opt_kind { OPT_STR, OPT_BOOL, OPT_UINT, OPT_RANGE };

struct opt {
	const char *name;
	enum opt_kind kind;
	size_t off;
	const char *help;
	unsigned min, max; /* OPT_UINT */
};

#define OFF(f) offsetof(struct fd_config, f)

static const struct opt opts[] = {
	{"sip-listen", OPT_STR, OFF(sip_listen),
	 "ADDR:PORT for SIP over UDP and TCP (127.0.0.1:5060)"},
	{"domain", OPT_STR, OFF(domain),
	 "host[:port] of conference URIs sip:ID@HOST (the listen address)"},
	{"factory", OPT_STR, OFF(factory),
	 "user part of the conference factory URI (conf)"},
	{"factory-mode", OPT_STR, OFF(factory_mode),
	 "answer (200 from the new conference) or redirect (302 to it)"},
	{"conf-id-pattern", OPT_STR, OFF(conf_id_pattern),
	 "POSIX extended regex an auto-created conference ID must match"},
	{"auto-create", OPT_BOOL, OFF(auto_create),
	 "an INVITE to an unknown ID creates that conference (off)"},
	{"users", OPT_STR, OFF(users),
	 "SIP digest users file (user:password:realm lines) for owners and "
	 "moderators"},
	{"realm", OPT_STR, OFF(realm), "digest realm (the domain's host)"},
	{"moderators", OPT_STR, OFF(moderators),
	 "comma-separated usernames who may act on any conference"},
	{"application", OPT_STR, OFF(application),
	 "user part of the conference application URI (join): callers key "
	 "a conference number and #"},
	{"rtp-addr", OPT_STR, OFF(rtp_addr),
	 "IPv4 address for RTP (127.0.0.1)"},
	{"rtp-ports", OPT_RANGE, OFF(rtp_port_lo),
	 "LO-HI range of RTP ports, even ones used (20000-29999)"},
	{"workers", OPT_UINT, OFF(workers), "mixer lcores (1)", 1, 64},
	{"max-load", OPT_UINT, OFF(max_load),
	 "percent of the 20 ms tick every mixer must use before new joins "
	 "get 503 (85; 0: never)",
	 0, 100},
	{"max-talkers", OPT_UINT, OFF(max_talkers),
	 "talkers mixed at once per conference, the loudest (4; 0: all)", 0,
	 1000},
	{"mix-rate", OPT_UINT, OFF(mix_rate),
	 "Hz conferences mix at: 8000, 16000, 24000 or 48000 (16000)", 8000,
	 48000},
	{"conf-empty-timeout", OPT_UINT, OFF(conf_empty_timeout),
	 "seconds a redirecting factory's conference waits for its first "
	 "participant (32)",
	 1, 3600},
	{"dataplane", OPT_STR, OFF(dataplane), "socket or dpdk (socket)"},
	{"rtp-prefix", OPT_UINT, OFF(rtp_prefix),
	 "dpdk: on-link prefix length of --rtp-addr on the port (24)", 1, 32},
	{"gateway", OPT_STR, OFF(gateway),
	 "dpdk: IPv4 next hop (a host on that prefix) for RTP peers "
	 "off it (none)"},
	{"neighbours", OPT_STR, OFF(neighbours),
	 "dpdk: static ARP entries, IP=MAC[,IP=MAC...] (up to 8)"},
	{"io-idle-us", OPT_UINT, OFF(io_idle_us),
	 "dpdk: microseconds the io lcore naps per empty poll once idle for "
	 "1 ms (0: it spins, the default)",
	 0, 10000},
	{"eal", OPT_STR, OFF(eal),
	 "DPDK EAL arguments, replacing the unprivileged defaults"},
	{"mgmt", OPT_STR, OFF(mgmt),
	 "management socket path ($XDG_RUNTIME_DIR/focusd.sock)"},
	{"log-level", OPT_STR, OFF(log_level),
	 "error, warning, info or debug (info)"},
	{"config", OPT_STR, OFF(config), "read settings from FILE first"},
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: focusd [OPTIONS]\n\n"
		   "A SIP conference focus (RFC 4579) with its own RTP "
		   "mixer.\nEvery option is also a key of the --config file."
		   "\n\n");
	for (size_t i = 0; i < FC_ARRAY_SIZE(opts); i++) {
		char flag[64];

		snprintf(flag, sizeof(flag), "--%s%s", opts[i].name,
			 opts[i].kind == OPT_BOOL ? "[=BOOL]" : " VALUE");
		fprintf(f, "  %-26s %s\n", flag, opts[i].help);
	}
	fprintf(f, "  %-26s %s\n  %-26s %s\n  %-26s %s\n", "--no-auto-create",
		"turn auto-create off", "--help", "this text", "--version",
		"print the version");
}

static int
parse_bool(const char *v, bool *out)
{
	if (v == NULL || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
	    !strcasecmp(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") ||
		 !strcasecmp(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return -1;
	return 0;
}

static int
parse_uint(const char *v, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi)
		return -1;
	*out = (unsigned)n;
	return 0;
}

static int
opt_set(struct fd_config *c, const struct opt *o, const char *v,
	const char *where)
{
	char *p = (char *)c + o->off;

	switch (o->kind) {
	case OPT_STR:
		if (v == NULL || *v == '\0')
			goto bad;
		free(*(char **)p);
		*(char **)p = strdup(v);
		return 0;
	case OPT_BOOL:
		if (parse_bool(v, (bool *)p))
			goto bad;
		return 0;
	case OPT_UINT:
		if (v == NULL || parse_uint(v, o->min, o->max, (unsigned *)p))
			goto bad;
		return 0;
	case OPT_RANGE: {
		char lo[16];
		const char *dash = v ? strchr(v, '-') : NULL;
		unsigned a, b;

		if (dash == NULL || (size_t)(dash - v) >= sizeof(lo))
			goto bad;
		memcpy(lo, v, dash - v);
		lo[dash - v] = '\0';
		if (parse_uint(lo, 1024, 65534, &a) ||
		    parse_uint(dash + 1, 1025, 65535, &b) || b < a + 1)
			goto bad;
		c->rtp_port_lo = a;
		c->rtp_port_hi = b;
		return 0;
	}
	}
bad:
	fprintf(stderr, "focusd: %s: bad value '%s' for %s (%s)\n", where,
		v ? v : "", o->name, o->help);
	return -1;
}

static const struct opt *
opt_find(const char *name)
{
	for (size_t i = 0; i < FC_ARRAY_SIZE(opts); i++) {
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	}
	return NULL;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int
config_file(struct fd_config *c, const char *path)
{
	char line[1024], where[1100];
	unsigned lineno = 0;
	FILE *f = fopen(path, "r");
	int rc = 0;

	if (f == NULL) {
		fprintf(stderr, "focusd: cannot read config %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#'), *eq, *key, *val;
		const struct opt *o;

		lineno++;
		if (hash)
			*hash = '\0';
		key = trim(line);
		if (*key == '\0')
			continue;
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		eq = strchr(key, '=');
		if (eq == NULL) {
			fprintf(stderr, "focusd: %s: expected key = value\n",
				where);
			rc = -1;
			break;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		o = opt_find(key);
		if (o == NULL || o->off == OFF(config)) {
			fprintf(stderr, "focusd: %s: unknown key '%s'\n", where,
				key);
			rc = -1;
			break;
		}
		if (opt_set(c, o, val, where)) {
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

int
fd_config_load(struct fd_config *c, int argc, char **argv)
{
	struct option lopts[FC_ARRAY_SIZE(opts) + 4];
	char path[256];
	size_t n = 0;
	int ch, idx;

	memset(c, 0, sizeof(*c));
	c->sip_listen = strdup("127.0.0.1:5060");
	c->factory = strdup("conf");
	c->factory_mode = strdup("answer");
	c->application = strdup("join");
	c->conf_empty_timeout = 32;
	c->rtp_addr = strdup("127.0.0.1");
	c->rtp_port_lo = 20000;
	c->rtp_port_hi = 29999;
	c->workers = 1;
	c->mix_rate = 16000;
	c->max_talkers = 4;
	c->max_load = 85;
	c->dataplane = strdup("socket");
	c->rtp_prefix = 24;
	c->log_level = strdup("info");
	mgmt_default_path(path, sizeof(path));
	c->mgmt = strdup(path);

	for (size_t i = 0; i < FC_ARRAY_SIZE(opts); i++) {
		lopts[n++] = (struct option){opts[i].name,
					     opts[i].kind == OPT_BOOL
						     ? optional_argument
						     : required_argument,
					     NULL, 1000 + (int)i};
	}
	lopts[n++] = (struct option){"no-auto-create", no_argument, NULL, 'n'};
	lopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	lopts[n++] = (struct option){"version", no_argument, NULL, 'V'};
	lopts[n] = (struct option){0};

	/* The config file first, so flags override it. */
	for (int i = 1; i < argc; i++) {
		const char *file = NULL;

		if (strncmp(argv[i], "--config=", 9) == 0)
			file = argv[i] + 9;
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			file = argv[i + 1];
		if (file) {
			free(c->config);
			c->config = strdup(file);
			if (config_file(c, file))
				return -1;
		}
	}

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":", lopts, &idx)) != -1) {
		switch (ch) {
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("focusd %s\n", FOCUSD_VERSION);
			return 1;
		case 'n':
			c->auto_create = false;
			break;
		case ':':
			fprintf(stderr, "focusd: %s needs a value\n",
				argv[optind - 1]);
			return -1;
		case '?':
			fprintf(stderr, "focusd: unknown option '%s'\n",
				argv[optind - 1]);
			usage(stderr);
			return -1;
		default: {
			const struct opt *o = &opts[ch - 1000];

			if (o->off == OFF(config))
				break; /* read above */
			if (opt_set(c, o, optarg, "command line"))
				return -1;
		}
		}
	}
	if (optind < argc) {
		fprintf(stderr, "focusd: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	if (strcmp(c->dataplane, "socket") && strcmp(c->dataplane, "dpdk")) {
		fprintf(stderr, "focusd: --dataplane must be socket or dpdk\n");
		return -1;
	}
	if (strcmp(c->factory_mode, "answer") &&
	    strcmp(c->factory_mode, "redirect")) {
		fprintf(stderr, "focusd: --factory-mode must be answer or "
				"redirect\n");
		return -1;
	}
	if (fc_log_level_parse(c->log_level) < 0) {
		fprintf(stderr, "focusd: bad --log-level '%s'\n", c->log_level);
		return -1;
	}
	{
		struct in_addr a;

		if (inet_pton(AF_INET, c->rtp_addr, &a) != 1) {
			fprintf(stderr,
				"focusd: --rtp-addr must be an IPv4 "
				"address, not '%s'\n",
				c->rtp_addr);
			return -1;
		}
		if (a.s_addr == INADDR_ANY) {
			fprintf(stderr,
				"focusd: --rtp-addr must be the address "
				"peers send RTP to; 0.0.0.0 in SDP means "
				"hold\n");
			return -1;
		}
	}
	if ((strncmp(c->sip_listen, "0.0.0.0", 7) == 0 ||
	     strncmp(c->sip_listen, "[::]", 4) == 0) &&
	    c->domain == NULL) {
		fprintf(stderr, "focusd: --sip-listen on a wildcard address "
				"needs --domain (the host in conference URIs "
				"and the isfocus Contact)\n");
		return -1;
	}
	return 0;
}

void
fd_config_free(struct fd_config *c)
{
	free(c->sip_listen);
	free(c->domain);
	free(c->factory);
	free(c->factory_mode);
	free(c->users);
	free(c->realm);
	free(c->moderators);
	free(c->application);
	free(c->conf_id_pattern);
	free(c->rtp_addr);
	free(c->dataplane);
	free(c->eal);
	free(c->gateway);
	free(c->neighbours);
	free(c->mgmt);
	free(c->log_level);
	free(c->config);
}
