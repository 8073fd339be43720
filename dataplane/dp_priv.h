/*
 * dp_priv.h - the dataplane's private state, shared by its files only.
 */
#ifndef FOCUSD_DP_PRIV_H
#define FOCUSD_DP_PRIV_H

#include <rte_ring.h>

#include "dataplane/dataplane.h"

#define DP_RX_BURST    32
#define DP_WORKER_RING 8192
#define DP_CHAN_SIZE   256

/* One entry of the io lcore's flow table, indexed by endpoint slot. */
struct dp_flow {
	bool active;
	uint16_t worker;
	uint16_t local_port;
	int sock;
	int rtcp_sock;
};

/* A port: how packets enter and leave the machine. */
struct dp_port_ops {
	const char *name;
	int (*init)(struct dp *dp);
	void (*fini)(struct dp *dp);
	/* Optional (none: a slot is all an endpoint needs): its sockets,
	 * made and closed by the control thread. */
	int (*ep_open)(struct dp *dp, struct dp_ep *ep);
	void (*ep_close)(struct dp *dp, struct dp_ep *ep);
	/* io lcore, optional: a flow starts / stops receiving. */
	int (*flow_on)(struct dp *dp, uint32_t slot, const struct dp_flow *f);
	void (*flow_off)(struct dp *dp, uint32_t slot, const struct dp_flow *f);
	/* io lcore: up to n packets with meta.local_port and remote set. */
	uint16_t (*rx_burst)(struct dp *dp, struct rte_mbuf **pkts, uint16_t n,
			     int wait_ms);
	/* worker `queue`: consumes every mbuf; returns how many were sent. */
	uint16_t (*tx_burst)(struct dp *dp, unsigned queue,
			     struct rte_mbuf **pkts, uint16_t n);
	/* io lcore, optional: m reached no flow (counted); the port
	 * consumes it. Without: freed. */
	void (*no_flow)(struct dp *dp, struct rte_mbuf *m);
	/* io lcore, optional: the port's own counters into st. */
	void (*stats)(struct dp *dp, struct dp_stats *st);
};

extern const struct dp_port_ops dp_port_socket;
extern const struct dp_port_ops dp_port_null;
extern const struct dp_port_ops dp_port_dpdk;

struct dp {
	struct dp_conf conf;
	const struct dp_port_ops *port;
	struct rte_mempool *pool;
	struct fc_chan *io_chan;
	struct rte_ring **worker_rings;

	/* Endpoint slots: control thread only. A FIFO of free slots. */
	uint32_t n_slots;
	uint32_t *free_slots;
	uint32_t free_head, free_count;

	/* io lcore only. */
	struct dp_flow *flows;
	struct dp_stats st;
	volatile bool quit;
	void *port_state; /* the port's own, owned by whoever it says */
};

void dp_classify(struct dp *dp, struct rte_mbuf **pkts, uint16_t n);

#endif
