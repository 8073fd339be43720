/*
 * mixbench.c - what one mixer core sustains, per codec and room shape.
 *
 * Every scenario drives one worker's poll function directly on the main
 * lcore, with no network: the dataplane is the null port, so transmitted
 * packets are freed and nothing else is in the way. Each tick, every leg
 * that sends this tick gets its RTP packet put on the worker's ring (in
 * batches of 256, each followed by a receive poll), then the tick's poll
 * runs: jitter buffers, decode or concealment, talker selection, mix,
 * mix-minus and shared encodes, packetizing. Only the time inside
 * mix_worker_poll is measured; building the input packets is not.
 *
 * Input is built once up front: speech-like audio (a formant synthesizer:
 * a sawtooth glottal source with vibrato and breath noise through three
 * moving formants, syllable envelope, eight voices of different pitch and
 * level), encoded to tables of payloads per codec, cycled through with a
 * per-leg phase. Silent participants send what a real client sends:
 * G.711 and G.722 low background noise (about -64 dBFS, below the talker
 * gate) every 20 ms; Opus a muted client's DTX stream (libopus with DTX on
 * digital silence: 1-byte frames, which senders drop (RFC 7587 3.1.3),
 * and an 8-byte comfort-noise update every 21 frames).
 *
 * The worker's clock is virtual: tick k runs at base + k * 20 ms and its
 * packets arrive 10 ms before, so the jitter buffers see a perfect network
 * whatever the bench's own speed; base lies an hour ahead of the real
 * clock, after every leg's creation. Time is the polling thread's CPU
 * time (a worker lcore has its core to itself; this machine is shared),
 * wall time is in the JSON too.
 *
 * "Participants per core" is not extrapolated from a small run: rooms are
 * run again at the size predicted until one size keeps up (20 ms a tick
 * on average) and one a few percent larger does not, so that the cache
 * and TLB misses of the full working set count.
 *
 * Scenarios:
 *  1. PCMU, 3-party rooms, everyone talking, mixing at 8 kHz and 16 kHz.
 *  2. Opus 16 kHz, 3-party rooms, everyone talking (own encode each),
 *     against the codec-only limit: 20 ms / (one encode + one decode).
 *  3. Opus 16 kHz, one room: 3 talkers, N listeners sending DTX, N grown
 *     until a tick takes more than 20 ms (four kinds of listener input:
 *     every DTX frame; DTX as senders send it, with comfort-noise
 *     updates; voice packets an RFC 6464 audio level marks silent, the
 *     extension, not the payload, deciding; nothing).
 *  4. G.722 16 kHz, 10-party rooms, everyone talking, max 4 talkers.
 *  5. us per participant against room size, 3 talkers and the rest silent.
 * and the codecs alone (decode + encode of 20 ms through the legs' codec
 * code, codec.h), measured in the same run.
 *
 * usage: mixbench [--quick] [--json PATH] [--plot] [--scenario N]...
 *                 [--ticks T] [--s3-budget SEC] [--s3-max N] [--verbose]
 *   --quick       short runs (a smoke test: rough figures)
 *   --json PATH   default bench/results/mixbench.json
 *   --plot        scenario 5's data and a gnuplot script next to the
 *                 JSON (mixbench_rooms.dat, mixbench.gp), and the png
 *                 (mixbench.png) if gnuplot is on PATH
 *   --scenario N  run only these (repeatable)
 *   --ticks T     measured ticks per run instead of the defaults
 *   --s3-budget   seconds scenario 3 may spend growing its room (each
 *                 listener that joins costs the worker ~10 Opus encodes)
 *   --s3-max      listeners at most in scenario 3
 *   --verbose     every run's figures and the legs' counters
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <opus.h>
#include <spandsp.h>

#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "bench/benchenv.h"
#include "dataplane/dataplane.h"
#include "mixer/codec.h"
#include "mixer/mixer.h"

#define TICK_US	      (MIX_TICK_NS / 1000.0)
#define TICK_MS	      (MIX_TICK_NS / 1e6)
#define INJECT_BATCH  256
#define WARMUP_TICKS  15 /* > the worker's 10 own-encoder ticks at join */
#define VOICES	      8
#define SPEECH_FRAMES 150 /* 3 s per voice */
#define QUIET_FRAMES  50
#define DTX_FRAMES    420 /* 20 periods of libopus's DTX (21 frames) */
#define MAX_PL	      1000
#define PORT_LO	      1024
#define PORT_HI	      65535
#define MAX_TALKERS   4 /* the daemon's default max-talkers */
#define PT_OPUS	      111
#define LEVEL_ID      1 /* the RFC 6464 extension's ID on every leg */

/* ---- input: payload tables --------------------------------------------- */

struct stream {
	unsigned n;    /* frames */
	uint16_t *len; /* payload length per frame */
	uint8_t *data; /* n * MAX_PL */
};

enum src_mode {
	SRC_ALL,    /* every frame of the table */
	SRC_NO_DTX, /* frames of 2 bytes or less are not sent */
	SRC_LEVEL,  /* every frame of `marked`, its RFC 6464 level silent */
	SRC_OFF,    /* nothing */
};

/* What one leg sends. */
struct src {
	const struct stream *st;
	const struct stream *marked; /* what SRC_LEVEL sends */
	enum src_mode mode;
	unsigned phase;
	uint16_t seq;
	uint32_t ts0;
};

struct codec_in {
	bool ready;
	struct stream speech[VOICES];
	struct stream quiet; /* G.711/G.722: noise; Opus: DTX of silence */
};

static struct codec_in inputs[MIX_CODEC_COUNT];

static int
stream_alloc(struct stream *s, unsigned n)
{
	s->n = n;
	s->len = calloc(n, sizeof(*s->len));
	s->data = malloc((size_t)n * MAX_PL);
	return s->len && s->data ? 0 : ENOMEM;
}

static double
rng_unit(uint32_t *x) /* [-1, 1) */
{
	return (double)bench_rng_next(x) / 2147483648.0 - 1.0;
}

/*
 * Speech-like audio: a sawtooth glottal source (pitch with vibrato and a
 * slow contour, a little breath noise) through three parallel formant
 * resonators whose centres move from vowel to vowel each syllable, under
 * a syllable envelope that never drops below the talker gate. Each voice
 * has its own pitch, syllable rate and level (-20 to -25 dBFS RMS), so
 * loudness ranks are stable.
 */
static void
gen_speech(int16_t *pcm, unsigned n, unsigned rate, unsigned voice)
{
	static const double vowels[5][3] = {
		{730, 1090, 2440}, /* a */
		{530, 1840, 2480}, /* e */
		{270, 2290, 3010}, /* i */
		{570, 840, 2410},  /* o */
		{300, 870, 2240},  /* u */
	};
	static const double bw[3] = {90, 110, 170}, g[3] = {1.0, 0.6, 0.3};
	double f0 = 95 + 21 * voice, syl_hz = 3.6 + 0.25 * (voice % 4);
	double level = 3200 * (1.0 - 0.06 * voice), ph = 0, y1[3] = {0},
	       y2[3] = {0}, sum2 = 0, fmt[3] = {500, 1500, 2500};
	uint32_t rng = 0x9e3779b9u ^ (voice * 2654435761u);
	double *x = malloc(n * sizeof(*x));

	if (x == NULL)
		abort();
	for (unsigned i = 0; i < n; i++) {
		double t = (double)i / rate, s = t * syl_hz + 0.37 * voice;
		unsigned v = ((unsigned)s * 3 + voice) % 5;
		double env = 0.3 + 0.7 * pow(sin(M_PI * s), 2), f, e, out = 0;

		f = f0 * (1 + 0.03 * sin(2 * M_PI * 5.5 * t) +
			  0.12 * sin(2 * M_PI * 0.4 * t + voice));
		ph += f / rate;
		ph -= floor(ph);
		e = (2 * ph - 1) + 0.08 * rng_unit(&rng);
		for (int k = 0; k < 3; k++) {
			double target = vowels[v][k], r, b1, b2, y;

			if (target > 0.45 * rate)
				continue;
			fmt[k] += (target - fmt[k]) * 0.002; /* glide */
			r = exp(-M_PI * bw[k] / rate);
			b1 = 2 * r * cos(2 * M_PI * fmt[k] / rate);
			b2 = -r * r;
			y = (1 - r) * e + b1 * y1[k] + b2 * y2[k];
			y2[k] = y1[k];
			y1[k] = y;
			out += g[k] * y;
		}
		x[i] = env * out;
		sum2 += x[i] * x[i];
	}
	for (unsigned i = 0; i < n; i++) {
		double v = x[i] * level / sqrt(sum2 / n + 1e-12);

		pcm[i] = (int16_t)fmax(-32768, fmin(32767, v));
	}
	free(x);
}

/* Background noise at about -64 dBFS (RMS 20), well below the gate. */
static void
gen_quiet(int16_t *pcm, unsigned n)
{
	uint32_t rng = 0x1234567u;
	double lp = 0;

	for (unsigned i = 0; i < n; i++) {
		lp = 0.7 * lp + 0.3 * rng_unit(&rng);
		pcm[i] = (int16_t)lrint(60 * lp);
	}
}

static OpusEncoder *
peer_opus_encoder(unsigned rate)
{
	int err;
	OpusEncoder *e = opus_encoder_create((opus_int32)rate, 1,
					     OPUS_APPLICATION_VOIP, &err);

	if (e == NULL)
		abort();
	/* What a browser peer sends: 32 kbit/s, FEC, DTX. */
	opus_encoder_ctl(e, OPUS_SET_BITRATE(32000));
	opus_encoder_ctl(e, OPUS_SET_INBAND_FEC(1));
	opus_encoder_ctl(e, OPUS_SET_PACKET_LOSS_PERC(10));
	opus_encoder_ctl(e, OPUS_SET_DTX(1));
	opus_encoder_ctl(e, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
	return e;
}

/* Encode n frames of pcm (at the codec's own rate) into s. */
static void
encode_stream(enum mix_codec c, struct stream *s, const int16_t *pcm,
	      unsigned frames, unsigned skip)
{
	unsigned crate = c == MIX_PCMU || c == MIX_PCMA ? 8000 : 16000;
	unsigned fs = crate * MIX_PTIME_MS / 1000;
	g722_encode_state_t *g7 = NULL;
	OpusEncoder *op = NULL;

	if (stream_alloc(s, frames) != 0)
		abort();
	if (c == MIX_G722)
		g7 = g722_encode_init(NULL, 64000, 0);
	if (c == MIX_OPUS)
		op = peer_opus_encoder(crate);
	for (unsigned f = 0; f < skip + frames; f++) {
		const int16_t *in = pcm + (size_t)f * fs;
		uint8_t buf[MAX_PL];
		int len;

		if (c == MIX_G722) {
			len = g722_encode(g7, buf, in, (int)fs);
		} else if (c == MIX_OPUS) {
			len = opus_encode(op, in, (int)fs, buf, MAX_PL);
		} else {
			mix_g711_encode(c, buf, in, fs);
			len = (int)fs;
		}
		if (len < 0)
			abort();
		if (f >= skip) {
			s->len[f - skip] = (uint16_t)len;
			memcpy(s->data + (size_t)(f - skip) * MAX_PL, buf,
			       (size_t)len);
		}
	}
	if (g7)
		g722_encode_free(g7);
	if (op)
		opus_encoder_destroy(op);
}

static void
inputs_make(enum mix_codec c)
{
	struct codec_in *in = &inputs[c];
	unsigned crate = c == MIX_PCMU || c == MIX_PCMA ? 8000 : 16000;
	unsigned fs = crate * MIX_PTIME_MS / 1000, n;
	int16_t *pcm;

	if (in->ready)
		return;
	n = fs * (DTX_FRAMES + 40);
	pcm = calloc(n, sizeof(*pcm));
	if (pcm == NULL)
		abort();
	for (unsigned v = 0; v < VOICES; v++) {
		gen_speech(pcm, fs * SPEECH_FRAMES, crate, v);
		encode_stream(c, &in->speech[v], pcm, SPEECH_FRAMES, 0);
	}
	if (c == MIX_OPUS) {
		/* A muted client: digital silence, DTX once settled. */
		memset(pcm, 0, n * sizeof(*pcm));
		encode_stream(c, &in->quiet, pcm, DTX_FRAMES, 40);
	} else {
		gen_quiet(pcm, fs * QUIET_FRAMES);
		encode_stream(c, &in->quiet, pcm, QUIET_FRAMES, 0);
	}
	free(pcm);
	in->ready = true;
}

/* ---- the rig: one worker, its rooms and legs ---------------------------- */

struct bench {
	struct dp *dp;
	struct rte_ring *ring;
	struct rte_mempool *pool;
	unsigned slots;
	bool verbose;
};

static struct bench B;

struct rig {
	struct mix_worker *w;
	unsigned n_confs, n_legs, cap;
	struct mix_conf **confs;
	struct mix_leg **legs;
	struct dp_ep *eps;
	struct src *src;
	uint8_t *pt;
	unsigned *ts_step;
	uint64_t base;	     /* virtual time of tick 0 */
	uint64_t k;	     /* ticks run */
	double last_max_ms;  /* the last rig_run's worst tick, CPU */
	double last_wall_us; /* and its average tick in wall time */
};

static uint64_t
rig_now(const struct rig *r) /* between ticks: no tick due */
{
	return r->base + r->k * MIX_TICK_NS + 1000000ull;
}

static int
rig_init(struct rig *r, unsigned cap)
{
	int err;

	memset(r, 0, sizeof(*r));
	r->cap = cap;
	r->confs = calloc(cap, sizeof(*r->confs));
	r->legs = calloc(cap, sizeof(*r->legs));
	r->eps = calloc(cap, sizeof(*r->eps));
	r->src = calloc(cap, sizeof(*r->src));
	r->pt = calloc(cap, sizeof(*r->pt));
	r->ts_step = calloc(cap, sizeof(*r->ts_step));
	if (!r->confs || !r->legs || !r->eps || !r->src || !r->pt ||
	    !r->ts_step)
		return ENOMEM;
	err = mix_worker_alloc(&r->w, B.dp, 0, -1);
	if (err)
		return err;
	/* An hour ahead: every leg is created before its first packet. */
	r->base = fc_now_ns() + 3600ull * 1000000000ull;
	mix_worker_poll(r->w, r->base); /* the first tick is due at +20 ms */
	return 0;
}

/* Let the worker act on every command sent (no tick runs). */
static void
rig_drain(struct rig *r)
{
	for (int k = 0; mix_in_flight(r->w) && k < 1000000; k++) {
		mix_worker_poll(r->w, rig_now(r));
		mix_collect(r->w);
	}
}

static int
rig_add_conf(struct rig *r, unsigned rate, unsigned max_talkers)
{
	struct mix_conf *c;
	int err = mix_conf_alloc(&c, rate);

	if (err)
		return -err;
	mix_conf_set_talkers(c, max_talkers);
	err = mix_conf_attach(r->w, c, NULL, NULL);
	if (err) {
		mix_conf_free(c);
		return -err;
	}
	r->confs[r->n_confs] = c;
	return (int)r->n_confs++;
}

static int
rig_add_leg(struct rig *r, unsigned conf, enum mix_codec codec, unsigned rate,
	    const struct stream *st, enum src_mode mode, uint32_t *rng)
{
	unsigned i = r->n_legs;
	struct mix_leg_params p = {
		.codec = codec,
		.rate = rate,
		.pt = codec == MIX_OPUS	  ? PT_OPUS
		      : codec == MIX_G722 ? 9
		      : codec == MIX_PCMA ? 8
					  : 0,
		.ssrc = 0x10000 + i,
		.remote_ip = htonl(0x0a000001 + i / 30000),
		.remote_port = htons((uint16_t)(2000 + i % 30000)),
		.mix_in = true,
		.mix_out = true,
		.opus_fec = true,
		.opus_dtx = true,
		.level_id = LEVEL_ID,
	};
	int err;

	if (i >= r->cap)
		return ENOSPC;
	err = dp_ep_open(B.dp, &r->eps[i]);
	if (err)
		return err;
	p.ep = r->eps[i];
	err = mix_leg_alloc(&r->legs[i], &p);
	if (err) {
		dp_ep_close(B.dp, &r->eps[i]);
		return err;
	}
	err = mix_leg_attach(r->w, r->confs[conf], r->legs[i], NULL, NULL);
	if (err) {
		mix_leg_free(r->legs[i]);
		dp_ep_close(B.dp, &r->eps[i]);
		return err;
	}
	r->pt[i] = p.pt;
	r->ts_step[i] = codec == MIX_OPUS ? 960 : 160;
	r->src[i].st = st;
	r->src[i].mode = mode;
	r->src[i].phase = bench_rng_next(rng) % st->n;
	r->src[i].seq = (uint16_t)bench_rng_next(rng);
	r->src[i].ts0 = bench_rng_next(rng);
	r->n_legs++;
	/* Commands are taken 16 a pass: drain as we go. */
	if (r->n_legs % 512 == 0)
		rig_drain(r);
	return 0;
}

static double
mono_us(void)
{
	return (double)fc_now_ns() / 1e3;
}

/*
 * The polling thread's CPU time: what the worker costs, without the time
 * other processes on this shared machine take the core from it (a real
 * worker lcore has its core to itself). Wall time is kept alongside.
 */
static double
cpu_us(void)
{
	return bench_cpu_ns() / 1e3;
}

struct span {
	double cpu, wall;
};

static void
span_begin(struct span *s)
{
	s->wall = mono_us();
	s->cpu = cpu_us();
}

static void
span_end(const struct span *s, struct span *acc)
{
	double c = cpu_us(), w = mono_us();

	acc->cpu += c - s->cpu;
	acc->wall += w - s->wall;
}

/*
 * One tick: every leg's packet for it (if it sends one), then the tick.
 * Returns the µs spent inside mix_worker_poll.
 */
static struct span
rig_tick(struct rig *r)
{
	uint64_t t_tick = r->base + (r->k + 1) * MIX_TICK_NS;
	uint64_t t_rx = t_tick - MIX_TICK_NS / 2;
	struct rte_mbuf *m[INJECT_BATCH];
	struct span busy = {0, 0}, t0;
	unsigned nm = 0;

	for (unsigned i = 0; i <= r->n_legs; i++) {
		if (i < r->n_legs) {
			struct src *s = &r->src[i];
			const struct stream *st =
				s->mode == SRC_LEVEL ? s->marked : s->st;
			unsigned f = (unsigned)((r->k + s->phase) % st->n);
			unsigned len = st->len[f];
			unsigned hl =
				DP_RTP_HDR_MIN + (s->mode == SRC_LEVEL ? 8 : 0);
			struct dp_pkt_meta *pm;
			uint8_t *b;

			if (s->mode == SRC_OFF ||
			    (s->mode == SRC_NO_DTX && len <= 2))
				continue;
			m[nm] = rte_pktmbuf_alloc(B.pool);
			if (m[nm] == NULL) {
				fprintf(stderr, "mixbench: mbuf pool empty\n");
				exit(1);
			}
			b = (uint8_t *)rte_pktmbuf_append(m[nm], hl + len);
			dp_rtp_build(b, DP_RTP_HDR_MIN, r->pt[i], false,
				     s->seq++,
				     s->ts0 + (uint32_t)(r->k * r->ts_step[i]),
				     0x20000 + i);
			if (hl > DP_RTP_HDR_MIN) {
				/* One-byte form: level 127 (-127 dBov). */
				static const uint8_t ext[8] = {
					0xbe,	       0xde, 0x00, 0x01,
					LEVEL_ID << 4, 0x7f, 0x00, 0x00};

				b[0] |= 0x10;
				memcpy(b + DP_RTP_HDR_MIN, ext, sizeof(ext));
			}
			memcpy(b + hl, st->data + (size_t)f * MAX_PL, len);
			pm = dp_pkt_meta(m[nm]);
			pm->slot = r->eps[i].slot;
			pm->rtcp = false;
			pm->rx_ns = t_rx;
			pm->remote_ip = htonl(0x0a000001 + i / 30000);
			pm->remote_port = htons((uint16_t)(2000 + i % 30000));
			pm->local_port = r->eps[i].local_port;
			nm++;
		}
		if (nm == INJECT_BATCH || (i == r->n_legs && nm > 0)) {
			if (rte_ring_enqueue_bulk(B.ring, (void **)m, nm,
						  NULL) != nm) {
				fprintf(stderr, "mixbench: ring full\n");
				exit(1);
			}
			nm = 0;
			span_begin(&t0);
			mix_worker_poll(r->w, t_rx); /* receive: no tick due */
			span_end(&t0, &busy);
		}
	}
	span_begin(&t0);
	mix_worker_poll(r->w, t_tick);
	span_end(&t0, &busy);
	r->k++;
	return busy;
}

/* Average CPU µs per tick over n ticks; r->last_max_ms the worst. */
static double
rig_run(struct rig *r, unsigned n)
{
	double sum = 0, wall = 0, mx = 0;

	for (unsigned i = 0; i < n; i++) {
		struct span b = rig_tick(r);

		sum += b.cpu;
		wall += b.wall;
		if (b.cpu > mx)
			mx = b.cpu;
	}
	r->last_max_ms = mx / 1e3;
	r->last_wall_us = n ? wall / n : 0;
	return n ? sum / n : 0;
}

/* Sanity: the counters of every leg, summed. */
struct sums {
	uint64_t rx, foreign, malformed, other_pt, late, overflow, lost,
		concealed, underruns, tx, tx_dropped, overruns, ticks;
	bool got;
};

static void
sums_h(void *arg, int err, const struct mix_worker_stats *ws,
       const struct mix_leg_stats *ls, unsigned n)
{
	struct sums *s = arg;

	if (err)
		return;
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < n; i++) {
		s->rx += ls[i].rx_packets;
		s->foreign += ls[i].rx_foreign;
		s->malformed += ls[i].rx_malformed;
		s->other_pt += ls[i].rx_other_pt;
		s->late += ls[i].rx_late;
		s->overflow += ls[i].rx_overflow;
		s->lost += ls[i].rx_lost;
		s->concealed += ls[i].rx_concealed;
		s->underruns += ls[i].underruns;
		s->tx += ls[i].tx_packets;
		s->tx_dropped += ls[i].tx_dropped;
	}
	s->overruns = ws->overruns;
	s->ticks = ws->ticks;
	s->got = true;
}

static void
rig_check(struct rig *r, const char *what)
{
	struct sums s = {0};

	if (mix_stats_get(r->w, r->legs, r->n_legs, sums_h, &s) != 0)
		return;
	rig_drain(r);
	if (!s.got)
		return;
	/* A leg whose packets were not played as they came (its buffer
	 * overflowed) was not mixed as it should: the figures are void. */
	if (s.foreign || s.malformed || s.other_pt || s.tx_dropped || s.late ||
	    s.overflow || s.overruns)
		printf("  warning (%s): foreign %lu malformed %lu other-pt %lu "
		       "late %lu overflow %lu tx-dropped %lu overruns %lu\n",
		       what, (unsigned long)s.foreign,
		       (unsigned long)s.malformed, (unsigned long)s.other_pt,
		       (unsigned long)s.late, (unsigned long)s.overflow,
		       (unsigned long)s.tx_dropped, (unsigned long)s.overruns);
	if (B.verbose)
		printf("  [%s] legs %u ticks %lu: rx %lu tx %lu lost %lu "
		       "concealed %lu underruns %lu\n",
		       what, r->n_legs, (unsigned long)s.ticks,
		       (unsigned long)s.rx, (unsigned long)s.tx,
		       (unsigned long)s.lost, (unsigned long)s.concealed,
		       (unsigned long)s.underruns);
}

static void
rig_free(struct rig *r)
{
	/* Whatever is still attached comes back with the worker. */
	rig_drain(r);
	mix_worker_free(r->w);
	for (unsigned i = 0; i < r->n_legs; i++)
		dp_ep_close(B.dp, &r->eps[i]);
	free(r->confs);
	free(r->legs);
	free(r->eps);
	free(r->src);
	free(r->pt);
	free(r->ts_step);
	memset(r, 0, sizeof(*r));
}

/* ---- rooms of one shape ------------------------------------------------ */

struct spec {
	enum mix_codec codec;
	unsigned rate;	      /* the conference's */
	unsigned room;	      /* legs per room */
	unsigned talkers;     /* legs per room sending speech */
	unsigned max_talkers; /* mix_conf_set_talkers */
	enum src_mode quiet;  /* what the others send */
};

struct result {
	unsigned participants, rooms, ticks;
	double tick_ms, max_tick_ms; /* average and worst tick, CPU */
	double wall_ms;		     /* average tick, wall clock */
	double us_pp;		     /* µs per participant per tick */
	double per_core;	     /* participants one core sustains */
};

static int
run_rooms(const struct spec *sp, unsigned participants, unsigned ticks,
	  struct result *res)
{
	unsigned rooms = participants / sp->room, n;
	uint32_t rng = 0xdecafbad;
	struct rig r;
	double avg;
	int err;

	if (rooms == 0)
		rooms = 1;
	n = rooms * sp->room;
	if (n > B.slots)
		return ENOSPC;
	inputs_make(sp->codec);
	err = rig_init(&r, n);
	for (unsigned c = 0; c < rooms && !err; c++) {
		int ci = rig_add_conf(&r, sp->rate, sp->max_talkers);

		if (ci < 0) {
			err = -ci;
			break;
		}
		for (unsigned j = 0; j < sp->room && !err; j++) {
			bool talks = j < sp->talkers;
			const struct stream *st =
				talks ? &inputs[sp->codec]
						 .speech[(c * 3 + j) % VOICES]
				      : &inputs[sp->codec].quiet;

			err = rig_add_leg(&r, (unsigned)ci, sp->codec, sp->rate,
					  st, talks ? SRC_ALL : sp->quiet,
					  &rng);
		}
	}
	if (err) {
		rig_free(&r);
		return err;
	}
	rig_drain(&r);
	rig_run(&r, WARMUP_TICKS);
	avg = rig_run(&r, ticks);
	rig_check(&r, "rooms");
	res->participants = n;
	res->rooms = rooms;
	res->ticks = ticks;
	res->tick_ms = avg / 1e3;
	res->max_tick_ms = r.last_max_ms;
	res->wall_ms = r.last_wall_us / 1e3;
	res->us_pp = avg / n;
	res->per_core = TICK_US / res->us_pp;
	rig_free(&r);
	return 0;
}

/*
 * Participants one core sustains in real time, found by running rooms of
 * that shape at the size predicted (20 ms / the last tick's time, so
 * cache and TLB effects of the larger working set count) until a size
 * that keeps up and one that does not are within a few percent; the
 * answer is interpolated between them.
 */
struct capacity {
	struct result base;   /* at the fixed size, for comparing runs */
	struct result lo, hi; /* largest that kept up, smallest that not */
	bool have_lo, have_hi;
	double sustained;
	bool extrapolated;
	unsigned runs;
};

static int
find_capacity(const struct spec *sp, unsigned n0, unsigned ticks,
	      unsigned check_ticks, struct capacity *cap)
{
	unsigned cap_n = B.slots / sp->room * sp->room, n, last = 0;
	double est;
	int err;

	memset(cap, 0, sizeof(*cap));
	if ((err = run_rooms(sp, n0, ticks, &cap->base)))
		return err;
	est = cap->base.per_core;
	for (int it = 0; it < 6; it++) {
		struct result r;

		if (cap->have_lo && cap->have_hi &&
		    (cap->hi.participants - cap->lo.participants <= sp->room ||
		     cap->hi.participants - cap->lo.participants <=
			     0.03 * cap->lo.participants))
			break;
		n = (unsigned)(est / sp->room + 0.5) * sp->room;
		if (n > cap_n)
			n = cap_n;
		if (cap->have_hi && n >= cap->hi.participants)
			n = cap->hi.participants - sp->room;
		if (cap->have_lo && n <= cap->lo.participants)
			n = cap->lo.participants + sp->room;
		if (n < sp->room || n > cap_n || n == last)
			break;
		last = n;
		if ((err = run_rooms(sp, n, check_ticks, &r)))
			return err;
		cap->runs++;
		if (B.verbose)
			printf("  capacity: %u participants, %.2f ms a tick "
			       "(worst %.2f, wall %.2f)\n",
			       n, r.tick_ms, r.max_tick_ms, r.wall_ms);
		if (r.tick_ms <= TICK_MS) {
			if (!cap->have_lo || n > cap->lo.participants)
				cap->lo = r;
			cap->have_lo = true;
		} else {
			if (!cap->have_hi || n < cap->hi.participants)
				cap->hi = r;
			cap->have_hi = true;
		}
		if (cap->have_lo && cap->have_hi &&
		    cap->hi.tick_ms > cap->lo.tick_ms) {
			double n_lo = cap->lo.participants,
			       n_hi = cap->hi.participants;

			est = n_lo +
			      (TICK_MS - cap->lo.tick_ms) * (n_hi - n_lo) /
				      (cap->hi.tick_ms - cap->lo.tick_ms);
		} else if (cap->have_lo && cap->have_hi) {
			break; /* noise: the larger one was faster */
		} else {
			est = n * TICK_MS / r.tick_ms;
			if (n == cap_n && r.tick_ms <= TICK_MS)
				break; /* out of endpoint slots */
		}
	}
	if (cap->have_lo && cap->have_hi) {
		double n_lo = cap->lo.participants, n_hi = cap->hi.participants;

		cap->sustained = cap->hi.tick_ms > cap->lo.tick_ms
					 ? n_lo + (TICK_MS - cap->lo.tick_ms) *
							   (n_hi - n_lo) /
							   (cap->hi.tick_ms -
							    cap->lo.tick_ms)
					 : n_lo;
	} else {
		const struct result *r = cap->have_lo ? &cap->lo : &cap->hi;

		cap->sustained = r->participants * TICK_MS / r->tick_ms;
		cap->extrapolated = true;
	}
	return 0;
}

/* ---- the codecs alone -------------------------------------------------- */

struct codec_cost {
	double dec_us, enc_us, both_us; /* 20 ms of audio */
};

static void
codec_only(enum mix_codec c, unsigned rate, unsigned reps,
	   struct codec_cost *cc)
{
	struct mix_leg_params p = {
		.codec = c,
		.rate = rate,
		.opus_fec = true,
		.opus_dtx = true,
	};
	unsigned frame = rate * MIX_PTIME_MS / 1000, held;
	int16_t(*pcm)[MIX_MAX_FRAME];
	uint8_t out[MAX_PL];
	struct mix_cs *cs;
	double t0, sink = 0;

	inputs_make(c);
	held = RTE_MIN(reps, (unsigned)(VOICES * SPEECH_FRAMES));
	pcm = calloc(held, sizeof(*pcm));
	if (pcm == NULL || mix_cs_alloc(&cs, &p, rate) != 0)
		abort();
	/* Every voice in turn, each frame's PCM kept for the encodes. */
	t0 = cpu_us();
	for (unsigned i = 0; i < reps; i++) {
		const struct stream *st =
			&inputs[c].speech[(i / SPEECH_FRAMES) % VOICES];
		unsigned f = i % SPEECH_FRAMES;

		sink += mix_cs_decode(cs, st->data + (size_t)f * MAX_PL,
				      st->len[f], pcm[i % held], MIX_MAX_FRAME);
	}
	cc->dec_us = (cpu_us() - t0) / reps;
	/* Encode what the decoder gave: speech at the conference rate. */
	t0 = cpu_us();
	for (unsigned i = 0; i < reps; i++)
		sink += mix_cs_encode(cs, pcm[i % held], frame, out,
				      sizeof(out));
	cc->enc_us = (cpu_us() - t0) / reps;
	cc->both_us = cc->dec_us + cc->enc_us;
	if (sink < 0)
		printf("(sink %f)\n", sink);
	free(pcm);
	mix_cs_free(cs);
}

/* G.711 through the tables alone, as the earlier mixbench measured it. */
static double
g711_raw_us(void)
{
	uint8_t in[MIX_FRAME], out[MIX_FRAME];
	int16_t pcm[MIX_FRAME];
	unsigned reps = 200000;
	double t0;

	inputs_make(MIX_PCMU);
	memcpy(in, inputs[MIX_PCMU].speech[0].data, MIX_FRAME);
	t0 = cpu_us();
	for (unsigned i = 0; i < reps; i++) {
		mix_g711_decode(MIX_PCMU, pcm, in, MIX_FRAME);
		pcm[i % MIX_FRAME] ^= 1;
		mix_g711_encode(MIX_PCMU, out, pcm, MIX_FRAME);
		in[i % MIX_FRAME] ^= out[(i + 1) % MIX_FRAME] & 1;
	}
	return (cpu_us() - t0) / reps;
}

/* ---- scenario 3: how many DTX listeners ---------------------------------- */

#define S3_MODES 4
#define S3_STEPS 32

static const struct {
	const char *name;
	const char *what;
	enum src_mode mode;
	unsigned settle, ticks;
} s3_modes[S3_MODES] = {
	{"dtx-all", "every DTX frame sent (1 byte a tick)", SRC_ALL, 4, 21},
	{"dtx", "1-2 byte frames not sent (update every 420 ms)", SRC_NO_DTX, 5,
	 42},
	{"level", "voice packets, each marked silent (RFC 6464 level 127)",
	 SRC_LEVEL, 5, 21},
	{"none", "muted, sends nothing", SRC_OFF, 5, 63},
};

struct s3_mode_res {
	unsigned n_steps;
	unsigned n[S3_STEPS];
	double ms[S3_STEPS], max_ms[S3_STEPS], wall_ms[S3_STEPS];
	bool crossed;
	double sustained; /* listeners at 20 ms a tick */
	bool extrapolated;
	double us_per_listener; /* slope */
};

struct s3_res {
	struct s3_mode_res m[S3_MODES];
	double join_us; /* per listener: warm-up ticks on its own encoder */
	const char *stop;
};

/*
 * ms = a + b n through the steps, robustly (Theil-Sen: the median of the
 * pairwise slopes), so that one tick disturbed by the machine's other
 * work does not tilt the line.
 */
static void
s3_fit(const struct s3_mode_res *m, double *a, double *b)
{
	double slopes[S3_STEPS * S3_STEPS / 2], rest[S3_STEPS];
	unsigned k = m->n_steps, ns = 0;

	*a = *b = 0;
	if (k == 1)
		*b = m->ms[0] / m->n[0];
	if (k < 2)
		return;
	for (unsigned i = 0; i < k; i++)
		for (unsigned j = i + 1; j < k; j++)
			slopes[ns++] = (m->ms[j] - m->ms[i]) /
				       ((double)m->n[j] - m->n[i]);
	*b = bench_median(slopes, ns);
	for (unsigned i = 0; i < k; i++)
		rest[i] = m->ms[i] - *b * m->n[i];
	*a = bench_median(rest, k);
}

static void
s3_conclude(struct s3_mode_res *m)
{
	unsigned k = m->n_steps;
	double a, b;

	s3_fit(m, &a, &b);
	m->us_per_listener = b * 1e3;
	if (k == 0)
		return;
	if (m->crossed && k >= 2) {
		/* Between the last sustained step and the first not. */
		double n0 = m->n[k - 2], n1 = m->n[k - 1];
		double y0 = m->ms[k - 2], y1 = m->ms[k - 1];

		m->sustained =
			y1 > y0 ? n0 + (TICK_MS - y0) * (n1 - n0) / (y1 - y0)
				: n0;
	} else if (m->crossed) {
		m->sustained = m->n[0] * TICK_MS / m->ms[0];
		m->extrapolated = true;
	} else {
		m->sustained = b > 0 ? (TICK_MS - a) / b : 0;
		m->extrapolated = true;
	}
}

static int
run_s3(unsigned max_listeners, double budget_s, const struct codec_cost *op,
       struct s3_res *res)
{
	static const unsigned sched[] = {250,	500,   1000,  2000,
					 3000,	4000,  6000,  10000,
					 14000, 20000, 26000, 32000};
	const unsigned talkers = 3;
	uint32_t rng = 0xfeedface;
	double t_start = mono_us();
	bool alive[S3_MODES];
	unsigned listeners = 0;
	struct rig r;
	int err;

	memset(res, 0, sizeof(*res));
	inputs_make(MIX_OPUS);
	if (max_listeners + talkers > B.slots)
		max_listeners = B.slots - talkers;
	err = rig_init(&r, max_listeners + talkers);
	if (err == 0 && rig_add_conf(&r, 16000, MAX_TALKERS) < 0)
		err = ENOMEM;
	for (unsigned j = 0; j < talkers && !err; j++)
		err = rig_add_leg(&r, 0, MIX_OPUS, 16000,
				  &inputs[MIX_OPUS].speech[j], SRC_ALL, &rng);
	if (err)
		goto out;
	for (unsigned i = 0; i < S3_MODES; i++)
		alive[i] = true;
	res->stop = "the schedule's largest room";
	for (size_t s = 0; s < FC_ARRAY_SIZE(sched); s++) {
		unsigned target = RTE_MIN(sched[s], max_listeners);
		double est = 0, spent = (mono_us() - t_start) / 1e6, t0,
		       before_us;
		struct s3_mode_res *none;
		bool any = false;

		if (target <= listeners) {
			res->stop = "the listener cap (--s3-max or the "
				    "dataplane's slots)";
			break;
		}
		/* Cost of the next step: the joins' warm-up encodes, then
		 * each live mode's ticks at the size predicted. */
		est += (target - listeners) *
		       (res->join_us ? res->join_us : 10 * op->enc_us) / 1e6;
		for (unsigned i = 0; i < S3_MODES; i++) {
			struct s3_mode_res *m = &res->m[i];
			double a, b;

			if (!alive[i])
				continue;
			s3_fit(m, &a, &b);
			est += (s3_modes[i].settle + s3_modes[i].ticks) *
			       (m->n_steps ? a + b * target : 1) / 1e3;
		}
		if (listeners > 0 && spent + est > budget_s) {
			res->stop = "the time budget (--s3-budget)";
			break;
		}
		for (unsigned i = listeners; i < target && !err; i++) {
			err = rig_add_leg(&r, 0, MIX_OPUS, 16000,
					  &inputs[MIX_OPUS].quiet, SRC_OFF,
					  &rng);
			if (err == 0)
				r.src[r.n_legs - 1].marked =
					&inputs[MIX_OPUS].speech[i % VOICES];
		}
		if (err)
			goto out;
		rig_drain(&r);
		/* Warm-up: every new listener's own encoder runs its first
		 * ticks (the worker's CONVERGE_TICKS) before it moves to
		 * the shared encode. Not measured, but timed for the plan. */
		none = &res->m[S3_MODES - 1];
		before_us =
			none->n_steps ? none->ms[none->n_steps - 1] * 1e3 : 0;
		t0 = cpu_us();
		rig_run(&r, WARMUP_TICKS);
		/* Less what the room cost before they came. */
		res->join_us = (cpu_us() - t0 - WARMUP_TICKS * before_us) /
			       (target - listeners);
		listeners = target;
		for (unsigned i = 0; i < S3_MODES; i++) {
			struct s3_mode_res *m = &res->m[i];
			double avg;

			if (!alive[i])
				continue;
			for (unsigned j = talkers; j < r.n_legs; j++)
				r.src[j].mode = s3_modes[i].mode;
			rig_run(&r, s3_modes[i].settle);
			avg = rig_run(&r, s3_modes[i].ticks);
			m->n[m->n_steps] = listeners;
			m->ms[m->n_steps] = avg / 1e3;
			m->max_ms[m->n_steps] = r.last_max_ms;
			m->wall_ms[m->n_steps] = r.last_wall_us / 1e3;
			m->n_steps++;
			if (B.verbose)
				printf("  s3 %-8s %6u listeners: %.2f ms a "
				       "tick (worst %.2f)\n",
				       s3_modes[i].name, listeners, avg / 1e3,
				       r.last_max_ms);
			if (avg / 1e3 > TICK_MS) {
				alive[i] = false;
				m->crossed = true;
			}
			any |= alive[i];
		}
		rig_check(&r, "s3");
		for (unsigned j = talkers; j < r.n_legs; j++)
			r.src[j].mode = SRC_OFF;
		if (!any) {
			res->stop = "every kind of listener input crossed 20 "
				    "ms a tick";
			break;
		}
		if (listeners >= max_listeners) {
			res->stop = "the listener cap (--s3-max or the "
				    "dataplane's slots)";
			break;
		}
	}
	for (unsigned i = 0; i < S3_MODES; i++)
		s3_conclude(&res->m[i]);
out:
	rig_free(&r);
	return err;
}

/* ---- output ------------------------------------------------------------ */

static const char *
yes_no(bool met)
{
	return met ? "MET" : "MISSED";
}

/* Largest N measured in scenario 3 that kept up (0: none did). */
static unsigned
s3_kept_up(const struct s3_mode_res *m)
{
	unsigned best = 0;

	for (unsigned k = 0; k < m->n_steps; k++)
		if (m->ms[k] <= TICK_MS && m->n[k] > best)
			best = m->n[k];
	return best;
}

/* A target in listeners: measured, or only extrapolated. */
static const char *
s3_verdict(const struct s3_mode_res *m, unsigned target)
{
	if (s3_kept_up(m) >= target)
		return "MET (measured)";
	if (m->crossed || m->sustained < target)
		return "MISSED";
	return "not measured (extrapolation says met)";
}

static bool
on_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	while (path && *path) {
		const char *colon = strchr(path, ':');
		size_t len = colon ? (size_t)(colon - path) : strlen(path);

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, prog);
		if (len && access(buf, X_OK) == 0)
			return true;
		path = colon ? colon + 1 : NULL;
	}
	return false;
}

static void
usage(void)
{
	fprintf(stderr, "usage: mixbench [--quick] [--json PATH] [--plot] "
			"[--scenario N]... [--ticks T] [--s3-budget SEC] "
			"[--s3-max N] [--verbose]\n");
}

#define N_SIZES	 5
#define N_SERIES 3

static const unsigned sizes[N_SIZES] = {3, 5, 10, 20, 50};
static const struct {
	const char *name;
	enum mix_codec codec;
	unsigned rate;
	enum src_mode quiet;
} series[N_SERIES] = {
	{"PCMU@8k", MIX_PCMU, 8000, SRC_ALL},
	{"PCMU@16k", MIX_PCMU, 16000, SRC_ALL},
	{"Opus@16k", MIX_OPUS, 16000, SRC_NO_DTX},
};

/* Everything measured, for the JSON. */
struct all {
	bool quick, run[6];
	unsigned ticks;
	double g711_raw;
	struct codec_cost pcmu8, pcmu16, g722, opus;
	struct capacity s1[2], s2, s4;
	struct s3_res s3;
	struct result s5[N_SERIES][N_SIZES];
	double total_s;
};

/*
 * The codec work a room of this shape needs per participant and tick:
 * every leg that sends is decoded; each room encodes once per seated
 * talker (mix-minus) and once for its shared encoder (which runs every
 * tick its codec has members, whether or not anybody is unseated).
 */
static double
codec_work_us(const struct spec *sp, const struct codec_cost *cc)
{
	unsigned seated = sp->max_talkers && sp->max_talkers < sp->talkers
				  ? sp->max_talkers
				  : sp->talkers;
	/* The shared encoder runs only when a room has a listener who is
	 * not a seated talker. */
	unsigned shared = seated < sp->room ? 1 : 0;

	return cc->dec_us + cc->enc_us * (seated + shared) / sp->room;
}

static void
print_capacity(const char *label, const struct spec *sp,
	       const struct capacity *cap, const struct codec_cost *cc)
{
	double work = codec_work_us(sp, cc);

	printf("   %-8s at %5u: %8.3f us/p/tick (%.0f/core) | at scale: "
	       "%7.0f participants/core%s, %8.3f us/p/tick | codec work "
	       "%.3f us = %.0f%%\n",
	       label, cap->base.participants, cap->base.us_pp,
	       cap->base.per_core, cap->sustained,
	       cap->extrapolated ? " (extrapolated)" : "",
	       TICK_US / cap->sustained, work,
	       100 * work * cap->sustained / TICK_US);
	if (cap->have_lo)
		printf("            kept up at %u: %.2f ms a tick (worst %.2f)",
		       cap->lo.participants, cap->lo.tick_ms,
		       cap->lo.max_tick_ms);
	if (cap->have_hi)
		printf("%s did not at %u: %.2f ms (worst %.2f)",
		       cap->have_lo ? ";" : "           ", cap->hi.participants,
		       cap->hi.tick_ms, cap->hi.max_tick_ms);
	printf("\n");
}

static void
json_result(FILE *f, const char *key, const struct result *r)
{
	fprintf(f,
		"\"%s\":{\"participants\":%u,\"rooms\":%u,\"ticks\":%u,"
		"\"avg_tick_ms\":%.3f,\"max_tick_ms\":%.3f,"
		"\"avg_tick_wall_ms\":%.3f,\"us_per_participant_tick\":%.4f}",
		key, r->participants, r->rooms, r->ticks, r->tick_ms,
		r->max_tick_ms, r->wall_ms, r->us_pp);
}

static void
json_capacity(FILE *f, const struct capacity *c)
{
	fprintf(f, "\"participants_per_core\":%.0f,\"extrapolated\":%s,",
		c->sustained, c->extrapolated ? "true" : "false");
	fprintf(f, "\"us_per_participant_tick_at_scale\":%.4f,",
		TICK_US / c->sustained);
	json_result(f, "fixed_size", &c->base);
	if (c->have_lo) {
		fprintf(f, ",");
		json_result(f, "kept_up", &c->lo);
	}
	if (c->have_hi) {
		fprintf(f, ",");
		json_result(f, "fell_behind", &c->hi);
	}
}

static void
json_codec(FILE *f, const char *key, const struct codec_cost *c)
{
	fprintf(f, "\"%s\":{\"decode\":%.4f,\"encode\":%.4f,\"total\":%.4f}",
		key, c->dec_us, c->enc_us, c->both_us);
}

static int
write_json(const char *path, const struct all *a)
{
	FILE *f = fopen(path, "w");
	double limit = TICK_US / a->opus.both_us;

	if (f == NULL)
		return errno;
	fprintf(f,
		"{\"bench\":\"mixbench\",\"quick\":%s,\"ticks\":%u,"
		"\"max_talkers\":%u,\"total_s\":%.1f,",
		a->quick ? "true" : "false", a->ticks, MAX_TALKERS, a->total_s);
	fprintf(f, "\"codec_only_us\":{\"g711_tables\":%.4f,", a->g711_raw);
	json_codec(f, "pcmu_8k", &a->pcmu8);
	fprintf(f, ",");
	json_codec(f, "pcmu_16k", &a->pcmu16);
	fprintf(f, ",");
	json_codec(f, "g722_16k", &a->g722);
	fprintf(f, ",");
	json_codec(f, "opus_16k", &a->opus);
	fprintf(f, "}");
	if (a->run[1]) {
		fprintf(f,
			",\"s1_pcmu_3party\":{\"target_8k\":20000,"
			"\"met\":%s,\"rates\":[",
			a->s1[0].sustained >= 20000 ? "true" : "false");
		for (int i = 0; i < 2; i++) {
			fprintf(f, "%s{\"rate\":%u,", i ? "," : "",
				i ? 16000 : 8000);
			json_capacity(f, &a->s1[i]);
			fprintf(f, "}");
		}
		fprintf(f, "]}");
	}
	if (a->run[2]) {
		fprintf(f,
			",\"s2_opus_3party\":{\"codec_only_limit\":%.2f,"
			"\"ratio\":%.3f,\"target_ratio\":0.8,\"met\":%s,",
			limit, a->s2.sustained / limit,
			a->s2.sustained / limit >= 0.8 ? "true" : "false");
		json_capacity(f, &a->s2);
		fprintf(f, "}");
	}
	if (a->run[3]) {
		fprintf(f,
			",\"s3_opus_listeners\":{\"talkers\":3,"
			"\"target\":10000,\"join_us\":%.1f,"
			"\"stopped_by\":\"%s\",\"modes\":[",
			a->s3.join_us, a->s3.stop);
		for (unsigned i = 0; i < S3_MODES; i++) {
			const struct s3_mode_res *m = &a->s3.m[i];

			fprintf(f,
				"%s{\"mode\":\"%s\",\"listeners_per_core\":%."
				"0f,"
				"\"extrapolated\":%s,\"largest_kept_up\":%u,"
				"\"us_per_listener_tick\":%.4f,"
				"\"verdict\":\"%s\",\"steps\":[",
				i ? "," : "", s3_modes[i].name, m->sustained,
				m->extrapolated ? "true" : "false",
				s3_kept_up(m), m->us_per_listener,
				s3_verdict(m, 10000));
			for (unsigned k = 0; k < m->n_steps; k++)
				fprintf(f,
					"%s{\"listeners\":%u,"
					"\"avg_tick_ms\":%.3f,"
					"\"max_tick_ms\":%.3f,"
					"\"avg_tick_wall_ms\":%.3f}",
					k ? "," : "", m->n[k], m->ms[k],
					m->max_ms[k], m->wall_ms[k]);
			fprintf(f, "]}");
		}
		fprintf(f, "]}");
	}
	if (a->run[4]) {
		fprintf(f, ",\"s4_g722_10party\":{\"max_talkers\":4,");
		json_capacity(f, &a->s4);
		fprintf(f, "}");
	}
	if (a->run[5]) {
		fprintf(f, ",\"s5_room_size\":[");
		for (int s = 0; s < N_SERIES; s++) {
			fprintf(f, "%s{\"series\":\"%s\",\"points\":[",
				s ? "," : "", series[s].name);
			for (int z = 0; z < N_SIZES; z++)
				fprintf(f,
					"%s{\"room\":%u,\"participants\":%u,"
					"\"us_per_participant_tick\":%.4f}",
					z ? "," : "", sizes[z],
					a->s5[s][z].participants,
					a->s5[s][z].us_pp);
			fprintf(f, "]}");
		}
		fprintf(f, "]");
	}
	fprintf(f, "}\n");
	return fclose(f) == 0 ? 0 : errno;
}

/* Data and a gnuplot script next to the JSON; the png if gnuplot is here. */
static void
write_plot(const char *json, const struct all *a)
{
	char dir[PATH_MAX], dat[PATH_MAX + 32], gp[PATH_MAX + 32],
		cmd[2 * PATH_MAX + 64];
	const char *slash = strrchr(json, '/');
	FILE *f;

	if (!a->run[5]) {
		printf("--plot: scenario 5 did not run, nothing to plot\n");
		return;
	}
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - json) : 1,
		 slash ? json : ".");
	snprintf(dat, sizeof(dat), "%s/mixbench_rooms.dat", dir);
	snprintf(gp, sizeof(gp), "%s/mixbench.gp", dir);
	f = fopen(dat, "w");
	if (f == NULL) {
		printf("--plot: cannot write %s: %s\n", dat, strerror(errno));
		return;
	}
	fprintf(f, "# us per participant per tick; 3 talkers a room, the "
		   "rest silent\n# room");
	for (int s = 0; s < N_SERIES; s++)
		fprintf(f, " %s", series[s].name);
	fprintf(f, "\n");
	for (int z = 0; z < N_SIZES; z++) {
		fprintf(f, "%u", sizes[z]);
		for (int s = 0; s < N_SERIES; s++)
			fprintf(f, " %.4f", a->s5[s][z].us_pp);
		fprintf(f, "\n");
	}
	fclose(f);
	f = fopen(gp, "w");
	if (f == NULL) {
		printf("--plot: cannot write %s: %s\n", gp, strerror(errno));
		return;
	}
	fprintf(f,
		"# gnuplot %s  (paths relative to where mixbench ran)\n"
		"set terminal pngcairo size 900,600\n"
		"set output '%s/mixbench.png'\n"
		"set title 'mixbench: one core; 3 talkers a room, the rest "
		"silent'\n"
		"set xlabel 'participants per room'\n"
		"set ylabel 'us per participant per tick'\n"
		"set logscale xy\nset grid\nset key top right\n"
		"set xtics (3, 5, 10, 20, 50)\n"
		"plot '%s' u 1:2 w lp t 'PCMU, 8 kHz mix', \\\n"
		"     '' u 1:3 w lp t 'PCMU, 16 kHz mix', \\\n"
		"     '' u 1:4 w lp t 'Opus, 16 kHz mix'\n",
		gp, dir, dat);
	fclose(f);
	printf("wrote %s and %s\n", dat, gp);
	if (!on_path("gnuplot")) {
		printf("gnuplot is not on PATH: no png; run `gnuplot %s` "
		       "where it is\n",
		       gp);
		return;
	}
	snprintf(cmd, sizeof(cmd), "gnuplot '%s'", gp);
	if (system(cmd) == 0)
		printf("wrote %s/mixbench.png\n", dir);
	else
		printf("gnuplot failed: no png\n");
}

int
main(int argc, char **argv)
{
	const char *json = "bench/results/mixbench.json";
	bool plot = false, any_selected = false;
	unsigned s3_max = 0, ticks_opt = 0;
	unsigned n_g711, n_opus, n_g722, n5_g711, n5_opus, cticks, ticks5;
	double s3_budget = -1, t_begin;
	struct dp_conf dc = {0};
	static struct all a;
	int ch, err;

	static const struct option opts[] = {
		{"quick", no_argument, NULL, 'q'},
		{"json", required_argument, NULL, 'j'},
		{"plot", no_argument, NULL, 'p'},
		{"scenario", required_argument, NULL, 's'},
		{"ticks", required_argument, NULL, 't'},
		{"s3-budget", required_argument, NULL, 'b'},
		{"s3-max", required_argument, NULL, 'm'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'q':
			a.quick = true;
			break;
		case 'j':
			json = optarg;
			break;
		case 'p':
			plot = true;
			break;
		case 's': {
			int s = atoi(optarg);

			if (s < 1 || s > 5) {
				usage();
				return 64;
			}
			a.run[s] = true;
			any_selected = true;
			break;
		}
		case 't':
			ticks_opt = (unsigned)atoi(optarg);
			break;
		case 'b':
			s3_budget = atof(optarg);
			break;
		case 'm':
			s3_max = (unsigned)atoi(optarg);
			break;
		case 'v':
			B.verbose = true;
			break;
		default:
			usage();
			return ch == 'h' ? 0 : 64;
		}
	}
	if (!any_selected)
		for (int s = 1; s <= 5; s++)
			a.run[s] = true;
	if (s3_budget < 0)
		s3_budget = a.quick ? 5 : 50;
	n_g711 = a.quick ? 600 : 3000;
	n_g722 = a.quick ? 200 : 1000;
	n_opus = a.quick ? 15 : 30;
	n5_g711 = a.quick ? 600 : 3000;
	n5_opus = a.quick ? 60 : 150;
	a.ticks = ticks_opt ? ticks_opt : a.quick ? 20 : 100;
	cticks = ticks_opt ? ticks_opt : a.quick ? 10 : 40;
	ticks5 = ticks_opt ? ticks_opt : a.quick ? 21 : 42;

	if (bench_eal_init("mixbench") != 0)
		return 1;
	/* The whole port range: one endpoint slot per leg, and scenario 3
	 * wants tens of thousands. Packets go in 256 at a time and the
	 * next poll frees every one; the null port frees what is sent: the
	 * pool needs a few bursts' worth. */
	dc.kind = DP_NULL;
	dc.port_lo = PORT_LO;
	dc.port_hi = PORT_HI;
	dc.n_workers = 1;
	dc.n_mbufs = 16383;
	dc.efd = -1;
	err = dp_alloc(&B.dp, &dc);
	if (err) {
		fprintf(stderr, "mixbench: dataplane: %s\n", strerror(err));
		return 1;
	}
	B.ring = dp_worker_ring(B.dp, 0);
	B.pool = dp_pool(B.dp);
	B.slots = dp_ep_slots(B.dp);
	if (s3_max == 0 || s3_max > B.slots - 3)
		s3_max = B.slots - 3;
	t_begin = mono_us();

	printf("mixbench: one worker polled on the main lcore, null port, "
	       "virtual clock%s\n",
	       a.quick ? "; --quick: short runs, rough figures" : "");
	printf("Opus legs at 16 kHz accept FEC and DTX (the worker's "
	       "encoder: 32 kbit/s, VOIP); peers send the same.\n");
	printf("Rooms mix at most %u talkers (the daemon's default) unless "
	       "said otherwise. \"at scale\": found by\nrunning at the size "
	       "predicted until one size keeps up (avg tick <= 20 ms) and "
	       "a slightly larger one does not.\n\n",
	       MAX_TALKERS);

	/* The codecs alone, through the legs' codec code (codec.h). */
	a.g711_raw = g711_raw_us();
	codec_only(MIX_PCMU, 8000, a.quick ? 20000 : 100000, &a.pcmu8);
	codec_only(MIX_PCMU, 16000, a.quick ? 5000 : 30000, &a.pcmu16);
	codec_only(MIX_G722, 16000, a.quick ? 2000 : 10000, &a.g722);
	codec_only(MIX_OPUS, 16000, a.quick ? 100 : 600, &a.opus);
	printf("codecs alone, 20 ms of audio: decode + encode = total\n");
	printf("  G.711 tables only (mix_g711_*)      %8.3f us\n", a.g711_raw);
	printf("  PCMU, mixing at 8 kHz            %8.3f + %8.3f = %8.3f us"
	       " (SpanDSP PLC history included)\n",
	       a.pcmu8.dec_us, a.pcmu8.enc_us, a.pcmu8.both_us);
	printf("  PCMU, mixing at 16 kHz           %8.3f + %8.3f = %8.3f us"
	       " (speexdsp resampling both ways)\n",
	       a.pcmu16.dec_us, a.pcmu16.enc_us, a.pcmu16.both_us);
	printf("  G.722, 16 kHz                    %8.3f + %8.3f = %8.3f us\n",
	       a.g722.dec_us, a.g722.enc_us, a.g722.both_us);
	printf("  Opus, 16 kHz                     %8.3f + %8.3f = %8.3f us"
	       " -> codec-only limit %.1f legs/core\n\n",
	       a.opus.dec_us, a.opus.enc_us, a.opus.both_us,
	       TICK_US / a.opus.both_us);
	fflush(stdout);

	if (a.run[1]) {
		static const unsigned rates[2] = {8000, 16000};

		printf("1. PCMU, 3-party rooms, everyone talking (%u ticks; "
		       "codec work: 3 decodes + 3 mix-minus encodes a "
		       "room)\n",
		       a.ticks);
		for (int i = 0; i < 2; i++) {
			struct spec sp = {MIX_PCMU, rates[i],	 3,
					  3,	    MAX_TALKERS, SRC_ALL};

			if ((err = find_capacity(&sp, n_g711, a.ticks, cticks,
						 &a.s1[i])))
				goto fail;
			print_capacity(i ? "16 kHz" : "8 kHz", &sp, &a.s1[i],
				       i ? &a.pcmu16 : &a.pcmu8);
			fflush(stdout);
		}
		printf("   target >= 20000 participants/core at 8 kHz: %s "
		       "(%.0f)\n\n",
		       yes_no(a.s1[0].sustained >= 20000), a.s1[0].sustained);
	}

	if (a.run[2]) {
		struct spec sp = {MIX_OPUS, 16000, 3, 3, MAX_TALKERS, SRC_ALL};
		double limit = TICK_US / a.opus.both_us;

		printf("2. Opus 16 kHz, 3-party rooms, everyone talking (%u "
		       "ticks; 3 mix-minus encodes a room)\n",
		       a.ticks);
		if ((err = find_capacity(&sp, n_opus, a.ticks, cticks, &a.s2)))
			goto fail;
		print_capacity("Opus", &sp, &a.s2, &a.opus);
		printf("   codec-only limit 20 ms / (%.1f + %.1f us) = %.1f; "
		       "ratio %.2f (at the fixed size %.2f)\n",
		       a.opus.enc_us, a.opus.dec_us, limit,
		       a.s2.sustained / limit, a.s2.base.per_core / limit);
		printf("   (the shared encoder rests while every member is a "
		       "seated talker; codec work alone caps the ratio at "
		       "%.2f)\n",
		       a.opus.both_us / codec_work_us(&sp, &a.opus));
		printf("   target ratio >= 0.8: %s\n\n",
		       yes_no(a.s2.sustained / limit >= 0.8));
		fflush(stdout);
	}

	if (a.run[3]) {
		struct s3_res *r = &a.s3;

		printf("3. Opus 16 kHz, one room: 3 talkers + N listeners, N "
		       "grown until a tick takes > 20 ms\n   (time budget "
		       "%.0f s, cap %u listeners; avg ms a tick at each N)\n",
		       s3_budget, s3_max);
		if ((err = run_s3(s3_max, s3_budget, &a.opus, r)))
			goto fail;
		for (unsigned i = 0; i < S3_MODES; i++) {
			struct s3_mode_res *m = &r->m[i];

			printf("   %-8s %s\n            ", s3_modes[i].name,
			       s3_modes[i].what);
			for (unsigned k = 0; k < m->n_steps; k++)
				printf("%u: %.2f%s", m->n[k], m->ms[k],
				       k + 1 == m->n_steps ? "\n"
				       : k % 6 == 5	   ? ",\n            "
							   : ", ");
			printf("            -> %.0f listeners/core%s, %.3f us "
			       "per listener per tick",
			       m->sustained,
			       m->extrapolated ? " (extrapolated)" : "",
			       m->us_per_listener);
			printf("; largest measured that kept up: %u\n",
			       s3_kept_up(m));
		}
		printf("   stopped by %s; a listener's join cost %.0f us of "
		       "worker time\n",
		       r->stop, r->join_us);
		printf("   target >= 10000 listeners:");
		for (unsigned i = 0; i < S3_MODES; i++)
			printf("%s %s %s", i ? "," : "", s3_modes[i].name,
			       s3_verdict(&r->m[i], 10000));
		printf("\n\n");
		fflush(stdout);
	}

	if (a.run[4]) {
		struct spec sp = {MIX_G722, 16000, 10, 10, 4, SRC_ALL};

		printf("4. G.722 16 kHz, 10-party rooms, everyone talking, max "
		       "4 talkers (%u ticks; 10 decodes + 4 mix-minus\n   "
		       "encodes + 1 shared encode a room)\n",
		       a.ticks);
		if ((err = find_capacity(&sp, n_g722, a.ticks, cticks, &a.s4)))
			goto fail;
		print_capacity("G.722", &sp, &a.s4, &a.g722);
		printf("\n");
		fflush(stdout);
	}

	if (a.run[5]) {
		printf("5. us per participant per tick against room size: 3 "
		       "talkers a room, the rest silent\n   (PCMU: %u "
		       "participants, Opus: %u; %u ticks)\n",
		       n5_g711, n5_opus, ticks5);
		printf("   %-6s", "room");
		for (int s = 0; s < N_SERIES; s++)
			printf(" %12s", series[s].name);
		printf("\n");
		for (int z = 0; z < N_SIZES; z++) {
			printf("   %-6u", sizes[z]);
			for (int s = 0; s < N_SERIES; s++) {
				struct spec sp = {
					series[s].codec, series[s].rate,
					sizes[z],	 3,
					MAX_TALKERS,	 series[s].quiet};
				unsigned n = series[s].codec == MIX_OPUS
						     ? n5_opus
						     : n5_g711;

				if ((err = run_rooms(&sp, n, ticks5,
						     &a.s5[s][z])))
					goto fail;
				printf(" %12.3f", a.s5[s][z].us_pp);
				fflush(stdout);
			}
			printf("\n");
		}
		printf("\n");
	}
	a.total_s = (mono_us() - t_begin) / 1e6;
	printf("total %.1f s\n", a.total_s);

	err = write_json(json, &a);
	if (err)
		fprintf(stderr, "mixbench: cannot write %s: %s\n", json,
			strerror(err));
	else
		printf("wrote %s\n", json);
	if (plot)
		write_plot(json, &a);

	dp_free(B.dp);
	rte_eal_cleanup();
	return 0;
fail:
	fprintf(stderr, "mixbench: %s\n", strerror(err));
	return 1;
}
