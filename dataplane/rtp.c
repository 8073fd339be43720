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
