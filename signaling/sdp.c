/*
 * sdp.c - SDP offer/answer for the focus (RFC 3264), with Sofia-SIP's SDP
 * parser.
 *
 * The focus answers the first audio stream it can use: RTP/AVP, IPv4, and
 * a codec it mixes (PCMU, PCMA; by rtpmap name, so a dynamic payload type
 * for either works too). Every other stream of the offer is rejected with
 * port 0, as RFC 3264 section 6 requires, keeping the m-line count. The
 * answer's direction mirrors the offer's (sendonly -> recvonly, ...), and
 * an old-style hold (c=0.0.0.0) counts as sendonly.
 *
 * Answers are printed by hand with snprintf rather than built as sdp_session
 * structures: the answer is small and fixed in shape, and text is what nua
 * sends. Errors tell the caller which SIP status to use: 400 for SDP that
 * does not parse, 488 for SDP with nothing the focus can take.
 */
#include <errno.h>
#include <stdio.h>
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

static bool
codec_pick(const sdp_media_t *m, enum mix_codec *codecp, uint8_t *ptp)
{
	/* The offerer's order is its preference (RFC 3264 section 6.1). */
	for (const sdp_rtpmap_t *rm = m->m_rtpmaps; rm; rm = rm->rm_next) {
		if (rm->rm_encoding == NULL || rm->rm_rate != 8000)
			continue;
		if (strcasecmp(rm->rm_encoding, "PCMU") == 0) {
			*codecp = MIX_PCMU;
			*ptp = (uint8_t)rm->rm_pt;
			return true;
		}
		if (strcasecmp(rm->rm_encoding, "PCMA") == 0) {
			*codecp = MIX_PCMA;
			*ptp = (uint8_t)rm->rm_pt;
			return true;
		}
	}
	return false;
}

static const sdp_connection_t *
media_connection(const sdp_session_t *sess, const sdp_media_t *m)
{
	if (m->m_connections)
		return m->m_connections;
	return sess->sdp_connection;
}

/* Append "m=<type> 0 <proto> <fmt>" for a stream we do not take. */
static void
reject_line(char *buf, size_t size, const sdp_media_t *m)
{
	size_t used = strlen(buf);
	char pt[8];
	const char *fmt = "0";

	if (m->m_rtpmaps) {
		snprintf(pt, sizeof(pt), "%u", m->m_rtpmaps->rm_pt);
		fmt = pt;
	} else if (m->m_format && m->m_format->l_text) {
		fmt = m->m_format->l_text;
	}
	snprintf(buf + used, size - used, "m=%s 0 %s %s\r\n",
		 m->m_type_name ? m->m_type_name : "audio",
		 m->m_proto_name ? m->m_proto_name : "RTP/AVP", fmt);
}

int
sig_sdp_offer_parse(struct sig_media *out, su_home_t *home, const char *body,
		    size_t len, int *statusp, const char **phrasep)
{
	sdp_parser_t *parser;
	sdp_session_t *sess;
	const sdp_media_t *m;
	int err = 0;

	parser = sdp_parse(home, body, (issize_t)len, sdp_f_all_rtpmaps);
	sess = sdp_session(parser);
	if (sess == NULL) {
		FC_INFO("sig", "unparsable SDP: %s", sdp_parsing_error(parser));
		*statusp = 400;
		*phrasep = "Bad Request - Unparsable SDP";
		err = EBADMSG;
		goto out;
	}

	*statusp = 488;
	*phrasep = "Not Acceptable Here";
	err = ENOTSUP;
	out->rejected_before[0] = out->rejected_after[0] = '\0';
	for (m = sess->sdp_media; m; m = m->m_next) {
		const sdp_connection_t *c = media_connection(sess, m);

		if (err == 0) {
			reject_line(out->rejected_after,
				    sizeof(out->rejected_after), m);
			continue;
		}
		/* Not taken (yet): rejected unless the loop takes it. */
		if (m->m_type != sdp_media_audio || m->m_rejected ||
		    m->m_port == 0 || m->m_proto != sdp_proto_rtp ||
		    c == NULL || c->c_address == NULL ||
		    c->c_addrtype != sdp_addr_ip4 || m->m_port > 65535 ||
		    !codec_pick(m, &out->codec, &out->pt))
			reject_line(out->rejected_before,
				    sizeof(out->rejected_before), m);
		if (m->m_type != sdp_media_audio || m->m_rejected ||
		    m->m_port == 0)
			continue;
		if (m->m_proto != sdp_proto_rtp) {
			*phrasep = "Not Acceptable Here - RTP/AVP only";
			continue;
		}
		if (c == NULL || c->c_address == NULL) {
			*statusp = 400;
			*phrasep = "Bad Request - No Connection Address";
			err = EBADMSG;
			continue;
		}
		if (c->c_addrtype != sdp_addr_ip4 ||
		    inet_pton(AF_INET, c->c_address, &out->addr) != 1) {
			*phrasep = "Not Acceptable Here - IPv4 Only";
			continue;
		}
		if (m->m_port > 65535) {
			*statusp = 400;
			*phrasep = "Bad Request - Bad Port";
			err = EBADMSG;
			continue;
		}
		if (!codec_pick(m, &out->codec, &out->pt)) {
			*phrasep = "Not Acceptable Here - No Common Codec";
			continue;
		}
		out->port = (uint16_t)m->m_port;
		out->peer_mode = (sdp_mode_t)m->m_mode;
		if (out->addr.s_addr == INADDR_ANY)
			out->peer_mode &= sdp_sendonly; /* RFC 2543 hold */
		err = 0;
		*statusp = 200;
		*phrasep = "OK";
	}
out:
	sdp_parser_free(parser);
	return err;
}

/*
 * Our SDP for leg l: `mode` is our direction. Offers (for INVITEs without
 * SDP) list both codecs; answers the one chosen.
 */
static char *
sdp_print_ours(su_home_t *home, const struct sig_leg *l, bool offer)
{
	char ip[INET_ADDRSTRLEN];
	const struct sig_media *m = &l->media;
	sdp_mode_t mode =
		offer ? sdp_sendrecv : sig_sdp_mode_answer(m->peer_mode);
	const char *fmt;

	inet_ntop(AF_INET, &(struct in_addr){dp_rtp_addr(l->s->dp).s_addr}, ip,
		  sizeof(ip));
	fmt = offer ? "m=audio %u RTP/AVP 0 8\r\n"
		      "a=rtpmap:0 PCMU/8000\r\n"
		      "a=rtpmap:8 PCMA/8000\r\n"
		    : "m=audio %u RTP/AVP %u\r\n"
		      "a=rtpmap:%u %s/8000\r\n";
	char media[256];

	if (offer)
		snprintf(media, sizeof(media), fmt, l->ep.local_port);
	else
		snprintf(media, sizeof(media), fmt, l->ep.local_port, m->pt,
			 m->pt, mix_codec_name(m->codec));

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
			  ip, ip, offer ? "" : m->rejected_before, media,
			  MIX_PTIME_MS, sig_sdp_mode_name(mode),
			  offer ? "" : m->rejected_after);
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
