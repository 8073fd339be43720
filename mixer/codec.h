/*
 * codec.h - a leg's codecs: payload to PCM at the conference's rate and
 * back (mixer-private).
 *
 * Every codec a leg may use - G.711 (PCMU, PCMA), G.722 through SpanDSP,
 * Opus - decodes into and encodes from PCM at the conference's internal
 * rate. Where the codec's own rate differs (G.711 at 8 kHz, G.722 at 16
 * kHz, in a 16, 24 or 48 kHz conference), a speexdsp resampler per
 * direction converts; Opus runs at the conference rate itself (all four
 * conference rates are Opus rates), so it never resamples.
 *
 * Memory: mix_cs_init allocates everything (Opus states through
 * opus_*_get_size and opus_*_init, the G.722 states embedded, speexdsp's
 * resamplers) and runs on the control thread; decode and encode, on the
 * worker, allocate nothing.
 */
#ifndef FOCUSD_MIXER_CODEC_H
#define FOCUSD_MIXER_CODEC_H

#include <stdbool.h>
#include <stdint.h>

#include "mixer/mixer.h"

struct mix_cs;

/* Control thread: state for p's codec in a conference of `rate` Hz. */
int mix_cs_alloc(struct mix_cs **csp, const struct mix_leg_params *p,
		 unsigned rate);
void mix_cs_free(struct mix_cs *cs);

/*
 * Worker: one RTP payload to PCM at the conference rate, into pcm (cap
 * samples). Returns the samples written, or -1 for a payload the codec
 * refuses (counted as malformed by the caller).
 */
int mix_cs_decode(struct mix_cs *cs, const uint8_t *payload, unsigned len,
		  int16_t *pcm, unsigned cap);
/*
 * Worker: the samples mix_cs_decode will write for this payload when it
 * can tell beforehand and decodes without a resampler (G.711 at 8 kHz,
 * Opus); else -1.
 */
int mix_cs_samples(const struct mix_cs *cs, const uint8_t *payload,
		   unsigned len);
/* Worker: ask the CPU for the state decoding reads and writes, without
 * waiting for it (a few legs ahead of decoding). */
void mix_cs_prefetch(const struct mix_cs *cs);
/*
 * Worker: does the payload itself say the sender is silent? Opus: a DTX
 * frame, or a SILK frame whose voice activity flag is off (the comfort
 * noise updates a DTX sender sends, and the pauses of one without DTX).
 * Read from the bitstream without decoding. Other codecs: false.
 */
bool mix_cs_silent(const struct mix_cs *cs, const uint8_t *payload,
		   unsigned len);
/*
 * Worker: one ptime of PCM at the conference rate (n samples) to a
 * payload in out (cap bytes). Returns its length; 0 means nothing to send
 * (Opus DTX), -1 an encoder failure.
 */
int mix_cs_encode(struct mix_cs *cs, const int16_t *pcm, unsigned n,
		  uint8_t *out, unsigned cap);
/*
 * Worker: n samples at the conference rate standing in for a packet that
 * never came: Opus decodes them from fec (the packet after the loss, its
 * in-band FEC) when given, else runs its own PLC; G.711 and G.722 use
 * SpanDSP's PLC, which repeats the last pitch period with a fade. Returns
 * the samples written.
 */
int mix_cs_conceal(struct mix_cs *cs, const uint8_t *fec, unsigned fec_len,
		   int16_t *pcm, unsigned n);
/* Would a and b encode the same bytes from the same PCM (same codec,
 * rate and encoder settings)? Listeners whose codecs match share one. */
bool mix_cs_same_encoder(const struct mix_cs *a, const struct mix_cs *b);
/*
 * Worker: make dst's encoder continue from src's state (G.722, Opus:
 * position-independent states, copied byte for byte; G.711 has none).
 * The two must be mix_cs_same_encoder.
 */
void mix_cs_copy_encoder(struct mix_cs *dst, const struct mix_cs *src);
/*
 * Worker: code the next frame without inter-frame prediction (Opus's
 * OPUS_SET_PREDICTION_DISABLED, for that frame only), so any decoder
 * decodes it the same whatever it decoded before. Nothing for the others
 * (G.722's ADPCM always predicts; G.711 needs it not).
 */
void mix_cs_independent_next(struct mix_cs *cs);
/* Does the codec carry state from frame to frame in its encoder? */
bool mix_cs_stateful(const struct mix_cs *cs);
/* ms of audio in each packet this state encodes for (mix_leg_params'
 * ptime_ms). */
unsigned mix_cs_ptime(const struct mix_cs *cs);
/*
 * Worker, for a ptime other than the tick's: queue this tick's n samples
 * (pcm non-NULL; ts: the RTP timestamp of its first sample), then take
 * one packet's payload out if the queue holds a ptime: its length (0:
 * Opus DTX) and in *pkt_ts its timestamp; -2 when the queue holds less
 * (call again with pcm NULL for the next packet of the same tick: a
 * 10 ms ptime sends two a tick), -1 on failure.
 */
int mix_cs_txq(struct mix_cs *cs, const int16_t *pcm, unsigned n, uint32_t ts,
	       uint8_t *out, unsigned cap, uint32_t *pkt_ts);
/* RTP timestamp units per ms of audio (8 for G.711 and G.722, 48 Opus). */
unsigned mix_cs_ts_per_ms(const struct mix_cs *cs);

#endif
