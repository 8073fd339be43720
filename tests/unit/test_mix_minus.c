/*
 * test_mix_minus.c - the mixing kernels and G.711 (mixer/mix.c).
 *
 * Checks what a participant hears: with three talkers, each one's output is
 * exactly the sum of the other two; sums beyond int16 clip at +32767 and
 * -32768 instead of wrapping (the accumulator is int32, so only the final
 * subtraction saturates); a leg that did not talk hears the full sum.
 * G.711 codewords decode to the values of SpanDSP's definition
 * (spandsp/g711.h) and survive encode(decode(x)). End to end, three tones
 * sent as G.711, mixed minus and sent back as G.711 reach each listener as
 * the two other tones without its own, measured with a Goertzel filter.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <spandsp.h>

#include "mixer/mixer.h"
#include "tests/unit/tone.h"

#define N_GOLD 8

/* Hand-picked samples; the expected sums are written out, not computed. */
static const int16_t gold_a[N_GOLD] = {
	0, 100, -100, 1000, -20000, 12345, 32767, -32768,
};
static const int16_t gold_b[N_GOLD] = {
	0, 200, 300, -1000, 10000, -345, 0, 0,
};
static const int16_t gold_c[N_GOLD] = {
	0, -50, 7, 5, 9999, 1, -1, 1,
};
static const int32_t gold_sum[N_GOLD] = {
	0, 250, 207, 5, -1, 12001, 32766, -32767,
};
/* b + c */
static const int16_t gold_out_a[N_GOLD] = {
	0, 150, 307, -995, 19999, -344, -1, 1,
};
/* a + c */
static const int16_t gold_out_b[N_GOLD] = {
	0, 50, -93, 1005, -10001, 12346, 32766, -32767,
};
/* a + b */
static const int16_t gold_out_c[N_GOLD] = {
	0, 300, 200, 0, -10000, 12000, 32767, -32768,
};

static void
test_three_talkers_golden(void **state)
{
	int32_t acc[N_GOLD] = {0};
	int16_t out[N_GOLD];

	(void)state;
	mix_acc_add(acc, gold_a, N_GOLD);
	mix_acc_add(acc, gold_b, N_GOLD);
	mix_acc_add(acc, gold_c, N_GOLD);
	for (unsigned i = 0; i < N_GOLD; i++)
		assert_int_equal(acc[i], gold_sum[i]);

	mix_minus(out, acc, gold_a, N_GOLD);
	assert_memory_equal(out, gold_out_a, sizeof(out));
	mix_minus(out, acc, gold_b, N_GOLD);
	assert_memory_equal(out, gold_out_b, sizeof(out));
	mix_minus(out, acc, gold_c, N_GOLD);
	assert_memory_equal(out, gold_out_c, sizeof(out));
}

static void
test_three_talkers_full_frame(void **state)
{
	int16_t t[3][MIX_FRAME];
	int32_t acc[MIX_FRAME];
	int16_t out[MIX_FRAME + 1];

	(void)state;
	for (int i = 0; i < MIX_FRAME; i++) {
		t[0][i] = (int16_t)(i * 37 - 3000);
		t[1][i] = (int16_t)(5000 - i * 61);
		t[2][i] = (int16_t)((i % 7) * 1000 - 3500);
	}
	memset(acc, 0, sizeof(acc));
	for (int k = 0; k < 3; k++)
		mix_acc_add(acc, t[k], MIX_FRAME);
	for (int k = 0; k < 3; k++) {
		out[MIX_FRAME] = 0x1234; /* guard: written past n? */
		mix_minus(out, acc, t[k], MIX_FRAME);
		assert_int_equal(out[MIX_FRAME], 0x1234);
		for (int i = 0; i < MIX_FRAME; i++) {
			int expect = t[(k + 1) % 3][i] + t[(k + 2) % 3][i];

			assert_int_equal(out[i], expect);
		}
	}
}

static void
test_saturation_positive(void **state)
{
	int16_t t[MIX_FRAME];
	int32_t acc[MIX_FRAME] = {0};
	int16_t out[MIX_FRAME];

	(void)state;
	for (int i = 0; i < MIX_FRAME; i++)
		t[i] = 30000;
	/* Three talkers at 30000: each hears 60000, clipped. */
	for (int k = 0; k < 3; k++)
		mix_acc_add(acc, t, MIX_FRAME);
	for (int i = 0; i < MIX_FRAME; i++)
		assert_int_equal(acc[i], 90000);
	mix_minus(out, acc, t, MIX_FRAME);
	for (int i = 0; i < MIX_FRAME; i++)
		assert_int_equal(out[i], 32767);
}

static void
test_saturation_negative(void **state)
{
	int16_t t[MIX_FRAME];
	int32_t acc[MIX_FRAME] = {0};
	int16_t out[MIX_FRAME];

	(void)state;
	for (int i = 0; i < MIX_FRAME; i++)
		t[i] = -30000;
	for (int k = 0; k < 3; k++)
		mix_acc_add(acc, t, MIX_FRAME);
	for (int i = 0; i < MIX_FRAME; i++)
		assert_int_equal(acc[i], -90000);
	mix_minus(out, acc, t, MIX_FRAME);
	for (int i = 0; i < MIX_FRAME; i++)
		assert_int_equal(out[i], -32768);
}

static void
test_accumulator_does_not_wrap(void **state)
{
	static const int16_t max[2] = {32767, -32768};
	int32_t acc[2] = {0, 0};
	int16_t out[2];

	(void)state;
	/* 100 full-scale talkers: far beyond int16, well inside int32. */
	for (int k = 0; k < 100; k++)
		mix_acc_add(acc, max, 2);
	assert_int_equal(acc[0], 3276700);
	assert_int_equal(acc[1], -3276800);
	mix_minus(out, acc, max, 2);
	assert_int_equal(out[0], 32767);
	assert_int_equal(out[1], -32768);

	/* Accumulating onto a non-zero start keeps adding. */
	acc[0] = -70000;
	acc[1] = 70000;
	mix_acc_add(acc, max, 2);
	assert_int_equal(acc[0], -37233);
	assert_int_equal(acc[1], 37232);
}

static void
test_saturation_edges(void **state)
{
	/* acc - own lands exactly on, and one past, each int16 limit. */
	static const int32_t acc[6] = {
		32767, 32768, 32767 + 1000, -32768, -32769, -32768 - 1000,
	};
	static const int16_t own[6] = {0, 0, 1000, 0, 0, -1000};
	static const int16_t expect_minus[6] = {
		32767, 32767, 32767, -32768, -32768, -32768,
	};
	static const int16_t expect_full[6] = {
		32767, 32767, 32767, -32768, -32768, -32768,
	};
	int16_t out[6];

	(void)state;
	mix_minus(out, acc, own, 6);
	assert_memory_equal(out, expect_minus, sizeof(out));
	mix_minus(out, acc, NULL, 6);
	assert_memory_equal(out, expect_full, sizeof(out));
}

static void
test_own_null_full_sum(void **state)
{
	int32_t acc[N_GOLD] = {0};
	int16_t out[N_GOLD];
	/* a + b + c, clipped (all in range here). */
	static const int16_t expect[N_GOLD] = {
		0, 250, 207, 5, -1, 12001, 32766, -32767,
	};

	(void)state;
	mix_acc_add(acc, gold_a, N_GOLD);
	mix_acc_add(acc, gold_b, N_GOLD);
	mix_acc_add(acc, gold_c, N_GOLD);
	mix_minus(out, acc, NULL, N_GOLD);
	assert_memory_equal(out, expect, sizeof(out));

	/* A full sum out of range clips too. */
	mix_acc_add(acc, gold_a, N_GOLD);
	mix_minus(out, acc, NULL, N_GOLD);
	assert_int_equal(out[6], 32767);  /* 32766 + 32767 */
	assert_int_equal(out[7], -32768); /* -32767 - 32768 */
	assert_int_equal(out[4], -20001);
}

static void
test_zero_length(void **state)
{
	int32_t acc[2] = {7, -7};
	int16_t in[2] = {100, 100};
	int16_t out[2] = {0x55, 0x55};

	(void)state;
	mix_acc_add(acc, in, 0);
	assert_int_equal(acc[0], 7);
	assert_int_equal(acc[1], -7);
	mix_minus(out, acc, in, 0);
	mix_minus(out, acc, NULL, 0);
	assert_int_equal(out[0], 0x55);
	assert_int_equal(out[1], 0x55);
}

/* Codewords and the linear values SpanDSP's g711.h gives them. */
/* clang-format off */
static const struct {
	uint8_t code;
	int16_t lin;
} ulaw_gold[] = {
	{0xff, 0},      {0x7f, 0},      {0x00, -32124}, {0x80, 32124},
	{0xfe, 8},      {0x7e, -8},     {0xf0, 120},    {0xef, 132},
	{0x8f, 16764},  {0x0f, -16764}, {0x10, -15996},
}, alaw_gold[] = {
	{0xd5, 8},      {0x55, -8},     {0xd4, 24},     {0x54, -24},
	{0xc5, 264},    {0x45, -264},   {0x80, 5504},   {0x00, -5504},
	{0xaa, 32256},  {0x2a, -32256},
};
/* clang-format on */

static void
test_g711_decode_known(void **state)
{
	int16_t pcm;

	(void)state;
	for (size_t i = 0; i < FC_ARRAY_SIZE(ulaw_gold); i++) {
		mix_g711_decode(MIX_PCMU, &pcm, &ulaw_gold[i].code, 1);
		assert_int_equal(pcm, ulaw_gold[i].lin);
	}
	for (size_t i = 0; i < FC_ARRAY_SIZE(alaw_gold); i++) {
		mix_g711_decode(MIX_PCMA, &pcm, &alaw_gold[i].code, 1);
		assert_int_equal(pcm, alaw_gold[i].lin);
	}
}

static void
test_g711_encode_known(void **state)
{
	/* clang-format off */
	static const struct {
		int16_t lin;
		uint8_t ulaw;
		uint8_t alaw;
	} v[] = {
		{0,      0xff, 0xd5},
		{-1,     0x7f, 0x55},
		{8,      0xfe, 0xd5},
		{100,    0xf2, 0xd3},
		{1000,   0xce, 0xfa},
		{-1000,  0x4e, 0x7a},
		{32767,  0x80, 0xaa},
		{-32768, 0x00, 0x2a},
	};
	/* clang-format on */
	uint8_t out;

	(void)state;
	for (size_t i = 0; i < FC_ARRAY_SIZE(v); i++) {
		mix_g711_encode(MIX_PCMU, &out, &v[i].lin, 1);
		assert_int_equal(out, v[i].ulaw);
		mix_g711_encode(MIX_PCMA, &out, &v[i].lin, 1);
		assert_int_equal(out, v[i].alaw);
	}
}

/* The worker's tables give SpanDSP's converters' result for every input. */
static void
test_g711_tables_exact(void **state)
{
	(void)state;
	for (int i = 0; i < 256; i++) {
		uint8_t code = (uint8_t)i;
		int16_t pcm;

		mix_g711_decode(MIX_PCMU, &pcm, &code, 1);
		assert_int_equal(pcm, ulaw_to_linear(code));
		mix_g711_decode(MIX_PCMA, &pcm, &code, 1);
		assert_int_equal(pcm, alaw_to_linear(code));
	}
	for (int x = INT16_MIN; x <= INT16_MAX; x++) {
		int16_t lin = (int16_t)x;
		uint8_t out;

		mix_g711_encode(MIX_PCMU, &out, &lin, 1);
		if (out != linear_to_ulaw(lin))
			fail_msg("mu-law %d: %#x, SpanDSP %#x", x, out,
				 linear_to_ulaw(lin));
		mix_g711_encode(MIX_PCMA, &out, &lin, 1);
		if (out != linear_to_alaw(lin))
			fail_msg("A-law %d: %#x, SpanDSP %#x", x, out,
				 linear_to_alaw(lin));
	}
}

static void
test_g711_ulaw_round_trip(void **state)
{
	uint8_t code[256], back[256];
	int16_t pcm[256];

	(void)state;
	for (int i = 0; i < 256; i++)
		code[i] = (uint8_t)i;
	mix_g711_decode(MIX_PCMU, pcm, code, 256);
	mix_g711_encode(MIX_PCMU, back, pcm, 256);
	for (int i = 0; i < 256; i++) {
		/* 0x7f is the negative zero; zero encodes as 0xff. */
		if (i == 0x7f)
			assert_int_equal(back[i], 0xff);
		else
			assert_int_equal(back[i], i);
	}
	/* Decoding is monotonic within each sign half. */
	for (int i = 0x80; i < 0xff; i++)
		assert_true(pcm[i] > pcm[i + 1]);
	for (int i = 0x00; i < 0x7f; i++)
		assert_true(pcm[i] < pcm[i + 1]);
}

static void
test_g711_alaw_round_trip(void **state)
{
	uint8_t code[256], back[256];
	int16_t pcm[256];

	(void)state;
	for (int i = 0; i < 256; i++)
		code[i] = (uint8_t)i;
	mix_g711_decode(MIX_PCMA, pcm, code, 256);
	mix_g711_encode(MIX_PCMA, back, pcm, 256);
	for (int i = 0; i < 256; i++)
		assert_int_equal(back[i], i);
	/* A-law has no zero: 256 distinct values. */
	for (int i = 0; i < 256; i++)
		for (int j = i + 1; j < 256; j++)
			assert_true(pcm[i] != pcm[j]);
}

#define E2E_FRAMES 10
#define E2E_N	   (E2E_FRAMES * MIX_FRAME)
#define E2E_AMP	   8000.0

static const double e2e_freq[3] = {500.0, 1100.0, 1900.0};

/*
 * Three phones send a tone each as G.711; per 20 ms frame the worker
 * decodes, sums, subtracts each leg's own frame and encodes; each phone
 * decodes what it receives. Returns each listener's audio in heard.
 */
static void
e2e_run(enum mix_codec codec, int16_t heard[3][E2E_N])
{
	for (unsigned f = 0; f < E2E_FRAMES; f++) {
		int16_t pcm[3][MIX_FRAME], rx[3][MIX_FRAME], mixed[MIX_FRAME];
		uint8_t wire[MIX_FRAME];
		int32_t acc[MIX_FRAME];

		for (unsigned k = 0; k < 3; k++) {
			double w = 2 * M_PI * e2e_freq[k] / MIX_RATE;

			for (unsigned i = 0; i < MIX_FRAME; i++) {
				unsigned n = f * MIX_FRAME + i;

				pcm[k][i] =
					(int16_t)lrint(E2E_AMP * sin(w * n));
			}
			mix_g711_encode(codec, wire, pcm[k], MIX_FRAME);
			mix_g711_decode(codec, rx[k], wire, MIX_FRAME);
		}
		memset(acc, 0, sizeof(acc));
		for (unsigned k = 0; k < 3; k++)
			mix_acc_add(acc, rx[k], MIX_FRAME);
		for (unsigned k = 0; k < 3; k++) {
			mix_minus(mixed, acc, rx[k], MIX_FRAME);
			mix_g711_encode(codec, wire, mixed, MIX_FRAME);
			mix_g711_decode(codec, &heard[k][f * MIX_FRAME], wire,
					MIX_FRAME);
		}
	}
}

static void
e2e_check(enum mix_codec codec)
{
	static int16_t heard[3][E2E_N];

	e2e_run(codec, heard);
	for (unsigned k = 0; k < 3; k++) {
		double own = goertzel(heard[k], E2E_N, MIX_RATE, e2e_freq[k]);

		for (unsigned j = 0; j < 3; j++) {
			double amp, pow;

			if (j == k)
				continue;
			amp = tone_amplitude(heard[k], E2E_N, MIX_RATE,
					     e2e_freq[j]);
			pow = goertzel(heard[k], E2E_N, MIX_RATE, e2e_freq[j]);
			/* The other talkers at their level, within 5%. */
			assert_true(amp > E2E_AMP * 0.95);
			assert_true(amp < E2E_AMP * 1.05);
			/* Their voice well above the trace of one's own. */
			assert_true(pow > 100.0 * own);
		}
		/* And one's own tone is effectively absent. */
		assert_true(tone_amplitude(heard[k], E2E_N, MIX_RATE,
					   e2e_freq[k]) < E2E_AMP * 0.01);
	}
}

static void
test_goertzel_detects(void **state)
{
	static int16_t x[E2E_N];

	(void)state;
	/* The detector itself: a 1100 Hz tone shows at 1100 Hz only. */
	for (unsigned i = 0; i < E2E_N; i++)
		x[i] = (int16_t)lrint(E2E_AMP *
				      sin(2 * M_PI * 1100.0 * i / MIX_RATE));
	assert_true(fabs(tone_amplitude(x, E2E_N, MIX_RATE, 1100.0) - E2E_AMP) <
		    10.0);
	assert_true(tone_amplitude(x, E2E_N, MIX_RATE, 500.0) < 10.0);
	assert_true(tone_amplitude(x, E2E_N, MIX_RATE, 1900.0) < 10.0);
}

static void
test_e2e_tones_pcmu(void **state)
{
	(void)state;
	e2e_check(MIX_PCMU);
}

static void
test_e2e_tones_pcma(void **state)
{
	(void)state;
	e2e_check(MIX_PCMA);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_talkers_golden),
		cmocka_unit_test(test_three_talkers_full_frame),
		cmocka_unit_test(test_saturation_positive),
		cmocka_unit_test(test_saturation_negative),
		cmocka_unit_test(test_accumulator_does_not_wrap),
		cmocka_unit_test(test_saturation_edges),
		cmocka_unit_test(test_own_null_full_sum),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_g711_decode_known),
		cmocka_unit_test(test_g711_encode_known),
		cmocka_unit_test(test_g711_tables_exact),
		cmocka_unit_test(test_g711_ulaw_round_trip),
		cmocka_unit_test(test_g711_alaw_round_trip),
		cmocka_unit_test(test_goertzel_detects),
		cmocka_unit_test(test_e2e_tones_pcmu),
		cmocka_unit_test(test_e2e_tones_pcma),
	};

	return cmocka_run_group_tests_name("mix_minus", tests, NULL, NULL);
}
