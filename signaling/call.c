/*
 * call.c - dial-in calls to the focus (RFC 4579 sections 2.2, 2.3, 4.1,
 * 4.4) and OPTIONS discovery (4.12).
 *
 * INVITE to sip:ID@domain joins conference ID; with auto-create on, an
 * unknown ID creates it (4.4). INVITE to the factory URI (sip:FACTORY@
 * domain) creates a conference with a fresh opaque ID (4.5) and the caller
 * learns its URI from the Contact of the 200. Every 2xx carries
 * `Contact: <sip:ID@domain>;isfocus`, so the caller knows it reached a
 * focus and where the conference is.
 *
 * Offer/answer: an INVITE with SDP is answered in the 200; an INVITE
 * without SDP gets our offer in the 200 and the answer is taken from the
 * ACK (a bad or missing answer there ends the call with BYE). A re-INVITE
 * changes the leg's media: direction (hold with sendonly or inactive takes
 * the leg out of the mix), address or codec.
 *
 * Failures answer with the status a caller can act on: 400 (SDP that does
 * not parse), 404 (no such conference, not a conference user), 488 (no
 * usable audio stream), 503 with Retry-After (no RTP port, media plane
 * busy, shutting down). Nothing is left half-built: a leg either is fully
 * programmed into the media plane or never existed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <sys/random.h>
#include <time.h>

#include "signaling/dialogid.h"
#include "signaling/sig_priv.h"

#define CONF_ID_MAX 64

char *
sig_contact(su_home_t *home, const struct sig *s, const char *id)
{
	return su_sprintf(home, "<sip:%s@%s>;isfocus", id, s->domain);
}

/* RFC 3261 user characters we accept in conference IDs. */
static bool
conf_id_chars(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > CONF_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr("-_.!~+", ch)))
			return false;
	}
	return true;
}

/* prefix and 16 random hex digits: an ID nobody can guess. */
void
sig_random_id(char *buf, size_t len, const char *prefix)
{
	uint8_t rnd[8];

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (uint8_t)random();
	}
	snprintf(buf, len, "%s%02x%02x%02x%02x%02x%02x%02x%02x", prefix, rnd[0],
		 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
}

static bool
is_factory(const struct sig *s, const char *user)
{
	return strcmp(user, s->opts.factory) == 0;
}

/* An ID a conference may have: URI user characters, not the factory. */
bool
sig_conf_id_valid(const struct sig *s, const char *id)
{
	return conf_id_chars(id) && !is_factory(s, id);
}

/* Same user@host (case-insensitive host), whatever ports or params. */
bool
sig_same_aor(const char *a, const char *b)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	url_t *ua = a ? url_make(home, a) : NULL;
	url_t *ub = b ? url_make(home, b) : NULL;
	bool same = ua && ub && ua->url_host && ub->url_host &&
		    strcasecmp(ua->url_host, ub->url_host) == 0 &&
		    ((!ua->url_user && !ub->url_user) ||
		     (ua->url_user && ub->url_user &&
		      strcmp(ua->url_user, ub->url_user) == 0));

	su_home_deinit(home);
	return same;
}

static void
reject(struct sig *s, nua_handle_t *nh, int status, const char *phrase)
{
	s->st.rejected++;
	if (status == 503)
		nua_respond(nh, status, phrase, SIPTAG_RETRY_AFTER_STR("5"),
			    TAG_END());
	else if (status == 415) /* RFC 3261 21.4.13: say what we take */
		nua_respond(nh, status, phrase, SIPTAG_ACCEPT_STR(SIG_ACCEPT),
			    TAG_END());
	else
		nua_respond(nh, status, phrase, TAG_END());
	/* nua keeps the handle until the transaction ends; releasing it now
	 * is allowed. */
	sig_handle_release(s, nh);
}

#define REJECT(...)                  \
	do {                         \
		reject(__VA_ARGS__); \
		return;              \
	} while (0)

/*
 * 200 with the isfocus Contact and our SDP: an answer, or an offer when
 * the INVITE had none (the ACK must then carry the answer). The o= version
 * goes up only when the SDP changed (RFC 3264 section 8).
 */
static void
respond_2xx(struct sig_leg *l, nua_handle_t *nh, bool offer)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	char *sdp;

	sdp = sig_leg_sdp(home, l, offer);
	l->answer_due = offer;
	if (!l->answered)
		l->answered_at = (uint64_t)time(NULL);
	l->answered = true;
	nua_respond(nh, SIP_200_OK,
		    SIPTAG_CONTACT_STR(
			    l->conf->app ? su_sprintf(home, "<sip:%s@%s>",
						      l->s->opts.application,
						      l->s->domain)
					 : sig_leg_contact(home, l)),
		    SIPTAG_CONTENT_TYPE_STR("application/sdp"),
		    SIPTAG_PAYLOAD_STR(sdp), TAG_END());
	su_home_deinit(home);
}

/* The From AOR (no parameters), malloc'd; NULL if there is none. */
char *
sig_from_aor(const sip_t *sip)
{
	url_t u;
	char *txt, *out;

	if (sip->sip_from == NULL)
		return NULL;
	u = *sip->sip_from->a_url;
	u.url_params = NULL;
	u.url_headers = NULL;
	u.url_port = NULL;
	txt = url_as_string(NULL, &u);
	out = txt ? strdup(txt) : NULL;
	su_free(NULL, txt);
	return out;
}

/*
 * RFC 4579 4.5, the redirecting factory: the conference exists now, with
 * the caller as its owner; 302 sends the caller there. If nobody joins
 * within --conf-empty-timeout seconds it goes again.
 */
static void
factory_redirect(struct sig *s, struct sig_conf *c, nua_handle_t *nh)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};

	c->empty_until = fc_now_ns() +
			 (uint64_t)s->opts.conf_empty_timeout * 1000000000ull;
	FC_INFO("sig", "factory: conference %s made, redirecting there", c->id);
	nua_respond(nh, SIP_302_MOVED_TEMPORARILY,
		    SIPTAG_CONTACT_STR(sig_contact(home, s, c->id)), TAG_END());
	sig_handle_release(s, nh);
	su_home_deinit(home);
}

/*
 * Join (RFC 3911) or Replaces (RFC 3891) in an INVITE: the conference of
 * the named leg in *cp, and for Replaces the leg itself. 0 when neither
 * header is there or the leg was found; otherwise the status to answer:
 * 400 (malformed, or both), 481 (no such dialog), 486 (Replaces
 * early-only for a confirmed dialog).
 */
/* Sofia keeps one Replaces; others land in the unparsed (error) list. */
static bool
replaces_repeated(const sip_t *sip)
{
	if (sip->sip_replaces->rp_next)
		return true;
	for (const sip_error_t *e = sip->sip_error; e; e = e->er_next) {
		if (e->er_name && strcasecmp(e->er_name, "Replaces") == 0)
			return true;
	}
	for (const sip_unknown_t *u = sip->sip_unknown; u; u = u->un_next) {
		if (u->un_name && strcasecmp(u->un_name, "Replaces") == 0)
			return true;
	}
	return false;
}

static int
join_or_replaces(struct sig *s, const sip_t *sip, struct sig_conf **cp,
		 struct sig_leg **replacedp, int *statusp, const char **phrasep)
{
	struct sig_dialog_id jid;
	const sip_replaces_t *rp = sip->sip_replaces;
	struct sig_leg *l;
	int err;

	err = sig_dialog_id_find(&jid, sip, "Join", "to-tag", "from-tag");
	if (err == EINVAL || (err == 0 && rp)) {
		*statusp = 400;
		*phrasep = err == EINVAL ? "Bad Request - Malformed Join"
					 : "Bad Request - Join and Replaces";
		return EINVAL;
	}
	if (err == 0) {
		l = sig_leg_by_dialog(s, jid.call_id, jid.tag1, jid.tag2);
		if (l == NULL) {
			*statusp = 481;
			*phrasep = "Call/Transaction Does Not Exist";
			return ENOENT;
		}
		FC_INFO("sig", "Join names %s: joining conference %s",
			l->peer_uri ? l->peer_uri : "?", l->conf->id);
		*cp = l->conf;
		return 0;
	}
	if (rp == NULL)
		return 0;
	if (rp->rp_to_tag == NULL || rp->rp_from_tag == NULL ||
	    replaces_repeated(sip)) {
		/* RFC 3891 3: both tags, and exactly one Replaces. */
		*statusp = 400;
		*phrasep = "Bad Request - Malformed Replaces";
		return EINVAL;
	}
	l = sig_leg_by_dialog(s, rp->rp_call_id, rp->rp_to_tag,
			      rp->rp_from_tag);
	if (l == NULL) {
		*statusp = 481;
		*phrasep = "Call/Transaction Does Not Exist";
		return ENOENT;
	}
	if (rp->rp_early_only && l->state != SIG_LEG_DIALING_OUT &&
	    l->state != SIG_LEG_ALERTING && l->state != SIG_LEG_DIALING_IN) {
		*statusp = 486;
		*phrasep = "Busy Here";
		return EBUSY;
	}
	*cp = l->conf;
	*replacedp = l;
	return 0;
}

/* user@host of a SIP URI, lower-cased host, into buf. */
static const char *
aor_key(char *buf, size_t len, const url_t *u)
{
	snprintf(buf, len, "%s@%s", u && u->url_user ? u->url_user : "",
		 u && u->url_host ? u->url_host : "");
	for (char *p = strchr(buf, '@'); p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return buf;
}

/*
 * RFC 3891 7: Replaces takes a participant's seat, so it must be allowed.
 * With --users, by SIP digest as that participant's user, the owner or a
 * moderator; without, only from the participant's own address (the From
 * AOR), which keeps a stranger who learnt the dialog from a conference
 * document out but is no stronger than From.
 */
static bool
replaces_allowed(struct sig *s, nua_handle_t *nh, const sip_t *sip,
		 const struct sig_leg *old)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	char a[300], b[300], user[128];
	url_t *ou = old->peer_uri ? url_make(home, old->peer_uri) : NULL;
	bool same;

	same = ou && sip->sip_from &&
	       strcmp(aor_key(a, sizeof(a), sip->sip_from->a_url),
		      aor_key(b, sizeof(b), ou)) == 0;
	su_home_deinit(home);
	if (s->auth)
		return sig_auth_require(
			s, nh, sip, old->conf,
			sig_uri_user(user, sizeof(user), old->peer_uri),
			"replace a participant");
	if (!same) {
		nua_respond(nh, 403,
			    "Forbidden - Replaces Needs Authentication",
			    TAG_END());
		sig_handle_release(s, nh);
	}
	return same;
}

/*
 * RFC 4579 4.9: the new leg n takes old's place in the roster (same user,
 * already connected), old is hung up, and neither change is announced.
 */
static void
replace_leg(struct sig_leg *n, struct sig_leg *old)
{
	FC_INFO("sig", "%s replaces %s in conference %s",
		n->peer_uri ? n->peer_uri : "?",
		old->peer_uri ? old->peer_uri : "?", old->conf->id);
	free(n->peer_uri);
	n->peer_uri = old->peer_uri ? strdup(old->peer_uri) : NULL;
	free(n->display);
	n->display = old->display ? strdup(old->display) : NULL;
	n->joining = old->joining;
	n->joined = old->joined;
	n->state = SIG_LEG_CONNECTED;
	old->quiet = true;
	sig_leg_ended_by(old, "replaced", 0);
	sig_leg_hangup(old, NULL);
}

static void
invite_new(struct sig *s, nua_handle_t *nh, const sip_t *sip)
{
	const url_t *ru = sip->sip_request->rq_url;
	struct sig_media media = {0};
	struct sig_conf *c;
	struct sig_leg *l, *replaced = NULL;
	char id[CONF_ID_MAX + 2];
	const char *phrase;
	int status, err;
	bool created = false;

	s->st.invites++;
	if (s->shutting_down)
		REJECT(s, nh, 503, "Service Unavailable - Shutting Down");
	if (sig_overloaded(s)) {
		FC_WARN("sig", "every mixer above %u%% load: INVITE refused",
			s->opts.max_load);
		REJECT(s, nh, 503, "Service Unavailable - Mixers Overloaded");
	}
	if (ru->url_user == NULL || !conf_id_chars(ru->url_user))
		REJECT(s, nh, SIP_404_NOT_FOUND);

	if (sip->sip_payload && sip->sip_payload->pl_len) {
		if (sip->sip_content_type &&
		    strcasecmp(sip->sip_content_type->c_type,
			       "application/sdp") != 0)
			REJECT(s, nh, SIP_415_UNSUPPORTED_MEDIA);
		err = sig_sdp_offer_parse(
			&media, s->home, sip->sip_payload->pl_data,
			sip->sip_payload->pl_len, &status, &phrase);
		if (err)
			REJECT(s, nh, status, phrase);
	} else {
		/* Delayed offer: ours goes in the 200, theirs in the ACK. */
		media.codec = MIX_PCMU;
		media.pt = 0;
		media.peer_mode = sdp_inactive;
	}

	/* RFC 4579 4.8/4.9: Join and Replaces name a leg; its conference
	 * is the one, whatever the Request-URI says. */
	c = NULL;
	err = join_or_replaces(s, sip, &c, &replaced, &status, &phrase);
	if (err)
		REJECT(s, nh, status, phrase);
	if (replaced && !replaces_allowed(s, nh, sip, replaced)) {
		s->st.rejected++;
		return;
	}
	if (c == NULL && s->opts.application &&
	    strcmp(ru->url_user, s->opts.application) == 0) {
		/* RFC 4579 4.3: a lobby of its own, prompt and digits. */
		sig_random_id(id, sizeof(id), "app~");
		err = sig_conf_create_app(&c, s, id);
		if (err)
			REJECT(s, nh, 503,
			       "Service Unavailable - Media Plane Busy");
		created = true;
	} else if (c) {
		snprintf(id, sizeof(id), "%s", c->id);
	} else if (is_factory(s, ru->url_user)) {
		sig_random_id(id, sizeof(id), "c");
		c = NULL;
	} else {
		snprintf(id, sizeof(id), "%s", ru->url_user);
		c = sig_conf_find(s, id);
		if (c == NULL && !s->opts.auto_create)
			REJECT(s, nh, 404, "Conference Not Found");
		if (c == NULL && !sig_conf_may_create(s, id))
			REJECT(s, nh, 403,
			       "Forbidden - Conference ID Not Allowed");
	}
	if (c == NULL) {
		char *owner = sig_from_aor(sip);

		err = sig_conf_create(&c, s, id, owner);
		free(owner);
		if (err)
			REJECT(s, nh, 503,
			       "Service Unavailable - Media Plane Busy");
		created = true;
		if (is_factory(s, ru->url_user) && s->opts.factory_redirect) {
			factory_redirect(s, c, nh);
			return;
		}
	}

	err = sig_leg_create(&l, c, nh, &media, sip);
	if (err) {
		if (created)
			sig_conf_gc(c); /* nobody joined it */
		REJECT(s, nh, 503,
		       err == EADDRINUSE
			       ? "Service Unavailable - No RTP Port"
			       : "Service Unavailable - Media Plane Busy");
	}
	nua_handle_bind(nh, l);
	l->state = SIG_LEG_DIALING_IN;
	l->uas = true;
	if (replaced)
		replace_leg(l, replaced);
	FC_INFO("sig", "%s joins conference %s (%s, RTP port %u, %s)",
		l->peer_uri ? l->peer_uri : "?", c->id,
		mix_codec_name(media.codec), l->ep.local_port,
		sig_sdp_mode_name(media.peer_mode));
	if (c->manual && !replaced) {
		/* Manual admission: an early dialog until admitted. */
		su_home_t home[1] = {SU_HOME_INIT(home)};

		l->awaiting = true;
		l->state = SIG_LEG_PENDING;
		sig_leg_media_update(l, &l->media);
		nua_respond(nh, SIP_180_RINGING,
			    SIPTAG_CONTACT_STR(sig_leg_contact(home, l)),
			    TAG_END());
		su_home_deinit(home);
	} else {
		respond_2xx(l, nh, media.port == 0);
	}
	if (!replaced)
		sig_confevent_changed(c, l, NULL);
	else
		sig_confevent_dialog_changed(c, l, false);
}

int
sig_leg_admit(struct sig_leg *l)
{
	if (!l->awaiting || l->releasing || l->nh == NULL)
		return EALREADY;
	l->awaiting = false;
	l->state = SIG_LEG_DIALING_IN;
	sig_leg_media_update(l, &l->media);
	respond_2xx(l, l->nh, l->media.port == 0);
	FC_INFO("sig", "%s admitted to conference %s",
		l->peer_uri ? l->peer_uri : "?", l->conf->id);
	sig_confevent_changed(l->conf, l, NULL);
	return 0;
}

enum sig_leg_state
sig_state_for(const struct sig_media *m)
{
	return m->peer_mode == sdp_sendrecv || m->peer_mode == sdp_recvonly
		       ? SIG_LEG_CONNECTED
		       : SIG_LEG_ON_HOLD;
}

static void
invite_again(struct sig *s, struct sig_leg *l, nua_handle_t *nh,
	     const sip_t *sip)
{
	if (l->moving || l->reinviting) {
		/* Our own move is under way (RFC 3261 14.2: glare). */
		nua_respond(nh, SIP_491_REQUEST_PENDING, TAG_END());
		return;
	}
	struct sig_media media;
	const char *phrase;
	int status;

	if (!(sip->sip_payload && sip->sip_payload->pl_len)) {
		/* Re-INVITE without SDP: we offer, the ACK answers. */
		respond_2xx(l, nh, true);
		return;
	}
	if (sig_sdp_offer_parse(&media, s->home, sip->sip_payload->pl_data,
				sip->sip_payload->pl_len, &status,
				&phrase) != 0) {
		/* The old session stays as it was (RFC 3261 14.2). */
		nua_respond(nh, status, phrase, TAG_END());
		return;
	}
	if (sig_leg_media_update(l, &media) != 0) {
		nua_respond(nh, 503, "Service Unavailable",
			    SIPTAG_RETRY_AFTER_STR("5"), TAG_END());
		return;
	}
	sig_leg_set_state(l, sig_state_for(&media));
	FC_INFO("sig", "%s in %s: %s", l->peer_uri ? l->peer_uri : "?",
		l->conf->id, sig_sdp_mode_name(media.peer_mode));
	respond_2xx(l, nh, false);
}

static void
hang_up(struct sig_leg *l, const char *why)
{
	FC_INFO("sig", "%s: %s, hanging up", l->peer_uri ? l->peer_uri : "?",
		why);
	sig_leg_hangup(l, NULL);
}

/*
 * ACK: confirms the dialog, and carries the answer when our 2xx offered.
 * SDP in any other ACK is not an answer to anything and is ignored.
 */
static void
ack(struct sig *s, struct sig_leg *l, const sip_t *sip)
{
	struct sig_media media;
	const char *phrase;
	int status;

	bool had_tag = l->to_tag != NULL;

	sig_leg_learn_tags(l, sip);
	/* A caller that took another's place (Replaces) was connected
	 * at once: its dialog is announced when its tag is known. */
	if (!had_tag && l->to_tag && l->state != SIG_LEG_DIALING_IN && l->conf)
		sig_confevent_dialog_changed(l->conf, l, false);
	if (l->answer_due) {
		l->answer_due = false;
		if (!(sip && sip->sip_payload && sip->sip_payload->pl_len))
			return hang_up(l, "no SDP answer in the ACK");
		if (sig_sdp_offer_parse(
			    &media, s->home, sip->sip_payload->pl_data,
			    sip->sip_payload->pl_len, &status, &phrase) != 0 ||
		    sig_leg_media_update(l, &media) != 0)
			return hang_up(l, "unusable SDP answer in the ACK");
		sig_leg_set_state(l, sig_state_for(&media));
		return;
	}
	if (l->state == SIG_LEG_DIALING_IN)
		sig_leg_set_state(l, sig_state_for(&l->media));
}

void
sig_call_event(struct sig *s, nua_event_t event, int status, const char *phrase,
	       nua_handle_t *nh, struct sig_leg *l, const sip_t *sip,
	       tagi_t tags[])
{
	int callstate = -1;

	switch (event) {
	case nua_i_invite:
		if (l == NULL)
			invite_new(s, nh, sip);
		else
			invite_again(s, l, nh, sip);
		break;
	case nua_i_ack:
		if (l)
			ack(s, l, sip);
		break;
	case nua_i_cancel:
	case nua_i_bye:
		if (l)
			sig_leg_ended_by(l,
					 event == nua_i_bye ? "remote-bye"
							    : "cancelled",
					 event == nua_i_bye ? 0 : 487);
		FC_DEBUG("sig", "%s from %s", nua_event_name(event),
			 l && l->peer_uri ? l->peer_uri : "?");
		break;
	case nua_i_state:
		tl_gets(tags, NUTAG_CALLSTATE_REF(callstate), TAG_END());
		if (callstate == nua_callstate_terminated) {
			/* Ended by a failure nobody reported: a timeout
			 * (no ACK, no answer) or a transport error. */
			if (l && status >= 300)
				sig_leg_ended_by(
					l, status == 408 ? "timeout" : "error",
					(unsigned)status);
			if (l)
				sig_leg_release(l);
			else if (nh)
				sig_handle_release(s, nh);
		}
		break;
	case nua_r_invite:
		if (l)
			sig_dialout_event(s, event, status, phrase, l, sip);
		break;
	case nua_r_bye:
		if (l && l->refer) {
			/* RFC 4579 4.11: the BYE's outcome for the REFER */
			sig_refer_progress(l->refer, status, phrase);
			l->refer = NULL;
		}
		break;
	case nua_i_terminated:
		FC_DEBUG("sig", "%s: %d %s", nua_event_name(event), status,
			 phrase ? phrase : "");
		break;
	default:
		break;
	}
}

/* OPTIONS to the factory or a conference URI (RFC 4579 4.12). */
void
sig_options(struct sig *s, nua_handle_t *nh, struct sig_leg *l,
	    const sip_t *sip)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	const url_t *ru = sip->sip_request->rq_url;
	const char *user = ru->url_user;
	if (l && l->conf && !l->conf->app)
		user = l->conf->id; /* in a dialog: the conference's */
	if (user && s->opts.application &&
	    strcmp(user, s->opts.application) == 0) {
		/* The application is no focus: no isfocus. */
		nua_respond(nh, SIP_200_OK, NUTAG_WITH_THIS(s->nua),
			    SIPTAG_CONTACT_STR(su_sprintf(home, "<sip:%s@%s>",
							  user, s->domain)),
			    SIPTAG_ALLOW_STR(SIG_ALLOW), TAG_END());
		sig_handle_release(s, nh);
		su_home_deinit(home);
		return;
	}
	if (user == NULL ||
	    (!is_factory(s, user) && sig_conf_find(s, user) == NULL &&
	     !(conf_id_chars(user) && sig_conf_may_create(s, user)))) {
		nua_respond(nh, SIP_404_NOT_FOUND, NUTAG_WITH_THIS(s->nua),
			    TAG_END());
	} else {
		nua_respond(nh, SIP_200_OK, NUTAG_WITH_THIS(s->nua),
			    SIPTAG_CONTACT_STR(sig_contact(home, s, user)),
			    SIPTAG_ALLOW_STR(SIG_ALLOW),
			    SIPTAG_ALLOW_EVENTS_STR(SIG_ALLOW_EVENTS),
			    TAG_END());
	}
	/* In a dialog (a keepalive) the handle is the call's: kept. */
	sig_handle_release(s, nh);
	su_home_deinit(home);
}
