/*
 * mix.c - the mixing kernels and G.711.
 *
 * Mix-minus: the worker sums every talker once into an int32 accumulator
 * (no overflow is possible below 65536 talkers) and derives each listener's
 * output from the sum by subtracting that listener's own frame, saturating
 * to int16 only at the end. The alternative, summing N-1 frames for each of
 * N legs, costs O(N^2) and was rejected.
 *
 * G.711 comes from SpanDSP's inline converters (a few bit operations per
 * sample, no tables to share between cores). Pure functions: any thread.
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

void
mix_g711_decode(enum mix_codec c, int16_t *pcm, const uint8_t *in, unsigned n)
{
	if (c == MIX_PCMA) {
		for (unsigned i = 0; i < n; i++)
			pcm[i] = alaw_to_linear(in[i]);
	} else {
		for (unsigned i = 0; i < n; i++)
			pcm[i] = ulaw_to_linear(in[i]);
	}
}

void
mix_g711_encode(enum mix_codec c, uint8_t *out, const int16_t *pcm, unsigned n)
{
	if (c == MIX_PCMA) {
		for (unsigned i = 0; i < n; i++)
			out[i] = linear_to_alaw(pcm[i]);
	} else {
		for (unsigned i = 0; i < n; i++)
			out[i] = linear_to_ulaw(pcm[i]);
	}
}
