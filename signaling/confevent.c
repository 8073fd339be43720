/*
 * confevent.c - the focus's event packages: RFC 4575 conference and RFC
 * 4235 dialog.
 *
 * A SUBSCRIBE with `Event: conference` to a conference URI, inside a
 * dialog with the focus or outside any, is accepted with 200 and answered
 * at once by a NOTIFY carrying the full application/conference-info+xml
 * state (version 1 for that subscription). Every later change to the
 * conference - a participant joins, changes state (connected, on-hold),
 * or leaves - goes to every subscriber as a partial document with the
 * subscription's version plus one: the changed user in full, or deleted
 * with its disconnection-method, and the new conference-state. A refresh
 * gets the full state again (nua resends the last NOTIFY by itself; the
 * full one follows with the next version). Expires: 0 ends the
 * subscription; the end of the conference ends every subscription with
 * reason=noresource after a last full document (active false).
 *
 * A subscription belongs to a conference, not to a call: a BYE ends the
 * subscriber's call but not its subscription, even when the SUBSCRIBE came
 * inside that call's dialog (the handle then passes to the subscription).
 *
 * The dialog package (RFC 4235) rides on the same bookkeeping. SUBSCRIBE
 * with `Event: dialog` to a conference URI watches the focus's dialogs
 * with every participant of that conference; to a leg's own URI (the
 * ;gr= URI in the focus's Contact on that dialog) it watches that one
 * dialog wherever it moves, and ends (noresource) when the dialog does.
 * NOTIFYs carry application/dialog-info+xml: a full document first and
 * on each refresh, then one partial document per change, the changed
 * dialog with its state (trying, proceeding, early, confirmed,
 * terminated with the event and code that ended it), direction, tags,
 * and the focus (local: conference URI, leg URI as target with isfocus
 * and +sip.rendering, "no" while the focus holds the leg out of the mix)
 * and participant (remote: identity, display name, Contact). A leg that
 * moves to another conference leaves the old one's dialog view by a full
 * document without it: the dialog goes on, only elsewhere.
 *
 * Documents are rendered by confinfo.c and dialoginfo.c from descriptions
 * built here from the conference's legs; this file owns only the
 * subscription bookkeeping.
 * Cost: per change, one render per subscriber (they differ only by
 * version), O(participants) for full documents. Control thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "signaling/confinfo.h"
#include "signaling/dialoginfo.h"
#include "signaling/sig_priv.h"

#define CONFEVENT     "conference"
#define CONFINFO_TYPE "application/conference-info+xml"
#define DLGEVENT      "dialog"
#define DLGINFO_TYPE  "application/dialog-info+xml"

struct sig_sub {
	TAILQ_ENTRY(sig_sub) link; /* in conf->subs */
	struct sig *s;
	struct sig_conf *conf; /* borrowed */
	bool dialog;	       /* RFC 4235 dialog, else RFC 4575 */
	su_home_t home[1];
	sip_event_t *event;  /* the SUBSCRIBE's, id and all, for NOTIFYs */
	struct sig_leg *leg; /* dialog: the one leg watched, or NULL */
	nua_handle_t *nh;    /* the subscription's dialog (shared) */
	char *subscriber;    /* From AOR, for the log */
	unsigned version;    /* of the last document sent */
};

/* Does sub answer to event (NULL: to any on its handle)? One dialog
 * may carry a conference and a dialog subscription, each with its id. */
static bool
sub_is(const struct sig_sub *sub, nua_handle_t *nh, const sip_event_t *event)
{
	const char *id = sub->event ? sub->event->o_id : NULL;

	if (sub->nh != nh)
		return false;
	if (event == NULL || event->o_type == NULL)
		return true;
	return strcasecmp(event->o_type, sub->dialog ? DLGEVENT : CONFEVENT) ==
		       0 &&
	       ((id == NULL && event->o_id == NULL) ||
		(id && event->o_id && strcmp(id, event->o_id) == 0));
}

static struct sig_sub *
sub_by_handle(struct sig *s, nua_handle_t *nh, const sip_event_t *event)
{
	struct sig_conf *c;
	struct sig_sub *sub;

	TAILQ_FOREACH(c, &s->confs, link) {
		TAILQ_FOREACH(sub, &c->subs, link) {
			if (sub_is(sub, nh, event))
				return sub;
		}
	}
	TAILQ_FOREACH(sub, &s->ending_subs, link) {
		if (sub_is(sub, nh, event))
			return sub;
	}
	return NULL;
}

bool
sig_confevent_owns(struct sig *s, nua_handle_t *nh)
{
	return nh && sub_by_handle(s, nh, NULL) != NULL;
}

static void
sub_free(struct sig_sub *sub)
{
	if (sub->conf) {
		TAILQ_REMOVE(&sub->conf->subs, sub, link);
		FC_INFO("sig", "conference %s: subscription of %s ended",
			sub->conf->id, sub->subscriber ? sub->subscriber : "?");
	} else {
		TAILQ_REMOVE(&sub->s->ending_subs, sub, link);
	}
	{
		nua_handle_t *nh = sub->nh;

		sub->nh = NULL;
		sig_handle_release(sub->s, nh);
	}
	free(sub->subscriber);
	su_home_deinit(sub->home);
	free(sub);
}

/* ---- documents --------------------------------------------------------- */

/* What one leg looks like in a document; strings point into the leg. */
struct leg_view {
	struct ci_user user;
	struct ci_endpoint ep;
	struct ci_media media;
	const char *role;
};

static const char *
media_status(const struct sig_leg *l)
{
	/* The stream as the participant uses it: what it offered. */
	return sig_sdp_mode_name(l->media.peer_mode);
}

static void
leg_view(struct leg_view *v, const struct sig_leg *l, enum ci_state state,
	 const char *disconnection)
{
	memset(v, 0, sizeof(*v));
	v->role = "participant";
	v->media.id = "1";
	v->media.type = "audio";
	v->media.status = media_status(l);
	v->media.src_id = l->mp.ssrc;
	v->media.have_src_id = true;

	v->ep.entity = l->contact ? l->contact : l->peer_uri;
	v->ep.state = CI_FULL;
	v->ep.status =
		disconnection ? "disconnected" : sig_leg_state_name(l->state);
	v->ep.joining_method = l->joining;
	v->ep.joining_when = l->joined;
	v->ep.disconnection_method = disconnection;
	if (disconnection)
		v->ep.disconnection_when = (uint64_t)time(NULL);
	if (!disconnection) {
		v->ep.media = &v->media;
		v->ep.n_media = 1;
	}
	if (l->call_id && l->from_tag && l->to_tag) {
		v->ep.call_id = l->call_id;
		v->ep.from_tag = l->from_tag;
		v->ep.to_tag = l->to_tag;
	}

	v->user.entity = l->peer_uri ? l->peer_uri : v->ep.entity;
	v->user.state = state;
	v->user.display = l->display;
	v->user.roles = &v->role;
	v->user.n_roles = 1;
	v->user.endpoints = &v->ep;
	v->user.n_endpoints = 1;
}

static void
doc_head(struct ci_doc *d, const struct sig_conf *c, enum ci_state state,
	 const char **uris)
{
	memset(d, 0, sizeof(*d));
	d->entity = c->uri;
	d->state = state;
	if (state == CI_FULL) {
		uris[0] = c->uri;
		d->have_description = true;
		d->conf_uris = uris;
		d->n_conf_uris = 1;
		d->media_types[0] = "audio";
		d->n_media_types = 1;
	}
	d->have_state = true;
	d->user_count = c->n_legs;
	d->active = !c->releasing;
	d->locked = false;
}

/* The full state of c, rendered for version `version`. */
static char *
doc_full(const struct sig_conf *c, unsigned version)
{
	struct leg_view *views;
	struct ci_user *users;
	const char *uris[1];
	struct ci_doc d;
	struct sig_leg *l;
	char *xml = NULL;
	size_t len, i = 0;

	views = calloc(c->n_legs + 1, sizeof(*views));
	users = calloc(c->n_legs + 1, sizeof(*users));
	if (views == NULL || users == NULL)
		goto out;
	doc_head(&d, c, CI_FULL, uris);
	TAILQ_FOREACH(l, &c->legs, link) {
		leg_view(&views[i], l, CI_FULL, NULL);
		users[i] = views[i].user;
		users[i].endpoints = &views[i].ep;
		views[i].ep.media =
			views[i].ep.n_media ? &views[i].media : NULL;
		i++;
	}
	d.have_users = true;
	d.users_state = CI_FULL;
	d.users = users;
	d.n_users = (unsigned)i;
	if (ci_render(&xml, &len, &d, version) != 0)
		xml = NULL;
out:
	free(views);
	free(users);
	return xml;
}

/* A delta: leg l (in full, or deleted) and the conference-state. */
static char *
doc_delta(const struct sig_conf *c, const struct sig_leg *l,
	  const char *disconnection, unsigned version)
{
	struct leg_view v;
	const char *uris[1];
	struct ci_doc d;
	char *xml = NULL;
	size_t len;

	doc_head(&d, c, CI_PARTIAL, uris);
	if (l) {
		leg_view(&v, l, disconnection ? CI_DELETED : CI_FULL,
			 disconnection);
		v.user.endpoints = &v.ep;
		v.ep.media = v.ep.n_media ? &v.media : NULL;
		d.have_users = true;
		d.users_state = CI_PARTIAL;
		d.users = &v.user;
		d.n_users = 1;
	}
	if (ci_render(&xml, &len, &d, version) != 0)
		xml = NULL;
	return xml;
}

static void
sub_notify(struct sig_sub *sub, const char *xml, bool last, const char *reason)
{
	char state[64];

	if (last)
		snprintf(state, sizeof(state), "terminated;reason=%s",
			 reason ? reason : "noresource");
	nua_notify(sub->nh, TAG_IF(sub->event, SIPTAG_EVENT(sub->event)),
		   TAG_IF(!sub->event,
			  SIPTAG_EVENT_STR(sub->dialog ? DLGEVENT : CONFEVENT)),
		   SIPTAG_CONTENT_TYPE_STR(sub->dialog ? DLGINFO_TYPE
						       : CONFINFO_TYPE),
		   SIPTAG_PAYLOAD_STR(xml),
		   NUTAG_SUBSTATE(last ? nua_substate_terminated
				       : nua_substate_active),
		   TAG_IF(last, SIPTAG_SUBSCRIPTION_STATE_STR(state)),
		   TAG_END());
}

static char *dlg_doc(const struct sig_sub *sub, const struct sig_leg *l,
		     bool gone, unsigned version);

static void
sub_send_full(struct sig_sub *sub, bool last)
{
	char *xml = sub->dialog ? dlg_doc(sub, NULL, false, sub->version + 1)
				: doc_full(sub->conf, sub->version + 1);

	if (xml == NULL) {
		FC_ERR("sig", "conference %s: cannot render its state",
		       sub->conf->id);
		return;
	}
	sub->version++;
	sub_notify(sub, xml, last, NULL);
	free(xml);
}

/* ---- dialog-info documents (RFC 4235) ----------------------------------- */

static const char *
dlg_state(const struct sig_leg *l, bool gone)
{
	if (gone)
		return "terminated";
	if (l->answered)
		return "confirmed";
	if (l->uas)
		return "early"; /* our 180 went out with our tag */
	if (l->state == SIG_LEG_ALERTING)
		return l->to_tag ? "early" : "proceeding";
	return "trying";
}

/* One leg's dialog as the focus sees it; strings in l or home. */
static void
dlg_view(struct di_dialog *d, su_home_t *home, const struct sig_conf *c,
	 const struct sig_leg *l, bool gone)
{
	struct di_party *lo = &d->local, *re = &d->remote;

	memset(d, 0, sizeof(*d));
	d->id = l->token;
	d->call_id = l->call_id;
	d->local_tag = l->uas ? l->to_tag : l->from_tag;
	d->remote_tag = l->uas ? l->from_tag : l->to_tag;
	d->direction = l->uas ? "recipient" : "initiator";
	d->state = dlg_state(l, gone);
	if (gone) {
		d->event = l->dlg_event;
		d->code = l->dlg_code;
	}
	if (l->answered && l->answered_at) {
		uint64_t now = (uint64_t)time(NULL);

		d->have_duration = true;
		d->duration = now > l->answered_at ? now - l->answered_at : 0;
	}
	d->have_local = true;
	lo->identity = c->uri;
	lo->target = su_sprintf(home, "sip:%s@%s;gr=%s", c->id, c->s->domain,
				l->token);
	lo->params[lo->n_params][0] = "isfocus";
	lo->params[lo->n_params++][1] = "true";
	if (l->answered && !gone) {
		/* Is the focus mixing what this participant sends? */
		bool out = l->focus_hold || l->state == SIG_LEG_ON_HOLD;

		lo->params[lo->n_params][0] = "+sip.rendering";
		lo->params[lo->n_params++][1] = out ? "no" : "yes";
	}
	d->have_remote = true;
	re->identity = l->peer_uri;
	re->display = l->display;
	re->target = l->contact;
}

/*
 * A dialog-info document for sub: full (l NULL) with every dialog it
 * watches, or partial with l's dialog (terminated when gone).
 */
static char *
dlg_doc(const struct sig_sub *sub, const struct sig_leg *l, bool gone,
	unsigned version)
{
	const struct sig_conf *c = sub->conf;
	su_home_t home[1] = {SU_HOME_INIT(home)};
	struct di_dialog *dd = NULL;
	const struct sig_leg *it;
	char *entity, *xml = NULL;
	unsigned n = 0;
	size_t len;

	if (sub->leg)
		entity = su_sprintf(home, "sip:%s@%s;gr=%s", c->id,
				    c->s->domain, sub->leg->token);
	else
		entity = c->uri;
	dd = calloc(l ? 1 : c->n_legs + 1, sizeof(*dd));
	if (dd == NULL || entity == NULL)
		goto out;
	if (l) {
		dlg_view(&dd[n++], home, c, l, gone);
	} else {
		TAILQ_FOREACH(it, &c->legs, link) {
			if (sub->leg == NULL || sub->leg == it)
				dlg_view(&dd[n++], home, c, it, false);
		}
	}
	if (di_render(&xml, &len, entity, l == NULL, dd, n, version) != 0)
		xml = NULL;
out:
	free(dd);
	su_home_deinit(home);
	return xml;
}

/* ---- changes ----------------------------------------------------------- */

/* A partial NOTIFY to sub about l; the last one when final. */
static void
sub_send_delta(struct sig_sub *sub, struct sig_leg *l,
	       const char *disconnection, bool final)
{
	char *xml = sub->dialog ? dlg_doc(sub, l, disconnection != NULL,
					  sub->version + 1)
				: doc_delta(sub->conf, l, disconnection,
					    sub->version + 1);

	if (xml == NULL) {
		FC_ERR("sig", "conference %s: cannot render a change",
		       sub->conf->id);
		return;
	}
	sub->version++;
	sub_notify(sub, xml, final, NULL);
	free(xml);
}

/* A subscription whose resource went: it waits in ending_subs for the
 * answer to its last NOTIFY, which ended it. */
static void
sub_retire(struct sig_sub *sub)
{
	struct sig_conf *c = sub->conf;

	FC_INFO("sig", "conference %s: subscription of %s ended", c->id,
		sub->subscriber ? sub->subscriber : "?");
	TAILQ_REMOVE(&c->subs, sub, link);
	sub->conf = NULL;
	sub->leg = NULL;
	TAILQ_INSERT_TAIL(&c->s->ending_subs, sub, link);
}

/* The dialog package's share of a change of l (gone: its dialog ended). */
static void
dialog_changed(struct sig_conf *c, struct sig_leg *l, bool gone)
{
	struct sig_sub *sub, *next;

	/* Going down is not a dialog state: the end comes with the
	 * release, with how it ended. */
	if (!gone && l->state == SIG_LEG_DISCONNECTING)
		return;
	/* A caller's dialog is confirmed by our 2xx, but nua tells us our
	 * tag only with the ACK: it is announced then, tags and all. */
	if (!gone && l->uas && l->answered && l->to_tag == NULL)
		return;
	for (sub = TAILQ_FIRST(&c->subs); sub; sub = next) {
		next = TAILQ_NEXT(sub, link);
		if (!sub->dialog || (sub->leg && sub->leg != l))
			continue;
		sub_send_delta(sub, l, gone ? "" : NULL, gone && sub->leg);
		if (gone && sub->leg)
			sub_retire(sub);
	}
}

void
sig_confevent_changed(struct sig_conf *c, struct sig_leg *l,
		      const char *disconnection)
{
	struct sig_sub *sub;

	TAILQ_FOREACH(sub, &c->subs, link) {
		if (!sub->dialog)
			sub_send_delta(sub, l, disconnection, false);
	}
	dialog_changed(c, l, disconnection != NULL);
}

void
sig_confevent_dialog_changed(struct sig_conf *c, struct sig_leg *l, bool gone)
{
	dialog_changed(c, l, gone);
}

void
sig_confevent_moved(struct sig_conf *old, struct sig_conf *dst,
		    struct sig_leg *l)
{
	struct sig_sub *sub, *next;

	for (sub = TAILQ_FIRST(&old->subs); sub; sub = next) {
		next = TAILQ_NEXT(sub, link);
		if (!sub->dialog) {
			sub_send_delta(sub, l, "departed", false);
		} else if (sub->leg == l) {
			/* A leg's watcher follows it. */
			TAILQ_REMOVE(&old->subs, sub, link);
			sub->conf = dst;
			TAILQ_INSERT_TAIL(&dst->subs, sub, link);
		} else if (sub->leg == NULL) {
			sub_send_full(sub, false); /* l is no longer here */
		}
	}
	sig_confevent_changed(dst, l, NULL);
}

void
sig_confevent_ended(struct sig_conf *c)
{
	struct sig_sub *sub;

	while ((sub = TAILQ_FIRST(&c->subs)) != NULL) {
		if (c->s->nua_done) {
			sub_free(sub); /* the stack has ended it already */
			continue;
		}
		sub_send_full(sub, true);
		/* The handle must live until that last NOTIFY is answered
		 * (nua_r_notify), after the conference itself is gone. */
		FC_INFO("sig", "conference %s: subscription of %s ended", c->id,
			sub->subscriber ? sub->subscriber : "?");
		TAILQ_REMOVE(&c->subs, sub, link);
		sub->conf = NULL;
		TAILQ_INSERT_TAIL(&c->s->ending_subs, sub, link);
	}
}

/* At the very end: c's subscriptions go without a word. */
void
sig_confevent_drop(struct sig_conf *c)
{
	while (!TAILQ_EMPTY(&c->subs))
		sub_free(TAILQ_FIRST(&c->subs));
}

/* Before nua goes: subscriptions whose last NOTIFY is unanswered. */
void
sig_confevent_free_all(struct sig *s)
{
	while (!TAILQ_EMPTY(&s->ending_subs))
		sub_free(TAILQ_FIRST(&s->ending_subs));
}

/* ---- SUBSCRIBE --------------------------------------------------------- */

static bool
accepts_type(const sip_t *sip, const char *type)
{
	const sip_accept_t *a;

	if (sip->sip_accept == NULL)
		return true; /* RFC 6665: the package's default type */
	for (a = sip->sip_accept; a; a = a->ac_next) {
		if (a->ac_type &&
		    (strcasecmp(a->ac_type, type) == 0 ||
		     strcmp(a->ac_type, "*/*") == 0 ||
		     strcasecmp(a->ac_type, "application/*") == 0))
			return true;
	}
	return false;
}

static void
subscribe_reject(struct sig *s, nua_handle_t *nh, int status,
		 const char *phrase, const char *type)
{
	sig_reject(s, nh, status, phrase,
		   TAG_IF(status == 489,
			  SIPTAG_ALLOW_EVENTS_STR(CONFEVENT ", " DLGEVENT)),
		   TAG_IF(status == 406, SIPTAG_ACCEPT_STR(type)), TAG_END());
}

static void
subscribe_new(struct sig *s, nua_handle_t *nh, struct sig_leg *l,
	      const sip_t *sip)
{
	const char *user = sip->sip_request->rq_url->url_user;
	struct sig_leg *watched = NULL;
	struct sig_conf *c;
	struct sig_sub *sub;
	bool dialog, named;

	dialog = sip->sip_event &&
		 strcasecmp(sip->sip_event->o_type, DLGEVENT) == 0;
	if (sip->sip_event == NULL ||
	    (!dialog && strcasecmp(sip->sip_event->o_type, CONFEVENT) != 0)) {
		subscribe_reject(s, nh, SIP_489_BAD_EVENT, NULL);
		return;
	}
	if (dialog && l == NULL) {
		/* A leg's own URI watches that one dialog. */
		watched = sig_request_leg(s, sip, &named);
		if (named && (watched == NULL || watched->conf == NULL)) {
			subscribe_reject(s, nh, 404, "Dialog Not Found", NULL);
			return;
		}
	}
	if (watched)
		c = watched->conf;
	else if (l && l->conf)
		c = l->conf; /* in a dialog with the focus: its conference */
	else
		c = user ? sig_conf_find(s, user) : NULL;
	if (c == NULL) {
		subscribe_reject(s, nh, 404, "Conference Not Found", NULL);
		return;
	}
	if (!accepts_type(sip, dialog ? DLGINFO_TYPE : CONFINFO_TYPE)) {
		subscribe_reject(s, nh, SIP_406_NOT_ACCEPTABLE,
				 dialog ? DLGINFO_TYPE : CONFINFO_TYPE);
		return;
	}

	sub = calloc(1, sizeof(*sub));
	if (sub == NULL) {
		subscribe_reject(s, nh, SIP_500_INTERNAL_SERVER_ERROR, NULL);
		return;
	}
	sub->s = s;
	su_home_init(sub->home);
	sub->event = sip_event_dup(sub->home, sip->sip_event);
	sub->conf = c;
	sub->dialog = dialog;
	sub->leg = watched;
	sub->nh = nh;
	sub->subscriber = sig_from_aor(sip);
	TAILQ_INSERT_TAIL(&c->subs, sub, link);
	FC_INFO("sig", "conference %s: %s subscribed to %s%s%s", c->id,
		sub->subscriber ? sub->subscriber : "?",
		dialog ? "dialog events" : "conference events",
		watched ? " of one leg" : "",
		l ? " (in its call's dialog)" : "");

	{
		su_home_t home[1] = {SU_HOME_INIT(home)};

		nua_respond(nh, SIP_200_OK, NUTAG_WITH_THIS(s->nua),
			    SIPTAG_CONTACT_STR(sig_contact(home, s, c->id)),
			    TAG_END());
		su_home_deinit(home);
	}
	/* RFC 6665 4.2.1.2: the first NOTIFY follows the 200 at once. */
	sub_send_full(sub, false);
}

/*
 * nua_i_subscribe, and the nua_r_notify of our NOTIFYs. Returns true when
 * the event belonged to the conference package.
 */
bool
sig_confevent_event(struct sig *s, nua_event_t event, int status,
		    nua_handle_t *nh, struct sig_leg *l, const sip_t *sip,
		    tagi_t tags[])
{
	sip_event_t const *ev = NULL;
	struct sig_sub *sub;
	int substate = -1;

	tl_gets(tags, NUTAG_SUBSTATE_REF(substate), SIPTAG_EVENT_REF(ev),
		TAG_END());
	if (event == nua_i_subscribe && sip)
		ev = sip->sip_event;
	sub = nh ? sub_by_handle(s, nh, ev) : NULL;
	switch (event) {
	case nua_i_subscribe:
		if (sub == NULL) {
			if (s->shutting_down)
				subscribe_reject(s, nh, 503,
						 "Service Unavailable", NULL);
			else
				subscribe_new(s, nh, l, sip);
		} else if (substate == nua_substate_terminated) {
			/* Expires: 0. nua sends the terminating NOTIFY itself,
			 * after any NOTIFY still unanswered: the handle must
			 * live until that one is answered (nua_r_notify). */
			if (sub->conf)
				sub_retire(sub);
		} else if (sub->conf) {
			sub_send_full(sub, false); /* a refresh */
		}
		/* else: ended on our side already; the last NOTIFY is out */
		return true;
	case nua_r_notify:
		if (sub && substate == nua_substate_terminated &&
		    status >= 200) {
			sub_free(sub); /* timed out, or refused by them */
		}
		return sub != NULL || l == NULL;
	default:
		return false;
	}
}
