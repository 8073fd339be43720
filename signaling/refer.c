/*
 * refer.c - REFER to the conference (RFC 4579 sections 4.6 and 4.11).
 *
 * A REFER to a conference URI - in a dialog with the focus or outside any -
 * whose Refer-To is a SIP URI asks the focus to bring that user in: 202
 * Accepted, then a dial-out (dialout.c) whose progress goes back through
 * the REFER's implicit subscription as message/sipfrag NOTIFYs: "SIP/2.0
 * 100 Trying" at once, then the dial-out's final status, which ends the
 * subscription. A REFER carrying Refer-Sub: false (RFC 4488) gets
 * Refer-Sub: false in its 202 and no NOTIFY at all.
 *
 * Errors, each a response to the REFER itself: no or several Refer-To (400,
 * RFC 3515 2.4.2), a Refer-To that is not sip:/sips: (400 with a phrase
 * saying so: the focus can only bring SIP users in), a conference that
 * does not exist (404), shutting down (503).
 *
 * Threads: the control thread. The REFER's handle stays with its
 * sig_refer until the final NOTIFY; when the REFER came inside a call,
 * the call keeps the handle.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "signaling/dialogid.h"
#include "signaling/sig_priv.h"
#include <sofia-sip/sip_extra.h>

struct sig_refer {
	TAILQ_ENTRY(sig_refer) link; /* in s->refers */
	struct sig *s;
	nua_handle_t *nh; /* the REFER's dialog (shared) */
	bool notify;	  /* false with Refer-Sub: false */
	bool done;	  /* the final NOTIFY is out */
	su_home_t home[1];
	sip_event_t *event; /* Event: refer[;id=N] for our NOTIFYs */
	char *target;
};

bool
sig_refer_owns(struct sig *s, nua_handle_t *nh)
{
	struct sig_refer *r;

	TAILQ_FOREACH(r, &s->refers, link) {
		if (r->nh == nh)
			return true;
	}
	return false;
}

static void
refer_free(struct sig_refer *r)
{
	TAILQ_REMOVE(&r->s->refers, r, link);
	{
		nua_handle_t *nh = r->nh;

		r->nh = NULL;
		sig_handle_release(r->s, nh);
	}
	free(r->target);
	su_home_deinit(r->home);
	free(r);
}

static void
refer_notify(struct sig_refer *r, int status, const char *phrase, bool last)
{
	char frag[160], *clean = phrase ? sig_clean_text(phrase) : NULL;

	if (!r->notify) {
		free(clean);
		return;
	}
	/* The phrase may come from a participant: cleaned and bounded, so
	 * the status line always ends with its CRLF. */
	snprintf(frag, sizeof(frag), "SIP/2.0 %d %.100s\r\n", status,
		 clean ? clean : "");
	free(clean);
	nua_notify(r->nh, SIPTAG_EVENT(r->event),
		   SIPTAG_CONTENT_TYPE_STR("message/sipfrag;version=2.0"),
		   SIPTAG_PAYLOAD_STR(frag),
		   NUTAG_SUBSTATE(last ? nua_substate_terminated
				       : nua_substate_active),
		   TAG_IF(last, SIPTAG_SUBSCRIPTION_STATE_STR(
					"terminated;reason=noresource")),
		   TAG_END());
}

/*
 * The final NOTIFY; an out-of-dialog REFER's handle is let go once that
 * NOTIFY is answered (nua retransmits it until then).
 */
static void
refer_finish(struct sig_refer *r, int status, const char *phrase)
{
	refer_notify(r, status, phrase, true);
	r->done = true;
	if (!r->notify)
		refer_free(r);
}

/* nua_r_notify on a REFER's handle. */
bool
sig_refer_notify_answered(struct sig *s, nua_handle_t *nh, int status,
			  tagi_t tags[])
{
	struct sig_refer *r;
	int substate = -1;

	/* nua reports the terminated state only with the answer to the
	 * NOTIFY that ended the subscription, not with those before it. */
	sip_event_t const *event = NULL;

	tl_gets(tags, NUTAG_SUBSTATE_REF(substate), SIPTAG_EVENT_REF(event),
		TAG_END());
	/* The handle may carry an event subscription too: only refer's. */
	if (event && event->o_type && strcasecmp(event->o_type, "refer") != 0)
		return false;
	TAILQ_FOREACH(r, &s->refers, link) {
		if (r->nh != nh)
			continue;
		if (r->done && status >= 200 &&
		    substate == nua_substate_terminated)
			refer_free(r);
		return true;
	}
	return false;
}

void
sig_refer_progress(struct sig_refer *r, int status, const char *phrase)
{
	if (r->done)
		return;
	if (status < 200) {
		/* 100 Trying went out already; report ringing. */
		if (status > 100)
			refer_notify(r, status, phrase, false);
		return;
	}
	FC_INFO("sig", "REFER to %s: %d %s", r->target, status,
		phrase ? phrase : "");
	refer_finish(r, status, phrase);
}

static void
refer_reject(struct sig *s, nua_handle_t *nh, int status, const char *phrase)
{
	sig_reject(s, nh, status, phrase, TAG_END());
}

/*
 * 1 for Refer-To <sip:X;method=BYE>, 0 for no method (or INVITE), -1 for
 * any other method.
 */
static int
refer_is_bye(const url_t *u)
{
	char method[16];
	isize_t n = u->url_params ? url_param(u->url_params, "method", method,
					      sizeof(method))
				  : 0;

	if (n == 0)
		return 0;
	if ((size_t)n > sizeof(method))
		return -1; /* too long for any method; nothing was written */
	if (strcasecmp(method, "BYE") == 0)
		return 1;
	return strcasecmp(method, "INVITE") == 0 ? 0 : -1;
}

/* A participant matches a Refer-To by user and host. */
static bool
leg_matches(const struct sig_leg *l, const url_t *u)
{
	const char *uris[2] = {l->peer_uri, l->contact};

	for (size_t i = 0; i < 2; i++) {
		su_home_t home[1] = {SU_HOME_INIT(home)};
		url_t *lu = uris[i] ? url_make(home, uris[i]) : NULL;
		bool same = lu && lu->url_host && u->url_host &&
			    strcasecmp(lu->url_host, u->url_host) == 0 &&
			    ((lu->url_user == NULL && u->url_user == NULL) ||
			     (lu->url_user && u->url_user &&
			      strcmp(lu->url_user, u->url_user) == 0)) &&
			    (u->url_port == NULL ||
			     (lu->url_port &&
			      strcmp(lu->url_port, u->url_port) == 0));

		su_home_deinit(home);
		if (same)
			return true;
	}
	return false;
}

/*
 * BYE on leg l for REFER r (RFC 4575 booted), announced as disconnecting
 * at once; the BYE's answer is r's outcome.
 */
static void
refer_boot(struct sig_refer *r, struct sig_leg *l)
{
	l->refer = r;
	l->disconnection = "booted";
	l->state = SIG_LEG_DISCONNECTING;
	sig_confevent_changed(l->conf, l, NULL);
	sig_leg_hangup(l, NULL);
}

/*
 * RFC 4579 4.11: the focus sends BYE on its leg with X. The outcome goes
 * back as the sipfrag of the BYE's final response; 404 when X is not in
 * the conference.
 */
static void
refer_remove(struct sig_refer *r, struct sig_conf *c)
{
	const url_t *u = NULL;
	struct sig_leg *l;
	su_home_t home[1] = {SU_HOME_INIT(home)};

	u = r->target ? url_make(home, r->target) : NULL;
	TAILQ_FOREACH(l, &c->legs, link) {
		if (u && l->nh && !l->releasing && l->refer == NULL &&
		    !l->transferring && !l->reinviting && !l->moving &&
		    l->state != SIG_LEG_DISCONNECTING && leg_matches(l, u))
			break;
	}
	su_home_deinit(home);
	if (l == NULL) {
		refer_finish(r, 404, "Not Found");
		return;
	}
	refer_boot(r, l);
}

static bool
refer_sub_false(const sip_t *sip)
{
	const sip_refer_sub_t *rs = sip_refer_sub(sip);

	return rs && rs->rs_value && strcasecmp(rs->rs_value, "false") == 0;
}

/*
 * Take the REFER on: 202 (with Refer-Sub: false when asked), and the
 * object that reports its outcome; NULL after a 500.
 */
static struct sig_refer *
refer_new(struct sig *s, nua_handle_t *nh, const sip_t *sip, tagi_t tags[],
	  const struct sig_conf *c, const char *target, bool *new_dialogp)
{
	sip_event_t const *event = NULL;
	struct sig_refer *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		refer_reject(s, nh, SIP_500_INTERNAL_SERVER_ERROR);
		return NULL;
	}
	su_home_init(r->home);
	r->s = s;
	r->nh = nh;
	/* Sofia sends a first NOTIFY itself only for a REFER that opened
	 * its dialog (a handle nothing else uses yet). */
	*new_dialogp = !sig_handle_in_use(s, nh);
	r->notify = !refer_sub_false(sip);
	tl_gets(tags, NUTAG_REFER_EVENT_REF(event), TAG_END());
	r->event = event ? sip_event_dup(r->home, event)
			 : sip_event_make(r->home, "refer");
	r->target = target ? strdup(target) : NULL;
	TAILQ_INSERT_TAIL(&s->refers, r, link);
	{
		su_home_t home[1] = {SU_HOME_INIT(home)};

		nua_respond(nh, SIP_202_ACCEPTED, NUTAG_WITH_THIS(s->nua),
			    SIPTAG_CONTACT_STR(sig_contact(home, s, c->id)),
			    TAG_IF(!r->notify, SIPTAG_REFER_SUB_STR("false")),
			    TAG_END());
		su_home_deinit(home);
	}
	return r;
}

/* ---- feature referral (draft-audet-sipping-feature-ref) ---------------- */

enum feature {
	F_UNKNOWN = 0,
	F_HOLD,
	F_RETRIEVE,
	F_CLEAR,
	F_ANSWER,
	F_DEFLECT,
	F_TRANSFER, /* SingleStepTransfer */
	F_CONFERENCE,
	F_SEPARATE,
};

static enum feature
feature_parse(const char *name)
{
	static const struct {
		const char *name;
		enum feature f;
	} names[] = {
		{"HoldCall", F_HOLD},
		{"RetrieveCall", F_RETRIEVE},
		{"ClearConnection", F_CLEAR},
		{"AnswerCall", F_ANSWER},
		{"DeflectCall", F_DEFLECT},
		{"SingleStepTransfer", F_TRANSFER},
		{"ConferenceCalls", F_CONFERENCE},
		{"SeparateCalls", F_SEPARATE},
	};

	for (size_t i = 0; i < FC_ARRAY_SIZE(names); i++) {
		if (strcasecmp(name, names[i].name) == 0)
			return names[i].f;
	}
	return F_UNKNOWN;
}

/*
 * The value of the feature URN's parameter `name` (urn:feature:X;a=1;b=2),
 * percent-decoded, into buf: true if present, non-empty and it fits.
 */
static bool
feature_param(const char *urn, const char *name, char *buf, size_t len)
{
	size_t nlen = strlen(name);
	const char *p = strchr(urn, ';');

	while (p) {
		const char *v = p + 1;
		size_t k = strcspn(v, ";?");

		if (k > nlen && v[nlen] == '=' &&
		    strncasecmp(v, name, nlen) == 0) {
			size_t vl = k - nlen - 1;
			char raw[512];

			if (vl == 0 || vl >= sizeof(raw) || vl >= len)
				return false;
			memcpy(raw, v + nlen + 1, vl);
			raw[vl] = '\0';
			url_unescape(buf, raw);
			return buf[0] != '\0';
		}
		p = v[k] == ';' ? v + k : NULL;
	}
	return false;
}

static bool
confirmed(const struct sig_leg *l)
{
	return l->answered &&
	       (l->state == SIG_LEG_CONNECTED || l->state == SIG_LEG_ON_HOLD);
}

/* Does the feature apply to leg l as it is now? */
static bool
feature_applies(enum feature f, const struct sig_leg *l)
{
	bool ringing =
		l->state == SIG_LEG_DIALING_OUT || l->state == SIG_LEG_ALERTING;

	if (l->releasing || l->moving || l->reinviting || l->nh == NULL ||
	    l->state == SIG_LEG_DISCONNECTING || l->conf == NULL ||
	    l->conf->app)
		return false;
	/* A leg busy with another REFER's work takes no feature, but a
	 * dial-out a REFER made may still be cleared while it rings. */
	if ((l->refer || l->transferring) && !(f == F_CLEAR && ringing))
		return false;
	switch (f) {
	case F_HOLD:
		return !l->focus_hold && confirmed(l);
	case F_RETRIEVE:
		return l->focus_hold;
	case F_CLEAR:
		return true;
	case F_ANSWER:
	case F_DEFLECT:
		return l->awaiting; /* an incoming call not answered yet */
	case F_TRANSFER:
	case F_CONFERENCE:
		return confirmed(l) && l->media_up;
	case F_SEPARATE:
		/* Alone already: there is nobody to separate it from. */
		return confirmed(l) && l->media_up && l->conf->n_legs > 1;
	default:
		return false;
	}
}

/*
 * A target for DeflectCall and SingleStepTransfer: a sip: or sips: URI
 * with a host, in printable ASCII without what would end a name-addr.
 */
static bool
sip_target_ok(const char *target)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	const url_t *u;
	bool ok;

	for (const unsigned char *p = (const unsigned char *)target; *p; p++) {
		if (*p < 0x21 || *p >= 0x7f || strchr("<>\"", *p))
			return false;
	}
	u = url_make(home, target);
	ok = u && (u->url_type == url_sip || u->url_type == url_sips) &&
	     u->url_host && u->url_host[0];
	su_home_deinit(home);
	return ok;
}

/*
 * ConferenceCalls' second dialog, named in the feature URN either by the
 * leg's token (;leg=TOKEN, the gr= of its URI) or by its dialog
 * identifiers (;call-id=...;local-tag=...;remote-tag=..., percent-encoded
 * as a URN needs, the tags as Target-Dialog gives them). 0, EINVAL
 * (neither form), ENOENT (no such leg).
 */
static int
second_dialog(struct sig_leg **lp, struct sig *s, const char *urn)
{
	struct sig_dialog_id id;
	char token[32];

	*lp = NULL;
	if (feature_param(urn, "leg", token, sizeof(token))) {
		struct sig_conf *c;
		struct sig_leg *l;

		TAILQ_FOREACH(c, &s->confs, link) {
			TAILQ_FOREACH(l, &c->legs, link) {
				if (!l->releasing &&
				    strcmp(l->token, token) == 0)
					*lp = l;
			}
		}
		return *lp ? 0 : ENOENT;
	}
	if (!feature_param(urn, "call-id", id.call_id, sizeof(id.call_id)) ||
	    !feature_param(urn, "local-tag", id.tag1, sizeof(id.tag1)) ||
	    !feature_param(urn, "remote-tag", id.tag2, sizeof(id.tag2)))
		return EINVAL;
	*lp = sig_leg_by_dialog(s, id.call_id, id.tag1, id.tag2);
	return *lp ? 0 : ENOENT;
}

/*
 * ConferenceCalls: every leg of other's conference that can move goes to
 * leg's conference (RFC 4579 4.10 moves, each participant re-INVITEd
 * with its new focus URI); the emptied conference ends. Legs that cannot
 * move now (ringing, going, mid-move, busy with a REFER) stay where they
 * are. 0 when at least one leg moved, else the errno of other's move.
 */
static int
conference_calls(struct sig_leg *leg, struct sig_leg *other)
{
	struct sig_conf *dst = leg->conf, *src = other->conf;
	struct sig_leg *l, *next;
	unsigned moved = 0, stayed = 0;
	int err, first = 0;

	FC_INFO("sig", "conference %s joins conference %s (%u legs)", src->id,
		dst->id, src->n_legs);
	for (l = TAILQ_FIRST(&src->legs); l; l = next) {
		next = TAILQ_NEXT(l, link);
		err = sig_leg_move(l, dst);
		if (err == 0) {
			moved++;
			continue;
		}
		stayed++;
		if (l == other)
			first = err;
	}
	if (stayed)
		FC_WARN("sig", "conference %s: %u legs could not move now",
			src->id, stayed);
	return moved ? 0 : first;
}

/* SeparateCalls: a private conference of leg's own, with its owner. */
static int
separate_call(struct sig_leg *leg)
{
	struct sig_conf *c = leg->conf, *priv;
	char id[32];
	int err;

	sig_random_id(id, sizeof(id), "c");
	err = sig_conf_create(&priv, leg->s, id, c->owner);
	if (err)
		return err;
	err = sig_leg_move(leg, priv);
	if (err)
		sig_conf_gc(priv);
	return err;
}

/*
 * SingleStepTransfer: the focus REFERs the participant to target on its
 * dialog (RFC 3515); the participant's sipfrag NOTIFYs come to
 * sig_refer_transfer_event.
 */
static void
transfer_start(struct sig_leg *leg, struct sig_refer *r, const char *target)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};

	leg->refer = r;
	leg->transferring = true;
	nua_refer(leg->nh,
		  SIPTAG_REFER_TO_STR(su_sprintf(home, "<%s>", target)),
		  SIPTAG_REFERRED_BY_STR(
			  su_sprintf(home, "<%s>", leg->conf->uri)),
		  SIPTAG_CONTACT_STR(sig_leg_contact(home, leg)), TAG_END());
	su_home_deinit(home);
}

/* The status line of a message/sipfrag body: its code, or 0. */
static int
sipfrag_status(const sip_t *sip, char *phrase, size_t len)
{
	const char *p;
	char buf[128];
	size_t n;
	int code = 0;

	phrase[0] = '\0';
	if (sip == NULL || sip->sip_payload == NULL ||
	    sip->sip_payload->pl_len < 11)
		return 0;
	n = sip->sip_payload->pl_len;
	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	memcpy(buf, sip->sip_payload->pl_data, n);
	buf[n] = '\0';
	if (strncmp(buf, "SIP/2.0 ", 8) != 0)
		return 0;
	p = buf + 8;
	if (sscanf(p, "%3d", &code) != 1 || code < 100 || code > 699)
		return 0;
	p += 3;
	while (*p == ' ')
		p++;
	n = strcspn(p, "\r\n");
	snprintf(phrase, len, "%.*s", (int)n, p);
	for (char *q = phrase; *q; q++) {
		if ((unsigned char)*q < 0x20 || (unsigned char)*q == 0x7f)
			*q = ' '; /* it goes to logs and other sipfrags */
	}
	return code;
}

static void
transfer_done(struct sig_leg *l, int status, const char *phrase)
{
	struct sig_refer *r = l->refer;

	l->transferring = false;
	l->refer = NULL;
	if (r)
		sig_refer_progress(r, status, phrase);
}

void
sig_refer_transfer_event(struct sig *s, nua_event_t event, int status,
			 const char *phrase, struct sig_leg *l,
			 const sip_t *sip, tagi_t tags[])
{
	int substate = -1, code;
	char frag[96];

	(void)s;
	if (!l->transferring || l->releasing)
		return;
	tl_gets(tags, NUTAG_SUBSTATE_REF(substate), TAG_END());
	if (event == nua_r_refer) {
		/* Refused (405, 403, ...): the call goes on as it was. */
		if (status >= 300) {
			FC_INFO("sig", "%s refused the transfer: %d %s",
				l->peer_uri ? l->peer_uri : "?", status,
				phrase ? phrase : "");
			transfer_done(l, status, phrase);
		} else if (status >= 200 &&
			   substate == nua_substate_terminated) {
			/* Accepted without a subscription (Refer-Sub:
			 * false): no outcome will come; it stays. */
			transfer_done(l, status, phrase);
		}
		return;
	}
	code = sipfrag_status(sip, frag, sizeof(frag));
	if (code >= 200 && code < 300) {
		/* Transferred: the focus's dialog with it is done. */
		FC_INFO("sig", "%s transferred: %d %s",
			l->peer_uri ? l->peer_uri : "?", code, frag);
		transfer_done(l, code, frag);
		sig_leg_hangup(l, "departed");
	} else if (code >= 300) {
		FC_INFO("sig", "%s: transfer failed: %d %s",
			l->peer_uri ? l->peer_uri : "?", code, frag);
		transfer_done(l, code, frag);
	} else if (substate == nua_substate_terminated) {
		/* Over without a final sipfrag: expired (nua reports 408
		 * after its refresh time) or ended by the participant. */
		FC_INFO("sig",
			"%s: transfer subscription ended without an "
			"outcome",
			l->peer_uri ? l->peer_uri : "?");
		transfer_done(l, 408, "Request Timeout");
	} else if (code > 100 && l->refer) {
		sig_refer_progress(l->refer, code, frag);
	}
}

/*
 * A REFER whose Refer-To is urn:feature:NAME asks the focus, as the
 * Refer-Recipient, to act on its own dialog named by Target-Dialog (RFC
 * 4538), or by the Request-URI when that is the leg's own URI (;gr=, as
 * the focus's Contact on that dialog gives it). Returns false if Refer-To
 * is no feature URN; otherwise the REFER has been answered:
 *   400 unknown feature, a missing or malformed Target-Dialog, a
 *       DeflectCall/SingleStepTransfer without a SIP target, a
 *       ConferenceCalls without its second dialog;
 *   401/403 the sender is not an authenticated owner or moderator (of
 *       both conferences, for ConferenceCalls);
 *   404 the Request-URI names a leg that is gone;
 *   481 no such dialog (or one of another conference, or other than the
 *       Request-URI's leg; ConferenceCalls: no such second dialog);
 *   488 the feature does not apply to the dialog's state (ConferenceCalls
 *       of two dialogs of one conference);
 *   202 and sipfrag NOTIFYs with the outcome.
 * What each feature does is in the README's feature referral table.
 */
static bool
refer_feature(struct sig *s, nua_handle_t *nh, const sip_t *sip, tagi_t tags[],
	      struct sig_conf *c, struct sig_leg *named_leg,
	      const sip_refer_to_t *rt)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	char *uri = url_as_string(home, rt->r_url), name[64], target[256] = "";
	struct sig_leg *leg, *other = NULL;
	struct sig_dialog_id td;
	struct sig_refer *r;
	enum feature f;
	bool new_dialog;
	size_t n;
	int err;

	if (uri == NULL || strncasecmp(uri, "urn:feature:", 12) != 0) {
		su_home_deinit(home);
		return false;
	}
	n = strcspn(uri + 12, ";?");
	snprintf(name, sizeof(name), "%.*s", (int)(n < 63 ? n : 63), uri + 12);
	f = feature_parse(name);
	if ((f == F_DEFLECT || f == F_TRANSFER) &&
	    (!feature_param(uri, "target", target, sizeof(target)) ||
	     !sip_target_ok(target))) {
		su_home_deinit(home);
		refer_reject(s, nh, 400,
			     f == F_DEFLECT
				     ? "Bad Request - DeflectCall Needs a SIP "
				       "target"
				     : "Bad Request - SingleStepTransfer Needs "
				       "a SIP target");
		return true;
	}
	if (f == F_CONFERENCE) {
		err = second_dialog(&other, s, uri);
		if (err == EINVAL) {
			su_home_deinit(home);
			refer_reject(s, nh, 400,
				     "Bad Request - ConferenceCalls Needs a "
				     "Second Dialog");
			return true;
		}
	}
	su_home_deinit(home);
	if (f == F_UNKNOWN) {
		refer_reject(s, nh, 400, "Bad Request - Unknown Feature");
		return true;
	}
	err = sig_dialog_id_find(&td, sip, "Target-Dialog", "local-tag",
				 "remote-tag");
	if (err && !(err == ENOENT && named_leg)) {
		refer_reject(s, nh, 400,
			     err == ENOENT
				     ? "Bad Request - Target-Dialog Required"
				     : "Bad Request - Malformed Target-Dialog");
		return true;
	}
	if (f == F_CONFERENCE && other && other->conf != c
		    ? !sig_auth_require2(s, nh, sip, c, other->conf,
					 "merge calls")
		    : !sig_auth_require(s, nh, sip, c, NULL, "control calls"))
		return true;
	leg = err ? named_leg
		  : sig_leg_by_dialog(s, td.call_id, td.tag1, td.tag2);
	if (leg == NULL || leg->conf != c || (named_leg && leg != named_leg)) {
		/* Only this conference's, and the Request-URI's leg's. */
		refer_reject(s, nh, 481, "Call/Transaction Does Not Exist");
		return true;
	}
	if (f == F_CONFERENCE && other == NULL) {
		refer_reject(s, nh, 481,
			     "Call/Transaction Does Not Exist - Second Dialog");
		return true;
	}
	if (!feature_applies(f, leg) ||
	    (other && (other->conf == leg->conf ||
		       !feature_applies(F_CONFERENCE, other)))) {
		refer_reject(s, nh, 488,
			     "Not Acceptable Here - Feature Not Applicable");
		return true;
	}
	r = refer_new(s, nh, sip, tags, leg->conf, leg->peer_uri, &new_dialog);
	if (r == NULL)
		return true;
	FC_INFO("sig", "feature %s on %s in conference %s", name,
		leg->peer_uri ? leg->peer_uri : "?", leg->conf->id);
	if (!new_dialog)
		refer_notify(r, 100, "Trying", false);

	switch (f) {
	case F_HOLD:
	case F_RETRIEVE:
		leg->refer = r; /* the re-INVITE's answer ends it */
		leg->focus_hold_prev = leg->focus_hold;
		leg->focus_hold = f == F_HOLD;
		leg->offer_mode = f == F_HOLD ? sdp_sendonly : sdp_sendrecv;
		sig_leg_reinvite(leg);
		break;
	case F_ANSWER:
		sig_leg_admit(leg);
		refer_finish(r, 200, "OK");
		break;
	case F_DEFLECT: {
		char contact[300];

		snprintf(contact, sizeof(contact), "<%s>", target);
		leg->disconnection = "booted";
		leg->state = SIG_LEG_DISCONNECTING;
		sig_leg_ended_by(leg, "rejected", 302);
		nua_respond(leg->nh, SIP_302_MOVED_TEMPORARILY,
			    SIPTAG_CONTACT_STR(contact), TAG_END());
		refer_finish(r, 200, "OK");
		break;
	}
	case F_CLEAR:
		if (leg->awaiting) {
			/* Not answered yet: 480, as the draft's 5.2. */
			leg->disconnection = "booted";
			leg->state = SIG_LEG_DISCONNECTING;
			sig_leg_ended_by(leg, "rejected", 480);
			nua_respond(leg->nh, SIP_480_TEMPORARILY_UNAVAILABLE,
				    TAG_END());
			refer_finish(r, 200, "OK");
		} else if (leg->state == SIG_LEG_DIALING_OUT ||
			   leg->state == SIG_LEG_ALERTING) {
			/* Still ringing: CANCEL, and that is the outcome.
			 * A REFER that asked for this dial-out hears 487. */
			if (leg->refer) {
				sig_refer_progress(leg->refer, 487,
						   "Request Terminated");
				leg->refer = NULL;
			}
			leg->disconnection = "booted";
			leg->state = SIG_LEG_DISCONNECTING;
			sig_leg_ended_by(leg, "cancelled", 487);
			nua_cancel(leg->nh, TAG_END());
			refer_finish(r, 200, "OK");
		} else {
			refer_boot(r, leg);
		}
		break;
	case F_TRANSFER:
		transfer_start(leg, r, target);
		break;
	case F_SEPARATE:
		/* The move's re-INVITE answer is the outcome (its answer
		 * comes through the event loop, after this). */
		err = separate_call(leg);
		if (err)
			refer_finish(r, 500, "Server Internal Error");
		else
			leg->refer = r;
		break;
	case F_CONFERENCE:
		err = conference_calls(leg, other);
		if (err)
			refer_finish(r, 500, "Server Internal Error");
		else
			refer_finish(r, 200, "OK");
		break;
	default:
		break;
	}
	return true;
}

/* nua_i_refer: we answer every REFER ourselves (NUTAG_APPL_METHOD). */
void
sig_refer_event(struct sig *s, nua_handle_t *nh, struct sig_leg *l,
		const sip_t *sip, tagi_t tags[])
{
	const char *user = sip->sip_request->rq_url->url_user;
	const sip_refer_to_t *rt = sip->sip_refer_to;
	struct sig_leg *named_leg;
	struct sig_conf *c;
	struct sig_refer *r;
	char *target;
	int err, bye;
	bool new_dialog, named;

	if (s->shutting_down) {
		refer_reject(s, nh, 503, "Service Unavailable");
		return;
	}
	if (rt == NULL || rt->r_next != NULL) {
		refer_reject(s, nh, 400, "Bad Request - Exactly One Refer-To");
		return;
	}
	/* Inside a call the Request-URI is our Contact on it, the
	 * sender's own leg URI: it names no dialog then. */
	named = false;
	named_leg = l ? NULL : sig_request_leg(s, sip, &named);
	if (named && named_leg == NULL) {
		refer_reject(s, nh, 404, "Not Found - No Such Leg");
		return;
	}
	if (named_leg)
		c = named_leg->conf; /* the leg's own URI, wherever it is */
	else if (l && l->conf)
		c = l->conf;
	else
		c = user ? sig_conf_find(s, user) : NULL;
	if (c == NULL) {
		refer_reject(s, nh, 404, "Conference Not Found");
		return;
	}
	if (refer_feature(s, nh, sip, tags, c, named_leg, rt))
		return; /* urn:feature:..., draft-audet-sipping-feature-ref */
	if (rt->r_url->url_type != url_sip && rt->r_url->url_type != url_sips) {
		refer_reject(s, nh, 400,
			     "Bad Request - Refer-To Must Be a SIP URI");
		return;
	}
	bye = refer_is_bye(rt->r_url);
	if (bye < 0) {
		refer_reject(s, nh, 400,
			     "Bad Request - Refer-To Method Not Supported");
		return;
	}
	/* RFC 4579 4.11: only the owner or a moderator removes people. */
	if (bye &&
	    !sig_auth_require(s, nh, sip, c, NULL, "remove participants"))
		return;

	{
		url_t u = *rt->r_url;
		char *t;

		u.url_headers = NULL; /* ?Replaces=... is not for us here */
		u.url_params = NULL;  /* method=BYE */
		t = url_as_string(NULL, &u);
		target = t ? strdup(t) : NULL;
		su_free(NULL, t);
	}
	r = refer_new(s, nh, sip, tags, c, target, &new_dialog);
	if (r == NULL) {
		free(target);
		return;
	}
	FC_INFO("sig", "conference %s: REFER to %s %s%s", c->id,
		bye ? "remove" : "bring in", target ? target : "?",
		r->notify ? "" : " (no NOTIFYs)");
	free(target);
	target = NULL;
	if (bye) {
		refer_remove(r, c);
		return;
	}
	/* Sofia-SIP 1.12 itself sends the first NOTIFY, "100 Trying", for a
	 * REFER that opened a dialog, as soon as it reports it; in an
	 * existing dialog it does not, and we do. */
	if (!new_dialog)
		refer_notify(r, 100, "Trying", false);

	err = r->target ? sig_dialout(NULL, c, r->target, r) : ENOMEM;
	if (err)
		refer_finish(r, err == EINVAL ? 400 : 503,
			     err == EINVAL ? "Bad Request"
					   : "Service Unavailable");
}

/* A leg that a REFER waits on went away before its final answer. */
void
sig_refer_forget(struct sig *s, struct sig_refer *r, bool gone)
{
	(void)s;
	if (!r->done && gone)
		refer_finish(r, 200, "OK");
	else if (!r->done)
		refer_finish(r, 487, "Request Terminated");
}

/* At the end: nothing more will be reported. */
void
sig_refer_free_all(struct sig *s)
{
	while (!TAILQ_EMPTY(&s->refers))
		refer_free(TAILQ_FIRST(&s->refers));
}
