/*
 * edge.h - the appliance's own IPv4 edge on an Ethernet port (the DPDK
 * port's io lcore, dataplane-private).
 *
 * focusd owns one IPv4 address on the port. Every received frame goes
 * through dp_edge_input, which validates Ethernet, IPv4 and UDP (lengths,
 * header and UDP checksums; fragments are not reassembled: dropped and
 * counted), answers ARP requests for our address and ICMP echo requests
 * to it by rewriting the frame in place, learns neighbours from ARP, and
 * hands back the UDP datagrams addressed to us. Everything else is
 * dropped with a counter saying why.
 *
 * Neighbours: a small ARP cache, filled from ARP traffic addressed to us
 * (RFC 826's merge) and from static entries; learnt ones expire after
 * DP_ARP_TTL_S and are asked again (dp_edge_resolve says when a request
 * is due: at most one a second per address). Next hops: on-link
 * addresses directly, others through the gateway.
 *
 * Frames are plain byte buffers: no mbuf, no EAL, so the unit tests run
 * anywhere. One owner (the io lcore); nothing here allocates.
 */
#ifndef FOCUSD_DP_EDGE_H
#define FOCUSD_DP_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_ether.h>

#define DP_ARP_SLOTS 64
#define DP_ARP_TTL_S 300
#define DP_EDGE_HDR  (14 + 20 + 8) /* Ethernet + IPv4 (no options) + UDP */
/* An ARP frame, padded to Ethernet's minimum (without FCS). */
#define DP_ARP_FRAME 60
/* ICMP errors we send: at most this many a second, in bursts of at most
 * DP_ICMP_ERR_BURST (Linux's icmp_msgs_per_sec and _burst); each quotes
 * as much of the datagram as fits in 576 bytes of IPv4 (RFC 1812). */
#define DP_ICMP_ERR_PER_S 1000
#define DP_ICMP_ERR_BURST 50
#define DP_ICMP_ERR_IP	  576
#define DP_ICMP_ERR_FRAME (14 + DP_ICMP_ERR_IP)

struct dp_edge_stats {
	uint64_t rx_short;	  /* shorter than its headers say */
	uint64_t rx_other_type;	  /* neither IPv4 nor ARP (VLAN, IPv6) */
	uint64_t rx_bad_ip;	  /* version, header or total length */
	uint64_t rx_bad_ip_csum;  /* IPv4 header checksum */
	uint64_t rx_fragments;	  /* not reassembled */
	uint64_t rx_not_ours;	  /* to another address */
	uint64_t rx_other_proto;  /* not UDP, not ICMP echo */
	uint64_t rx_bad_udp;	  /* UDP length */
	uint64_t rx_bad_udp_csum; /* UDP checksum (0: none, accepted) */
	uint64_t rx_udp;	  /* UDP for us: handed on */
	uint64_t arp_ignored;	  /* not for us, or malformed */
	uint64_t arp_replies;	  /* requests for our address answered */
	uint64_t arp_learnt;	  /* neighbours learnt or refreshed */
	uint64_t arp_full;	  /* nothing to learn into */
	uint64_t icmp_echo;	  /* echo requests answered */
	uint64_t icmp_unreach;	  /* port unreachables sent */
	uint64_t icmp_limited;	  /* ... not sent: over the rate */
};

struct dp_arp_entry {
	uint32_t ip; /* network order; 0: free */
	struct rte_ether_addr mac;
	bool known;	     /* mac is valid */
	bool fixed;	     /* static: never expires, never relearnt */
	uint64_t expires_ns; /* learnt ones */
	uint64_t asked_ns;   /* last request sent */
};

struct dp_edge {
	uint32_t addr;		   /* ours, network order */
	uint32_t mask;		   /* on-link prefix, network order */
	uint32_t gw;		   /* next hop beyond it; 0: none */
	struct rte_ether_addr mac; /* the port's */
	struct dp_arp_entry arp[DP_ARP_SLOTS];
	/* ICMP errors: a token bucket, DP_ICMP_ERR_PER_S. */
	uint32_t icmp_tokens;
	uint64_t icmp_refill_ns;
	struct dp_edge_stats st;
};

/* What dp_edge_input made of a UDP datagram for us. */
struct dp_udp_view {
	uint32_t src_ip; /* network order */
	uint16_t src_port, dst_port;
	struct rte_ether_addr src_mac;
	size_t off; /* payload offset in the frame */
	size_t len; /* payload length */
};

/* dp_edge_input's csum_ok: checksums the port's NIC has already found
 * valid (its RX checksum offload). Others are checked here. */
#define DP_RX_IP_CSUM_OK  0x1u /* the IPv4 header's */
#define DP_RX_UDP_CSUM_OK 0x2u /* the UDP datagram's */

/* dp_edge_udp_headers's csum_hw: checksums the NIC computes on transmit
 * (its TX checksum offload); others are computed here. */
#define DP_TX_IP_CSUM  0x1u /* left 0 */
#define DP_TX_UDP_CSUM 0x2u /* seeded with the pseudo-header's sum */

enum dp_edge_verdict {
	DP_EDGE_UDP,   /* *udp describes it */
	DP_EDGE_REPLY, /* rewritten in place into a reply: send it back,
			  *reply_len bytes */
	DP_EDGE_DROP,  /* counted in st */
};

/* addr, mask, gw in network order; gw 0 for none. */
void dp_edge_init(struct dp_edge *e, uint32_t addr, uint32_t mask, uint32_t gw,
		  const struct rte_ether_addr *mac);
enum dp_edge_verdict dp_edge_input(struct dp_edge *e, uint8_t *frame,
				   size_t len, unsigned csum_ok,
				   uint64_t now_ns, struct dp_udp_view *udp,
				   size_t *reply_len);
/*
 * The UDP datagram in frame (len bytes from its Ethernet header: one
 * dp_edge_input took as DP_EDGE_UDP) reached no port of ours: rewrite the
 * frame in place into an ICMP port unreachable to its sender (RFC 1122
 * 4.1.3.1) and return its length; 0, the frame untouched, when it came
 * to a link-layer group address or over the rate (counted).
 * frame must have room for min(len + 28, DP_ICMP_ERR_FRAME) bytes.
 */
size_t dp_edge_port_unreachable(struct dp_edge *e, uint8_t *frame, size_t len,
				uint64_t now_ns);
/* A neighbour that never expires (--neighbours); ENOSPC. */
int dp_edge_arp_static(struct dp_edge *e, uint32_t ip,
		       const struct rte_ether_addr *mac);
/*
 * The Ethernet address to send to ip by (through the gateway if it is
 * not on-link): 0 and *mac; -EAGAIN when unknown, and then, if a request
 * is due, *request_len bytes of an ARP request written to request
 * (DP_ARP_FRAME bytes at least) for the caller to send (else 0);
 * -ENETUNREACH off-link without a gateway. request NULL: only look (no
 * request is due, none is recorded as sent).
 */
int dp_edge_resolve(struct dp_edge *e, uint32_t ip, uint64_t now_ns,
		    struct rte_ether_addr *mac, uint8_t *request,
		    size_t *request_len);
/*
 * Ethernet, IPv4 and UDP headers (DP_EDGE_HDR bytes) at frame, before the
 * plen bytes of payload that follow them: from our address and sport to
 * dst_ip:dport via dst_mac. csum_hw: the DP_TX_ checksums the NIC is to
 * compute; the rest are computed here. Ports in host order.
 */
void dp_edge_udp_headers(const struct dp_edge *e, uint8_t *frame,
			 const struct rte_ether_addr *dst_mac, uint32_t dst_ip,
			 uint16_t sport, uint16_t dport, size_t plen,
			 unsigned csum_hw);

#endif
