/*
 * dialout.c - the focus calls a participant in (RFC 4579 section 4.2).
 *
 * The leg is built before the INVITE goes out - RTP endpoint, mixer leg
 * and flow, exactly as for a dial-in - because the offer needs its RTP
 * port; it stays out of the mix (no address, inactive) until the answer.
 * The INVITE comes from the conference URI with the isfocus Contact and
 * offers PCMU and PCMA. Progress moves the leg's RFC 4575 status:
 * dialing-out, alerting on 180/183, connected (or on-hold) on the 2xx
 * whose SDP answer programs the media; nua sends the ACK. A final failure
 * releases the leg as "failed" (or "busy" for 486/600). Every step is
 * passed to the REFER that asked for the call, if any.
 *
 * Control thread only; cost is per call set-up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "signaling/sig_priv.h"

int
sig_dialout(struct sig_leg **lp, struct sig_conf *c, const char *target,
	    struct sig_refer *refer)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	struct sig *s = c->s;
	struct sig_media media = {0};
	struct sig_leg *l;
	url_t *url;
	char *from, *offer;
	int err;

	for (const unsigned char *p = (const unsigned char *)target; *p; p++) {
		if (*p < 0x21 || *p >= 0x7f) {
			su_home_deinit(home);
			return EINVAL; /* a SIP URI is printable ASCII */
		}
	}
	url = url_make(home, target);
	if (url == NULL ||
	    (url->url_type != url_sip && url->url_type != url_sips) ||
	    url->url_host == NULL) {
		su_home_deinit(home);
		return EINVAL;
	}
	media.codec = MIX_PCMU;
	media.pt = 0;
	media.peer_mode = sdp_inactive; /* nothing flows before the answer */
	err = sig_leg_create(&l, c, NULL, &media, NULL);
	if (err) {
		su_home_deinit(home);
		return err;
	}
	l->peer_uri = strdup(target);
	l->contact = strdup(target);
	l->joining = "dialed-out";
	l->refer = refer;
	l->state = SIG_LEG_DIALING_OUT;

	/* Our Call-ID and From tag, chosen here rather than by the stack:
	 * the dialog package names the dialog from its first document on
	 * (trying), before any response. */
	{
		char tag[24], cid[24];
		size_t n;

		sig_random_id(tag, sizeof(tag), "");
		sig_random_id(cid, sizeof(cid), "fd-");
		n = strlen(cid) + strlen(s->domain) + 2;
		l->from_tag = strdup(tag);
		l->call_id = malloc(n);
		if (l->call_id)
			snprintf(l->call_id, n, "%s@%s", cid, s->domain);
	}
	from = su_sprintf(home, "<%s>;tag=%s", c->uri,
			  l->from_tag ? l->from_tag : "");
	l->nh = l->from_tag && l->call_id
			? nua_handle(s->nua, l, SIPTAG_TO_STR(target),
				     SIPTAG_FROM_STR(from),
				     SIPTAG_CALL_ID_STR(l->call_id), TAG_END())
			: NULL;
	if (l->nh == NULL) {
		su_home_deinit(home);
		l->disconnection = "failed";
		sig_leg_release(l);
		return ENOMEM;
	}
	offer = sig_leg_sdp(home, l, true);
	nua_invite(l->nh, SIPTAG_CONTACT_STR(sig_leg_contact(home, l)),
		   SIPTAG_CONTENT_TYPE_STR("application/sdp"),
		   SIPTAG_PAYLOAD_STR(offer), TAG_END());
	FC_INFO("sig", "conference %s: dialing out to %s (RTP port %u)", c->id,
		target, l->ep.local_port);
	sig_confevent_changed(c, l, NULL);
	su_home_deinit(home);
	if (lp)
		*lp = l;
	return 0;
}

/*
 * The dialog's Call-ID and tags from a response to our INVITE: known
 * from the first provisional one, so that Target-Dialog can name a
 * dial-out still ringing (ClearConnection cancels it).
 */
static void
dialout_learn(struct sig_leg *l, const sip_t *sip, bool final)
{
	if (sip == NULL)
		return;
	if (sip->sip_call_id && l->call_id == NULL)
		l->call_id = sig_clean_text(sip->sip_call_id->i_id);
	if (sip->sip_from && sip->sip_from->a_tag && l->from_tag == NULL)
		l->from_tag = sig_clean_text(sip->sip_from->a_tag);
	if (sip->sip_to && sip->sip_to->a_tag && (final || !l->to_tag)) {
		free(l->to_tag);
		l->to_tag = sig_clean_text(sip->sip_to->a_tag);
	}
	/* The remote target from the first response that gives one. */
	if (sip->sip_contact && sip->sip_status &&
	    sip->sip_status->st_status > 100) {
		char *contact = sig_url_text(sip->sip_contact->m_url);

		if (contact) {
			free(l->contact);
			l->contact = contact;
		}
	}
}

static void
dialout_answered(struct sig *s, struct sig_leg *l, const sip_t *sip)
{
	struct sig_media media;
	const char *phrase;
	int status;
	char *contact;

	/* The 2xx's To tag is the dialog's, whatever early ones said. */
	dialout_learn(l, sip, true);
	contact =
		sip->sip_contact ? sig_url_text(sip->sip_contact->m_url) : NULL;
	if (contact) {
		free(l->contact);
		l->contact = contact;
	}
	if (!(sip->sip_payload && sip->sip_payload->pl_len) ||
	    sig_sdp_offer_parse(&media, s->home, sip->sip_payload->pl_data,
				sip->sip_payload->pl_len, &status,
				&phrase) != 0 ||
	    sig_leg_media_update(l, &media) != 0) {
		FC_INFO("sig", "%s: no usable SDP answer, hanging up",
			l->peer_uri);
		sig_leg_hangup(l, "failed");
		return;
	}
	l->joined = (uint64_t)time(NULL);
	l->answered_at = l->joined;
	l->answered = true;
	sig_leg_set_state(l, sig_state_for(&media));
	FC_INFO("sig", "%s answered: in conference %s (%s, %s)", l->peer_uri,
		l->conf->id, mix_codec_name(media.codec),
		sig_sdp_mode_name(media.peer_mode));
}

/* The answer to our re-INVITE of a move: new SDP, or it stays as it was. */
static void
reinvite_answered(struct sig *s, struct sig_leg *l, int status,
		  const char *phrase, const sip_t *sip)
{
	struct sig_media media;
	const char *ph;
	int st;

	if (status < 200)
		return;
	l->reinviting = false;
	if (status >= 300) {
		/* RFC 3261 14.1: the session goes on unchanged; the
		 * participant just does not know its new focus URI. */
		FC_WARN("sig", "%s refused our re-INVITE: %d %s", l->peer_uri,
			status, phrase ? phrase : "");
		/* A refused hold or retrieve leaves the call as it was. */
		l->focus_hold = l->focus_hold_prev;
		l->offer_mode = l->focus_hold ? sdp_sendonly : sdp_sendrecv;
		return;
	}
	if (l->state == SIG_LEG_DISCONNECTING)
		return; /* our BYE is on its way: nothing to update */
	if (!(sip && sip->sip_payload && sip->sip_payload->pl_len &&
	      sig_sdp_offer_parse(&media, s->home, sip->sip_payload->pl_data,
				  sip->sip_payload->pl_len, &st, &ph) == 0 &&
	      sig_leg_media_update(l, &media) == 0)) {
		/* A 2xx to our offer must answer it (RFC 3264): without a
		 * usable answer the media state is unknown; end the call. */
		FC_INFO("sig", "%s: no usable SDP answer to our re-INVITE",
			l->peer_uri ? l->peer_uri : "?");
		sig_leg_hangup(l, "failed");
		return;
	}
	sig_leg_set_state(l, l->focus_hold ? SIG_LEG_ON_HOLD
					   : sig_state_for(&media));
}

/* nua_r_invite for a leg we dialed, or re-INVITEd. */
void
sig_dialout_event(struct sig *s, nua_event_t event, int status,
		  const char *phrase, struct sig_leg *l, const sip_t *sip)
{
	if (event != nua_r_invite || l->releasing)
		return;
	/* A transfer's REFER hears of its NOTIFYs, not of INVITEs. */
	if (l->refer && !l->transferring)
		sig_refer_progress(l->refer, status, phrase);
	if (status >= 200) {
		/* The REFER hears of the final answer once. */
		l->refer = NULL;
	}
	if (l->reinviting) {
		reinvite_answered(s, l, status, phrase, sip);
		return;
	}
	if (status < 200 && !l->reinviting)
		dialout_learn(l, sip, false);
	if (status > 100 && status < 200) {
		sig_leg_set_state(l, SIG_LEG_ALERTING);
	} else if (status >= 200 && status < 300) {
		if (l->state == SIG_LEG_DIALING_OUT ||
		    l->state == SIG_LEG_ALERTING) {
			dialout_answered(s, l, sip);
		} else if (l->state == SIG_LEG_DISCONNECTING && l->nh) {
			/* The 2xx crossed our CANCEL (ClearConnection,
			 * shutdown): the call exists, so it is hung up. */
			l->answered = true;
			l->dlg_event = "local-bye";
			l->dlg_code = 0;
			nua_bye(l->nh, TAG_END());
		}
	} else if (status >= 300) {
		FC_INFO("sig", "%s did not answer: %d %s", l->peer_uri, status,
			phrase ? phrase : "");
		sig_leg_ended_by(l,
				 status == 408	 ? "timeout"
				 : status == 487 ? "cancelled"
						 : "rejected",
				 (unsigned)status);
		/* Cancelled by ClearConnection: booted already, keep it. */
		if (l->disconnection == NULL)
			l->disconnection = status == 486 || status == 600
						   ? "busy"
						   : "failed";
		/* nua_i_state terminated follows and releases the leg. */
	}
}

int
sig_conf_dialout(struct sig *s, const char *id, const char *uri)
{
	struct sig_conf *c;

	if (s == NULL || id == NULL || uri == NULL)
		return EINVAL;
	if (s->shutting_down)
		return EAGAIN;
	c = sig_conf_find(s, id);
	if (c == NULL)
		return ENOENT;
	return sig_dialout(NULL, c, uri, NULL);
}
