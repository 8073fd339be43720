/*
 * dataplane.h - focusd's packet plane: ports, RTP, the flow table and the
 * io lcore.
 *
 * One struct dp per process. The control thread creates it after EAL init
 * (dp_alloc), opens an RTP endpoint per leg (dp_ep_open: a local UDP port
 * from the configured range, bound in socket mode) and installs a flow for
 * it on the io lcore (dp_flow_add/del: messages on the io channel; the flow
 * table is written only by the io lcore).
 *
 * The io lcore (dp_io_poll) receives bursts from the port, validates them,
 * looks the local UDP port up in the flow table and hands each mbuf to the
 * ring of the worker that owns the leg. What a worker receives is the same in
 * every port mode: an mbuf whose data is the UDP payload, with a
 * struct dp_pkt_meta in its private area. Workers transmit mbufs built the
 * same way with dp_tx_burst() on their own TX queue.
 *
 * Threads:
 *   dp_alloc, dp_free, dp_ep_open, dp_ep_close, dp_flow_add, dp_flow_del,
 *   dp_collect, dp_stats_get: control thread only.
 *   dp_io_poll, dp_io_run: the io lcore only.
 *   dp_worker_ring, dp_pool, dp_tx_burst: worker w, on queue w only.
 */
#ifndef FOCUSD_DATAPLANE_H
#define FOCUSD_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "common/common.h"

/* RTP (RFC 3550) header, host byte order. */
struct dp_rtp_hdr {
	uint8_t version;
	bool padding;
	bool extension;
	uint8_t cc;
	bool marker;
	uint8_t pt;
	uint16_t seq;
	uint32_t ts;
	uint32_t ssrc;
	uint16_t hdr_len;     /* fixed header + CSRCs + extension */
	uint16_t payload_len; /* after removing padding */
};

#define DP_RTP_HDR_MIN 12

/*
 * Parse an RTP packet. Returns 0, or -EBADMSG for anything malformed: short,
 * version not 2, CSRC list or extension past the end, bad padding count.
 * len is at most a UDP payload (< 65536). Borrows buf.
 */
int dp_rtp_parse(const uint8_t *buf, size_t len, struct dp_rtp_hdr *h);
/*
 * The header extension element `id` (RFC 8285, one- or two-byte form) of
 * a packet dp_rtp_parse accepted into h: 0 with its data (borrowed from
 * buf) and length, or -ENOENT.
 */
int dp_rtp_ext_find(const uint8_t *buf, const struct dp_rtp_hdr *h, uint8_t id,
		    const uint8_t **data, unsigned *len);
/* Write a 12-byte header (no CSRC, no extension); returns 12 or -ENOSPC. */
int dp_rtp_build(uint8_t *buf, size_t cap, uint8_t pt, bool marker,
		 uint16_t seq, uint32_t ts, uint32_t ssrc);

/* An RTCP reception report block (RFC 3550 6.4.1), host order. */
struct dp_rtcp_block {
	uint32_t ssrc;	  /* the source reported on */
	uint8_t fraction; /* lost since the last report, of 256 */
	int32_t lost;	  /* cumulative, 24-bit signed */
	uint32_t ext_seq; /* extended highest sequence number */
	uint32_t jitter;  /* in RTP timestamp units */
	uint32_t lsr;	  /* middle 32 bits of the last SR's NTP time */
	uint32_t dlsr;	  /* since that SR, in 1/65536 s */
};

/* What a compound RTCP packet says (dp_rtcp_parse). */
struct dp_rtcp_info {
	uint32_t ssrc; /* its sender's */
	bool sr;       /* a sender report: the four below */
	uint64_t ntp;  /* NTP time, 32.32 */
	uint32_t rtp_ts, packets, octets;
	bool rr;	 /* a receiver report */
	bool have_block; /* a block about the SSRC asked for: */
	struct dp_rtcp_block block;
	bool bye;
};

/*
 * A compound RTCP packet (RFC 3550 6.1): every packet's version, length
 * and report count checked against what holds them; the first must be
 * an SR or RR. Reads the SR's sender info and the report block about
 * SSRC `about`. 0, or -EBADMSG.
 */
int dp_rtcp_parse(const uint8_t *buf, size_t len, uint32_t about,
		  struct dp_rtcp_info *out);
/*
 * A compound packet of an SR (sr given: its ntp, rtp_ts, packets and
 * octets) or else an RR, from ssrc, with the report block blk (or none),
 * and an SDES with the CNAME cname (at most 255 bytes). Its length, or
 * -ENOSPC.
 */
int dp_rtcp_build(uint8_t *buf, size_t cap, uint32_t ssrc,
		  const struct dp_rtcp_info *sr,
		  const struct dp_rtcp_block *blk, const char *cname);

/*
 * What travels with every RTP mbuf, in its private area. Addresses and
 * ports are IPv4, network byte order.
 */
struct dp_pkt_meta {
	uint64_t rx_ns;	      /* receive time (rx only) */
	uint32_t remote_ip;   /* rx: source; tx: destination */
	uint16_t remote_port; /* rx: source; tx: destination */
	uint16_t local_port;  /* rx: destination; tx: source */
	uint32_t slot;	      /* rx: the leg's endpoint slot */
	int32_t sock;	      /* socket port only: the endpoint's socket */
	bool rtcp;	      /* RTCP: to or from the endpoint's odd port */
	uint8_t hdr_len;      /* DPDK port rx: header bytes before it */
	/* DPDK port: rx, the sender's Ethernet address (the peer, or the
	 * router in between); tx, where to send (zero: not known yet). */
	struct rte_ether_addr remote_mac;
};

static inline struct dp_pkt_meta *
dp_pkt_meta(struct rte_mbuf *m)
{
	return (struct dp_pkt_meta *)rte_mbuf_to_priv(m);
}

enum dp_kind {
	DP_SOCKET = 0,
	DP_DPDK,
	DP_NULL, /* benchmarks and tests: no I/O, transmit drops */
};

#define DP_NEIGHBOURS_MAX 8

struct dp_conf {
	enum dp_kind kind;
	struct in_addr rtp_addr; /* address RTP sockets bind to */
	uint16_t port_lo;	 /* RTP port range, even numbers used */
	uint16_t port_hi;
	unsigned n_workers;
	unsigned n_mbufs; /* pool size; 0 picks a default */
	int efd;	  /* eventfd for replies to the control thread */
	/* DP_DPDK: rtp_addr is ours on the port, in the on-link prefix
	 * rtp_mask, other networks through gateway (0: none); static
	 * neighbours (--neighbours). Network order. */
	uint32_t rtp_mask;
	uint32_t gateway;
	/* DPDK port: once quiet for 1 ms, the io lcore sleeps this long
	 * after each empty sweep of its queues (0: it spins). */
	unsigned io_idle_us;
	unsigned n_neighbours;
	struct {
		uint32_t ip;
		struct rte_ether_addr mac;
	} neighbours[DP_NEIGHBOURS_MAX];
	/* DP_NULL only: what workers transmit goes onto this ring (the
	 * caller dequeues and frees it) instead of being freed; what does
	 * not fit is freed. NULL: all freed. For tests. */
	struct rte_ring *null_tx;
};

/* Is ip the network or broadcast address of addr's on-link prefix mask
 * (all network order)? Never below /31: /31 and /32 have neither. */
bool dp_net_or_bcast(uint32_t ip, uint32_t addr, uint32_t mask);

/* The io lcore's counters, read by the control thread (dp_stats_get). */
struct dp_stats {
	uint64_t rx_packets;
	uint64_t rx_no_flow;   /* no leg on that port */
	uint64_t rx_malformed; /* not RTP v2 */
	uint64_t rx_ring_full; /* worker ring full */
	uint64_t rx_errors;    /* port receive errors */
	uint64_t rx_nombuf;
	uint64_t flows; /* flows installed now */
	/* DPDK port (edge true): the IPv4 edge's drops and answers. */
	bool edge;
	uint64_t rx_short, rx_bad_ip, rx_bad_csum, rx_fragments;
	uint64_t rx_not_ours, rx_other;
	uint64_t arp_replies, arp_ignored, icmp_echo;
	uint64_t icmp_unreach, icmp_limited; /* port unreachables: sent,
						over the rate */
	uint64_t tx_unresolved; /* no neighbour known in time: dropped */
	uint64_t tx_held;	/* sent once ARP had its answer */
	/* The checksums the NIC computes (tx) and checks (rx). */
	bool rx_ip_csum_hw, rx_udp_csum_hw, tx_ip_csum_hw, tx_udp_csum_hw;
};

struct dp;

/* An RTP endpoint: one local port of the range (one socket in socket mode). */
struct dp_ep {
	uint32_t slot;	     /* index of the port in the range */
	uint16_t local_port; /* host order, even; RTCP on the next one */
	int sock;	     /* socket port: the bound UDP socket; else -1 */
	int rtcp_sock;	     /* socket port: RTCP's, on local_port + 1 */
};

int dp_alloc(struct dp **dpp, const struct dp_conf *conf);
/* After every lcore has stopped. */
void dp_free(struct dp *dp);

/* Slots are reused oldest-freed first, so late packets find nothing. */
int dp_ep_open(struct dp *dp, struct dp_ep *ep);
void dp_ep_close(struct dp *dp, struct dp_ep *ep);
uint32_t dp_ep_slots(const struct dp *dp);
struct in_addr dp_rtp_addr(const struct dp *dp);

/*
 * Install / remove the flow of endpoint ep towards worker `worker` on the
 * io lcore. done(arg, err) runs on the control thread once the io lcore has
 * acted on it; after dp_flow_del's done(), the io lcore holds no reference
 * to the endpoint and no new packet of it will reach any worker.
 */
typedef void(dp_done_h)(void *arg, int err);
int dp_flow_add(struct dp *dp, const struct dp_ep *ep, unsigned worker,
		dp_done_h *done, void *arg);
int dp_flow_del(struct dp *dp, const struct dp_ep *ep, dp_done_h *done,
		void *arg);
/* Steer an installed flow to another worker (a leg moved conference). */
int dp_flow_move(struct dp *dp, const struct dp_ep *ep, unsigned worker,
		 dp_done_h *done, void *arg);
/* Control thread: run done() of every reply from the io lcore. */
void dp_collect(struct dp *dp);
/* Control thread: messages sent to the io lcore and not answered yet. */
unsigned dp_in_flight(const struct dp *dp);
/* Control thread: a snapshot of the io counters. */
typedef void(dp_stats_h)(void *arg, const struct dp_stats *st);
int dp_stats_get(struct dp *dp, dp_stats_h *h, void *arg);

/* The io lcore. dp_io_poll does one bounded pass. */
void dp_io_poll(struct dp *dp);
int dp_io_run(void *dp);
void dp_io_stop(struct dp *dp);

/* Workers. */
struct rte_ring *dp_worker_ring(struct dp *dp, unsigned worker);
struct rte_mempool *dp_pool(struct dp *dp);
/*
 * Send n mbufs on queue `worker`; consumes all of them (those the port
 * could not send are freed and counted). Returns how many were sent.
 */
uint16_t dp_tx_burst(struct dp *dp, unsigned worker, struct rte_mbuf **pkts,
		     uint16_t n);
#endif
