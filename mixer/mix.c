/*
 * mix.c - the mixing kernels and G.711.
 *
 * Mix-minus: the worker sums every talker once into an int32 accumulator
 * (no overflow is possible below 65536 talkers) and derives each listener's
 * output from the sum by subtracting that listener's own frame, saturating
 * to int16 only at the end. The alternative, summing N-1 frames for each of
 * N legs, costs O(N^2) and was rejected.
 *
 * G.711 goes through tables built once at load from SpanDSP's converters:
 * 256 linear values per law to decode, and to encode one codeword per 4
 * linear values (16 KB per law). The 2 low bits never matter: G.711 codes
 * 14-bit (mu-law) and 13-bit (A-law) magnitudes, and SpanDSP's mu-law
 * bias (0x84) is a multiple of 4, so no carry reaches the bits its shifts
 * keep. Mu-law codes a negative value from its magnitude (-x), A-law from
 * its complement (~x = x >> 2 kept), so mu-law's index is the magnitude's
 * for negatives (ulaw_index). The unit test checks every input against
 * SpanDSP. Read-only after
 * load: any thread, and every core keeps its own cached copy.
 */
#include <spandsp.h>

#include "mixer/mixer.h"

const char *
mix_codec_name(enum mix_codec c)
{
	switch (c) {
	case MIX_PCMU:
		return "PCMU";
	case MIX_PCMA:
		return "PCMA";
	case MIX_G722:
		return "G722";
	case MIX_OPUS:
		return "opus";
	case MIX_CODEC_COUNT:
		break;
	}
	return "?";
}

bool
mix_ptime_valid(enum mix_codec c, unsigned ms)
{
	if (c == MIX_OPUS) /* one Opus frame a packet (RFC 6716 2.1.4) */
		return ms == 10 || ms == 20 || ms == 40 || ms == 60;
	return ms >= 10 && ms <= 60 && ms % 10 == 0;
}

void
mix_acc_add(int32_t *acc, const int16_t *in, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		acc[i] += in[i];
}

static inline int16_t
sat16(int32_t v)
{
	if (v > INT16_MAX)
		return INT16_MAX;
	if (v < INT16_MIN)
		return INT16_MIN;
	return (int16_t)v;
}

void
mix_gain(int16_t *x, unsigned n, int32_t q8)
{
	for (unsigned i = 0; i < n; i++)
		x[i] = sat16((x[i] * q8) >> 8);
}

void
mix_minus(int16_t *out, const int32_t *acc, const int16_t *own, unsigned n)
{
	if (own == NULL) {
		for (unsigned i = 0; i < n; i++)
			out[i] = sat16(acc[i]);
		return;
	}
	for (unsigned i = 0; i < n; i++)
		out[i] = sat16(acc[i] - own[i]);
}

static int16_t ulaw_dec[256], alaw_dec[256];
static uint8_t ulaw_enc[(1 << 14) + 1], alaw_enc[1 << 14];

/* 0..8191: x >= 0, x / 4; 8192..16384: x < 0, 8192 + -x / 4. */
static inline unsigned
ulaw_index(int x)
{
	return x >= 0 ? (unsigned)x >> 2 : 8192 + ((unsigned)-x >> 2);
}

/* Before main(), so before any worker runs. */
__attribute__((constructor)) static void
g711_tables(void)
{
	for (unsigned i = 0; i < 256; i++) {
		ulaw_dec[i] = ulaw_to_linear((uint8_t)i);
		alaw_dec[i] = alaw_to_linear((uint8_t)i);
	}
	for (int x = INT16_MIN; x <= INT16_MAX; x++) {
		alaw_enc[(uint16_t)x >> 2] = linear_to_alaw(x);
		ulaw_enc[ulaw_index(x)] = linear_to_ulaw(x);
	}
}

void
mix_g711_decode(enum mix_codec c, int16_t *pcm, const uint8_t *in, unsigned n)
{
	const int16_t *t = c == MIX_PCMA ? alaw_dec : ulaw_dec;

	for (unsigned i = 0; i < n; i++)
		pcm[i] = t[in[i]];
}

void
mix_g711_encode(enum mix_codec c, uint8_t *out, const int16_t *pcm, unsigned n)
{
	if (c == MIX_PCMA) {
		for (unsigned i = 0; i < n; i++)
			out[i] = alaw_enc[(uint16_t)pcm[i] >> 2];
	} else {
		for (unsigned i = 0; i < n; i++)
			out[i] = ulaw_enc[ulaw_index(pcm[i])];
	}
}
