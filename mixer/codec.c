/*
 * codec.c - a leg's codecs (see codec.h).
 *
 * G.722's RTP clock is 8000 Hz though it carries 16 kHz audio (RFC 3551
 * 4.5.2), and Opus's is always 48000 Hz whatever it encodes (RFC 7587
 * 4.1): the timestamp step comes from the codec, not from the sample
 * count. G.722 runs at 64 kbit/s: one byte carries two 16 kHz samples.
 *
 * Resampling uses speexdsp at quality 3 ("VoIP" in its scale): for speech
 * between 8 and 48 kHz the difference from higher qualities is inaudible
 * and it costs several times less. Each direction has its own resampler,
 * so its filter history runs continuously across frames.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <opus.h>
#include <speex/speex_resampler.h>

#define SPANDSP_EXPOSE_INTERNAL_STRUCTURES
#include <spandsp.h>

#include "common/common.h"
#include "mixer/codec.h"

#define RESAMPLE_QUALITY 3
#define CS_MAX_PCM	 2880 /* 60 ms at 48 kHz */

struct mix_cs {
	enum mix_codec codec;
	struct mix_leg_params p; /* the encoder settings, for comparing */
	unsigned rate;		 /* the conference's */
	unsigned codec_rate;	 /* the codec's PCM rate */
	SpeexResamplerState *rs_in, *rs_out; /* NULL: rates equal */
	g722_decode_state_t g722d;
	g722_encode_state_t g722e;
	plc_state_t plc; /* G.711, G.722: at the codec's rate */
	OpusDecoder *opd;
	OpusEncoder *ope;
	bool independent; /* the next Opus frame without prediction */
	unsigned ptime;	  /* ms a packet we send */
	/* PCM at the conference rate waiting for a packet of ptime ms
	 * (ptime other than the tick's 20 ms only), and the RTP timestamp
	 * of its first sample. */
	int16_t *txq;
	unsigned txq_len;
	uint32_t txq_ts;
	int16_t tmp[CS_MAX_PCM];	/* PCM at the codec's rate */
	int16_t nb[CS_MAX_PCM / 2 + 1]; /* G.722's, halved for the PLC */
};

static unsigned
codec_rate(enum mix_codec c, unsigned rate)
{
	switch (c) {
	case MIX_G722:
		return 16000;
	case MIX_OPUS:
		return rate;
	default:
		return 8000;
	}
}

int
mix_cs_alloc(struct mix_cs **csp, const struct mix_leg_params *p, unsigned rate)
{
	struct mix_cs *cs;
	int err = 0;

	if (csp == NULL || p == NULL || p->codec >= MIX_CODEC_COUNT ||
	    (rate != 8000 && rate != 16000 && rate != 24000 && rate != 48000) ||
	    !mix_ptime_valid(p->codec,
			     p->ptime_ms ? p->ptime_ms : MIX_PTIME_MS))
		return EINVAL;
	cs = fc_big_alloc(sizeof(*cs));
	if (cs == NULL)
		return ENOMEM;
	cs->codec = p->codec;
	cs->p = *p;
	cs->rate = rate;
	cs->ptime = p->ptime_ms ? p->ptime_ms : MIX_PTIME_MS;
	if (cs->ptime != MIX_PTIME_MS) {
		/* Up to a packet less a sample, and the tick's frame. */
		cs->txq =
			calloc((size_t)rate * (cs->ptime + MIX_PTIME_MS) / 1000,
			       sizeof(*cs->txq));
		if (cs->txq == NULL) {
			err = ENOMEM;
			goto out;
		}
	}
	cs->codec_rate = codec_rate(p->codec, rate);
	if (cs->codec_rate != rate) {
		int e1 = 0, e2 = 0;

		cs->rs_in = speex_resampler_init(1, cs->codec_rate, rate,
						 RESAMPLE_QUALITY, &e1);
		cs->rs_out = speex_resampler_init(1, rate, cs->codec_rate,
						  RESAMPLE_QUALITY, &e2);
		if (cs->rs_in == NULL || cs->rs_out == NULL) {
			err = ENOMEM;
			goto out;
		}
	}
	if (p->codec != MIX_OPUS && plc_init(&cs->plc) == NULL) {
		err = ENOMEM;
		goto out;
	}
	switch (p->codec) {
	case MIX_G722:
		if (g722_decode_init(&cs->g722d, 64000, 0) == NULL ||
		    g722_encode_init(&cs->g722e, 64000, 0) == NULL)
			err = ENOMEM;
		break;
	case MIX_OPUS:
		cs->opd = malloc((size_t)opus_decoder_get_size(1));
		cs->ope = malloc((size_t)opus_encoder_get_size(1));
		if (cs->opd == NULL || cs->ope == NULL) {
			err = ENOMEM;
			break;
		}
		if (opus_decoder_init(cs->opd, (opus_int32)rate, 1) !=
			    OPUS_OK ||
		    opus_encoder_init(cs->ope, (opus_int32)rate, 1,
				      OPUS_APPLICATION_VOIP) != OPUS_OK) {
			err = EINVAL;
			break;
		}
		/* An explicit bitrate: left to itself, libopus picks about
		 * 19 kbit/s at 16 kHz and, with FEC on, drops to mediumband
		 * to afford it. These keep each rate's full band with FEC;
		 * the peer's maxaveragebitrate caps them. */
		{
			opus_int32 br = rate <= 8000	? 20000
					: rate <= 16000 ? 32000
					: rate <= 24000 ? 40000
							: 48000;

			if (p->opus_bitrate && p->opus_bitrate < (unsigned)br)
				br = (opus_int32)p->opus_bitrate;
			opus_encoder_ctl(cs->ope, OPUS_SET_BITRATE(br));
		}
		opus_encoder_ctl(cs->ope, OPUS_SET_INBAND_FEC(p->opus_fec));
		if (p->opus_fec)
			opus_encoder_ctl(cs->ope,
					 OPUS_SET_PACKET_LOSS_PERC(10));
		opus_encoder_ctl(cs->ope, OPUS_SET_DTX(p->opus_dtx));
		opus_encoder_ctl(cs->ope, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
		if (p->opus_maxrate)
			opus_encoder_ctl(
				cs->ope,
				OPUS_SET_MAX_BANDWIDTH(
					p->opus_maxrate <= 8000
						? OPUS_BANDWIDTH_NARROWBAND
					: p->opus_maxrate <= 12000
						? OPUS_BANDWIDTH_MEDIUMBAND
					: p->opus_maxrate <= 16000
						? OPUS_BANDWIDTH_WIDEBAND
					: p->opus_maxrate <= 24000
						? OPUS_BANDWIDTH_SUPERWIDEBAND
						: OPUS_BANDWIDTH_FULLBAND));
		break;
	default:
		break;
	}
out:
	if (err) {
		mix_cs_free(cs);
		return err;
	}
	*csp = cs;
	return 0;
}

void
mix_cs_free(struct mix_cs *cs)
{
	if (cs == NULL)
		return;
	if (cs->rs_in)
		speex_resampler_destroy(cs->rs_in);
	if (cs->rs_out)
		speex_resampler_destroy(cs->rs_out);
	free(cs->opd);
	free(cs->ope);
	free(cs->txq);
	fc_big_free(cs, sizeof(*cs));
}

bool
mix_cs_same_encoder(const struct mix_cs *a, const struct mix_cs *b)
{
	if (a->codec != b->codec || a->rate != b->rate || a->ptime != b->ptime)
		return false;
	if (a->codec != MIX_OPUS)
		return true;
	return a->p.opus_fec == b->p.opus_fec &&
	       a->p.opus_dtx == b->p.opus_dtx &&
	       a->p.opus_maxrate == b->p.opus_maxrate &&
	       a->p.opus_bitrate == b->p.opus_bitrate;
}

void
mix_cs_independent_next(struct mix_cs *cs)
{
	if (cs->codec == MIX_OPUS)
		cs->independent = true;
}

bool
mix_cs_stateful(const struct mix_cs *cs)
{
	return cs->codec == MIX_G722 || cs->codec == MIX_OPUS;
}

void
mix_cs_copy_encoder(struct mix_cs *dst, const struct mix_cs *src)
{
	/* libopus keeps its sub-states at offsets, not pointers, so a
	 * state is copied with memcpy; SpanDSP's G.722 state is plain. */
	if (src->codec == MIX_OPUS && dst->ope && src->ope)
		memcpy(dst->ope, src->ope, (size_t)opus_encoder_get_size(1));
	else if (src->codec == MIX_G722)
		dst->g722e = src->g722e;
}

unsigned
mix_cs_ptime(const struct mix_cs *cs)
{
	return cs->ptime;
}

int
mix_cs_txq(struct mix_cs *cs, const int16_t *pcm, unsigned n, uint32_t ts,
	   uint8_t *out, unsigned cap, uint32_t *pkt_ts)
{
	unsigned want = cs->rate * cs->ptime / 1000;

	if (cs->txq == NULL)
		return -1;
	if (pcm) {
		/* What waits from before a gap in the ticks sent (the leg was
		 * deaf, held) would carry a stale time: it goes. */
		if (cs->txq_len &&
		    ts != cs->txq_ts + cs->txq_len * mix_cs_ts_per_ms(cs) *
					       1000 / cs->rate)
			cs->txq_len = 0;
		if (cs->txq_len == 0)
			cs->txq_ts = ts;
		if (n > want + cs->rate * MIX_PTIME_MS / 1000 - cs->txq_len)
			return -1; /* more than a tick: not ours */
		memcpy(cs->txq + cs->txq_len, pcm, n * sizeof(*pcm));
		cs->txq_len += n;
	}
	if (cs->txq_len < want)
		return -2;
	*pkt_ts = cs->txq_ts;
	cs->txq_ts += cs->ptime * mix_cs_ts_per_ms(cs);
	cs->txq_len -= want;
	{
		int len = mix_cs_encode(cs, cs->txq, want, out, cap);

		memmove(cs->txq, cs->txq + want,
			cs->txq_len * sizeof(*cs->txq));
		return len;
	}
}

unsigned
mix_cs_ts_per_ms(const struct mix_cs *cs)
{
	return cs->codec == MIX_OPUS ? 48 : 8;
}

/* 16 kHz to 8 kHz for the PLC's history: pairs averaged (its input only
 * shapes the concealment; no filter needed beyond that). */
static int
halve(int16_t *out, const int16_t *in, unsigned n)
{
	for (unsigned i = 0; i < n / 2; i++)
		out[i] = (int16_t)(((int32_t)in[2 * i] + in[2 * i + 1]) / 2);
	return (int)(n / 2);
}

/* tmp (n samples at the codec rate) to pcm at the conference rate. */
static int
to_rate(struct mix_cs *cs, unsigned n, int16_t *pcm, unsigned cap)
{
	spx_uint32_t in_len = n, out_len = cap;

	if (cs->rs_in == NULL) {
		if (n > cap)
			n = cap;
		memcpy(pcm, cs->tmp, n * sizeof(*pcm));
		return (int)n;
	}
	speex_resampler_process_int(cs->rs_in, 0, cs->tmp, &in_len, pcm,
				    &out_len);
	return (int)out_len;
}

int
mix_cs_decode(struct mix_cs *cs, const uint8_t *payload, unsigned len,
	      int16_t *pcm, unsigned cap)
{
	int n;

	switch (cs->codec) {
	case MIX_PCMU:
	case MIX_PCMA:
		if (cs->rs_in == NULL) {
			/* At 8 kHz: straight into the caller's buffer. */
			if (len > cap)
				len = cap;
			mix_g711_decode(cs->codec, pcm, payload, len);
			plc_rx(&cs->plc, pcm, (int)len);
			return (int)len;
		}
		if (len > CS_MAX_PCM)
			len = CS_MAX_PCM;
		mix_g711_decode(cs->codec, cs->tmp, payload, len);
		plc_rx(&cs->plc, cs->tmp, (int)len);
		return to_rate(cs, len, pcm, cap);
	case MIX_G722:
		if (len > CS_MAX_PCM / 2)
			len = CS_MAX_PCM / 2;
		n = g722_decode(&cs->g722d, cs->tmp, payload, (int)len);
		if (n < 0)
			return -1;
		plc_rx(&cs->plc, cs->nb, halve(cs->nb, cs->tmp, (unsigned)n));
		return to_rate(cs, (unsigned)n, pcm, cap);
	case MIX_OPUS:
		if (len == 0)
			return -1; /* no TOC byte: not an Opus packet */
		n = opus_decode(cs->opd, payload, (opus_int32)len, pcm,
				(int)cap, 0);
		return n < 0 ? -1 : n;
	default:
		return -1;
	}
}

void
mix_cs_prefetch(const struct mix_cs *cs)
{
	const char *h = (const char *)cs->plc.history;

	__builtin_prefetch(&cs->codec);
	__builtin_prefetch(&cs->rs_in);
	if (cs->codec == MIX_OPUS)
		return;
	/* The PLC's history, which every decoded frame goes into. */
	__builtin_prefetch(&cs->plc.missing_samples, 1);
	for (size_t off = 0; off < sizeof(cs->plc.history); off += 64)
		__builtin_prefetch(h + off, 1);
	__builtin_prefetch(&cs->plc.buf_ptr, 1);
}

int
mix_cs_samples(const struct mix_cs *cs, const uint8_t *payload, unsigned len)
{
	int n;

	switch (cs->codec) {
	case MIX_PCMU:
	case MIX_PCMA:
		return cs->rs_in ? -1 : (int)len;
	case MIX_OPUS:
		if (len == 0)
			return -1;
		n = opus_packet_get_nb_samples(payload, (opus_int32)len,
					       (opus_int32)cs->rate);
		return n < 0 ? -1 : n;
	default:
		return -1; /* G.722: through tmp whatever the rate */
	}
}

/*
 * Opus (RFC 6716): a SILK or hybrid packet (TOC config 0-15) of one frame
 * (code 0) of at most 20 ms carries one SILK frame, whose first coded
 * symbol is its voice activity flag (4.2.3), decoded with probability
 * 1/2. The range decoder starts from the first byte after the TOC (4.1.1:
 * val = 127 - (b0 >> 1), scaled to rng = 2^31), so the flag is 1 exactly
 * when that byte's top bit is set: no decoder is needed to read it. CELT
 * packets have no such flag. DTX frames (2 bytes or less) are silent.
 */
bool
mix_cs_silent(const struct mix_cs *cs, const uint8_t *payload, unsigned len)
{
	unsigned config;

	if (cs->codec != MIX_OPUS || len == 0)
		return false;
	if (len <= 2)
		return true;
	config = payload[0] >> 3;
	if ((payload[0] & 3) != 0 || config >= 16)
		return false;
	/* SILK 10/20/40/60 ms by config & 3; hybrid 10/20 by config & 1. */
	if (config < 12 && (config & 3) > 1)
		return false;
	return (payload[1] & 0x80) == 0;
}

/*
 * SpanDSP 0.0.6's plc_fillin first rotates its history into order with a
 * memcpy whose ranges overlap when 0 < buf_ptr < half the history
 * (undefined behaviour; memmove was meant), which G.711's 160-sample
 * packets reach three times in seven. The same rotation, done here with
 * memmove, leaves buf_ptr 0 and plc_fillin's own a no-op.
 */
static void
plc_normalise(plc_state_t *p)
{
	int16_t tmp[PLC_HISTORY_LEN];
	int k = p->buf_ptr;

	if (k <= 0 || k >= PLC_HISTORY_LEN)
		return;
	memcpy(tmp, p->history, (size_t)k * sizeof(tmp[0]));
	memmove(p->history, p->history + k,
		(size_t)(PLC_HISTORY_LEN - k) * sizeof(tmp[0]));
	memcpy(p->history + PLC_HISTORY_LEN - k, tmp,
	       (size_t)k * sizeof(tmp[0]));
	p->buf_ptr = 0;
}

int
mix_cs_conceal(struct mix_cs *cs, const uint8_t *fec, unsigned fec_len,
	       int16_t *pcm, unsigned n)
{
	unsigned k;
	int r;

	if (n > CS_MAX_PCM)
		n = CS_MAX_PCM;
	/* At the codec's rate it must fit tmp too (G.722 in an 8 kHz
	 * conference doubles it). */
	if ((uint64_t)n * cs->codec_rate / cs->rate > CS_MAX_PCM)
		n = (unsigned)((uint64_t)CS_MAX_PCM * cs->rate /
			       cs->codec_rate);
	if (cs->codec == MIX_OPUS) {
		r = fec ? opus_decode(cs->opd, fec, (opus_int32)fec_len, pcm,
				      (int)n, 1)
			: -1;
		if (r < 0) /* no FEC in it, or none given: Opus's PLC */
			r = opus_decode(cs->opd, NULL, 0, pcm, (int)n, 0);
		if (r < 0) {
			memset(pcm, 0, n * sizeof(*pcm));
			r = (int)n;
		}
		return r;
	}
	k = (unsigned)((uint64_t)n * cs->codec_rate / cs->rate);
	if (cs->plc.missing_samples == 0)
		plc_normalise(&cs->plc); /* a new gap: see plc_normalise */
	if (cs->codec == MIX_G722) {
		/* SpanDSP's PLC is built for 8 kHz (pitch range, a 50 ms
		 * fade): it runs on G.722's audio halved, and its output is
		 * doubled back; a concealed frame has no upper band. */
		plc_fillin(&cs->plc, cs->nb, (int)(k / 2));
		for (unsigned i = 0; i < k / 2; i++) {
			int16_t a = cs->nb[i],
				b = i + 1 < k / 2 ? cs->nb[i + 1] : a;

			cs->tmp[2 * i] = a;
			cs->tmp[2 * i + 1] = (int16_t)(((int32_t)a + b) / 2);
		}
	} else {
		plc_fillin(&cs->plc, cs->tmp, (int)k);
	}
	return to_rate(cs, k, pcm, n);
}

int
mix_cs_encode(struct mix_cs *cs, const int16_t *pcm, unsigned n, uint8_t *out,
	      unsigned cap)
{
	const int16_t *src = pcm;
	spx_uint32_t in_len = n, out_len = CS_MAX_PCM;
	opus_int32 r;

	if (cs->codec == MIX_OPUS) {
		if (cs->independent)
			opus_encoder_ctl(cs->ope,
					 OPUS_SET_PREDICTION_DISABLED(1));
		r = opus_encode(cs->ope, pcm, (int)n, out, (opus_int32)cap);
		if (cs->independent) {
			opus_encoder_ctl(cs->ope,
					 OPUS_SET_PREDICTION_DISABLED(0));
			cs->independent = false;
		}
		if (r < 0)
			return -1;
		/* With DTX, a packet of 2 bytes or less need not be sent. */
		return r <= 2 ? 0 : (int)r;
	}
	if (cs->rs_out) {
		speex_resampler_process_int(cs->rs_out, 0, pcm, &in_len,
					    cs->tmp, &out_len);
		src = cs->tmp;
		n = out_len;
	}
	switch (cs->codec) {
	case MIX_PCMU:
	case MIX_PCMA:
		if (n > cap)
			n = cap;
		mix_g711_encode(cs->codec, out, src, n);
		return (int)n;
	case MIX_G722:
		if (n / 2 > cap)
			n = cap * 2;
		return g722_encode(&cs->g722e, out, src, (int)n);
	default:
		return -1;
	}
}
