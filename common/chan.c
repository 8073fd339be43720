/*
 * chan.c - message channels between the control thread and one lcore.
 *
 * Two SP/SC rte_rings of pointers (see common.h for the protocol). The
 * alternative of one MP/MC ring per direction shared by all lcores was
 * rejected: every lcore would contend on one cache line, and a reply could
 * not be matched to the lcore that produced it without extra fields.
 *
 * Cost: a send or a reply is one ring enqueue (a few ns). A kick is one
 * eventfd write per batch of replies.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <rte_errno.h>
#include <rte_ring.h>

#include "common/common.h"

struct fc_chan {
	struct rte_ring *req;			/* control -> lcore */
	struct rte_ring *rep;			/* lcore -> control */
	int efd;				/* borrowed */
	unsigned cap;				/* most messages in flight */
	unsigned in_flight;			/* control thread only */
	struct fc_msg *backlog, **backlog_tail; /* control thread only */
	unsigned n_backlog;
	bool kick_pending; /* lcore only */
};

int
fc_chan_alloc(struct fc_chan **chp, const char *name, unsigned size, int efd)
{
	char rname[RTE_RING_NAMESIZE];
	struct fc_chan *ch;
	int err;

	if (chp == NULL || name == NULL || size < 2 || (size & (size - 1)))
		return EINVAL;

	ch = calloc(1, sizeof(*ch));
	if (ch == NULL)
		return ENOMEM;
	ch->efd = efd;

	if ((size_t)snprintf(rname, sizeof(rname), "%s.req", name) >=
	    sizeof(rname)) {
		err = ENAMETOOLONG;
		goto out;
	}
	ch->req = rte_ring_create(rname, size, SOCKET_ID_ANY,
				  RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (ch->req == NULL) {
		err = rte_errno ? rte_errno : ENOMEM;
		goto out;
	}
	if ((size_t)snprintf(rname, sizeof(rname), "%s.rep", name) >=
	    sizeof(rname)) {
		err = ENAMETOOLONG;
		goto out;
	}
	ch->rep = rte_ring_create(rname, size, SOCKET_ID_ANY,
				  RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (ch->rep == NULL) {
		err = rte_errno ? rte_errno : ENOMEM;
		goto out;
	}
	ch->cap = rte_ring_get_capacity(ch->rep);
	ch->backlog_tail = &ch->backlog;
	*chp = ch;
	return 0;
out:
	fc_chan_free(ch);
	return err;
}

void
fc_chan_free(struct fc_chan *ch)
{
	void *msg;

	if (ch == NULL)
		return;
	/* Messages still queued are owned by nobody else now. */
	while (ch->req && rte_ring_dequeue(ch->req, &msg) == 0)
		free(msg);
	while (ch->rep && rte_ring_dequeue(ch->rep, &msg) == 0)
		free(msg);
	while (ch->backlog) {
		struct fc_msg *m = ch->backlog;

		ch->backlog = m->next;
		free(m);
	}
	rte_ring_free(ch->req);
	rte_ring_free(ch->rep);
	free(ch);
}

static bool
chan_push(struct fc_chan *ch, struct fc_msg *msg)
{
	if (ch->in_flight >= ch->cap || rte_ring_enqueue(ch->req, msg) != 0)
		return false;
	ch->in_flight++;
	return true;
}

int
fc_chan_send(struct fc_chan *ch, struct fc_msg *msg)
{
	msg->next = NULL;
	if (ch->backlog == NULL && chan_push(ch, msg))
		return 0;
	/* Full: keep it, in order, for fc_chan_collect(). */
	*ch->backlog_tail = msg;
	ch->backlog_tail = &msg->next;
	ch->n_backlog++;
	return 0;
}

static void
chan_flush(struct fc_chan *ch)
{
	while (ch->backlog && chan_push(ch, ch->backlog)) {
		ch->backlog = ch->backlog->next;
		ch->n_backlog--;
	}
	if (ch->backlog == NULL)
		ch->backlog_tail = &ch->backlog;
}

unsigned
fc_chan_collect(struct fc_chan *ch)
{
	void *msgs[32];
	unsigned n, total = 0;

	do {
		n = rte_ring_dequeue_burst(ch->rep, msgs, FC_ARRAY_SIZE(msgs),
					   NULL);
		for (unsigned i = 0; i < n; i++) {
			struct fc_msg *m = msgs[i];

			ch->in_flight--;
			if (m->done)
				m->done(m);
			free(m);
		}
		total += n;
	} while (n == FC_ARRAY_SIZE(msgs));
	chan_flush(ch);
	return total;
}

unsigned
fc_chan_in_flight(const struct fc_chan *ch)
{
	return ch->in_flight + ch->n_backlog;
}

unsigned
fc_chan_take(struct fc_chan *ch, struct fc_msg **msgs, unsigned n)
{
	return rte_ring_dequeue_burst(ch->req, (void **)msgs, n, NULL);
}

void
fc_chan_reply(struct fc_chan *ch, struct fc_msg *msg)
{
	/* Cannot fail: the control thread keeps in_flight <= capacity. */
	rte_ring_enqueue(ch->rep, msg);
	ch->kick_pending = true;
}

void
fc_chan_kick(struct fc_chan *ch)
{
	uint64_t one = 1;

	if (!ch->kick_pending)
		return;
	ch->kick_pending = false;
	if (ch->efd >= 0 && write(ch->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, the reader wakes anyway. */
	}
}
