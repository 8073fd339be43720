/*
 * port_null.c - the null port: receives nothing, drops what it is given.
 *
 * For benchmarks and tests that drive the io lcore's classifier or a
 * worker's poll function directly, without kernel sockets in the way: the
 * caller puts mbufs on the worker rings itself, and whatever the worker
 * transmits is counted and freed, or handed to the caller's ring
 * (dp_conf.null_tx) for a test to read. Endpoints get a slot but no
 * socket.
 */
#include <errno.h>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dataplane/dp_priv.h"

static int
null_init(struct dp *dp)
{
	(void)dp;
	return 0;
}

static void
null_fini(struct dp *dp)
{
	(void)dp;
}

static uint16_t
null_rx_burst(struct dp *dp, struct rte_mbuf **pkts, uint16_t n, int wait_ms)
{
	(void)dp;
	(void)pkts;
	(void)n;
	(void)wait_ms;
	return 0;
}

static uint16_t
null_tx_burst(struct dp *dp, unsigned queue, struct rte_mbuf **pkts, uint16_t n)
{
	unsigned k = 0;

	(void)queue;
	if (dp->conf.null_tx)
		k = rte_ring_enqueue_burst(dp->conf.null_tx, (void **)pkts, n,
					   NULL);
	rte_pktmbuf_free_bulk(pkts + k, n - k);
	return n;
}

const struct dp_port_ops dp_port_null = {
	.name = "null",
	.init = null_init,
	.fini = null_fini,
	.rx_burst = null_rx_burst,
	.tx_burst = null_tx_burst,
};
