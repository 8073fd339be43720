/*
 * test_jbuf.c - a leg's jitter buffer (mixer/jbuf.c), alone and with the
 * codecs behind it (mixer/codec.c).
 *
 * The buffer is driven directly with synthetic packets: sequence numbers,
 * RTP timestamps and arrival times chosen by the test, the payload
 * carrying its own sequence number so that every get can be checked.
 * Streams are simulated on a 20 ms tick, one get per tick as the worker
 * does, with arrivals put before the tick they precede. Checked:
 * - playout starts once the target is held (one packet for a calm stream
 *   at the worker's 20 ms minimum, three at 60 ms) and comes out in order;
 * - reordering within the buffer's depth is undone; duplicates and late
 *   packets are dropped and counted; a loss is reported once, with the
 *   packet after it offered for FEC;
 * - the target follows the interarrival jitter (RFC 3550 A.8), within
 *   max_ms, and falls back on a calm stream;
 * - clock skew: a sender 1% fast is held to a bounded depth by dropping, a
 *   sender 1% slow runs the buffer dry now and then and playout resumes;
 * - sequence wrap-around is seamless; jumps and a new SSRC restart it.
 *
 * Then the audio a listener hears: a talker (a second of silence, then a
 * 440 Hz tone) encoded with mix_cs at 16 kHz (PCMU, G.722, Opus), every
 * tenth packet lost, played through the buffer and the codec the way the
 * worker's leg_frame() does (decode a packet, conceal a loss with the next
 * payload for Opus FEC, bridge an underrun for up to three frames). No
 * frame is quiet, and where a packet was lost the tone stays within 6 dB
 * (Goertzel; 8 dB for libopus's own PLC); with Opus in-band FEC on, the
 * lost frames come much closer to the lossless decode than PLC makes them.
 *
 * The tests named test_fixed_* guard defects found while these were
 * written, each fixed since (see its comment): the jitter estimate across
 * an RTP timestamp wrap, a reordered first packet taken for late, losses
 * after an underrun counted nowhere, a sequence jump under 32 taken for a
 * burst of losses (jbuf.c); G.722 concealment fading twice as fast as
 * G.711's, and SpanDSP's PLC copying overlapping memory (codec.c now
 * rotates SpanDSP's history itself, with memmove).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <opus.h>
#define SPANDSP_EXPOSE_INTERNAL_STRUCTURES
#include <spandsp.h>

#include "mixer/codec.h"
#include "mixer/jbuf.h"
#include "tests/unit/tone.h"

#define MS	  1000000ull  /* ns */
#define T0	  (1000 * MS) /* the first arrival: 1 s */
#define SSRC	  0x12345678u
#define MIN_MS	  20 /* the worker's bounds (worker.c JB_MIN_MS, JB_MAX_MS) */
#define MAX_MS	  200
#define G711_STEP 160 /* RTP units per 20 ms at 8 kHz */
#define MAX_ARR	  4096

/* Audio: the conference rate and what the worker's leg_frame uses. */
#define RATE		16000
#define FRAME		(RATE / 50)
#define FIFO_CAP	4096   /* worker.c: samples, power of two */
#define PKT_SAMPLES	2880   /* worker.c MAX_PKT_SAMPLES */
#define PLC_MAX		3      /* worker.c PLC_MAX_FRAMES */
#define PAYLOAD_CAP	1200   /* worker.c MAX_PAYLOAD */
#define AMP		8000.0 /* the tone: about -12 dBFS */
#define TONE		440.0
#define QUIET_PKTS	50  /* the talker's first second: silence */
#define AUDIO_PKTS	300 /* then five seconds of the tone */
#define LOSS_EVERY	10
#define WARMUP		5 /* frames before the first check */
#define LEVEL_TOL_DB	6.0
#define OPUS_PLC_TOL_DB 8.0   /* see test_plc_opus */
#define SILENT_DB	-20.0 /* a frame's RMS this far below the tone's */

/* ---- synthetic packets ---- */

/* A payload that names its sequence number; 4 to 8 bytes long. */
static unsigned
pay_make(uint8_t *p, uint16_t seq)
{
	unsigned len = 4 + seq % 5;

	p[0] = 'j';
	p[1] = (uint8_t)(seq >> 8);
	p[2] = (uint8_t)seq;
	p[3] = 'b';
	for (unsigned i = 4; i < len; i++)
		p[i] = (uint8_t)(seq + i);
	return len;
}

/* The sequence number a payload names, checking all of it; -1 if none. */
static int
pay_seq(const uint8_t *p, unsigned len)
{
	uint8_t want[8];
	uint16_t seq;

	if (p == NULL || len < 4 || p[0] != 'j' || p[3] != 'b')
		return -1;
	seq = (uint16_t)(p[1] << 8 | p[2]);
	if (len != pay_make(want, seq) || memcmp(p, want, len) != 0)
		return -1;
	return seq;
}

static struct mix_jb *
jb_new(unsigned clock, unsigned min_ms, unsigned max_ms)
{
	struct mix_jb *jb = malloc(mix_jb_size());

	assert_non_null(jb);
	mix_jb_init(jb, clock, min_ms, max_ms);
	return jb;
}

static int
put(struct mix_jb *jb, uint32_t ssrc, uint16_t seq, uint32_t ts, uint64_t at)
{
	uint8_t p[8];
	unsigned len = pay_make(p, seq);

	return mix_jb_put(jb, ssrc, seq, ts, false, p, len, at);
}

/* Packet k of a calm 8 kHz stream from seq0: its timestamp and arrival. */
static int
put_calm(struct mix_jb *jb, uint16_t seq0, unsigned k)
{
	return put(jb, SSRC, (uint16_t)(seq0 + k), 7u + G711_STEP * k,
		   T0 + k * 20 * MS);
}

/* One get: the payload's sequence number in *seq (-1: none). */
static enum mix_jb_get
get(struct mix_jb *jb, int *seq)
{
	static const uint8_t junk = 0;
	const uint8_t *p = &junk;
	unsigned len = 99;
	enum mix_jb_get r = mix_jb_get(jb, &p, &len);

	*seq = pay_seq(p, len);
	switch (r) {
	case JB_PACKET:
		assert_true(*seq >= 0);
		break;
	case JB_LOST:
		/* The packet after the loss, or nothing. */
		assert_true(p == NULL ? len == 0 : *seq >= 0);
		break;
	default:
		assert_null(p);
		assert_int_equal(len, 0);
		break;
	}
	return r;
}

static struct mix_jb_stats
stats(const struct mix_jb *jb)
{
	struct mix_jb_stats st;

	mix_jb_stats(jb, &st);
	return st;
}

static void
expect_packet(struct mix_jb *jb, int want)
{
	int seq;

	assert_int_equal(get(jb, &seq), JB_PACKET);
	assert_int_equal(seq, want);
}

/* ---- simulated streams ---- */

static uint32_t rng = 1;

static uint32_t
rnd(void)
{
	/* xorshift32: the same streams on every run. */
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* Uniform in [-j, j] microseconds, as ns. */
static int64_t
jitter_ns(unsigned j_us)
{
	if (j_us == 0)
		return 0;
	return ((int64_t)(rnd() % (2 * j_us + 1)) - (int64_t)j_us) * 1000;
}

struct arr {
	uint32_t ssrc;
	uint16_t seq;
	uint32_t ts;
	uint64_t at;
	unsigned k; /* the packet's index in the stream */
};

struct stream {
	uint32_t ssrc;
	uint16_t seq0;
	uint32_t ts0;
	unsigned step;	    /* RTP units per packet */
	double period_ms;   /* the sender's 20 ms, on our clock */
	unsigned jitter_us; /* each arrival uniform within +-jitter_us */
	unsigned loss;	    /* every loss-th packet never comes (0: none) */
	uint64_t start;	    /* the first packet's departure */
};

static int
arr_cmp(const void *a, const void *b)
{
	const struct arr *x = a, *y = b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x->k < y->k ? -1 : x->k > y->k;
}

/* n packets of s into a (sorted by arrival); returns how many arrive. */
static size_t
stream_make(struct arr *a, const struct stream *s, unsigned k0, unsigned n)
{
	size_t m = 0;

	for (unsigned k = k0; k < k0 + n; k++) {
		int64_t at = (int64_t)s->start +
			     (int64_t)llround(k * s->period_ms * MS) +
			     jitter_ns(s->jitter_us);

		if (s->loss && k % s->loss == s->loss - 1)
			continue;
		a[m].ssrc = s->ssrc;
		a[m].seq = (uint16_t)(s->seq0 + k);
		a[m].ts = s->ts0 + s->step * k;
		a[m].at = (uint64_t)at;
		a[m].k = k;
		m++;
	}
	qsort(a, m, sizeof(*a), arr_cmp);
	return m;
}

/* What the gets returned, and whether they kept to the stream's order. */
struct tally {
	unsigned packet, lost, lost_fec, dry, wait;
	unsigned skipped;   /* sequence numbers passed over silently */
	unsigned backwards; /* a packet older than one already given */
	unsigned fec_wrong; /* a FEC payload other than the next packet's */
	bool have_expect;
	uint16_t expect;
	int last_seq; /* last JB_PACKET's, -1 none */
};

static void
tally_init(struct tally *t)
{
	memset(t, 0, sizeof(*t));
	t->last_seq = -1;
}

static enum mix_jb_get
tally_get(struct mix_jb *jb, struct tally *t)
{
	int seq;
	enum mix_jb_get r = get(jb, &seq);
	int16_t d;

	switch (r) {
	case JB_PACKET:
	case JB_SILENT_PACKET:
		t->packet++;
		if (t->have_expect) {
			d = (int16_t)((uint16_t)seq - t->expect);
			if (d > 0)
				t->skipped += (unsigned)d;
			else if (d < 0)
				t->backwards++;
		}
		t->have_expect = true;
		t->expect = (uint16_t)(seq + 1);
		t->last_seq = seq;
		break;
	case JB_LOST:
		t->lost++;
		if (seq >= 0) {
			t->lost_fec++;
			if (t->have_expect &&
			    (uint16_t)seq != (uint16_t)(t->expect + 1))
				t->fec_wrong++;
		}
		if (t->have_expect)
			t->expect++;
		break;
	case JB_DRY:
		t->dry++;
		break;
	case JB_WAIT:
		t->wait++;
		break;
	}
	return r;
}

/* A stream played on a 20 ms tick: arrivals up to each tick, one get. */
struct sim {
	struct mix_jb *jb;
	const struct arr *a;
	size_t n, i;
	struct tally t;
	unsigned put_dropped;	/* puts that returned 1 */
	unsigned max_excess_in; /* most depth above target before a get */
	unsigned max_excess;	/* the same after the get */
};

static void
sim_init(struct sim *s, struct mix_jb *jb, const struct arr *a, size_t n)
{
	memset(s, 0, sizeof(*s));
	s->jb = jb;
	s->a = a;
	s->n = n;
	tally_init(&s->t);
}

static void
sim_put_until(struct sim *s, uint64_t t)
{
	uint8_t p[8];

	for (; s->i < s->n && s->a[s->i].at <= t; s->i++) {
		const struct arr *x = &s->a[s->i];
		unsigned len = pay_make(p, x->seq);

		if (mix_jb_put(s->jb, x->ssrc, x->seq, x->ts, false, p, len,
			       x->at))
			s->put_dropped++;
	}
}

/* The tick at t: what arrived before it, then one get. */
static enum mix_jb_get
sim_tick(struct sim *s, uint64_t t)
{
	enum mix_jb_get r;
	struct mix_jb_stats st;

	sim_put_until(s, t);
	st = stats(s->jb);
	if (st.depth > st.target && st.depth - st.target > s->max_excess_in)
		s->max_excess_in = st.depth - st.target;
	r = tally_get(s->jb, &s->t);
	st = stats(s->jb);
	if (st.depth > st.target && st.depth - st.target > s->max_excess)
		s->max_excess = st.depth - st.target;
	return r;
}

/* Ticks 10 ms after each 20 ms slot of our clock, from T0. */
static uint64_t
tick_at(unsigned j)
{
	return T0 + j * 20 * MS + 10 * MS;
}

/* ---- the buffer alone ---- */

/*
 * A calm stream at the worker's bounds: the target is one packet (20 ms,
 * the minimum: no jitter, one packet's duration), so playout starts with
 * the first packet and every get returns the one just put, in order.
 * Nothing is late, lost, dropped or counted as an underrun.
 */
static void
test_in_order(void **state)
{
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	struct mix_jb_stats st;
	int seq;

	(void)state;
	assert_int_equal(mix_jb_ptime_ts(jb), 0);
	assert_int_equal(get(jb, &seq), JB_WAIT);
	for (unsigned k = 0; k < 500; k++) {
		assert_int_equal(put_calm(jb, 1000, k), 0);
		st = stats(jb);
		assert_int_equal(st.target, 1);
		assert_int_equal(st.depth, 1);
		expect_packet(jb, (int)(1000 + k));
		assert_int_equal(stats(jb).depth, 0);
	}
	st = stats(jb);
	assert_int_equal(st.late + st.dups + st.lost + st.dropped +
				 st.underruns + st.resets,
			 0);
	assert_int_equal(st.jitter_ms, 0);
	assert_int_equal(mix_jb_ptime_ts(jb), G711_STEP);
	free(jb);
}

/*
 * A 60 ms minimum: playout waits for three packets, then gives the
 * oldest; the buffer stays two deep after each get. Opus's 48 kHz clock:
 * the packet duration is 960 units.
 */
static void
test_playout_waits_for_target(void **state)
{
	struct mix_jb *jb = jb_new(48000, 60, MAX_MS);
	int seq;

	(void)state;
	for (unsigned k = 0; k < 100; k++) {
		assert_int_equal(put(jb, SSRC, (uint16_t)(40000 + k), 960 * k,
				     T0 + k * 20 * MS),
				 0);
		assert_int_equal(stats(jb).target, 3);
		if (k < 2) {
			assert_int_equal(get(jb, &seq), JB_WAIT);
			continue;
		}
		expect_packet(jb, (int)(40000 + k - 2));
		assert_int_equal(stats(jb).depth, 2);
	}
	assert_int_equal(mix_jb_ptime_ts(jb), 960);
	assert_int_equal(stats(jb).lost + stats(jb).underruns, 0);
	free(jb);
}

/*
 * Reordering within the buffer's depth (three packets): from seq 3 on,
 * each pair arrives swapped (4 before 3, 6 before 5, ...), and across the
 * sequence wrap too. Everything comes out in order; nothing is counted
 * late, duplicate or lost.
 */
static void
test_reorder(void **state)
{
	static const uint16_t seq0[] = {0, 65500};

	(void)state;
	for (size_t v = 0; v < FC_ARRAY_SIZE(seq0); v++) {
		struct mix_jb *jb = jb_new(8000, 60, MAX_MS);
		struct tally t;
		struct mix_jb_stats st;

		tally_init(&t);
		for (unsigned slot = 0; slot < 100; slot++) {
			/* The packet arriving in this slot. */
			unsigned k = slot >= 3
					     ? (slot % 2 ? slot + 1 : slot - 1)
					     : slot;

			assert_int_equal(put_calm(jb, seq0[v], k), 0);
			tally_get(jb, &t);
		}
		st = stats(jb);
		assert_int_equal(t.wait, 2);
		assert_int_equal(t.packet, 98);
		assert_int_equal(t.lost + t.dry + t.skipped + t.backwards, 0);
		assert_int_equal(t.last_seq, (uint16_t)(seq0[v] + 97));
		assert_int_equal(st.late + st.dups + st.lost + st.dropped +
					 st.underruns + st.resets,
				 0);
		free(jb);
	}
}

/*
 * Duplicates (of a held packet) and late packets (played already, or
 * concealed) are dropped: put returns 1 and they are counted; a duplicate
 * never replaces what is held.
 */
static void
test_dups_and_late(void **state)
{
	struct mix_jb *jb = jb_new(8000, 60, MAX_MS);
	struct mix_jb_stats st;
	uint8_t other[4] = {'j', 0, 9, 'x'};
	int seq;

	(void)state;
	for (unsigned k = 0; k < 3; k++)
		assert_int_equal(put_calm(jb, 0, k), 0);
	/* Duplicates of held packets. */
	assert_int_equal(put_calm(jb, 0, 1), 1);
	assert_int_equal(put_calm(jb, 0, 2), 1);
	assert_int_equal(mix_jb_put(jb, SSRC, 2, 7 + 2 * G711_STEP, false,
				    other, sizeof(other), T0 + 41 * MS),
			 1);
	st = stats(jb);
	assert_int_equal(st.dups, 3);
	assert_int_equal(st.depth, 3);
	expect_packet(jb, 0);
	/* Seq 0 again: played already. */
	assert_int_equal(put_calm(jb, 0, 0), 1);
	assert_int_equal(stats(jb).late, 1);
	expect_packet(jb, 1);
	expect_packet(jb, 2); /* the original payload, not `other` */
	assert_int_equal(put_calm(jb, 0, 3), 0);
	assert_int_equal(put_calm(jb, 0, 5), 0);
	expect_packet(jb, 3);
	assert_int_equal(get(jb, &seq), JB_LOST); /* 4 */
	assert_int_equal(seq, 5);
	/* Seq 4 after its concealment: late. */
	assert_int_equal(put_calm(jb, 0, 4), 1);
	expect_packet(jb, 5);
	/* A late packet far back (but within the late window) too. */
	assert_int_equal(put(jb, SSRC, (uint16_t)(6 - 100), 0, T0), 1);
	st = stats(jb);
	assert_int_equal(st.late, 3);
	assert_int_equal(st.dups, 3);
	assert_int_equal(st.lost, 1);
	assert_int_equal(st.resets, 0);
	free(jb);
}

/*
 * Losses while playing: a missing packet with later ones held is reported
 * once as JB_LOST with the next packet's payload (for FEC), then that
 * packet comes normally. Two in a row: the first with no FEC payload (the
 * one after it is missing too), the second with the next one's.
 */
static void
test_loss(void **state)
{
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	int seq;

	(void)state;
	assert_int_equal(put_calm(jb, 0, 0), 0);
	expect_packet(jb, 0);
	/* 1 never comes; 2 and 3 do. */
	assert_int_equal(put_calm(jb, 0, 2), 0);
	assert_int_equal(put_calm(jb, 0, 3), 0);
	assert_int_equal(get(jb, &seq), JB_LOST);
	assert_int_equal(seq, 2);
	assert_int_equal(stats(jb).lost, 1);
	expect_packet(jb, 2);
	expect_packet(jb, 3);
	assert_int_equal(stats(jb).lost, 1);
	/* 4, then 5 and 6 missing, 7 and 8 here. */
	assert_int_equal(put_calm(jb, 0, 4), 0);
	assert_int_equal(put_calm(jb, 0, 7), 0);
	assert_int_equal(put_calm(jb, 0, 8), 0);
	expect_packet(jb, 4);
	assert_int_equal(get(jb, &seq), JB_LOST); /* 5 */
	assert_int_equal(seq, -1);
	assert_int_equal(get(jb, &seq), JB_LOST); /* 6 */
	assert_int_equal(seq, 7);
	expect_packet(jb, 7);
	expect_packet(jb, 8);
	assert_int_equal(stats(jb).lost, 3);
	/* Then it runs dry: once. */
	assert_int_equal(get(jb, &seq), JB_DRY);
	assert_int_equal(get(jb, &seq), JB_WAIT);
	assert_int_equal(stats(jb).underruns, 1);
	assert_int_equal(stats(jb).lost, 3);
	free(jb);
}

/*
 * A steady stream with +-3 ms of jitter (target two packets) and every
 * tenth packet lost: each loss is one JB_LOST with the next payload for
 * FEC, counted once; everything else is played, in order.
 */
static void
test_loss_stream(void **state)
{
	static struct arr a[MAX_ARR];
	struct stream s = {SSRC, 100, 5, G711_STEP, 20.0, 3000, LOSS_EVERY, T0};
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	struct sim sim;
	size_t n;
	unsigned ticks = 1000;

	(void)state;
	rng = 7;
	n = stream_make(a, &s, 0, ticks + 5);
	sim_init(&sim, jb, a, n);
	/* Start with two held: the target for this jitter. */
	for (unsigned j = 1; j <= ticks; j++)
		sim_tick(&sim, tick_at(j));
	print_message("loss stream: %u played, %u lost (%u with FEC), "
		      "%u dry, target %u, jitter %u ms\n",
		      sim.t.packet, sim.t.lost, sim.t.lost_fec, sim.t.dry,
		      stats(jb).target, stats(jb).jitter_ms);
	assert_int_equal(stats(jb).target, 2);
	assert_int_equal(sim.t.dry, 0);
	assert_int_equal(sim.t.backwards + sim.t.skipped + sim.t.fec_wrong, 0);
	assert_int_equal(sim.put_dropped, 0);
	assert_int_equal(sim.t.lost, ticks / LOSS_EVERY);
	assert_int_equal(sim.t.lost_fec, sim.t.lost);
	assert_int_equal(stats(jb).lost, sim.t.lost);
	assert_int_equal(sim.t.packet + sim.t.lost, ticks);
	free(jb);
}

/*
 * Jitter: arrivals spread uniformly over +-30 ms. |D| between two such
 * arrivals averages 20 ms, so the estimate settles near 20 ms and the
 * target near 3 * 20 + 20 = 80 ms, four packets. Once the stream calms
 * down the estimate decays and the target and the depth come back down
 * (packets dropped to shorten the delay). Not quite to one packet: the
 * estimate's rounding, J16 -= (J16 + 8) >> 4, stops its decay at 7/16 of
 * an RTP unit, and three of those are more than nothing, so two.
 */
static void
test_jitter_adapts(void **state)
{
	static struct arr a[MAX_ARR];
	struct stream s = {SSRC, 60000, 5, G711_STEP, 20.0, 30000, 0, T0};
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	struct mix_jb_stats st;
	struct sim sim;
	size_t n;
	unsigned j, max_target = 0;

	(void)state;
	rng = 11;
	n = stream_make(a, &s, 0, 1500);
	/* Then calm: the same stream, no jitter. */
	s.jitter_us = 0;
	n += stream_make(a + n, &s, 1500, 1500);
	sim_init(&sim, jb, a, n);
	for (j = 0; j < 1500; j++) {
		sim_tick(&sim, tick_at(j) + 60 * MS);
		st = stats(jb);
		if (st.target > max_target)
			max_target = st.target;
	}
	st = stats(jb);
	print_message("+-30 ms: jitter %u ms, target %u (max %u), depth %u, "
		      "late %lu, lost %lu, underruns %lu, dropped %lu\n",
		      st.jitter_ms, st.target, max_target, st.depth,
		      (unsigned long)st.late, (unsigned long)st.lost,
		      (unsigned long)st.underruns, (unsigned long)st.dropped);
	assert_in_range(st.jitter_ms, 14, 26);
	assert_in_range(st.target, 3, 5);
	assert_true(max_target <= 6);
	assert_int_equal(st.resets, 0);
	assert_int_equal(sim.t.backwards, 0);
	/* Calm: within 30 s, back to the smallest target and depth. */
	for (; j < 2990; j++)
		sim_tick(&sim, tick_at(j) + 60 * MS);
	st = stats(jb);
	print_message("calm: jitter %u ms, target %u, depth %u, dropped %lu\n",
		      st.jitter_ms, st.target, st.depth,
		      (unsigned long)st.dropped);
	assert_true(st.jitter_ms <= 1);
	assert_true(st.target <= 2);
	assert_true(st.depth <= st.target + 1);
	assert_true(st.dropped > 0);
	assert_int_equal(sim.t.backwards, 0);
	free(jb);
}

/* A calm stream (+-1 ms) keeps the target small from the start. */
static void
test_calm_stays_small(void **state)
{
	static struct arr a[MAX_ARR];
	struct stream s = {SSRC, 1, 5, G711_STEP, 20.0, 1000, 0, T0};
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	struct sim sim;
	size_t n;

	(void)state;
	rng = 5;
	n = stream_make(a, &s, 0, 1000);
	sim_init(&sim, jb, a, n);
	for (unsigned j = 0; j < 995; j++) {
		sim_tick(&sim, tick_at(j));
		assert_true(stats(jb).target <= 2);
	}
	assert_true(stats(jb).jitter_ms <= 1);
	assert_int_equal(stats(jb).late + stats(jb).lost + stats(jb).resets, 0);
	assert_true(sim.t.dry <= 1);
	free(jb);
}

/*
 * The target never exceeds max_ms: +-150 ms of jitter would ask for some
 * 320 ms; the worker's 200 ms is ten packets, a 100 ms bound five.
 */
static void
test_jitter_bounded(void **state)
{
	static struct arr a[MAX_ARR];
	static const unsigned max_ms[] = {MAX_MS, 100};

	(void)state;
	for (size_t v = 0; v < FC_ARRAY_SIZE(max_ms); v++) {
		struct stream s = {SSRC, 9, 5, G711_STEP, 20.0, 150000, 0, T0};
		struct mix_jb *jb = jb_new(8000, MIN_MS, max_ms[v]);
		unsigned bound = max_ms[v] / 20, max_target = 0;
		struct sim sim;
		size_t n;

		rng = 3;
		n = stream_make(a, &s, 0, 1000);
		sim_init(&sim, jb, a, n);
		for (unsigned j = 0; j < 990; j++) {
			sim_tick(&sim, tick_at(j) + 150 * MS);
			if (stats(jb).target > max_target)
				max_target = stats(jb).target;
		}
		print_message("+-150 ms, max %u ms: jitter %u ms, target %u "
			      "(max %u)\n",
			      max_ms[v], stats(jb).jitter_ms, stats(jb).target,
			      max_target);
		assert_true(stats(jb).jitter_ms > 60);
		assert_int_equal(max_target, bound);
		assert_int_equal(stats(jb).target, bound);
		free(jb);
	}
}

/*
 * A sender 1% fast (a packet every 19.8 ms of our clock) for a minute:
 * the depth stays bounded, one packet dropped about every hundred gets
 * (once it has been two above the target for a second, SHRINK_GETS);
 * never more than that, and no losses or underruns.
 */
static void
test_skew_fast(void **state)
{
	static struct arr a[MAX_ARR];
	struct stream s = {SSRC, 65000, 5, G711_STEP, 19.8, 0, 0, T0};
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	struct mix_jb_stats st;
	struct sim sim;
	size_t n;
	unsigned ticks = 3000;

	(void)state;
	n = stream_make(a, &s, 0, ticks * 101 / 100 + 10);
	sim_init(&sim, jb, a, n);
	for (unsigned j = 0; j < ticks; j++)
		sim_tick(&sim, tick_at(j));
	st = stats(jb);
	print_message("1%% fast: target %u, depth %u, dropped %lu, most "
		      "above target %u before a get, %u after\n",
		      st.target, st.depth, (unsigned long)st.dropped,
		      sim.max_excess_in, sim.max_excess);
	assert_in_range(st.dropped, 25, 31);
	assert_int_equal(sim.put_dropped, 0);
	/* At most two above the target before a get, one after. */
	assert_true(sim.max_excess_in <= 2);
	assert_true(sim.max_excess <= 1);
	assert_int_equal(st.lost + st.underruns + st.late + st.resets, 0);
	/* Every packet is played or dropped, in order. */
	assert_int_equal(sim.t.backwards, 0);
	assert_int_equal(sim.t.skipped, st.dropped);
	free(jb);
}

/*
 * A sender 1% slow (a packet every 20.2 ms): every so often a get finds
 * the buffer empty (JB_DRY, an underrun), playout waits for the target
 * again and resumes within two gets, with the next packet: nothing is
 * skipped or lost.
 */
static void
test_skew_slow(void **state)
{
	static struct arr a[MAX_ARR];
	struct stream s = {SSRC, 200, 5, G711_STEP, 20.2, 0, 0, T0};
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	struct mix_jb_stats st;
	struct sim sim;
	size_t n;
	unsigned ticks = 3000, since_dry = 0, longest = 0;
	bool dry = false;

	(void)state;
	n = stream_make(a, &s, 0, ticks);
	sim_init(&sim, jb, a, n);
	for (unsigned j = 0; j < ticks; j++) {
		enum mix_jb_get r = sim_tick(&sim, tick_at(j));

		if (r == JB_DRY) {
			assert_false(dry);
			dry = true;
			since_dry = 0;
		} else if (dry) {
			since_dry++;
			if (r == JB_PACKET) {
				dry = false;
				if (since_dry > longest)
					longest = since_dry;
			} else {
				assert_int_equal(r, JB_WAIT);
			}
		}
	}
	st = stats(jb);
	print_message("1%% slow: target %u, underruns %lu, longest resume "
		      "%u gets\n",
		      st.target, (unsigned long)st.underruns, longest);
	assert_true(st.underruns >= 10);
	assert_true(st.underruns <= 30);
	assert_int_equal(sim.t.dry, st.underruns);
	assert_true(longest <= 2);
	assert_int_equal(st.lost + st.dropped + st.late + st.resets, 0);
	assert_int_equal(sim.t.skipped + sim.t.backwards, 0);
	free(jb);
}

/* 65535 -> 0: seamless, at the worker's bounds. */
static void
test_seq_wrap(void **state)
{
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	struct mix_jb_stats st;

	(void)state;
	for (unsigned k = 0; k < 100; k++) {
		assert_int_equal(put_calm(jb, 65500, k), 0);
		expect_packet(jb, (uint16_t)(65500 + k));
	}
	st = stats(jb);
	assert_int_equal(st.late + st.dups + st.lost + st.dropped +
				 st.underruns + st.resets,
			 0);
	assert_int_equal(st.target, 1);
	free(jb);
}

/*
 * Jumps: +20000 and -5000 restart the buffer (what it held is flushed)
 * and playout resumes with the new packets at once; so does a new SSRC,
 * and mix_jb_reset. A stray packet from 50 back is late, no restart.
 */
static void
test_jumps_and_ssrc(void **state)
{
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	uint16_t seq = 100;
	uint32_t ts = 1000;
	uint64_t at = T0;
	int got;

	(void)state;
	for (unsigned k = 0; k < 10; k++, seq++, ts += 160, at += 20 * MS) {
		assert_int_equal(put(jb, SSRC, seq, ts, at), 0);
		expect_packet(jb, seq);
	}
	/* Two held, not played yet, then the jump. */
	assert_int_equal(put(jb, SSRC, seq, ts, at), 0);
	assert_int_equal(
		put(jb, SSRC, (uint16_t)(seq + 1), ts + 160, at + 20 * MS), 0);
	at += 40 * MS;
	ts += 320;
	seq = (uint16_t)(seq + 20000);
	assert_int_equal(put(jb, SSRC, seq, ts, at), 0);
	assert_int_equal(stats(jb).resets, 1);
	assert_int_equal(stats(jb).depth, 1);
	expect_packet(jb, seq);
	for (unsigned k = 1; k < 10; k++) {
		seq++;
		ts += 160;
		at += 20 * MS;
		assert_int_equal(put(jb, SSRC, seq, ts, at), 0);
		expect_packet(jb, seq);
	}
	/* -5000. */
	seq = (uint16_t)(seq - 5000);
	ts += 160;
	at += 20 * MS;
	assert_int_equal(put(jb, SSRC, seq, ts, at), 0);
	assert_int_equal(stats(jb).resets, 2);
	expect_packet(jb, seq);
	/* One from 50 back: late, dropped; the stream goes on. */
	assert_int_equal(put(jb, SSRC, (uint16_t)(seq - 50), ts, at), 1);
	assert_int_equal(stats(jb).resets, 2);
	assert_int_equal(stats(jb).late, 1);
	seq++;
	ts += 160;
	at += 20 * MS;
	assert_int_equal(put(jb, SSRC, seq, ts, at), 0);
	expect_packet(jb, seq);
	/* A new SSRC with a lower sequence number and another clock. */
	assert_int_equal(put(jb, SSRC + 1, 7, 99, at + 20 * MS), 0);
	assert_int_equal(stats(jb).resets, 3);
	expect_packet(jb, 7);
	assert_int_equal(put(jb, SSRC + 1, 8, 99 + 160, at + 40 * MS), 0);
	expect_packet(jb, 8);
	assert_int_equal(get(jb, &got), JB_DRY);
	/* And an explicit reset. */
	mix_jb_reset(jb);
	assert_int_equal(stats(jb).resets, 4);
	assert_int_equal(stats(jb).depth, 0);
	assert_int_equal(get(jb, &got), JB_WAIT);
	assert_int_equal(put(jb, SSRC + 1, 5000, 0, at + 60 * MS), 0);
	expect_packet(jb, 5000);
	assert_int_equal(stats(jb).lost, 0);
	free(jb);
}

/* Payloads longer than JB_MAX_PAYLOAD are cut there. */
/*
 * RFC 4733 events between audio packets, sharing their sequence numbers:
 * their places are held (packets of length 0), not lost, and their
 * timestamps (the event's start, repeated) leave the jitter at zero.
 */
static void
test_event_places(void **state)
{
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	const uint8_t *p;
	unsigned len, empty = 0, audio = 0;

	(void)state;
	for (unsigned k = 0; k < 40; k++) {
		uint64_t at = T0 + k * 20 * MS;

		if (k >= 10 && k < 20) /* one event: its start time, repeated */
			assert_int_equal(mix_jb_put(jb, SSRC, (uint16_t)k,
						    G711_STEP * 10, false, NULL,
						    0, at),
					 0);
		else
			assert_int_equal(
				put(jb, SSRC, (uint16_t)k, G711_STEP * k, at),
				0);
		if (mix_jb_get(jb, &p, &len) == JB_PACKET) {
			empty += len == 0;
			audio += len > 0;
		}
	}
	assert_int_equal(stats(jb).lost, 0);
	assert_int_equal(stats(jb).jitter_ms, 0);
	assert_int_equal(mix_jb_ptime_ts(jb), G711_STEP);
	assert_int_equal(empty, 10);
	assert_true(audio >= 28);
	free(jb);
}

/* A packet put with JB_SILENT comes back as JB_SILENT_PACKET, payload
 * and all: whether to decode it is decided at playout. */
static void
test_silent_flag(void **state)
{
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	const uint8_t *p;
	uint8_t pay[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	unsigned len;

	(void)state;
	assert_int_equal(mix_jb_put(jb, SSRC, 1, 0, JB_MARKER, pay, 8, T0), 0);
	assert_int_equal(mix_jb_put(jb, SSRC, 2, G711_STEP, JB_SILENT, pay, 8,
				    T0 + 20 * MS),
			 0);
	assert_int_equal(mix_jb_get(jb, &p, &len), JB_PACKET);
	assert_int_equal(mix_jb_get(jb, &p, &len), JB_SILENT_PACKET);
	assert_int_equal(len, 8);
	assert_memory_equal(p, pay, 8);
	free(jb);
}

static void
test_long_payload(void **state)
{
	static uint8_t big[JB_MAX_PAYLOAD + 100];
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	const uint8_t *p;
	unsigned len;

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	assert_int_equal(
		mix_jb_put(jb, SSRC, 1, 0, false, big, sizeof(big), T0), 0);
	assert_int_equal(mix_jb_get(jb, &p, &len), JB_PACKET);
	assert_int_equal(len, JB_MAX_PAYLOAD);
	assert_memory_equal(p, big, JB_MAX_PAYLOAD);
	free(jb);
}

/*
 * The packet duration comes from consecutive packets' timestamps: with
 * 30 ms G.711 (240 units) a 60 ms target is two packets; a timestamp step
 * over 200 ms (DTX, a pause) or of zero is not taken for it. A clock of 0
 * means 8 kHz; max_ms below min_ms means min_ms.
 */
static void
test_ptime_and_defaults(void **state)
{
	struct mix_jb *jb = jb_new(0, 60, 10);

	(void)state;
	for (unsigned k = 0; k < 3; k++)
		assert_int_equal(
			put(jb, SSRC, (uint16_t)k, 240 * k, T0 + k * 30 * MS),
			0);
	assert_int_equal(mix_jb_ptime_ts(jb), 240);
	/* 60 ms of 30 ms packets, bounded at 60 ms. */
	assert_int_equal(stats(jb).target, 2);
	/* A pause: 400 ms of timestamps between consecutive packets. */
	assert_int_equal(put(jb, SSRC, 3, 240 * 2 + 3200, T0 + 460 * MS), 0);
	assert_int_equal(mix_jb_ptime_ts(jb), 240);
	/* The same timestamp again (a sender that does not advance it). */
	assert_int_equal(put(jb, SSRC, 4, 240 * 2 + 3200, T0 + 490 * MS), 0);
	assert_int_equal(mix_jb_ptime_ts(jb), 240);
	free(jb);

	/* A 100 ms pause (DTX, silence suppression) ending in a packet with
	 * the marker bit: not a 100 ms packet. Without the marker, the same
	 * timestamps would read as one. */
	for (int marked = 1; marked >= 0; marked--) {
		uint8_t p[8];
		unsigned len;

		jb = jb_new(0, 60, 10);
		for (unsigned k = 0; k < 3; k++)
			assert_int_equal(put(jb, SSRC, (uint16_t)k,
					     G711_STEP * k, T0 + k * 20 * MS),
					 0);
		len = pay_make(p, 3);
		assert_int_equal(mix_jb_put(jb, SSRC, 3, G711_STEP * 7, marked,
					    p, len, T0 + 140 * MS),
				 0);
		assert_int_equal(mix_jb_ptime_ts(jb),
				 marked ? G711_STEP : 5 * G711_STEP);
		free(jb);
	}
}

/*
 * Shrinking passes over a missing packet as well as a held one: it is
 * counted as dropped (not lost), and playout goes on with the next.
 */
static void
test_shrink_over_gap(void **state)
{
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	struct mix_jb_stats st;
	struct tally t;
	unsigned g;

	(void)state;
	tally_init(&t);
	for (unsigned k = 0; k < 30; k++)
		assert_int_equal(put_calm(jb, 0, k), 0);
	/* 30 held, target 1: each get takes one, one comes; 49 never does
	 * and it is next when the fiftieth get comes. */
	for (g = 1; g <= 50; g++) {
		if (29 + g != 49)
			assert_int_equal(put_calm(jb, 0, 29 + g), 0);
		tally_get(jb, &t);
	}
	st = stats(jb);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.lost, 0);
	assert_int_equal(t.packet, 50);
	assert_int_equal(t.last_seq, 50);
	assert_int_equal(t.skipped, 1);
	free(jb);
}

/* ---- defects ---- */

/*
 * Fixed (jbuf.c, measure): the jitter estimate takes the RTP timestamp as
 * an unbounded number (transit = arrival - (int64_t)ts) instead of in
 * 32-bit modular arithmetic as RFC 3550 A.8 does, so when the timestamp
 * wraps (2^32 units: 6.2 days at 8 kHz, 24.9 hours at 48 kHz, but any
 * moment from a random start) one difference of 2^32 enters the estimate:
 * jitter_ms reads millions, the target jumps to max_ms for several
 * seconds, and an underrun in that time re-buffers 200 ms.
 */
static void
test_fixed_ts_wrap_jitter(void **state)
{
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	uint32_t ts0 = 0xffffffffu - 50 * G711_STEP + 1;
	unsigned max_target = 0, max_jitter = 0;

	(void)state;
	for (unsigned k = 0; k < 100; k++) {
		assert_int_equal(put(jb, SSRC, (uint16_t)(1 + k),
				     ts0 + G711_STEP * k, T0 + k * 20 * MS),
				 0);
		expect_packet(jb, (int)(1 + k));
		if (stats(jb).target > max_target)
			max_target = stats(jb).target;
		if (stats(jb).jitter_ms > max_jitter)
			max_jitter = stats(jb).jitter_ms;
	}
	print_message("timestamp wrap: jitter up to %u ms, target up to %u\n",
		      max_jitter, max_target);
	assert_int_equal(max_jitter, 0);
	assert_int_equal(max_target, 1);
	free(jb);
}

/*
 * Fixed (jbuf.c, put): before playout starts, `next` is simply the first
 * sequence number that arrived, so a packet older than it - the stream's
 * first two packets swapped, or the first after a jump or an SSRC change -
 * is dropped as late though nothing has been played or concealed (jbuf.h:
 * "Late packets (already played or concealed)").
 */
static void
test_fixed_reorder_before_playout(void **state)
{
	struct mix_jb *jb = jb_new(8000, 40, MAX_MS);
	int r101, r100;

	(void)state;
	r101 = put(jb, SSRC, 101, 160, T0 + 20 * MS);
	r100 = put(jb, SSRC, 100, 0, T0 + 21 * MS);
	print_message("101 then 100 before playout: put %d, %d; late %lu\n",
		      r101, r100, (unsigned long)stats(jb).late);
	assert_int_equal(r101, 0);
	assert_int_equal(r100, 0);
	assert_int_equal(stats(jb).late, 0);
	expect_packet(jb, 100);
	expect_packet(jb, 101);
	free(jb);
}

/*
 * Fixed (jbuf.c, get): at the worker's 20 ms minimum a calm stream is played
 * one packet deep, so a lost packet is found missing with nothing after
 * it: JB_DRY (an underrun). When the next packet comes, playout restarts
 * "at the oldest packet held" and passes over the lost sequence number
 * without counting it: stats.lost stays 0 however many packets never
 * came, and they are counted nowhere (not lost, late or dropped).
 */
static void
test_fixed_loss_uncounted_after_dry(void **state)
{
	static struct arr a[MAX_ARR];
	struct stream s = {SSRC, 100, 5, G711_STEP, 20.0, 0, LOSS_EVERY, T0};
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	struct mix_jb_stats st;
	struct sim sim;
	size_t n;
	unsigned ticks = 1000;

	(void)state;
	n = stream_make(a, &s, 0, ticks);
	sim_init(&sim, jb, a, n);
	for (unsigned j = 0; j < ticks; j++)
		sim_tick(&sim, tick_at(j));
	st = stats(jb);
	print_message("calm, every 10th lost: %u played, %u JB_LOST, %u "
		      "JB_DRY, %u passed over; stats lost %lu underruns %lu "
		      "dropped %lu\n",
		      sim.t.packet, sim.t.lost, sim.t.dry, sim.t.skipped,
		      (unsigned long)st.lost, (unsigned long)st.underruns,
		      (unsigned long)st.dropped);
	/* Every sequence number played, lost or dropped (the last loss
	 * may not be counted yet: the stream ends in it). */
	assert_true(st.lost + st.dropped >= sim.t.skipped);
	assert_true(st.lost >= ticks / LOSS_EVERY - 1);
	free(jb);
}

/*
 * Fixed (jbuf.c, put): jbuf.h says "a sequence jump larger than the
 * buffer ... restarts it", but put restarts only for a jump of JB_SLOTS
 * (32) or more. A sender that skips 20 sequence numbers while its packets
 * keep coming on time (a media server switching sources under one SSRC)
 * is taken for 20 losses: 20 gets in a row return JB_LOST (400 ms of
 * concealment, silence after the PLC's fade) while the new packets pile
 * up behind, and the 400 ms of delay that adds drains at one packet a
 * second (SHRINK_GETS); a jump of 10 does the same with half of that.
 * Expected as for +20000: a restart, playout within a couple of gets.
 */
static void
test_fixed_seq_jump_within_slots(void **state)
{
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	unsigned k, until_played = 0, lost = 0, depth_later;
	int seq;
	bool played = false;

	(void)state;
	for (k = 0; k < 50; k++) {
		assert_int_equal(put_calm(jb, 0, k), 0);
		expect_packet(jb, (int)k);
	}
	/* From packet 50 on the sender numbers them 20 higher. */
	for (; k < 50 + 5 * 50; k++) {
		enum mix_jb_get r;

		assert_int_equal(put(jb, SSRC, (uint16_t)(k + 20),
				     7u + G711_STEP * k, T0 + k * 20 * MS),
				 0);
		r = get(jb, &seq);
		if (!played) {
			until_played++;
			lost += r == JB_LOST;
			played = r == JB_PACKET;
		}
	}
	depth_later = stats(jb).depth;
	print_message("+20 without a gap in time: %u gets to the next packet "
		      "(%u JB_LOST), resets %lu; five seconds on, %u held "
		      "(target %u)\n",
		      until_played, lost, (unsigned long)stats(jb).resets,
		      depth_later, stats(jb).target);
	assert_true(until_played <= 2);
	assert_true(depth_later <= stats(jb).target + 1);
	free(jb);
}

static enum mix_jb_get
get_in_order(struct mix_jb *jb, uint16_t *want, unsigned *played,
	     unsigned *lost)
{
	const uint8_t *pl;
	unsigned len;
	enum mix_jb_get r = mix_jb_get(jb, &pl, &len);

	if (r == JB_PACKET) {
		assert_int_equal(pay_seq(pl, len), *want);
		(*played)++;
		(*want)++;
	} else if (r == JB_LOST) {
		(*lost)++;
		(*want)++;
		/* The next one, if held, is handed over whole. */
		if (pl)
			assert_int_equal(pay_seq(pl, len), *want);
	}
	assert_true(stats(jb).depth <= JB_SLOTS);
	return r;
}

/*
 * Payloads are held in buffers apart from the slots and handed out most
 * recently freed first: whatever the order of puts and gets, every
 * payload played is the one put with its sequence number, a full buffer
 * holds 32 different ones, and the payload JB_LOST hands over for FEC is
 * the next packet's.
 */
static void
test_payload_buffers(void **state)
{
	struct mix_jb *jb = jb_new(8000, MAX_MS, MAX_MS);
	uint32_t r32 = 12345;
	unsigned played = 0, lost = 0;
	uint16_t next, want = JB_SLOTS;

	(void)state;
	/* Full: 32 held (playout waits for 200 ms, 10 packets, so fill
	 * without getting), then every one out in order. */
	for (unsigned k = 0; k < JB_SLOTS; k++)
		assert_int_equal(put_calm(jb, 0, k), 0);
	assert_int_equal(stats(jb).depth, JB_SLOTS);
	for (unsigned k = 0; k < JB_SLOTS; k++)
		expect_packet(jb, (int)k);
	next = JB_SLOTS;
	/* Then a stream arriving in shuffled groups of four, one group in
	 * five missing its second packet, with four gets after each. */
	for (unsigned g = 0; g < 400; g++) {
		uint16_t s[4] = {next, (uint16_t)(next + 1),
				 (uint16_t)(next + 2), (uint16_t)(next + 3)};

		for (int i = 3; i > 0; i--) {
			int j;
			uint16_t t;

			r32 = r32 * 1103515245u + 12345u;
			j = (int)((r32 >> 16) % (unsigned)(i + 1));
			t = s[i];
			s[i] = s[j];
			s[j] = t;
		}
		for (int i = 0; i < 4; i++) {
			if (g % 5 == 4 && s[i] == (uint16_t)(next + 1))
				continue; /* lost */
			assert_int_equal(put_calm(jb, 0, s[i]), 0);
		}
		next = (uint16_t)(next + 4);
		for (int i = 0; i < 4; i++)
			get_in_order(jb, &want, &played, &lost);
	}
	while (get_in_order(jb, &want, &played, &lost) != JB_DRY)
		;
	print_message("shuffled stream: %u played, %u lost\n", played, lost);
	assert_int_equal(played, 1600 - 80);
	assert_int_equal(lost, 80);
	assert_int_equal(want, next);
	free(jb);
}

/* ---- the audio through the buffer and the codec ---- */

/* The worker's leg, as far as leg_frame() and leg_conceal() use it. */
struct leg {
	struct mix_jb *jb;
	struct mix_cs *cs;
	int16_t fifo[FIFO_CAP];
	uint32_t rd, wr;
	unsigned plc_run;
	bool no_fec; /* hand conceal no FEC payload: Opus's PLC alone */
	/* what the last frame was made of (F_*) */
	unsigned made_of;
	const uint8_t *fec; /* JB_LOST's payload, if any */
	unsigned fec_len;
	/* totals */
	unsigned packets, lost, lost_fec, dry, bridges, silent;
	int16_t pcm[PKT_SAMPLES];
};

#define F_DECODED 1u /* a packet */
#define F_LOST	  2u /* JB_LOST concealed */
#define F_DRY	  4u /* JB_DRY concealed */
#define F_BRIDGE  8u /* refilling after JB_DRY, concealed */

static void
fifo_push(struct leg *l, const int16_t *pcm, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		l->fifo[(l->wr + i) & (FIFO_CAP - 1)] = pcm[i];
	l->wr += n;
}

/* worker.c leg_conceal(). */
static void
leg_conceal(struct leg *l, const uint8_t *fec, unsigned fec_len)
{
	unsigned ptime = mix_jb_ptime_ts(l->jb), n = FRAME;
	int k;

	if (ptime)
		n = (unsigned)((uint64_t)ptime * RATE /
			       (mix_cs_ts_per_ms(l->cs) * 1000));
	if (n == 0 || n > PKT_SAMPLES)
		n = FRAME;
	k = mix_cs_conceal(l->cs, fec, fec_len, l->pcm, n);
	if (k > 0)
		fifo_push(l, l->pcm, (unsigned)k);
}

/* worker.c leg_frame(): one frame into out (zeros: the leg is silent). */
static bool
leg_frame(struct leg *l, int16_t *out)
{
	const uint8_t *pl;
	unsigned len;
	int n;

	l->made_of = 0;
	l->fec = NULL;
	while (l->wr - l->rd < FRAME) {
		enum mix_jb_get r = mix_jb_get(l->jb, &pl, &len);

		if (r == JB_PACKET) {
			n = mix_cs_decode(l->cs, pl, len, l->pcm, PKT_SAMPLES);
			assert_true(n >= 0);
			fifo_push(l, l->pcm, (unsigned)n);
			l->plc_run = 0;
			l->packets++;
			l->made_of |= F_DECODED;
		} else if (r == JB_LOST) {
			l->lost++;
			if (pl) {
				l->lost_fec++;
				l->fec = pl;
				l->fec_len = len;
			}
			leg_conceal(l, l->no_fec ? NULL : pl,
				    l->no_fec ? 0 : len);
			l->made_of |= F_LOST;
		} else if (l->plc_run > 0 && l->plc_run < PLC_MAX) {
			/* Dry, or refilling after it: bridge the gap. */
			leg_conceal(l, NULL, 0);
			l->plc_run++;
			l->bridges++;
			l->made_of |= r == JB_DRY ? F_DRY : F_BRIDGE;
		} else if (r == JB_DRY && l->plc_run == 0) {
			l->dry++;
			leg_conceal(l, NULL, 0);
			l->plc_run = 1;
			l->made_of |= F_DRY;
		} else {
			l->rd = l->wr;
			memset(out, 0, FRAME * sizeof(*out));
			l->silent++;
			return false;
		}
	}
	for (unsigned i = 0; i < FRAME; i++)
		out[i] = l->fifo[(l->rd + i) & (FIFO_CAP - 1)];
	l->rd += FRAME;
	return true;
}

static struct mix_cs *
cs_new(enum mix_codec codec, bool fec)
{
	struct mix_leg_params p;
	struct mix_cs *cs = NULL;

	memset(&p, 0, sizeof(p));
	p.codec = codec;
	p.rate = RATE;
	p.opus_fec = fec;
	assert_int_equal(mix_cs_alloc(&cs, &p, RATE), 0);
	return cs;
}

/* The tone's level in a frame, dB relative to AMP. */
static double
tone_db(const int16_t *x, unsigned n)
{
	double amp = tone_amplitude(x, n, RATE, TONE);

	return amp > 0 ? 20.0 * log10(amp / AMP) : -200.0;
}

/* A frame's RMS, dB relative to the tone's (AMP / sqrt 2). */
static double
rms_db(const int16_t *x, unsigned n)
{
	double e = 0;

	for (unsigned i = 0; i < n; i++)
		e += (double)x[i] * x[i];
	e /= n;
	return e > 0 ? 10.0 * log10(e / (AMP * AMP / 2)) : -200.0;
}

/* How close a is to ref: signal to error, dB. */
static double
snr_db(const int16_t *a, const int16_t *ref, unsigned n)
{
	double s = 0, e = 0;

	for (unsigned i = 0; i < n; i++) {
		double d = (double)a[i] - ref[i];

		s += (double)ref[i] * ref[i];
		e += d * d;
	}
	return e > 0 ? 10.0 * log10(s / e) : 200.0;
}

/*
 * A talker: a second of silence, then the tone, encoded one packet per
 * 20 ms; and its lossless decode. (Starting with silence, as a call
 * does, keeps Opus's voice activity detector from learning a tone that
 * starts at once as background noise, after which SILK stops coding FEC
 * and conceals it as noise, some 13 dB down.)
 */
struct talk {
	enum mix_codec codec;
	uint8_t pay[AUDIO_PKTS][PAYLOAD_CAP];
	unsigned len[AUDIO_PKTS];
	int16_t ref[AUDIO_PKTS][FRAME];
};

static void
talk_encode(struct talk *tk, enum mix_codec codec, bool fec)
{
	struct mix_cs *enc = cs_new(codec, fec), *dec = cs_new(codec, false);
	int16_t pcm[FRAME], got[PKT_SAMPLES];

	tk->codec = codec;
	for (unsigned k = 0; k < AUDIO_PKTS; k++) {
		int len;

		for (unsigned i = 0; i < FRAME; i++)
			pcm[i] = k < QUIET_PKTS
					 ? 0
					 : (int16_t)lrint(
						   AMP *
						   sin(2.0 * M_PI * TONE *
						       (k * FRAME + i) / RATE));
		len = mix_cs_encode(enc, pcm, FRAME, tk->pay[k], PAYLOAD_CAP);
		assert_true(len > 0);
		tk->len[k] = (unsigned)len;
		assert_int_equal(mix_cs_decode(dec, tk->pay[k], tk->len[k], got,
					       PKT_SAMPLES),
				 FRAME);
		memcpy(tk->ref[k], got, sizeof(tk->ref[k]));
	}
	mix_cs_free(enc);
	mix_cs_free(dec);
}

/* The packet a payload is, or -1 (G.711's repeat: a tone's period). */
static int
talk_which(const struct talk *tk, const uint8_t *p, unsigned len)
{
	int found = -1;

	for (unsigned k = 0; k < AUDIO_PKTS; k++)
		if (tk->len[k] == len && memcmp(tk->pay[k], p, len) == 0) {
			if (found >= 0)
				return -1; /* not unique */
			found = (int)k;
		}
	return found;
}

/* How the network delivers the talker's packets, and the worker's tick. */
struct net {
	unsigned jitter_us;
	unsigned loss; /* every loss-th packet lost (0: none) */
	double period_ms;
	unsigned first_tick; /* 0: ticks start 10 ms after the first packet
				(one held), 1: 30 ms (two held) */
};

/* What a listener heard once the tone was on. */
struct heard {
	unsigned frames, quiet;
	/* frames concealing a packet that was not there (JB_LOST, JB_DRY):
	 * their tone level */
	unsigned lost_frames;
	double lost_min_db, lost_max_db;
	/* frames bridging the refill after an underrun: their RMS */
	unsigned bridge_frames;
	double bridge_min_db;
	/* JB_LOST frames with the next payload: closeness to the lossless
	 * decode */
	unsigned fec_frames;
	double fec_snr;
	unsigned packets, lost, lost_fec, dry;
};

static void
heard_init(struct heard *h)
{
	memset(h, 0, sizeof(*h));
	h->lost_min_db = 200;
	h->lost_max_db = -200;
	h->bridge_min_db = 200;
}

static void
heard_frame(struct heard *h, const struct talk *tk, const struct leg *l,
	    const int16_t *out, bool on)
{
	double db = rms_db(out, FRAME);
	int k;

	h->frames++;
	if (!on || db < SILENT_DB)
		h->quiet++;
	if (l->made_of & (F_LOST | F_DRY)) {
		double t = tone_db(out, FRAME);

		h->lost_frames++;
		if (t < h->lost_min_db)
			h->lost_min_db = t;
		if (t > h->lost_max_db)
			h->lost_max_db = t;
	}
	if (l->made_of & F_BRIDGE) {
		h->bridge_frames++;
		if (db < h->bridge_min_db)
			h->bridge_min_db = db;
	}
	if (l->made_of == F_LOST && l->fec &&
	    (k = talk_which(tk, l->fec, l->fec_len)) > 0) {
		/* The lost packet is the one before the FEC payload's. */
		h->fec_frames++;
		h->fec_snr += snr_db(out, tk->ref[k - 1], FRAME);
	}
}

static void
heard_print(const struct heard *h, const struct talk *tk, const char *what,
	    const struct net *nw)
{
	print_message("%-4s %-14s %4.1f ms +-%4u us loss 1/%-2u: %u frames, "
		      "%u quiet; %u packets, %u JB_LOST (%u FEC), %u JB_DRY; "
		      "lost frames' tone %.1f..%.1f dB",
		      mix_codec_name(tk->codec), what, nw->period_ms,
		      nw->jitter_us, nw->loss, h->frames, h->quiet, h->packets,
		      h->lost, h->lost_fec, h->dry, h->lost_min_db,
		      h->lost_max_db);
	if (h->bridge_frames)
		print_message(", %u bridging frames' RMS from %.1f dB",
			      h->bridge_frames, h->bridge_min_db);
	if (h->fec_frames)
		print_message(", JB_LOST frames %.1f dB SNR to lossless",
			      h->fec_snr / h->fec_frames);
	print_message("\n");
}

/*
 * The talker through the network, the buffer and the codec, the way the
 * worker's leg_frame does it (leg a); and, if hb, in lockstep with a leg
 * b that hands conceal no FEC payload (Opus's PLC alone). What was heard
 * from the tone's start (plus a warm-up) on.
 */
static void
play(const struct talk *tk, const struct net *nw, struct heard *ha,
     struct heard *hb)
{
	static struct arr a[AUDIO_PKTS];
	static struct leg legs[2];
	struct stream s = {SSRC,	  30000,	 77,	   0,
			   nw->period_ms, nw->jitter_us, nw->loss, T0};
	struct heard *h[2] = {ha, hb};
	unsigned n_legs = hb ? 2 : 1;
	size_t n, next[2] = {0, 0};

	for (unsigned v = 0; v < n_legs; v++) {
		struct leg *l = &legs[v];

		memset(l, 0, sizeof(*l));
		l->no_fec = v == 1;
		l->cs = cs_new(tk->codec, false);
		l->jb = jb_new(mix_cs_ts_per_ms(l->cs) * 1000, MIN_MS, MAX_MS);
		heard_init(h[v]);
	}
	s.step = 20 * mix_cs_ts_per_ms(legs[0].cs);
	rng = 99;
	n = stream_make(a, &s, 0, AUDIO_PKTS);
	for (unsigned j = nw->first_tick; a[n - 1].at > tick_at(j); j++) {
		for (unsigned v = 0; v < n_legs; v++) {
			struct leg *l = &legs[v];
			int16_t out[FRAME];
			bool on;

			for (; next[v] < n && a[next[v]].at <= tick_at(j);
			     next[v]++) {
				const struct arr *x = &a[next[v]];

				assert_int_equal(
					mix_jb_put(l->jb, x->ssrc, x->seq,
						   x->ts, false, tk->pay[x->k],
						   tk->len[x->k], x->at),
					0);
			}
			on = leg_frame(l, out);
			if (j >= QUIET_PKTS + WARMUP)
				heard_frame(h[v], tk, l, out, on);
		}
	}
	for (unsigned v = 0; v < n_legs; v++) {
		h[v]->packets = legs[v].packets;
		h[v]->lost = legs[v].lost;
		h[v]->lost_fec = legs[v].lost_fec;
		h[v]->dry = legs[v].dry;
		heard_print(h[v], tk, v ? "Opus PLC alone" : "as the worker",
			    nw);
		mix_cs_free(legs[v].cs);
		free(legs[v].jb);
	}
}

/* Losses after the warm-up: one frame each. */
#define LOSSES ((AUDIO_PKTS - QUIET_PKTS - WARMUP) / LOSS_EVERY - 1)

/*
 * Every tenth packet lost, two ways: a calm stream played one packet deep
 * (each loss an underrun, JB_DRY, concealed at once) and one with +-3 ms
 * of jitter played two deep (each loss JB_LOST). Every loss is concealed
 * in one frame; no frame is quiet; the tone in concealed frames stays
 * within tol_db.
 */
static void
check_plc(enum mix_codec codec, double tol_db)
{
	static struct talk tk;
	static const struct net nets[] = {
		{0, LOSS_EVERY, 20.0, 0},
		{3000, LOSS_EVERY, 20.0, 1},
	};

	talk_encode(&tk, codec, false);
	for (size_t v = 0; v < FC_ARRAY_SIZE(nets); v++) {
		struct heard h;

		play(&tk, &nets[v], &h, NULL);
		assert_true(h.lost_frames >= LOSSES);
		assert_int_equal(h.bridge_frames, 0);
		assert_int_equal(v ? h.dry : h.lost, 0);
		assert_int_equal(h.quiet, 0);
		assert_true(h.lost_min_db >= -tol_db);
		assert_true(h.lost_max_db <= tol_db);
	}
}

static void
test_plc_pcmu(void **state)
{
	(void)state;
	check_plc(MIX_PCMU, LEVEL_TOL_DB);
}

static void
test_plc_g722(void **state)
{
	(void)state;
	check_plc(MIX_G722, LEVEL_TOL_DB);
}

/*
 * Opus without FEC in its packets: libopus's own PLC (SILK's, the
 * encoder choosing SILK at 16 kHz) brings a steady tone back between
 * -1.4 and -7.1 dB in the first lost frame, so 8 dB here.
 */
static void
test_plc_opus(void **state)
{
	(void)state;
	check_plc(MIX_OPUS, OPUS_PLC_TOL_DB);
}

/*
 * The LBRR flag of a 20 ms mono SILK or hybrid Opus packet (RFC 6716
 * 4.2.3: the second header bit of the SILK layer), -1 for CELT.
 */
static int
opus_lbrr(const uint8_t *p, unsigned len)
{
	const unsigned char *frames[48];
	opus_int16 size[48];
	unsigned char toc;
	int nf =
		opus_packet_parse(p, (opus_int32)len, &toc, frames, size, NULL);

	assert_true(nf >= 1);
	if ((toc >> 3) >= 16)
		return -1; /* CELT-only: no SILK layer, no LBRR */
	if (size[0] == 0)
		return 0;
	return (frames[0][0] >> 6) & 1;
}

/*
 * Opus with in-band FEC (opus_fec in the leg's parameters): the encoder
 * puts LBRR data in its packets while the talker talks (and none without
 * opus_fec); with +-3 ms of jitter the buffer holds the packet after each
 * loss and leg_frame hands it to conceal, which decodes the lost frame
 * from it: those frames come closer to the lossless decode than Opus's
 * PLC alone makes them, and the tone keeps its level.
 */
static void
test_opus_fec(void **state)
{
	static struct talk tk, plain;
	static const struct net nw = {3000, LOSS_EVERY, 20.0, 1};
	struct heard ha, hb;
	unsigned lbrr = 0, lbrr_plain = 0, talking = 0;

	(void)state;
	talk_encode(&tk, MIX_OPUS, true);
	talk_encode(&plain, MIX_OPUS, false);
	/* From the tone's second packet (LBRR codes the one before). */
	for (unsigned k = QUIET_PKTS + 1; k < AUDIO_PKTS; k++) {
		talking++;
		lbrr += opus_lbrr(tk.pay[k], tk.len[k]) == 1;
		lbrr_plain += opus_lbrr(plain.pay[k], plain.len[k]) == 1;
	}
	print_message("opus LBRR: %u of %u packets with opus_fec, %u "
		      "without\n",
		      lbrr, talking, lbrr_plain);
	assert_true(lbrr >= talking * 9 / 10);
	assert_int_equal(lbrr_plain, 0);
	play(&tk, &nw, &ha, &hb);
	assert_int_equal(ha.dry, 0);
	assert_true(ha.lost_fec >= LOSSES);
	assert_true(ha.fec_frames >= LOSSES);
	assert_int_equal(ha.fec_frames, hb.fec_frames);
	assert_int_equal(ha.quiet, 0);
	assert_true(ha.lost_min_db >= -LEVEL_TOL_DB);
	assert_true(ha.lost_max_db <= LEVEL_TOL_DB);
	/* FEC: clearly closer to what was sent than PLC. */
	assert_true(ha.fec_snr / ha.fec_frames >
		    hb.fec_snr / hb.fec_frames + 6.0);
}

/*
 * A sender 2% slow: every couple of seconds the buffer runs dry; the
 * worker conceals the missing frame and bridges the refill (up to three
 * frames) by concealment too. The frame where the packet was missing
 * keeps the tone within tol_db; if bridge_sounds, the refill frames are
 * not quiet either, so the listener hears no hole.
 */
static void
check_underrun_bridge(enum mix_codec codec, double tol_db, bool bridge_sounds)
{
	static struct talk tk;
	static const struct net nw = {0, 0, 20.4, 1};
	struct heard h;

	talk_encode(&tk, codec, false);
	play(&tk, &nw, &h, NULL);
	assert_true(h.dry >= 2);
	assert_true(h.bridge_frames >= 2);
	assert_true(h.lost_min_db >= -tol_db);
	if (bridge_sounds) {
		assert_true(h.bridge_min_db >= SILENT_DB);
		assert_int_equal(h.quiet, 0);
	}
}

/*
 * G.711: SpanDSP's PLC fades to silence over 50 ms, the refill frame
 * some 6 dB down. Opus: libopus's own PLC fades far faster on this
 * signal (the second frame in a row some 34 dB down, in opus_decode
 * itself), so only its first frame is checked.
 */
static void
test_underrun_bridge(void **state)
{
	(void)state;
	check_underrun_bridge(MIX_OPUS, OPUS_PLC_TOL_DB, false);
	check_underrun_bridge(MIX_PCMU, LEVEL_TOL_DB, true);
}

/*
 * Fixed (codec.c, mix_cs_conceal for G.722): SpanDSP's PLC is built for
 * 8 kHz (it fades by 1/400 a sample, to silence in 50 ms; its pitch
 * search spans 40-120 samples, 67-200 Hz at 8 kHz) but codec.c runs it on
 * G.722's 16 kHz PCM, where it fades to silence in 25 ms (and searches
 * 133-400 Hz). One lost 20 ms packet still sounds (the frame ends 14 dB
 * down), but the worker's underrun bridge (JB_DRY, then refilling: 40-60
 * ms of concealment) goes quiet after 25 ms, where G.711's still carries
 * the tone: a hole in a G.722 leg's audio at every underrun, e.g. every
 * few seconds from a sender whose clock is 1% slow.
 */
static void
test_fixed_g722_underrun_bridge(void **state)
{
	(void)state;
	check_underrun_bridge(MIX_G722, LEVEL_TOL_DB, true);
}

/*
 * Fixed (SpanDSP 0.0.6, reached through codec.c's G.711 concealment):
 * plc_fillin() first rotates its 280-sample history with
 * memcpy(history, history + buf_ptr, 280 - buf_ptr), ranges that overlap
 * whenever 0 < buf_ptr < 140 (undefined behaviour; memmove was meant).
 * codec.c feeds plc_rx 160 samples per G.711 packet, so buf_ptr cycles
 * through 160, 40, 200, 80, 240, 120, 0: three losses in seven hit it.
 * (G.722's 320 samples a packet always leave 0.) An AddressSanitizer
 * build aborts there: this test in that build, and focusd itself at a
 * G.711 leg's first concealment with buf_ptr in range. Checked here on
 * SpanDSP's state as codec.c leaves it; then, in an AddressSanitizer
 * build, the concealment itself through mix_cs_conceal.
 */
static void
test_fixed_spandsp_plc_overlap(void **state)
{
	plc_state_t plc;
	int16_t pcm[FRAME], out[PKT_SAMPLES];
	unsigned overlapping = 0;

	(void)state;
	memset(pcm, 0, sizeof(pcm));
	assert_non_null(plc_init(&plc));
	for (unsigned k = 0; k < 7; k++) {
		plc_rx(&plc, pcm, 160);
		if (plc.buf_ptr > 0 && plc.buf_ptr < PLC_HISTORY_LEN / 2)
			overlapping++;
	}
	print_message("SpanDSP PLC: after 160-sample packets buf_ptr is in "
		      "the overlapping range %u times in 7\n",
		      overlapping);
	{
		/* Through codec.c, which rotates the history itself: an
		 * AddressSanitizer build stops here if it overlaps. */
		struct mix_cs *cs = cs_new(MIX_PCMU, false);
		uint8_t pay[PAYLOAD_CAP];

		memset(pay, 0xff, sizeof(pay));
		/* Two packets: buf_ptr 40. */
		for (unsigned k = 0; k < 2; k++)
			assert_true(mix_cs_decode(cs, pay, 160, out,
						  PKT_SAMPLES) > 0);
		mix_cs_conceal(cs, NULL, 0, out, FRAME);
		mix_cs_free(cs);
	}
	/* SpanDSP's own state does reach the overlapping range. */
	assert_true(overlapping > 0);
}

/*
 * After playout ran dry, a duplicate of a packet already played (or one
 * already concealed) is late: it must not take playout back.
 */
static void
test_no_replay_after_dry(void **state)
{
	struct mix_jb *jb = jb_new(8000, MIN_MS, MAX_MS);
	int seq;

	(void)state;
	for (unsigned k = 0; k < 4; k++) {
		assert_int_equal(put_calm(jb, 0, k), 0);
		expect_packet(jb, (int)k);
	}
	assert_int_equal(get(jb, &seq), JB_DRY);
	/* A duplicate of 3, then 4 and 5 in order. */
	assert_int_equal(put_calm(jb, 0, 3), 1);
	assert_int_equal(put_calm(jb, 0, 4), 0);
	expect_packet(jb, 4);
	assert_int_equal(put_calm(jb, 0, 5), 0);
	expect_packet(jb, 5);
	free(jb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order),
		cmocka_unit_test(test_no_replay_after_dry),
		cmocka_unit_test(test_playout_waits_for_target),
		cmocka_unit_test(test_reorder),
		cmocka_unit_test(test_dups_and_late),
		cmocka_unit_test(test_loss),
		cmocka_unit_test(test_loss_stream),
		cmocka_unit_test(test_jitter_adapts),
		cmocka_unit_test(test_calm_stays_small),
		cmocka_unit_test(test_jitter_bounded),
		cmocka_unit_test(test_skew_fast),
		cmocka_unit_test(test_skew_slow),
		cmocka_unit_test(test_seq_wrap),
		cmocka_unit_test(test_jumps_and_ssrc),
		cmocka_unit_test(test_event_places),
		cmocka_unit_test(test_silent_flag),
		cmocka_unit_test(test_long_payload),
		cmocka_unit_test(test_ptime_and_defaults),
		cmocka_unit_test(test_shrink_over_gap),
		cmocka_unit_test(test_plc_pcmu),
		cmocka_unit_test(test_plc_g722),
		cmocka_unit_test(test_plc_opus),
		cmocka_unit_test(test_opus_fec),
		cmocka_unit_test(test_underrun_bridge),
		cmocka_unit_test(test_fixed_ts_wrap_jitter),
		cmocka_unit_test(test_fixed_reorder_before_playout),
		cmocka_unit_test(test_fixed_loss_uncounted_after_dry),
		cmocka_unit_test(test_fixed_seq_jump_within_slots),
		cmocka_unit_test(test_payload_buffers),
		cmocka_unit_test(test_fixed_g722_underrun_bridge),
		/* Last: in an AddressSanitizer build it ends the program. */
		cmocka_unit_test(test_fixed_spandsp_plc_overlap),
	};

	return cmocka_run_group_tests_name("jbuf", tests, NULL, NULL);
}
