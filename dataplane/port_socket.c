/*
 * port_socket.c - the socket port: RTP over kernel UDP sockets.
 *
 * The default port, for laptops, CI and anything without a dedicated NIC.
 * Each RTP endpoint is two UDP sockets bound to rtp_addr:port (RTP, even)
 * and port + 1 (RTCP), opened by the control thread (so a bind failure is
 * known before the SDP answer goes out). The io lcore watches the sockets
 * of installed flows with one epoll set and reads each ready socket with
 * recvmmsg() straight into mbufs; the epoll data is the endpoint slot,
 * with SOCK_RTCP for the RTCP socket.
 *
 * Transmit: a worker sends with a non-blocking sendmmsg() on the endpoint's
 * socket, so that the source port is the one in the SDP and symmetric RTP
 * works through NATs. The kernel cannot batch datagrams of different
 * sockets, so with one packet per leg per tick this is one syscall per leg
 * per tick; the DPDK port batches whole bursts instead. A full socket
 * buffer (EAGAIN) drops the packet and counts it, it never blocks.
 *
 * Ownership: the control thread creates and closes sockets; the io lcore
 * owns the epoll set; workers only send on sockets of legs they own, and the
 * control thread closes a socket only after both the io lcore and the worker
 * have let go of the endpoint.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_mbuf.h>

#include "dataplane/dp_priv.h"

#define SOCK_EVENTS 16
#define SOCK_RTCP   0x80000000u /* epoll data: the slot's RTCP socket */

struct port_socket {
	int epfd;
	struct rte_mbuf *spare[DP_RX_BURST]; /* io lcore: pre-allocated */
	unsigned n_spare;
	struct epoll_event ev[SOCK_EVENTS];
	unsigned n_ev, next_ev; /* ready sockets not read yet */
};

static int
sock_init(struct dp *dp)
{
	struct port_socket *ps = calloc(1, sizeof(*ps));

	if (ps == NULL)
		return ENOMEM;
	ps->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ps->epfd < 0) {
		int err = errno;

		free(ps);
		return err;
	}
	dp->port_state = ps;
	return 0;
}

static void
sock_fini(struct dp *dp)
{
	struct port_socket *ps = dp->port_state;

	for (unsigned i = 0; i < ps->n_spare; i++)
		rte_pktmbuf_free(ps->spare[i]);
	for (uint32_t s = 0; s < dp->n_slots; s++) {
		if (dp->flows[s].active && dp->flows[s].sock >= 0)
			epoll_ctl(ps->epfd, EPOLL_CTL_DEL, dp->flows[s].sock,
				  NULL);
	}
	close(ps->epfd);
	free(ps);
	dp->port_state = NULL;
}

/* A non-blocking UDP socket bound to rtp_addr:port, or -errno. */
static int
sock_bind(struct dp *dp, uint16_t port, int rcvbuf)
{
	struct sockaddr_in sin = {0};
	int fd, err;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sin.sin_family = AF_INET;
	sin.sin_addr = dp->conf.rtp_addr;
	sin.sin_port = htons(port);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	return fd;
}

static int
sock_ep_open(struct dp *dp, struct dp_ep *ep)
{
	/* A larger buffer rides out scheduling hiccups of the io lcore;
	 * RTCP is a packet every few seconds. */
	int fd = sock_bind(dp, ep->local_port, 256 * 1024), rfd;

	if (fd < 0)
		return -fd;
	rfd = sock_bind(dp, (uint16_t)(ep->local_port + 1), 16 * 1024);
	if (rfd < 0) {
		close(fd);
		return -rfd;
	}
	ep->sock = fd;
	ep->rtcp_sock = rfd;
	return 0;
}

static void
sock_ep_close(struct dp *dp, struct dp_ep *ep)
{
	(void)dp;
	if (ep->sock >= 0)
		close(ep->sock);
	if (ep->rtcp_sock >= 0)
		close(ep->rtcp_sock);
}

static int
sock_flow_on(struct dp *dp, uint32_t slot, const struct dp_flow *f)
{
	struct port_socket *ps = dp->port_state;
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = slot};
	int err;

	if (epoll_ctl(ps->epfd, EPOLL_CTL_ADD, f->sock, &ev) < 0)
		return errno;
	if (f->rtcp_sock < 0)
		return 0;
	ev.data.u32 = slot | SOCK_RTCP;
	if (epoll_ctl(ps->epfd, EPOLL_CTL_ADD, f->rtcp_sock, &ev) < 0) {
		err = errno;
		epoll_ctl(ps->epfd, EPOLL_CTL_DEL, f->sock, NULL);
		return err;
	}
	return 0;
}

static void
sock_flow_off(struct dp *dp, uint32_t slot, const struct dp_flow *f)
{
	struct port_socket *ps = dp->port_state;

	epoll_ctl(ps->epfd, EPOLL_CTL_DEL, f->sock, NULL);
	if (f->rtcp_sock >= 0)
		epoll_ctl(ps->epfd, EPOLL_CTL_DEL, f->rtcp_sock, NULL);
	/* Forget readiness already reported for this slot. */
	for (unsigned i = ps->next_ev; i < ps->n_ev; i++) {
		if ((ps->ev[i].data.u32 & ~SOCK_RTCP) == slot)
			ps->ev[i].data.u32 = UINT32_MAX;
	}
}

/* Read one ready socket into the spare mbufs; returns packets read. */
static unsigned
sock_read(struct dp *dp, struct port_socket *ps, uint32_t slot, bool rtcp,
	  struct rte_mbuf **pkts, unsigned room)
{
	struct mmsghdr msgs[DP_RX_BURST];
	struct iovec iov[DP_RX_BURST];
	struct sockaddr_in from[DP_RX_BURST];
	struct rte_mbuf *m[DP_RX_BURST];
	const struct dp_flow *f = &dp->flows[slot];
	int sock = rtcp ? f->rtcp_sock : f->sock;
	uint64_t now = fc_now_ns();
	unsigned got = 0;
	int n;

	if (room > ps->n_spare)
		room = ps->n_spare;
	ps->n_spare -= room;
	for (unsigned i = 0; i < room; i++) {
		m[i] = ps->spare[ps->n_spare + i];
		iov[i].iov_base = rte_pktmbuf_mtod(m[i], void *);
		iov[i].iov_len = rte_pktmbuf_tailroom(m[i]);
		memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &from[i];
		msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
	}
	n = recvmmsg(sock, msgs, room, MSG_DONTWAIT, NULL);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			dp->st.rx_errors++;
		n = 0;
	}
	for (unsigned i = 0; i < room; i++) {
		struct dp_pkt_meta *pm = dp_pkt_meta(m[i]);

		if ((int)i >= n || (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)) {
			/* Unused, or larger than an mbuf (no RTP we take
			 * is): the mbuf goes back to the spares. */
			if ((int)i < n)
				dp->st.rx_malformed++;
			ps->spare[ps->n_spare++] = m[i];
			continue;
		}
		rte_pktmbuf_data_len(m[i]) = (uint16_t)msgs[i].msg_len;
		rte_pktmbuf_pkt_len(m[i]) = msgs[i].msg_len;
		pm->rx_ns = now;
		pm->remote_ip = from[i].sin_addr.s_addr;
		pm->remote_port = from[i].sin_port;
		pm->local_port = (uint16_t)(f->local_port + rtcp);
		pm->slot = slot;
		pm->sock = sock;
		pkts[got++] = m[i];
	}
	return got;
}

static uint16_t
sock_rx_burst(struct dp *dp, struct rte_mbuf **pkts, uint16_t n, int wait_ms)
{
	struct port_socket *ps = dp->port_state;
	unsigned got = 0;
	int k;

	if (ps->n_spare < DP_RX_BURST) {
		unsigned want = DP_RX_BURST - ps->n_spare;

		if (rte_pktmbuf_alloc_bulk(dp->pool, &ps->spare[ps->n_spare],
					   want) == 0)
			ps->n_spare += want;
		else
			dp->st.rx_nombuf++;
	}

	if (ps->next_ev >= ps->n_ev) {
		k = epoll_wait(ps->epfd, ps->ev, SOCK_EVENTS, wait_ms);
		if (k < 0) {
			if (errno != EINTR)
				dp->st.rx_errors++;
			return 0;
		}
		ps->n_ev = (unsigned)k;
		ps->next_ev = 0;
	}

	while (ps->next_ev < ps->n_ev && got < n && ps->n_spare > 0) {
		uint32_t data = ps->ev[ps->next_ev++].data.u32;
		uint32_t slot = data & ~SOCK_RTCP;

		if (data == UINT32_MAX || !dp->flows[slot].active)
			continue;
		/* Level-triggered: what is left is reported again. */
		got += sock_read(dp, ps, slot, (data & SOCK_RTCP) != 0,
				 &pkts[got], n - got);
	}
	return (uint16_t)got;
}

static uint16_t
sock_tx_burst(struct dp *dp, unsigned queue, struct rte_mbuf **pkts, uint16_t n)
{
	struct mmsghdr msgs[DP_RX_BURST];
	struct iovec iov[DP_RX_BURST];
	struct sockaddr_in to[DP_RX_BURST];
	uint16_t sent = 0;

	(void)dp;
	(void)queue;
	/* One sendmmsg() per run of packets on the same socket. */
	for (uint16_t i = 0; i < n;) {
		int sock = dp_pkt_meta(pkts[i])->sock;
		unsigned k = 0;
		int r;

		while (i + k < n && k < DP_RX_BURST &&
		       dp_pkt_meta(pkts[i + k])->sock == sock) {
			struct rte_mbuf *m = pkts[i + k];
			struct dp_pkt_meta *pm = dp_pkt_meta(m);

			to[k] = (struct sockaddr_in){
				.sin_family = AF_INET,
				.sin_port = pm->remote_port,
				.sin_addr.s_addr = pm->remote_ip,
			};
			iov[k].iov_base = rte_pktmbuf_mtod(m, void *);
			iov[k].iov_len = rte_pktmbuf_data_len(m);
			msgs[k].msg_hdr = (struct msghdr){
				.msg_name = &to[k],
				.msg_namelen = sizeof(to[k]),
				.msg_iov = &iov[k],
				.msg_iovlen = 1,
			};
			k++;
		}
		r = sendmmsg(sock, msgs, k, MSG_DONTWAIT);
		if (r > 0)
			sent += (uint16_t)r;
		for (unsigned j = 0; j < k; j++)
			rte_pktmbuf_free(pkts[i + j]);
		i += k;
	}
	return sent;
}

const struct dp_port_ops dp_port_socket = {
	.name = "socket",
	.init = sock_init,
	.fini = sock_fini,
	.ep_open = sock_ep_open,
	.ep_close = sock_ep_close,
	.flow_on = sock_flow_on,
	.flow_off = sock_flow_off,
	.rx_burst = sock_rx_burst,
	.tx_burst = sock_tx_burst,
};
