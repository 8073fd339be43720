/*
 * test_codec.c - a leg's codecs (mixer/codec.c).
 *
 * Checks what a listener hears through each codec at each conference rate:
 * one second of a tone, encoded in 20 ms frames by one leg's codec state
 * and decoded by another's, comes back at its level and frequency
 * (measured with a Goertzel filter over the last half second, once Opus
 * and the resamplers are past their start-up), with nothing at the
 * frequencies a wrong rate or an aliasing resampler would move it to. A
 * 6 kHz tone reaches the listener through G.722 and Opus in a wideband or
 * wider conference, never through G.711 (whose 8 kHz rate cannot carry it:
 * the resampler must remove it rather than fold it to 2 kHz).
 *
 * The tone is 1004 Hz rather than 1 kHz, telephony's usual test tone: at
 * 8 kHz 1 kHz repeats every 8 samples, so G.711's quantisation error
 * would land on its harmonics; 1004 Hz spreads it as noise.
 *
 * Also: payload sizes (G.711 and G.722 160 bytes per 20 ms at every
 * conference rate, Opus a 20 ms packet of more than 2 bytes), frame counts
 * (every payload decodes to exactly one 20 ms frame at the conference rate,
 * with no drift over ten seconds; 60 ms payloads give three), the RTP
 * clock per codec, Opus DTX, the peer's Opus fmtp (maxplaybackrate caps
 * the band audibly, maxaveragebitrate the bytes), and the errors: bad
 * rates and codecs, garbage Opus, empty payloads.
 * An empty Opus payload must be refused (-1): handed to opus_decode it
 * would be taken for a loss and conceal a whole 60 ms buffer.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <opus.h>

#include "mixer/codec.h"
#include "tests/unit/tone.h"

#define FRAMES	    50	 /* one second of 20 ms frames */
#define DEC_CAP	    2880 /* what the worker gives decode: 60 ms at 48k */
#define PAYLOAD_CAP 1500
#define AMP	    8000.0 /* about -12 dBFS */
#define TONE	    1004.0
#define HIGH_TONE   6000.0
/* Opus's own band limiting is a little leakier than speexdsp's. */
#define OPUS_FLOOR -30.0

static const unsigned rates[] = {8000, 16000, 24000, 48000};

static struct mix_cs *
cs_new_p(const struct mix_leg_params *p, unsigned rate)
{
	struct mix_cs *cs = NULL;

	assert_int_equal(mix_cs_alloc(&cs, p, rate), 0);
	assert_non_null(cs);
	return cs;
}

static struct mix_cs *
cs_new(enum mix_codec codec, unsigned rate, bool dtx)
{
	struct mix_leg_params p;

	memset(&p, 0, sizeof(p));
	p.codec = codec;
	p.rate = rate;
	p.opus_dtx = dtx;
	return cs_new_p(&p, rate);
}

/* n samples of a sine at freq, from sample index `at` of the stream. */
static void
tone(int16_t *x, unsigned n, unsigned rate, double freq, double amp,
     unsigned at)
{
	for (unsigned i = 0; i < n; i++)
		x[i] = (int16_t)lrint(amp *
				      sin(2.0 * M_PI * freq * (at + i) / rate));
}

/* Level in dB relative to AMP; very low for silence. */
static double
level_db(double amp)
{
	return amp > 0 ? 20.0 * log10(amp / AMP) : -200.0;
}

/* One payload as the codec should shape it, for a non-silent frame. */
static void
check_payload(enum mix_codec codec, unsigned rate, const uint8_t *pay, int len)
{
	switch (codec) {
	case MIX_PCMU:
	case MIX_PCMA:
	case MIX_G722:
		/* 8000 bytes/s: 64 kbit/s whatever the conference rate. */
		assert_int_equal(len, 160);
		break;
	case MIX_OPUS:
		assert_true(len > 2);
		assert_true(len <= PAYLOAD_CAP);
		/* One packet, 20 ms of audio (its TOC says so). */
		assert_int_equal(
			opus_packet_get_nb_samples(pay, len, (opus_int32)rate),
			(int)(rate / 50));
		break;
	default:
		fail();
	}
}

/*
 * One second of a tone at freq through an encoder and a decoder of codec
 * at rate, 20 ms at a time; the decoded second in out (rate samples).
 * Every payload has its codec's shape and decodes to exactly one frame.
 */
static void
round_trip(enum mix_codec codec, unsigned rate, double freq, int16_t *out)
{
	struct mix_cs *enc = cs_new(codec, rate, false);
	struct mix_cs *dec = cs_new(codec, rate, false);
	unsigned frame = rate / 50, total = 0;

	for (unsigned f = 0; f < FRAMES; f++) {
		int16_t pcm[MIX_MAX_FRAME], got[DEC_CAP];
		uint8_t pay[PAYLOAD_CAP];
		int len, n;

		tone(pcm, frame, rate, freq, AMP, f * frame);
		len = mix_cs_encode(enc, pcm, frame, pay, sizeof(pay));
		check_payload(codec, rate, pay, len);
		n = mix_cs_decode(dec, pay, (unsigned)len, got, DEC_CAP);
		assert_int_equal(n, (int)frame);
		memcpy(out + total, got, (size_t)n * sizeof(*got));
		total += (unsigned)n;
	}
	assert_int_equal(total, rate);
	mix_cs_free(enc);
	mix_cs_free(dec);
}

/*
 * A listener hears freq at its level within tol_db, and nothing (below
 * floor_db) at the probes. If tol_db < 0, freq must not come through at
 * all: it too is held below floor_db.
 */
static void
check_heard(enum mix_codec codec, unsigned rate, double freq, double tol_db,
	    double floor_db, const double *probe, unsigned n_probe)
{
	static int16_t out[MIX_MAX_RATE];
	/* The last half second: past start-up, every probe on a bin. */
	unsigned n = rate / 2;
	const int16_t *w = out + rate - n;
	double db;

	round_trip(codec, rate, freq, out);
	db = level_db(tone_amplitude(w, n, rate, freq));
	print_message("%s %5u Hz: %4.0f Hz at %6.2f dB", mix_codec_name(codec),
		      rate, freq, db);
	for (unsigned i = 0; i < n_probe; i++)
		print_message(", %4.0f Hz %6.1f", probe[i],
			      level_db(tone_amplitude(w, n, rate, probe[i])));
	print_message("\n");
	if (tol_db >= 0)
		assert_true(fabs(db) <= tol_db);
	else
		assert_true(db < floor_db);
	for (unsigned i = 0; i < n_probe; i++)
		assert_true(level_db(tone_amplitude(w, n, rate, probe[i])) <
			    floor_db);
}

/*
 * Where a tone would land if a rate were confused somewhere (every ratio
 * between two of 8, 16, 24 and 48 kHz), or 6 kHz folded into 8 kHz.
 */
static const double probe_low[] = {502.0, 1506.0, 2008.0, 3012.0};
static const double probe_wide[] = {502.0, 1506.0, 2008.0, 3012.0, 6024.0};
static const double probe_high[] = {TONE, 2000.0, 3000.0, 4000.0};

static void
check_codec(enum mix_codec codec, double tol_db, double floor_db,
	    bool carries_high)
{
	for (size_t r = 0; r < FC_ARRAY_SIZE(rates); r++) {
		unsigned rate = rates[r];

		if (rate == 8000) {
			check_heard(codec, rate, TONE, tol_db, floor_db,
				    probe_low, FC_ARRAY_SIZE(probe_low));
			continue;
		}
		check_heard(codec, rate, TONE, tol_db, floor_db, probe_wide,
			    FC_ARRAY_SIZE(probe_wide));
		/* 6 kHz: through, or removed rather than folded to 2 kHz. */
		check_heard(codec, rate, HIGH_TONE, carries_high ? tol_db : -1,
			    floor_db, probe_high + (carries_high ? 0 : 1),
			    FC_ARRAY_SIZE(probe_high) - (carries_high ? 0 : 1));
	}
}

static void
test_round_trip_pcmu(void **state)
{
	(void)state;
	check_codec(MIX_PCMU, 0.5, -40.0, false);
}

static void
test_round_trip_pcma(void **state)
{
	(void)state;
	check_codec(MIX_PCMA, 0.5, -40.0, false);
}

static void
test_round_trip_g722(void **state)
{
	(void)state;
	check_codec(MIX_G722, 1.0, -40.0, true);
}

static void
test_round_trip_opus(void **state)
{
	(void)state;
	check_codec(MIX_OPUS, 2.0, OPUS_FLOOR, true);
}

/* At 8 kHz G.711 needs no resampler: exactly SpanDSP's G.711. */
static void
test_g711_8k_bit_exact(void **state)
{
	static const enum mix_codec c[2] = {MIX_PCMU, MIX_PCMA};

	(void)state;
	for (unsigned k = 0; k < 2; k++) {
		struct mix_cs *cs = cs_new(c[k], 8000, false);
		int16_t pcm[160], back[160], ref_pcm[160];
		uint8_t pay[PAYLOAD_CAP], ref[160];

		tone(pcm, 160, 8000, TONE, AMP, 0);
		mix_g711_encode(c[k], ref, pcm, 160);
		assert_int_equal(mix_cs_encode(cs, pcm, 160, pay, sizeof(pay)),
				 160);
		assert_memory_equal(pay, ref, 160);
		mix_g711_decode(c[k], ref_pcm, ref, 160);
		assert_int_equal(mix_cs_decode(cs, pay, 160, back, DEC_CAP),
				 160);
		assert_memory_equal(back, ref_pcm, sizeof(back));
		mix_cs_free(cs);
	}
}

/*
 * Ten seconds through G.711 and G.722 at every rate: each 20 ms of PCM
 * makes 160 bytes and each payload exactly one frame back, so the
 * resamplers neither drift nor build up a backlog.
 */
static void
test_no_drift(void **state)
{
	static const enum mix_codec c[3] = {MIX_PCMU, MIX_PCMA, MIX_G722};

	(void)state;
	for (unsigned k = 0; k < 3; k++) {
		for (size_t r = 0; r < FC_ARRAY_SIZE(rates); r++) {
			unsigned rate = rates[r], frame = rate / 50;
			struct mix_cs *enc = cs_new(c[k], rate, false);
			struct mix_cs *dec = cs_new(c[k], rate, false);
			unsigned long bytes = 0, samples = 0;

			for (unsigned f = 0; f < 10 * FRAMES; f++) {
				int16_t pcm[MIX_MAX_FRAME], got[DEC_CAP];
				uint8_t pay[PAYLOAD_CAP];
				int len, n;

				tone(pcm, frame, rate, 440.0, AMP, f * frame);
				len = mix_cs_encode(enc, pcm, frame, pay,
						    sizeof(pay));
				assert_int_equal(len, 160);
				n = mix_cs_decode(dec, pay, (unsigned)len, got,
						  DEC_CAP);
				assert_int_equal(n, (int)frame);
				bytes += (unsigned)len;
				samples += (unsigned)n;
			}
			assert_int_equal(bytes, 10ul * FRAMES * 160);
			assert_int_equal(samples, 10ul * rate);
			mix_cs_free(enc);
			mix_cs_free(dec);
		}
	}
}

/*
 * A peer with a longer ptime: a 60 ms payload (the most the worker's
 * buffer takes, 2880 samples at 48 kHz) decodes to three frames at every
 * rate, the tone intact.
 */
static void
test_long_ptime(void **state)
{
	(void)state;
	for (unsigned c = 0; c < MIX_CODEC_COUNT; c++) {
		for (size_t r = 0; r < FC_ARRAY_SIZE(rates); r++) {
			unsigned rate = rates[r], n = 3 * rate / 50;
			struct mix_cs *enc = cs_new(c, rate, false);
			struct mix_cs *dec = cs_new(c, rate, false);
			int16_t pcm[DEC_CAP], got[DEC_CAP];
			uint8_t pay[PAYLOAD_CAP];
			int len;

			for (unsigned f = 0; f < 5; f++) {
				tone(pcm, n, rate, TONE, AMP, f * n);
				len = mix_cs_encode(enc, pcm, n, pay,
						    sizeof(pay));
				if (c == MIX_OPUS)
					assert_true(len > 2);
				else
					assert_int_equal(len, 480);
				assert_int_equal(mix_cs_decode(dec, pay,
							       (unsigned)len,
							       got, DEC_CAP),
						 (int)n);
			}
			/* The last payload's second half: the tone. */
			assert_true(fabs(level_db(tone_amplitude(
					    got + n / 2, n / 2, rate, TONE))) <
				    2.0);
			mix_cs_free(enc);
			mix_cs_free(dec);
		}
	}
}

/*
 * Sending at the peer's ptime through the codec's queue: 20 ms ticks go
 * out as two 10 ms packets, or one every 1.5, 2 or 3 ticks; each packet
 * carries ptime of audio, stamped with its first sample's time, and the
 * tone comes through. A ptime the codec cannot send is refused.
 */
static void
test_send_ptime(void **state)
{
	static const struct {
		enum mix_codec c;
		unsigned ptime;
	} cases[] = {
		{MIX_OPUS, 10}, {MIX_OPUS, 40}, {MIX_OPUS, 60},
		{MIX_PCMU, 10}, {MIX_PCMU, 30}, {MIX_G722, 40},
	};
	struct mix_leg_params p;
	struct mix_cs *cs;

	(void)state;
	for (size_t k = 0; k < FC_ARRAY_SIZE(cases); k++) {
		unsigned rate = 16000, tick = rate / 50, sent = 0;
		unsigned per = rate * cases[k].ptime / 1000;
		uint32_t ts = 1000, want_ts = 1000;
		struct mix_cs *enc, *dec;
		int16_t pcm[DEC_CAP], got[DEC_CAP];
		uint8_t pay[PAYLOAD_CAP];
		unsigned tpm;

		memset(&p, 0, sizeof(p));
		p.codec = cases[k].c;
		p.rate = rate;
		p.ptime_ms = cases[k].ptime;
		enc = cs_new_p(&p, rate);
		p.ptime_ms = 0;
		dec = cs_new_p(&p, rate);
		assert_int_equal(mix_cs_ptime(enc), cases[k].ptime);
		tpm = mix_cs_ts_per_ms(enc);
		for (unsigned f = 0; f < 30; f++) {
			const int16_t *in = pcm;
			uint32_t pts;
			int len;

			tone(pcm, tick, rate, TONE, AMP, f * tick);
			while ((len = mix_cs_txq(enc, in, tick, ts, pay,
						 sizeof(pay), &pts)) != -2) {
				in = NULL;
				assert_true(len > 2);
				assert_int_equal(pts, want_ts);
				want_ts += cases[k].ptime * tpm;
				assert_int_equal(mix_cs_decode(dec, pay,
							       (unsigned)len,
							       got, DEC_CAP),
						 (int)per);
				sent += per;
			}
			ts += MIX_PTIME_MS * tpm;
		}
		/* Every sample queued went out but what is short of a
		 * packet. */
		assert_true(30 * tick - sent < per);
		assert_true(fabs(level_db(tone_amplitude(got + per / 2, per / 2,
							 rate, TONE))) < 2.0);
		mix_cs_free(enc);
		mix_cs_free(dec);
	}
	memset(&p, 0, sizeof(p));
	p.codec = MIX_OPUS;
	p.rate = 16000;
	p.ptime_ms = 30;
	assert_int_equal(mix_cs_alloc(&cs, &p, 16000), EINVAL);
	p.codec = MIX_PCMU;
	p.ptime_ms = 70;
	assert_int_equal(mix_cs_alloc(&cs, &p, 16000), EINVAL);
	p.ptime_ms = 25;
	assert_int_equal(mix_cs_alloc(&cs, &p, 16000), EINVAL);
	/* A gap in the ticks (the leg was deaf): what waited goes, and the
	 * next packet is stamped from after the gap. */
	{
		int16_t x[320] = {0};
		uint8_t pay[PAYLOAD_CAP];
		uint32_t pts = 0;

		p.codec = MIX_PCMU;
		p.ptime_ms = 40;
		cs = cs_new_p(&p, 16000);
		assert_int_equal(
			mix_cs_txq(cs, x, 320, 1000, pay, sizeof(pay), &pts),
			-2);
		assert_int_equal(mix_cs_txq(cs, x, 320, 1000 + 2400, pay,
					    sizeof(pay), &pts),
				 -2);
		assert_int_equal(mix_cs_txq(cs, x, 320, 1000 + 2560, pay,
					    sizeof(pay), &pts),
				 320);
		assert_int_equal(pts, 1000 + 2400);
		mix_cs_free(cs);
	}
	/* The tick's own ptime has no queue. */
	p.ptime_ms = 20;
	cs = cs_new_p(&p, 16000);
	assert_int_equal(mix_cs_txq(cs, NULL, 0, 0, NULL, 0, NULL), -1);
	mix_cs_free(cs);
}

static void
test_ts_per_ms(void **state)
{
	/* RTP clocks: 8 kHz for G.711 and G.722 (RFC 3551), 48 Opus. */
	static const unsigned expect[MIX_CODEC_COUNT] = {
		[MIX_PCMU] = 8,
		[MIX_PCMA] = 8,
		[MIX_G722] = 8,
		[MIX_OPUS] = 48,
	};

	(void)state;
	for (unsigned c = 0; c < MIX_CODEC_COUNT; c++) {
		for (size_t r = 0; r < FC_ARRAY_SIZE(rates); r++) {
			struct mix_cs *cs = cs_new(c, rates[r], false);

			assert_int_equal(mix_cs_ts_per_ms(cs), expect[c]);
			mix_cs_free(cs);
		}
	}
}

/* Of 50 frames of silence or of a tone, those from frame `skip` on that
 * Opus sends nothing for. */
static unsigned
opus_unsent(unsigned rate, bool dtx, bool silence, unsigned skip)
{
	struct mix_cs *cs = cs_new(MIX_OPUS, rate, dtx);
	unsigned frame = rate / 50, unsent = 0;

	for (unsigned f = 0; f < FRAMES; f++) {
		int16_t pcm[MIX_MAX_FRAME];
		uint8_t pay[PAYLOAD_CAP];
		int len;

		if (silence)
			memset(pcm, 0, sizeof(pcm));
		else
			tone(pcm, frame, rate, TONE, AMP, f * frame);
		len = mix_cs_encode(cs, pcm, frame, pay, sizeof(pay));
		assert_true(len >= 0);
		/* What is sent is a real packet, never a DTX stub. */
		assert_true(len == 0 || len > 2);
		if (f >= skip && len == 0)
			unsent++;
	}
	mix_cs_free(cs);
	return unsent;
}

static void
test_opus_dtx(void **state)
{
	(void)state;
	for (size_t r = 0; r < FC_ARRAY_SIZE(rates); r++) {
		unsigned rate = rates[r], dtx_silent, plain;

		/* DTX on silence: after start-up, most frames not sent
		 * (Opus refreshes its comfort noise every 400 ms). */
		dtx_silent = opus_unsent(rate, true, true, 10);
		print_message("opus %5u Hz: DTX silence unsent %u/40\n", rate,
			      dtx_silent);
		assert_true(dtx_silent >= 30);
		/* DTX never drops speech. */
		assert_int_equal(opus_unsent(rate, true, false, 0), 0);
		/* Without DTX every frame is sent, silence included. */
		plain = opus_unsent(rate, false, true, 0);
		print_message("opus %5u Hz: no DTX silence unsent %u/50\n",
			      rate, plain);
		assert_int_equal(plain, 0);
		assert_int_equal(opus_unsent(rate, false, false, 0), 0);
	}
}

/*
 * The SILK voice activity flag read from the bitstream: a tone is voice
 * (for its first 0.6 s: SILK's detector then takes a steady tone for the
 * background, which is why the worker reads the flag only from legs its
 * own gate found quiet), faint noise after it (-66 dBFS) is not, once
 * the encoder's hangover is over; DTX frames are silent; CELT packets and
 * packets of several frames never say so.
 */
static void
test_opus_silent(void **state)
{
	struct mix_cs *enc = cs_new(MIX_OPUS, 16000, false);
	uint8_t pl[PAYLOAD_CAP];
	int16_t x[320];
	unsigned voiced = 0, quiet = 0, seed = 1;
	static const uint8_t dtx[1] = {0x08},
			     celt[4] = {0x80 | (1 << 3), 1, 0, 0},
			     two[4] = {0x09, 0x00, 0x00, 0x00},
			     sixty[4] = {0x18, 0x00, 0x00, 0x00};

	(void)state;
	for (unsigned f = 0; f < 2 * FRAMES; f++) {
		int n;

		if (f < FRAMES) {
			tone(x, 320, 16000, 440.0, AMP, f * 320);
		} else {
			for (unsigned i = 0; i < 320; i++) {
				seed = seed * 1103515245u + 12345u;
				x[i] = (int16_t)((int)((seed >> 16) & 31) - 16);
			}
		}
		n = mix_cs_encode(enc, x, 320, pl, sizeof(pl));
		assert_true(n > 2);
		assert_true((pl[0] >> 3) < 16); /* VOIP at 16 kHz: SILK */
		if (f < 30)
			voiced += !mix_cs_silent(enc, pl, (unsigned)n);
		if (f >= FRAMES + 25)
			quiet += mix_cs_silent(enc, pl, (unsigned)n);
	}
	assert_int_equal(voiced, 30);
	assert_int_equal(quiet, FRAMES - 25);
	assert_true(mix_cs_silent(enc, dtx, sizeof(dtx)));
	assert_false(mix_cs_silent(enc, celt, sizeof(celt)));
	assert_false(mix_cs_silent(enc, two, sizeof(two)));
	assert_false(mix_cs_silent(enc, sixty, sizeof(sixty)));
	assert_false(mix_cs_silent(enc, dtx, 0));
	mix_cs_free(enc);

	/* G.711 says nothing of itself. */
	enc = cs_new(MIX_PCMU, 8000, false);
	assert_false(mix_cs_silent(enc, dtx, sizeof(dtx)));
	mix_cs_free(enc);
}

static void
test_alloc_errors(void **state)
{
	static const unsigned bad_rates[] = {0,	    1,	   7999,  11025,
					     22050, 32000, 44100, 96000};
	struct mix_leg_params p;
	struct mix_cs *cs = NULL;

	(void)state;
	memset(&p, 0, sizeof(p));
	for (size_t i = 0; i < FC_ARRAY_SIZE(bad_rates); i++) {
		for (unsigned c = 0; c < MIX_CODEC_COUNT; c++) {
			p.codec = c;
			p.rate = bad_rates[i];
			assert_int_equal(mix_cs_alloc(&cs, &p, bad_rates[i]),
					 EINVAL);
		}
	}
	p.codec = MIX_CODEC_COUNT;
	assert_int_equal(mix_cs_alloc(&cs, &p, 16000), EINVAL);
	p.codec = (enum mix_codec)99;
	assert_int_equal(mix_cs_alloc(&cs, &p, 16000), EINVAL);
	p.codec = MIX_PCMU;
	assert_int_equal(mix_cs_alloc(NULL, &p, 16000), EINVAL);
	assert_int_equal(mix_cs_alloc(&cs, NULL, 16000), EINVAL);
	/* And every valid pair allocates. */
	for (unsigned c = 0; c < MIX_CODEC_COUNT; c++) {
		for (size_t r = 0; r < FC_ARRAY_SIZE(rates); r++) {
			p.codec = c;
			assert_int_equal(mix_cs_alloc(&cs, &p, rates[r]), 0);
			mix_cs_free(cs);
		}
	}
	mix_cs_free(NULL);
}

static void
test_opus_garbage(void **state)
{
	/* TOC 0xff: code 3, and a frame count byte of 63 frames of 20 ms,
	 * far beyond Opus's 120 ms. */
	static const uint8_t ff[8] = {0xff, 0xff, 0xff, 0xff,
				      0xff, 0xff, 0xff, 0xff};
	/* Code 1 (two equal frames) with an odd byte count. */
	static const uint8_t odd[4] = {0x01, 0x10, 0x20, 0x30};
	/* Code 2 with a frame length longer than the packet. */
	static const uint8_t longer[3] = {0x02, 0xfb, 0x00};

	(void)state;
	for (size_t r = 0; r < FC_ARRAY_SIZE(rates); r++) {
		unsigned rate = rates[r], frame = rate / 50;
		struct mix_cs *enc = cs_new(MIX_OPUS, rate, false);
		struct mix_cs *dec = cs_new(MIX_OPUS, rate, false);
		int16_t pcm[MIX_MAX_FRAME], got[DEC_CAP];
		uint8_t pay[PAYLOAD_CAP];
		int len;

		assert_int_equal(mix_cs_decode(dec, ff, 1, got, DEC_CAP), -1);
		assert_int_equal(
			mix_cs_decode(dec, ff, sizeof(ff), got, DEC_CAP), -1);
		assert_int_equal(
			mix_cs_decode(dec, odd, sizeof(odd), got, DEC_CAP), -1);
		assert_int_equal(mix_cs_decode(dec, longer, sizeof(longer), got,
					       DEC_CAP),
				 -1);
		/* The decoder goes on with the next good packet. */
		tone(pcm, frame, rate, TONE, AMP, 0);
		len = mix_cs_encode(enc, pcm, frame, pay, sizeof(pay));
		assert_true(len > 2);
		assert_int_equal(
			mix_cs_decode(dec, pay, (unsigned)len, got, DEC_CAP),
			(int)frame);
		mix_cs_free(enc);
		mix_cs_free(dec);
	}
}

/* An empty payload carries no audio: G.711 and G.722 decode it to nothing. */
static void
test_empty_payload(void **state)
{
	static const uint8_t byte = 0xd5;

	(void)state;
	for (unsigned c = 0; c < MIX_CODEC_COUNT; c++) {
		if (c == MIX_OPUS)
			continue;
		for (size_t r = 0; r < FC_ARRAY_SIZE(rates); r++) {
			struct mix_cs *cs = cs_new(c, rates[r], false);
			int16_t got[DEC_CAP];

			assert_int_equal(
				mix_cs_decode(cs, &byte, 0, got, DEC_CAP), 0);
			assert_int_equal(
				mix_cs_decode(cs, NULL, 0, got, DEC_CAP), 0);
			mix_cs_free(cs);
		}
	}
}

/*
 * For Opus a zero-byte payload is no packet at all (RFC 6716 3.1: every
 * packet has its TOC byte), so decode should refuse it (-1, counted as
 * malformed) or at most conceal one 20 ms frame - never hand the mixer
 * more audio than any packet could carry, which would fill the leg's
 * receive FIFO with concealment and push out what it holds.
 */
static void
test_opus_empty_payload(void **state)
{
	static const uint8_t byte = 0x78;
	char msg[512];
	size_t at = 0;
	bool bad = false;

	(void)state;
	/* Every rate's outcome first, the states freed, then the verdict. */
	for (size_t r = 0; r < FC_ARRAY_SIZE(rates); r++) {
		unsigned rate = rates[r], frame = rate / 50;
		struct mix_cs *enc = cs_new(MIX_OPUS, rate, false);
		struct mix_cs *dec = cs_new(MIX_OPUS, rate, false);
		int16_t pcm[MIX_MAX_FRAME], got[DEC_CAP];
		uint8_t pay[PAYLOAD_CAP];
		int n1, n2, len, next;

		n1 = mix_cs_decode(dec, &byte, 0, got, DEC_CAP);
		n2 = mix_cs_decode(dec, NULL, 0, got, DEC_CAP);
		/* The decoder goes on with the next good packet. */
		tone(pcm, frame, rate, TONE, AMP, 0);
		len = mix_cs_encode(enc, pcm, frame, pay, sizeof(pay));
		next = len > 2 ? mix_cs_decode(dec, pay, (unsigned)len, got,
					       DEC_CAP)
			       : -2;
		mix_cs_free(enc);
		mix_cs_free(dec);
		print_message("opus %5u Hz: empty payload -> %d, %d samples; "
			      "next packet -> %d\n",
			      rate, n1, n2, next);
		if (n1 > (int)frame || n2 > (int)frame || next != (int)frame) {
			bad = true;
			at += (size_t)snprintf(
				msg + at, sizeof(msg) - at,
				" %u Hz: %d and %d samples, then %d;", rate, n1,
				n2, next);
		}
	}
	if (bad)
		fail_msg("empty Opus payloads (&byte, 0 and NULL, 0) decoded "
			 "to more than one 20 ms frame, or the next packet "
			 "not to one:%s",
			 msg);
}

/*
 * One second of a tone through Opus at 48 kHz with the peer's fmtp:
 * returns the bytes sent; the highest bandwidth any packet's TOC claimed
 * in *bw; the tone's level and that of probe (dB) in the last half second.
 */
static unsigned
opus_fmtp_run(unsigned maxrate, unsigned bitrate, double freq, double probe,
	      int *bw, double *db, double *probe_db)
{
	static int16_t out[MIX_MAX_RATE];
	struct mix_leg_params p;
	unsigned rate = 48000, frame = rate / 50, bytes = 0;
	struct mix_cs *enc, *dec;

	memset(&p, 0, sizeof(p));
	p.codec = MIX_OPUS;
	p.rate = rate;
	p.opus_maxrate = maxrate;
	p.opus_bitrate = bitrate;
	enc = cs_new_p(&p, rate);
	dec = cs_new(MIX_OPUS, rate, false);
	*bw = 0;
	for (unsigned f = 0; f < FRAMES; f++) {
		int16_t pcm[MIX_MAX_FRAME];
		uint8_t pay[PAYLOAD_CAP];
		int len, b;

		tone(pcm, frame, rate, freq, AMP, f * frame);
		len = mix_cs_encode(enc, pcm, frame, pay, sizeof(pay));
		check_payload(MIX_OPUS, rate, pay, len);
		b = opus_packet_get_bandwidth(pay);
		if (b > *bw)
			*bw = b;
		bytes += (unsigned)len;
		assert_int_equal(mix_cs_decode(dec, pay, (unsigned)len,
					       out + f * frame, frame),
				 (int)frame);
	}
	*db = level_db(tone_amplitude(out + rate / 2, rate / 2, rate, freq));
	*probe_db =
		level_db(tone_amplitude(out + rate / 2, rate / 2, rate, probe));
	print_message("opus 48000 Hz maxrate %5u bitrate %5u: %u bytes/s, "
		      "bandwidth %d, %4.0f Hz at %6.2f dB, %4.0f Hz %6.1f\n",
		      maxrate, bitrate, bytes, *bw, freq, *db, probe,
		      *probe_db);
	mix_cs_free(enc);
	mix_cs_free(dec);
	return bytes;
}

/* maxplaybackrate caps the bandwidth the encoder sends, audibly. */
static void
test_opus_maxrate(void **state)
{
	int bw;
	double db, probe_db;

	(void)state;
	/* Narrowband: 1 kHz heard, 6 kHz gone (and not folded to 2 kHz). */
	opus_fmtp_run(8000, 0, TONE, HIGH_TONE, &bw, &db, &probe_db);
	assert_int_equal(bw, OPUS_BANDWIDTH_NARROWBAND);
	assert_true(fabs(db) <= 2.0);
	opus_fmtp_run(8000, 0, HIGH_TONE, 2000.0, &bw, &db, &probe_db);
	assert_true(db < OPUS_FLOOR);
	assert_true(probe_db < OPUS_FLOOR);
	/* Wideband: 6 kHz heard, 10 kHz gone. */
	opus_fmtp_run(16000, 0, HIGH_TONE, TONE, &bw, &db, &probe_db);
	assert_true(bw <= OPUS_BANDWIDTH_WIDEBAND);
	assert_true(fabs(db) <= 2.0);
	assert_true(probe_db < OPUS_FLOOR);
	opus_fmtp_run(16000, 0, 10000.0, 6000.0, &bw, &db, &probe_db);
	assert_true(db < OPUS_FLOOR);
	assert_true(probe_db < OPUS_FLOOR);
	/* No limit: full band at 48 kHz. */
	opus_fmtp_run(0, 0, TONE, HIGH_TONE, &bw, &db, &probe_db);
	assert_int_equal(bw, OPUS_BANDWIDTH_FULLBAND);
}

/*
 * maxaveragebitrate: the encoder aims at it. Opus's VBR is no hard cap
 * (a pure tone's first second runs some 25% over at 12 kbit/s in libopus
 * itself), so: within half and one and a half times it, more bits asked
 * for are more bits sent, and the tone is heard at every rate.
 */
static void
test_opus_bitrate(void **state)
{
	static const unsigned br[] = {12000, 24000, 64000};
	unsigned last = 0;
	int bw;
	double db, probe_db;

	(void)state;
	for (size_t i = 0; i < FC_ARRAY_SIZE(br); i++) {
		unsigned bytes = opus_fmtp_run(0, br[i], TONE, 2008.0, &bw, &db,
					       &probe_db);

		assert_true(bytes * 8 <= br[i] * 3 / 2);
		assert_true(bytes * 8 >= br[i] / 2);
		assert_true(bytes > last);
		last = bytes;
		assert_true(fabs(db) <= 2.0);
		assert_true(probe_db < OPUS_FLOOR);
	}
}

/*
 * Concealment asked for more than fits at the codec's rate: G.722 in an
 * 8 kHz conference (an application lobby) with a 200 ms ptime would need
 * 3200 samples at 16 kHz. It is cut to what fits; an AddressSanitizer
 * build stops here if it is not.
 */
static void
test_conceal_bounded(void **state)
{
	static int16_t out[2880];
	uint8_t pay[160];

	(void)state;
	memset(pay, 0x55, sizeof(pay));
	for (unsigned i = 0; i < 2; i++) {
		struct mix_cs *cs =
			cs_new(i ? MIX_PCMU : MIX_G722, 8000, false);
		int n;

		assert_true(mix_cs_decode(cs, pay, sizeof(pay), out, 2880) > 0);
		/* G.722 is cut to 2880 samples at 16 kHz: 1440 at 8 kHz. */
		n = mix_cs_conceal(cs, NULL, 0, out, 1600);
		assert_true(n > 0 && n <= (i ? 1600 : 1440));
		n = mix_cs_conceal(cs, NULL, 0, out, 2880);
		assert_true(n > 0 && n <= (i ? 2880 : 1440));
		mix_cs_free(cs);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_pcmu),
		cmocka_unit_test(test_round_trip_pcma),
		cmocka_unit_test(test_round_trip_g722),
		cmocka_unit_test(test_round_trip_opus),
		cmocka_unit_test(test_g711_8k_bit_exact),
		cmocka_unit_test(test_no_drift),
		cmocka_unit_test(test_long_ptime),
		cmocka_unit_test(test_ts_per_ms),
		cmocka_unit_test(test_opus_dtx),
		cmocka_unit_test(test_opus_silent),
		cmocka_unit_test(test_send_ptime),
		cmocka_unit_test(test_alloc_errors),
		cmocka_unit_test(test_opus_garbage),
		cmocka_unit_test(test_empty_payload),
		cmocka_unit_test(test_conceal_bounded),
		cmocka_unit_test(test_opus_empty_payload),
		cmocka_unit_test(test_opus_maxrate),
		cmocka_unit_test(test_opus_bitrate),
	};

	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
