/*
 * jbuf.h - a leg's adaptive jitter buffer (mixer-private).
 *
 * Holds RTP payloads, still encoded, in sequence-number order so that the
 * codec can use what comes after a loss (Opus in-band FEC) and conceal
 * what never comes. The worker puts every packet of the leg's stream in
 * as it arrives and takes one packet's worth out each time the leg's PCM
 * runs short.
 *
 * Depth adapts to the measured interarrival jitter (RFC 3550 A.8):
 * playout starts once the buffer holds the target number of packets,
 * which is three jitters plus one packet, within [min_ms, max_ms]; when
 * the buffer stays above target for a second (the sender's clock runs
 * faster than ours, or the jitter calmed down), one packet is dropped;
 * when it runs dry (slower clock, a burst), the codec conceals and
 * playout waits for the target again. Late packets (already played or
 * concealed) and duplicates are dropped; a sequence jump larger than the
 * buffer, or a new SSRC, restarts it.
 *
 * Memory: the caller allocates mix_jb_size() bytes (control thread) and
 * calls mix_jb_init; put and get run on the worker and allocate nothing.
 */
#ifndef FOCUSD_MIXER_JBUF_H
#define FOCUSD_MIXER_JBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JB_SLOTS       32   /* packets held at most: power of two */
#define JB_MAX_PAYLOAD 1000 /* bytes of one payload */

struct mix_jb;

struct mix_jb_stats {
	uint64_t late;	    /* arrived after its turn */
	uint64_t dups;	    /* the same sequence number again */
	uint64_t lost;	    /* never came: concealed */
	uint64_t dropped;   /* dropped to shrink the delay (skew) */
	uint64_t underruns; /* ran dry while playing */
	uint64_t resets;    /* jumps and new SSRCs */
	unsigned jitter_ms; /* current estimate */
	uint32_t jitter_ts; /* the same in RTP units (RFC 3550 A.8's J) */
	unsigned target;    /* packets playout waits for */
	unsigned depth;	    /* packets held now */
};

/* mix_jb_put's flags. */
#define JB_MARKER 1 /* the RTP marker bit: a talkspurt's first packet */
#define JB_SILENT 2 /* the packet says its sender is silent */

enum mix_jb_get {
	JB_PACKET,	  /* payload and len: the next packet, in order */
	JB_SILENT_PACKET, /* the same, for one put with JB_SILENT: the
			     caller decides at playout whether to decode */
	JB_LOST,	  /* the next packet is missing: conceal one packet's
		      worth; payload and len: the one after it, if held,
		      for FEC (else NULL) */
	JB_DRY,		  /* playing, but nothing held: conceal or wait */
	JB_WAIT,	  /* not playing: filling up to the target */
};

size_t mix_jb_size(void);
/* clock: the RTP clock rate; min_ms/max_ms bound the target depth. */
void mix_jb_init(struct mix_jb *jb, unsigned clock, unsigned min_ms,
		 unsigned max_ms);
void mix_jb_reset(struct mix_jb *jb);
/*
 * A packet of the stream: arrival in ns of a monotonic clock; flags:
 * JB_MARKER, its RTP marker bit (the first packet of a talkspurt: the
 * timestamps before it skipped a silence, which says nothing of the
 * packet duration), JB_SILENT (handed back as JB_SILENT_PACKET).
 * payload NULL: the sequence number carried something else in the
 * stream (an RFC 4733 event): a place held without audio (get returns
 * it as a packet of length 0), and no timing measured from it.
 * Returns 0, or 1 when it was late or a duplicate and was dropped.
 */
int mix_jb_put(struct mix_jb *jb, uint32_t ssrc, uint16_t seq, uint32_t ts,
	       unsigned flags, const uint8_t *payload, unsigned len,
	       uint64_t arrival_ns);
/* The next packet's worth; payload points into the buffer until the
 * next put or get. */
enum mix_jb_get mix_jb_get(struct mix_jb *jb, const uint8_t **payload,
			   unsigned *len);
/*
 * Ask the CPU for what the next get reads, without waiting for it: first
 * the buffer's head (mix_jb_prefetch_head), then, once that has come, step
 * 0 the slot it plays from, then step 1 the slot's payload.
 */
void mix_jb_prefetch_head(const struct mix_jb *jb);
void mix_jb_prefetch(const struct mix_jb *jb, int step);
/* The same for a put of seq, after the head: its slot and the payload
 * buffer it takes. */
void mix_jb_prefetch_put(const struct mix_jb *jb, uint16_t seq);
/* RTP timestamp units per packet, as the stream shows it (0: unknown). */
unsigned mix_jb_ptime_ts(const struct mix_jb *jb);
void mix_jb_stats(const struct mix_jb *jb, struct mix_jb_stats *st);

#endif
