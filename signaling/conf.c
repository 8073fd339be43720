/*
 * conf.c - conferences and legs on the control thread, and how they are
 * programmed into the media plane.
 *
 * A conference lives on one mixer worker, chosen when it is created as the
 * worker with the fewest legs. A leg owns one RTP endpoint (dp_ep), one
 * mixer leg and the flow that steers its packets to the worker.
 *
 * Bringing a leg up sends, in this order: the conference attach (for a new
 * conference) and the leg attach to the worker, then the flow to the io
 * lcore; the worker's ring is FIFO, so it always knows the conference before
 * the leg and the leg before its first packet can arrive (a packet that
 * races ahead is counted as rx_no_leg and dropped).
 *
 * Taking a leg down is the reverse: it leaves the roster at once, then the
 * worker detaches it and the io lcore removes the flow; when both replies
 * are back (leg->pending reaches zero) the endpoint is closed and the
 * memory freed. A conference whose last leg left leaves the table at once
 * (a new INVITE for the same ID makes a new one) and is detached after its
 * legs. Every media call a leg or conference makes counts in `pending`, so
 * no callback ever finds freed memory.
 *
 * Cost: all of this is per call set-up or tear-down, on the control thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <arpa/inet.h>

#include "signaling/sig_priv.h"

void
sig_leg_strings_free(struct sig_leg *l)
{
	free(l->peer_uri);
	free(l->call_id);
	free(l->display);
	free(l->contact);
	free(l->from_tag);
	free(l->to_tag);
	free(l->last_sdp);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		len = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond U+10FFFF, U+FFFE/U+FFFF. */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) ||
	    cp > 0x10ffff || cp == 0xfffe || cp == 0xffff)
		return 0;
	return len;
}

/*
 * A copy of text fit for XML documents, JSON and logs: control characters
 * and bytes that are not UTF-8 become '?'. With unquote, the quotes and
 * backslash escapes of a SIP quoted-string go too. malloc'd.
 */
static char *
clean_text(const char *q, bool unquote)
{
	const unsigned char *u = (const unsigned char *)q;
	size_t n = strlen(q), j = 0;
	char *out = malloc(n + 1);

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t k;

		if (unquote && u[i] == '"' && (i == 0 || i == n - 1))
			continue;
		if (unquote && u[i] == '\\' && i + 1 < n - 1)
			i++;
		if (u[i] < 0x20 || u[i] == 0x7f) {
			out[j++] = '?';
			continue;
		}
		k = utf8_len(u + i, n - i);
		if (k == 0) {
			out[j++] = '?';
			continue;
		}
		memcpy(out + j, u + i, k);
		j += k;
		i += k - 1;
	}
	out[j] = '\0';
	return out;
}

char *
sig_unquote(const char *quoted)
{
	return clean_text(quoted, true);
}

char *
sig_clean_text(const char *text)
{
	return text ? clean_text(text, false) : NULL;
}

/* A URI from the network as cleaned text (see clean_text), malloc'd. */
char *
sig_url_text(const url_t *url)
{
	char *u = url_as_string(NULL, url);
	char *out = sig_clean_text(u);

	su_free(NULL, u);
	return out;
}

const char *
sig_leg_state_name(enum sig_leg_state st)
{
	switch (st) {
	case SIG_LEG_DIALING_IN:
		return "dialing-in";
	case SIG_LEG_CONNECTED:
		return "connected";
	case SIG_LEG_ON_HOLD:
		return "on-hold";
	case SIG_LEG_DISCONNECTING:
		return "disconnecting";
	case SIG_LEG_DIALING_OUT:
		return "dialing-out";
	case SIG_LEG_ALERTING:
		return "alerting";
	case SIG_LEG_PENDING:
		return "pending";
	}
	return "?";
}

struct sig_conf *
sig_conf_find(struct sig *s, const char *id)
{
	struct sig_conf *c;

	TAILQ_FOREACH(c, &s->confs, link) {
		if (!c->releasing && strcmp(c->id, id) == 0)
			return c;
	}
	return NULL;
}

static void
conf_free(struct sig_conf *c)
{
	mix_conf_free(c->mc);
	free(c->id);
	free(c->uri);
	free(c->owner);
	free(c);
}

/* A released conference goes once the worker has answered everything. */
static void
conf_maybe_free(struct sig_conf *c)
{
	struct sig *s = c->s;

	if (!c->releasing || c->pending)
		return;
	TAILQ_REMOVE(&s->confs, c, link);
	FC_INFO("sig", "conference %s ended", c->id);
	conf_free(c);
	sig_maybe_finish(s);
}

static void
conf_media_done(void *arg, int err)
{
	struct sig_conf *c = arg;

	if (err) {
		FC_ERR("sig", "conference %s: worker %u refused: %s", c->id,
		       c->worker, strerror(err));
		if (c->releasing)
			c->mc = NULL; /* the worker still holds it */
	}
	c->pending--;
	conf_maybe_free(c);
}

/* The least loaded worker (tick time as last measured, in steps of 5%
 * so noise does not decide), then the one with fewest legs. */
static unsigned
sig_worker_pick(const struct sig *s)
{
	unsigned best = 0;

	for (unsigned i = 1; i < s->n_workers; i++) {
		unsigned a = s->worker_load[i] / 50,
			 b = s->worker_load[best] / 50;

		if (a < b ||
		    (a == b && s->worker_legs[i] < s->worker_legs[best]))
			best = i;
	}
	return best;
}

static int conf_create(struct sig_conf **cp, struct sig *s, const char *id,
		       const char *owner, bool app);

int
sig_conf_create(struct sig_conf **cp, struct sig *s, const char *id,
		const char *owner)
{
	return conf_create(cp, s, id, owner, false);
}

int
sig_conf_create_app(struct sig_conf **cp, struct sig *s, const char *id)
{
	return conf_create(cp, s, id, NULL, true);
}

static int
conf_create(struct sig_conf **cp, struct sig *s, const char *id,
	    const char *owner, bool app)
{
	struct sig_conf *c;
	int err;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return ENOMEM;
	TAILQ_INIT(&c->legs);
	TAILQ_INIT(&c->subs);
	c->s = s;
	c->id = strdup(id);
	c->uri = malloc(strlen(id) + strlen(s->domain) + 8);
	c->owner = owner ? strdup(owner) : NULL;
	if (c->id == NULL || c->uri == NULL || (owner && c->owner == NULL)) {
		err = ENOMEM;
		goto out;
	}
	sprintf(c->uri, "sip:%s@%s", id, s->domain);
	c->created = (uint64_t)time(NULL);
	c->worker = sig_worker_pick(s);
	c->app = app;
	c->rate = app ? MIX_RATE : s->opts.mix_rate; /* DTMF wants 8 kHz */
	err = app ? mix_conf_alloc_app(&c->mc)
		  : mix_conf_alloc(&c->mc, c->rate);
	if (err == 0)
		mix_conf_set_talkers(c->mc, s->opts.max_talkers);
	if (err)
		goto out;
	err = mix_conf_attach(s->workers[c->worker], c->mc, conf_media_done, c);
	if (err)
		goto out;
	c->pending++;
	TAILQ_INSERT_TAIL(&s->confs, c, link);
	s->st.conferences++;
	FC_INFO("sig", "conference %s created on worker %u", id, c->worker);
	*cp = c;
	return 0;
out:
	conf_free(c);
	return err;
}

static void conf_release(struct sig_conf *c);

bool
sig_conf_may_create(const struct sig *s, const char *id)
{
	if (!s->opts.auto_create)
		return false;
	return !s->have_id_pattern ||
	       regexec(&s->id_pattern, id, 0, NULL, 0) == 0;
}

void
sig_conf_housekeeping(struct sig *s)
{
	struct sig_conf *c, *next;
	uint64_t now = fc_now_ns();

	for (c = TAILQ_FIRST(&s->confs); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->n_legs == 0 && !c->releasing && c->empty_until &&
		    now >= c->empty_until) {
			FC_INFO("sig", "conference %s: nobody joined in %u s",
				c->id, s->opts.conf_empty_timeout);
			conf_release(c);
		}
	}
}

void
sig_conf_gc(struct sig_conf *c)
{
	if (c->n_legs == 0 && !c->releasing)
		conf_release(c);
}

static void
conf_release(struct sig_conf *c)
{
	struct sig *s = c->s;

	c->releasing = true;
	s->st.conferences--;
	sig_confevent_ended(c);
	if (mix_conf_detach(s->workers[c->worker], c->mc, conf_media_done, c) ==
	    0) {
		c->pending++;
	} else {
		/* The worker keeps it: never free what it may still tick. */
		FC_ERR("sig", "conference %s: cannot detach from worker %u",
		       c->id, c->worker);
		c->mc = NULL;
		conf_maybe_free(c);
	}
}

static void
leg_free(struct sig_leg *l)
{
	struct sig *s = l->s;

	TAILQ_REMOVE(&s->dying, l, link);
	if (l->ep.sock >= 0 || l->ep.local_port)
		dp_ep_close(s->dp, &l->ep);
	mix_leg_free(l->ml);
	sig_leg_strings_free(l);
	free(l);
	sig_maybe_finish(s);
}

static void
leg_media_done(void *arg, int err)
{
	struct sig_leg *l = arg;

	if (err) {
		FC_ERR("sig", "leg %s: media plane refused: %s",
		       l->call_id ? l->call_id : "?", strerror(err));
		if (!l->releasing &&
		    l->nh) { /* A leg without media is no use to anyone. */
			sig_leg_hangup(l, "failed");
		}
	}
	l->pending--;
	if (l->releasing && l->pending == 0)
		leg_free(l);
}

static void
leg_params(struct sig_leg *l)
{
	struct mix_leg_params *p = &l->mp;
	const struct sig_media *m = &l->media;
	p->codec = m->codec;
	p->pt = m->pt;
	p->rate = l->conf ? l->conf->rate : MIX_RATE_DEFAULT;
	p->opus_fec = m->opus_fec;
	p->opus_dtx = m->opus_dtx;
	p->opus_maxrate = m->opus_maxrate;
	p->opus_bitrate = m->opus_bitrate;
	p->level_id = m->level_id;
	/* Before any SDP, 20 ms: the same as an SDP that says nothing,
	 * so its arrival is no codec change. */
	p->ptime_ms = m->ptime ? m->ptime : MIX_PTIME_MS;
	p->te_pt = m->te_pt;
	p->have_te = m->have_te;
	p->owner = l;
	p->remote_ip = m->addr.s_addr;
	p->remote_port = htons(m->port);
	/* A held leg (sendonly or inactive) leaves the mix and hears
	 * nothing; a recvonly peer only listens. */
	p->mix_in = m->peer_mode == sdp_sendrecv && !l->focus_hold &&
		    !l->awaiting && !l->muted;
	/* Held by the focus (or deaf): nothing of the conference reaches
	 * it either. */
	p->mix_out = (m->peer_mode & sdp_recvonly) != 0 && !l->focus_hold &&
		     !l->awaiting && !l->deaf;
	p->gain_db = l->gain_db;
}

int
sig_leg_create(struct sig_leg **lp, struct sig_conf *c, nua_handle_t *nh,
	       const struct sig_media *m, const sip_t *sip)
{
	struct sig *s = c->s;
	struct sig_leg *l;
	uint32_t rnd[3];
	int err;

	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return ENOMEM;
	l->s = s;
	l->ep.sock = l->ep.rtcp_sock = -1;
	l->media = *m;
	l->offer_mode = sdp_sendrecv;
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		rnd[0] = (uint32_t)random();
		rnd[1] = (uint32_t)random();
		rnd[2] = (uint32_t)random();
	}
	l->sdp_sess_id = ((uint64_t)rnd[0] << 16) ^ rnd[1];
	if (sip && sip->sip_from)
		l->peer_uri = sig_url_text(sip->sip_from->a_url);
	if (sip && sip->sip_call_id)
		l->call_id = sig_clean_text(sip->sip_call_id->i_id);
	if (sip && sip->sip_from && sip->sip_from->a_display)
		l->display = sig_unquote(sip->sip_from->a_display);
	if (sip && sip->sip_from && sip->sip_from->a_tag)
		l->from_tag = sig_clean_text(sip->sip_from->a_tag);
	if (sip && sip->sip_contact)
		l->contact = sig_url_text(sip->sip_contact->m_url);
	l->joining = "dialed-in";
	l->joined = (uint64_t)time(NULL);
	sig_random_id(l->token, sizeof(l->token), "l");

	err = dp_ep_open(s->dp, &l->ep);
	if (err) {
		FC_WARN("sig", "no RTP port free: %s", strerror(err));
		goto out;
	}
	leg_params(l);
	l->mp.rate = c->rate; /* l->conf is set once attached */
	l->mp.ssrc = rnd[2];
	l->mp.seq = (uint16_t)rnd[1];
	l->mp.ts = rnd[0];
	l->mp.ep = l->ep;
	l->mp.owner = l;
	err = mix_leg_alloc(&l->ml, &l->mp);
	if (err)
		goto out;
	if (c->app) {
		/* RFC 4579 4.3: in-band DTMF besides RFC 4733 events. */
		err = mix_leg_alloc_dtmf(l->ml);
		if (err)
			goto out;
	}
	err = mix_leg_attach(s->workers[c->worker], c->mc, l->ml,
			     leg_media_done, l);
	if (err)
		goto out;
	l->pending++;
	l->media_up = true;
	/* From here the worker owns l->ml: failures must release. The
	 * caller keeps nh until we succeed. */
	l->conf = c;
	TAILQ_INSERT_TAIL(&c->legs, l, link);
	c->n_legs++;
	s->worker_legs[c->worker]++;
	s->st.legs++;
	err = dp_flow_add(s->dp, &l->ep, c->worker, leg_media_done, l);
	if (err) {
		sig_leg_release(l);
		return err;
	}
	l->pending++;
	l->nh = nh;
	*lp = l;
	return 0;
out:
	if (l->ep.sock >= 0)
		dp_ep_close(s->dp, &l->ep);
	mix_leg_free(l->ml);
	sig_leg_strings_free(l);
	free(l);
	return err;
}

int
sig_leg_media_update(struct sig_leg *l, const struct sig_media *m)
{
	struct sig *s = l->s;
	int err;

	l->media = *m;
	if (l->moving) {
		/* Between two workers: neither may be told now; the new
		 * one hears of it right after the attach. */
		l->media_dirty = true;
		return 0;
	}
	leg_params(l);
	err = mix_leg_update(s->workers[l->conf->worker], l->ml, &l->mp,
			     leg_media_done, l);
	if (err == 0)
		l->pending++;
	return err;
}

/*
 * Our tag of a dial-in dialog exists once nua has sent the 2xx, after
 * invite_new returned; the ACK (or any later request) carries it in To.
 */
void
sig_leg_learn_tags(struct sig_leg *l, const sip_t *sip)
{
	if (l->to_tag || sip == NULL || sip->sip_to == NULL ||
	    sip->sip_to->a_tag == NULL || !l->uas)
		return;
	l->to_tag = sig_clean_text(sip->sip_to->a_tag);
}

static bool
tag_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

struct sig_leg *
sig_leg_by_dialog(struct sig *s, const char *call_id, const char *tag1,
		  const char *tag2)
{
	struct sig_conf *c;
	struct sig_leg *l;

	if (call_id == NULL || tag1 == NULL || tag2 == NULL)
		return NULL;
	TAILQ_FOREACH(c, &s->confs, link) {
		TAILQ_FOREACH(l, &c->legs, link) {
			if (l->releasing || !tag_eq(l->call_id, call_id))
				continue;
			if (l->to_tag == NULL && l->uas) {
				/* An early dialog we answered 180: nua does
				 * not tell us our tag before the ACK, so the
				 * Call-ID and the caller's tag must do. */
				if (tag_eq(l->from_tag, tag1) ||
				    tag_eq(l->from_tag, tag2))
					return l;
				continue;
			}
			if ((tag_eq(l->from_tag, tag1) &&
			     tag_eq(l->to_tag, tag2)) ||
			    (tag_eq(l->from_tag, tag2) &&
			     tag_eq(l->to_tag, tag1)))
				return l;
		}
	}
	return NULL;
}

void
sig_leg_ended_by(struct sig_leg *l, const char *event, unsigned code)
{
	if (l->dlg_event == NULL) {
		l->dlg_event = event;
		l->dlg_code = code;
	}
}

char *
sig_leg_uri(su_home_t *home, const struct sig_leg *l)
{
	return su_sprintf(home, "sip:%s@%s;gr=%s", l->conf->id, l->s->domain,
			  l->token);
}

char *
sig_leg_contact(su_home_t *home, const struct sig_leg *l)
{
	return su_sprintf(home, "<%s>;isfocus", sig_leg_uri(home, l));
}

struct sig_leg *
sig_request_leg(struct sig *s, const sip_t *sip, bool *named)
{
	const url_t *ru = sip->sip_request->rq_url;
	char token[sizeof(((struct sig_leg *)0)->token)];
	struct sig_conf *c;
	struct sig_leg *l;
	isize_t n;

	/* url_param writes nothing when the value does not fit. */
	n = ru->url_params
		    ? url_param(ru->url_params, "gr", token, sizeof(token))
		    : 0;
	*named = n > 0;
	if (n == 0 || (size_t)n > sizeof(token))
		return NULL;
	TAILQ_FOREACH(c, &s->confs, link) {
		TAILQ_FOREACH(l, &c->legs, link) {
			if (!l->releasing && strcmp(l->token, token) == 0)
				return l;
		}
	}
	return NULL;
}

void
sig_leg_hangup(struct sig_leg *l, const char *disconnection)
{
	if (disconnection)
		l->disconnection = disconnection;
	/* A leg given up on a media failure ended in error (RFC 4235). */
	sig_leg_ended_by(l,
			 disconnection && strcmp(disconnection, "failed") == 0
				 ? "error"
				 : "local-bye",
			 0);
	l->state = SIG_LEG_DISCONNECTING;
	if (l->nh)
		nua_bye(l->nh, TAG_END());
}

void
sig_leg_set_state(struct sig_leg *l, enum sig_leg_state st)
{
	if (l->state == st)
		return;
	l->state = st;
	if (l->conf && !l->releasing)
		sig_confevent_changed(l->conf, l, NULL);
}

void
sig_leg_release(struct sig_leg *l)
{
	struct sig *s = l->s;
	struct sig_conf *c = l->conf;

	if (l->releasing)
		return;
	l->releasing = true;
	l->state = SIG_LEG_DISCONNECTING;
	if (l->refer) {
		/* Booted: the BYE ended the dialog, whatever its answer. */
		sig_refer_forget(s, l->refer,
				 l->disconnection && strcmp(l->disconnection,
							    "booted") == 0);
		l->refer = NULL;
	}
	if (l->nh) {
		/* A subscription or REFER from inside the call outlives it:
		 * the handle goes only when nothing uses it any more. */
		nua_handle_t *nh = l->nh;

		nua_handle_bind(nh, NULL);
		l->nh = NULL;
		sig_handle_release(s, nh);
	}
	TAILQ_REMOVE(&c->legs, l, link);
	c->n_legs--;
	s->worker_legs[c->worker]--;
	s->st.legs--;
	FC_INFO("sig", "leg %s left conference %s (%u left, %s)",
		l->peer_uri ? l->peer_uri : "?", c->id, c->n_legs,
		l->disconnection ? l->disconnection : "departed");
	if (!l->quiet)
		sig_confevent_changed(
			c, l, l->disconnection ? l->disconnection : "departed");
	else
		sig_confevent_dialog_changed(c, l, true);
	l->conf = NULL;
	TAILQ_INSERT_TAIL(&s->dying, l, link);

	if (l->media_up) {
		l->media_up = false;
		if (mix_leg_detach(s->workers[c->worker], l->ml, leg_media_done,
				   l) == 0)
			l->pending++;
		else
			l->ml = NULL; /* the worker keeps it; never free it */
		if (dp_flow_del(s->dp, &l->ep, leg_media_done, l) == 0)
			l->pending++;
	}
	if (c->n_legs == 0 && !c->releasing)
		conf_release(c);
	if (l->pending == 0)
		leg_free(l);
}

/*
 * At the very end, after the lcores stopped, when the stop gave up
 * waiting (a peer never answered): what the workers held goes with
 * mix_worker_free(); the rest goes here.
 */
void
sig_conf_free_all(struct sig *s)
{
	struct sig_conf *c;
	struct sig_leg *l;

	while ((c = TAILQ_FIRST(&s->confs)) != NULL) {
		sig_confevent_drop(c);
		while ((l = TAILQ_FIRST(&c->legs)) != NULL) {
			TAILQ_REMOVE(&c->legs, l, link);
			if (l->nh) {
				/* A subscription may share it: released, not
				 * destroyed twice. */
				nua_handle_t *nh = l->nh;

				nua_handle_bind(nh, NULL);
				l->nh = NULL;
				sig_handle_release(s, nh);
			}
			if (l->ep.sock >= 0)
				dp_ep_close(s->dp, &l->ep);
			/* l->ml: the worker's, or in flight; never ours now */
			sig_leg_strings_free(l);
			free(l);
		}
		TAILQ_REMOVE(&s->confs, c, link);
		c->mc = NULL; /* the worker's, or in flight: not ours now */
		conf_free(c);
	}
}

/* ---- moving a leg (RFC 4579 4.10) --------------------------------------- */

/* The old worker has handed the leg back: give it to the new one. */
static void
leg_moved_detached(void *arg, int err)
{
	struct sig_leg *l = arg;
	struct sig *s = l->s;

	l->pending--;
	l->moving = false;
	if (err) {
		/* The old worker did not have it: attaching it elsewhere
		 * could put it in two workers' lists. Give up the leg. */
		FC_ERR("sig", "leg %s: detach for a move: %s",
		       l->peer_uri ? l->peer_uri : "?", strerror(err));
		if (!l->releasing && l->nh) {
			l->media_up = false;
			sig_leg_hangup(l, "failed");
		}
		if (l->releasing && l->pending == 0)
			leg_free(l);
		return;
	}
	if (l->releasing || l->conf == NULL) {
		/* Released meanwhile: the release's detach finds nothing
		 * and the leg is freed with its last reply. */
		l->media_up = false;
		if (l->pending == 0)
			leg_free(l);
		return;
	}
	/* Ours between the two workers: its codecs follow the new
	 * conference's rate (the lobby mixes at 8 kHz). */
	if (mix_leg_set_rate(l->ml, l->conf->rate) == 0)
		l->mp.rate = l->conf->rate;
	if (mix_leg_attach(s->workers[l->conf->worker], l->conf->mc, l->ml,
			   leg_media_done, l) == 0) {
		l->pending++;
		if (l->media_dirty) {
			/* Commands to one worker run in order: after the
			 * attach (no longer moving: it goes now). */
			l->media_dirty = false;
			sig_leg_media_update(l, &l->media);
		}
	}
	if (dp_flow_move(s->dp, &l->ep, l->conf->worker, leg_media_done, l) ==
	    0)
		l->pending++;
}

void
sig_leg_reinvite(struct sig_leg *l)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	char *offer = sig_leg_sdp(home, l, true);

	l->reinviting = true;
	nua_invite(l->nh, SIPTAG_CONTACT_STR(sig_leg_contact(home, l)),
		   SIPTAG_CONTENT_TYPE_STR("application/sdp"),
		   SIPTAG_PAYLOAD_STR(offer), TAG_END());
	su_home_deinit(home);
}

int
sig_leg_move(struct sig_leg *l, struct sig_conf *dst)
{
	struct sig *s = l->s;
	struct sig_conf *old = l->conf;
	int err;

	if (old == NULL || l->releasing || !l->media_up || l->nh == NULL ||
	    dst->releasing)
		return EBUSY;
	if (old == dst)
		return EALREADY;
	if ((l->state != SIG_LEG_CONNECTED && l->state != SIG_LEG_ON_HOLD) ||
	    l->moving || l->reinviting || l->refer || l->transferring)
		return EAGAIN; /* not while its dialog, a move or a REFER's
				  work (a transfer, a hold) is under way */
	err = mix_leg_detach(s->workers[old->worker], l->ml, leg_moved_detached,
			     l);
	if (err)
		return err;
	l->pending++;
	l->moving = true;

	/* The roster: out of the old conference, into the new one. */
	TAILQ_REMOVE(&old->legs, l, link);
	old->n_legs--;
	s->worker_legs[old->worker]--;
	l->conf = dst;
	TAILQ_INSERT_TAIL(&dst->legs, l, link);
	dst->n_legs++;
	s->worker_legs[dst->worker]++;
	dst->empty_until = 0;
	FC_INFO("sig", "%s moves from conference %s to %s",
		l->peer_uri ? l->peer_uri : "?", old->id, dst->id);
	sig_confevent_moved(old, dst, l);

	/* The participant learns its new focus URI from a target refresh. */
	l->focus_hold_prev = l->focus_hold;
	sig_leg_reinvite(l);

	if (old->n_legs == 0 && !old->releasing)
		conf_release(old);
	return 0;
}

/* A participant of c by Call-ID, URI or AOR. */
static struct sig_leg *
conf_leg_find(struct sig_conf *c, const char *who)
{
	struct sig_leg *l;

	TAILQ_FOREACH(l, &c->legs, link) {
		if ((l->call_id && strcmp(l->call_id, who) == 0) ||
		    (l->peer_uri && (strcmp(l->peer_uri, who) == 0 ||
				     sig_same_aor(l->peer_uri, who))))
			return l;
	}
	return NULL;
}

/* Participant who of conference id: 0, EINVAL, ENOENT (conference),
 * ESRCH (participant). */
static int
conf_participant(struct sig_leg **lp, struct sig *s, const char *id,
		 const char *who)
{
	struct sig_conf *c;

	if (s == NULL || id == NULL || who == NULL)
		return EINVAL;
	c = sig_conf_find(s, id);
	if (c == NULL)
		return ENOENT;
	*lp = conf_leg_find(c, who);
	return *lp ? 0 : ESRCH;
}

int
sig_conf_admit(struct sig *s, const char *id, const char *who)
{
	struct sig_leg *l;
	int err = conf_participant(&l, s, id, who);

	return err ? err : sig_leg_admit(l);
}

int
sig_conf_audio(struct sig *s, const char *id, const char *who, int mute,
	       int deaf, const int *gain_db, struct sig_audio *out)
{
	struct sig_leg *l;
	int err;

	if (gain_db && (*gain_db < -24 || *gain_db > 24))
		return EINVAL;
	err = conf_participant(&l, s, id, who);
	if (err)
		return err;
	if (l->moving || l->releasing || !l->media_up || l->conf->app)
		return EBUSY;
	if (mute >= 0)
		l->muted = mute;
	if (deaf >= 0)
		l->deaf = deaf;
	if (gain_db)
		l->gain_db = *gain_db;
	err = sig_leg_media_update(l, &l->media);
	if (err)
		return err;
	FC_INFO("sig", "conference %s: %s %smuted, %sdeaf, gain %+d dB", id,
		l->peer_uri ? l->peer_uri : "?", l->muted ? "" : "not ",
		l->deaf ? "" : "not ", l->gain_db);
	out->mute = l->muted;
	out->deaf = l->deaf;
	out->gain_db = l->gain_db;
	return 0;
}

int
sig_conf_set_admission(struct sig *s, const char *id, bool manual)
{
	struct sig_conf *c = s && id ? sig_conf_find(s, id) : NULL;

	if (c == NULL)
		return ENOENT;
	c->manual = manual;
	FC_INFO("sig", "conference %s: %s admission", c->id,
		manual ? "manual" : "automatic");
	return 0;
}

int
sig_conf_move(struct sig *s, const char *from_id, const char *who,
	      const char *to_id)
{
	struct sig_conf *src, *dst;
	struct sig_leg *l;
	bool made = false;
	int err;

	if (s == NULL || from_id == NULL || who == NULL || to_id == NULL)
		return EINVAL;
	src = sig_conf_find(s, from_id);
	if (src == NULL)
		return ENOENT;
	if (!sig_conf_id_valid(s, to_id))
		return EINVAL;
	l = conf_leg_find(src, who);
	if (l == NULL)
		return ESRCH;
	dst = sig_conf_find(s, to_id);
	if (dst == NULL) {
		err = sig_conf_create(&dst, s, to_id, NULL);
		if (err)
			return err;
		made = true;
	}
	err = sig_leg_move(l, dst);
	if (err && made)
		sig_conf_gc(dst);
	return err;
}

/* ---- conference.show --------------------------------------------------- */

struct show_req {
	struct sig *s;
	struct sig_conf_info ci;
	char *id, *uri, *owner;
	unsigned n;
	sig_show_h *h;
	void *arg;
	struct sig_part_info *parts;
	char **strs;  /* owned copies behind parts[] */
	bool *no_rtp; /* parts whose counters the worker could not give */
};

static void
show_req_free(struct show_req *r)
{
	for (unsigned i = 0; i < 3 * r->n; i++)
		free(r->strs[i]);
	free(r->strs);
	free(r->no_rtp);
	free(r->parts);
	free(r->id);
	free(r->uri);
	free(r->owner);
	free(r);
}

static void
show_stats_done(void *arg, int err, const struct mix_worker_stats *ws,
		const struct mix_leg_stats *ls, unsigned n)
{
	struct show_req *r = arg;

	(void)ws;
	for (unsigned i = 0; i < n && i < r->n && !err; i++) {
		struct sig_part_info *p = &r->parts[i];
		struct in_addr a = {.s_addr = ls[i].remote_ip};
		char ip[INET_ADDRSTRLEN];

		if (r->no_rtp[i])
			continue;
		p->rtp = ls[i];
		p->have_rtp = true;
		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		snprintf(p->remote_rtp, sizeof(p->remote_rtp), "%s:%u", ip,
			 ntohs(ls[i].remote_port));
	}
	r->h(r->arg, 0, &r->ci, r->parts, r->n);
	show_req_free(r);
}

int
sig_conf_show(struct sig *s, const char *id, sig_show_h *h, void *arg)
{
	struct sig_conf *c;
	struct show_req *r;
	struct mix_leg **legs = NULL;
	struct sig_leg *l;
	char ip[INET_ADDRSTRLEN];
	unsigned i = 0;
	int err = ENOMEM;

	if (s == NULL || id == NULL || h == NULL)
		return EINVAL;
	c = sig_conf_find(s, id);
	if (c == NULL)
		return ENOENT;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return ENOMEM;
	r->s = s;
	r->h = h;
	r->arg = arg;
	r->n = c->n_legs;
	r->id = strdup(c->id);
	r->uri = strdup(c->uri);
	r->parts = calloc(r->n + 1, sizeof(*r->parts));
	r->strs = calloc(3 * r->n + 1, sizeof(*r->strs));
	r->no_rtp = calloc(r->n + 1, sizeof(*r->no_rtp));
	legs = calloc(r->n + 1, sizeof(*legs));
	if (!r->id || !r->uri || !r->parts || !r->strs || !r->no_rtp || !legs)
		goto out;
	r->ci.id = r->id;
	r->ci.uri = r->uri;
	r->owner = c->owner ? strdup(c->owner) : NULL;
	r->ci.owner = r->owner;
	r->ci.participants = c->n_legs;
	r->ci.worker = c->worker;
	r->ci.created = c->created;

	inet_ntop(AF_INET, &(struct in_addr){dp_rtp_addr(s->dp).s_addr}, ip,
		  sizeof(ip));
	TAILQ_FOREACH(l, &c->legs, link) {
		struct sig_part_info *p = &r->parts[i];
		struct in_addr ra = l->media.addr;
		char rip[INET_ADDRSTRLEN];

		r->strs[3 * i] = strdup(l->peer_uri ? l->peer_uri : "");
		r->strs[3 * i + 1] = strdup(l->call_id ? l->call_id : "");
		{
			su_home_t home[1] = {SU_HOME_INIT(home)};
			const char *u = sig_leg_uri(home, l);

			r->strs[3 * i + 2] = strdup(u ? u : "");
			su_home_deinit(home);
		}
		p->uri = r->strs[3 * i];
		p->call_id = r->strs[3 * i + 1];
		p->leg_uri = r->strs[3 * i + 2];
		p->codec = mix_codec_name(l->media.codec);
		p->ptime_ms = l->media.ptime ? l->media.ptime : MIX_PTIME_MS;
		p->state = sig_leg_state_name(l->state);
		p->direction = sig_sdp_mode_name(l->media.peer_mode);
		p->joining = l->joining ? l->joining : "dialed-in";
		p->mute = l->muted;
		p->deaf = l->deaf;
		p->gain_db = l->gain_db;
		snprintf(p->local_rtp, sizeof(p->local_rtp), "%s:%u", ip,
			 l->ep.local_port);
		inet_ntop(AF_INET, &ra, rip, sizeof(rip));
		snprintf(p->remote_rtp, sizeof(p->remote_rtp), "%s:%u", rip,
			 l->media.port);
		/* A leg between two workers belongs to neither: no counters. */
		legs[i] = l->moving ? NULL : l->ml;
		r->no_rtp[i] = l->moving;
		i++;
	}
	err = mix_stats_get(s->workers[c->worker], legs, r->n, show_stats_done,
			    r);
	if (err)
		goto out;
	free(legs);
	return 0;
out:
	free(legs);
	show_req_free(r);
	return err;
}
