/*
 * port_dpdk.c - the DPDK port: RTP through an ethdev, with the appliance's
 * own IPv4 edge (edge.c).
 *
 * The first available ethdev (a NIC bound to a DPDK driver, or a vdev
 * from --eal: net_tap, net_af_packet) with its RX queues read by the io
 * lcore, and one TX queue per worker plus one for the io lcore. focusd
 * owns dp_conf.rtp_addr on it: the io lcore answers ARP and ICMP echo,
 * learns neighbours, drops what is not UDP for us (counted by reason),
 * and hands on each datagram as the other ports do: the mbuf trimmed to
 * the UDP payload, the meta saying who sent it from where to which of our
 * ports, and the sender's Ethernet address. Classification onward is the
 * shared code (dp.c).
 *
 * Transmit: a worker builds Ethernet/IPv4/UDP in front of its RTP and
 * sends on its own queue, to the Ethernet address in the meta (the one
 * the leg learnt from its peer's packets: the peer, or the router its
 * packets come through). Until a leg has one (it has not heard from its
 * peer yet), its packets go to the io lcore through a ring; the io lcore
 * sends them to the address its ARP cache has for the next hop, or asks
 * (ARP) and holds them meanwhile: up to HOLD_PER_DEST per destination and
 * HOLD_MAX in all, for HOLD_NS at most (tx_held counts those it sent
 * once the answer came; tx_unresolved those it dropped: no answer in
 * time, no room, or no route).
 *
 * Checksums: the IPv4 and UDP ones are the NIC's where it offers the
 * offload (computed and checked in software otherwise); which are is in
 * the stats.
 *
 * Endpoints are slots only, with no socket: the port range is all ours.
 *
 * Ownership: the edge (ARP cache, counters), the RX queue, the io TX
 * queue and the ring's consumer side are the io lcore's; each worker TX
 * queue is its worker's. Single-segment mbufs only (RTP fits one).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "dataplane/dp_priv.h"
#include "dataplane/edge.h"

#define RX_DESC	       1024
#define TX_DESC	       1024
#define UNRESOLVED_Q   1024 /* mbufs waiting for the io lcore */
#define LINK_WAIT_MS   3000
#define PREFETCH_AHEAD 4   /* frames */
#define HOLD_MAX       256 /* mbufs waiting for ARP, all destinations */
#define HOLD_PER_DEST  16  /* ... per destination: 320 ms of 20 ms RTP */
#define HOLD_NS	       1000000000ull
#define IDLE_NS	       1000000ull /* no packet for that long: idle */

/* An mbuf (its datagram, no headers yet) waiting for its next hop. */
struct held {
	struct rte_mbuf *m;
	uint64_t until_ns;
};

struct port_dpdk {
	uint16_t port;
	uint16_t n_rxq; /* polled in turn (see dpdk_init) */
	uint16_t next_rxq;
	uint16_t io_queue; /* the io lcore's TX queue */
	struct dp_edge edge;
	unsigned tx_csum;	     /* DP_TX_ checksums the NIC computes */
	uint64_t tx_ol_flags;	     /* and how its mbufs say so */
	unsigned rx_csum;	     /* DP_RX_ checksums the NIC checks */
	struct rte_ring *unresolved; /* workers -> io lcore */
	/* io lcore only. */
	struct held held[HOLD_MAX]; /* oldest first */
	unsigned n_held;
	uint64_t held_learnt; /* edge.st.arp_learnt when last looked at */
	uint64_t tx_unresolved, tx_held;
	uint64_t rx_multiseg;
	uint64_t busy_ns; /* when a poll last found work */
};

/* The checksum offloads the port offers, asked for in conf; what they
 * are in DP_RX_ and DP_TX_ terms into pd. */
static void
csum_offloads(struct port_dpdk *pd, const struct rte_eth_dev_info *info,
	      struct rte_eth_conf *conf)
{
	if (info->tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) {
		conf->txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
		pd->tx_csum |= DP_TX_IP_CSUM;
		pd->tx_ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
	}
	if (info->tx_offload_capa & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) {
		conf->txmode.offloads |= RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
		pd->tx_csum |= DP_TX_UDP_CSUM;
		pd->tx_ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
	}
	if (pd->tx_ol_flags)
		pd->tx_ol_flags |= RTE_MBUF_F_TX_IPV4;
	if (info->rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) {
		conf->rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
		pd->rx_csum |= DP_RX_IP_CSUM_OK;
	}
	if (info->rx_offload_capa & RTE_ETH_RX_OFFLOAD_UDP_CKSUM) {
		conf->rxmode.offloads |= RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
		pd->rx_csum |= DP_RX_UDP_CSUM_OK;
	}
}

/* What the NIC found of m's checksums, as dp_edge_input's csum_ok: the
 * ones it verified, GOOD, or NONE (the data checked, the field not
 * final: a virtio peer on the same host leaves it partial). Bad or
 * unknown ones are checked again. */
static inline unsigned
rx_csum_ok(const struct rte_mbuf *m)
{
	uint64_t ip = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
	uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;

	return (ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD ||
				ip == RTE_MBUF_F_RX_IP_CKSUM_NONE
			? DP_RX_IP_CSUM_OK
			: 0) |
	       (l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD ||
				l4 == RTE_MBUF_F_RX_L4_CKSUM_NONE
			? DP_RX_UDP_CSUM_OK
			: 0);
}

/* DP_RX_ or DP_TX_ bits (the same values) in words for the log. */
static const char *
csum_words(unsigned bits)
{
	static const char *const w[] = {"software", "IPv4 by the NIC",
					"UDP by the NIC",
					"IPv4 and UDP by the NIC"};

	return w[bits & 3];
}

static int
dpdk_init(struct dp *dp)
{
	const struct dp_conf *c = &dp->conf;
	struct rte_eth_conf conf = {0};
	struct rte_eth_dev_info info;
	struct rte_eth_link link;
	struct rte_ether_addr mac;
	struct port_dpdk *pd;
	uint16_t port = RTE_MAX_ETHPORTS, nq = (uint16_t)(c->n_workers + 1);
	uint16_t n_rxq;
	bool spreads, configured = false, started = false;
	int err;

	RTE_ETH_FOREACH_DEV(port) break;
	if (port >= RTE_MAX_ETHPORTS) {
		FC_ERR("dataplane",
		       "--dataplane dpdk: no Ethernet port; give --eal a "
		       "vdev (--vdev=net_tap0,iface=NAME or "
		       "--vdev=net_af_packet0,iface=NAME) or a NIC bound to a "
		       "DPDK driver");
		return ENODEV;
	}
	err = rte_eth_dev_info_get(port, &info);
	if (err == 0 && (info.max_tx_queues < nq || info.max_rx_queues < 1))
		err = -ENOTSUP;
	if (err) {
		FC_ERR("dataplane",
		       "port %u (%s): %u TX queues needed (one per worker and "
		       "the io lcore), it has %u%s",
		       port, info.driver_name ? info.driver_name : "?", nq,
		       info.max_tx_queues,
		       info.driver_name && strcmp(info.driver_name,
						  "net_af_packet") == 0
			       ? " (give net_af_packet qpairs= that many)"
			       : "");
		return -err;
	}
	/* One RX queue: without RSS a NIC delivers everything to queue 0.
	 * The vdevs that spread flows over their queues whatever is asked
	 * (net_af_packet's fanout, net_tap's multi-queue) get as many as
	 * the TX queues, all polled. net_tap passes its queues' file
	 * descriptors in one message of at most 8. */
	spreads = strcmp(info.driver_name, "net_tap") == 0 ||
		  strcmp(info.driver_name, "net_af_packet") == 0;
	n_rxq = spreads ? RTE_MIN(nq, info.max_rx_queues) : 1;
	if (strcmp(info.driver_name, "net_tap") == 0 && n_rxq + nq > 8) {
		FC_ERR("dataplane",
		       "port %u (net_tap): %u workers need %u queues; net_tap "
		       "takes 8 at most (3 workers)",
		       port, c->n_workers, n_rxq + nq);
		return ENOTSUP;
	}
	pd = calloc(1, sizeof(*pd));
	if (pd == NULL)
		return ENOMEM;
	pd->port = port;
	pd->n_rxq = n_rxq;
	csum_offloads(pd, &info, &conf);
	pd->io_queue = (uint16_t)c->n_workers;
	pd->unresolved = rte_ring_create("dp.unresolved", UNRESOLVED_Q,
					 SOCKET_ID_ANY, RING_F_SC_DEQ);
	err = pd->unresolved ? rte_eth_dev_configure(port, n_rxq, nq, &conf)
			     : -ENOMEM;
	configured = err == 0;
	for (uint16_t q = 0; err == 0 && q < n_rxq; q++)
		err = rte_eth_rx_queue_setup(port, q, RX_DESC,
					     rte_eth_dev_socket_id(port), NULL,
					     dp->pool);
	for (uint16_t q = 0; err == 0 && q < nq; q++)
		err = rte_eth_tx_queue_setup(port, q, TX_DESC,
					     rte_eth_dev_socket_id(port), NULL);
	if (err == 0)
		err = rte_eth_dev_start(port);
	started = err == 0;
	if (err == 0)
		err = rte_eth_macaddr_get(port, &mac);
	if (err) {
		FC_ERR("dataplane", "port %u (%s) did not start: %s", port,
		       info.driver_name, rte_strerror(-err));
		err = -err;
		goto fail;
	}
	memset(&link, 0, sizeof(link));
	for (int t = 0; t < LINK_WAIT_MS / 100; t++) {
		if (rte_eth_link_get_nowait(port, &link) == 0 &&
		    link.link_status == RTE_ETH_LINK_UP)
			break;
		rte_delay_ms(100);
	}
	if (link.link_status != RTE_ETH_LINK_UP) {
		FC_ERR("dataplane", "port %u (%s): link down after %d ms", port,
		       info.driver_name, LINK_WAIT_MS);
		err = ENETDOWN;
		goto fail;
	}
	dp_edge_init(&pd->edge, c->rtp_addr.s_addr, c->rtp_mask, c->gateway,
		     &mac);
	for (unsigned i = 0; i < c->n_neighbours; i++) {
		err = dp_edge_arp_static(&pd->edge, c->neighbours[i].ip,
					 &c->neighbours[i].mac);
		if (err)
			FC_WARN("dataplane", "static neighbour %u: no room", i);
	}
	dp->port_state = pd;
	FC_INFO("dataplane",
		"port %u (%s), %02x:%02x:%02x:%02x:%02x:%02x, link up at %u "
		"Mbit/s; %u TX queues; checksums on RX %s, on TX %s",
		port, info.driver_name, mac.addr_bytes[0], mac.addr_bytes[1],
		mac.addr_bytes[2], mac.addr_bytes[3], mac.addr_bytes[4],
		mac.addr_bytes[5], link.link_speed, nq, csum_words(pd->rx_csum),
		csum_words(pd->tx_csum));
	return 0;
fail:
	/* Nothing of the port left behind: its RX queues hold the pool's
	 * mbufs until it is closed. */
	if (started)
		rte_eth_dev_stop(port);
	if (configured)
		rte_eth_dev_close(port);
	rte_ring_free(pd->unresolved);
	free(pd);
	return err;
}

static void
dpdk_fini(struct dp *dp)
{
	struct port_dpdk *pd = dp->port_state;
	struct rte_mbuf *m;

	if (pd == NULL)
		return;
	rte_eth_dev_stop(pd->port);
	rte_eth_dev_close(pd->port);
	for (unsigned i = 0; i < pd->n_held; i++)
		rte_pktmbuf_free(pd->held[i].m);
	while (rte_ring_dequeue(pd->unresolved, (void **)&m) == 0)
		rte_pktmbuf_free(m);
	rte_ring_free(pd->unresolved);
	free(pd);
	dp->port_state = NULL;
}

/* Ethernet/IPv4/UDP in front of m's datagram, to mac, with the checksums
 * the NIC computes left to it; false: no room. */
static bool
frame_up(const struct port_dpdk *pd, struct rte_mbuf *m,
	 const struct rte_ether_addr *mac)
{
	const struct dp_pkt_meta *pm = dp_pkt_meta(m);
	size_t plen = rte_pktmbuf_data_len(m);
	uint8_t *f = (uint8_t *)rte_pktmbuf_prepend(m, DP_EDGE_HDR);

	if (f == NULL)
		return false;
	dp_edge_udp_headers(&pd->edge, f, mac, pm->remote_ip, pm->local_port,
			    rte_be_to_cpu_16(pm->remote_port), plen,
			    pd->tx_csum);
	if (pd->tx_ol_flags) {
		m->l2_len = sizeof(struct rte_ether_hdr);
		m->l3_len = sizeof(struct rte_ipv4_hdr);
		m->l4_len = sizeof(struct rte_udp_hdr);
		m->ol_flags |= pd->tx_ol_flags;
	}
	return true;
}

/* n frames on TX queue q; what the port does not take is freed. With
 * checksum offload, the driver first readies them its own way (a no-op
 * for most); one it refuses is freed and the rest go on. */
static uint16_t
eth_send(struct port_dpdk *pd, uint16_t q, struct rte_mbuf **pkts, uint16_t n)
{
	uint16_t ok = n, s = 0;

	if (pd->tx_ol_flags) {
		ok = rte_eth_tx_prepare(pd->port, q, pkts, n);
		for (uint16_t i = ok; i < n;) {
			uint16_t more;

			rte_pktmbuf_free(pkts[i++]);
			more = rte_eth_tx_prepare(pd->port, q, pkts + i,
						  (uint16_t)(n - i));
			memmove(pkts + ok, pkts + i, more * sizeof(*pkts));
			ok = (uint16_t)(ok + more);
			i = (uint16_t)(i + more);
		}
	}
	if (ok)
		s = rte_eth_tx_burst(pd->port, q, pkts, ok);
	rte_pktmbuf_free_bulk(pkts + s, ok - s);
	return s;
}

/* io lcore: m framed for its next hop into out[*k] if that is known;
 * -EAGAIN if it is not yet (an ARP request into out when one is due),
 * -ENETUNREACH if there is none. The request's mbuf is had before the
 * edge is asked for one: with none, no request is due (or recorded as
 * sent). */
static int
try_send(struct dp *dp, struct port_dpdk *pd, struct rte_mbuf *m, uint64_t now,
	 struct rte_mbuf **out, unsigned *k)
{
	uint32_t dst = dp_pkt_meta(m)->remote_ip;
	struct rte_ether_addr mac;
	struct rte_mbuf *req;
	uint8_t *rb;
	size_t rl = 0;
	int r;

	r = dp_edge_resolve(&pd->edge, dst, now, &mac, NULL, &rl);
	if (r == 0) {
		if (frame_up(pd, m, &mac))
			out[(*k)++] = m;
		else
			rte_pktmbuf_free(m);
		return 0;
	}
	if (r != -EAGAIN)
		return r;
	req = rte_pktmbuf_alloc(dp->pool);
	rb = req ? (uint8_t *)rte_pktmbuf_append(req, DP_ARP_FRAME) : NULL;
	if (rb)
		r = dp_edge_resolve(&pd->edge, dst, now, &mac, rb, &rl);
	if (rl)
		out[(*k)++] = req;
	else
		rte_pktmbuf_free(req);
	return r;
}

/* io lcore: m held for its next hop, the newest kept: the oldest of its
 * destination's goes when that has its share, the oldest of all when all
 * are full. */
static void
hold(struct port_dpdk *pd, struct rte_mbuf *m, uint64_t now)
{
	uint32_t dst = dp_pkt_meta(m)->remote_ip;
	unsigned same = 0, drop = HOLD_MAX;

	for (unsigned i = 0; i < pd->n_held; i++) {
		if (dp_pkt_meta(pd->held[i].m)->remote_ip == dst && same++ == 0)
			drop = i;
	}
	if (same < HOLD_PER_DEST)
		drop = pd->n_held < HOLD_MAX ? HOLD_MAX : 0;
	if (drop < HOLD_MAX) {
		rte_pktmbuf_free(pd->held[drop].m);
		pd->tx_unresolved++;
		memmove(&pd->held[drop], &pd->held[drop + 1],
			(pd->n_held - drop - 1) * sizeof(pd->held[0]));
		pd->n_held--;
	}
	pd->held[pd->n_held++] = (struct held){m, now + HOLD_NS};
}

/*
 * io lcore: the held mbufs again, when a neighbour has been learnt since
 * last time or the oldest has waited its time: those whose next hop is
 * known now go (in the order they came), those out of time are dropped.
 */
static void
release_held(struct dp *dp, struct port_dpdk *pd, uint64_t now)
{
	struct rte_mbuf *out[HOLD_MAX];
	unsigned k = 0, kept = 0;

	if (pd->n_held == 0 || (pd->edge.st.arp_learnt == pd->held_learnt &&
				now < pd->held[0].until_ns))
		return;
	pd->held_learnt = pd->edge.st.arp_learnt;
	for (unsigned i = 0; i < pd->n_held; i++) {
		struct held h = pd->held[i];
		unsigned k0 = k;

		if (try_send(dp, pd, h.m, now, out, &k) == 0) {
			pd->tx_held += k > k0;
		} else if (now >= h.until_ns) {
			rte_pktmbuf_free(h.m);
			pd->tx_unresolved++;
		} else {
			pd->held[kept++] = h;
		}
	}
	pd->n_held = kept;
	eth_send(pd, pd->io_queue, out, (uint16_t)k);
}

/* io lcore: send what workers could not address, ask for it, hold it. */
static unsigned
drain_unresolved(struct dp *dp, struct port_dpdk *pd, uint64_t now)
{
	struct rte_mbuf *m[32], *out[32];
	unsigned n, k = 0;

	release_held(dp, pd, now);
	n = rte_ring_dequeue_burst(pd->unresolved, (void **)m, 32, NULL);
	for (unsigned i = 0; i < n; i++) {
		int r = try_send(dp, pd, m[i], now, out, &k);

		if (r == -EAGAIN) {
			hold(pd, m[i], now);
		} else if (r) {
			rte_pktmbuf_free(m[i]); /* no route */
			pd->tx_unresolved++;
		}
	}
	eth_send(pd, pd->io_queue, out, (uint16_t)k);
	return n;
}

static uint16_t
dpdk_rx_burst(struct dp *dp, struct rte_mbuf **pkts, uint16_t n, int wait_ms)
{
	struct port_dpdk *pd = dp->port_state;
	struct rte_mbuf *raw[DP_RX_BURST], *replies[DP_RX_BURST];
	uint64_t now = fc_now_ns();
	uint16_t got = 0, nr = 0, k;
	unsigned work = drain_unresolved(dp, pd, now);

	if (n > DP_RX_BURST)
		n = DP_RX_BURST;
	k = rte_eth_rx_burst(pd->port, pd->next_rxq, raw, n);
	pd->next_rxq = (uint16_t)((pd->next_rxq + 1) % pd->n_rxq);
	/* A poll-mode driver: the io lcore spins, unless told to nap once
	 * the port has been quiet a while: at the end of a sweep of its
	 * queues, never in a busy stretch, so that a packet back waits one
	 * nap at most. */
	if (k || work || pd->n_held)
		pd->busy_ns = now;
	else if (dp->conf.io_idle_us && wait_ms && pd->next_rxq == 0 &&
		 now - pd->busy_ns > IDLE_NS)
		rte_delay_us_sleep(dp->conf.io_idle_us);
	/* Frames come from memory the NIC wrote: ask for them ahead. */
	for (uint16_t i = 0; i < k && i < PREFETCH_AHEAD; i++)
		rte_prefetch0(rte_pktmbuf_mtod(raw[i], void *));
	for (uint16_t i = 0; i < k; i++) {
		struct rte_mbuf *m = raw[i];
		struct dp_pkt_meta *pm = dp_pkt_meta(m);
		struct dp_udp_view v;
		size_t rl = 0;

		if (i + PREFETCH_AHEAD < k)
			rte_prefetch0(rte_pktmbuf_mtod(raw[i + PREFETCH_AHEAD],
						       void *));
		if (m->nb_segs > 1) {
			pd->rx_multiseg++;
			rte_pktmbuf_free(m);
			continue;
		}
		switch (dp_edge_input(&pd->edge, rte_pktmbuf_mtod(m, uint8_t *),
				      rte_pktmbuf_data_len(m),
				      rx_csum_ok(m) & pd->rx_csum, now, &v,
				      &rl)) {
		case DP_EDGE_UDP:
			rte_pktmbuf_adj(m, (uint16_t)v.off);
			rte_pktmbuf_trim(
				m, (uint16_t)(rte_pktmbuf_data_len(m) - v.len));
			pm->rx_ns = now;
			pm->remote_ip = v.src_ip;
			pm->remote_port = rte_cpu_to_be_16(v.src_port);
			pm->local_port = v.dst_port;
			pm->sock = -1;
			pm->remote_mac = v.src_mac;
			pm->hdr_len = (uint8_t)v.off;
			pkts[got++] = m;
			break;
		case DP_EDGE_REPLY:
			rte_pktmbuf_trim(
				m, (uint16_t)(rte_pktmbuf_data_len(m) - rl));
			replies[nr++] = m;
			break;
		default:
			rte_pktmbuf_free(m);
		}
	}
	eth_send(pd, pd->io_queue, replies, nr);
	return got;
}

static uint16_t
dpdk_tx_burst(struct dp *dp, unsigned queue, struct rte_mbuf **pkts, uint16_t n)
{
	struct port_dpdk *pd = dp->port_state;
	struct rte_mbuf *out[DP_RX_BURST];
	uint16_t sent = 0;

	for (uint16_t i = 0; i < n;) {
		uint16_t k = 0;

		for (; i < n && k < DP_RX_BURST; i++) {
			struct rte_mbuf *m = pkts[i];
			const struct dp_pkt_meta *pm = dp_pkt_meta(m);

			if (rte_is_zero_ether_addr(&pm->remote_mac)) {
				/* Not heard from yet: the io lcore asks (what
				 * it cannot send, it counts). */
				if (rte_ring_enqueue(pd->unresolved, m) != 0)
					rte_pktmbuf_free(m);
				else
					sent++;
				continue;
			}
			if (!frame_up(pd, m, &pm->remote_mac)) {
				rte_pktmbuf_free(m);
				continue;
			}
			out[k++] = m;
		}
		sent += eth_send(pd, (uint16_t)queue, out, k);
	}
	return sent;
}

/* io lcore: UDP to no port of ours gets an ICMP port unreachable (what
 * a host's kernel does; the socket port's does it), within the edge's
 * rate. m is the datagram dpdk_rx_burst handed on, its headers still in
 * front of it. */
static void
dpdk_no_flow(struct dp *dp, struct rte_mbuf *m)
{
	struct port_dpdk *pd = dp->port_state;
	size_t hdr = dp_pkt_meta(m)->hdr_len;
	size_t len = hdr + rte_pktmbuf_data_len(m), n = 0;
	size_t need = RTE_MIN(len + 28, (size_t)DP_ICMP_ERR_FRAME);
	uint8_t *f = (uint8_t *)rte_pktmbuf_prepend(m, (uint16_t)hdr);

	/* The error is longer than the datagram by its headers (28 bytes),
	 * up to the quote's limit: in this one segment. */
	if (f && (need <= len || rte_pktmbuf_tailroom(m) >= need - len))
		n = dp_edge_port_unreachable(&pd->edge, f, len, fc_now_ns());
	if (n == 0) {
		rte_pktmbuf_free(m);
		return;
	}
	m->data_len = (uint16_t)n;
	m->pkt_len = (uint32_t)n;
	eth_send(pd, pd->io_queue, &m, 1);
}

static void
dpdk_stats(struct dp *dp, struct dp_stats *st)
{
	const struct port_dpdk *pd = dp->port_state;
	const struct dp_edge_stats *e = &pd->edge.st;

	st->edge = true;
	st->rx_short = e->rx_short;
	st->rx_bad_ip = e->rx_bad_ip + e->rx_bad_udp;
	st->rx_bad_csum = e->rx_bad_ip_csum + e->rx_bad_udp_csum;
	st->rx_fragments = e->rx_fragments;
	st->rx_not_ours = e->rx_not_ours;
	st->rx_other = e->rx_other_type + e->rx_other_proto + pd->rx_multiseg;
	st->arp_replies = e->arp_replies;
	st->arp_ignored = e->arp_ignored;
	st->icmp_echo = e->icmp_echo;
	st->icmp_unreach = e->icmp_unreach;
	st->icmp_limited = e->icmp_limited;
	st->tx_unresolved = pd->tx_unresolved;
	st->tx_held = pd->tx_held;
	st->rx_ip_csum_hw = pd->rx_csum & DP_RX_IP_CSUM_OK;
	st->rx_udp_csum_hw = pd->rx_csum & DP_RX_UDP_CSUM_OK;
	st->tx_ip_csum_hw = pd->tx_csum & DP_TX_IP_CSUM;
	st->tx_udp_csum_hw = pd->tx_csum & DP_TX_UDP_CSUM;
}

const struct dp_port_ops dp_port_dpdk = {
	.name = "dpdk",
	.init = dpdk_init,
	.fini = dpdk_fini,
	.rx_burst = dpdk_rx_burst,
	.tx_burst = dpdk_tx_burst,
	.no_flow = dpdk_no_flow,
	.stats = dpdk_stats,
};
