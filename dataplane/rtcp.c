/*
 * rtcp.c - RTCP compound packets (RFC 3550 section 6): parse what a peer
 * reports, build our sender and receiver reports.
 *
 * Every packet in a compound is bounded by its own length field and the
 * datagram; a report count that does not fit its packet, a version other
 * than 2, or a first packet other than SR/RR (6.1) makes the whole
 * compound malformed. Pure functions: any thread.
 */
#include <errno.h>
#include <string.h>

#include "dataplane/dataplane.h"

#define PT_SR	200
#define PT_RR	201
#define PT_SDES 202
#define PT_BYE	203
#define BLOCK	24 /* bytes of a report block */

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void
wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
block_read(const uint8_t *p, struct dp_rtcp_block *b)
{
	uint32_t lost = rd32(p + 4) & 0xffffff;

	b->ssrc = rd32(p);
	b->fraction = p[4];
	/* 24-bit two's complement */
	b->lost = (int32_t)(lost & 0x800000 ? lost | 0xff000000u : lost);
	b->ext_seq = rd32(p + 8);
	b->jitter = rd32(p + 12);
	b->lsr = rd32(p + 16);
	b->dlsr = rd32(p + 20);
}

int
dp_rtcp_parse(const uint8_t *buf, size_t len, uint32_t about,
	      struct dp_rtcp_info *out)
{
	size_t off = 0;

	if (buf == NULL || out == NULL || len == 0)
		return -EBADMSG;
	memset(out, 0, sizeof(*out));
	while (off < len) {
		const uint8_t *p = buf + off;
		unsigned pt, rc, hdr;
		size_t plen;

		if (len - off < 4 || (p[0] >> 6) != 2)
			return -EBADMSG;
		rc = p[0] & 0x1f;
		pt = p[1];
		plen = 4 * ((size_t)(p[2] << 8 | p[3]) + 1);
		if (plen > len - off)
			return -EBADMSG;
		if (off == 0 && pt != PT_SR && pt != PT_RR)
			return -EBADMSG;
		if (pt == PT_SR || pt == PT_RR) {
			hdr = pt == PT_SR ? 28 : 8;
			if (plen < hdr + (size_t)rc * BLOCK)
				return -EBADMSG;
			if (off == 0)
				out->ssrc = rd32(p + 4);
			if (pt == PT_SR) {
				out->sr = true;
				out->ntp = (uint64_t)rd32(p + 8) << 32 |
					   rd32(p + 12);
				out->rtp_ts = rd32(p + 16);
				out->packets = rd32(p + 20);
				out->octets = rd32(p + 24);
			} else {
				out->rr = true;
			}
			for (unsigned i = 0; i < rc; i++) {
				const uint8_t *b = p + hdr + (size_t)i * BLOCK;

				if (rd32(b) == about && !out->have_block) {
					block_read(b, &out->block);
					out->have_block = true;
				}
			}
		} else if (pt == PT_BYE) {
			out->bye = true;
		}
		off += plen;
	}
	return off == len ? 0 : -EBADMSG;
}

int
dp_rtcp_build(uint8_t *buf, size_t cap, uint32_t ssrc,
	      const struct dp_rtcp_info *sr, const struct dp_rtcp_block *blk,
	      const char *cname)
{
	size_t clen = cname ? strlen(cname) : 0;
	size_t head = (sr ? 28 : 8) + (blk ? BLOCK : 0);
	/* SDES: header, SSRC, CNAME item (type, length, text), END, pad. */
	size_t sdes = (8 + 2 + clen + 1 + 3) & ~(size_t)3;
	uint8_t *p = buf;

	if (buf == NULL || clen > 255 || head + sdes > cap)
		return -ENOSPC;
	memset(buf, 0, head + sdes);
	p[0] = (uint8_t)(0x80 | (blk ? 1 : 0));
	p[1] = sr ? PT_SR : PT_RR;
	p[3] = (uint8_t)(head / 4 - 1);
	wr32(p + 4, ssrc);
	if (sr) {
		wr32(p + 8, (uint32_t)(sr->ntp >> 32));
		wr32(p + 12, (uint32_t)sr->ntp);
		wr32(p + 16, sr->rtp_ts);
		wr32(p + 20, sr->packets);
		wr32(p + 24, sr->octets);
	}
	if (blk) {
		uint8_t *b = p + (sr ? 28 : 8);

		wr32(b, blk->ssrc);
		wr32(b + 4, (uint32_t)blk->lost & 0xffffff);
		b[4] = blk->fraction;
		wr32(b + 8, blk->ext_seq);
		wr32(b + 12, blk->jitter);
		wr32(b + 16, blk->lsr);
		wr32(b + 20, blk->dlsr);
	}
	p += head;
	p[0] = 0x81; /* one chunk */
	p[1] = PT_SDES;
	p[3] = (uint8_t)(sdes / 4 - 1);
	wr32(p + 4, ssrc);
	p[8] = 1; /* CNAME */
	p[9] = (uint8_t)clen;
	if (clen)
		memcpy(p + 10, cname, clen);
	/* The END item and padding are the zeros already there. */
	return (int)(head + sdes);
}
