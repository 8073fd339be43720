/*
 * test_worker.c - a mixer worker's tick, driven directly (mixer/worker.c).
 *
 * One worker on the null port, polled on a virtual clock as mixbench does:
 * each tick every leg's RTP packet goes onto the worker's ring 10 ms
 * before the tick, and what the worker transmits comes back on a capture
 * ring (dp_conf.null_tx), so the test reads each leg's packets as its
 * peer would.
 *
 * Golden PCM: PCMU tones whose periods divide a 20 ms frame (400, 500,
 * 800 and 1000 Hz at 8 kHz), so every frame is the same and the jitter
 * buffer's delay does not matter. G.711 is exact through decode and
 * encode, so with two talkers seated, each talker hears exactly the other
 * one's payload bytes, and everybody else exactly the encoded sum of the
 * two:
 * - five legs, max 2 talkers: the two loudest are mixed; two quieter
 *   ones above the gate and a silent one are not, and all three hear the
 *   same bytes;
 * - a third leg gets louder than the second (beyond the seated one's
 *   6 dB bonus): it takes the second's seat, and the outputs follow.
 * RTCP: a second in, every leg gets a sender report from the SSRC it
 * hears, with a block about the source it sends (nothing lost, its
 * highest sequence number).
 * Opus: two talkers and three listeners that send nothing; every tick the
 * three listeners get byte-identical payloads, the two talkers payloads
 * of their own, different from those and from each other. (Identical
 * bytes are what one shared encode gives; three private encoders started
 * together on the same mix would give them too, so this does not tell
 * the two apart: mixbench's cost figures do.)
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <opus.h>

#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dataplane/dataplane.h"
#include "mixer/mixer.h"

#define LEGS	     5
#define TICK	     MIX_TICK_NS
#define MAX_PAY	     1000
#define OPUS_PT	     111
#define OPUS_FRAMES  50
#define OPUS_FRAME48 960

static struct dp *dp;
static struct rte_ring *cap;

struct leg {
	struct dp_ep ep;
	struct mix_leg *l;
	uint16_t seq;
	uint32_t ts;
	/* what it sends: fixed bytes (PCMU), or a table (Opus), or none */
	uint8_t pay[MAX_PAY];
	unsigned len;
	const uint8_t (*table)[MAX_PAY];
	const unsigned *table_len;
	/* what it got in the last tick */
	uint8_t got[MAX_PAY];
	unsigned got_len;
	unsigned got_n;
	/* RTCP the worker sent it, the last one parsed */
	unsigned rtcp_n;
	struct dp_rtcp_info rtcp;
	int rtcp_err;
};

struct rig {
	struct mix_worker *w;
	struct mix_conf *c;
	struct leg legs[LEGS];
	unsigned n;
	enum mix_codec codec;
	uint64_t base;
	unsigned k;
};

static int
setup(void **state)
{
	char *eal[] = {"test_worker",
		       "--no-huge",
		       "--no-pci",
		       "--no-shconf",
		       "--no-telemetry",
		       "-m",
		       "128",
		       "-l",
		       "0",
		       "--log-level=lib.eal:error"};
	struct dp_conf dc = {0};

	(void)state;
	if (rte_eal_init((int)FC_ARRAY_SIZE(eal), eal) < 0)
		return -1;
	cap = rte_ring_create("test.cap", 1024, SOCKET_ID_ANY,
			      RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (cap == NULL)
		return -1;
	dc.kind = DP_NULL;
	dc.port_lo = 20000;
	dc.port_hi = 20100;
	dc.n_workers = 1;
	dc.n_mbufs = 2047;
	dc.efd = -1;
	dc.null_tx = cap;
	return dp_alloc(&dp, &dc) ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	dp_free(dp);
	rte_ring_free(cap);
	rte_eal_cleanup();
	return 0;
}

static void
rig_init(struct rig *r, enum mix_codec codec, unsigned rate, unsigned n,
	 unsigned talkers)
{
	memset(r, 0, sizeof(*r));
	r->codec = codec;
	r->n = n;
	assert_int_equal(mix_worker_alloc(&r->w, dp, 0, -1), 0);
	assert_int_equal(mix_conf_alloc(&r->c, rate), 0);
	assert_int_equal(mix_conf_set_talkers(r->c, talkers), 0);
	assert_int_equal(mix_conf_attach(r->w, r->c, NULL, NULL), 0);
	for (unsigned i = 0; i < n; i++) {
		struct leg *g = &r->legs[i];
		struct mix_leg_params p = {
			.codec = codec,
			.pt = codec == MIX_OPUS ? OPUS_PT : 0,
			.ssrc = 0x1000 + i,
			.remote_ip = htonl(0x7f000001),
			.remote_port = htons((uint16_t)(40000 + i)),
			.mix_in = true,
			.mix_out = true,
			.rate = rate,
			.level_id = 1,
		};

		assert_int_equal(dp_ep_open(dp, &g->ep), 0);
		p.ep = g->ep;
		assert_int_equal(mix_leg_alloc(&g->l, &p), 0);
		assert_int_equal(mix_leg_attach(r->w, r->c, g->l, NULL, NULL),
				 0);
	}
	/* Past every leg's creation: no packet counts as a past call's. */
	r->base = fc_now_ns() + 3600ull * 1000000000ull;
	mix_worker_poll(r->w, r->base); /* the attaches */
	mix_collect(r->w);
}

static void
rig_free(struct rig *r)
{
	mix_collect(r->w);
	mix_worker_free(r->w); /* frees what is still attached */
	for (unsigned i = 0; i < r->n; i++)
		dp_ep_close(dp, &r->legs[i].ep);
}

/* Leg i's packet, arriving before tick r->k + 1: pay, with an RFC 6464
 * level (ID 1) unless level < 0. */
static void
rig_send(struct rig *r, unsigned i, const uint8_t *pay, unsigned len, int level)
{
	struct leg *g = &r->legs[i];
	unsigned hl = level < 0 ? 12 : 20;
	uint64_t t = r->base + (uint64_t)(r->k + 1) * TICK;
	struct dp_pkt_meta *pm;
	struct rte_mbuf *m;
	uint8_t *b;

	m = rte_pktmbuf_alloc(dp_pool(dp));
	assert_non_null(m);
	b = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(hl + len));
	assert_non_null(b);
	dp_rtp_build(b, 12, r->codec == MIX_OPUS ? OPUS_PT : 0, g->seq == 0,
		     g->seq, g->ts, 0x5000 + i);
	if (level >= 0) {
		const uint8_t ext[8] = {0xbe, 0xde,	      0, 1,
					0x10, (uint8_t)level, 0, 0};

		b[0] |= 0x10;
		memcpy(b + 12, ext, sizeof(ext));
	}
	memcpy(b + hl, pay, len);
	g->seq++;
	g->ts += r->codec == MIX_OPUS ? 960 : 160;
	pm = dp_pkt_meta(m);
	pm->slot = g->ep.slot;
	pm->local_port = g->ep.local_port;
	pm->rtcp = false;
	pm->remote_ip = htonl(0x7f000001);
	pm->remote_port = htons((uint16_t)(40000 + i));
	pm->rx_ns = t - TICK / 2;
	assert_int_equal(rte_ring_enqueue(dp_worker_ring(dp, 0), m), 0);
}

/* The tick, after what was sent for it; what each leg got. */
static void
rig_run_tick(struct rig *r)
{
	uint64_t t = r->base + (uint64_t)(r->k + 1) * TICK;
	struct rte_mbuf *m;

	for (unsigned i = 0; i < r->n; i++)
		r->legs[i].got_n = 0;
	mix_worker_poll(r->w, t - TICK / 2); /* receive only */
	mix_worker_poll(r->w, t);	     /* the tick */
	r->k++;
	while (rte_ring_dequeue(cap, (void **)&m) == 0) {
		const struct dp_pkt_meta *pm = dp_pkt_meta(m);
		struct dp_rtp_hdr h;

		for (unsigned i = 0; i < r->n; i++) {
			struct leg *g = &r->legs[i];

			if (g->ep.slot != pm->slot)
				continue;
			if (pm->rtcp) {
				g->rtcp_n++;
				g->rtcp_err = dp_rtcp_parse(
					rte_pktmbuf_mtod(m, uint8_t *),
					rte_pktmbuf_data_len(m), 0x5000 + i,
					&g->rtcp);
				continue;
			}
			assert_int_equal(
				dp_rtp_parse(rte_pktmbuf_mtod(m, uint8_t *),
					     rte_pktmbuf_data_len(m), &h),
				0);
			assert_true(h.payload_len <= MAX_PAY);
			memcpy(g->got,
			       rte_pktmbuf_mtod(m, uint8_t *) + h.hdr_len,
			       h.payload_len);
			g->got_len = h.payload_len;
			g->got_n++;
		}
		rte_pktmbuf_free(m);
	}
}

/* One tick: every leg's packet, then the tick; what each leg got. */
static void
rig_tick(struct rig *r)
{
	for (unsigned i = 0; i < r->n; i++) {
		struct leg *g = &r->legs[i];

		if (g->table)
			rig_send(r, i, g->table[r->k % OPUS_FRAMES],
				 g->table_len[r->k % OPUS_FRAMES], -1);
		else if (g->len)
			rig_send(r, i, g->pay, g->len, -1);
	}
	rig_run_tick(r);
}

/* 160 mu-law bytes of a tone whose period divides the frame. */
static void
pcmu_tone(struct leg *g, double freq, double amp)
{
	int16_t pcm[160];

	for (unsigned i = 0; i < 160; i++)
		pcm[i] = (int16_t)lround(amp * sin(2 * M_PI * freq * i / 8000));
	mix_g711_encode(MIX_PCMU, g->pay, pcm, 160);
	g->len = 160;
}

/* What a listener hears of talkers x and y: their decoded sum, coded. */
static void
pcmu_sum(uint8_t *out, const struct leg *x, const struct leg *y)
{
	int16_t a[160], b[160], s[160];
	int32_t acc[160];

	mix_g711_decode(MIX_PCMU, a, x->pay, 160);
	mix_g711_decode(MIX_PCMU, b, y->pay, 160);
	for (unsigned i = 0; i < 160; i++)
		acc[i] = a[i] + b[i];
	mix_minus(s, acc, NULL, 160);
	mix_g711_encode(MIX_PCMU, out, s, 160);
}

/* Each talker hears the other's bytes; every other leg the sum. */
static void
check_mix(const struct rig *r, unsigned x, unsigned y, const char *when)
{
	uint8_t sum[160];

	pcmu_sum(sum, &r->legs[x], &r->legs[y]);
	for (unsigned i = 0; i < r->n; i++) {
		const struct leg *g = &r->legs[i];
		const uint8_t *want = i == x   ? r->legs[y].pay
				      : i == y ? r->legs[x].pay
					       : sum;

		if (g->got_n != 1 || g->got_len != 160 ||
		    memcmp(g->got, want, 160) != 0)
			fail_msg("%s: leg %u got %u packets (%u bytes), "
				 "expected one of 160 bytes: %s",
				 when, i, g->got_n, g->got_len,
				 i == x || i == y ? "the other talker's"
						  : "both talkers' sum");
	}
}

static void
test_talkers_capped_golden(void **state)
{
	struct rig r;

	(void)state;
	rig_init(&r, MIX_PCMU, 8000, LEGS, 2);
	pcmu_tone(&r.legs[0], 400, 10000); /* -10 dBFS */
	pcmu_tone(&r.legs[1], 500, 6500);  /* -14 dBFS */
	pcmu_tone(&r.legs[2], 800, 1800);  /* -25 dBFS: above the gate */
	pcmu_tone(&r.legs[3], 1000, 1000); /* -30 dBFS */
	memset(r.legs[4].pay, 0xff, 160);  /* mu-law zero */
	r.legs[4].len = 160;
	for (unsigned t = 0; t < 30; t++)
		rig_tick(&r);
	check_mix(&r, 0, 1, "two loudest of four voices seated");

	/* Leg 2 at -6 dBFS: louder than leg 1 with its seat's 6 dB. */
	pcmu_tone(&r.legs[2], 800, 16000);
	for (unsigned t = 0; t < 40; t++)
		rig_tick(&r);
	check_mix(&r, 0, 2, "after leg 2 got louder than leg 1");
	/* 70 ticks in: every leg had a sender report (one at 1 s, the next
	 * 2.5 s later at the earliest) about the source it sends. */
	for (unsigned i = 0; i < LEGS; i++) {
		const struct leg *g = &r.legs[i];

		assert_int_equal(g->rtcp_n, 1);
		assert_int_equal(g->rtcp_err, 0);
		assert_true(g->rtcp.sr && g->rtcp.have_block);
		assert_int_equal(g->rtcp.ssrc, 0x1000 + i);
		assert_int_equal(g->rtcp.block.ssrc, 0x5000 + i);
		assert_int_equal(g->rtcp.block.lost, 0);
		assert_true(g->rtcp.packets >= 45 && g->rtcp.packets <= 52);
		assert_int_equal(g->rtcp.octets, 160 * g->rtcp.packets);
		assert_true(g->rtcp.block.ext_seq >= 45 &&
			    g->rtcp.block.ext_seq <= 52);
	}
	rig_free(&r);
}

static void
test_shared_encode_identical(void **state)
{
	static uint8_t table[2][OPUS_FRAMES][MAX_PAY];
	static unsigned table_len[2][OPUS_FRAMES];
	int16_t pcm[320];
	OpusEncoder *enc;
	struct rig r;
	int err;

	(void)state;
	/* Two voices, 16 kHz Opus, as a phone would send them. */
	for (unsigned v = 0; v < 2; v++) {
		enc = opus_encoder_create(16000, 1, OPUS_APPLICATION_VOIP,
					  &err);
		assert_non_null(enc);
		for (unsigned f = 0; f < OPUS_FRAMES; f++) {
			for (unsigned i = 0; i < 320; i++)
				pcm[i] = (int16_t)lround(
					8000 * sin(2 * M_PI * (300 + 250 * v) *
						   (f * 320 + i) / 16000));
			table_len[v][f] = (unsigned)opus_encode(
				enc, pcm, 320, table[v][f], MAX_PAY);
			assert_true(table_len[v][f] > 2);
		}
		opus_encoder_destroy(enc);
	}
	rig_init(&r, MIX_OPUS, 16000, LEGS, 4);
	for (unsigned v = 0; v < 2; v++) {
		r.legs[v].table = table[v];
		r.legs[v].table_len = table_len[v];
	}
	for (unsigned t = 0; t < 60; t++) {
		rig_tick(&r);
		if (t < 20) /* listeners leave their first own encodes */
			continue;
		for (unsigned i = 0; i < LEGS; i++)
			assert_int_equal(r.legs[i].got_n, 1);
		for (unsigned i = 3; i < LEGS; i++) {
			assert_int_equal(r.legs[i].got_len, r.legs[2].got_len);
			assert_memory_equal(r.legs[i].got, r.legs[2].got,
					    r.legs[2].got_len);
		}
		/* The talkers' own: neither the shared one nor alike. */
		for (unsigned v = 0; v < 2; v++)
			assert_false(r.legs[v].got_len == r.legs[2].got_len &&
				     memcmp(r.legs[v].got, r.legs[2].got,
					    r.legs[2].got_len) == 0);
		assert_false(r.legs[0].got_len == r.legs[1].got_len &&
			     memcmp(r.legs[0].got, r.legs[1].got,
				    r.legs[1].got_len) == 0);
	}
	rig_free(&r);
}

/*
 * Whether a packet that says it is silent (RFC 6464 level) is decoded is
 * decided when it is played, not when it arrives: a talkspurt that
 * arrives in a burst after silence, one of its packets marked silent,
 * is heard whole. Its listener gets the tone every tick from the first
 * to the last.
 */
static void
test_silence_judged_at_playout(void **state)
{
	uint8_t quiet[160], loud[160];
	unsigned heard = 0, holes = 0;
	struct rig r;

	(void)state;
	rig_init(&r, MIX_PCMU, 8000, 2, 4);
	memset(quiet, 0xff, sizeof(quiet));
	pcmu_tone(&r.legs[0], 400, 10000);
	memcpy(loud, r.legs[0].pay, sizeof(loud));
	for (unsigned t = 0; t < 20; t++) { /* silent, and says so */
		rig_send(&r, 0, quiet, 160, 127);
		rig_send(&r, 1, quiet, 160, -1);
		rig_run_tick(&r);
	}
	/* Three ticks of nothing from leg 0, then its spurt in a burst:
	 * the second packet marked silent though it is not. */
	for (unsigned t = 0; t < 3; t++) {
		rig_send(&r, 1, quiet, 160, -1);
		rig_run_tick(&r);
	}
	rig_send(&r, 0, loud, 160, 10);
	rig_send(&r, 0, loud, 160, 127);
	rig_send(&r, 0, loud, 160, 10);
	rig_send(&r, 0, loud, 160, 10);
	for (unsigned t = 0; t < 12; t++) {
		if (t > 0)
			rig_send(&r, 0, loud, 160, 10);
		rig_send(&r, 1, quiet, 160, -1);
		rig_run_tick(&r);
		if (r.legs[1].got_n == 1 &&
		    memcmp(r.legs[1].got, loud, 160) == 0)
			heard++;
		else if (heard)
			holes++;
	}
	if (heard < 8 || holes)
		fail_msg("the listener heard the spurt in %u ticks with %u "
			 "silent ticks after its start: expected it whole",
			 heard, holes);
	rig_free(&r);
}

/*
 * The port range: slot s is the even port LO + 2s, and its odd port (RTCP)
 * must be in the range too: 20000-20100 has 50 slots (20100's RTCP port
 * would be 20101); a range without one even/odd pair is refused.
 */
static void
test_port_range_pairs(void **state)
{
	struct dp_conf dc = {0};
	struct dp *other = NULL;

	(void)state;
	assert_int_equal(dp_ep_slots(dp), 50);
	dc.kind = DP_NULL;
	dc.n_workers = 1;
	dc.efd = -1;
	dc.port_lo = 2001;
	dc.port_hi = 2002;
	assert_int_equal(dp_alloc(&other, &dc), EINVAL);
	dc.port_lo = 65535;
	dc.port_hi = 65535;
	assert_int_equal(dp_alloc(&other, &dc), EINVAL);
	assert_null(other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_talkers_capped_golden),
		cmocka_unit_test(test_shared_encode_identical),
		cmocka_unit_test(test_silence_judged_at_playout),
		cmocka_unit_test(test_port_range_pairs),
	};

	return cmocka_run_group_tests_name("worker", tests, setup, teardown);
}
