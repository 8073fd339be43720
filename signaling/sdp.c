/*
 * sdp.c - SDP offer/answer for the focus (RFC 3264), with Sofia-SIP's SDP
 * parser.
 *
 * The focus answers the first audio stream it can use: RTP/AVP, IPv4, and
 * a codec it mixes (PCMU, PCMA, G722, opus; by rtpmap name and clock
 * rate, so dynamic payload types work too; the offerer's order decides).
 * Opus's fmtp parameters (RFC 7587 7) that matter to the encoder are
 * read: useinbandfec, usedtx, maxplaybackrate, maxaveragebitrate. An RFC
 * 6464 audio-level extension (a=extmap) is taken and answered recvonly:
 * the mixer skips the packets it marks silent. The offer's a=ptime and
 * a=maxptime set the packet time we send (10 to 60 ms); ours asks 20.
 * Every other stream of the offer is rejected with port 0, as RFC 3264
 * section 6 requires, keeping the m-line count. The answer's direction
 * mirrors the offer's (sendonly -> recvonly, ...), and an old-style hold
 * (c=0.0.0.0) counts as sendonly. Our own offers list every codec the
 * conference can mix, wideband first (sdp_print_ours).
 *
 * Answers are printed by hand with snprintf rather than built as sdp_session
 * structures: the answer is small and fixed in shape, and text is what nua
 * sends. Errors tell the caller which SIP status to use: 400 for SDP that
 * does not parse, 488 for SDP with nothing the focus can take.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "signaling/sig_priv.h"

const char *
sig_sdp_mode_name(sdp_mode_t mode)
{
	switch (mode) {
	case sdp_inactive:
		return "inactive";
	case sdp_sendonly:
		return "sendonly";
	case sdp_recvonly:
		return "recvonly";
	case sdp_sendrecv:
		return "sendrecv";
	}
	return "?";
}

sdp_mode_t
sig_sdp_mode_answer(sdp_mode_t offered)
{
	switch (offered) {
	case sdp_sendonly:
		return sdp_recvonly;
	case sdp_recvonly:
		return sdp_sendonly;
	default:
		return offered;
	}
}

#define LEVEL_URN "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

/* The codecs we take: rtpmap name and RTP clock rate. */
static const struct {
	const char *name;
	unsigned long clock;
	enum mix_codec codec;
} codecs[] = {
	{"PCMU", 8000, MIX_PCMU},
	{"PCMA", 8000, MIX_PCMA},
	{"G722", 8000, MIX_G722}, /* RFC 3551: 8000 though 16 kHz audio */
	{"opus", 48000, MIX_OPUS},
};

unsigned
sig_codec_clock(enum mix_codec c)
{
	return c == MIX_OPUS ? 48000 : 8000;
}

/* An fmtp parameter "name=UINT" (RFC 7587: "; "-separated): 0 if absent. */
static unsigned
fmtp_uint(const char *fmtp, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = fmtp; p && *p;) {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncasecmp(p, name, n) == 0 && p[n] == '=')
			return (unsigned)strtoul(p + n + 1, NULL, 10);
		p = strchr(p, ';');
	}
	return 0;
}

static bool
codec_pick(const sdp_media_t *m, struct sig_media *out)
{
	/* The offerer's order is its preference (RFC 3264 section 6.1). */
	for (const sdp_rtpmap_t *rm = m->m_rtpmaps; rm; rm = rm->rm_next) {
		if (rm->rm_encoding == NULL)
			continue;
		for (size_t i = 0; i < FC_ARRAY_SIZE(codecs); i++) {
			if (rm->rm_rate != codecs[i].clock ||
			    strcasecmp(rm->rm_encoding, codecs[i].name) != 0)
				continue;
			out->codec = codecs[i].codec;
			out->pt = (uint8_t)rm->rm_pt;
			out->opus_fec = out->opus_dtx = false;
			out->opus_maxrate = out->opus_bitrate = 0;
			if (out->codec == MIX_OPUS && rm->rm_fmtp) {
				out->opus_fec = fmtp_uint(rm->rm_fmtp,
							  "useinbandfec") == 1;
				out->opus_dtx =
					fmtp_uint(rm->rm_fmtp, "usedtx") == 1;
				out->opus_maxrate = fmtp_uint(
					rm->rm_fmtp, "maxplaybackrate");
				out->opus_bitrate = fmtp_uint(
					rm->rm_fmtp, "maxaveragebitrate");
				/* RFC 7587 7.1: 6000 to 510000 bit/s. */
				if (out->opus_bitrate &&
				    out->opus_bitrate < 6000)
					out->opus_bitrate = 6000;
				if (out->opus_bitrate > 510000)
					out->opus_bitrate = 510000;
			}
			return true;
		}
	}
	return false;
}

/*
 * The RFC 6464 client-to-mixer audio level, if the stream offers it:
 * "a=extmap:ID[/direction] urn:ietf:params:rtp-hdrext:ssrc-audio-level"
 * (RFC 8285; ID 1-14 in the one-byte form, up to 255 in the two-byte
 * one), in the stream or at session level (RFC 8285 6). 0: not offered,
 * or offered only for what we send (recvonly, inactive).
 */
static uint8_t
level_extmap_in(const sdp_attribute_t *list)
{
	for (const sdp_attribute_t *a = list; a; a = a->a_next) {
		const char *v = a->a_value, *sp;
		char *end;
		unsigned long id;

		if (a->a_name == NULL || v == NULL ||
		    strcasecmp(a->a_name, "extmap") != 0)
			continue;
		id = strtoul(v, &end, 10);
		if (end == v || id < 1 || id > 255)
			continue;
		if (*end == '/' && (strncasecmp(end + 1, "recvonly", 8) == 0 ||
				    strncasecmp(end + 1, "inactive", 8) == 0))
			continue;
		sp = strchr(end, ' ');
		if (sp == NULL)
			continue;
		while (*sp == ' ')
			sp++;
		if (strncasecmp(sp, LEVEL_URN, strlen(LEVEL_URN)) == 0 &&
		    (sp[strlen(LEVEL_URN)] == '\0' ||
		     sp[strlen(LEVEL_URN)] == ' '))
			return (uint8_t)id;
	}
	return 0;
}

static uint8_t
level_extmap(const sdp_session_t *sess, const sdp_media_t *m)
{
	uint8_t id = level_extmap_in(m->m_attributes);

	return id ? id : level_extmap_in(sess->sdp_attributes);
}

/* An attribute's unsigned value, the stream's or else the session's: 0
 * if absent or not a number. */
static unsigned
attr_uint(const sdp_session_t *sess, const sdp_media_t *m, const char *name)
{
	const sdp_attribute_t *a = sdp_attribute_find2(
		m->m_attributes, sess->sdp_attributes, name);
	char *end;
	unsigned long v;

	if (a == NULL || a->a_value == NULL)
		return 0;
	v = strtoul(a->a_value, &end, 10);
	return end == a->a_value || v > 100000 ? 0 : (unsigned)v;
}

/*
 * The packet time to send the peer: its a=ptime (RFC 4566: what it would
 * like to receive), no more than its a=maxptime, else 20 ms; rounded down
 * to one the codec can send (Opus 10, 20, 40, 60; the others a multiple
 * of 10 up to 60), at least 10.
 */
static unsigned
send_ptime(const sdp_session_t *sess, const sdp_media_t *m, enum mix_codec c)
{
	unsigned ptime = attr_uint(sess, m, "ptime"),
		 maxp = attr_uint(sess, m, "maxptime");

	if (ptime == 0)
		ptime = MIX_PTIME_MS;
	if (maxp && ptime > maxp)
		ptime = maxp;
	if (ptime > 60)
		ptime = 60;
	while (ptime > 10 && !mix_ptime_valid(c, ptime))
		ptime--;
	return ptime < 10 ? 10 : ptime;
}

static const sdp_connection_t *
media_connection(const sdp_session_t *sess, const sdp_media_t *m)
{
	if (m->m_connections)
		return m->m_connections;
	return sess->sdp_connection;
}

/*
 * Append "m=<type> 0 <proto> <fmt>" for a stream we do not take; false
 * when it does not fit.
 */
static bool
reject_line(char *buf, size_t size, const sdp_media_t *m)
{
	size_t used = strlen(buf);
	char pt[8];
	const char *fmt = "0";
	int n;

	if (m->m_rtpmaps) {
		snprintf(pt, sizeof(pt), "%u", m->m_rtpmaps->rm_pt);
		fmt = pt;
	} else if (m->m_format && m->m_format->l_text) {
		fmt = m->m_format->l_text;
	}
	n = snprintf(buf + used, size - used, "m=%s 0 %s %s\r\n",
		     m->m_type_name ? m->m_type_name : "audio",
		     m->m_proto_name ? m->m_proto_name : "RTP/AVP", fmt);
	if (n < 0 || (size_t)n >= size - used) {
		buf[used] = '\0';
		return false;
	}
	return true;
}

/*
 * Can the focus take stream m? 0 and out filled in, or the status and
 * phrase that say why not (400: broken, 488: nothing we can use).
 */
static int
media_take(struct sig_media *out, const sdp_session_t *sess,
	   const sdp_media_t *m, int *statusp, const char **phrasep)
{
	const sdp_connection_t *c = media_connection(sess, m);

	*statusp = 488;
	if (m->m_type != sdp_media_audio || m->m_rejected || m->m_port == 0) {
		*phrasep = "Not Acceptable Here - No Audio Stream";
		return ENOTSUP;
	}
	if (m->m_proto != sdp_proto_rtp) {
		*phrasep = "Not Acceptable Here - RTP/AVP only";
		return ENOTSUP;
	}
	if (c == NULL || c->c_address == NULL) {
		*statusp = 400;
		*phrasep = "Bad Request - No Connection Address";
		return EBADMSG;
	}
	if (c->c_addrtype != sdp_addr_ip4 ||
	    inet_pton(AF_INET, c->c_address, &out->addr) != 1) {
		*phrasep = "Not Acceptable Here - IPv4 Only";
		return ENOTSUP;
	}
	if (m->m_port > 65535) {
		*statusp = 400;
		*phrasep = "Bad Request - Bad Port";
		return EBADMSG;
	}
	if (!codec_pick(m, out)) {
		*phrasep = "Not Acceptable Here - No Common Codec";
		return ENOTSUP;
	}
	out->have_te = false;
	/* RFC 4733: events at the chosen codec's clock rate. */
	for (const sdp_rtpmap_t *rm = m->m_rtpmaps; rm; rm = rm->rm_next) {
		if (rm->rm_encoding &&
		    rm->rm_rate == sig_codec_clock(out->codec) &&
		    strcasecmp(rm->rm_encoding, "telephone-event") == 0) {
			out->te_pt = (uint8_t)rm->rm_pt;
			out->have_te = true;
			break;
		}
	}
	out->level_id = level_extmap(sess, m);
	out->ptime = send_ptime(sess, m, out->codec);
	out->port = (uint16_t)m->m_port;
	out->peer_mode = (sdp_mode_t)m->m_mode;
	if (out->addr.s_addr == INADDR_ANY)
		out->peer_mode &= sdp_sendonly; /* RFC 2543 hold */
	return 0;
}

int
sig_sdp_offer_parse(struct sig_media *out, su_home_t *home, const char *body,
		    size_t len, int *statusp, const char **phrasep)
{
	sdp_parser_t *parser;
	sdp_session_t *sess;
	const sdp_media_t *m;
	bool taken = false, fits = true;
	int err = 0, why_status = 488;
	const char *why = "Not Acceptable Here - No Audio Stream";

	parser = sdp_parse(home, body, (issize_t)len, sdp_f_all_rtpmaps);
	sess = sdp_session(parser);
	if (sess == NULL) {
		FC_INFO("sig", "unparsable SDP: %s", sdp_parsing_error(parser));
		*statusp = 400;
		*phrasep = "Bad Request - Unparsable SDP";
		err = EBADMSG;
		goto out;
	}

	/* The first stream we can take is answered; every other one is
	 * rejected in place, keeping the offer's m-line order. */
	out->rejected_before[0] = out->rejected_after[0] = '\0';
	for (m = sess->sdp_media; m; m = m->m_next) {
		int st;
		const char *ph;

		if (!taken && media_take(out, sess, m, &st, &ph) == 0) {
			taken = true;
			continue;
		}
		if (!taken && m->m_type == sdp_media_audio && !m->m_rejected &&
		    m->m_port != 0 && why_status != 400) {
			why_status = st; /* a broken audio stream says 400 */
			why = ph;
		}
		if (taken)
			fits &= reject_line(out->rejected_after,
					    sizeof(out->rejected_after), m);
		else
			fits &= reject_line(out->rejected_before,
					    sizeof(out->rejected_before), m);
	}
	if (!taken) {
		*statusp = why_status;
		*phrasep = why;
		err = why_status == 400 ? EBADMSG : ENOTSUP;
	} else if (!fits) {
		*statusp = 488;
		*phrasep = "Not Acceptable Here - Too Many Streams";
		err = E2BIG;
	} else {
		*statusp = 200;
		*phrasep = "OK";
	}
out:
	sdp_parser_free(parser);
	return err;
}

/* "a=rtpmap" (and "a=fmtp" for Opus) of codec c as payload type pt. */
static int
codec_lines(char *buf, size_t size, const struct sig_leg *l, enum mix_codec c,
	    unsigned pt)
{
	if (c == MIX_OPUS)
		/* What we would like to receive: FEC against loss, audio no
		 * wider than the conference mixes. */
		return snprintf(
			buf, size,
			"a=rtpmap:%u opus/48000/2\r\n"
			"a=fmtp:%u useinbandfec=1; maxplaybackrate=%u\r\n",
			pt, pt, l->mp.rate ? l->mp.rate : 48000);
	return snprintf(buf, size, "a=rtpmap:%u %s/8000\r\n", pt,
			mix_codec_name(c));
}

/* What the focus offers, best first: wideband only to a conference that
 * mixes wider than 8 kHz. */
static const struct {
	enum mix_codec c;
	unsigned pt; /* Opus's is dynamic: moved if the leg uses it */
	bool wide;
} offer_codecs[] = {
	{MIX_OPUS, 111, true},
	{MIX_G722, 9, true},
	{MIX_PCMU, 0, false},
	{MIX_PCMA, 8, false},
};

/*
 * Our SDP for leg l. An answer has the chosen codec and mirrors the
 * peer's direction. An offer lists the leg's current codec first (a
 * re-INVITE: the peer need not change), then every other codec the
 * conference can use (offer_codecs), and telephone-event at each of
 * their clocks, sendrecv unless held; a first offer (to an INVITE
 * without SDP, a dial-out) lists them all. Either keeps the
 * streams we rejected in their places, so a re-offer has as many m-lines
 * as before (RFC 3264 8).
 */
/* pt, or if it is taken, the first dynamic type down from it (96 wraps
 * to 127) that is not. Static ones stay. */
static unsigned
pt_free(unsigned pt, const bool used[128])
{
	while (pt >= 96 && used[pt])
		pt = pt == 96 ? 127 : pt - 1;
	return pt;
}

static char *
sdp_print_ours(su_home_t *home, const struct sig_leg *l, bool offer)
{
	char ip[INET_ADDRSTRLEN], media[640];
	const struct sig_media *m = &l->media;
	sdp_mode_t mode =
		offer ? l->offer_mode : sig_sdp_mode_answer(m->peer_mode);
	unsigned rate = l->conf ? l->conf->rate : MIX_RATE_DEFAULT;
	bool first = m->port == 0; /* nothing negotiated yet */
	struct {
		enum mix_codec c;
		unsigned pt;
	} list[FC_ARRAY_SIZE(offer_codecs)];
	struct {
		unsigned clock, pt;
	} te[2];
	unsigned n_list = 0, n_te = 0;
	bool used[128] = {false}; /* payload types taken */
	int n;

	inet_ntop(AF_INET, &(struct in_addr){dp_rtp_addr(l->s->dp).s_addr}, ip,
		  sizeof(ip));
	if (m->have_te)
		used[m->te_pt & 127] = true;
	if (!offer || !first) {
		list[n_list].c = m->codec;
		list[n_list++].pt = m->pt;
		/* Static types offered as such again. */
		for (size_t i = 0; offer && i < FC_ARRAY_SIZE(offer_codecs);
		     i++) {
			if (offer_codecs[i].c == m->codec &&
			    offer_codecs[i].pt < 96)
				list[0].pt = offer_codecs[i].pt;
		}
		used[list[0].pt & 127] = true;
	}
	for (size_t i = 0; offer && i < FC_ARRAY_SIZE(offer_codecs); i++) {
		if ((offer_codecs[i].wide && rate <= 8000) ||
		    (n_list && list[0].c == offer_codecs[i].c))
			continue;
		/* A dynamic type taken by something else moves. */
		list[n_list].c = offer_codecs[i].c;
		list[n_list].pt = pt_free(offer_codecs[i].pt, used);
		used[list[n_list++].pt] = true;
	}
	/* RFC 4733 events: an answer's as agreed; an offer's at the clock
	 * of every codec it lists (events go at the chosen codec's clock),
	 * the agreed type kept, others on a dynamic type nothing uses. */
	if (!offer && m->have_te) {
		te[n_te].clock = sig_codec_clock(m->codec);
		te[n_te++].pt = m->te_pt;
	}
	for (unsigned clock = 8000; offer && clock;
	     clock = clock == 8000 ? 48000 : 0) {
		unsigned pt = clock == 8000 ? 101 : 100;
		bool listed = false;

		for (unsigned i = 0; i < n_list; i++)
			listed |= sig_codec_clock(list[i].c) == clock;
		if (!listed)
			continue;
		if (m->have_te && sig_codec_clock(m->codec) == clock)
			pt = m->te_pt;
		else
			pt = pt_free(pt, used);
		used[pt & 127] = true;
		te[n_te].clock = clock;
		te[n_te++].pt = pt;
	}
	n = snprintf(media, sizeof(media), "m=audio %u RTP/AVP",
		     l->ep.local_port);
	for (unsigned i = 0; i < n_list; i++)
		n += snprintf(media + n, sizeof(media) - n, " %u", list[i].pt);
	for (unsigned i = 0; i < n_te; i++)
		n += snprintf(media + n, sizeof(media) - n, " %u", te[i].pt);
	n += snprintf(media + n, sizeof(media) - n, "\r\n");
	for (unsigned i = 0; i < n_list; i++)
		n += codec_lines(media + n, sizeof(media) - n, l, list[i].c,
				 list[i].pt);
	for (unsigned i = 0; i < n_te; i++)
		n += snprintf(media + n, sizeof(media) - n,
			      "a=rtpmap:%u telephone-event/%u\r\n"
			      "a=fmtp:%u 0-15\r\n",
			      te[i].pt, te[i].clock, te[i].pt);
	if (m->level_id) /* RFC 6464: we take it, and send none */
		snprintf(media + n, sizeof(media) - n,
			 "a=extmap:%u/recvonly " LEVEL_URN "\r\n", m->level_id);

	return su_sprintf(home,
			  "v=0\r\n"
			  "o=focusd %llu %u IN IP4 %s\r\n"
			  "s=focusd\r\n"
			  "c=IN IP4 %s\r\n"
			  "t=0 0\r\n"
			  "%s%s"
			  "a=ptime:%u\r\n"
			  "a=%s\r\n"
			  "%s",
			  (unsigned long long)l->sdp_sess_id, l->sdp_version,
			  ip, ip, m->rejected_before, media, MIX_PTIME_MS,
			  sig_sdp_mode_name(mode), m->rejected_after);
}

char *
sig_sdp_answer(su_home_t *home, const struct sig_leg *l)
{
	return sdp_print_ours(home, l, false);
}

char *
sig_sdp_offer(su_home_t *home, const struct sig_leg *l)
{
	return sdp_print_ours(home, l, true);
}

/*
 * Our SDP for l (an offer or an answer), remembered; the o= version goes
 * up only when the SDP differs from the last one we sent (RFC 3264 8).
 */
char *
sig_leg_sdp(su_home_t *home, struct sig_leg *l, bool offer)
{
	char *sdp = offer ? sig_sdp_offer(home, l) : sig_sdp_answer(home, l);

	if (sdp && l->last_sdp && strcmp(sdp, l->last_sdp) != 0) {
		l->sdp_version++;
		sdp = offer ? sig_sdp_offer(home, l) : sig_sdp_answer(home, l);
	}
	free(l->last_sdp);
	l->last_sdp = sdp ? strdup(sdp) : NULL;
	return sdp;
}
