/*
 * confevent.c - the RFC 4575 conference event package on the focus.
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
 * Documents are rendered by confinfo.c from a description built here from
 * the conference's legs; this file owns only the subscription bookkeeping.
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
#include "signaling/sig_priv.h"

#define CONFEVENT     "conference"
#define CONFINFO_TYPE "application/conference-info+xml"

struct sig_sub {
	TAILQ_ENTRY(sig_sub) link; /* in conf->subs */
	struct sig *s;
	struct sig_conf *conf; /* borrowed */
	nua_handle_t *nh;      /* the subscription's dialog (shared) */
	char *subscriber;      /* From AOR, for the log */
	unsigned version;      /* of the last document sent */
};

static struct sig_sub *
sub_by_handle(struct sig *s, nua_handle_t *nh)
{
	struct sig_conf *c;
	struct sig_sub *sub;

	TAILQ_FOREACH(c, &s->confs, link) {
		TAILQ_FOREACH(sub, &c->subs, link) {
			if (sub->nh == nh)
				return sub;
		}
	}
	TAILQ_FOREACH(sub, &s->ending_subs, link) {
		if (sub->nh == nh)
			return sub;
	}
	return NULL;
}

bool
sig_confevent_owns(struct sig *s, nua_handle_t *nh)
{
	return nh && sub_by_handle(s, nh) != NULL;
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
	nua_notify(
		sub->nh, SIPTAG_EVENT_STR(CONFEVENT),
		SIPTAG_CONTENT_TYPE_STR(CONFINFO_TYPE), SIPTAG_PAYLOAD_STR(xml),
		NUTAG_SUBSTATE(last ? nua_substate_terminated
				    : nua_substate_active),
		TAG_IF(last, SIPTAG_SUBSCRIPTION_STATE_STR(state)), TAG_END());
}

static void
sub_send_full(struct sig_sub *sub, bool last)
{
	char *xml = doc_full(sub->conf, ++sub->version);

	if (xml == NULL) {
		FC_ERR("sig", "conference %s: cannot render its state",
		       sub->conf->id);
		sub->version--;
		return;
	}
	sub_notify(sub, xml, last, NULL);
	free(xml);
}

/* ---- changes ----------------------------------------------------------- */

void
sig_confevent_changed(struct sig_conf *c, const struct sig_leg *l,
		      const char *disconnection)
{
	struct sig_sub *sub;

	TAILQ_FOREACH(sub, &c->subs, link) {
		char *xml = doc_delta(c, l, disconnection, sub->version + 1);

		if (xml == NULL) {
			FC_ERR("sig", "conference %s: cannot render a change",
			       c->id);
			continue;
		}
		sub->version++;
		sub_notify(sub, xml, false, NULL);
		free(xml);
	}
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
accepts_confinfo(const sip_t *sip)
{
	const sip_accept_t *a;

	if (sip->sip_accept == NULL)
		return true; /* RFC 6665: the package's default type */
	for (a = sip->sip_accept; a; a = a->ac_next) {
		if (a->ac_type &&
		    (strcasecmp(a->ac_type, CONFINFO_TYPE) == 0 ||
		     strcmp(a->ac_type, "*/*") == 0 ||
		     strcasecmp(a->ac_type, "application/*") == 0))
			return true;
	}
	return false;
}

static void
subscribe_reject(struct sig *s, nua_handle_t *nh, int status,
		 const char *phrase)
{
	sig_reject(s, nh, status, phrase,
		   TAG_IF(status == 489, SIPTAG_ALLOW_EVENTS_STR(CONFEVENT)),
		   TAG_IF(status == 406, SIPTAG_ACCEPT_STR(CONFINFO_TYPE)),
		   TAG_END());
}

static void
subscribe_new(struct sig *s, nua_handle_t *nh, struct sig_leg *l,
	      const sip_t *sip)
{
	const char *user = sip->sip_request->rq_url->url_user;
	struct sig_conf *c;
	struct sig_sub *sub;

	if (sip->sip_event == NULL ||
	    strcasecmp(sip->sip_event->o_type, CONFEVENT) != 0) {
		subscribe_reject(s, nh, SIP_489_BAD_EVENT);
		return;
	}
	if (l && l->conf)
		c = l->conf; /* in a dialog with the focus: its conference */
	else
		c = user ? sig_conf_find(s, user) : NULL;
	if (c == NULL) {
		subscribe_reject(s, nh, 404, "Conference Not Found");
		return;
	}
	if (!accepts_confinfo(sip)) {
		subscribe_reject(s, nh, SIP_406_NOT_ACCEPTABLE);
		return;
	}

	sub = calloc(1, sizeof(*sub));
	if (sub == NULL) {
		subscribe_reject(s, nh, SIP_500_INTERNAL_SERVER_ERROR);
		return;
	}
	sub->s = s;
	sub->conf = c;
	sub->nh = nh;
	sub->subscriber = sig_from_aor(sip);
	TAILQ_INSERT_TAIL(&c->subs, sub, link);
	FC_INFO("sig", "conference %s: %s subscribed%s", c->id,
		sub->subscriber ? sub->subscriber : "?",
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
	struct sig_sub *sub = nh ? sub_by_handle(s, nh) : NULL;
	int substate = -1;

	tl_gets(tags, NUTAG_SUBSTATE_REF(substate), TAG_END());
	switch (event) {
	case nua_i_subscribe:
		if (sub == NULL) {
			if (s->shutting_down)
				subscribe_reject(s, nh, 503,
						 "Service Unavailable");
			else
				subscribe_new(s, nh, l, sip);
		} else if (substate == nua_substate_terminated) {
			sub_free(sub); /* Expires: 0, nua said goodbye */
		} else {
			sub_send_full(sub, false); /* a refresh */
		}
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
