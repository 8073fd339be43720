/*
 * edge.c - the appliance's IPv4 edge (see edge.h).
 *
 * Header layouts and checksum arithmetic are DPDK's (rte_ether.h,
 * rte_ip.h, rte_arp.h, rte_icmp.h, rte_udp.h). A header checksum is valid
 * when the one's complement sum over the covered bytes, checksum field
 * included, folds to 0xffff. Outgoing media is marked DSCP EF (RFC 4594:
 * telephony) and Don't Fragment.
 */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "dataplane/dataplane.h"
#include "dataplane/edge.h"

#define ETH_HDR	     sizeof(struct rte_ether_hdr)
#define TOS_EF	     0xb8 /* DSCP 46 */
#define TTL	     64
#define ASK_EVERY_NS 1000000000ull /* ARP requests per address */
#define ICMP_UNREACH 3		   /* type: destination unreachable */
#define ICMP_PORT    3		   /* code: port unreachable */

void
dp_edge_init(struct dp_edge *e, uint32_t addr, uint32_t mask, uint32_t gw,
	     const struct rte_ether_addr *mac)
{
	memset(e, 0, sizeof(*e));
	e->addr = addr;
	e->mask = mask;
	e->gw = gw;
	e->mac = *mac;
	e->icmp_tokens = DP_ICMP_ERR_BURST;
}

/* An Ethernet header from us to dst (the frame's own source, for a
 * reply), of type. */
static void
eth_out(const struct dp_edge *e, struct rte_ether_hdr *eth,
	const struct rte_ether_addr *dst, uint16_t type)
{
	eth->dst_addr = *dst;
	eth->src_addr = e->mac;
	eth->ether_type = rte_cpu_to_be_16(type);
}

/* Our IPv4 header (no options) to dst, before len bytes of proto; its
 * checksum too, unless the NIC is to compute it. */
static void
ipv4_out(const struct dp_edge *e, struct rte_ipv4_hdr *ip, uint32_t dst,
	 uint8_t proto, uint8_t tos, uint16_t frag, size_t len, bool csum)
{
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = tos;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + len));
	ip->packet_id = 0;
	ip->fragment_offset = rte_cpu_to_be_16(frag);
	ip->time_to_live = TTL;
	ip->next_proto_id = proto;
	ip->src_addr = e->addr;
	ip->dst_addr = dst;
	ip->hdr_checksum = 0;
	if (csum)
		ip->hdr_checksum = rte_ipv4_cksum(ip);
}

/* ---- neighbours ---------------------------------------------------------- */

static struct dp_arp_entry *
arp_find(struct dp_edge *e, uint32_t ip)
{
	for (unsigned i = 0; i < DP_ARP_SLOTS; i++) {
		if (e->arp[i].ip == ip)
			return &e->arp[i];
	}
	return NULL;
}

/*
 * A slot for ip: free, else the learnt one that expires first (expired
 * ones before all), else a pending one asked for over a second ago.
 * Pending ones asked within the second are kept, or their one-request-
 * a-second limit would go with them: with none to take, ip gets none.
 */
static struct dp_arp_entry *
arp_slot(struct dp_edge *e, uint32_t ip, uint64_t now)
{
	struct dp_arp_entry *x = arp_find(e, ip), *victim = NULL;
	uint64_t best = UINT64_MAX;

	if (x)
		return x;
	for (unsigned i = 0; i < DP_ARP_SLOTS; i++) {
		struct dp_arp_entry *s = &e->arp[i];
		uint64_t key;

		if (s->ip == 0) {
			victim = s;
			break;
		}
		if (s->fixed)
			continue;
		if (s->known)
			key = s->expires_ns;
		else if (s->asked_ns && now - s->asked_ns < ASK_EVERY_NS)
			continue;
		else
			key = s->asked_ns + ASK_EVERY_NS;
		if (key < best) {
			best = key;
			victim = s;
		}
	}
	if (victim == NULL) {
		e->st.arp_full++;
		return NULL;
	}
	memset(victim, 0, sizeof(*victim));
	victim->ip = ip;
	return victim;
}

static void
arp_learn(struct dp_edge *e, uint32_t ip, const struct rte_ether_addr *mac,
	  uint64_t now, bool create)
{
	struct dp_arp_entry *x =
		create ? arp_slot(e, ip, now) : arp_find(e, ip);

	if (x == NULL || x->fixed)
		return;
	x->mac = *mac;
	x->known = true;
	x->expires_ns = now + DP_ARP_TTL_S * 1000000000ull;
	e->st.arp_learnt++;
}

int
dp_edge_arp_static(struct dp_edge *e, uint32_t ip,
		   const struct rte_ether_addr *mac)
{
	struct dp_arp_entry *x = arp_slot(e, ip, UINT64_MAX / 2);

	if (x == NULL)
		return ENOSPC;
	x->mac = *mac;
	x->known = true;
	x->fixed = true;
	return 0;
}

static bool
on_link(const struct dp_edge *e, uint32_t ip)
{
	return (ip & e->mask) == (e->addr & e->mask);
}

int
dp_edge_resolve(struct dp_edge *e, uint32_t ip, uint64_t now_ns,
		struct rte_ether_addr *mac, uint8_t *request,
		size_t *request_len)
{
	uint32_t hop = on_link(e, ip) ? ip : e->gw;
	struct dp_arp_entry *x;
	static const struct rte_ether_addr bcast = {
		.addr_bytes = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)request;
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(request + ETH_HDR);

	*request_len = 0;
	if (hop == 0)
		return -ENETUNREACH;
	x = arp_find(e, hop);
	if (x && x->known && (x->fixed || x->expires_ns > now_ns)) {
		*mac = x->mac;
		return 0;
	}
	if (request == NULL) /* only looking */
		return -EAGAIN;
	if (x == NULL)
		x = arp_slot(e, hop, now_ns);
	if (x == NULL || (x->asked_ns && now_ns - x->asked_ns < ASK_EVERY_NS))
		return -EAGAIN;
	x->asked_ns = now_ns;
	memset(request, 0, DP_ARP_FRAME);
	eth_out(e, eth, &bcast, RTE_ETHER_TYPE_ARP);
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	arp->arp_data.arp_sha = e->mac;
	arp->arp_data.arp_sip = e->addr;
	arp->arp_data.arp_tip = hop;
	*request_len = DP_ARP_FRAME;
	return -EAGAIN;
}

/* ---- input --------------------------------------------------------------- */

static enum dp_edge_verdict
arp_input(struct dp_edge *e, uint8_t *frame, size_t len, uint64_t now,
	  size_t *reply_len)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(frame + ETH_HDR);
	struct rte_arp_ipv4 *d = &arp->arp_data;
	uint16_t op;
	uint32_t sip;

	if (len < ETH_HDR + sizeof(*arp)) {
		e->st.rx_short++;
		return DP_EDGE_DROP;
	}
	op = rte_be_to_cpu_16(arp->arp_opcode);
	if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4 ||
	    (op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY) ||
	    !rte_is_unicast_ether_addr(&d->arp_sha) ||
	    rte_is_zero_ether_addr(&d->arp_sha) ||
	    (d->arp_sip == 0 && op != RTE_ARP_OP_REQUEST)) {
		e->st.arp_ignored++;
		return DP_EDGE_DROP;
	}
	sip = d->arp_sip;
	/* RFC 826: refresh a neighbour we know of; learn it if the frame
	 * is for us. A probe (RFC 5227: sender 0.0.0.0) teaches nothing,
	 * but is answered: the address is taken. */
	if (sip != 0)
		arp_learn(e, sip, &d->arp_sha, now, d->arp_tip == e->addr);
	if (d->arp_tip != e->addr || op != RTE_ARP_OP_REQUEST) {
		if (d->arp_tip != e->addr)
			e->st.arp_ignored++;
		return DP_EDGE_DROP;
	}
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
	d->arp_tha = d->arp_sha;
	d->arp_tip = sip;
	d->arp_sha = e->mac;
	d->arp_sip = e->addr;
	eth_out(e, eth, &d->arp_tha, RTE_ETHER_TYPE_ARP);
	e->st.arp_replies++;
	*reply_len = len;
	return DP_EDGE_REPLY;
}

/* The one's complement sum of n bytes, folded: 0xffff when a header's
 * checksum in it is right. */
static uint16_t
sum16(const void *p, size_t n)
{
	return rte_raw_cksum(p, n);
}

static enum dp_edge_verdict
icmp_input(struct dp_edge *e, uint8_t *frame, struct rte_ipv4_hdr *ip,
	   size_t ihl, size_t tot, size_t *reply_len)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_icmp_hdr *icmp =
		(struct rte_icmp_hdr *)((uint8_t *)ip + ihl);

	if (tot - ihl < sizeof(*icmp) ||
	    icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST ||
	    icmp->icmp_code != 0) {
		e->st.rx_other_proto++;
		return DP_EDGE_DROP;
	}
	if (sum16(icmp, tot - ihl) != 0xffff) {
		e->st.rx_bad_ip_csum++;
		return DP_EDGE_DROP;
	}
	/* The reply: type 0, the rest echoed; addresses swapped. */
	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = 0;
	icmp->icmp_cksum = (uint16_t)~sum16(icmp, tot - ihl);
	ip->dst_addr = ip->src_addr;
	ip->src_addr = e->addr;
	ip->time_to_live = TTL;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = (uint16_t)~sum16(ip, ihl);
	eth_out(e, eth, &eth->src_addr, RTE_ETHER_TYPE_IPV4);
	e->st.icmp_echo++;
	*reply_len = ETH_HDR + tot;
	return DP_EDGE_REPLY;
}

bool
dp_net_or_bcast(uint32_t ip, uint32_t addr, uint32_t mask)
{
	return rte_be_to_cpu_32(mask) < 0xfffffffeu &&
	       (ip & mask) == (addr & mask) &&
	       ((ip & ~mask) == 0 || (ip & ~mask) == ~mask);
}

static bool
unicast_source(const struct dp_edge *e, uint32_t src)
{
	uint32_t h = rte_be_to_cpu_32(src);

	/* 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4
	 * reserved and broadcast (RFC 1122 3.2.1.3, RFC 1812 5.3.7), or our
	 * own address. */
	if ((h >> 24) == 0 || (h >> 24) == 127 || (h >> 28) >= 0xe ||
	    src == e->addr)
		return false;
	return !dp_net_or_bcast(src, e->addr, e->mask);
}

/* UDP's checksum over the pseudo-header and ulen bytes: valid or absent. */
static bool
udp_csum_ok(const struct rte_ipv4_hdr *ip, const struct rte_udp_hdr *udp,
	    size_t ulen)
{
	uint32_t sum;
	struct {
		uint32_t src, dst;
		uint8_t zero, proto;
		uint16_t len;
	} __rte_packed ph = {ip->src_addr, ip->dst_addr, 0, IPPROTO_UDP,
			     rte_cpu_to_be_16((uint16_t)ulen)};

	if (udp->dgram_cksum == 0)
		return true; /* IPv4: the sender computed none */
	sum = __rte_raw_cksum(&ph, sizeof(ph), 0);
	sum = __rte_raw_cksum(udp, ulen, sum);
	return __rte_raw_cksum_reduce(sum) == 0xffff;
}

enum dp_edge_verdict
dp_edge_input(struct dp_edge *e, uint8_t *frame, size_t len, unsigned csum_ok,
	      uint64_t now_ns, struct dp_udp_view *view, size_t *reply_len)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_ipv4_hdr *ip;
	struct rte_udp_hdr *udp;
	size_t ihl, tot, ulen;
	uint16_t frag;

	if (len < ETH_HDR) {
		e->st.rx_short++;
		return DP_EDGE_DROP;
	}
	if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP))
		return arp_input(e, frame, len, now_ns, reply_len);
	if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
		e->st.rx_other_type++;
		return DP_EDGE_DROP;
	}
	if (len < ETH_HDR + sizeof(*ip)) {
		e->st.rx_short++;
		return DP_EDGE_DROP;
	}
	ip = (struct rte_ipv4_hdr *)(frame + ETH_HDR);
	ihl = (size_t)(ip->version_ihl & 0x0f) * 4;
	tot = rte_be_to_cpu_16(ip->total_length);
	if ((ip->version_ihl >> 4) != 4 || ihl < sizeof(*ip) || tot < ihl) {
		e->st.rx_bad_ip++;
		return DP_EDGE_DROP;
	}
	/* Ethernet pads short frames: the IPv4 length says where it ends. */
	if (len < ETH_HDR + ihl || len - ETH_HDR < tot) {
		e->st.rx_short++;
		return DP_EDGE_DROP;
	}
	if (!(csum_ok & DP_RX_IP_CSUM_OK) && sum16(ip, ihl) != 0xffff) {
		e->st.rx_bad_ip_csum++;
		return DP_EDGE_DROP;
	}
	frag = rte_be_to_cpu_16(ip->fragment_offset);
	if (frag & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) {
		e->st.rx_fragments++;
		return DP_EDGE_DROP;
	}
	if (ip->dst_addr != e->addr) {
		e->st.rx_not_ours++;
		return DP_EDGE_DROP;
	}
	/* RFC 1122 3.2.1.3: no answer, no media, from a source that is no
	 * host (0, broadcast, multicast, our prefix's network or broadcast
	 * address). */
	if (!unicast_source(e, ip->src_addr)) {
		e->st.rx_bad_ip++;
		return DP_EDGE_DROP;
	}
	if (ip->next_proto_id == IPPROTO_ICMP)
		return icmp_input(e, frame, ip, ihl, tot, reply_len);
	if (ip->next_proto_id != IPPROTO_UDP) {
		e->st.rx_other_proto++;
		return DP_EDGE_DROP;
	}
	udp = (struct rte_udp_hdr *)((uint8_t *)ip + ihl);
	ulen = tot - ihl >= sizeof(*udp) ? rte_be_to_cpu_16(udp->dgram_len) : 0;
	if (ulen < sizeof(*udp) || ulen > tot - ihl) {
		e->st.rx_bad_udp++;
		return DP_EDGE_DROP;
	}
	if (!(csum_ok & DP_RX_UDP_CSUM_OK) && !udp_csum_ok(ip, udp, ulen)) {
		e->st.rx_bad_udp_csum++;
		return DP_EDGE_DROP;
	}
	view->src_ip = ip->src_addr;
	view->src_port = rte_be_to_cpu_16(udp->src_port);
	view->dst_port = rte_be_to_cpu_16(udp->dst_port);
	view->src_mac = eth->src_addr;
	view->off = ETH_HDR + ihl + sizeof(*udp);
	view->len = ulen - sizeof(*udp);
	e->st.rx_udp++;
	return DP_EDGE_UDP;
}

/* ---- output -------------------------------------------------------------- */

/* May an ICMP error go now? One token each, DP_ICMP_ERR_PER_S a second
 * back, DP_ICMP_ERR_BURST at most. */
static bool
icmp_err_token(struct dp_edge *e, uint64_t now)
{
	uint64_t per = 1000000000ull / DP_ICMP_ERR_PER_S;

	if (now > e->icmp_refill_ns) {
		uint64_t add = (now - e->icmp_refill_ns) / per;

		if (add >= DP_ICMP_ERR_BURST - e->icmp_tokens) {
			e->icmp_tokens = DP_ICMP_ERR_BURST;
			e->icmp_refill_ns = now;
		} else {
			e->icmp_tokens += (uint32_t)add;
			e->icmp_refill_ns += add * per;
		}
	}
	if (e->icmp_tokens == 0) {
		e->st.icmp_limited++;
		return false;
	}
	e->icmp_tokens--;
	return true;
}

size_t
dp_edge_port_unreachable(struct dp_edge *e, uint8_t *frame, size_t len,
			 uint64_t now_ns)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + ETH_HDR);
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)(ip + 1);
	size_t tot = rte_be_to_cpu_16(ip->total_length), quote;
	uint32_t peer = ip->src_addr;

	/* Never to a frame sent to a link-layer group (RFC 1122 3.2.2). */
	if (!rte_is_unicast_ether_addr(&eth->dst_addr))
		return 0;
	if (!icmp_err_token(e, now_ns))
		return 0;
	/* The offending datagram, from its IPv4 header, after ours. */
	quote = RTE_MIN(tot, len - ETH_HDR);
	quote = RTE_MIN(quote, DP_ICMP_ERR_IP - sizeof(*ip) - sizeof(*icmp));
	memmove(icmp + 1, ip, quote);
	icmp->icmp_type = ICMP_UNREACH;
	icmp->icmp_code = ICMP_PORT;
	icmp->icmp_ident = 0;
	icmp->icmp_seq_nb = 0;
	icmp->icmp_cksum = 0;
	icmp->icmp_cksum = (uint16_t)~sum16(icmp, sizeof(*icmp) + quote);
	ipv4_out(e, ip, peer, IPPROTO_ICMP, 0, 0, sizeof(*icmp) + quote, true);
	eth_out(e, eth, &eth->src_addr, RTE_ETHER_TYPE_IPV4);
	e->st.icmp_unreach++;
	return ETH_HDR + sizeof(*ip) + sizeof(*icmp) + quote;
}

void
dp_edge_udp_headers(const struct dp_edge *e, uint8_t *frame,
		    const struct rte_ether_addr *dst_mac, uint32_t dst_ip,
		    uint16_t sport, uint16_t dport, size_t plen,
		    unsigned csum_hw)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + ETH_HDR);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

	eth_out(e, eth, dst_mac, RTE_ETHER_TYPE_IPV4);
	ipv4_out(e, ip, dst_ip, IPPROTO_UDP, TOS_EF, RTE_IPV4_HDR_DF_FLAG,
		 sizeof(*udp) + plen, !(csum_hw & DP_TX_IP_CSUM));
	udp->src_port = rte_cpu_to_be_16(sport);
	udp->dst_port = rte_cpu_to_be_16(dport);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + plen));
	/* Offloaded, the NIC sums the datagram onto the pseudo-header's sum
	 * (what most drivers expect; those that want otherwise rewrite it
	 * in rte_eth_tx_prepare). */
	udp->dgram_cksum = 0;
	if (csum_hw & DP_TX_UDP_CSUM)
		udp->dgram_cksum = rte_ipv4_phdr_cksum(ip, 0);
	else
		udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
}
