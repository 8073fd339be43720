/*
 * test_rtp.c - RTP header parsing and building (dataplane/rtp.c).
 *
 * Checks that dp_rtp_build writes the RFC 3550 fixed header byte for byte
 * and that dp_rtp_parse reads back every field, skips the CSRC list and the
 * header extension, strips padding, and rejects with -EBADMSG every packet
 * whose lengths do not add up, so that nothing from the network is read
 * past its end. Golden vectors are packets as phones and gateways send
 * them (PCMU, PCMA, RFC 4733 events, a mixer's CSRC list, an RFC 8285
 * audio-level extension, padding), written out byte by byte.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/dataplane.h"

/*
 * Parse a heap copy of exactly len bytes, so that a sanitizer build catches
 * any read past the end of the packet, even one that does not change the
 * verdict.
 */
static int
parse_exact(const uint8_t *buf, size_t len, struct dp_rtp_hdr *h)
{
	uint8_t *copy = malloc(len);
	int err;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	err = dp_rtp_parse(copy, len, h);
	free(copy);
	return err;
}

/* Parse and insist on success. */
static void
parse_ok(const uint8_t *buf, size_t len, struct dp_rtp_hdr *h)
{
	memset(h, 0xa5, sizeof(*h));
	assert_int_equal(parse_exact(buf, len, h), 0);
}

static void
parse_bad(const uint8_t *buf, size_t len)
{
	struct dp_rtp_hdr h;

	assert_int_equal(parse_exact(buf, len, &h), -EBADMSG);
}

/*
 * A 20 ms PCMU packet: seq 0x5e1f, ts 128000, SSRC 0x2f1a5c3b, carrying a
 * 1 kHz tone of amplitude 4000 (eight samples a period, twenty periods).
 */
/* clang-format off */
static const uint8_t pcmu_pkt[12 + 160] = {
	0x80, 0x00, 0x5e, 0x1f, 0x00, 0x01, 0xf4, 0x00,
	0x2f, 0x1a, 0x5c, 0x3b,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
	0xff, 0xb8, 0xaf, 0xb8, 0xff, 0x38, 0x2f, 0x38,
};
/* clang-format on */

static void
test_golden_pcmu(void **state)
{
	struct dp_rtp_hdr h;
	uint8_t hdr[DP_RTP_HDR_MIN];

	(void)state;
	parse_ok(pcmu_pkt, sizeof(pcmu_pkt), &h);
	assert_int_equal(h.version, 2);
	assert_false(h.padding);
	assert_false(h.extension);
	assert_int_equal(h.cc, 0);
	assert_false(h.marker);
	assert_int_equal(h.pt, 0);
	assert_int_equal(h.seq, 0x5e1f);
	assert_int_equal(h.ts, 128000);
	assert_int_equal(h.ssrc, 0x2f1a5c3b);
	assert_int_equal(h.hdr_len, 12);
	assert_int_equal(h.payload_len, 160);
	assert_int_equal(pcmu_pkt[h.hdr_len], 0xff);
	assert_int_equal(pcmu_pkt[h.hdr_len + 2], 0xaf);

	/* Building the same header gives the same bytes. */
	assert_int_equal(dp_rtp_build(hdr, sizeof(hdr), 0, false, 0x5e1f,
				      128000, 0x2f1a5c3b),
			 12);
	assert_memory_equal(hdr, pcmu_pkt, sizeof(hdr));
}

/* First packet of a PCMA talkspurt: marker set, payload type 8. */
/* clang-format off */
static const uint8_t pcma_marker_pkt[12 + 8] = {
	0x80, 0x88, 0x00, 0x01, 0x00, 0x00, 0x00, 0xa0,
	0xde, 0xad, 0xbe, 0xef,
	0xd5, 0xd5, 0x55, 0x55, 0xd4, 0x54, 0xd5, 0x55,
};
/* clang-format on */

static void
test_golden_pcma_marker(void **state)
{
	struct dp_rtp_hdr h;
	uint8_t hdr[DP_RTP_HDR_MIN];

	(void)state;
	parse_ok(pcma_marker_pkt, sizeof(pcma_marker_pkt), &h);
	assert_true(h.marker);
	assert_int_equal(h.pt, 8);
	assert_int_equal(h.seq, 1);
	assert_int_equal(h.ts, 160);
	assert_int_equal(h.ssrc, 0xdeadbeef);
	assert_int_equal(h.hdr_len, 12);
	assert_int_equal(h.payload_len, 8);

	assert_int_equal(
		dp_rtp_build(hdr, sizeof(hdr), 8, true, 1, 160, 0xdeadbeef),
		12);
	assert_memory_equal(hdr, pcma_marker_pkt, sizeof(hdr));
}

/* RFC 4733 telephone-event, digit 1, volume 10, duration 160, PT 101. */
/* clang-format off */
static const uint8_t dtmf_pkt[12 + 4] = {
	0x80, 0xe5, 0x0a, 0xbc, 0x00, 0x0f, 0x42, 0x40,
	0x12, 0x34, 0x56, 0x78,
	0x01, 0x0a, 0x00, 0xa0,
};
/* clang-format on */

static void
test_golden_telephone_event(void **state)
{
	struct dp_rtp_hdr h;
	uint8_t hdr[DP_RTP_HDR_MIN];

	(void)state;
	parse_ok(dtmf_pkt, sizeof(dtmf_pkt), &h);
	assert_true(h.marker);
	assert_int_equal(h.pt, 101);
	assert_int_equal(h.seq, 0x0abc);
	assert_int_equal(h.ts, 1000000);
	assert_int_equal(h.ssrc, 0x12345678);
	assert_int_equal(h.hdr_len, 12);
	assert_int_equal(h.payload_len, 4);

	assert_int_equal(dp_rtp_build(hdr, sizeof(hdr), 101, true, 0x0abc,
				      1000000, 0x12345678),
			 12);
	assert_memory_equal(hdr, dtmf_pkt, sizeof(hdr));
}

/* From a mixer: two contributing sources, then four bytes of PCMU. */
/* clang-format off */
static const uint8_t csrc_pkt[12 + 8 + 4] = {
	0x82, 0x00, 0x00, 0x07, 0x00, 0x00, 0x04, 0x60,
	0x11, 0x11, 0x11, 0x11,
	0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xbb, 0xbb,
	0xff, 0xfe, 0x7e, 0x7f,
};
/* clang-format on */

static void
test_csrc_list(void **state)
{
	struct dp_rtp_hdr h;

	(void)state;
	parse_ok(csrc_pkt, sizeof(csrc_pkt), &h);
	assert_int_equal(h.cc, 2);
	assert_false(h.extension);
	assert_int_equal(h.seq, 7);
	assert_int_equal(h.ts, 1120);
	assert_int_equal(h.ssrc, 0x11111111);
	assert_int_equal(h.hdr_len, 20);
	assert_int_equal(h.payload_len, 4);
	assert_int_equal(csrc_pkt[h.hdr_len], 0xff);
}

static void
test_csrc_max(void **state)
{
	uint8_t buf[12 + 15 * 4 + 1];
	struct dp_rtp_hdr h;

	(void)state;
	memset(buf, 0x42, sizeof(buf));
	buf[0] = 0x8f; /* CC = 15 */
	buf[1] = 0x00;
	parse_ok(buf, sizeof(buf), &h);
	assert_int_equal(h.cc, 15);
	assert_int_equal(h.hdr_len, 72);
	assert_int_equal(h.payload_len, 1);
	/* CSRCs filling the packet exactly: an empty payload is fine. */
	parse_ok(buf, 72, &h);
	assert_int_equal(h.hdr_len, 72);
	assert_int_equal(h.payload_len, 0);
}

/*
 * RFC 8285 one-byte header extension (0xBEDE) of one word holding a
 * client-to-mixer audio level (ID 1, one byte: voice, -10 dBov).
 */
/* clang-format off */
static const uint8_t ext_pkt[12 + 4 + 4 + 4] = {
	0x90, 0x00, 0x30, 0x39, 0x00, 0x00, 0x3e, 0x80,
	0xca, 0xfe, 0xba, 0xbe,
	0xbe, 0xde, 0x00, 0x01,
	0x10, 0x8a, 0x00, 0x00,
	0xff, 0xff, 0xff, 0xff,
};
/* clang-format on */

static void
test_header_extension(void **state)
{
	struct dp_rtp_hdr h;

	(void)state;
	parse_ok(ext_pkt, sizeof(ext_pkt), &h);
	assert_true(h.extension);
	assert_int_equal(h.cc, 0);
	assert_int_equal(h.seq, 12345);
	assert_int_equal(h.ts, 16000);
	assert_int_equal(h.ssrc, 0xcafebabe);
	assert_int_equal(h.hdr_len, 20);
	assert_int_equal(h.payload_len, 4);
}

/* Find id in a heap copy of exactly len bytes; -ENOENT or the length,
 * data copied to out. */
static int
ext_find(const uint8_t *buf, size_t len, uint8_t id, uint8_t *out)
{
	uint8_t *copy = malloc(len);
	const uint8_t *data;
	struct dp_rtp_hdr h;
	unsigned n;
	int err;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	assert_int_equal(dp_rtp_parse(copy, len, &h), 0);
	err = dp_rtp_ext_find(copy, &h, id, &data, &n);
	if (err == 0) {
		memcpy(out, data, n);
		err = (int)n;
	}
	free(copy);
	return err;
}

static void
test_ext_one_byte(void **state)
{
	/* ID 1 audio level (voice, -10 dBov), padding, ID 3 two bytes. */
	/* clang-format off */
	static const uint8_t buf[12 + 4 + 8 + 1] = {
		0x90, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x01,
		0xbe, 0xde, 0x00, 0x02,
		0x10, 0x8a, 0x00, 0x31, 0xab, 0xcd, 0x00, 0x00,
		0xff,
	};
	/* clang-format on */
	uint8_t out[16];

	(void)state;
	assert_int_equal(ext_find(buf, sizeof(buf), 1, out), 1);
	assert_int_equal(out[0], 0x8a);
	assert_int_equal(ext_find(buf, sizeof(buf), 3, out), 2);
	assert_int_equal(out[0], 0xab);
	assert_int_equal(out[1], 0xcd);
	assert_int_equal(ext_find(buf, sizeof(buf), 2, out), -ENOENT);
	assert_int_equal(ext_find(buf, sizeof(buf), 0, out), -ENOENT);
	/* The golden audio-level packet. */
	assert_int_equal(ext_find(ext_pkt, sizeof(ext_pkt), 1, out), 1);
	assert_int_equal(out[0], 0x8a);
}

static void
test_ext_two_byte(void **state)
{
	/* 0x1000: ID 20 with one byte, padding, ID 1 with none. */
	/* clang-format off */
	static const uint8_t buf[12 + 4 + 8] = {
		0x90, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x01,
		0x10, 0x00, 0x00, 0x02,
		0x14, 0x01, 0x7f, 0x00, 0x01, 0x00, 0x00, 0x00,
	};
	/* clang-format on */
	uint8_t out[16];

	(void)state;
	assert_int_equal(ext_find(buf, sizeof(buf), 20, out), 1);
	assert_int_equal(out[0], 0x7f);
	assert_int_equal(ext_find(buf, sizeof(buf), 1, out), 0);
	assert_int_equal(ext_find(buf, sizeof(buf), 5, out), -ENOENT);
}

static void
test_ext_malformed(void **state)
{
	/* An element longer than the extension, an ID 15 (stop), another
	 * profile, and a packet without extension: never read past. */
	/* clang-format off */
	static const uint8_t longer[12 + 4 + 4] = {
		0x90, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x01,
		0xbe, 0xde, 0x00, 0x01,
		0x00, 0x00, 0x13, 0x01,
	}, stop[12 + 4 + 4] = {
		0x90, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x01,
		0xbe, 0xde, 0x00, 0x01,
		0xf0, 0x10, 0x8a, 0x00,
	}, two_long[12 + 4 + 4] = {
		0x90, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x01,
		0x10, 0x00, 0x00, 0x01,
		0x00, 0x00, 0x01, 0x05,
	}, other[12 + 4 + 4] = {
		0x90, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x01,
		0x12, 0x34, 0x00, 0x01,
		0x10, 0x8a, 0x00, 0x00,
	};
	/* clang-format on */
	uint8_t out[16];

	(void)state;
	assert_int_equal(ext_find(longer, sizeof(longer), 1, out), -ENOENT);
	assert_int_equal(ext_find(stop, sizeof(stop), 1, out), -ENOENT);
	assert_int_equal(ext_find(two_long, sizeof(two_long), 1, out), -ENOENT);
	assert_int_equal(ext_find(other, sizeof(other), 1, out), -ENOENT);
	assert_int_equal(ext_find(pcmu_pkt, sizeof(pcmu_pkt), 1, out), -ENOENT);
}

/* Parse a heap copy of exactly len bytes (a sanitizer build catches any
 * read past the end). */
static int
rtcp_parse_exact(const uint8_t *buf, size_t len, uint32_t about,
		 struct dp_rtcp_info *out)
{
	uint8_t *copy = malloc(len ? len : 1);
	int err;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	err = dp_rtcp_parse(copy, len, about, out);
	free(copy);
	return err;
}

static void
test_rtcp_round_trip(void **state)
{
	struct dp_rtcp_info sr = {0}, got;
	struct dp_rtcp_block blk = {
		.ssrc = 0xcafebabe,
		.fraction = 64,
		.lost = -5,
		.ext_seq = 0x00012345,
		.jitter = 80,
		.lsr = 0x12345678,
		.dlsr = 0x00018000,
	};
	uint8_t buf[128];
	int n;

	(void)state;
	sr.ntp = 0xe1234567890abcdeull;
	sr.rtp_ts = 160000;
	sr.packets = 1000;
	sr.octets = 160000;
	n = dp_rtcp_build(buf, sizeof(buf), 0x11223344, &sr, &blk,
			  "focusd-11223344");
	/* SR with one block: 52 bytes; SDES: 8 + 2 + 15 + END, padded: 28. */
	assert_int_equal(n, 52 + 28);
	assert_int_equal(buf[0], 0x81);
	assert_int_equal(buf[1], 200);
	assert_int_equal(buf[3], 52 / 4 - 1);
	assert_int_equal(buf[52 + 1], 202);
	assert_int_equal(buf[52 + 8], 1);
	assert_int_equal(buf[52 + 9], 15);
	assert_memory_equal(buf + 52 + 10, "focusd-11223344", 15);
	assert_int_equal(rtcp_parse_exact(buf, (size_t)n, 0xcafebabe, &got), 0);
	assert_true(got.sr && !got.rr && got.have_block && !got.bye);
	assert_int_equal(got.ssrc, 0x11223344);
	assert_true(got.ntp == sr.ntp);
	assert_int_equal(got.rtp_ts, 160000);
	assert_int_equal(got.packets, 1000);
	assert_int_equal(got.octets, 160000);
	assert_int_equal(got.block.fraction, 64);
	assert_int_equal(got.block.lost, -5);
	assert_int_equal(got.block.ext_seq, 0x00012345);
	assert_int_equal(got.block.jitter, 80);
	assert_int_equal(got.block.lsr, 0x12345678);
	assert_int_equal(got.block.dlsr, 0x00018000);
	/* A block about another source is not taken. */
	assert_int_equal(rtcp_parse_exact(buf, (size_t)n, 1, &got), 0);
	assert_false(got.have_block);
	/* An RR without blocks, and no room. */
	n = dp_rtcp_build(buf, sizeof(buf), 7, NULL, NULL, "x");
	assert_int_equal(n, 8 + 12);
	assert_int_equal(buf[0], 0x80);
	assert_int_equal(buf[1], 201);
	assert_int_equal(rtcp_parse_exact(buf, (size_t)n, 7, &got), 0);
	assert_true(got.rr && !got.sr);
	assert_int_equal(dp_rtcp_build(buf, 20, 7, &sr, NULL, "x"), -ENOSPC);
}

static void
test_rtcp_malformed(void **state)
{
	struct dp_rtcp_info sr = {0}, got;
	struct dp_rtcp_block blk = {.ssrc = 9};
	uint8_t buf[128], bad[128];
	int n;

	(void)state;
	n = dp_rtcp_build(buf, sizeof(buf), 1, &sr, &blk, "cname");
	assert_true(n > 0);
	/* Cut anywhere but between its packets: malformed, never read
	 * past (the SR alone is a compound we take). */
	for (int cut = 0; cut < n; cut++)
		assert_int_equal(rtcp_parse_exact(buf, (size_t)cut, 9, &got),
				 cut == 52 ? 0 : -EBADMSG);
	/* Version 1. */
	memcpy(bad, buf, (size_t)n);
	bad[0] = 0x41;
	assert_int_equal(rtcp_parse_exact(bad, (size_t)n, 9, &got), -EBADMSG);
	/* Two blocks claimed, room for one. */
	memcpy(bad, buf, (size_t)n);
	bad[0] = 0x82;
	assert_int_equal(rtcp_parse_exact(bad, (size_t)n, 9, &got), -EBADMSG);
	/* A length past the datagram. */
	memcpy(bad, buf, (size_t)n);
	bad[3] = 40;
	assert_int_equal(rtcp_parse_exact(bad, (size_t)n, 9, &got), -EBADMSG);
	/* Not starting with SR or RR (an RTP packet, a lone SDES). */
	assert_int_equal(rtcp_parse_exact(pcmu_pkt, sizeof(pcmu_pkt), 9, &got),
			 -EBADMSG);
	assert_int_equal(rtcp_parse_exact(buf + 52, (size_t)n - 52, 9, &got),
			 -EBADMSG);
	/* Trailing bytes that make no packet. */
	memcpy(bad, buf, (size_t)n);
	bad[n] = 0x80;
	assert_int_equal(rtcp_parse_exact(bad, (size_t)n + 1, 9, &got),
			 -EBADMSG);
}

static void
test_csrc_and_extension(void **state)
{
	/* CC = 1 and an empty extension (length 0 words), then 2 bytes. */
	/* clang-format off */
	static const uint8_t buf[12 + 4 + 4 + 2] = {
		0x91, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x01,
		0x00, 0x00, 0x00, 0x02,
		0x10, 0x00, 0x00, 0x00,
		0xff, 0xff,
	};
	/* clang-format on */
	struct dp_rtp_hdr h;

	(void)state;
	parse_ok(buf, sizeof(buf), &h);
	assert_int_equal(h.cc, 1);
	assert_true(h.extension);
	assert_int_equal(h.hdr_len, 20);
	assert_int_equal(h.payload_len, 2);
	/* The extension may end exactly at the end of the packet. */
	parse_ok(buf, 20, &h);
	assert_int_equal(h.payload_len, 0);
}

/* PCMU with four bytes of payload and four of padding (count 4). */
/* clang-format off */
static const uint8_t pad_pkt[12 + 4 + 4] = {
	0xa0, 0x00, 0x00, 0x02, 0x00, 0x00, 0x01, 0x40,
	0x01, 0x02, 0x03, 0x04,
	0xff, 0xfe, 0xfd, 0xfc,
	0x00, 0x00, 0x00, 0x04,
};
/* clang-format on */

static void
test_padding(void **state)
{
	uint8_t buf[sizeof(pad_pkt)];
	struct dp_rtp_hdr h;

	(void)state;
	parse_ok(pad_pkt, sizeof(pad_pkt), &h);
	assert_true(h.padding);
	assert_int_equal(h.seq, 2);
	assert_int_equal(h.ts, 320);
	assert_int_equal(h.ssrc, 0x01020304);
	assert_int_equal(h.hdr_len, 12);
	assert_int_equal(h.payload_len, 4);

	/* All of the payload is padding: legal, nothing left to play. */
	memcpy(buf, pad_pkt, sizeof(buf));
	buf[sizeof(buf) - 1] = 8;
	parse_ok(buf, sizeof(buf), &h);
	assert_int_equal(h.payload_len, 0);

	/* One byte of padding: just the count. */
	buf[sizeof(buf) - 1] = 1;
	parse_ok(buf, sizeof(buf), &h);
	assert_int_equal(h.payload_len, 7);
}

static void
test_padding_after_extension(void **state)
{
	/* Extension of one word, two payload bytes, two of padding. */
	/* clang-format off */
	static const uint8_t buf[12 + 8 + 2 + 2] = {
		0xb0, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x09,
		0xbe, 0xde, 0x00, 0x01, 0x10, 0x7f, 0x00, 0x00,
		0xaa, 0xbb,
		0x00, 0x02,
	};
	/* clang-format on */
	uint8_t b2[sizeof(buf)];
	struct dp_rtp_hdr h;

	(void)state;
	parse_ok(buf, sizeof(buf), &h);
	assert_int_equal(h.hdr_len, 20);
	assert_int_equal(h.payload_len, 2);
	/* Cut one byte short, the count read is 0x00. */
	parse_bad(buf, 23);
	/* Padding reaching into the extension is malformed. */
	memcpy(b2, buf, sizeof(b2));
	b2[sizeof(b2) - 1] = 5;
	parse_bad(b2, sizeof(b2));
	/* Padding covering exactly the payload is not. */
	b2[sizeof(b2) - 1] = 4;
	parse_ok(b2, sizeof(b2), &h);
	assert_int_equal(h.payload_len, 0);
}

static void
test_build_parse_round_trip(void **state)
{
	static const struct {
		uint8_t pt;
		bool marker;
		uint16_t seq;
		uint32_t ts;
		uint32_t ssrc;
	} v[] = {
		{0, false, 0, 0, 0},
		{0, true, 1, 160, 1},
		{8, false, 0x8000, 0x80000000u, 0x80000000u},
		{101, true, 0xffff, 0xffffffffu, 0xffffffffu},
		{127, true, 0x1234, 0x89abcdefu, 0x13579bdfu},
		{96, false, 0xfedc, 0x01020304u, 0xa1b2c3d4u},
	};
	uint8_t buf[64];
	struct dp_rtp_hdr h;

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		memset(buf, 0, sizeof(buf));
		assert_int_equal(dp_rtp_build(buf, sizeof(buf), v[i].pt,
					      v[i].marker, v[i].seq, v[i].ts,
					      v[i].ssrc),
				 12);
		parse_ok(buf, 12 + 20, &h);
		assert_int_equal(h.version, 2);
		assert_false(h.padding);
		assert_false(h.extension);
		assert_int_equal(h.cc, 0);
		assert_int_equal(h.marker, v[i].marker);
		assert_int_equal(h.pt, v[i].pt);
		assert_int_equal(h.seq, v[i].seq);
		assert_int_equal(h.ts, v[i].ts);
		assert_int_equal(h.ssrc, v[i].ssrc);
		assert_int_equal(h.hdr_len, 12);
		assert_int_equal(h.payload_len, 20);
	}
}

static void
test_build_pt_masked(void **state)
{
	uint8_t buf[DP_RTP_HDR_MIN];
	struct dp_rtp_hdr h;

	(void)state;
	/* A payload type above 127 must not set the marker bit. */
	assert_int_equal(dp_rtp_build(buf, sizeof(buf), 0xff, false, 1, 2, 3),
			 12);
	assert_int_equal(buf[1], 0x7f);
	parse_ok(buf, sizeof(buf), &h);
	assert_false(h.marker);
	assert_int_equal(h.pt, 127);
}

static void
test_build_no_space(void **state)
{
	uint8_t buf[DP_RTP_HDR_MIN + 4];

	(void)state;
	memset(buf, 0x5a, sizeof(buf));
	for (size_t cap = 0; cap < DP_RTP_HDR_MIN; cap++)
		assert_int_equal(dp_rtp_build(buf, cap, 0, true, 1, 2, 3),
				 -ENOSPC);
	/* Nothing written on failure. */
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0x5a);
	assert_int_equal(dp_rtp_build(NULL, 64, 0, false, 1, 2, 3), -ENOSPC);
	/* Exactly 12 is enough, and nothing past 12 is touched. */
	assert_int_equal(dp_rtp_build(buf, DP_RTP_HDR_MIN, 0, false, 1, 2, 3),
			 12);
	for (size_t i = DP_RTP_HDR_MIN; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0x5a);
}

static void
test_reject_short(void **state)
{
	struct dp_rtp_hdr h;

	(void)state;
	for (size_t len = 0; len < DP_RTP_HDR_MIN; len++)
		parse_bad(pcmu_pkt, len);
	/* The fixed header alone is a valid, empty packet. */
	parse_ok(pcmu_pkt, DP_RTP_HDR_MIN, &h);
	assert_int_equal(h.payload_len, 0);
}

static void
test_reject_version(void **state)
{
	uint8_t buf[sizeof(pcmu_pkt)];

	(void)state;
	memcpy(buf, pcmu_pkt, sizeof(buf));
	for (unsigned v = 0; v < 4; v++) {
		struct dp_rtp_hdr h;

		buf[0] = (uint8_t)(v << 6);
		if (v == 2)
			parse_ok(buf, sizeof(buf), &h);
		else
			parse_bad(buf, sizeof(buf));
	}
}

static void
test_reject_csrc_past_end(void **state)
{
	uint8_t buf[12 + 15 * 4];

	(void)state;
	memset(buf, 0, sizeof(buf));
	for (unsigned cc = 1; cc < 16; cc++) {
		buf[0] = (uint8_t)(0x80 | cc);
		/* One byte short of the CSRC list. */
		parse_bad(buf, 12 + 4 * cc - 1);
	}
	buf[0] = 0x8f;
	parse_bad(buf, 12);
	parse_bad(buf, 12 + 14 * 4);
}

static void
test_reject_extension_header_past_end(void **state)
{
	uint8_t buf[12 + 4 + 4];

	(void)state;
	memset(buf, 0, sizeof(buf));
	buf[0] = 0x90; /* X, no CSRC */
	for (size_t len = 12; len < 16; len++)
		parse_bad(buf, len);
	/* With a CSRC the extension header starts at 16. */
	buf[0] = 0x91;
	for (size_t len = 16; len < 20; len++)
		parse_bad(buf, len);
}

static void
test_reject_extension_length_past_end(void **state)
{
	uint8_t buf[12 + 4 + 8];
	struct dp_rtp_hdr h;

	(void)state;
	memset(buf, 0, sizeof(buf));
	buf[0] = 0x90;
	buf[12] = 0xbe;
	buf[13] = 0xde;
	buf[15] = 2; /* two words: needs 24 bytes */
	parse_ok(buf, 24, &h);
	assert_int_equal(h.hdr_len, 24);
	parse_bad(buf, 23);
	parse_bad(buf, 20);
	parse_bad(buf, 16);
	/* The largest length field, far past any packet. */
	buf[14] = 0xff;
	buf[15] = 0xff;
	parse_bad(buf, sizeof(buf));
}

static void
test_reject_padding_zero(void **state)
{
	uint8_t buf[sizeof(pad_pkt)];

	(void)state;
	memcpy(buf, pad_pkt, sizeof(buf));
	buf[sizeof(buf) - 1] = 0;
	parse_bad(buf, sizeof(buf));
}

static void
test_reject_padding_too_long(void **state)
{
	uint8_t buf[sizeof(pad_pkt)];

	(void)state;
	memcpy(buf, pad_pkt, sizeof(buf));
	/* 8 bytes after the header: a count of 9 reaches into it. */
	buf[sizeof(buf) - 1] = 9;
	parse_bad(buf, sizeof(buf));
	buf[sizeof(buf) - 1] = 0xff;
	parse_bad(buf, sizeof(buf));
	/* P set on a bare header: the count is the SSRC's last byte. */
	buf[11] = 1;
	parse_bad(buf, DP_RTP_HDR_MIN);
	buf[11] = 0;
	parse_bad(buf, DP_RTP_HDR_MIN);
}

static void
test_null_args(void **state)
{
	struct dp_rtp_hdr h;

	(void)state;
	assert_int_equal(dp_rtp_parse(NULL, sizeof(pcmu_pkt), &h), -EBADMSG);
	assert_int_equal(dp_rtp_parse(pcmu_pkt, sizeof(pcmu_pkt), NULL),
			 -EBADMSG);
	assert_int_equal(dp_rtp_parse(NULL, 0, NULL), -EBADMSG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_pcmu),
		cmocka_unit_test(test_golden_pcma_marker),
		cmocka_unit_test(test_golden_telephone_event),
		cmocka_unit_test(test_csrc_list),
		cmocka_unit_test(test_csrc_max),
		cmocka_unit_test(test_header_extension),
		cmocka_unit_test(test_ext_one_byte),
		cmocka_unit_test(test_ext_two_byte),
		cmocka_unit_test(test_ext_malformed),
		cmocka_unit_test(test_rtcp_round_trip),
		cmocka_unit_test(test_rtcp_malformed),
		cmocka_unit_test(test_csrc_and_extension),
		cmocka_unit_test(test_padding),
		cmocka_unit_test(test_padding_after_extension),
		cmocka_unit_test(test_build_parse_round_trip),
		cmocka_unit_test(test_build_pt_masked),
		cmocka_unit_test(test_build_no_space),
		cmocka_unit_test(test_reject_short),
		cmocka_unit_test(test_reject_version),
		cmocka_unit_test(test_reject_csrc_past_end),
		cmocka_unit_test(test_reject_extension_header_past_end),
		cmocka_unit_test(test_reject_extension_length_past_end),
		cmocka_unit_test(test_reject_padding_zero),
		cmocka_unit_test(test_reject_padding_too_long),
		cmocka_unit_test(test_null_args),
	};

	return cmocka_run_group_tests_name("rtp", tests, NULL, NULL);
}
