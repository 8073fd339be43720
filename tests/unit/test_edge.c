/*
 * test_edge.c - the appliance's IPv4 edge (dataplane/edge.c).
 *
 * Frames are built here byte by byte, with a checksum function of the
 * test's own (RFC 1071), not with the code under test. Checked:
 * - a UDP datagram for our address is handed on with its addresses,
 *   ports and payload span, also with Ethernet padding and with no UDP
 *   checksum (0: allowed in IPv4);
 * - every malformed frame is dropped and counted under its own reason
 *   and no other: short at each layer, other ethertypes (IPv6, VLAN),
 *   IP version 6, header length under 20, total length under the header
 *   or past the frame, a bad header checksum, fragments (MF, or an
 *   offset; DF alone is fine), another destination, TCP, UDP lengths
 *   under 8 or past the IP payload, a bad UDP checksum;
 * - ARP: a request for our address is answered in place (reply opcode,
 *   our MAC and address as sender, the asker as target and Ethernet
 *   destination) and its sender learnt; a probe (sender 0.0.0.0) is
 *   answered too; requests for others are ignored; malformed ARP is
 *   ignored;
 * - sources that are no host (0, broadcast, multicast, our prefix's
 *   network and broadcast addresses) are dropped;
 * - ICMP echo: answered in place with type 0, addresses and MACs swapped,
 *   both checksums valid, the data echoed; a bad ICMP checksum or an echo
 *   for another address is dropped;
 * - neighbours: an unknown on-link address gives an ARP request (at most
 *   one a second), an answer makes it known, it expires after
 *   DP_ARP_TTL_S; off-link addresses go through the gateway, or are
 *   unreachable without one; a static entry never expires and ARP does
 *   not overwrite it;
 * - more unknown neighbours than the cache holds are still asked at
 *   most once a second each;
 * - headers we build for media: EF, DF, TTL 64, both checksums right (as
 *   another edge, the peer, checks them).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "dataplane/edge.h"

#define OURS	 0x0a4d0001u /* 10.77.0.1 */
#define PEER	 0x0a4d0002u /* 10.77.0.2 */
#define OTHER	 0x0a4d0003u
#define FAR	 0x08080808u
#define GW	 0x0a4d00feu
#define MASK	 0xffffff00u
#define SEC	 1000000000ull
#define TOKEN_NS (SEC / DP_ICMP_ERR_PER_S) /* an ICMP error's token back */

static const struct rte_ether_addr our_mac = {{0x02, 0, 0, 0, 0, 1}};
static const struct rte_ether_addr peer_mac = {{0x02, 0, 0, 0, 0, 2}};
static const struct rte_ether_addr gw_mac = {{0x02, 0, 0, 0, 0, 0xfe}};

static uint16_t
csum(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)(p[n - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static void
eth(uint8_t *f, const struct rte_ether_addr *dst,
    const struct rte_ether_addr *src, uint16_t type)
{
	memcpy(f, dst->addr_bytes, 6);
	memcpy(f + 6, src->addr_bytes, 6);
	put16(f + 12, type);
}

/* Ethernet + IPv4 (20 bytes) + UDP + plen bytes of 0x5a; the frame's
 * length. Host-order addresses. */
static size_t
udp_frame(uint8_t *f, uint32_t src, uint32_t dst, uint16_t sport,
	  uint16_t dport, size_t plen, bool with_csum)
{
	uint8_t *ip = f + 14, *udp = ip + 20, ph[12];

	memset(f, 0, 14 + 28 + plen);
	eth(f, &our_mac, &peer_mac, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(28 + plen));
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = 17;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	put16(ip + 10, csum(ip, 20, 0));
	put16(udp, sport);
	put16(udp + 2, dport);
	put16(udp + 4, (uint16_t)(8 + plen));
	memset(udp + 8, 0x5a, plen);
	if (with_csum) {
		memcpy(ph, ip + 12, 8);
		ph[8] = 0;
		ph[9] = 17;
		put16(ph + 10, (uint16_t)(8 + plen));
		put16(udp + 6, csum(udp, 8 + plen,
				    (uint32_t)(uint16_t)~csum(ph, 12, 0)));
	}
	return 14 + 28 + plen;
}

/* The IPv4 header's checksum again, after a field changed. */
static void
ip_fix(uint8_t *f)
{
	put16(f + 14 + 10, 0);
	put16(f + 14 + 10, csum(f + 14, (size_t)(f[14] & 15) * 4, 0));
}

static struct dp_edge e;

static int
edge_setup(void **state)
{
	(void)state;
	dp_edge_init(&e, htonl(OURS), htonl(MASK), htonl(GW), &our_mac);
	return 0;
}

/* The sum of every counter: what one frame may add is exactly one. */
static uint64_t
counted(void)
{
	const uint64_t *c = (const uint64_t *)&e.st;
	uint64_t sum = 0;

	for (size_t i = 0; i < sizeof(e.st) / sizeof(*c); i++)
		sum += c[i];
	return sum;
}

static void
expect_drop(uint8_t *f, size_t len, const uint64_t *counter, const char *what)
{
	struct dp_udp_view v;
	uint64_t before = *counter, all = counted();
	size_t rl = 0;

	if (dp_edge_input(&e, f, len, 0, 0, &v, &rl) != DP_EDGE_DROP)
		fail_msg("%s: not dropped", what);
	if (*counter != before + 1 || counted() != all + 1)
		fail_msg("%s: counted %llu under its reason, %llu in all; "
			 "expected 1 and 1",
			 what, (unsigned long long)(*counter - before),
			 (unsigned long long)(counted() - all));
}

static void
test_udp_for_us(void **state)
{
	uint8_t f[200];
	struct dp_udp_view v;
	size_t len, rl = 0;

	(void)state;
	len = udp_frame(f, PEER, OURS, 40000, 20000, 100, true);
	assert_int_equal(dp_edge_input(&e, f, len, 0, 0, &v, &rl), DP_EDGE_UDP);
	assert_int_equal(v.src_ip, htonl(PEER));
	assert_int_equal(v.src_port, 40000);
	assert_int_equal(v.dst_port, 20000);
	assert_memory_equal(v.src_mac.addr_bytes, peer_mac.addr_bytes, 6);
	assert_int_equal(v.off, 42);
	assert_int_equal(v.len, 100);
	/* Padded by Ethernet to 60 bytes: a 4-byte payload still. */
	len = udp_frame(f, PEER, OURS, 40000, 20000, 4, true);
	memset(f + len, 0xee, 60 - len);
	assert_int_equal(dp_edge_input(&e, f, 60, 0, 0, &v, &rl), DP_EDGE_UDP);
	assert_int_equal(v.len, 4);
	/* No UDP checksum at all. */
	len = udp_frame(f, PEER, OURS, 40000, 20000, 20, false);
	assert_int_equal(dp_edge_input(&e, f, len, 0, 0, &v, &rl), DP_EDGE_UDP);
	assert_int_equal(e.st.rx_udp, 3);
}

static void
test_malformed(void **state)
{
	static const struct {
		uint32_t ip;
		const char *what;
	} no_host[] = {
		{0, "from 0.0.0.0"},
		{0xffffffffu, "from 255.255.255.255"},
		{0xe0000001u, "from multicast"},
		{0x0a4d00ffu, "from our prefix's broadcast"},
		{0x0a4d0000u, "from our prefix's network"},
		{0x7f000001u, "from loopback"},
		{0x00010203u, "from 0/8"},
		{0xf0000001u, "from 240/4"},
		{OURS, "from our own address"},
	};
	uint8_t f[200];
	size_t len;

	(void)state;
	len = udp_frame(f, PEER, OURS, 1, 2, 20, true);
	expect_drop(f, 13, &e.st.rx_short, "13 bytes");
	expect_drop(f, 30, &e.st.rx_short, "IPv4 header cut");
	expect_drop(f, len - 1, &e.st.rx_short, "total length past the frame");
	put16(f + 12, 0x86dd);
	expect_drop(f, len, &e.st.rx_other_type, "IPv6");
	put16(f + 12, 0x8100);
	expect_drop(f, len, &e.st.rx_other_type, "VLAN");

	len = udp_frame(f, PEER, OURS, 1, 2, 20, true);
	f[14] = 0x65;
	ip_fix(f);
	expect_drop(f, len, &e.st.rx_bad_ip, "version 6 in an IPv4 frame");
	f[14] = 0x44;
	expect_drop(f, len, &e.st.rx_bad_ip, "header length 16");
	len = udp_frame(f, PEER, OURS, 1, 2, 20, true);
	put16(f + 16, 12);
	ip_fix(f);
	expect_drop(f, len, &e.st.rx_bad_ip, "total length under the header");
	len = udp_frame(f, PEER, OURS, 1, 2, 20, true);
	f[14 + 8] = 63; /* TTL changed, checksum not */
	expect_drop(f, len, &e.st.rx_bad_ip_csum, "IPv4 header checksum");

	len = udp_frame(f, PEER, OURS, 1, 2, 20, true);
	put16(f + 20, 0x2000); /* MF */
	ip_fix(f);
	expect_drop(f, len, &e.st.rx_fragments, "first fragment");
	put16(f + 20, 0x0010); /* offset 128 */
	ip_fix(f);
	expect_drop(f, len, &e.st.rx_fragments, "later fragment");

	len = udp_frame(f, PEER, OTHER, 1, 2, 20, true);
	expect_drop(f, len, &e.st.rx_not_ours, "another address");
	len = udp_frame(f, PEER, OURS, 1, 2, 20, true);
	f[14 + 9] = 6;
	ip_fix(f);
	expect_drop(f, len, &e.st.rx_other_proto, "TCP");

	len = udp_frame(f, PEER, OURS, 1, 2, 20, false);
	put16(f + 42 - 4, 7);
	expect_drop(f, len, &e.st.rx_bad_udp, "UDP length 7");
	put16(f + 42 - 4, 29);
	expect_drop(f, len, &e.st.rx_bad_udp, "UDP length past the IP payload");
	len = udp_frame(f, PEER, OURS, 1, 2, 20, true);
	f[50] ^= 1;
	expect_drop(f, len, &e.st.rx_bad_udp_csum, "UDP checksum");
	/* Sources that are no host (RFC 1122 3.2.1.3, RFC 1812 5.3.7). */
	for (size_t i = 0; i < sizeof(no_host) / sizeof(no_host[0]); i++) {
		len = udp_frame(f, no_host[i].ip, OURS, 1, 2, 20, true);
		expect_drop(f, len, &e.st.rx_bad_ip, no_host[i].what);
	}
	assert_int_equal(e.st.rx_udp, 0);
}

/* An ARP frame: op, sender (mac, ip), target ip; host-order addresses. */
static size_t
arp_frame(uint8_t *f, uint16_t op, const struct rte_ether_addr *sha,
	  uint32_t sip, uint32_t tip)
{
	static const struct rte_ether_addr bcast = {
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

	memset(f, 0, 60);
	eth(f, &bcast, sha, 0x0806);
	put16(f + 14, 1);
	put16(f + 16, 0x0800);
	f[18] = 6;
	f[19] = 4;
	put16(f + 20, op);
	memcpy(f + 22, sha->addr_bytes, 6);
	put32(f + 28, sip);
	put32(f + 38, tip);
	return 60;
}

static void
test_arp(void **state)
{
	uint8_t f[64], req[DP_ARP_FRAME];
	struct dp_udp_view v;
	struct rte_ether_addr mac;
	size_t rl = 0;

	(void)state;
	/* Unknown before. */
	assert_int_equal(dp_edge_resolve(&e, htonl(PEER), 0, &mac, req, &rl),
			 -EAGAIN);
	arp_frame(f, 1, &peer_mac, PEER, OURS);
	assert_int_equal(dp_edge_input(&e, f, 60, 0, 5 * SEC, &v, &rl),
			 DP_EDGE_REPLY);
	assert_int_equal(rl, 60);
	assert_memory_equal(f, peer_mac.addr_bytes, 6);	    /* to it */
	assert_memory_equal(f + 6, our_mac.addr_bytes, 6);  /* from us */
	assert_int_equal(get16(f + 20), 2);		    /* reply */
	assert_memory_equal(f + 22, our_mac.addr_bytes, 6); /* sha */
	assert_int_equal(get32(f + 28), OURS);
	assert_memory_equal(f + 32, peer_mac.addr_bytes, 6); /* tha */
	assert_int_equal(get32(f + 38), PEER);
	assert_int_equal(e.st.arp_replies, 1);
	/* The asker was learnt. */
	assert_int_equal(
		dp_edge_resolve(&e, htonl(PEER), 6 * SEC, &mac, req, &rl), 0);
	assert_memory_equal(mac.addr_bytes, peer_mac.addr_bytes, 6);
	assert_int_equal(e.st.arp_learnt, 1);
	/* For another address: ignored, nobody learnt. */
	arp_frame(f, 1, &gw_mac, GW, OTHER);
	expect_drop(f, 60, &e.st.arp_ignored, "ARP for another address");
	assert_int_equal(e.st.arp_learnt, 1);
	/* Malformed: protocol length 6. */
	arp_frame(f, 1, &gw_mac, GW, OURS);
	f[19] = 6;
	expect_drop(f, 60, &e.st.arp_ignored, "ARP protocol length 6");
	/* Short. */
	expect_drop(f, 30, &e.st.rx_short, "ARP cut short");
	/* A probe for our address (RFC 5227: sender 0.0.0.0) is answered,
	 * to the prober's MAC, and teaches nothing. */
	arp_frame(f, 1, &gw_mac, 0, OURS);
	assert_int_equal(dp_edge_input(&e, f, 60, 0, 7 * SEC, &v, &rl),
			 DP_EDGE_REPLY);
	assert_memory_equal(f, gw_mac.addr_bytes, 6);
	assert_int_equal(get32(f + 38), 0);
	assert_int_equal(e.st.arp_replies, 2);
	assert_int_equal(e.st.arp_learnt, 1);
}

static void
test_icmp_echo(void **state)
{
	uint8_t f[128], *ip = f + 14, *icmp = f + 34;
	struct dp_udp_view v;
	size_t rl = 0, len = 14 + 20 + 8 + 32;

	(void)state;
	memset(f, 0, sizeof(f));
	eth(f, &our_mac, &peer_mac, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, 20 + 8 + 32);
	ip[8] = 64;
	ip[9] = 1;
	put32(ip + 12, PEER);
	put32(ip + 16, OURS);
	put16(ip + 10, csum(ip, 20, 0));
	icmp[0] = 8;
	put16(icmp + 4, 0x1234); /* id */
	put16(icmp + 6, 7);	 /* seq */
	for (int i = 0; i < 32; i++)
		icmp[8 + i] = (uint8_t)i;
	put16(icmp + 2, csum(icmp, 40, 0));
	assert_int_equal(dp_edge_input(&e, f, len, 0, 0, &v, &rl),
			 DP_EDGE_REPLY);
	assert_int_equal(rl, len);
	assert_int_equal(icmp[0], 0);
	assert_int_equal(csum(icmp, 40, 0), 0);
	assert_int_equal(csum(ip, 20, 0), 0);
	assert_int_equal(get32(ip + 12), OURS);
	assert_int_equal(get32(ip + 16), PEER);
	assert_memory_equal(f, peer_mac.addr_bytes, 6);
	assert_memory_equal(f + 6, our_mac.addr_bytes, 6);
	assert_int_equal(get16(icmp + 4), 0x1234);
	assert_int_equal(get16(icmp + 6), 7);
	assert_int_equal(icmp[8 + 31], 31);
	assert_int_equal(e.st.icmp_echo, 1);
	/* Broken data: the checksum no longer holds. */
	icmp[0] = 8;
	put16(icmp + 2, 0);
	put16(icmp + 2, csum(icmp, 40, 0));
	put32(ip + 12, PEER);
	put32(ip + 16, OURS);
	ip_fix(f);
	icmp[20] ^= 0xff;
	expect_drop(f, len, &e.st.rx_bad_ip_csum, "ICMP checksum");
	/* Whole again, but for another address. */
	icmp[20] ^= 0xff;
	put32(ip + 16, OTHER);
	ip_fix(f);
	expect_drop(f, len, &e.st.rx_not_ours, "echo for another address");
	assert_int_equal(e.st.icmp_echo, 1);
}

static void
test_neighbours(void **state)
{
	uint8_t f[64], req[DP_ARP_FRAME];
	struct dp_udp_view v;
	struct rte_ether_addr mac;
	size_t rl = 0;

	(void)state;
	/* Only looking (no buffer for a request): none recorded as sent. */
	assert_int_equal(dp_edge_resolve(&e, htonl(PEER), SEC, &mac, NULL, &rl),
			 -EAGAIN);
	assert_int_equal(rl, 0);
	/* An on-link stranger: a request, then none for a second. */
	assert_int_equal(dp_edge_resolve(&e, htonl(PEER), SEC, &mac, req, &rl),
			 -EAGAIN);
	assert_int_equal(rl, DP_ARP_FRAME);
	assert_int_equal(get16(req + 12), 0x0806);
	assert_int_equal(get16(req + 20), 1);
	assert_int_equal(req[0] & req[1] & req[2] & req[3] & req[4] & req[5],
			 0xff);
	assert_memory_equal(req + 22, our_mac.addr_bytes, 6);
	assert_int_equal(get32(req + 28), OURS);
	assert_int_equal(get32(req + 38), PEER);
	assert_int_equal(
		dp_edge_resolve(&e, htonl(PEER), SEC + SEC / 2, &mac, req, &rl),
		-EAGAIN);
	assert_int_equal(rl, 0);
	assert_int_equal(
		dp_edge_resolve(&e, htonl(PEER), 2 * SEC, &mac, req, &rl),
		-EAGAIN);
	assert_int_equal(rl, DP_ARP_FRAME);
	/* Its reply makes it known, until it expires. */
	arp_frame(f, 2, &peer_mac, PEER, OURS);
	assert_int_equal(dp_edge_input(&e, f, 60, 0, 3 * SEC, &v, &rl),
			 DP_EDGE_DROP);
	assert_int_equal(
		dp_edge_resolve(&e, htonl(PEER), 4 * SEC, &mac, req, &rl), 0);
	assert_int_equal(dp_edge_resolve(&e, htonl(PEER),
					 (3 + DP_ARP_TTL_S) * SEC + 1, &mac,
					 req, &rl),
			 -EAGAIN);
	assert_int_equal(rl, DP_ARP_FRAME);
	/* Off-link: the gateway's address, asked for. */
	assert_int_equal(dp_edge_resolve(&e, htonl(FAR), 0, &mac, req, &rl),
			 -EAGAIN);
	assert_int_equal(get32(req + 38), GW);
	/* A static gateway: known at once, forever, not relearnt. */
	assert_int_equal(dp_edge_arp_static(&e, htonl(GW), &gw_mac), 0);
	arp_frame(f, 1, &peer_mac, GW, OURS);
	assert_int_equal(dp_edge_input(&e, f, 60, 0, 0, &v, &rl),
			 DP_EDGE_REPLY);
	assert_int_equal(
		dp_edge_resolve(&e, htonl(FAR), 1000000 * SEC, &mac, req, &rl),
		0);
	assert_memory_equal(mac.addr_bytes, gw_mac.addr_bytes, 6);
	/* No gateway: unreachable. */
	e.gw = 0;
	assert_int_equal(dp_edge_resolve(&e, htonl(FAR), 0, &mac, req, &rl),
			 -ENETUNREACH);
}

/* More unknown neighbours than slots: each is asked at most once a
 * second all the same (a pending entry is not evicted while fresh). */
static void
test_arp_storm(void **state)
{
	uint8_t req[DP_ARP_FRAME];
	struct rte_ether_addr mac;
	unsigned asked = 0;
	size_t rl = 0;

	(void)state;
	for (unsigned round = 0; round < 10; round++) {
		for (uint32_t h = 1; h <= 2 * DP_ARP_SLOTS; h++) {
			assert_int_equal(dp_edge_resolve(&e,
							 htonl(0x0a4d0000u | h),
							 SEC + round * SEC / 20,
							 &mac, req, &rl),
					 -EAGAIN);
			asked += rl != 0;
		}
	}
	/* Half a second of asking for 128 addresses, 64 slots: 64. */
	assert_int_equal(asked, DP_ARP_SLOTS);
	/* A second on, the slots' own addresses may be asked again. */
	assert_int_equal(dp_edge_resolve(&e, htonl(0x0a4d0001u), 2 * SEC + 1,
					 &mac, req, &rl),
			 -EAGAIN);
	assert_int_equal(rl, DP_ARP_FRAME);
}

static void
test_headers_we_send(void **state)
{
	uint8_t f[256];
	struct dp_edge peer;
	struct dp_udp_view v;
	size_t rl = 0;

	(void)state;
	memset(f + 42, 0x33, 172);
	dp_edge_udp_headers(&e, f, &peer_mac, htonl(PEER), 20000, 40000, 172,
			    0);
	assert_int_equal(f[14], 0x45);
	assert_int_equal(f[15], 0xb8); /* EF */
	assert_int_equal(get16(f + 20), 0x4000);
	assert_int_equal(f[22], 64);
	assert_int_equal(csum(f + 14, 20, 0), 0);
	dp_edge_init(&peer, htonl(PEER), htonl(MASK), 0, &peer_mac);
	assert_int_equal(dp_edge_input(&peer, f, 42 + 172, 0, 0, &v, &rl),
			 DP_EDGE_UDP);
	assert_int_equal(v.src_ip, htonl(OURS));
	assert_int_equal(v.src_port, 20000);
	assert_int_equal(v.dst_port, 40000);
	assert_int_equal(v.len, 172);
	assert_true(get16(f + 40) != 0);
}

/* Headers for a NIC that computes the checksums: the IPv4 one left 0, the
 * UDP one seeded with the pseudo-header's sum; what the NIC then writes
 * (done here as it would: the complement of the sums over the IPv4 header
 * and over the datagram from that seed) is what the software writes. */
static void
test_headers_offloaded(void **state)
{
	/* The pseudo-header: OURS, PEER, protocol 17, UDP length 179. */
	static const uint8_t ph[12] = {0x0a, 0x4d, 0x00, 0x01, 0x0a, 0x4d,
				       0x00, 0x02, 0x00, 17,   0x00, 179};
	uint8_t sw[256], hw[256];
	uint16_t phdr, udp_sum;
	struct dp_edge peer;
	struct dp_udp_view v;
	size_t rl = 0;

	(void)state;
	memset(sw + 42, 0x5a, 171); /* odd: the NIC pads the last byte */
	memcpy(hw + 42, sw + 42, 171);
	dp_edge_udp_headers(&e, sw, &peer_mac, htonl(PEER), 20002, 40000, 171,
			    0);
	dp_edge_udp_headers(&e, hw, &peer_mac, htonl(PEER), 20002, 40000, 171,
			    DP_TX_IP_CSUM | DP_TX_UDP_CSUM);
	assert_int_equal(get16(hw + 24), 0);
	/* The seed: the pseudo-header's sum. */
	phdr = (uint16_t)~csum(ph, sizeof(ph), 0);
	assert_memory_equal(hw + 26, ph, 8);
	assert_int_equal(get16(hw + 40), phdr);
	/* The NIC's part: UDP sends a sum of 0 as 0xffff. */
	put16(hw + 24, csum(hw + 14, 20, 0));
	udp_sum = csum(hw + 34, 8 + 171, 0);
	put16(hw + 40, udp_sum ? udp_sum : 0xffff);
	assert_memory_equal(hw, sw, 42 + 171);
	/* The IPv4-only offload leaves UDP's to software, and the reverse. */
	dp_edge_udp_headers(&e, hw, &peer_mac, htonl(PEER), 20002, 40000, 171,
			    DP_TX_IP_CSUM);
	assert_int_equal(get16(hw + 24), 0);
	assert_int_equal(get16(hw + 40), get16(sw + 40));
	dp_edge_udp_headers(&e, hw, &peer_mac, htonl(PEER), 20002, 40000, 171,
			    DP_TX_UDP_CSUM);
	assert_int_equal(get16(hw + 24), get16(sw + 24));
	assert_int_equal(get16(hw + 40), phdr);

	/* Receive: checksums the NIC vouched for are not checked again, the
	 * others are. hw's are both wrong now (0 and the seed). */
	dp_edge_init(&peer, htonl(PEER), htonl(MASK), 0, &peer_mac);
	dp_edge_udp_headers(&e, hw, &peer_mac, htonl(PEER), 20002, 40000, 171,
			    DP_TX_IP_CSUM | DP_TX_UDP_CSUM);
	assert_int_equal(dp_edge_input(&peer, hw, 42 + 171, 0, 0, &v, &rl),
			 DP_EDGE_DROP);
	assert_int_equal(peer.st.rx_bad_ip_csum, 1);
	assert_int_equal(dp_edge_input(&peer, hw, 42 + 171, DP_RX_IP_CSUM_OK, 0,
				       &v, &rl),
			 DP_EDGE_DROP);
	assert_int_equal(peer.st.rx_bad_udp_csum, 1);
	assert_int_equal(dp_edge_input(&peer, hw, 42 + 171,
				       DP_RX_IP_CSUM_OK | DP_RX_UDP_CSUM_OK, 0,
				       &v, &rl),
			 DP_EDGE_UDP);
	assert_int_equal(v.len, 171);
	assert_int_equal(dp_edge_input(&peer, sw, 42 + 171, 0, 0, &v, &rl),
			 DP_EDGE_UDP);
	assert_int_equal(peer.st.rx_udp, 2);
}

/* UDP to no port of ours: an ICMP port unreachable back to its sender,
 * quoting the datagram from its IPv4 header (as much as fits in 576
 * bytes of IPv4); a burst of DP_ICMP_ERR_BURST, then DP_ICMP_ERR_PER_S a
 * second. */
static void
test_port_unreachable(void **state)
{
	uint8_t f[1600], orig[1600];
	size_t len, n;
	unsigned sent = 1;

	(void)state;
	len = udp_frame(f, PEER, OURS, 40000, 20001, 100, true);
	memcpy(orig, f, len);
	n = dp_edge_port_unreachable(&e, f, len, SEC);
	assert_int_equal(n, len + 28);
	assert_memory_equal(f, peer_mac.addr_bytes, 6);
	assert_memory_equal(f + 6, our_mac.addr_bytes, 6);
	assert_int_equal(get16(f + 12), 0x0800);
	assert_int_equal(f[14], 0x45);
	assert_int_equal(get16(f + 16), 20 + 8 + 128);
	assert_int_equal(f[23], 1); /* ICMP */
	assert_int_equal(get32(f + 26), OURS);
	assert_int_equal(get32(f + 30), PEER);
	assert_int_equal(csum(f + 14, 20, 0), 0);
	assert_int_equal(f[34], 3); /* destination unreachable */
	assert_int_equal(f[35], 3); /* port */
	assert_int_equal(get32(f + 38), 0);
	assert_int_equal(csum(f + 34, 8 + 128, 0), 0);
	assert_memory_equal(f + 42, orig + 14, 128);
	assert_int_equal(e.st.icmp_unreach, 1);

	/* Not to a frame sent to a broadcast or multicast MAC. */
	len = udp_frame(f, PEER, OURS, 40000, 20001, 10, true);
	memset(f, 0xff, 6);
	memcpy(orig, f, len);
	assert_int_equal(dp_edge_port_unreachable(&e, f, len, SEC), 0);
	assert_memory_equal(f, orig, len);
	f[0] = 0x01; /* 01:ff:..., a multicast address */
	assert_int_equal(dp_edge_port_unreachable(&e, f, len, SEC), 0);
	assert_int_equal(e.st.icmp_unreach, 1);
	assert_int_equal(e.st.icmp_limited, 0);

	/* A big one: 548 bytes of it quoted. */
	len = udp_frame(f, PEER, OURS, 40000, 20001, 1400, true);
	memcpy(orig, f, len);
	n = dp_edge_port_unreachable(&e, f, len, SEC);
	sent++;
	assert_int_equal(n, 14 + 576);
	assert_int_equal(get16(f + 16), 576);
	assert_int_equal(csum(f + 14, 20, 0), 0);
	assert_int_equal(csum(f + 34, 8 + 548, 0), 0);
	assert_memory_equal(f + 42, orig + 14, 548);

	/* The rest of the burst, then none until a token is back (1 ms). */
	for (; sent < DP_ICMP_ERR_BURST; sent++) {
		len = udp_frame(f, PEER, OURS, 40000, 20001, 10, true);
		assert_true(dp_edge_port_unreachable(&e, f, len, SEC) > 0);
	}
	len = udp_frame(f, PEER, OURS, 40000, 20001, 10, true);
	memcpy(orig, f, len);
	assert_int_equal(
		dp_edge_port_unreachable(&e, f, len, SEC + TOKEN_NS - 1), 0);
	assert_memory_equal(f, orig, len); /* untouched: the caller drops */
	assert_int_equal(e.st.icmp_limited, 1);
	assert_true(dp_edge_port_unreachable(&e, f, len, SEC + TOKEN_NS) > 0);
	len = udp_frame(f, PEER, OURS, 40000, 20001, 10, true);
	assert_int_equal(dp_edge_port_unreachable(&e, f, len, SEC + TOKEN_NS),
			 0);
	/* A second later, a whole burst again, and no more. */
	for (unsigned i = 0; i < DP_ICMP_ERR_BURST; i++) {
		len = udp_frame(f, PEER, OURS, 40000, 20001, 10, true);
		assert_true(dp_edge_port_unreachable(&e, f, len, 3 * SEC) > 0);
	}
	len = udp_frame(f, PEER, OURS, 40000, 20001, 10, true);
	assert_int_equal(dp_edge_port_unreachable(&e, f, len, 3 * SEC), 0);
	assert_int_equal(e.st.icmp_unreach, 2 * DP_ICMP_ERR_BURST + 1);
	assert_int_equal(e.st.icmp_limited, 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_udp_for_us, edge_setup),
		cmocka_unit_test_setup(test_malformed, edge_setup),
		cmocka_unit_test_setup(test_arp, edge_setup),
		cmocka_unit_test_setup(test_icmp_echo, edge_setup),
		cmocka_unit_test_setup(test_neighbours, edge_setup),
		cmocka_unit_test_setup(test_arp_storm, edge_setup),
		cmocka_unit_test_setup(test_headers_we_send, edge_setup),
		cmocka_unit_test_setup(test_headers_offloaded, edge_setup),
		cmocka_unit_test_setup(test_port_unreachable, edge_setup),
	};

	return cmocka_run_group_tests_name("edge", tests, NULL, NULL);
}
