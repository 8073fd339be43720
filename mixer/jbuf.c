/*
 * jbuf.c - a leg's adaptive jitter buffer (see jbuf.h).
 *
 * Slots are indexed by sequence number modulo JB_SLOTS; `next` is the
 * sequence number playout takes next, `high` the highest received. All
 * sequence arithmetic is 16-bit and signed by difference, so wrap-around
 * needs no special case. The jitter estimate is RFC 3550 A.8's, kept in
 * RTP timestamp units scaled by 16.
 *
 * Payloads live apart from the slots, in JB_SLOTS buffers handed out from
 * a stack, most recently freed first: a leg in steady state writes and
 * reads the same two or three buffers tick after tick, and they stay in
 * cache. (Slot-indexed payloads walked the whole 32 KB, one cold buffer a
 * packet, which at tens of thousands of legs is a trip to memory each.)
 */
#include <stddef.h>
#include <string.h>

#include "mixer/jbuf.h"

#define SHRINK_GETS 50 /* gets above target before one packet goes */

struct jb_slot {
	uint16_t seq;
	uint16_t len;
	uint32_t ts;
	bool used;
	bool silent; /* put with JB_SILENT */
	uint8_t buf; /* its payload: data[buf] */
};

struct mix_jb {
	unsigned clock;
	unsigned min_ms, max_ms;
	bool have_ssrc;
	uint32_t ssrc;
	bool have_next;
	uint16_t next, high;
	bool playing;
	bool played; /* playout ran since the last restart */
	unsigned count;
	unsigned target;
	unsigned above; /* consecutive gets with count > target + 1 */
	/* jitter */
	bool have_transit;
	uint32_t transit;  /* arrival - ts, in RTP units, modulo 2^32 */
	uint64_t jitter16; /* RTP units * 16 */
	/* packet duration */
	bool have_last;
	uint16_t last_seq;
	uint32_t last_ts;
	unsigned ptime_ts;
	unsigned n_free;
	uint8_t free[JB_SLOTS]; /* buffers not held, the next on top */
	struct mix_jb_stats st;
	struct jb_slot slots[JB_SLOTS];
	uint8_t data[JB_SLOTS][JB_MAX_PAYLOAD];
};

size_t
mix_jb_size(void)
{
	return sizeof(struct mix_jb);
}

static void
flush(struct mix_jb *jb)
{
	for (unsigned i = 0; i < JB_SLOTS; i++) {
		jb->slots[i].used = false;
		jb->free[i] = (uint8_t)(JB_SLOTS - 1 - i); /* 0 on top */
	}
	jb->n_free = JB_SLOTS;
	jb->count = 0;
	jb->have_next = false;
	jb->playing = false;
	jb->played = false;
	jb->above = 0;
}

void
mix_jb_init(struct mix_jb *jb, unsigned clock, unsigned min_ms, unsigned max_ms)
{
	memset(jb, 0, sizeof(*jb));
	jb->clock = clock ? clock : 8000;
	jb->min_ms = min_ms;
	jb->max_ms = max_ms > min_ms ? max_ms : min_ms;
	jb->target = 2;
	flush(jb);
}

void
mix_jb_reset(struct mix_jb *jb)
{
	flush(jb);
	jb->have_ssrc = false;
	jb->have_transit = false;
	jb->have_last = false;
	jb->st.resets++;
}

/* Target depth in packets from the jitter and the packet duration. */
static void
retarget(struct mix_jb *jb)
{
	uint64_t ptime = jb->ptime_ts ? jb->ptime_ts : jb->clock / 50;
	uint64_t want = 3 * jb->jitter16 / 16 + ptime; /* RTP units */
	uint64_t lo = (uint64_t)jb->min_ms * jb->clock / 1000;
	uint64_t hi = (uint64_t)jb->max_ms * jb->clock / 1000;
	unsigned pkts;

	if (want < lo)
		want = lo;
	if (want > hi)
		want = hi;
	pkts = (unsigned)((want + ptime - 1) / ptime);
	if (pkts < 1)
		pkts = 1;
	if (pkts > JB_SLOTS / 2)
		pkts = JB_SLOTS / 2;
	jb->target = pkts;
}

static void
measure(struct mix_jb *jb, uint16_t seq, uint32_t ts, bool marker,
	uint64_t arrival_ns)
{
	uint32_t arrival = (uint32_t)(arrival_ns / 1000 * jb->clock / 1000000);
	uint32_t transit = arrival - ts; /* both wrap: so does this */
	int64_t d;

	if (jb->have_transit) {
		d = (int32_t)(transit - jb->transit);
		if (d < 0)
			d = -d;
		/* J += (|D| - J) / 16, in units of 1/16 */
		jb->jitter16 += (uint64_t)d - ((jb->jitter16 + 8) >> 4);
	}
	jb->have_transit = true;
	jb->transit = transit;
	if (!marker && jb->have_last && (uint16_t)(jb->last_seq + 1) == seq) {
		uint32_t dt = ts - jb->last_ts;

		if (dt > 0 && dt <= jb->clock / 5) /* up to 200 ms */
			jb->ptime_ts = dt;
	}
	jb->have_last = true;
	jb->last_seq = seq;
	jb->last_ts = ts;
	retarget(jb);
}

int
mix_jb_put(struct mix_jb *jb, uint32_t ssrc, uint16_t seq, uint32_t ts,
	   unsigned flags, const uint8_t *payload, unsigned len,
	   uint64_t arrival_ns)
{
	struct jb_slot *s;
	int16_t d;

	if (jb->have_ssrc && ssrc != jb->ssrc)
		mix_jb_reset(jb); /* a new source: start over */
	jb->have_ssrc = true;
	jb->ssrc = ssrc;
	if (!jb->have_next) {
		jb->have_next = true;
		jb->next = jb->high = seq;
	}
	d = (int16_t)(seq - jb->next);
	if (d < 0 && !jb->played && (int16_t)(jb->high - seq) < JB_SLOTS) {
		/* Not playing yet: an earlier packet arriving late still
		 * comes first. */
		jb->next = seq;
		d = 0;
	}
	if (d < 0 && d > -(int16_t)(4 * JB_SLOTS)) {
		jb->st.late++;
		return 1;
	}
	if (d < 0 || d >= JB_SLOTS) {
		/* A jump either way: the sender started over. */
		flush(jb);
		jb->st.resets++;
		jb->have_next = true;
		jb->next = jb->high = seq;
		jb->have_transit = false;
		jb->have_last = false;
	}
	s = &jb->slots[seq & (JB_SLOTS - 1)];
	if (s->used && s->seq == seq) {
		jb->st.dups++;
		return 1;
	}
	if (payload == NULL)
		len = 0;
	if (len > JB_MAX_PAYLOAD)
		len = JB_MAX_PAYLOAD;
	if (!s->used) {
		jb->count++;
		s->buf = jb->free[--jb->n_free];
	}
	s->used = true;
	s->seq = seq;
	s->ts = ts;
	s->len = (uint16_t)len;
	s->silent = (flags & JB_SILENT) != 0;
	if (len)
		memcpy(jb->data[s->buf], payload, len);
	if ((int16_t)(seq - jb->high) > 0)
		jb->high = seq;
	if (payload)
		measure(jb, seq, ts, (flags & JB_MARKER) != 0, arrival_ns);
	return 0;
}

static struct jb_slot *
slot_of(struct mix_jb *jb, uint16_t seq)
{
	struct jb_slot *s = &jb->slots[seq & (JB_SLOTS - 1)];

	return s->used && s->seq == seq ? s : NULL;
}

/* Slot s leaves the buffer. */
static void
release(struct mix_jb *jb, struct jb_slot *s)
{
	s->used = false;
	jb->count--;
	jb->free[jb->n_free++] = s->buf;
}

/* Slot s, held, is played now: playout goes on after it. */
static enum mix_jb_get
take(struct mix_jb *jb, struct jb_slot *s, const uint8_t **payload,
     unsigned *len)
{
	release(jb, s);
	jb->next = (uint16_t)(s->seq + 1);
	*payload = jb->data[s->buf];
	*len = s->len;
	return s->silent ? JB_SILENT_PACKET : JB_PACKET;
}

enum mix_jb_get
mix_jb_get(struct mix_jb *jb, const uint8_t **payload, unsigned *len)
{
	struct jb_slot *s, *after;

	*payload = NULL;
	*len = 0;
	if (!jb->playing) {
		if (!jb->have_next || jb->count < jb->target)
			return JB_WAIT;
		jb->playing = true;
		jb->above = 0;
		/* Start at the oldest packet held; after a dry spell, what
		 * is skipped never came. */
		while (slot_of(jb, jb->next) == NULL) {
			jb->next++;
			if (jb->played)
				jb->st.lost++;
		}
		jb->played = true;
	}
	if (jb->count > jb->target + 1) {
		if (++jb->above >= SHRINK_GETS) {
			/* A packet too many for a second: one goes. */
			jb->above = 0;
			s = slot_of(jb, jb->next);
			if (s)
				release(jb, s);
			jb->next++;
			jb->st.dropped++;
		}
	} else {
		jb->above = 0;
	}
	s = slot_of(jb, jb->next);
	if (s)
		return take(jb, s, payload, len);
	if (jb->count > 0) {
		uint16_t oldest = jb->next;

		while (slot_of(jb, oldest) == NULL)
			oldest++;
		if ((uint16_t)(oldest - jb->next) > 3) {
			/* A burst, or the sender renumbered: concealing
			 * each would add its length as delay. Skip to what
			 * is here; the gap is counted, not played. */
			jb->st.lost += (uint16_t)(oldest - jb->next);
			return take(jb, slot_of(jb, oldest), payload, len);
		}
		/* Something newer is here: this one is lost. */
		jb->next++;
		jb->st.lost++;
		after = slot_of(jb, jb->next);
		if (after) {
			*payload = jb->data[after->buf];
			*len = after->len;
		}
		return JB_LOST;
	}
	jb->st.underruns++;
	jb->playing = false;
	return JB_DRY;
}

void
mix_jb_prefetch_head(const struct mix_jb *jb)
{
	/* Everything before the counters: what put and get read first. */
	for (size_t off = 0; off < offsetof(struct mix_jb, st); off += 64)
		__builtin_prefetch((const char *)jb + off, 1);
}

void
mix_jb_prefetch(const struct mix_jb *jb, int step)
{
	const struct jb_slot *s = &jb->slots[jb->next & (JB_SLOTS - 1)];

	if (step == 0) {
		__builtin_prefetch(s, 1);
		return;
	}
	if (!s->used || s->seq != jb->next)
		return;
	for (unsigned off = 0; off < s->len && off < 256; off += 64)
		__builtin_prefetch(jb->data[s->buf] + off);
}

void
mix_jb_prefetch_put(const struct mix_jb *jb, uint16_t seq)
{
	__builtin_prefetch(&jb->slots[seq & (JB_SLOTS - 1)], 1);
	if (jb->n_free > 0) {
		const uint8_t *d = jb->data[jb->free[jb->n_free - 1]];

		for (unsigned off = 0; off < 256; off += 64)
			__builtin_prefetch(d + off, 1);
	}
}

unsigned
mix_jb_ptime_ts(const struct mix_jb *jb)
{
	return jb->ptime_ts;
}

void
mix_jb_stats(const struct mix_jb *jb, struct mix_jb_stats *st)
{
	*st = jb->st;
	st->jitter_ms = (unsigned)(jb->jitter16 / 16 * 1000 / jb->clock);
	st->jitter_ts = (uint32_t)(jb->jitter16 / 16);
	st->target = jb->target;
	st->depth = jb->count;
}
