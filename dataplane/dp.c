/*
 * dp.c - the dataplane object and its control-thread side: endpoint slots
 * and the messages that program the io lcore.
 *
 * Endpoint slots index the RTP port range by even port (slot s is port
 * port_lo + 2s; the odd port above, in the range too, is its RTCP). Free slots are kept in
 * a FIFO rather than a stack, so a port just released is the last to be
 * handed out again and stray packets for an old call find no flow.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_mbuf.h>

#include "dataplane/dp_priv.h"

enum dp_cmd_type {
	DP_CMD_FLOW_ADD = 1,
	DP_CMD_FLOW_DEL,
	DP_CMD_FLOW_MOVE,
	DP_CMD_STATS,
};

struct dp_cmd {
	struct fc_msg msg;
	uint32_t slot;
	struct dp_flow flow;
	struct dp_stats st;
	union {
		dp_done_h *done;
		dp_stats_h *stats;
	} h;
	void *arg;
};

int
dp_alloc(struct dp **dpp, const struct dp_conf *conf)
{
	char name[RTE_RING_NAMESIZE];
	struct dp *dp;
	unsigned n_mbufs;
	uint32_t lo;
	int err;

	if (dpp == NULL || conf == NULL || conf->n_workers == 0 ||
	    conf->port_lo == 0)
		return EINVAL;
	/* Even ports whose odd port (RTCP) is in the range too: port_lo
	 * rounded up, port_hi inclusive; at least one such pair. */
	lo = ((uint32_t)conf->port_lo + 1) & ~1u;
	if (lo + 1 > conf->port_hi)
		return EINVAL;

	dp = calloc(1, sizeof(*dp));
	if (dp == NULL)
		return ENOMEM;
	dp->conf = *conf;

	switch (conf->kind) {
	case DP_SOCKET:
		dp->port = &dp_port_socket;
		break;
	case DP_NULL:
		dp->port = &dp_port_null;
		break;
	case DP_DPDK:
		dp->port = &dp_port_dpdk;
		break;
	default:
		err = ENOTSUP;
		goto out;
	}

	dp->conf.port_lo = (uint16_t)lo;
	dp->n_slots = ((uint32_t)conf->port_hi - lo + 1) / 2;
	dp->free_slots = calloc(dp->n_slots, sizeof(*dp->free_slots));
	dp->flows = calloc(dp->n_slots, sizeof(*dp->flows));
	dp->worker_rings = calloc(conf->n_workers, sizeof(*dp->worker_rings));
	if (!dp->free_slots || !dp->flows || !dp->worker_rings) {
		err = ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < dp->n_slots; i++)
		dp->free_slots[i] = i;
	dp->free_count = dp->n_slots;

	n_mbufs = conf->n_mbufs ? conf->n_mbufs : 16383;
	dp->pool = rte_pktmbuf_pool_create(
		"dp.pool", n_mbufs, 256,
		RTE_ALIGN(sizeof(struct dp_pkt_meta), RTE_MBUF_PRIV_ALIGN),
		RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (dp->pool == NULL) {
		err = rte_errno ? rte_errno : ENOMEM;
		FC_ERR("dataplane", "cannot create mbuf pool of %u: %s",
		       n_mbufs, rte_strerror(err));
		goto out;
	}

	for (unsigned w = 0; w < conf->n_workers; w++) {
		snprintf(name, sizeof(name), "dp.w%u", w);
		dp->worker_rings[w] =
			rte_ring_create(name, DP_WORKER_RING, SOCKET_ID_ANY,
					RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (dp->worker_rings[w] == NULL) {
			err = rte_errno ? rte_errno : ENOMEM;
			goto out;
		}
	}

	err = fc_chan_alloc(&dp->io_chan, "dp.io", DP_CHAN_SIZE, conf->efd);
	if (err)
		goto out;

	err = dp->port->init(dp);
	if (err)
		goto out;

	*dpp = dp;
	return 0;
out:
	dp_free(dp);
	return err;
}

void
dp_free(struct dp *dp)
{
	struct rte_mbuf *m;

	if (dp == NULL)
		return;
	if (dp->port && dp->port_state)
		dp->port->fini(dp);
	fc_chan_free(dp->io_chan);
	if (dp->worker_rings) {
		for (unsigned w = 0; w < dp->conf.n_workers; w++) {
			if (dp->worker_rings[w] == NULL)
				continue;
			while (rte_ring_dequeue(dp->worker_rings[w],
						(void **)&m) == 0)
				rte_pktmbuf_free(m);
			rte_ring_free(dp->worker_rings[w]);
		}
	}
	rte_mempool_free(dp->pool);
	free(dp->worker_rings);
	free(dp->flows);
	free(dp->free_slots);
	free(dp);
}

int
dp_ep_open(struct dp *dp, struct dp_ep *ep)
{
	uint32_t tries;
	int err = EADDRINUSE;

	if (dp == NULL || ep == NULL)
		return EINVAL;

	/* A port the kernel refuses (taken by another program) is skipped
	 * and goes to the back of the queue. */
	for (tries = dp->free_count; tries > 0; tries--) {
		uint32_t slot = dp->free_slots[dp->free_head];

		dp->free_head = (dp->free_head + 1) % dp->n_slots;
		dp->free_count--;
		ep->slot = slot;
		ep->local_port = (uint16_t)(dp->conf.port_lo + 2 * slot);
		ep->sock = ep->rtcp_sock = -1;
		err = dp->port->ep_open ? dp->port->ep_open(dp, ep) : 0;
		if (err == 0)
			return 0;
		dp->free_slots[(dp->free_head + dp->free_count) % dp->n_slots] =
			slot;
		dp->free_count++;
		if (err != EADDRINUSE)
			break;
	}
	return err == EADDRINUSE || dp->free_count == 0 ? EADDRINUSE : err;
}

void
dp_ep_close(struct dp *dp, struct dp_ep *ep)
{
	if (dp == NULL || ep == NULL || ep->slot >= dp->n_slots)
		return;
	if (dp->port->ep_close)
		dp->port->ep_close(dp, ep);
	dp->free_slots[(dp->free_head + dp->free_count) % dp->n_slots] =
		ep->slot;
	dp->free_count++;
	ep->sock = ep->rtcp_sock = -1;
}

uint32_t
dp_ep_slots(const struct dp *dp)
{
	return dp->n_slots;
}

struct in_addr
dp_rtp_addr(const struct dp *dp)
{
	return dp->conf.rtp_addr;
}

struct rte_ring *
dp_worker_ring(struct dp *dp, unsigned worker)
{
	return dp->worker_rings[worker];
}

struct rte_mempool *
dp_pool(struct dp *dp)
{
	return dp->pool;
}

uint16_t
dp_tx_burst(struct dp *dp, unsigned worker, struct rte_mbuf **pkts, uint16_t n)
{
	return dp->port->tx_burst(dp, worker, pkts, n);
}

static void
dp_cmd_done(struct fc_msg *msg)
{
	struct dp_cmd *c = (struct dp_cmd *)msg;

	if (c->msg.type == DP_CMD_STATS) {
		if (c->h.stats)
			c->h.stats(c->arg, &c->st);
	} else if (c->h.done) {
		c->h.done(c->arg, -c->msg.result);
	}
}

static int
dp_cmd_send(struct dp *dp, int type, uint32_t slot, const struct dp_flow *f,
	    void *h, void *arg)
{
	struct dp_cmd *c;
	int err;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return ENOMEM;
	c->msg.done = dp_cmd_done;
	c->msg.type = type;
	c->slot = slot;
	if (f)
		c->flow = *f;
	if (type == DP_CMD_STATS)
		c->h.stats = (dp_stats_h *)h;
	else
		c->h.done = (dp_done_h *)h;
	c->arg = arg;
	err = fc_chan_send(dp->io_chan, &c->msg);
	if (err) {
		free(c);
		return -err;
	}
	return 0;
}

int
dp_flow_add(struct dp *dp, const struct dp_ep *ep, unsigned worker,
	    dp_done_h *done, void *arg)
{
	struct dp_flow f = {0};

	if (dp == NULL || ep == NULL || ep->slot >= dp->n_slots ||
	    worker >= dp->conf.n_workers)
		return EINVAL;
	f.active = true;
	f.worker = (uint16_t)worker;
	f.local_port = ep->local_port;
	f.sock = ep->sock;
	f.rtcp_sock = ep->rtcp_sock;
	return dp_cmd_send(dp, DP_CMD_FLOW_ADD, ep->slot, &f, (void *)done,
			   arg);
}

int
dp_flow_del(struct dp *dp, const struct dp_ep *ep, dp_done_h *done, void *arg)
{
	if (dp == NULL || ep == NULL || ep->slot >= dp->n_slots)
		return EINVAL;
	return dp_cmd_send(dp, DP_CMD_FLOW_DEL, ep->slot, NULL, (void *)done,
			   arg);
}

int
dp_flow_move(struct dp *dp, const struct dp_ep *ep, unsigned worker,
	     dp_done_h *done, void *arg)
{
	struct dp_flow f = {0};

	if (dp == NULL || ep == NULL || ep->slot >= dp->n_slots ||
	    worker >= dp->conf.n_workers)
		return EINVAL;
	f.worker = (uint16_t)worker;
	return dp_cmd_send(dp, DP_CMD_FLOW_MOVE, ep->slot, &f, (void *)done,
			   arg);
}

int
dp_stats_get(struct dp *dp, dp_stats_h *h, void *arg)
{
	if (dp == NULL || h == NULL)
		return EINVAL;
	return dp_cmd_send(dp, DP_CMD_STATS, 0, NULL, (void *)h, arg);
}

void
dp_collect(struct dp *dp)
{
	fc_chan_collect(dp->io_chan);
}

unsigned
dp_in_flight(const struct dp *dp)
{
	return fc_chan_in_flight(dp->io_chan);
}

/* io lcore: act on the control thread's messages. */
static void
dp_io_commands(struct dp *dp)
{
	struct fc_msg *msgs[16];
	unsigned n;

	n = fc_chan_take(dp->io_chan, msgs, FC_ARRAY_SIZE(msgs));
	for (unsigned i = 0; i < n; i++) {
		struct dp_cmd *c = (struct dp_cmd *)msgs[i];
		struct dp_flow *f = &dp->flows[c->slot];

		c->msg.result = 0;
		switch (c->msg.type) {
		case DP_CMD_FLOW_ADD:
			if (f->active) {
				c->msg.result = -EEXIST;
				break;
			}
			c->msg.result = dp->port->flow_on
						? -dp->port->flow_on(
							  dp, c->slot, &c->flow)
						: 0;
			if (c->msg.result == 0) {
				*f = c->flow;
				dp->st.flows++;
			}
			break;
		case DP_CMD_FLOW_DEL:
			if (!f->active) {
				c->msg.result = -ENOENT;
				break;
			}
			if (dp->port->flow_off)
				dp->port->flow_off(dp, c->slot, f);
			f->active = false;
			dp->st.flows--;
			break;
		case DP_CMD_FLOW_MOVE:
			if (!f->active) {
				c->msg.result = -ENOENT;
				break;
			}
			f->worker = c->flow.worker;
			break;
		case DP_CMD_STATS:
			c->st = dp->st;
			if (dp->port->stats)
				dp->port->stats(dp, &c->st);
			break;
		default:
			c->msg.result = -ENOTSUP;
		}
		fc_chan_reply(dp->io_chan, &c->msg);
	}
	fc_chan_kick(dp->io_chan);
}

/*
 * io lcore: the pipeline every port feeds. Borrows nothing: each mbuf is
 * either enqueued to its worker (ownership passes) or freed and counted.
 * Per packet: one table lookup, a two-byte check and a ring enqueue.
 */
void
dp_classify(struct dp *dp, struct rte_mbuf **pkts, uint16_t n)
{
	struct rte_mbuf *out[DP_RX_BURST];
	uint16_t out_w[DP_RX_BURST];
	unsigned n_out = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		struct dp_pkt_meta *pm = dp_pkt_meta(m);
		const uint8_t *b = rte_pktmbuf_mtod(m, const uint8_t *);
		uint32_t off = (uint32_t)(pm->local_port - dp->conf.port_lo);
		struct dp_flow *f;

		dp->st.rx_packets++;
		if (pm->local_port < dp->conf.port_lo ||
		    off / 2 >= dp->n_slots || !dp->flows[off / 2].active) {
			dp->st.rx_no_flow++;
			if (dp->port->no_flow)
				dp->port->no_flow(dp, m);
			else
				rte_pktmbuf_free(m);
			continue;
		}
		/* A leg's even port is its RTP, the odd one its RTCP. What
		 * comes to its RTCP port is the leg's to judge (and count). */
		pm->rtcp = off & 1;
		f = &dp->flows[off / 2];
		if (!pm->rtcp && (rte_pktmbuf_data_len(m) < DP_RTP_HDR_MIN ||
				  (b[0] >> 6) != 2)) {
			dp->st.rx_malformed++;
			rte_pktmbuf_free(m);
			continue;
		}
		pm->slot = off / 2;
		out[n_out] = m;
		out_w[n_out++] = f->worker;
	}

	/* Runs of packets for the same worker go in one enqueue. */
	for (unsigned i = 0; i < n_out;) {
		unsigned j = i + 1, sent;

		while (j < n_out && out_w[j] == out_w[i])
			j++;
		sent = rte_ring_enqueue_burst(dp->worker_rings[out_w[i]],
					      (void **)&out[i], j - i, NULL);
		for (unsigned k = i + sent; k < j; k++) {
			dp->st.rx_ring_full++;
			rte_pktmbuf_free(out[k]);
		}
		i = j;
	}
}

static void
dp_io_pass(struct dp *dp, int wait_ms)
{
	struct rte_mbuf *pkts[DP_RX_BURST];
	uint16_t n;

	dp_io_commands(dp);
	n = dp->port->rx_burst(dp, pkts, DP_RX_BURST, wait_ms);
	if (n)
		dp_classify(dp, pkts, n);
}

void
dp_io_poll(struct dp *dp)
{
	dp_io_pass(dp, 0);
}

int
dp_io_run(void *arg)
{
	struct dp *dp = arg;

	/* The socket port sleeps in epoll for at most 1 ms when idle; the
	 * wait is per idle pass, never per packet. */
	while (!dp->quit)
		dp_io_pass(dp, 1);
	return 0;
}

void
dp_io_stop(struct dp *dp)
{
	dp->quit = true;
}
