/*
 * main.c - focusd: start every part in order, run the control loop, stop
 * in reverse.
 *
 * Start: settings -> EAL (lcores, memory) -> dataplane (mbuf pool, rings,
 * port) -> mixer workers -> lcores launched (io on the first worker lcore,
 * mixers on the next) -> signaling (SIP) -> management socket -> signals.
 * Then the main lcore runs signaling's loop, which is the control thread.
 *
 * Stop (SIGINT, SIGTERM): signaling hangs up every call and waits for the
 * media plane to hand everything back; then the management socket closes,
 * the lcores are told to quit and joined, and every part is freed before
 * rte_eal_cleanup(). A second signal while stopping exits at once.
 *
 * EAL runs in every mode. Unless --eal replaces them, its arguments are
 * "--no-huge --no-pci --no-shconf --no-telemetry", which need neither root
 * nor hugepages, and one lcore each for control, io and every worker,
 * floating over all CPUs.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <pthread.h>
#include <arpa/inet.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "common/common.h"
#include "daemon/config.h"
#include "dataplane/dataplane.h"
#include "mgmt/mgmt.h"
#include "mixer/mixer.h"
#include "signaling/signaling.h"

#define EAL_ARGS_MAX 64

struct focusd {
	struct fd_config cfg;
	int efd, sfd;
	struct dp *dp;
	struct mix_worker **workers;
	unsigned n_workers;
	struct sig *sig;
	struct mgmt *mgmt;
	struct sig_fd *sig_watch;
	bool lcores_running;
	bool stopping;
	bool eal_up;
};

/* Split the EAL argument string on blanks (no quoting). */
static int
eal_args(char **argv, int max, char *buf, const struct fd_config *c)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int argc = 0;

	argv[argc++] = "focusd";
	if (c->eal) {
		strcpy(buf, c->eal);
	} else {
		sprintf(buf,
			"--no-huge --no-pci --no-shconf --no-telemetry -m 128 "
			"--log-level=lib.eal:warning --lcores (0-%u)@(0-%ld)",
			c->workers + 1, ncpu > 1 ? ncpu - 1 : 0);
	}
	for (char *t = strtok(buf, " \t"); t && argc < max - 1;
	     t = strtok(NULL, " \t"))
		argv[argc++] = t;
	argv[argc] = NULL;
	return argc;
}

/* What rte_eal_init's rte_errno means for whoever starts focusd (EAL's
 * own lines before ours say what it tripped on). */
static const char *
eal_why(int err)
{
	switch (err) {
	case EACCES:
		return "no hugepages it can use: reserve some (sysctl "
		       "vm.nr_hugepages=N, hugetlbfs mounted) and run as root, "
		       "or add --no-huge to --eal";
	case ENOMEM:
		return "not enough memory for -m/--socket-mem: too few free "
		       "hugepages, or with --no-huge too little RAM";
	case ENODEV:
		return "a device --eal names is unknown (a --vdev driver, a "
		       "PCI address)";
	case EINVAL:
		return "an argument of --eal is wrong (an lcore list with "
		       "CPUs this machine lacks, for one)";
	case EALREADY:
		return "EAL was started twice";
	case 0:
		/* rte_config_init sets none: most often its lock is held. */
		return "its runtime configuration could not be set up, most "
		       "likely locked: another DPDK process uses the same "
		       "--file-prefix (give each its own, or --no-shconf)";
	default:
		return rte_strerror(err);
	}
}

/* 0 if ip (network order, written text) can be a next hop on --rtp-addr's
 * prefix: a host of it other than self and, below /31, not its network
 * or broadcast address. Else EINVAL, after saying why, for option opt. */
static int
next_hop_check(const struct fd_config *c, const char *opt, const char *text,
	       uint32_t ip, uint32_t self, uint32_t mask)
{
	const char *why = NULL;

	if (ip == self)
		why = "is --rtp-addr itself";
	else if ((ip & mask) != (self & mask))
		why = "is not on the prefix, so ARP cannot reach it";
	else if (dp_net_or_bcast(ip, self, mask))
		why = "is the prefix's network or broadcast address";
	if (why == NULL)
		return 0;
	FC_ERR("focusd",
	       "%s%s is not a host on %s/%u (--rtp-addr, --rtp-prefix): it %s",
	       opt, text, c->rtp_addr, c->rtp_prefix, why);
	return EINVAL;
}

/* --dataplane dpdk's own settings into dpc: the prefix, the gateway, the
 * static neighbours; EINVAL after saying what is wrong. */
static int
dpdk_conf(const struct fd_config *c, struct dp_conf *dpc)
{
	char *list, *save = NULL;
	struct in_addr a;
	uint32_t self;
	int err;

	dpc->io_idle_us = c->io_idle_us;
	dpc->rtp_mask =
		htonl(c->rtp_prefix >= 32 ? 0xffffffffu
					  : ~(0xffffffffu >> c->rtp_prefix));
	self = dpc->rtp_addr.s_addr; /* an IPv4 address: config.c checked */
	if (c->gateway) {
		if (inet_pton(AF_INET, c->gateway, &a) != 1) {
			FC_ERR("focusd",
			       "--gateway '%s' is not an IPv4 "
			       "address",
			       c->gateway);
			return EINVAL;
		}
		err = next_hop_check(c, "--gateway ", c->gateway, a.s_addr,
				     self, dpc->rtp_mask);
		if (err)
			return err;
		dpc->gateway = a.s_addr;
	}
	if (c->neighbours == NULL)
		return 0;
	list = strdup(c->neighbours);
	if (list == NULL)
		return ENOMEM;
	for (char *t = strtok_r(list, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		struct rte_ether_addr mac;

		if (dpc->n_neighbours == DP_NEIGHBOURS_MAX || eq == NULL ||
		    (*eq = '\0', inet_pton(AF_INET, t, &a) != 1) ||
		    rte_ether_unformat_addr(eq + 1, &mac) != 0) {
			FC_ERR("focusd",
			       "--neighbours: '%s' is not IP=MAC, or more "
			       "than %d",
			       t, DP_NEIGHBOURS_MAX);
			free(list);
			return EINVAL;
		}
		err = next_hop_check(c, "--neighbours: ", t, a.s_addr, self,
				     dpc->rtp_mask);
		if (err) {
			free(list);
			return err;
		}
		dpc->neighbours[dpc->n_neighbours].ip = a.s_addr;
		dpc->neighbours[dpc->n_neighbours++].mac = mac;
	}
	free(list);
	return 0;
}

static void
on_signal(int fd, void *arg)
{
	struct focusd *f = arg;
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (f->stopping) {
		FC_WARN("focusd", "second signal %u: exiting now",
			si.ssi_signo);
		_exit(1);
	}
	f->stopping = true;
	FC_INFO("focusd", "signal %u: stopping", si.ssi_signo);
	sig_shutdown(f->sig);
}

static int
start_lcores(struct focusd *f)
{
	unsigned lcore, k = 0;
	int err;

	if (rte_lcore_count() < f->n_workers + 2) {
		FC_ERR("focusd",
		       "EAL gave %u lcores; need %u (control, io "
		       "and %u workers): check --eal's -l/--lcores",
		       rte_lcore_count(), f->n_workers + 2, f->n_workers);
		return EINVAL;
	}
	RTE_LCORE_FOREACH_WORKER(lcore) {
		if (k == 0)
			err = rte_eal_remote_launch(dp_io_run, f->dp, lcore);
		else if (k <= f->n_workers)
			err = rte_eal_remote_launch(mix_worker_run,
						    f->workers[k - 1], lcore);
		else
			break;
		if (err) {
			FC_ERR("focusd", "cannot launch lcore %u: %s", lcore,
			       strerror(-err));
			return -err;
		}
		f->lcores_running = true;
		k++;
	}
	return 0;
}

static void
stop_lcores(struct focusd *f)
{
	if (!f->lcores_running)
		return;
	dp_io_stop(f->dp);
	for (unsigned i = 0; i < f->n_workers; i++)
		mix_worker_stop(f->workers[i]);
	rte_eal_mp_wait_lcore();
	f->lcores_running = false;
}

static int
start(struct focusd *f, int argc, char **argv)
{
	char *eargv[EAL_ARGS_MAX], ebuf[2048];
	struct dp_conf dpc = {0};
	struct sig_conf_opts so = {0};
	sigset_t mask;
	int eargc, err;

	if (f->cfg.eal && strlen(f->cfg.eal) >= sizeof(ebuf)) {
		FC_ERR("focusd", "--eal is too long");
		return E2BIG;
	}
	dpc.kind = strcmp(f->cfg.dataplane, "dpdk") == 0 ? DP_DPDK : DP_SOCKET;
	inet_pton(AF_INET, f->cfg.rtp_addr, &dpc.rtp_addr);
	if (dpc.kind == DP_DPDK) {
		err = dpdk_conf(&f->cfg, &dpc);
		if (err)
			return err;
	}

	/* Lcores inherit this mask: signals reach the control thread only,
	 * through the signalfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	f->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (f->sfd < 0 || f->efd < 0)
		return errno;

	eargc = eal_args(eargv, EAL_ARGS_MAX, ebuf, &f->cfg);
	if (rte_eal_init(eargc, eargv) < 0) {
		FC_ERR("focusd",
		       "DPDK EAL did not start: %s (EAL's lines above say "
		       "more); --eal was '%s'",
		       eal_why(rte_errno),
		       f->cfg.eal ? f->cfg.eal : "the defaults");
		return rte_errno ? rte_errno : EINVAL;
	}
	f->eal_up = true;
	(void)argc;
	(void)argv;

	dpc.port_lo = (uint16_t)f->cfg.rtp_port_lo;
	dpc.port_hi = (uint16_t)f->cfg.rtp_port_hi;
	dpc.n_workers = f->cfg.workers;
	dpc.efd = f->efd;
	err = dp_alloc(&f->dp, &dpc);
	if (err) {
		FC_ERR("focusd", "dataplane did not start: %s", strerror(err));
		return err;
	}

	f->n_workers = f->cfg.workers;
	f->workers = calloc(f->n_workers, sizeof(*f->workers));
	if (f->workers == NULL)
		return ENOMEM;
	for (unsigned i = 0; i < f->n_workers; i++) {
		err = mix_worker_alloc(&f->workers[i], f->dp, i, f->efd);
		if (err) {
			FC_ERR("focusd", "mixer worker %u: %s", i,
			       strerror(err));
			return err;
		}
	}
	err = start_lcores(f);
	if (err)
		return err;

	so.listen = f->cfg.sip_listen;
	so.domain = f->cfg.domain;
	so.factory = f->cfg.factory;
	so.auto_create = f->cfg.auto_create;
	so.conf_id_pattern = f->cfg.conf_id_pattern;
	so.factory_redirect = strcmp(f->cfg.factory_mode, "redirect") == 0;
	so.conf_empty_timeout = f->cfg.conf_empty_timeout;
	so.mix_rate = f->cfg.mix_rate;
	so.max_talkers = f->cfg.max_talkers;
	so.max_load = f->cfg.max_load;
	so.users_file = f->cfg.users;
	so.realm = f->cfg.realm;
	so.moderators = f->cfg.moderators;
	so.application = f->cfg.application;
	so.user_agent = "focusd/" FOCUSD_VERSION;
	err = sig_alloc(&f->sig, &so, f->dp, f->workers, f->n_workers, f->efd);
	if (err) {
		if (err != EINVAL) /* sig_alloc named the bad setting */
			FC_ERR("focusd", "SIP did not start on %s: %s",
			       f->cfg.sip_listen, strerror(err));
		return err;
	}
	err = mgmt_alloc(&f->mgmt, f->sig, f->cfg.mgmt);
	if (err)
		return err; /* mgmt_alloc said why */
	err = sig_fd_watch(&f->sig_watch, f->sig, f->sfd, on_signal, f);
	if (err)
		return err;
	return 0;
}

static void
stop(struct focusd *f)
{
	sig_fd_unwatch(f->sig_watch);
	mgmt_free(f->mgmt);
	if (f->dp)
		stop_lcores(f);
	sig_free(f->sig);
	for (unsigned i = 0; f->workers && i < f->n_workers; i++)
		mix_worker_free(f->workers[i]);
	free(f->workers);
	dp_free(f->dp);
	if (f->efd >= 0)
		close(f->efd);
	if (f->sfd >= 0)
		close(f->sfd);
}

int
main(int argc, char **argv)
{
	struct focusd f = {.efd = -1, .sfd = -1};
	int rc;

	rc = fd_config_load(&f.cfg, argc, argv);
	if (rc) {
		fd_config_free(&f.cfg);
		return rc > 0 ? 0 : 64;
	}
	fc_log_level_set(
		(enum fc_log_level)fc_log_level_parse(f.cfg.log_level));

	rc = start(&f, argc, argv);
	if (rc == 0) {
		FC_INFO("focusd",
			"ready: dial sip:ROOM@%s (auto-create %s) or the "
			"factory sip:%s@%s; RTP on %s:%u-%u; management "
			"socket %s",
			sig_domain(f.sig), f.cfg.auto_create ? "on" : "off",
			f.cfg.factory, sig_domain(f.sig), f.cfg.rtp_addr,
			f.cfg.rtp_port_lo, f.cfg.rtp_port_hi, f.cfg.mgmt);
		sig_run(f.sig);
		FC_INFO("focusd", "stopped");
	}
	stop(&f);
	if (f.eal_up)
		rte_eal_cleanup();
	fd_config_free(&f.cfg);
	return rc ? 1 : 0;
}
