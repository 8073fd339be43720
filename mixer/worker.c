/*
 * worker.c - one mixer lcore: its conferences, legs and tick.
 *
 * State: everything in struct mix_worker, and every conference and leg
 * attached to it, belongs to the worker's lcore. The control thread only
 * builds them before attach and frees them after detach (see mixer.h).
 *
 * Receive: packets come from the io lcore's ring for this worker. Each is
 * matched to its leg by endpoint slot, checked against the peer's address
 * (symmetric RTP: the first valid RTP packet received after the leg was
 * built latches the address we send to;
 * after that, packets from anywhere else are counted and dropped), parsed,
 * and put, still encoded, into the leg's adaptive jitter buffer (jbuf.c:
 * reordering, duplicates, late packets, jumps, new SSRCs, depth from the
 * measured jitter, a packet dropped now and then when the sender's clock
 * runs fast). At each tick the leg's PCM FIFO is topped up to one frame
 * from it: a packet is decoded (codec.c, at the conference's rate); a lost
 * one is concealed (Opus FEC from the packet after it, else Opus PLC;
 * SpanDSP PLC for G.711 and G.722); a buffer that ran dry is concealed for
 * up to PLC_MAX_FRAMES ticks, then the leg falls silent and rebuffers.
 *
 * Tick: every 20 ms of the monotonic clock, counted from the first poll
 * (absolute deadlines, so ticks do not drift with processing time). A tick
 * that starts more than one period late counts an overrun; more than five
 * periods late (the lcore was descheduled), the clock is re-based instead
 * of bursting the backlog. Per conference: one pass summing talkers, one
 * pass per listener for mix-minus, encode and packetize.
 *
 * Costs per tick: O(legs) frame-sized loops, one mbuf per listener; no
 * allocation (mbufs come from the mempool's per-lcore cache), no lock, no
 * syscall but the port's transmit, no formatted log.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <stdio.h>

#include <math.h>

#include <spandsp.h>

#include <rte_common.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "mixer/codec.h"
#include "mixer/jbuf.h"
#include "mixer/mixer.h"

#define FIFO_CAP	4096 /* samples, power of two: > 3 frames at 48 kHz */
#define MAX_PKT_SAMPLES 2880 /* 60 ms at 48 kHz */
#define MAX_PAYLOAD	1200 /* bytes of one encoded frame */
#define RX_BURST	64
#define RX_PASSES	8
#define TX_BURST	64
#define CHAN_SIZE	1024
#define EVENT_SLOTS	32
#define LOBBY_SLOTS	2  /* event slots conferences leave to lobbies */
#define DIGITS_PER_S	10 /* a conference reports from a leg at most */
#define PLC_MAX_FRAMES	3  /* ticks concealed after the buffer ran dry */
#define MIX_GROUPS	8  /* shared encoders per conference */
#define MAX_CANDIDATES	64 /* speakers ranked for the seats at once */
#define GATE_MS		(200 * 200) /* mean square: RMS 200, about -44 dBFS */
#define HANGOVER_TICKS	10 /* 200 ms a talker stays one after falling silent */
#define SEAT_BONUS	4  /* a seated talker's score counts 6 dB more */
/* Ticks a former talker stays on its own encoder at most, waiting for a
 * quiet moment to move back to the shared encode (see listener_send):
 * G.722's states converge by then; Opus's never do. */
#define CONVERGE_TICKS_G722 10
#define RETURN_MAX_TICKS    100
/* RFC 6464 levels (-dBov) at which a packet counts as silence: 6 dB
 * under the talker gate, for senders that measure a little differently. */
#define LEVEL_SILENT 50
#define JB_MIN_MS    20 /* bounds of the jitter buffer's depth */
/* RTCP: the first report, then every 2.5 to 7.5 s (5 s on average,
 * RFC 3550 6.2's minimum, randomized by half either way). */
#define RTCP_FIRST_TICKS 50
#define RTCP_TICKS	 250
#define NTP_UNIX	 2208988800ull /* 1900 to 1970, in seconds */
#define MAX_DROPOUT	 3000	       /* RFC 3550 A.1 */
#define MAX_MISORDER	 100
#define JB_MAX_MS	 200

struct mix_leg {
	/* Fields every tick's passes over the legs read come first, on
	 * the leg's first cache lines; the frame buffers last. */
	TAILQ_ENTRY(mix_leg) link;
	TAILQ_ENTRY(mix_leg) ret_link; /* while returning */
	struct mix_conf *conf;	       /* borrowed */
	struct mix_cs *cs;	 /* its codecs, at the conference's rate */
	struct mix_group *group; /* its shared encoder, or NULL */
	struct mix_jb *jb;	 /* encoded packets, in order */
	bool talking;		 /* contributed to this tick's sum */
	bool seated;		 /* mixed this tick (one of the loudest N) */
	bool on_shared;		 /* listening on its group's encode */
	bool sent_first;
	bool dtx_gap;	/* nothing sent since a DTX tick: mark the next */
	bool returning; /* on conf->returning (see listener_send) */
	/* talker detection and selection */
	unsigned hang;		   /* ticks left of the hangover */
	uint64_t energy;	   /* mean square of this tick's frame */
	uint64_t score;		   /* smoothed energy, for ranking talkers */
	int32_t gain_q8;	   /* p.gain_db as a factor, 256 = 0 dB */
	unsigned converge;	   /* G.722: ticks left before it may go back */
	unsigned ts_step;	   /* RTP timestamp units per tick */
	unsigned plc_run;	   /* ticks concealed since real audio */
	uint32_t fifo_rd, fifo_wr; /* free-running sample counters */
	/* transmit */
	uint16_t seq;
	uint32_t ts;
	uint64_t rtcp_next; /* tick our next RTCP report is due */
	/* every packet: the peer's source as received (RFC 3550 A.1), and
	 * where it comes from on the wire (DPDK port: the next hop) */
	bool have_peer;
	uint16_t max_seq;
	uint32_t peer_ssrc;
	uint32_t cycles, received;
	struct rte_ether_addr remote_mac;

	struct mix_leg_params p;
	struct mix_leg_stats st;
	uint64_t attached_ns; /* packets received before are a past call's */

	/* digits (application conferences) */
	struct mix_worker *w;  /* borrowed: set at attach */
	dtmf_rx_state_t *dtmf; /* in-band detector, or NULL */
	uint32_t last_te_ts;   /* RFC 4733: the event last reported */
	bool have_te_ts;
	uint64_t te_tick; /* a conference's digits: the second's first tick */
	unsigned te_n;	  /* and digits in it */

	/* RTCP (RFC 3550 6): what our reports last said of the peer's
	 * source, its last SR, where its RTCP comes from. */
	uint16_t base_seq;
	uint32_t expected_prior, received_prior;
	uint32_t lsr;	    /* middle 32 bits of its last SR's NTP time */
	uint64_t lsr_at_ns; /* when that SR came */
	bool rtcp_latched;
	uint32_t rtcp_ip;
	uint16_t rtcp_port; /* network order */
	uint32_t rtcp_rng;

	int16_t in[MIX_MAX_FRAME]; /* this tick's frame */
	int16_t fifo[FIFO_CAP];	   /* decoded, not yet mixed */
};

/*
 * A shared encoder: every listener of the conference whose codec and
 * encoder settings match (mix_cs_same_encoder) and who is not a talker
 * gets the same payload of the full mix, encoded once per tick; only the
 * RTP header differs per leg.
 */
struct mix_group {
	struct mix_cs *cs; /* NULL: slot free */
	unsigned users;
	uint64_t tick; /* the tick payload was encoded for */
	int len;       /* its length; 0: DTX, nothing to send */
	uint8_t payload[MAX_PAYLOAD];
};

struct mix_conf {
	TAILQ_ENTRY(mix_conf) link;
	TAILQ_HEAD(, mix_leg) legs;
	/* Former talkers on their own encoders until they go back to the
	 * shared one: few, so the tick need not look at every leg. */
	TAILQ_HEAD(, mix_leg) returning;
	unsigned n_legs;
	unsigned rate;	      /* Hz */
	unsigned frame;	      /* samples per tick */
	unsigned max_talkers; /* mixed at once; 0: everybody */
	struct mix_group groups[MIX_GROUPS];
	/* application conference: the prompt everyone hears */
	int16_t *prompt;
	unsigned prompt_len, prompt_pos;
};

struct mix_worker {
	struct dp *dp;		  /* borrowed */
	struct rte_ring *rx;	  /* borrowed from the dataplane */
	struct rte_mempool *pool; /* borrowed */
	struct fc_chan *chan;
	unsigned index;

	struct mix_leg **by_slot; /* endpoint slot -> leg on this worker */
	uint32_t n_slots;
	TAILQ_HEAD(, mix_conf) confs;

	uint64_t next_tick;
	struct mix_worker_stats st;
	struct rte_mbuf *tx[TX_BURST];
	uint16_t n_tx;
	int16_t pcm[MAX_PKT_SAMPLES]; /* one packet decoded */
	/* The conference being ticked: the sum of its seated talkers and
	 * the full mix, saturated. The worker's, not each conference's:
	 * one tick's conferences then share the same cache lines. */
	int32_t acc[MIX_MAX_FRAME];
	int16_t all[MIX_MAX_FRAME];
	struct mix_cmd *slots[EVENT_SLOTS]; /* event messages held */
	unsigned n_slots_held;
	unsigned slots_out; /* control thread only: slots sent, not back */
	volatile bool quit;
} __rte_cache_aligned;

enum mix_cmd_type {
	MIX_CMD_CONF_ATTACH = 1,
	MIX_CMD_CONF_DETACH,
	MIX_CMD_LEG_ATTACH,
	MIX_CMD_LEG_UPDATE,
	MIX_CMD_LEG_DETACH,
	MIX_CMD_STATS,
	MIX_CMD_EVENT_SLOT, /* an empty message for the worker to report in */
};

struct mix_cmd {
	struct fc_msg msg;
	struct mix_conf *conf;
	struct mix_leg *leg;
	struct mix_leg_params p;
	mix_done_h *done;
	mix_stats_h *stats;
	void *arg;
	struct mix_worker_stats ws;
	unsigned n;
	struct mix_leg **legs;	  /* n of them, after this struct */
	struct mix_leg_stats *ls; /* n of them, after legs */
	mix_event_h *event;	  /* MIX_CMD_EVENT_SLOT */
	void *owner;
	struct mix_worker *arg2; /* the worker it was sent to */
	char digit;		 /* 0: the slot came back unused */
	struct mix_cs *cs;	 /* LEG_UPDATE: the new codec state, or the
				    one it replaced; freed with the reply */
};

/* ---- control thread ---------------------------------------------------- */

int
mix_worker_alloc(struct mix_worker **wp, struct dp *dp, unsigned index, int efd)
{
	struct mix_worker *w;
	char name[32];
	int err;

	if (wp == NULL || dp == NULL)
		return EINVAL;
	w = rte_zmalloc_socket("mix.worker", sizeof(*w), RTE_CACHE_LINE_SIZE,
			       SOCKET_ID_ANY);
	if (w == NULL)
		return ENOMEM;
	w->dp = dp;
	w->index = index;
	w->rx = dp_worker_ring(dp, index);
	w->pool = dp_pool(dp);
	w->n_slots = dp_ep_slots(dp);
	TAILQ_INIT(&w->confs);
	w->by_slot = calloc(w->n_slots, sizeof(*w->by_slot));
	if (w->by_slot == NULL) {
		err = ENOMEM;
		goto out;
	}
	snprintf(name, sizeof(name), "mix.w%u", index);
	err = fc_chan_alloc(&w->chan, name, CHAN_SIZE, efd);
	if (err)
		goto out;
	*wp = w;
	return 0;
out:
	mix_worker_free(w);
	return err;
}

void
mix_worker_free(struct mix_worker *w)
{
	struct mix_conf *c;
	struct mix_leg *l;

	if (w == NULL)
		return;
	/* Whatever is still attached comes back to us now. */
	while ((c = TAILQ_FIRST(&w->confs)) != NULL) {
		TAILQ_REMOVE(&w->confs, c, link);
		while ((l = TAILQ_FIRST(&c->legs)) != NULL) {
			TAILQ_REMOVE(&c->legs, l, link);
			mix_leg_free(l);
		}
		mix_conf_free(c);
	}
	for (unsigned i = 0; i < w->n_tx; i++)
		rte_pktmbuf_free(w->tx[i]);
	for (unsigned i = 0; i < w->n_slots_held; i++)
		free(w->slots[i]);
	fc_chan_free(w->chan);
	free(w->by_slot);
	rte_free(w);
}

unsigned
mix_worker_index(const struct mix_worker *w)
{
	return w->index;
}

void
mix_worker_stop(struct mix_worker *w)
{
	w->quit = true;
}

void
mix_collect(struct mix_worker *w)
{
	fc_chan_collect(w->chan);
}

unsigned
mix_in_flight(const struct mix_worker *w)
{
	/* Event slots wait in the worker on purpose: not "in flight". */
	return fc_chan_in_flight(w->chan) - w->slots_out;
}

bool
mix_rate_valid(unsigned rate)
{
	return rate == 8000 || rate == 16000 || rate == 24000 || rate == 48000;
}

int
mix_conf_alloc(struct mix_conf **cp, unsigned rate)
{
	struct mix_conf *c;

	if (cp == NULL || !mix_rate_valid(rate))
		return EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return ENOMEM;
	TAILQ_INIT(&c->legs);
	TAILQ_INIT(&c->returning);
	c->rate = rate;
	c->frame = rate * MIX_PTIME_MS / 1000;
	*cp = c;
	return 0;
}

int
mix_conf_alloc_app(struct mix_conf **cp)
{
	struct mix_conf *c;
	int err = mix_conf_alloc(&c, MIX_RATE); /* DTMF runs at 8 kHz */

	if (err)
		return err;
	/* 1.5 s: 200 ms of 800 Hz at -15 dBFS, then silence. */
	c->prompt_len = 75 * MIX_FRAME;
	c->prompt = calloc(c->prompt_len, sizeof(*c->prompt));
	if (c->prompt == NULL) {
		mix_conf_free(c);
		return ENOMEM;
	}
	for (unsigned i = 0; i < 10 * MIX_FRAME; i++)
		c->prompt[i] = (int16_t)(5800.0 *
					 sin(2 * M_PI * 800.0 * i / MIX_RATE));
	*cp = c;
	return 0;
}

void
mix_conf_free(struct mix_conf *c)
{
	if (c) {
		free(c->prompt);
		for (unsigned i = 0; i < MIX_GROUPS; i++)
			mix_cs_free(c->groups[i].cs);
	}
	free(c);
}

int
mix_conf_set_talkers(struct mix_conf *c, unsigned n)
{
	if (c == NULL)
		return EINVAL;
	c->max_talkers = n;
	return 0;
}

/* A gain in dB as a Q8 factor; at a leg's updates only, never a frame. */
static int32_t
gain_q8(int db)
{
	if (db < -24)
		db = -24;
	if (db > 24)
		db = 24;
	return (int32_t)lround(256.0 * pow(10.0, db / 20.0));
}

int
mix_leg_alloc(struct mix_leg **lp, const struct mix_leg_params *p)
{
	struct mix_leg *l;
	int err;

	if (lp == NULL || p == NULL || p->codec >= MIX_CODEC_COUNT ||
	    !mix_rate_valid(p->rate))
		return EINVAL;
	l = fc_big_alloc(sizeof(*l));
	if (l == NULL)
		return ENOMEM;
	err = mix_cs_alloc(&l->cs, p, p->rate);
	if (err) {
		fc_big_free(l, sizeof(*l));
		return err;
	}
	l->jb = fc_big_alloc(mix_jb_size());
	if (l->jb == NULL) {
		mix_cs_free(l->cs);
		fc_big_free(l, sizeof(*l));
		return ENOMEM;
	}
	mix_jb_init(l->jb, mix_cs_ts_per_ms(l->cs) * 1000, JB_MIN_MS,
		    JB_MAX_MS);
	l->ts_step = MIX_PTIME_MS * mix_cs_ts_per_ms(l->cs);
	l->p = *p;
	l->gain_q8 = gain_q8(p->gain_db);
	l->attached_ns = fc_now_ns();
	l->seq = p->seq;
	l->ts = p->ts;
	l->st.remote_ip = p->remote_ip;
	l->st.remote_port = p->remote_port;
	l->st.rtt_ms = -1;
	*lp = l;
	return 0;
}

static void leg_dtmf_digits(void *arg, const char *digits, int len);

int
mix_leg_alloc_dtmf(struct mix_leg *l)
{
	if (l == NULL)
		return EINVAL;
	if (l->dtmf == NULL)
		l->dtmf = dtmf_rx_init(NULL, leg_dtmf_digits, l);
	return l->dtmf ? 0 : ENOMEM;
}

int
mix_leg_set_rate(struct mix_leg *l, unsigned rate)
{
	struct mix_cs *cs;
	int err;

	if (l == NULL || !mix_rate_valid(rate))
		return EINVAL;
	if (rate == l->p.rate)
		return 0;
	err = mix_cs_alloc(&cs, &l->p, rate);
	if (err)
		return err;
	mix_cs_free(l->cs);
	l->cs = cs;
	l->p.rate = rate;
	mix_jb_init(l->jb, mix_cs_ts_per_ms(l->cs) * 1000, JB_MIN_MS,
		    JB_MAX_MS);
	l->plc_run = 0;
	l->fifo_rd = l->fifo_wr = 0;
	return 0;
}

void
mix_leg_free(struct mix_leg *l)
{
	if (l && l->dtmf)
		dtmf_rx_free(l->dtmf);
	if (l) {
		mix_cs_free(l->cs);
		fc_big_free(l->jb, mix_jb_size());
	}
	fc_big_free(l, sizeof(*l));
}

static int event_slot_post(struct mix_worker *w, mix_event_h *h, void *arg);

static void
mix_cmd_done(struct fc_msg *msg)
{
	struct mix_cmd *c = (struct mix_cmd *)msg;

	if (c->msg.type == MIX_CMD_EVENT_SLOT) {
		struct mix_worker *w = c->arg2;

		w->slots_out--;
		if (c->digit)
			c->event(c->arg, c->owner, c->digit);
		/* Give the worker a fresh one unless it is stopping. */
		if (c->digit && !w->quit)
			event_slot_post(w, c->event, c->arg);
		return;
	}
	if (c->msg.type == MIX_CMD_STATS) {
		if (c->stats)
			c->stats(c->arg, -c->msg.result, &c->ws, c->ls, c->n);
	} else if (c->done) {
		c->done(c->arg, -c->msg.result);
	}
	mix_cs_free(c->cs); /* an update's unused or replaced codecs */
}

static int
mix_cmd_send(struct mix_worker *w, struct mix_cmd *c)
{
	int err;

	c->msg.done = mix_cmd_done;
	err = fc_chan_send(w->chan, &c->msg);
	if (err) {
		mix_cs_free(c->cs);
		free(c);
		return -err;
	}
	return 0;
}

static struct mix_cmd *
mix_cmd_new(int type, struct mix_conf *conf, struct mix_leg *leg,
	    mix_done_h *done, void *arg)
{
	struct mix_cmd *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->msg.type = type;
	c->conf = conf;
	c->leg = leg;
	c->done = done;
	c->arg = arg;
	return c;
}

int
mix_conf_attach(struct mix_worker *w, struct mix_conf *c, mix_done_h *done,
		void *arg)
{
	struct mix_cmd *cmd;

	if (w == NULL || c == NULL)
		return EINVAL;
	cmd = mix_cmd_new(MIX_CMD_CONF_ATTACH, c, NULL, done, arg);
	return cmd ? mix_cmd_send(w, cmd) : ENOMEM;
}

int
mix_conf_detach(struct mix_worker *w, struct mix_conf *c, mix_done_h *done,
		void *arg)
{
	struct mix_cmd *cmd;

	if (w == NULL || c == NULL)
		return EINVAL;
	cmd = mix_cmd_new(MIX_CMD_CONF_DETACH, c, NULL, done, arg);
	return cmd ? mix_cmd_send(w, cmd) : ENOMEM;
}

int
mix_leg_attach(struct mix_worker *w, struct mix_conf *c, struct mix_leg *l,
	       mix_done_h *done, void *arg)
{
	struct mix_cmd *cmd;

	if (w == NULL || c == NULL || l == NULL || l->p.ep.slot >= w->n_slots)
		return EINVAL;
	cmd = mix_cmd_new(MIX_CMD_LEG_ATTACH, c, l, done, arg);
	if (cmd == NULL)
		return ENOMEM;
	/* An encoder the conference may adopt as the shared one for l's
	 * codec, if it has none yet; else it comes back and is freed. */
	if (mix_cs_alloc(&cmd->cs, &l->p, l->p.rate) != 0)
		cmd->cs = NULL; /* l will encode for itself */
	return mix_cmd_send(w, cmd);
}

int
mix_leg_update(struct mix_worker *w, struct mix_leg *l,
	       const struct mix_leg_params *p, mix_done_h *done, void *arg)
{
	struct mix_cmd *cmd;

	int err;

	if (w == NULL || l == NULL || p == NULL ||
	    p->codec >= MIX_CODEC_COUNT || !mix_rate_valid(p->rate))
		return EINVAL;
	cmd = mix_cmd_new(MIX_CMD_LEG_UPDATE, NULL, l, done, arg);
	if (cmd == NULL)
		return ENOMEM;
	cmd->p = *p;
	/* The worker takes these codecs if the codec changed, else they
	 * come back unused; either way the reply frees what it carries. */
	err = mix_cs_alloc(&cmd->cs, p, p->rate);
	if (err) {
		free(cmd);
		return err;
	}
	return mix_cmd_send(w, cmd);
}

int
mix_leg_detach(struct mix_worker *w, struct mix_leg *l, mix_done_h *done,
	       void *arg)
{
	struct mix_cmd *cmd;

	if (w == NULL || l == NULL)
		return EINVAL;
	cmd = mix_cmd_new(MIX_CMD_LEG_DETACH, NULL, l, done, arg);
	return cmd ? mix_cmd_send(w, cmd) : ENOMEM;
}

static int
event_slot_post(struct mix_worker *w, mix_event_h *h, void *arg)
{
	struct mix_cmd *c =
		mix_cmd_new(MIX_CMD_EVENT_SLOT, NULL, NULL, NULL, arg);
	int err;

	if (c == NULL)
		return ENOMEM;
	c->event = h;
	c->arg2 = w;
	err = mix_cmd_send(w, c);
	if (err == 0)
		w->slots_out++;
	return err;
}

int
mix_events_start(struct mix_worker *w, unsigned slots, mix_event_h *h,
		 void *arg)
{
	if (w == NULL || h == NULL || slots == 0 || slots > EVENT_SLOTS)
		return EINVAL;
	for (unsigned i = 0; i < slots; i++) {
		int err = event_slot_post(w, h, arg);

		if (err)
			return err;
	}
	return 0;
}

int
mix_stats_get(struct mix_worker *w, struct mix_leg *const *legs, unsigned n,
	      mix_stats_h *h, void *arg)
{
	struct mix_cmd *c;

	if (w == NULL || h == NULL || (n && legs == NULL))
		return EINVAL;
	c = calloc(1, sizeof(*c) + n * (sizeof(*c->legs) + sizeof(*c->ls)));
	if (c == NULL)
		return ENOMEM;
	c->msg.type = MIX_CMD_STATS;
	c->stats = h;
	c->arg = arg;
	c->n = n;
	c->legs = (struct mix_leg **)(c + 1);
	c->ls = (struct mix_leg_stats *)(c->legs + n);
	if (n)
		memcpy(c->legs, legs, n * sizeof(*legs));
	return mix_cmd_send(w, c);
}

/* ---- worker lcore ------------------------------------------------------ */

static void
leg_reset_rx(struct mix_leg *l)
{
	/* The codec may have changed: the clock with it. */
	mix_jb_init(l->jb, mix_cs_ts_per_ms(l->cs) * 1000, JB_MIN_MS,
		    JB_MAX_MS);
	l->plc_run = 0;
	l->fifo_rd = l->fifo_wr = 0;
}

/* The shared encoder for l's codec: found, adopted from the attach
 * command's spare, or none (l encodes for itself). */
static void
group_join(struct mix_conf *conf, struct mix_leg *l, struct mix_cmd *c)
{
	struct mix_group *free_slot = NULL;

	l->group = NULL;
	l->converge = 0;
	l->on_shared = false;
	/* Shared encoders make one 20 ms payload a tick: another ptime
	 * has its own encoder. */
	if (mix_cs_ptime(l->cs) != MIX_PTIME_MS)
		return;
	for (unsigned i = 0; i < MIX_GROUPS; i++) {
		struct mix_group *g = &conf->groups[i];

		if (g->cs && mix_cs_same_encoder(g->cs, l->cs)) {
			l->group = g;
			break;
		}
		if (g->cs == NULL && free_slot == NULL)
			free_slot = g;
	}
	if (l->group == NULL && free_slot == NULL) {
		/* All slots taken: one nobody uses any more is reclaimed;
		 * its encoder goes back in the reply and is freed there. */
		for (unsigned i = 0; i < MIX_GROUPS && !free_slot; i++) {
			if (conf->groups[i].users == 0)
				free_slot = &conf->groups[i];
		}
	}
	if (l->group == NULL && free_slot && c->cs &&
	    mix_cs_same_encoder(c->cs, l->cs)) {
		struct mix_cs *old = free_slot->cs;

		free_slot->cs = c->cs; /* adopted: the conference frees it */
		c->cs = old;	       /* NULL, or reclaimed: the reply's */
		free_slot->tick = 0;
		l->group = free_slot;
	}
	/* A new decoder can start on the shared encode at once. */
	l->on_shared = l->group != NULL;
	if (l->group)
		l->group->users++;
}

static void
leg_returned(struct mix_leg *l)
{
	if (l->returning)
		TAILQ_REMOVE(&l->conf->returning, l, ret_link);
	l->returning = false;
}

static void
group_leave(struct mix_leg *l)
{
	leg_returned(l);
	if (l->group)
		l->group->users--; /* kept for the next leg of its kind */
	l->group = NULL;
}

static int
cmd_leg_attach(struct mix_worker *w, struct mix_cmd *c)
{
	struct mix_leg *l = c->leg;
	uint32_t slot = l->p.ep.slot;

	if (w->by_slot[slot] != NULL)
		return -EEXIST;
	if (l->p.rate != c->conf->rate)
		return -EINVAL; /* mix_leg_set_rate first */
	l->conf = c->conf;
	group_join(c->conf, l, c);
	l->w = w;
	/* The first report a second in (RFC 3550 6.2: half an interval);
	 * its own random sequence spreads the legs' reports apart. */
	l->rtcp_rng = l->p.ssrc | 1;
	l->rtcp_next = w->st.ticks + RTCP_FIRST_TICKS;
	TAILQ_INSERT_TAIL(&c->conf->legs, l, link);
	c->conf->n_legs++;
	w->by_slot[slot] = l;
	w->st.legs++;
	return 0;
}

static bool
codec_changed(const struct mix_leg_params *a, const struct mix_leg_params *b)
{
	return a->codec != b->codec || a->opus_fec != b->opus_fec ||
	       a->opus_dtx != b->opus_dtx ||
	       a->opus_maxrate != b->opus_maxrate ||
	       a->opus_bitrate != b->opus_bitrate || a->rate != b->rate ||
	       a->ptime_ms != b->ptime_ms;
}

static int
cmd_leg_update(struct mix_worker *w, struct mix_leg *l, struct mix_cmd *c)
{
	const struct mix_leg_params *p = &c->p;

	/* Not ours (an update raced a move), or for another rate: refused,
	 * never applied to state another worker may own. */
	if (w->by_slot[l->p.ep.slot] != l ||
	    (l->conf && p->rate != l->conf->rate))
		return -ESTALE;

	if (p->remote_ip != l->p.remote_ip ||
	    p->remote_port != l->p.remote_port) {
		/* New SDP address: learn the peer's source again. */
		l->st.latched = false;
		l->rtcp_latched = false;
		memset(&l->remote_mac, 0, sizeof(l->remote_mac));
		l->st.remote_ip = p->remote_ip;
		l->st.remote_port = p->remote_port;
	}
	if (codec_changed(p, &l->p)) {
		struct mix_cs *old = l->cs;

		l->cs = c->cs; /* the reply frees the old one */
		c->cs = old;
		if (l->conf) {
			/* Another codec: another shared encoder, if the
			 * conference has one already. */
			struct mix_cmd none = {0};

			group_leave(l);
			group_join(l->conf, l, &none);
		}
		l->ts_step = MIX_PTIME_MS * mix_cs_ts_per_ms(l->cs);
		leg_reset_rx(l);
	}
	if (p->codec != l->p.codec || p->pt != l->p.pt ||
	    (!p->mix_in && l->p.mix_in))
		leg_reset_rx(l);
	/* Events follow the codec's clock, and may change with it. */
	if (l->p.have_te != p->have_te || l->p.te_pt != p->te_pt)
		l->have_te_ts = false;
	/* What codec_changed compares is the new codec state's, or the
	 * same as before. */
	l->p.opus_fec = p->opus_fec;
	l->p.opus_dtx = p->opus_dtx;
	l->p.opus_maxrate = p->opus_maxrate;
	l->p.opus_bitrate = p->opus_bitrate;
	l->p.rate = p->rate;
	l->p.ptime_ms = p->ptime_ms;
	l->p.te_pt = p->te_pt;
	l->p.have_te = p->have_te;
	l->p.level_id = p->level_id;
	l->p.codec = p->codec;
	l->p.pt = p->pt;
	l->p.remote_ip = p->remote_ip;
	l->p.remote_port = p->remote_port;
	l->p.mix_in = p->mix_in;
	l->p.mix_out = p->mix_out;
	l->p.gain_db = p->gain_db;
	l->gain_q8 = gain_q8(p->gain_db);
	return 0;
}

static int
cmd_leg_detach(struct mix_worker *w, struct mix_leg *l)
{
	uint32_t slot = l->p.ep.slot;

	if (w->by_slot[slot] != l)
		return -ENOENT;
	w->by_slot[slot] = NULL;
	group_leave(l);
	TAILQ_REMOVE(&l->conf->legs, l, link);
	l->conf->n_legs--;
	l->conf = NULL;
	w->st.legs--;
	return 0;
}

static void
leg_stats(const struct mix_leg *l, struct mix_leg_stats *out)
{
	struct mix_jb_stats jb;

	mix_jb_stats(l->jb, &jb);
	*out = l->st;
	out->rx_overflow = jb.dropped;
	out->rx_lost = jb.lost;
	out->jitter_ms = jb.jitter_ms;
	out->jb_target = jb.target;
}

static void
mix_commands(struct mix_worker *w)
{
	struct fc_msg *msgs[16];
	unsigned n;

	n = fc_chan_take(w->chan, msgs, FC_ARRAY_SIZE(msgs));
	for (unsigned i = 0; i < n; i++) {
		struct mix_cmd *c = (struct mix_cmd *)msgs[i];
		int r = 0;

		switch (c->msg.type) {
		case MIX_CMD_CONF_ATTACH:
			TAILQ_INSERT_TAIL(&w->confs, c->conf, link);
			w->st.confs++;
			break;
		case MIX_CMD_CONF_DETACH:
			if (c->conf->n_legs) {
				r = -EBUSY;
				break;
			}
			TAILQ_REMOVE(&w->confs, c->conf, link);
			w->st.confs--;
			break;
		case MIX_CMD_LEG_ATTACH:
			r = cmd_leg_attach(w, c);
			break;
		case MIX_CMD_LEG_UPDATE:
			r = cmd_leg_update(w, c->leg, c);
			break;
		case MIX_CMD_LEG_DETACH:
			r = cmd_leg_detach(w, c->leg);
			break;
		case MIX_CMD_EVENT_SLOT:
			if (w->n_slots_held < EVENT_SLOTS) {
				w->slots[w->n_slots_held++] = c;
				continue; /* kept: it comes back with a digit */
			}
			c->digit = 0;
			break;
		case MIX_CMD_STATS:
			c->ws = w->st;
			c->ws.index = w->index;
			for (unsigned k = 0; k < c->n; k++) {
				if (c->legs[k]) /* NULL: not ours to read */
					leg_stats(c->legs[k], &c->ls[k]);
			}
			break;
		default:
			r = -ENOTSUP;
		}
		c->msg.result = r;
		fc_chan_reply(w->chan, &c->msg);
	}
	fc_chan_kick(w->chan);
}

/* Report a digit to the control thread in a held slot. */
static void
leg_event(struct mix_leg *l, char digit)
{
	struct mix_worker *w = l->w;
	struct mix_cmd *c;

	l->st.rx_dtmf++;
	if (w->n_slots_held == 0) {
		w->st.events_lost++;
		return;
	}
	c = w->slots[--w->n_slots_held];
	c->owner = l->p.owner;
	c->digit = digit;
	c->msg.result = 0;
	fc_chan_reply(w->chan, &c->msg);
}

/* SpanDSP's in-band detector found digits (called inside dtmf_rx()). */
static void
leg_dtmf_digits(void *arg, const char *digits, int len)
{
	struct mix_leg *l = arg;

	for (int i = 0; i < len; i++)
		leg_event(l, digits[i]);
}

/* RFC 4733 section 2.3: event, E bit, volume, duration. Borrows b. */
static void
leg_rx_te(struct mix_leg *l, const uint8_t *b, const struct dp_rtp_hdr *h)
{
	static const char digit[16] = "0123456789*#ABCD";
	const uint8_t *pl = b + h->hdr_len;

	if (h->payload_len < 4 || pl[0] > 15 || !(pl[1] & 0x80))
		return; /* not a DTMF event, or not its end yet */
	/* The end packet is sent three times: report one event once. */
	if (l->have_te_ts && h->ts == l->last_te_ts)
		return;
	l->have_te_ts = true;
	l->last_te_ts = h->ts;
	if (l->conf && !l->conf->prompt) {
		/* A conference only reports digits (never mixed): at most
		 * DIGITS_PER_S a second from a leg, and never in the last
		 * slots, which lobbies need; the rest are only counted. */
		if (l->w->st.ticks - l->te_tick >= 1000 / MIX_PTIME_MS) {
			l->te_tick = l->w->st.ticks;
			l->te_n = 0;
		}
		if (++l->te_n > DIGITS_PER_S ||
		    l->w->n_slots_held <= LOBBY_SLOTS) {
			l->st.rx_dtmf++;
			return;
		}
	}
	leg_event(l, digit[pl[0]]);
}

/*
 * Does the packet say its sender is silent? The RFC 6464 audio level when
 * the peer negotiated it (LEVEL_SILENT or quieter), else what the payload
 * says of itself (Opus DTX and SILK's voice activity flag: mix_cs_silent).
 * Asked on arrival, believed at playout (leg_frame) only of a leg that
 * is not a talker then (its hangover is over): a talker's every packet is
 * decoded, so SILK's detector, which takes a steady tone for the
 * background after a while, never mutes one, and a talkspurt's packets
 * that arrived before it began are decoded too.
 */
static bool
leg_says_silent(const struct mix_leg *l, const uint8_t *b,
		const struct dp_rtp_hdr *h)
{
	const uint8_t *lv;
	unsigned n;

	if (l->p.level_id && h->extension &&
	    dp_rtp_ext_find(b, h, l->p.level_id, &lv, &n) == 0 && n >= 1)
		return (lv[0] & 0x7f) >= LEVEL_SILENT;
	/* Only Opus says it of itself: no need to touch the codec state
	 * for the others, on every packet. */
	return l->p.codec == MIX_OPUS &&
	       mix_cs_silent(l->cs, b + h->hdr_len, h->payload_len);
}

/* RFC 3550 A.1, without probation: the peer's source, its highest
 * sequence number with wraps counted, and what came. A new SSRC, or a
 * jump beyond MAX_DROPOUT ahead or MAX_MISORDER back (the sender started
 * over), starts the count over. */
static void
leg_rtp_seen(struct mix_leg *l, const struct dp_rtp_hdr *h)
{
	uint16_t d = (uint16_t)(h->seq - l->max_seq);

	if (!l->have_peer || h->ssrc != l->peer_ssrc ||
	    (d >= MAX_DROPOUT && d <= (uint16_t)(0 - MAX_MISORDER))) {
		l->have_peer = true;
		l->peer_ssrc = h->ssrc;
		l->base_seq = l->max_seq = h->seq;
		l->cycles = l->received = 0;
		l->expected_prior = l->received_prior = 0;
		d = 0;
	}
	if (d > 0 && d < MAX_DROPOUT) {
		if (h->seq < l->max_seq)
			l->cycles += 65536;
		l->max_seq = h->seq;
	}
	l->received++;
}

/* Our wall clock as NTP 32.32 (the SR's time; RTT arithmetic). */
static uint64_t
ntp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts); /* vDSO: no system call */
	return ((uint64_t)ts.tv_sec + NTP_UNIX) << 32 |
	       (uint64_t)ts.tv_nsec * (1ull << 32) / 1000000000ull;
}

/*
 * The peer's RTCP: its SR's time for our next report's LSR/DLSR, and what
 * it says of our stream (loss, jitter, and the round trip from the LSR
 * and DLSR of its block: RFC 3550 6.4.1). From the peer's address only;
 * its port is learnt from the first valid compound (symmetric RTCP, as
 * RTP latches), and then that port only.
 */
static void
leg_rx_rtcp(struct mix_leg *l, const struct dp_pkt_meta *pm, const uint8_t *b,
	    unsigned len)
{
	struct dp_rtcp_info in;

	if ((l->st.remote_ip && pm->remote_ip != l->st.remote_ip) ||
	    (l->rtcp_latched && (pm->remote_ip != l->rtcp_ip ||
				 pm->remote_port != l->rtcp_port)) ||
	    pm->rx_ns < l->attached_ns) { /* or a past call's */
		l->st.rx_foreign++;
		return;
	}
	if (dp_rtcp_parse(b, len, l->p.ssrc, &in) != 0) {
		l->st.rtcp_rx_malformed++;
		return;
	}
	l->rtcp_latched = true;
	l->rtcp_ip = pm->remote_ip;
	l->rtcp_port = pm->remote_port;
	if (in.sr) {
		l->st.rtcp_rx_sr++;
		l->lsr = (uint32_t)(in.ntp >> 16);
		l->lsr_at_ns = pm->rx_ns;
	}
	if (in.rr)
		l->st.rtcp_rx_rr++;
	if (!in.have_block)
		return;
	l->st.peer_report = true;
	l->st.peer_fraction = in.block.fraction;
	l->st.peer_lost = in.block.lost;
	l->st.peer_jitter_ms = in.block.jitter / mix_cs_ts_per_ms(l->cs);
	if (in.block.lsr) {
		/* In 1/65536 s; a negative or absurd one (clocks, a stale
		 * LSR) is not a round trip. */
		int32_t rtt = (int32_t)((uint32_t)(ntp_now() >> 16) -
					in.block.lsr - in.block.dlsr);

		if (rtt >= 0 && rtt < 65536 * 60)
			l->st.rtt_ms = (int32_t)((int64_t)rtt * 1000 / 65536);
	}
}

static void mix_tx_flush(struct mix_worker *w);

/*
 * m, built, goes out in the worker's next burst: from l's RTP port to
 * where its peer's RTP comes from, or (rtcp) from the odd port above to
 * where its peer's RTCP comes from, else the peer's RTP port + 1.
 */
static void
leg_queue_tx(struct mix_worker *w, struct mix_leg *l, struct rte_mbuf *m,
	     bool rtcp)
{
	struct dp_pkt_meta *pm = dp_pkt_meta(m);

	pm->rtcp = rtcp;
	pm->slot = l->p.ep.slot;
	pm->remote_mac = l->remote_mac;
	if (!rtcp) {
		pm->remote_ip = l->st.remote_ip;
		pm->remote_port = l->st.remote_port;
		pm->local_port = l->p.ep.local_port;
		pm->sock = l->p.ep.sock;
	} else {
		pm->remote_ip = l->rtcp_latched ? l->rtcp_ip : l->st.remote_ip;
		pm->remote_port =
			l->rtcp_latched
				? l->rtcp_port
				: rte_cpu_to_be_16((
					  uint16_t)(rte_be_to_cpu_16(
							    l->st.remote_port) +
						    1));
		pm->local_port = (uint16_t)(l->p.ep.local_port + 1);
		pm->sock = l->p.ep.rtcp_sock;
	}
	w->tx[w->n_tx++] = m;
	if (w->n_tx == TX_BURST)
		mix_tx_flush(w);
}

/* Our report to the peer: SR if we sent media since the leg began, else
 * RR; one block about its source once it sent; our CNAME. */
static void
leg_send_rtcp(struct mix_worker *w, struct mix_leg *l, uint64_t now_ns)
{
	static const char hex[] = "0123456789abcdef";
	struct dp_rtcp_info sr = {0};
	struct dp_rtcp_block blk = {0};
	struct mix_jb_stats js;
	struct rte_mbuf *m;
	char cname[16] = "focusd-";
	uint8_t *p;
	int len;

	l->rtcp_rng ^= l->rtcp_rng << 13;
	l->rtcp_rng ^= l->rtcp_rng >> 17;
	l->rtcp_rng ^= l->rtcp_rng << 5;
	l->rtcp_next = w->st.ticks + RTCP_TICKS / 2 + l->rtcp_rng % RTCP_TICKS;
	if (l->st.remote_ip == 0 || l->st.remote_port == 0 ||
	    (l->p.ep.sock >= 0 && l->p.ep.rtcp_sock < 0))
		return; /* nowhere to send, or no RTCP socket */
	for (int i = 0; i < 8; i++)
		cname[7 + i] = hex[(l->p.ssrc >> (28 - 4 * i)) & 15];
	cname[15] = '\0';
	sr.ntp = ntp_now();
	sr.rtp_ts = l->ts;
	sr.packets = (uint32_t)l->st.tx_packets;
	sr.octets = (uint32_t)l->st.tx_bytes;
	if (l->have_peer) {
		uint32_t ext = l->cycles + l->max_seq;
		uint32_t expected = ext - l->base_seq + 1;
		int64_t lost = (int64_t)expected - l->received;
		uint32_t exp_i = expected - l->expected_prior;
		uint32_t rcv_i = l->received - l->received_prior;

		mix_jb_stats(l->jb, &js);
		blk.ssrc = l->peer_ssrc;
		blk.lost = (int32_t)(lost > 0x7fffff	? 0x7fffff
				     : lost < -0x800000 ? -0x800000
							: lost);
		blk.fraction =
			(uint8_t)(exp_i == 0 || rcv_i >= exp_i
					  ? 0
					  : ((exp_i - rcv_i) << 8) / exp_i);
		l->expected_prior = expected;
		l->received_prior = l->received;
		blk.ext_seq = ext;
		blk.jitter = js.jitter_ts;
		/* The SR may have been read after this tick's clock was
		 * taken: no negative delay. One older than DLSR can say
		 * (18 hours) is as good as none. */
		if (l->lsr && now_ns - l->lsr_at_ns < 65535 * 1000000000ull) {
			blk.lsr = l->lsr;
			if (now_ns > l->lsr_at_ns)
				blk.dlsr = (uint32_t)((now_ns - l->lsr_at_ns) /
						      15259); /* 1e9/65536 */
		}
	}
	m = rte_pktmbuf_alloc(w->pool);
	if (m == NULL)
		return;
	p = (uint8_t *)rte_pktmbuf_append(m, 128);
	len = p ? dp_rtcp_build(p, 128, l->p.ssrc,
				l->st.tx_packets ? &sr : NULL,
				l->have_peer ? &blk : NULL, cname)
		: -1;
	if (len <= 0) {
		rte_pktmbuf_free(m);
		return;
	}
	rte_pktmbuf_trim(m, (uint16_t)(128 - len));
	l->st.rtcp_tx++;
	leg_queue_tx(w, l, m, true);
}

/* Borrows m; the caller frees it. */
static void
leg_rx(struct mix_leg *l, struct rte_mbuf *m)
{
	const struct dp_pkt_meta *pm = dp_pkt_meta(m);
	const uint8_t *b = rte_pktmbuf_mtod(m, const uint8_t *);
	struct dp_rtp_hdr h;
	unsigned flags;

	if (pm->rtcp) {
		leg_rx_rtcp(l, pm, b, rte_pktmbuf_data_len(m));
		return;
	}
	if (l->st.latched && (pm->remote_ip != l->st.remote_ip ||
			      pm->remote_port != l->st.remote_port)) {
		l->st.rx_foreign++;
		return;
	}
	if (dp_rtp_parse(b, rte_pktmbuf_data_len(m), &h) != 0) {
		l->st.rx_malformed++;
		return;
	}
	if (!l->st.latched) {
		if (pm->rx_ns < l->attached_ns) {
			/* Queued for an earlier call on this port. */
			l->st.rx_foreign++;
			return;
		}
		l->st.latched = true;
		l->st.remote_ip = pm->remote_ip;
		l->st.remote_port = pm->remote_port;
		/* RTCP that latched first, from another address: the
		 * peer's is where its RTP comes from. */
		if (l->rtcp_latched && l->rtcp_ip != pm->remote_ip)
			l->rtcp_latched = false;
	}
	/* Where the peer's packets come from on the wire: where ours go
	 * (DPDK port; the others ignore it). */
	l->remote_mac = pm->remote_mac;
	l->st.rx_packets++;
	l->st.rx_bytes += h.payload_len;
	if (l->p.have_te && h.pt == l->p.te_pt) {
		leg_rtp_seen(l, &h);
		leg_rx_te(l, b, &h);
		/* Events take the audio's sequence numbers (RFC 4733 2.1):
		 * their places are held, so audio does not count them lost
		 * nor conceal them. */
		if (l->p.mix_in)
			mix_jb_put(l->jb, h.ssrc, h.seq, h.ts, 0, NULL, 0,
				   pm->rx_ns);
		return;
	}
	if (h.pt != l->p.pt) {
		l->st.rx_other_pt++;
		return;
	}
	leg_rtp_seen(l, &h);
	if (!l->p.mix_in) {
		l->st.rx_unmixed++;
		return;
	}
	flags = (h.marker ? JB_MARKER : 0) |
		(leg_says_silent(l, b, &h) ? JB_SILENT : 0);
	if (mix_jb_put(l->jb, h.ssrc, h.seq, h.ts, flags, b + h.hdr_len,
		       h.payload_len, pm->rx_ns) != 0)
		l->st.rx_late++; /* late or a duplicate */
}

/* The leg a packet is for, by its endpoint slot; NULL: none here. */
static struct mix_leg *
leg_of(const struct mix_worker *w, struct rte_mbuf *m)
{
	uint32_t slot = dp_pkt_meta(m)->slot;

	return slot < w->n_slots ? w->by_slot[slot] : NULL;
}

/*
 * Receiving, the same as framing (leg_prefetch): the packets of a burst
 * are for legs all over memory, so the burst's next packets' state is
 * asked for in stages: the leg's first lines 3 packets ahead (stage 0),
 * its jitter buffer's head 2 ahead (1), the slot and payload buffer the
 * packet will take 1 ahead (2).
 */
static void
rx_prefetch(const struct mix_worker *w, struct rte_mbuf *m, int stage)
{
	const struct dp_pkt_meta *pm = dp_pkt_meta(m);
	const struct mix_leg *l = leg_of(w, m);
	const uint8_t *b;

	if (l == NULL)
		return;
	switch (stage) {
	case 0:
		for (unsigned off = 0; off < 5 * RTE_CACHE_LINE_SIZE;
		     off += RTE_CACHE_LINE_SIZE)
			rte_prefetch0((const char *)l + off);
		break;
	case 1:
		mix_jb_prefetch_head(l->jb);
		break;
	default:
		b = rte_pktmbuf_mtod(m, const uint8_t *);
		if (!pm->rtcp && rte_pktmbuf_data_len(m) >= DP_RTP_HDR_MIN)
			mix_jb_prefetch_put(l->jb,
					    (uint16_t)(b[2] << 8 | b[3]));
		break;
	}
}

static void
mix_rx(struct mix_worker *w)
{
	struct rte_mbuf *pkts[RX_BURST];
	unsigned n;

	for (int pass = 0; pass < RX_PASSES; pass++) {
		n = rte_ring_dequeue_burst(w->rx, (void **)pkts, RX_BURST,
					   NULL);
		for (unsigned k = 0; k < 3 && k < n; k++) {
			for (unsigned i = 0; i <= k; i++)
				rx_prefetch(w, pkts[i], (int)(k - i));
		}
		for (unsigned i = 0; i < n; i++) {
			struct mix_leg *l = leg_of(w, pkts[i]);

			for (unsigned k = 1; k <= 3 && i + k < n; k++)
				rx_prefetch(w, pkts[i + k], 3 - (int)k);
			if (l)
				leg_rx(l, pkts[i]);
			else
				w->st.rx_no_leg++;
			rte_pktmbuf_free(pkts[i]);
		}
		if (n < RX_BURST)
			break;
	}
}

static void
mix_tx_flush(struct mix_worker *w)
{
	if (w->n_tx == 0)
		return;
	w->st.tx_errors +=
		w->n_tx - dp_tx_burst(w->dp, w->index, w->tx, w->n_tx);
	w->n_tx = 0;
}

static void
fifo_push(struct mix_leg *l, const int16_t *pcm, unsigned n)
{
	for (uint32_t done = 0; done < n;) {
		uint32_t at = l->fifo_wr & (FIFO_CAP - 1);
		uint32_t run = RTE_MIN(n - done, FIFO_CAP - at);

		memcpy(&l->fifo[at], pcm + done, run * sizeof(int16_t));
		l->fifo_wr += run;
		done += run;
	}
}

/* One packet's worth of concealment at the conference rate. */
static void
leg_conceal(struct mix_worker *w, struct mix_leg *l, const uint8_t *fec,
	    unsigned fec_len, unsigned frame)
{
	unsigned ptime = mix_jb_ptime_ts(l->jb), n = frame;
	int k;

	if (ptime)
		n = (unsigned)((uint64_t)ptime * l->conf->rate /
			       (mix_cs_ts_per_ms(l->cs) * 1000));
	if (n == 0 || n > MAX_PKT_SAMPLES)
		n = frame;
	k = mix_cs_conceal(l->cs, fec, fec_len, w->pcm, n);
	if (k > 0)
		fifo_push(l, w->pcm, (unsigned)k);
	l->st.rx_concealed++;
}

/*
 * Top the leg's FIFO up to one frame from its jitter buffer and take the
 * frame into l->in; false if the leg has nothing to say this tick.
 */
static bool
leg_frame(struct mix_worker *w, struct mix_leg *l, unsigned frame)
{
	const uint8_t *pl;
	unsigned len;
	int n;

	while (l->fifo_wr - l->fifo_rd < frame) {
		enum mix_jb_get r = mix_jb_get(l->jb, &pl, &len);

		if (r == JB_SILENT_PACKET) {
			/* Said silent (leg_says_silent): believed only of a
			 * leg that is not a talker now; a talker's every
			 * packet is decoded, and so is a lobby's (its digit
			 * detector hears everything). */
			if (l->hang == 0 && !l->seated && !l->conf->prompt)
				l->st.rx_silent++;
			else
				r = JB_PACKET;
		}
		if (r == JB_SILENT_PACKET ||
		    (r == JB_PACKET &&
		     (len == 0 || (len <= 2 && l->p.codec == MIX_OPUS)))) {
			/* The sender says it is silent, or an event held
			 * this place, or Opus DTX. Not decoded, not
			 * concealed after: the leg is quiet. */
			l->plc_run = PLC_MAX_FRAMES;
			l->fifo_rd = l->fifo_wr;
			return false;
		}
		if (r == JB_PACKET && l->fifo_wr == l->fifo_rd &&
		    mix_cs_samples(l->cs, pl, len) == (int)frame) {
			/* The common case, a packet a tick: decoded where
			 * the mix reads it, not through the FIFO. */
			if (mix_cs_decode(l->cs, pl, len, l->in, frame) !=
			    (int)frame) {
				l->st.rx_malformed++;
				continue;
			}
			l->plc_run = 0;
			return true;
		}
		if (r == JB_PACKET) {
			n = mix_cs_decode(l->cs, pl, len, w->pcm,
					  MAX_PKT_SAMPLES);
			if (n < 0) {
				l->st.rx_malformed++;
				continue;
			}
			fifo_push(l, w->pcm, (unsigned)n);
			l->plc_run = 0;
		} else if (r == JB_LOST) {
			leg_conceal(w, l, pl, len, frame);
		} else if (l->plc_run > 0 && l->plc_run < PLC_MAX_FRAMES) {
			/* Dry, or refilling after it: bridge the gap. */
			leg_conceal(w, l, NULL, 0, frame);
			l->plc_run++;
		} else if (r == JB_DRY && l->plc_run == 0) {
			l->st.underruns++;
			leg_conceal(w, l, NULL, 0, frame);
			l->plc_run = 1;
		} else {
			/* Waiting for the buffer to fill, or concealed long
			 * enough: the leg is silent; what is left goes. */
			l->fifo_rd = l->fifo_wr;
			return false;
		}
	}
	for (unsigned i = 0; i < frame; i++)
		l->in[i] = l->fifo[(l->fifo_rd + i) & (FIFO_CAP - 1)];
	l->fifo_rd += frame;
	return true;
}

/*
 * Send l one packet stamped ts: pcm encoded by enc (l's own codec state,
 * or its shared encoder's), or, with pcm NULL, the payload given.
 */
static void
leg_send_payload(struct mix_worker *w, struct mix_leg *l, struct mix_cs *enc,
		 const int16_t *pcm, unsigned n, const uint8_t *payload,
		 int plen, uint32_t ts)
{
	struct rte_mbuf *m;
	uint8_t *b;
	int len = plen;

	if (l->st.remote_ip == 0 || l->st.remote_port == 0)
		return; /* no address to send to (c=0.0.0.0 or port 0) */
	if (pcm == NULL && len == 0) {
		l->dtx_gap = true; /* the shared encoder's DTX */
		return;
	}
	m = rte_pktmbuf_alloc(w->pool);
	if (m == NULL) {
		l->st.tx_dropped++;
		l->seq++; /* the peer sees a loss, not a jump */
		return;
	}
	b = (uint8_t *)rte_pktmbuf_append(m, DP_RTP_HDR_MIN + MAX_PAYLOAD);
	if (b == NULL)
		len = -1;
	else if (pcm)
		len = mix_cs_encode(enc, pcm, n, b + DP_RTP_HDR_MIN,
				    MAX_PAYLOAD);
	else
		memcpy(b + DP_RTP_HDR_MIN, payload, (size_t)len);
	if (len <= 0) {
		/* Opus DTX: nothing to send this tick; or a failure. */
		if (len < 0)
			l->st.tx_dropped++;
		else
			l->dtx_gap = true;
		rte_pktmbuf_free(m);
		return;
	}
	rte_pktmbuf_trim(m, (uint16_t)(MAX_PAYLOAD - len));
	/* The marker opens a talkspurt (RFC 3551 4.1): the first packet,
	 * and the first after DTX. */
	dp_rtp_build(b, DP_RTP_HDR_MIN, l->p.pt, !l->sent_first || l->dtx_gap,
		     l->seq, ts, l->p.ssrc);
	l->sent_first = true;
	l->dtx_gap = false;
	l->seq++;
	l->st.tx_packets++;
	l->st.tx_bytes += (uint64_t)len;
	leg_queue_tx(w, l, m, false);
}

/*
 * Send l this tick's n samples of pcm with its own encoder: one packet,
 * or, for a ptime other than the tick's, through its codec's queue: two
 * packets of 10 ms, or one every 2 or 3 ticks (40, 60 ms), each stamped
 * with its first sample's time.
 */
static void
leg_send(struct mix_worker *w, struct mix_leg *l, const int16_t *pcm,
	 unsigned n)
{
	uint8_t buf[MAX_PAYLOAD];
	uint32_t ts;
	int len;

	if (mix_cs_ptime(l->cs) == MIX_PTIME_MS) {
		leg_send_payload(w, l, l->cs, pcm, n, NULL, 0, l->ts);
		return;
	}
	while ((len = mix_cs_txq(l->cs, pcm, n, l->ts, buf, sizeof(buf),
				 &ts)) != -2) {
		pcm = NULL;
		if (len < 0) {
			l->st.tx_dropped++;
			break;
		}
		leg_send_payload(w, l, NULL, NULL, 0, buf, len, ts);
	}
}

/*
 * An application conference: no mix. Every leg hears the prompt; what a
 * leg says only feeds its DTMF detector.
 */
static void
conf_tick_app(struct mix_worker *w, struct mix_conf *c, uint64_t now_ns)
{
	const int16_t *out = c->prompt + c->prompt_pos;
	struct mix_leg *l;

	TAILQ_FOREACH(l, &c->legs, link) {
		if (l->p.mix_in && leg_frame(w, l, c->frame) && l->dtmf)
			dtmf_rx(l->dtmf, l->in, (int)c->frame);
		if (l->p.mix_out)
			leg_send(w, l, out, c->frame);
		else
			l->dtx_gap = true; /* the next packet opens a spurt */
		if (w->st.ticks >= l->rtcp_next)
			leg_send_rtcp(w, l, now_ns);
		l->ts += l->ts_step;
	}
	c->prompt_pos = (c->prompt_pos + c->frame) % c->prompt_len;
}

static uint64_t
mean_square(const int16_t *x, unsigned n)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < n; i++)
		sum += (uint64_t)((int32_t)x[i] * x[i]);
	return sum / n;
}

/*
 * Talker detection and selection. A leg speaks while its frame's energy
 * is above the gate, and for HANGOVER_TICKS after (word gaps do not
 * unseat it). Of the legs speaking, the max_talkers loudest by smoothed
 * energy are mixed; a seated talker's score counts SEAT_BONUS times (6
 * dB) over a newcomer's, so two similar voices do not take turns every
 * tick. talker_rank runs for each leg in the tick's first pass, while
 * its frame is in cache, and gathers the speakers (at most
 * MAX_CANDIDATES; beyond, the quietest newcomers wait); seat_talkers
 * then chooses among those: O(legs + candidates * max_talkers).
 */
struct talkers {
	struct mix_leg *cand[MAX_CANDIDATES];
	unsigned n;
};

static void
talker_rank(struct talkers *t, struct mix_leg *l, unsigned frame)
{
	bool loud =
		l->talking && (l->energy = mean_square(l->in, frame)) > GATE_MS;

	if (!l->talking)
		l->energy = 0;
	l->score = (l->score * 7 + l->energy) / 8;
	if (loud)
		l->hang = HANGOVER_TICKS;
	else if (l->hang)
		l->hang--;
	l->talking = l->talking && l->hang > 0;
	/* The rank key: the seated ones' with the bonus. */
	l->energy = l->talking
			    ? (l->seated ? l->score * SEAT_BONUS : l->score) + 1
			    : 0;
	l->seated = false;
	if (!l->talking)
		return;
	if (t->n < MAX_CANDIDATES) {
		t->cand[t->n++] = l;
	} else {
		/* Full: the lowest ranked candidate makes room. */
		unsigned low = 0;

		for (unsigned i = 1; i < t->n; i++) {
			if (t->cand[i]->energy < t->cand[low]->energy)
				low = i;
		}
		if (l->energy > t->cand[low]->energy)
			t->cand[low] = l;
	}
}

static void
seat_talkers(struct talkers *t, unsigned max_talkers)
{
	unsigned seats = max_talkers ? max_talkers : MAX_CANDIDATES;

	while (seats-- > 0) {
		unsigned best = t->n;

		for (unsigned i = 0; i < t->n; i++) {
			if (!t->cand[i]->seated &&
			    (best == t->n ||
			     t->cand[i]->energy > t->cand[best]->energy))
				best = i;
		}
		if (best == t->n)
			break;
		t->cand[best]->seated = true;
	}
}

/* The shared encoder's payload of the full mix for this tick. */
static struct mix_group *
group_payload(struct mix_worker *w, struct mix_conf *c, struct mix_group *g)
{
	if (g->tick != w->st.ticks + 1) {
		g->len = mix_cs_encode(g->cs, w->all, c->frame, g->payload,
				       MAX_PAYLOAD);
		g->tick = w->st.ticks + 1;
	}
	return g->len >= 0 ? g : NULL;
}

/*
 * Which encoder a listener hears. A seated talker hears the mix minus
 * itself from its own encoder; everybody else the full mix from the
 * shared encoder of its codec, which runs (once a tick, on its first
 * listener's demand: group_payload) while any member who is not a talker
 * listens on it or is on the way back to it; when every member talks it
 * rests.
 *
 * No click at a switch. A decoder keeps state from the encoder that fed
 * it, so:
 * - shared -> own (seat_switch, before any encode of the tick): the
 *   leg's encoder takes a byte copy of the shared one's state as it
 *   stands after the last tick; the decoder goes on seamlessly and only
 *   the talker's own voice leaves the signal.
 * - own -> shared (legs_return, before any encode of the tick): the
 *   decoder's state is the leg's own encoder's, which the shared one
 *   cannot take on (others decode it). The leg stays on its own encoder,
 *   fed the full mix, until the mix is quiet (below the talker gate),
 *   where a decoder's mismatch is not heard; and that first shared frame
 *   is coded without inter-frame prediction (Opus,
 *   mix_cs_independent_next), which shortens the mismatch to the codec's
 *   overlap. Without a quiet moment it goes back after RETURN_MAX_TICKS
 *   (2 s) all the same. G.722's backward-adaptive state converges on the
 *   same input, so it goes back after CONVERGE_TICKS_G722 at the latest.
 * - G.711 has no state: it switches at once.
 */
static void
seat_switch(struct mix_conf *c, struct mix_leg *l)
{
	if (l->group == NULL || !l->p.mix_out)
		return;
	if (l->on_shared && mix_cs_stateful(l->cs))
		mix_cs_copy_encoder(l->cs, l->group->cs);
	l->on_shared = false;
	l->converge =
		l->p.codec == MIX_G722 ? CONVERGE_TICKS_G722 : RETURN_MAX_TICKS;
	if (!l->returning)
		TAILQ_INSERT_TAIL(&c->returning, l, ret_link);
	l->returning = true;
}

/* Before any shared encode of the tick: who goes back now. */
static void
legs_return(struct mix_conf *c, bool quiet)
{
	struct mix_leg *l, *next;

	for (l = TAILQ_FIRST(&c->returning); l != NULL; l = next) {
		next = TAILQ_NEXT(l, ret_link);
		if (l->seated)
			continue;
		if (mix_cs_stateful(l->cs) && !quiet && l->converge > 0 &&
		    --l->converge > 0)
			continue;
		mix_cs_independent_next(l->group->cs);
		l->on_shared = true;
		leg_returned(l);
	}
}

static void
listener_send(struct mix_worker *w, struct mix_conf *c, struct mix_leg *l,
	      int16_t *out)
{
	struct mix_group *g = l->group;

	if (l->seated) {
		mix_minus(out, w->acc, l->in, c->frame);
		leg_send(w, l, out, c->frame);
		return;
	}
	if (g == NULL || !l->on_shared) {
		leg_send(w, l, w->all, c->frame);
		if (g)
			group_payload(w, c, g); /* kept running for it */
		return;
	}
	g = group_payload(w, c, g);
	if (g)
		leg_send_payload(w, l, NULL, NULL, 0, g->payload, g->len,
				 l->ts);
	else
		l->st.tx_dropped++;
}

/*
 * Framing a leg reads its state in several places that no cache holds
 * after a tick over thousands of legs: the leg, its jitter buffer's head,
 * the slot it plays from, that slot's payload, its codec's PLC history,
 * its frame buffer. Waiting for each in turn costs a trip to memory
 * apiece. Instead conf_tick asks for them a few legs ahead, in stages,
 * each once the lines the previous one needs have come: the leg itself
 * 4 legs ahead; its buffer's head, codec state and frame 3 ahead (stage
 * 0); the slot 2 ahead (1); the payload 1 ahead (2).
 */
static void
leg_prefetch(const struct mix_leg *l, int stage, unsigned frame)
{
	if (l == NULL)
		return;
	if (stage > 0) {
		mix_jb_prefetch(l->jb, stage - 1);
		return;
	}
	mix_jb_prefetch_head(l->jb);
	mix_cs_prefetch(l->cs);
	for (unsigned i = 0; i < frame; i += RTE_CACHE_LINE_SIZE / 2)
		rte_prefetch0(&l->in[i]);
}

/*
 * Two passes over the legs: one takes each leg's frame and ranks it as a
 * talker, the other sends each listener its packet. In between, only the
 * seated talkers (among the candidates) are summed and switched, and the
 * returning legs looked at.
 */
static void
conf_tick(struct mix_worker *w, struct mix_conf *c, uint64_t now_ns)
{
	int16_t out[MIX_MAX_FRAME];
	struct mix_leg *l, *ahead[4]; /* the 1st to 4th leg after l */
	struct talkers t;

	if (c->prompt) {
		conf_tick_app(w, c, now_ns);
		return;
	}
	t.n = 0;
	l = TAILQ_FIRST(&c->legs);
	ahead[0] = l ? TAILQ_NEXT(l, link) : NULL;
	for (int k = 1; k < 4; k++)
		ahead[k] = ahead[k - 1] ? TAILQ_NEXT(ahead[k - 1], link) : NULL;
	leg_prefetch(l, 0, c->frame);
	leg_prefetch(ahead[0], 0, c->frame);
	leg_prefetch(ahead[1], 0, c->frame);
	leg_prefetch(l, 1, c->frame);
	leg_prefetch(ahead[0], 1, c->frame);
	leg_prefetch(l, 2, c->frame);
	while (l != NULL) {
		l->talking = l->p.mix_in && leg_frame(w, l, c->frame);
		talker_rank(&t, l, c->frame);
		l = ahead[0];
		ahead[0] = ahead[1];
		ahead[1] = ahead[2];
		ahead[2] = ahead[3];
		ahead[3] = ahead[3] ? TAILQ_NEXT(ahead[3], link) : NULL;
		rte_prefetch0(ahead[3]);
		leg_prefetch(ahead[2], 0, c->frame);
		leg_prefetch(ahead[1], 1, c->frame);
		leg_prefetch(ahead[0], 2, c->frame);
	}
	seat_talkers(&t, c->max_talkers);
	memset(w->acc, 0, c->frame * sizeof(w->acc[0]));
	for (unsigned i = 0; i < t.n; i++) {
		l = t.cand[i];
		if (!l->seated)
			continue;
		/* After the gate: a gain never silences a quiet talker. */
		if (l->gain_q8 != 256)
			mix_gain(l->in, c->frame, l->gain_q8);
		mix_acc_add(w->acc, l->in, c->frame);
		seat_switch(c, l);
	}
	mix_minus(w->all, w->acc, NULL, c->frame);
	if (!TAILQ_EMPTY(&c->returning))
		legs_return(c, mean_square(w->all, c->frame) < GATE_MS);
	TAILQ_FOREACH(l, &c->legs, link) {
		rte_prefetch0(TAILQ_NEXT(l, link));
		if (l->p.mix_out)
			listener_send(w, c, l, out);
		else
			l->dtx_gap = true; /* the next packet opens a spurt */
		if (w->st.ticks >= l->rtcp_next)
			leg_send_rtcp(w, l, now_ns);
		/* The RTP clock runs whether or not we send. */
		l->ts += l->ts_step;
	}
}

static void
mix_tick(struct mix_worker *w, uint64_t now_ns)
{
	struct mix_conf *c;

	TAILQ_FOREACH(c, &w->confs, link) {
		struct mix_conf *n = TAILQ_NEXT(c, link);

		/* The conference after next, and the next one's first leg
		 * (its conference was asked for a tick ago). */
		if (n) {
			rte_prefetch0(TAILQ_NEXT(n, link));
			rte_prefetch0(TAILQ_FIRST(&n->legs));
		}
		conf_tick(w, c, now_ns);
	}
	mix_tx_flush(w);
	w->st.ticks++;
}

void
mix_worker_poll(struct mix_worker *w, uint64_t now)
{
	mix_commands(w);
	mix_rx(w);

	if (w->next_tick == 0)
		w->next_tick = now + MIX_TICK_NS;
	if (now < w->next_tick)
		return;

	if (now - w->next_tick > MIX_TICK_NS)
		w->st.overruns++;
	if (now - w->next_tick > 5 * MIX_TICK_NS)
		w->next_tick = now + MIX_TICK_NS; /* re-base after a stall */
	else
		w->next_tick += MIX_TICK_NS;
	mix_tick(w, now);
	fc_chan_kick(w->chan); /* digits reported during the tick */
	w->st.tick_ns_last = fc_now_ns() - now;
	if (w->st.tick_ns_last > w->st.tick_ns_max)
		w->st.tick_ns_max = w->st.tick_ns_last;
	w->st.tick_ns_avg = w->st.tick_ns_avg - (w->st.tick_ns_avg >> 4) +
			    (w->st.tick_ns_last >> 4);
	w->st.load_permille =
		(unsigned)(w->st.tick_ns_avg * 1000 / MIX_TICK_NS);
}

int
mix_worker_run(void *arg)
{
	struct mix_worker *w = arg;
	struct timespec ts;

	while (!w->quit) {
		uint64_t now = fc_now_ns(), until;

		mix_worker_poll(w, now);
		/* Idle until the next tick, waking every ms for packets and
		 * commands; the sleep is per pass, never per packet. */
		until = RTE_MIN(w->next_tick, now + 1000000ull);
		ts.tv_sec = (time_t)(until / 1000000000ull);
		ts.tv_nsec = (long)(until % 1000000000ull);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	mix_tx_flush(w);
	return 0;
}
