/*
 * config.h - focusd's settings: every one is a command-line flag and a key
 * of the config file (the flag's long name without "--").
 */
#ifndef FOCUSD_CONFIG_H
#define FOCUSD_CONFIG_H

#include <stdbool.h>

struct fd_config {
	char *sip_listen; /* ADDR:PORT */
	char *domain;	  /* default: derived from sip_listen */
	char *factory;
	bool auto_create;
	char *conf_id_pattern;	     /* auto-create policy: POSIX ERE */
	char *factory_mode;	     /* "answer" or "redirect" */
	unsigned conf_empty_timeout; /* seconds */
	char *users;		     /* digest users file */
	char *realm;
	char *moderators;  /* comma-separated usernames */
	char *application; /* RFC 4579 4.3 application URI user */
	char *rtp_addr;
	unsigned rtp_port_lo, rtp_port_hi;
	unsigned workers;
	unsigned mix_rate;    /* Hz each conference mixes at */
	unsigned max_talkers; /* mixed at once per conference */
	unsigned max_load;    /* percent of the tick: refuse joins above */
	char *dataplane;      /* "socket" or "dpdk" */
	unsigned rtp_prefix;  /* dpdk: rtp-addr's on-link prefix length */
	char *gateway;	      /* dpdk: next hop beyond it */
	unsigned io_idle_us;  /* dpdk: the io lcore's nap when idle */
	char *neighbours;     /* dpdk: static "IP=MAC,..." */
	char *eal;	      /* extra EAL arguments, replacing the defaults */
	char *mgmt;	      /* Unix socket path */
	char *log_level;
	char *config; /* the file read, if any */
};

/*
 * Fill c from defaults, then the config file (--config), then argv.
 * Returns 0, 1 when --help or --version was printed (exit 0), or -1 after
 * printing why to stderr (exit 64).
 */
int fd_config_load(struct fd_config *c, int argc, char **argv);
void fd_config_free(struct fd_config *c);

#endif
