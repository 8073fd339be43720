/*
 * dpbench.c - what one io lcore of the DPDK port sustains: packets per
 * second and nanoseconds per packet through its stages.
 *
 * The port is a real ethdev: the ring PMD (net_ring, rte_eth_from_rings)
 * over one RX ring and a TX ring per queue (one per worker and the io
 * lcore's), created before the dataplane, so dp_alloc with DP_DPDK takes it
 * as its first ethdev and configures, starts and polls it exactly as it
 * would a NIC. Its RX is an rte_ring the bench fills; its TX rings (where
 * ARP and ICMP replies go) the bench empties. Endpoints are opened and
 * their flows installed through the control channel (dp_ep_open,
 * dp_flow_add, applied by dp_io_poll, dp_collect), spread round-robin over
 * the workers.
 *
 * Input is built once up front: a table of frames per traffic kind, each
 * Ethernet/IPv4/UDP/RTP (a 12-byte RTP header and 160 bytes of PCMU: 172
 * bytes of UDP payload, 214-byte frames) from a peer of its flow to our
 * address and the flow's port, with valid IPv4 and UDP checksums, flows
 * drawn at random for each packet (traffic of many legs interleaves).
 *
 * Each batch (1024 frames, 32 bursts of 32) has an untimed part and a
 * timed part, kept apart:
 *   untimed: mbufs taken from the dataplane's pool, the next frames of
 *            the table copied into them (the io path consumes and trims
 *            them, so each batch needs fresh ones), put on the RX ring;
 *   timed:   the stage measured, run over the batch (below);
 *   untimed: the worker rings and TX rings emptied, the mbufs freed, and
 *            what reached the workers counted and checked against what
 *            the frames should have done.
 * Just written, the frames sit in the core's caches (L2: a batch is about
 * 400 KB of mbufs) as they would on a NIC that writes into the cache; the
 * "cold" run flushes each frame's bytes from every level (clflush) before
 * the timed part, as after DMA to memory, leaving the mbuf header warm (a
 * real PMD writes it while receiving; the ring PMD does not touch it).
 *
 * Stages (each its own timed run over the same kind of batch):
 *   io pass     dp_io_poll: the control channel's check, the port's
 *               rx_burst (the unresolved ring, the ethdev's receive, the
 *               IPv4 edge, trimming to the datagram, the meta), replies
 *               sent, dp_classify onto the worker rings. The figure.
 *   port rx     the port's rx_burst alone (io pass less classification).
 *   classify    dp_classify alone, on bursts the port made untimed.
 *   ethdev rx   rte_eth_rx_burst alone: the ring PMD's part, which a NIC's
 *               PMD replaces with its own (not in this figure).
 *   edge alone  dp_edge_input on the batch's frames in place (in the same
 *               mbufs, filled the same way): the lower bound of the edge.
 * and, to say where the edge's time goes, three things the io path does
 * not do (marked [sketch]; none of them changes dataplane/):
 *   edge, prefetching ahead: the edge alone, each frame's lines
 *               prefetched 4 frames before dp_edge_input reads it;
 *   checksums alone: just the two sums the edge checks (IPv4 header; UDP
 *               with its pseudo-header), with DPDK's 2-byte loop as edge.c
 *               uses it (rte_raw_cksum); and the same sums in 8-byte words.
 *
 * Scenarios, the io pass in each, the other stages where they say
 * something new:
 *  1. valid RTP to open flows: 1000 legs over 2 workers; every stage;
 *  2. 90% of 1. and 10% other traffic, 2% each: ARP requests for our
 *     address from 16 neighbours, ICMP echo requests (both answered on
 *     the io lcore's TX queue), UDP with a bad checksum, UDP to a port
 *     with no flow, garbage (half IPv6, half IPv4 type with random
 *     bytes); port rx, classify;
 *  3. 1. with cold frames; port rx, the edge and the sketches;
 *  4. valid RTP to 20000 legs (a bigger flow table in play); classify;
 *  5. 1. with every flow moved to worker 0 (dp_flow_move): bursts go to
 *     one ring in one enqueue, not interleaved over two; classify;
 * then an idle pass (nothing received: the fixed cost of a pass, which a
 * partly filled burst shares among fewer packets), and what reading the
 * port's clock once a pass costs.
 *
 * Time is the polling thread's CPU time (an io lcore has its core to
 * itself; this machine is shared), less the cost of reading that clock,
 * measured at start; wall time is in the JSON too. Each figure is the
 * median of the repetitions (the minimum in the JSON). Mpps = 1000 / ns.
 *
 * usage: dpbench [--quick] [--json PATH] [--workers N] [--flows N]
 *                [--packets N] [--reps N] [--scenario N]... [--verbose]
 *   --quick       short runs (a smoke test: rough figures)
 *   --json PATH   default bench/results/dpbench.json
 *   --workers N   worker rings (default 2)
 *   --flows N     legs in the main scenarios (default 1000)
 *   --packets N   packets per repetition instead of the default
 *   --reps N      repetitions per figure instead of the default
 *   --scenario N  run only these (1-5, repeatable)
 *   --verbose     the edge's and the io lcore's counters per scenario
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_eth_ring.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_udp.h>
#include <rte_arp.h>
#include <rte_icmp.h>
#ifdef RTE_ARCH_X86
#include <immintrin.h>
#endif

#include "bench/benchenv.h"
#include "dataplane/dp_priv.h"
#include "dataplane/edge.h"

#define BATCH	     1024 /* frames per timed part */
#define BURST	     DP_RX_BURST
#define FRAME_MAX    256 /* stride of the frame tables */
#define RTP_PL	     172 /* 12-byte header + 160 bytes of PCMU */
#define ICMP_PL	     56	 /* ping's default */
#define N_TEMPLATES  8192
#define PORT_LO	     10000
#define PORT_HI	     59999
#define FLOWS_BIG    20000
#define N_NEIGHBOURS 16
#define TX_RING	     1024
#define TARGET_MPPS  5.0
#define MAX_REPS     15
#define PF_AHEAD     4 /* frames the prefetching sketch reaches ahead */

/* What a frame of the tables is, and what the io path should make of it. */
enum kind {
	K_RTP,	   /* to an open flow: reaches its worker */
	K_NOFLOW,  /* UDP for us, no flow on that port */
	K_ARP,	   /* request for our address: answered */
	K_ICMP,	   /* echo request: answered */
	K_BADCSUM, /* UDP checksum wrong */
	K_GARBAGE, /* IPv6, or IPv4 type with random bytes */
	K_COUNT,
};

static const char *const kind_names[K_COUNT] = {
	"rtp", "no_flow", "arp", "icmp", "bad_csum", "garbage",
};

struct frames {
	unsigned n, next;
	uint16_t *len;
	uint8_t *kind;
	uint8_t *data; /* n * FRAME_MAX */
};

enum stage {
	ST_IO,	     /* dp_io_poll */
	ST_PORT_RX,  /* the port's rx_burst */
	ST_CLASSIFY, /* dp_classify */
	ST_ETHDEV,   /* rte_eth_rx_burst */
	ST_EDGE,     /* dp_edge_input */
	ST_EDGE_PF,  /* dp_edge_input, frames prefetched ahead (a sketch) */
	ST_CSUM,     /* the edge's two checksums, as edge.c sums them */
	ST_CSUM64,   /* the same sums with 8-byte loads (a sketch) */
	ST_COUNT,
};

static const char *const stage_names[ST_COUNT] = {
	"io_pass",    "port_rx",       "classify",	  "ethdev_rx",
	"edge_alone", "edge_prefetch", "checksums_alone", "checksums_8byte",
};

static const char *const stage_labels[ST_COUNT] = {
	"io pass (dp_io_poll)",
	"port rx (ethdev + edge + trim)",
	"classify (dp_classify)",
	"ethdev rx (ring PMD)",
	"edge alone (dp_edge_input)",
	"  edge, prefetching ahead [sketch]",
	"  checksums alone (edge.c's sums)",
	"  checksums, 8-byte loads [sketch]",
};

/* Which stages each scenario times (the io pass always). */
static const unsigned scen_stages[] = {
	[0] = 1u << ST_PORT_RX | 1u << ST_CLASSIFY | 1u << ST_ETHDEV |
	      1u << ST_EDGE | 1u << ST_EDGE_PF | 1u << ST_CSUM |
	      1u << ST_CSUM64,
	[1] = 1u << ST_PORT_RX | 1u << ST_CLASSIFY,
	[2] = 1u << ST_PORT_RX | 1u << ST_EDGE | 1u << ST_EDGE_PF |
	      1u << ST_CSUM | 1u << ST_CSUM64,
	[3] = 1u << ST_CLASSIFY,
	[4] = 1u << ST_CLASSIFY,
};

struct figure {
	bool done;
	double ns, ns_min, wall_ns; /* per packet: median, min; wall median */
	unsigned long long packets; /* per repetition */
	unsigned reps;
	bool checked; /* what reached the workers was what was due */
};

#define N_SCEN 5

struct scen_res {
	struct figure fig[ST_COUNT];
	unsigned long long kinds[K_COUNT]; /* frames sent, one repetition */
	struct dp_stats st;		   /* the io lcore's, after it */
};

/* Everything measured, for the JSON. */
struct all {
	bool quick, run[N_SCEN];
	unsigned workers, flows, reps;
	unsigned long long packets;
	double clock_ns, idle_pass_ns, idle_pass_min_ns, now_ns, total_s;
	struct scen_res s[N_SCEN];
};

static const struct {
	const char *key, *what;
} scen_info[N_SCEN] = {
	{"rtp", "valid RTP to open flows"},
	{"mix", "90% RTP, 10% ARP/ICMP/bad checksum/no flow/garbage"},
	{"rtp_cold", "valid RTP, frames flushed from the caches"},
	{"rtp_20k_flows", "valid RTP, 20000 legs"},
	{"rtp_one_worker", "valid RTP, every flow on worker 0"},
};

static struct {
	struct dp *dp;
	struct rte_mempool *pool;
	uint16_t port;
	struct rte_ether_addr mac;
	uint32_t addr, mask; /* ours, network order */
	unsigned n_workers, n_tx;
	struct rte_ring *rx, **tx;
	struct dp_ep *eps;
	unsigned n_eps;
	struct dp_edge edge; /* the edge alone's own */
	bool verbose;
	int flow_err;
} B;

/* ---- clocks ----------------------------------------------------------- */

static double
mono_ns(void)
{
	return (double)fc_now_ns();
}

/* What reading the thread CPU clock twice costs (a system call here). */
static double
clock_overhead_ns(void)
{
	double v[21];

	for (unsigned r = 0; r < FC_ARRAY_SIZE(v); r++) {
		double t0 = bench_cpu_ns(), t1 = t0;

		for (int i = 0; i < 1000; i++)
			t1 = bench_cpu_ns();
		v[r] = (t1 - t0) / 1000;
	}
	return bench_median(v, FC_ARRAY_SIZE(v));
}

/* ---- frames ------------------------------------------------------------ */

static void
peer_mac(struct rte_ether_addr *mac, unsigned i)
{
	memset(mac, 0, sizeof(*mac));
	mac->addr_bytes[0] = 0x02; /* locally administered, unicast */
	mac->addr_bytes[3] = (uint8_t)(i >> 16);
	mac->addr_bytes[4] = (uint8_t)(i >> 8);
	mac->addr_bytes[5] = (uint8_t)i;
}

/* A peer's address in our /16: 10.0.x.y, never ours (10.0.0.1). */
static uint32_t
peer_ip(unsigned i)
{
	return htonl(0x0a000000u | (2 + i));
}

static size_t
eth_header(uint8_t *f, const struct rte_ether_addr *src, uint16_t type)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)f;

	eth->dst_addr = B.mac;
	eth->src_addr = *src;
	eth->ether_type = rte_cpu_to_be_16(type);
	return sizeof(*eth);
}

static struct rte_ipv4_hdr *
ip_header(uint8_t *f, uint32_t src, uint8_t proto, size_t l4_len, uint16_t id)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)f;

	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0xb8;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + l4_len));
	ip->packet_id = rte_cpu_to_be_16(id);
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = proto;
	ip->src_addr = src;
	ip->dst_addr = B.addr;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	return ip;
}

/* Ethernet/IPv4/UDP/RTP from flow `flow`'s peer to dport. */
static size_t
rtp_frame(uint8_t *f, unsigned flow, uint16_t dport, unsigned seq,
	  uint32_t *rng, bool bad_csum)
{
	struct rte_ether_addr mac;
	struct rte_ipv4_hdr *ip;
	struct rte_udp_hdr *udp;
	uint8_t *rtp;
	size_t off;

	peer_mac(&mac, flow);
	off = eth_header(f, &mac, RTE_ETHER_TYPE_IPV4);
	ip = ip_header(f + off, peer_ip(flow), IPPROTO_UDP,
		       sizeof(*udp) + RTP_PL, (uint16_t)seq);
	udp = (struct rte_udp_hdr *)(ip + 1);
	udp->src_port =
		rte_cpu_to_be_16((uint16_t)(20000 + 2 * (flow % 20000)));
	udp->dst_port = rte_cpu_to_be_16(dport);
	udp->dgram_len = rte_cpu_to_be_16(sizeof(*udp) + RTP_PL);
	udp->dgram_cksum = 0;
	rtp = (uint8_t *)(udp + 1);
	if (dp_rtp_build(rtp, RTP_PL, 0, false, (uint16_t)seq, seq * 160,
			 0x10000u + flow) != DP_RTP_HDR_MIN)
		abort();
	for (size_t i = DP_RTP_HDR_MIN; i < RTP_PL; i++)
		rtp[i] = (uint8_t)bench_rng_next(rng);
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	if (bad_csum)
		udp->dgram_cksum ^= 0x0101;
	return off + sizeof(*ip) + sizeof(*udp) + RTP_PL;
}

static size_t
arp_frame(uint8_t *f, unsigned neighbour)
{
	struct rte_ether_addr mac;
	struct rte_arp_hdr *arp;
	size_t off;

	memset(f, 0, DP_ARP_FRAME);
	peer_mac(&mac, 0x800000 + neighbour);
	off = eth_header(f, &mac, RTE_ETHER_TYPE_ARP);
	memset(f, 0xff, RTE_ETHER_ADDR_LEN); /* broadcast */
	arp = (struct rte_arp_hdr *)(f + off);
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	arp->arp_data.arp_sha = mac;
	arp->arp_data.arp_sip = peer_ip(60000 + neighbour);
	arp->arp_data.arp_tip = B.addr;
	return DP_ARP_FRAME;
}

static size_t
icmp_frame(uint8_t *f, unsigned peer, unsigned seq, uint32_t *rng)
{
	struct rte_ether_addr mac;
	struct rte_ipv4_hdr *ip;
	struct rte_icmp_hdr *icmp;
	uint8_t *pl;
	size_t off;

	peer_mac(&mac, peer);
	off = eth_header(f, &mac, RTE_ETHER_TYPE_IPV4);
	ip = ip_header(f + off, peer_ip(peer), IPPROTO_ICMP,
		       sizeof(*icmp) + ICMP_PL, (uint16_t)seq);
	icmp = (struct rte_icmp_hdr *)(ip + 1);
	icmp->icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
	icmp->icmp_code = 0;
	icmp->icmp_cksum = 0;
	icmp->icmp_ident = rte_cpu_to_be_16((uint16_t)peer);
	icmp->icmp_seq_nb = rte_cpu_to_be_16((uint16_t)seq);
	pl = (uint8_t *)(icmp + 1);
	for (size_t i = 0; i < ICMP_PL; i++)
		pl[i] = (uint8_t)bench_rng_next(rng);
	icmp->icmp_cksum =
		(uint16_t)~rte_raw_cksum(icmp, sizeof(*icmp) + ICMP_PL);
	return off + sizeof(*ip) + sizeof(*icmp) + ICMP_PL;
}

static size_t
garbage_frame(uint8_t *f, unsigned peer, uint32_t *rng)
{
	struct rte_ether_addr mac;
	size_t off, len = 64 + bench_rng_next(rng) % (FRAME_MAX - 64);
	bool v6 = bench_rng_next(rng) & 1;

	peer_mac(&mac, peer);
	off = eth_header(f, &mac,
			 v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
	for (size_t i = off; i < len; i++)
		f[i] = (uint8_t)bench_rng_next(rng);
	if (v6)
		f[off] = 0x60;
	return len;
}

/*
 * n frames; pct[k] percent of them of kind k (the rest RTP), in a random
 * order; RTP to flows drawn from the first `flows` endpoints.
 */
static int
frames_build(struct frames *fr, unsigned n, const unsigned pct[K_COUNT],
	     unsigned flows, uint32_t seed)
{
	uint32_t rng = seed;
	unsigned k = 0;

	memset(fr, 0, sizeof(*fr));
	fr->n = n;
	fr->len = calloc(n, sizeof(*fr->len));
	fr->kind = calloc(n, sizeof(*fr->kind));
	fr->data = calloc(n, FRAME_MAX);
	if (!fr->len || !fr->kind || !fr->data)
		return ENOMEM;
	for (int t = 1; t < K_COUNT; t++)
		for (unsigned i = 0; i < n * pct[t] / 100; i++)
			fr->kind[k++] = (uint8_t)t;
	while (k < n)
		fr->kind[k++] = K_RTP;
	for (unsigned i = n - 1; i > 0; i--) { /* Fisher-Yates */
		unsigned j = bench_rng_next(&rng) % (i + 1);
		uint8_t x = fr->kind[i];

		fr->kind[i] = fr->kind[j];
		fr->kind[j] = x;
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t *f = fr->data + (size_t)i * FRAME_MAX;
		unsigned flow = bench_rng_next(&rng) % flows;
		uint16_t noflow = (uint16_t)(PORT_HI - 1); /* never opened */
		size_t len = 0;

		switch (fr->kind[i]) {
		case K_RTP:
			len = rtp_frame(f, flow, B.eps[flow].local_port, i,
					&rng, false);
			break;
		case K_NOFLOW:
			len = rtp_frame(f, flow, noflow, i, &rng, false);
			break;
		case K_BADCSUM:
			len = rtp_frame(f, flow, B.eps[flow].local_port, i,
					&rng, true);
			break;
		case K_ARP:
			len = arp_frame(f, bench_rng_next(&rng) % N_NEIGHBOURS);
			break;
		case K_ICMP:
			len = icmp_frame(f, flow, i, &rng);
			break;
		case K_GARBAGE:
			len = garbage_frame(f, flow, &rng);
			break;
		}
		fr->len[i] = (uint16_t)len;
	}
	return 0;
}

static void
frames_free(struct frames *fr)
{
	free(fr->len);
	free(fr->kind);
	free(fr->data);
}

/* ---- the port and the dataplane ---------------------------------------- */

static void
flow_done(void *arg, int err)
{
	(void)arg;
	if (err && B.flow_err == 0)
		B.flow_err = err;
}

/* Run the io lcore until the control channel is quiet. */
static void
settle(void)
{
	while (dp_in_flight(B.dp)) {
		dp_io_poll(B.dp);
		dp_collect(B.dp);
	}
	dp_collect(B.dp);
}

static void
stats_h(void *arg, const struct dp_stats *st)
{
	*(struct dp_stats *)arg = *st;
}

static void
stats_get(struct dp_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (dp_stats_get(B.dp, stats_h, st) == 0)
		settle();
}

static int
setup(unsigned n_workers, unsigned n_eps)
{
	struct dp_conf dc = {0};
	struct rte_eth_dev_info info;
	char name[RTE_RING_NAMESIZE];
	int port, err;

	B.n_workers = n_workers;
	B.n_tx = n_workers + 1; /* the port wants one per worker + io */
	B.tx = calloc(B.n_tx, sizeof(*B.tx));
	B.eps = calloc(n_eps, sizeof(*B.eps));
	if (!B.tx || !B.eps)
		return ENOMEM;
	B.rx = rte_ring_create("dpb.rx", BATCH * 2, SOCKET_ID_ANY,
			       RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (B.rx == NULL)
		return rte_errno;
	for (unsigned q = 0; q < B.n_tx; q++) {
		snprintf(name, sizeof(name), "dpb.tx%u", q);
		B.tx[q] = rte_ring_create(name, TX_RING, SOCKET_ID_ANY,
					  RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (B.tx[q] == NULL)
			return rte_errno;
	}
	port = rte_eth_from_rings("net_ring_dpbench", &B.rx, 1, B.tx, B.n_tx,
				  rte_socket_id());
	if (port < 0) {
		fprintf(stderr, "dpbench: rte_eth_from_rings: %s\n",
			rte_strerror(rte_errno));
		return rte_errno ? rte_errno : ENODEV;
	}
	B.port = (uint16_t)port;
	if (rte_eth_dev_info_get(B.port, &info) == 0)
		printf("port %u: %s, %u RX / %u TX queues at most\n", B.port,
		       info.driver_name, info.max_rx_queues,
		       info.max_tx_queues);

	inet_pton(AF_INET, "10.0.0.1", &dc.rtp_addr);
	B.addr = dc.rtp_addr.s_addr;
	B.mask = dc.rtp_mask = htonl(0xffff0000u);
	dc.kind = DP_DPDK;
	dc.port_lo = PORT_LO;
	dc.port_hi = PORT_HI;
	dc.n_workers = n_workers;
	dc.n_mbufs = 16383;
	dc.efd = -1;
	err = dp_alloc(&B.dp, &dc);
	if (err) {
		fprintf(stderr, "dpbench: dataplane: %s\n", strerror(err));
		return err;
	}
	B.pool = dp_pool(B.dp);
	if ((err = -rte_eth_macaddr_get(B.port, &B.mac)))
		return err;
	dp_edge_init(&B.edge, B.addr, B.mask, 0, &B.mac);

	for (unsigned i = 0; i < n_eps; i++) {
		if ((err = dp_ep_open(B.dp, &B.eps[i])))
			return err;
		if ((err = dp_flow_add(B.dp, &B.eps[i], i % n_workers,
				       flow_done, NULL)))
			return err;
		B.n_eps++;
		if (i % 128 == 127)
			settle();
	}
	settle();
	return B.flow_err;
}

/* Every flow to worker w, or back to round-robin (w < 0). */
static int
steer(int w)
{
	for (unsigned i = 0; i < B.n_eps; i++) {
		int err = dp_flow_move(B.dp, &B.eps[i],
				       w < 0 ? i % B.n_workers : (unsigned)w,
				       flow_done, NULL);

		if (err)
			return err;
		if (i % 128 == 127)
			settle();
	}
	settle();
	return B.flow_err;
}

/* ---- sketches of what the edge could do ------------------------------ */

/* Every line of the frame m holds into the caches. */
static inline void
prefetch_frame(struct rte_mbuf *m)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);

	for (unsigned o = 0; o < m->data_len; o += 64)
		rte_prefetch0(p + o);
	rte_prefetch0(p + m->data_len - 1);
}

/* A one's complement sum of n bytes in 8-byte words (RFC 1071 4.2's
 * wider sum: the carries wrap around, byte order does not matter). */
static inline uint64_t
sum64(const void *buf, size_t n, uint64_t sum)
{
	const uint8_t *p = buf;
	uint64_t w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		sum += w;
		sum += sum < w;
	}
	if (n) {
		w = 0;
		memcpy(&w, p, n);
		sum += w;
		sum += sum < w;
	}
	return sum;
}

static inline uint16_t
fold64(uint64_t sum)
{
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/*
 * The two checksums the edge checks on a UDP frame (IPv4 header; UDP
 * over the pseudo-header and the datagram), nothing else: as edge.c sums
 * them (DPDK's 2-byte loop), or with 8-byte loads. True if both hold.
 */
static bool
sums_ok(const uint8_t *f, bool wide)
{
	const struct rte_ipv4_hdr *ip =
		(const struct rte_ipv4_hdr *)(f + RTE_ETHER_HDR_LEN);
	const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)(ip + 1);
	size_t ulen = rte_be_to_cpu_16(udp->dgram_len);
	struct {
		uint32_t src, dst;
		uint8_t zero, proto;
		uint16_t len;
	} __rte_packed ph = {ip->src_addr, ip->dst_addr, 0, IPPROTO_UDP,
			     udp->dgram_len};
	uint32_t s;

	if (ulen > FRAME_MAX)
		return false;
	if (wide)
		return fold64(sum64(ip, sizeof(*ip), 0)) == 0xffff &&
		       fold64(sum64(udp, ulen, sum64(&ph, sizeof(ph), 0))) ==
			       0xffff;
	if (rte_raw_cksum(ip, sizeof(*ip)) != 0xffff)
		return false;
	s = __rte_raw_cksum(&ph, sizeof(ph), 0);
	s = __rte_raw_cksum(udp, ulen, s);
	return __rte_raw_cksum_reduce(s) == 0xffff;
}

/* ---- one batch ---------------------------------------------------------- */

/* Untimed: BATCH fresh mbufs holding the next frames; their kinds counted. */
static int
fill(struct frames *fr, struct rte_mbuf **m, unsigned long long *kinds)
{
	if (rte_pktmbuf_alloc_bulk(B.pool, m, BATCH) != 0)
		return ENOBUFS;
	for (unsigned i = 0; i < BATCH; i++) {
		unsigned t = fr->next;
		uint16_t len = fr->len[t];

		fr->next = (t + 1) % fr->n;
		memcpy(rte_pktmbuf_mtod(m[i], uint8_t *),
		       fr->data + (size_t)t * FRAME_MAX, len);
		m[i]->data_len = len;
		m[i]->pkt_len = len;
		kinds[fr->kind[t]]++;
	}
	return 0;
}

/* Untimed: each frame's bytes out of every cache level. */
static void
flush(struct rte_mbuf **m)
{
#ifdef RTE_ARCH_X86
	for (unsigned i = 0; i < BATCH; i++) {
		const uint8_t *p = rte_pktmbuf_mtod(m[i], const uint8_t *);
		uintptr_t a = (uintptr_t)p & ~(uintptr_t)63;

		for (; a < (uintptr_t)p + m[i]->data_len; a += 64)
			_mm_clflush((const void *)a);
	}
	_mm_mfence();
#else
	(void)m;
#endif
}

static void
put_rx(struct rte_mbuf **m)
{
	if (rte_ring_enqueue_bulk(B.rx, (void **)m, BATCH, NULL) != BATCH)
		abort(); /* the ring holds two batches and is empty now */
}

/* Untimed: empty the worker and TX rings; what reached the workers. */
static unsigned long long
drain(void)
{
	struct rte_mbuf *m[256];
	unsigned long long got = 0;
	unsigned n;

	for (unsigned w = 0; w < B.n_workers; w++) {
		struct rte_ring *r = dp_worker_ring(B.dp, w);

		while ((n = rte_ring_dequeue_burst(r, (void **)m, 256, NULL))) {
			rte_pktmbuf_free_bulk(m, n);
			got += n;
		}
	}
	for (unsigned q = 0; q < B.n_tx; q++)
		while ((n = rte_ring_dequeue_burst(B.tx[q], (void **)m, 256,
						   NULL)))
			rte_pktmbuf_free_bulk(m, n);
	return got;
}

struct batch_out {
	double cpu, wall;
	unsigned long long delivered; /* reached a worker ring */
	unsigned long long handed;    /* the port handed on (port rx) */
};

static int
batch(enum stage st, struct frames *fr, bool cold, unsigned long long *kinds,
      struct batch_out *o)
{
	static struct rte_mbuf *m[BATCH], *held[BATCH];
	struct dp *dp = B.dp;
	unsigned got = 0;
	double c0, w0;
	int err;

	if ((err = fill(fr, m, kinds)))
		return err;
	if (st == ST_CLASSIFY) {
		/* The port's output, made untimed. */
		put_rx(m);
		while (got < BATCH &&
		       rte_ring_count(B.rx)) /* drops make it short */
			got += dp->port->rx_burst(dp, held + got, BURST, 0);
	} else if (st == ST_IO || st == ST_PORT_RX || st == ST_ETHDEV) {
		put_rx(m);
	}
	if (cold && st != ST_CLASSIFY)
		flush(m);

	w0 = mono_ns();
	c0 = bench_cpu_ns();
	switch (st) {
	case ST_IO:
		for (unsigned k = 0; k < BATCH / BURST; k++)
			dp_io_poll(dp);
		break;
	case ST_PORT_RX:
		for (unsigned k = 0; k < BATCH / BURST; k++)
			got += dp->port->rx_burst(dp, held + got, BURST, 0);
		break;
	case ST_CLASSIFY:
		for (unsigned k = 0; k < got; k += BURST)
			dp_classify(
				dp, held + k,
				(uint16_t)RTE_MIN((unsigned)BURST, got - k));
		break;
	case ST_ETHDEV:
		for (unsigned k = 0; k < BATCH / BURST; k++)
			got += rte_eth_rx_burst(B.port, 0, held + got, BURST);
		break;
	case ST_EDGE:
	case ST_EDGE_PF: {
		uint64_t now = fc_now_ns();

		for (unsigned i = 0; i < BATCH; i++) {
			struct dp_udp_view v;
			size_t rl;

			if (st == ST_EDGE_PF && i + PF_AHEAD < BATCH)
				prefetch_frame(m[i + PF_AHEAD]);
			got += dp_edge_input(&B.edge,
					     rte_pktmbuf_mtod(m[i], uint8_t *),
					     m[i]->data_len, 0, now, &v,
					     &rl) == DP_EDGE_UDP;
		}
		break;
	}
	case ST_CSUM:
	case ST_CSUM64:
		for (unsigned i = 0; i < BATCH; i++)
			got += sums_ok(rte_pktmbuf_mtod(m[i], const uint8_t *),
				       st == ST_CSUM64);
		break;
	default:
		break;
	}
	o->cpu += bench_cpu_ns() - c0;
	o->wall += mono_ns() - w0;

	if (rte_ring_count(B.rx) != 0)
		return EIO; /* a stage left frames behind */
	switch (st) {
	case ST_PORT_RX:
		o->handed += got;
		/* fall through */
	case ST_ETHDEV:
		rte_pktmbuf_free_bulk(held, got);
		break;
	case ST_EDGE:
	case ST_EDGE_PF:
	case ST_CSUM:
	case ST_CSUM64:
		o->handed += got;
		rte_pktmbuf_free_bulk(m, BATCH);
		break;
	default:
		break;
	}
	o->delivered += drain();
	return 0;
}

/*
 * One figure: reps repetitions of `packets` packets (whole batches), after
 * a warm-up; checks that the packets went where their kinds say.
 */
static int
measure(enum stage st, struct frames *fr, bool cold, unsigned long long packets,
	unsigned reps, double clock_ns, struct scen_res *res)
{
	struct figure *f = &res->fig[st];
	unsigned nb = (unsigned)((packets + BATCH - 1) / BATCH);
	double ns[MAX_REPS], wall[MAX_REPS];
	unsigned long long k[K_COUNT];
	int err;

	for (unsigned i = 0; i < 8; i++) { /* warm-up */
		struct batch_out o = {0};

		memset(k, 0, sizeof(k));
		if ((err = batch(st, fr, cold, k, &o)))
			return err;
	}
	f->checked = true;
	for (unsigned r = 0; r < reps; r++) {
		struct batch_out o = {0};
		unsigned long long due_workers, due_handed;

		memset(k, 0, sizeof(k));
		for (unsigned b = 0; b < nb; b++)
			if ((err = batch(st, fr, cold, k, &o)))
				return err;
		ns[r] = (o.cpu - clock_ns * nb) / ((double)nb * BATCH);
		wall[r] = o.wall / ((double)nb * BATCH);
		due_workers = k[K_RTP];
		due_handed = k[K_RTP] + k[K_NOFLOW];
		if ((st == ST_IO || st == ST_CLASSIFY) &&
		    o.delivered != due_workers)
			f->checked = false;
		if (st != ST_IO && st != ST_CLASSIFY && st != ST_ETHDEV &&
		    o.handed != due_handed)
			f->checked = false;
		if (B.verbose && !f->checked)
			printf("      %s: %llu to workers, %llu handed on; due "
			       "%llu, %llu\n",
			       stage_names[st], o.delivered, o.handed,
			       due_workers, due_handed);
	}
	memcpy(res->kinds, k, sizeof(k)); /* the last repetition's */
	f->done = true;
	f->packets = (unsigned long long)nb * BATCH;
	f->reps = reps;
	f->wall_ns = bench_median(wall, reps);
	f->ns = bench_median(ns, reps); /* sorts ns */
	f->ns_min = ns[0];
	return 0;
}

/* The idle pass: dp_io_poll with nothing to receive. */
static void
idle_pass(unsigned passes, unsigned reps, double clock_ns, struct all *a)
{
	double ns[MAX_REPS];

	for (unsigned r = 0; r < reps; r++) {
		double c0 = bench_cpu_ns();

		for (unsigned i = 0; i < passes; i++)
			dp_io_poll(B.dp);
		ns[r] = (bench_cpu_ns() - c0 - clock_ns) / passes;
	}
	a->idle_pass_ns = bench_median(ns, reps);
	a->idle_pass_min_ns = ns[0];
	/* The monotonic clock the port reads once a pass (fc_now_ns). */
	for (unsigned r = 0; r < reps; r++) {
		double c0 = bench_cpu_ns();
		uint64_t x = 0;

		for (unsigned i = 0; i < passes; i++)
			x += fc_now_ns();
		ns[r] = (bench_cpu_ns() - c0 - clock_ns) / passes;
		if (x == 0)
			printf("(the clock stood still)\n");
	}
	a->now_ns = bench_median(ns, reps);
}

/* ---- output -------------------------------------------------------------- */

static const char *
verdict(double ns)
{
	return 1000.0 / ns >= TARGET_MPPS ? "MET" : "MISSED";
}

static void
print_fig(enum stage st, const struct figure *f)
{
	printf("   %-32s %7.1f ns/pkt  %6.2f Mpps  (min %5.1f ns, wall "
	       "%5.1f ns)%s\n",
	       stage_labels[st], f->ns, 1000.0 / f->ns, f->ns_min, f->wall_ns,
	       f->checked ? "" : "  CHECK FAILED: packets went astray");
}

/* What the io lcore counted between two snapshots. */
static void
stats_delta(struct dp_stats *d, const struct dp_stats *s0,
	    const struct dp_stats *s1)
{
#define D(x) d->x = s1->x - s0->x
	D(rx_packets);
	D(rx_no_flow);
	D(rx_malformed);
	D(rx_ring_full);
	D(rx_short);
	D(rx_bad_ip);
	D(rx_bad_csum);
	D(rx_not_ours);
	D(rx_other);
	D(arp_replies);
	D(arp_ignored);
	D(icmp_echo);
#undef D
}

static void
print_stats(const struct dp_stats *s)
{
	printf("      io: rx %" PRIu64 " no-flow %" PRIu64 " malformed %" PRIu64
	       " ring-full %" PRIu64 "; edge: short %" PRIu64 " bad-ip %" PRIu64
	       " bad-csum %" PRIu64 " not-ours %" PRIu64 " other %" PRIu64
	       " arp-replies %" PRIu64 " arp-ignored %" PRIu64
	       " icmp-echo %" PRIu64 "\n",
	       s->rx_packets, s->rx_no_flow, s->rx_malformed, s->rx_ring_full,
	       s->rx_short, s->rx_bad_ip, s->rx_bad_csum, s->rx_not_ours,
	       s->rx_other, s->arp_replies, s->arp_ignored, s->icmp_echo);
}

static void
json_fig(FILE *f, enum stage st, const struct figure *g)
{
	fprintf(f,
		"\"%s\":{\"ns_per_packet\":%.2f,\"mpps\":%.3f,"
		"\"ns_per_packet_min\":%.2f,\"wall_ns_per_packet\":%.2f,"
		"\"packets_per_rep\":%llu,\"reps\":%u,\"checked\":%s}",
		stage_names[st], g->ns, 1000.0 / g->ns, g->ns_min, g->wall_ns,
		g->packets, g->reps, g->checked ? "true" : "false");
}

static void
json_stats(FILE *f, const struct dp_stats *s)
{
	fprintf(f,
		"\"io_counters\":{\"rx_packets\":%" PRIu64
		",\"rx_no_flow\":%" PRIu64 ",\"rx_malformed\":%" PRIu64
		",\"rx_ring_full\":%" PRIu64 ",\"rx_short\":%" PRIu64
		",\"rx_bad_ip\":%" PRIu64 ",\"rx_bad_csum\":%" PRIu64
		",\"rx_not_ours\":%" PRIu64 ",\"rx_other\":%" PRIu64
		",\"arp_replies\":%" PRIu64 ",\"arp_ignored\":%" PRIu64
		",\"icmp_echo\":%" PRIu64 "}",
		s->rx_packets, s->rx_no_flow, s->rx_malformed, s->rx_ring_full,
		s->rx_short, s->rx_bad_ip, s->rx_bad_csum, s->rx_not_ours,
		s->rx_other, s->arp_replies, s->arp_ignored, s->icmp_echo);
}

static int
write_json(const char *path, const struct all *a)
{
	FILE *f = fopen(path, "w");
	bool any = false;

	if (f == NULL)
		return errno;
	fprintf(f,
		"{\"bench\":\"dpbench\",\"quick\":%s,\"port\":\"net_ring "
		"(rte_eth_from_rings)\",\"batch\":%u,\"burst\":%u,"
		"\"frame_bytes\":%u,\"rtp_payload_bytes\":%u,\"workers\":%u,"
		"\"flows\":%u,\"reps\":%u,\"packets_per_rep\":%llu,"
		"\"clock_overhead_ns\":%.1f,\"target_mpps\":%.1f,"
		"\"total_s\":%.1f,",
		a->quick ? "true" : "false", BATCH, BURST,
		(unsigned)(DP_EDGE_HDR + RTP_PL), RTP_PL, a->workers, a->flows,
		a->reps, a->packets, a->clock_ns, TARGET_MPPS, a->total_s);
	fprintf(f,
		"\"idle_pass_ns\":%.2f,\"idle_pass_ns_min\":%.2f,"
		"\"fc_now_ns\":%.2f,",
		a->idle_pass_ns, a->idle_pass_min_ns, a->now_ns);
	fprintf(f, "\"scenarios\":{");
	for (int s = 0; s < N_SCEN; s++) {
		const struct scen_res *r = &a->s[s];
		bool first = true;

		if (!a->run[s])
			continue;
		fprintf(f,
			"%s\"%s\":{\"what\":\"%s\",\"target\":\"%s\","
			"\"frames_per_rep\":{",
			any ? "," : "", scen_info[s].key, scen_info[s].what,
			verdict(r->fig[ST_IO].ns));
		any = true;
		for (int k = 0; k < K_COUNT; k++)
			fprintf(f, "%s\"%s\":%llu", k ? "," : "", kind_names[k],
				r->kinds[k]);
		fprintf(f, "},\"stages\":{");
		for (int st = 0; st < ST_COUNT; st++) {
			if (!r->fig[st].done)
				continue;
			fprintf(f, "%s", first ? "" : ",");
			json_fig(f, (enum stage)st, &r->fig[st]);
			first = false;
		}
		fprintf(f, "},");
		json_stats(f, &r->st);
		fprintf(f, "}");
	}
	fprintf(f, "}}\n");
	return fclose(f) ? errno : 0;
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: dpbench [--quick] [--json PATH] [--workers N] "
		"[--flows N] [--packets N] [--reps N] [--scenario N]... "
		"[--verbose]\n");
}

/* ---- main ---------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	static const unsigned pct_rtp[K_COUNT] = {0};
	static const unsigned pct_mix[K_COUNT] = {0, 2, 2, 2, 2, 2};
	const char *json = "bench/results/dpbench.json";
	unsigned long long packets_opt = 0;
	unsigned reps_opt = 0;
	struct frames rtp, mix, big;
	static struct all a;
	struct dp_stats st0, st1;
	double t_begin;
	bool any_selected = false;
	int ch, err;

	static const struct option opts[] = {
		{"quick", no_argument, NULL, 'q'},
		{"json", required_argument, NULL, 'j'},
		{"workers", required_argument, NULL, 'w'},
		{"flows", required_argument, NULL, 'f'},
		{"packets", required_argument, NULL, 'p'},
		{"reps", required_argument, NULL, 'r'},
		{"scenario", required_argument, NULL, 's'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	a.workers = 2;
	a.flows = 1000;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'q':
			a.quick = true;
			break;
		case 'j':
			json = optarg;
			break;
		case 'w':
			a.workers = (unsigned)atoi(optarg);
			break;
		case 'f':
			a.flows = (unsigned)atoi(optarg);
			break;
		case 'p':
			packets_opt = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			reps_opt = (unsigned)atoi(optarg);
			break;
		case 's': {
			int n = atoi(optarg);

			if (n < 1 || n > N_SCEN) {
				usage();
				return 64;
			}
			a.run[n - 1] = true;
			any_selected = true;
			break;
		}
		case 'v':
			B.verbose = true;
			break;
		default:
			usage();
			return ch == 'h' ? 0 : 64;
		}
	}
	if (a.workers < 1 || a.workers > 64 || a.flows < 1 ||
	    a.flows > FLOWS_BIG || reps_opt > MAX_REPS) {
		usage();
		return 64;
	}
	for (int s = 0; s < N_SCEN; s++)
		a.run[s] |= !any_selected;
	a.packets = packets_opt ? packets_opt : a.quick ? 100000 : 1500000;
	a.reps = reps_opt ? reps_opt : a.quick ? 3 : 5;

	fc_log_level_set(FC_LOG_WARN);
	if (bench_eal_init("dpbench") != 0)
		return 1;
	t_begin = mono_ns();
	if ((err = setup(a.workers, FLOWS_BIG)))
		goto fail;
	a.clock_ns = clock_overhead_ns();
	if ((err = frames_build(&rtp, N_TEMPLATES, pct_rtp, a.flows, 1)) ||
	    (err = frames_build(&mix, N_TEMPLATES, pct_mix, a.flows, 2)) ||
	    (err = frames_build(&big, N_TEMPLATES * 4, pct_rtp, FLOWS_BIG, 3)))
		goto fail;

	printf("dpbench: the DPDK port's io lcore on the main lcore; ring PMD "
	       "port, %u workers, %u legs%s\n",
	       a.workers, a.flows,
	       a.quick ? "; --quick: short runs, rough figures" : "");
	printf("%u-byte frames (%u bytes of RTP), bursts of %u, batches of %u; "
	       "thread CPU time less %.0f ns a clock read;\nmedian of %u "
	       "repetitions of %llu packets\n\n",
	       DP_EDGE_HDR + RTP_PL, RTP_PL, BURST, BATCH, a.clock_ns, a.reps,
	       (unsigned long long)((a.packets + BATCH - 1) / BATCH * BATCH));
	fflush(stdout);

	for (int s = 0; s < N_SCEN; s++) {
		struct scen_res *r = &a.s[s];
		struct frames *fr = s == 1 ? &mix : s == 3 ? &big : &rtp;
		bool cold = s == 2;

		if (!a.run[s])
			continue;
		printf("%d. %s\n", s + 1, scen_info[s].what);
		if (s == 4 && (err = steer(0)))
			goto fail;
		stats_get(&st0);
		for (int stg = 0; stg < ST_COUNT; stg++) {
			if (stg != ST_IO && !(scen_stages[s] & 1u << stg))
				continue;
			fr->next = 0;
			if ((err = measure((enum stage)stg, fr, cold, a.packets,
					   a.reps, a.clock_ns, r)))
				goto fail;
			print_fig((enum stage)stg, &r->fig[stg]);
			fflush(stdout);
		}
		stats_get(&st1);
		stats_delta(&r->st, &st0, &st1);
		if (B.verbose)
			print_stats(&r->st);
		if (s == 4 && (err = steer(-1)))
			goto fail;
		printf("   target >= %.0f Mpps per io core: %s (%.2f Mpps)\n\n",
		       TARGET_MPPS, verdict(r->fig[ST_IO].ns),
		       1000.0 / r->fig[ST_IO].ns);
	}

	idle_pass(a.quick ? 200000 : 2000000, a.reps, a.clock_ns, &a);
	printf("idle io pass (nothing received): %.1f ns (min %.1f), of "
	       "which the port's clock read (fc_now_ns) %.1f ns:\n   what a "
	       "burst of n packets shares; the fixed cost of a pass\n\n",
	       a.idle_pass_ns, a.idle_pass_min_ns, a.now_ns);
	if (a.run[0] && a.run[2])
		printf("target >= %.0f Mpps per io core, valid RTP through "
		       "dp_io_poll: %s with frames in the cache (%.2f Mpps), "
		       "%s with frames\nfrom memory (%.2f Mpps)\n\n",
		       TARGET_MPPS, verdict(a.s[0].fig[ST_IO].ns),
		       1000.0 / a.s[0].fig[ST_IO].ns,
		       verdict(a.s[2].fig[ST_IO].ns),
		       1000.0 / a.s[2].fig[ST_IO].ns);

	a.total_s = (mono_ns() - t_begin) / 1e9;
	printf("total %.1f s\n", a.total_s);
	err = write_json(json, &a);
	if (err)
		fprintf(stderr, "dpbench: cannot write %s: %s\n", json,
			strerror(err));
	else
		printf("wrote %s\n", json);

	frames_free(&rtp);
	frames_free(&mix);
	frames_free(&big);
	dp_free(B.dp);
	rte_eal_cleanup();
	return 0;
fail:
	fprintf(stderr, "dpbench: %s\n", strerror(err));
	return 1;
}
