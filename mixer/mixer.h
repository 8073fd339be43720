/*
 * mixer.h - the per-core mixers.
 *
 * A mixer worker is one EAL lcore that owns whole conferences. Each tick
 * (20 ms on an absolute clock) it takes one frame from every leg that
 * talks into the mix, sums them once into an int32 accumulator, and gives
 * every leg that listens the sum minus its own contribution, saturated to
 * int16, encoded with that leg's codec and sent as RTP. Each conference
 * mixes at its own rate (8, 16, 24 or 48 kHz); legs decode into it and
 * encode from it (codec.h: G.711, G.722, Opus, resampled where needed).
 *
 * The control thread builds conferences and legs (mix_conf_alloc,
 * mix_leg_alloc: all memory a leg needs, codec state and buffers included),
 * then hands them to a worker with attach messages; from then on the worker
 * owns them. Detach hands them back in the reply, after which the control
 * thread frees them. Every call that talks to a worker is asynchronous: done
 * runs on the control thread from mix_collect() once the worker acted.
 *
 * Threads:
 *   mix_worker_alloc/free, mix_conf_*, mix_leg_*, mix_stats_get,
 *   mix_collect: the control thread.
 *   mix_worker_poll, mix_worker_run: the worker's lcore (or a test or
 *   benchmark driving the worker directly, never both at once).
 *   mix_worker_stop: any thread.
 *
 * Fast path cost per tick: for each leg, one frame copy and add; for each
 * listening leg one subtraction pass, one G.711 encode and one mbuf.
 */
#ifndef FOCUSD_MIXER_H
#define FOCUSD_MIXER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"
#include "dataplane/dataplane.h"

/* Narrowband: G.711's rate, and application conferences' (DTMF). */
#define MIX_RATE	 8000
#define MIX_PTIME_MS	 20
#define MIX_FRAME	 (MIX_RATE * MIX_PTIME_MS / 1000)
#define MIX_TICK_NS	 (MIX_PTIME_MS * 1000000ull)
#define MIX_RATE_DEFAULT 16000
#define MIX_MAX_RATE	 48000
#define MIX_MAX_FRAME	 (MIX_MAX_RATE * MIX_PTIME_MS / 1000)

enum mix_codec {
	MIX_PCMU = 0,
	MIX_PCMA,
	MIX_G722, /* SpanDSP, 64 kbit/s */
	MIX_OPUS, /* libopus, mono */
	MIX_CODEC_COUNT,
};

/* Is rate one a conference may mix at (8, 16, 24 or 48 kHz)? */
bool mix_rate_valid(unsigned rate);

const char *mix_codec_name(enum mix_codec c);

/* Can codec c be sent in packets of ms milliseconds? */
bool mix_ptime_valid(enum mix_codec c, unsigned ms);

/* What the control thread decides for a leg (from SDP). */
struct mix_leg_params {
	enum mix_codec codec;
	uint8_t pt;	      /* payload type the peer expects */
	uint32_t ssrc;	      /* ours, stable for the leg's life */
	uint16_t seq;	      /* first sequence number we send */
	uint32_t ts;	      /* first timestamp we send */
	struct dp_ep ep;      /* copy of the leg's endpoint */
	uint32_t remote_ip;   /* from SDP, network order */
	uint16_t remote_port; /* from SDP, network order */
	bool mix_in;	      /* the leg's audio goes into the mix */
	bool mix_out;	      /* the leg hears the mix */
	uint8_t te_pt;	      /* RFC 4733 telephone-event payload type */
	bool have_te;	      /* the peer sends telephone-events */
	/* RFC 6464 client-to-mixer audio level: the RFC 8285 extension ID
	 * the peer's packets carry it under (0: none). */
	uint8_t level_id;
	void *owner;   /* the control thread's leg, for events */
	unsigned rate; /* the conference's mixing rate */
	int gain_db;   /* on what the leg says, -24..+24 */
	/* Opus (RFC 7587 fmtp): in-band FEC and DTX the peer accepts, the
	 * highest rate it plays (maxplaybackrate, 0: any) and the bitrate
	 * to send (maxaveragebitrate, 0: the encoder's choice). */
	bool opus_fec;
	bool opus_dtx;
	unsigned opus_maxrate;
	unsigned opus_bitrate;
	/* ms of audio in each packet we send (the peer's a=ptime): 10 to
	 * 60 in steps of 10, Opus 10, 20, 40 or 60 (mix_ptime_valid); 0:
	 * MIX_PTIME_MS. What we receive may have any ptime. */
	unsigned ptime_ms;
};

/* A leg's counters, copied out by mix_stats_get. Those every packet
 * touches come first, on one cache line with the leg's parameters. */
struct mix_leg_stats {
	uint64_t rx_packets; /* RTP accepted from the peer */
	uint64_t rx_bytes;
	uint64_t tx_packets;
	uint64_t tx_bytes;
	uint32_t remote_ip; /* where we send now, network order */
	uint16_t remote_port;
	bool latched;	       /* remote learnt from the peer's packets */
	uint64_t rx_foreign;   /* from another address than the peer's */
	uint64_t rx_malformed; /* bad RTP header */
	uint64_t rx_other_pt;  /* payload types we do not mix */
	uint64_t rx_late;      /* duplicate or older than what we played */
	uint64_t rx_overflow;  /* packets dropped to bound the latency */
	uint64_t rx_lost;      /* never came: concealed */
	uint64_t rx_concealed; /* packets' worth of audio concealed */
	uint64_t rx_silent;    /* said silent (audio level, DTX, VAD): not
				  decoded */
	unsigned jitter_ms;    /* interarrival jitter (RFC 3550 A.8) */
	unsigned jb_target;    /* packets the jitter buffer aims to hold */
	uint64_t rx_unmixed;   /* arrived while the leg is not mixed in */
	uint64_t underruns;    /* ticks the leg talked but had no frame */
	uint64_t tx_dropped;   /* no mbuf, or the port refused it */
	uint64_t rx_dtmf;      /* digits heard (RFC 4733 or in-band) */
	/* RTCP (RFC 3550 6) */
	uint64_t rtcp_rx_sr, rtcp_rx_rr;
	uint64_t rtcp_rx_malformed;
	uint64_t rtcp_tx;	 /* our SRs and RRs */
	int32_t rtt_ms;		 /* -1: not measured yet */
	bool peer_report;	 /* the peer reported on our stream: */
	uint8_t peer_fraction;	 /* lost since its last report, of 256 */
	int32_t peer_lost;	 /* cumulative */
	unsigned peer_jitter_ms; /* interarrival jitter it sees */
};

/* A worker's counters. */
struct mix_worker_stats {
	unsigned index; /* the worker's */
	uint64_t ticks;
	uint64_t overruns; /* ticks started late by more than one tick */
	uint64_t tick_ns_last;
	uint64_t tick_ns_max;
	uint64_t tick_ns_avg;	/* smoothed over about 16 ticks */
	unsigned load_permille; /* tick_ns_avg against the 20 ms period */
	uint32_t confs;
	uint32_t legs;
	uint64_t rx_no_leg;   /* packets for a slot with no leg here */
	uint64_t tx_errors;   /* packets the port did not send */
	uint64_t events_lost; /* digits with no event slot to report in */
};

struct mix_worker;
struct mix_conf;
struct mix_leg;

typedef void(mix_done_h)(void *arg, int err);
typedef void(mix_stats_h)(void *arg, int err, const struct mix_worker_stats *ws,
			  const struct mix_leg_stats *ls, unsigned n);

int mix_worker_alloc(struct mix_worker **wp, struct dp *dp, unsigned index,
		     int efd);
void mix_worker_free(struct mix_worker *w);
unsigned mix_worker_index(const struct mix_worker *w);
/* One bounded pass: commands, received packets, a tick if one is due. */
void mix_worker_poll(struct mix_worker *w, uint64_t now_ns);
/* The lcore loop: poll, sleep until the next tick or 1 ms. */
int mix_worker_run(void *w);
void mix_worker_stop(struct mix_worker *w);
/* Control thread: run done() of every reply from the worker. */
void mix_collect(struct mix_worker *w);
/* Control thread: messages sent to the worker and not answered yet. */
unsigned mix_in_flight(const struct mix_worker *w);

/* A conference mixing at rate Hz (mix_rate_valid). */
int mix_conf_alloc(struct mix_conf **cp, unsigned rate);
/*
 * An application conference (RFC 4579 4.3): no mixing; every leg hears a
 * prompt (an 800 Hz beep, 200 ms every 1.5 s) and the digits it sends -
 * RFC 4733 telephone-events, or in-band DTMF found by SpanDSP in legs
 * given a detector with mix_leg_alloc_dtmf - are reported through
 * mix_events_start's handler.
 */
int mix_conf_alloc_app(struct mix_conf **cp);
void mix_conf_free(struct mix_conf *c);
/* Control thread, before attach: mix at most n talkers at once, the
 * loudest (0: everybody who speaks). */
int mix_conf_set_talkers(struct mix_conf *c, unsigned n);
int mix_conf_attach(struct mix_worker *w, struct mix_conf *c, mix_done_h *done,
		    void *arg);
/* The conference must have no legs left. */
int mix_conf_detach(struct mix_worker *w, struct mix_conf *c, mix_done_h *done,
		    void *arg);

/* A leg with its codec state for a conference of p->rate Hz. */
int mix_leg_alloc(struct mix_leg **lp, const struct mix_leg_params *p);
/* Control thread, while l is detached (between a move's detach and its
 * attach): make l's codec state fit a conference of `rate` Hz. */
int mix_leg_set_rate(struct mix_leg *l, unsigned rate);
/* Give l an in-band DTMF detector (for application conferences). */
int mix_leg_alloc_dtmf(struct mix_leg *l);
void mix_leg_free(struct mix_leg *l);
int mix_leg_attach(struct mix_worker *w, struct mix_conf *c, struct mix_leg *l,
		   mix_done_h *done, void *arg);
/* Direction, remote address or codec changed (re-INVITE); a codec
 * change brings fresh codec state, allocated here. */
int mix_leg_update(struct mix_worker *w, struct mix_leg *l,
		   const struct mix_leg_params *p, mix_done_h *done, void *arg);
int mix_leg_detach(struct mix_worker *w, struct mix_leg *l, mix_done_h *done,
		   void *arg);

/*
 * Digits from the worker - every leg's RFC 4733 events (never mixed), and
 * in-band DTMF where a leg has a detector: it holds `slots` messages to
 * report them in
 * (each is posted again after use); h(arg, owner, digit) runs on the
 * control thread, owner being the leg's mix_leg_params.owner.
 */
typedef void(mix_event_h)(void *arg, void *owner, char digit);
int mix_events_start(struct mix_worker *w, unsigned slots, mix_event_h *h,
		     void *arg);

/* Counters of the worker and of n of its legs (a NULL entry is skipped:
 * its counters come back zero). */
int mix_stats_get(struct mix_worker *w, struct mix_leg *const *legs, unsigned n,
		  mix_stats_h *h, void *arg);

/*
 * Mixing kernels, exposed for tests and benchmarks.
 * mix_acc_add: acc[i] += in[i]. mix_minus: out[i] = sat16(acc[i] - own[i])
 * (own may be NULL: the leg did not talk). mix_gain: x[i] = sat16(x[i] *
 * q8 / 256).
 */
void mix_acc_add(int32_t *acc, const int16_t *in, unsigned n);
void mix_gain(int16_t *x, unsigned n, int32_t q8);
void mix_minus(int16_t *out, const int32_t *acc, const int16_t *own,
	       unsigned n);

/* G.711 through SpanDSP's tables. */
void mix_g711_decode(enum mix_codec c, int16_t *pcm, const uint8_t *in,
		     unsigned n);
void mix_g711_encode(enum mix_codec c, uint8_t *out, const int16_t *pcm,
		     unsigned n);

#endif
