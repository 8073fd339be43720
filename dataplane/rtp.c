/*
 * rtp.c - RTP header parsing and building (RFC 3550 section 5.1).
 *
 * Pure functions on byte buffers, shared by every port and by the mixer.
 * Parsing checks every length against the buffer before reading it, so a
 * packet from the network can be anything. Cost: a few dozen instructions
 * per packet, no branches on the common 12-byte header beyond the checks.
 */
#include <errno.h>
#include <string.h>

#include "dataplane/dataplane.h"

int
dp_rtp_parse(const uint8_t *buf, size_t len, struct dp_rtp_hdr *h)
{
	size_t off, end;

	if (buf == NULL || h == NULL || len < DP_RTP_HDR_MIN)
		return -EBADMSG;

	h->version = buf[0] >> 6;
	if (h->version != 2)
		return -EBADMSG;
	h->padding = (buf[0] >> 5) & 1;
	h->extension = (buf[0] >> 4) & 1;
	h->cc = buf[0] & 0x0f;
	h->marker = buf[1] >> 7;
	h->pt = buf[1] & 0x7f;
	h->seq = (uint16_t)(buf[2] << 8 | buf[3]);
	h->ts = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 |
		(uint32_t)buf[6] << 8 | buf[7];
	h->ssrc = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 |
		  (uint32_t)buf[10] << 8 | buf[11];

	off = DP_RTP_HDR_MIN + 4u * h->cc;
	if (off > len)
		return -EBADMSG;
	if (h->extension) {
		size_t words;

		if (off + 4 > len)
			return -EBADMSG;
		words = (size_t)(buf[off + 2] << 8 | buf[off + 3]);
		off += 4 + 4 * words;
		if (off > len)
			return -EBADMSG;
	}
	end = len;
	if (h->padding) {
		uint8_t pad = buf[len - 1];

		if (pad == 0 || off + pad > len)
			return -EBADMSG;
		end -= pad;
	}
	h->hdr_len = (uint16_t)off;
	h->payload_len = (uint16_t)(end - off);
	return 0;
}

int
dp_rtp_build(uint8_t *buf, size_t cap, uint8_t pt, bool marker, uint16_t seq,
	     uint32_t ts, uint32_t ssrc)
{
	if (buf == NULL || cap < DP_RTP_HDR_MIN)
		return -ENOSPC;
	buf[0] = 0x80;
	buf[1] = (uint8_t)((marker ? 0x80 : 0) | (pt & 0x7f));
	buf[2] = (uint8_t)(seq >> 8);
	buf[3] = (uint8_t)seq;
	buf[4] = (uint8_t)(ts >> 24);
	buf[5] = (uint8_t)(ts >> 16);
	buf[6] = (uint8_t)(ts >> 8);
	buf[7] = (uint8_t)ts;
	buf[8] = (uint8_t)(ssrc >> 24);
	buf[9] = (uint8_t)(ssrc >> 16);
	buf[10] = (uint8_t)(ssrc >> 8);
	buf[11] = (uint8_t)ssrc;
	return DP_RTP_HDR_MIN;
}

/*
 * RFC 8285 header extensions: the one-byte form (profile 0xBEDE: 4-bit
 * ID, 4-bit length - 1; ID 0 is padding, 15 ends the list) and the
 * two-byte form (0x100X: 8-bit ID, 8-bit length; ID 0 is padding).
 */
int
dp_rtp_ext_find(const uint8_t *buf, const struct dp_rtp_hdr *h, uint8_t id,
		const uint8_t **data, unsigned *len)
{
	size_t off, end;
	unsigned profile;

	if (buf == NULL || h == NULL || !h->extension || id == 0)
		return -ENOENT;
	off = DP_RTP_HDR_MIN + 4u * h->cc;
	profile = (unsigned)(buf[off] << 8 | buf[off + 1]);
	end = h->hdr_len;
	off += 4;
	if (profile == 0xBEDE) {
		while (off < end) {
			unsigned eid = buf[off] >> 4,
				 elen = (buf[off] & 15) + 1;

			if (eid == 0) { /* padding byte */
				off++;
				continue;
			}
			if (eid == 15 || off + 1 + elen > end)
				return -ENOENT;
			if (eid == id) {
				*data = buf + off + 1;
				*len = elen;
				return 0;
			}
			off += 1 + elen;
		}
	} else if ((profile & 0xFFF0) == 0x1000) {
		while (off < end) {
			unsigned eid = buf[off], elen;

			if (eid == 0) {
				off++;
				continue;
			}
			if (off + 2 > end)
				return -ENOENT;
			elen = buf[off + 1];
			if (off + 2 + elen > end)
				return -ENOENT;
			if (eid == id) {
				*data = buf + off + 2;
				*len = elen;
				return 0;
			}
			off += 2 + elen;
		}
	}
	return -ENOENT;
}
