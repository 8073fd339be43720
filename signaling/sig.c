/*
 * sig.c - the control thread's event loop and the nua stack.
 *
 * One su_root serves everything the control thread does: SIP (nua, over UDP
 * and TCP on --sip-listen), the management socket and signal fds
 * (registered by other parts with sig_fd_watch), and the eventfd that the
 * io lcore and mixer workers kick after they reply to a message. Since all
 * of it runs in this one thread, conferences and legs need no locks.
 *
 * The nua callback is one switch that hands each event to a small function
 * (call.c for dialogs, sig_options for OPTIONS). Shutdown is ordered the way
 * Sofia-SIP wants it: nua_shutdown() hangs up the calls, nua_r_shutdown
 * reports when the stack is done, and only when the media plane has also
 * handed back every leg and conference does su_root_break() end sig_run().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "signaling/sig_priv.h"

#include <sofia-sip/auth_module.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/su_log.h>

struct sig_fd {
	struct sig *s;
	su_wait_t wait[1];
	int index;
	int fd;
	sig_fd_h *h;
	void *arg;
};

static int
sig_fd_wakeup(su_root_magic_t *magic, su_wait_t *w, su_wakeup_arg_t *arg)
{
	(void)magic;
	(void)w;
	arg->h(arg->fd, arg->arg);
	return 0;
}

int
sig_fd_watch(struct sig_fd **wp, struct sig *s, int fd, sig_fd_h *h, void *arg)
{
	struct sig_fd *w;

	if (wp == NULL || s == NULL || fd < 0 || h == NULL)
		return EINVAL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return ENOMEM;
	w->s = s;
	w->fd = fd;
	w->h = h;
	w->arg = arg;
	if (su_wait_create(w->wait, fd, SU_WAIT_IN) < 0) {
		free(w);
		return EINVAL;
	}
	w->index = su_root_register(s->root, w->wait, sig_fd_wakeup, w, 0);
	if (w->index <= 0) {
		su_wait_destroy(w->wait);
		free(w);
		return ENOMEM;
	}
	*wp = w;
	return 0;
}

void
sig_fd_unwatch(struct sig_fd *w)
{
	if (w == NULL)
		return;
	su_root_deregister(w->s->root, w->index);
	free(w);
}

/* Replies from the io lcore and the workers. */
static void
sig_media_replies(int fd, void *arg)
{
	struct sig *s = arg;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		FC_WARN("sig", "eventfd read: %s", strerror(errno));
	dp_collect(s->dp);
	for (unsigned i = 0; i < s->n_workers; i++)
		mix_collect(s->workers[i]);
	sig_maybe_finish(s);
}

static void
sig_nua_callback(nua_event_t event, int status, char const *phrase, nua_t *nua,
		 nua_magic_t *s, nua_handle_t *nh, nua_hmagic_t *leg,
		 sip_t const *sip, tagi_t tags[])
{
	(void)nua;

	switch (event) {
	case nua_i_invite:
	case nua_i_ack:
	case nua_i_bye:
	case nua_i_cancel:
	case nua_i_state:
	case nua_i_terminated:
	case nua_r_bye:
	case nua_r_invite:
		sig_call_event(s, event, status, phrase, nh, leg, sip, tags);
		break;
	case nua_i_options:
		sig_options(s, nh, leg, sip);
		break;
	case nua_i_refer:
		sig_refer_event(s, nh, leg, sip, tags);
		break;
	case nua_r_refer:
	case nua_i_notify:
		if (leg) {
			sig_refer_transfer_event(s, event, status, phrase, leg,
						 sip, tags);
			break;
		}
		FC_DEBUG("sig", "%s outside a call: %d", nua_event_name(event),
			 status);
		if (nh)
			sig_handle_release(s, nh);
		break;
	case nua_r_notify:
		if (sig_refer_notify_answered(s, nh, status, tags))
			break;
		sig_confevent_event(s, event, status, nh, leg, sip, tags);
		break;
	case nua_i_subscribe:
		sig_confevent_event(s, event, status, nh, leg, sip, tags);
		break;
	case nua_r_shutdown:
		if (status >= 200) {
			FC_INFO("sig", "SIP stack stopped (%d %s)", status,
				phrase);
			s->nua_done = true;
			sig_maybe_finish(s);
		}
		break;
	case nua_i_error:
		FC_WARN("sig", "stack error: %d %s", status, phrase);
		break;
	default:
		FC_DEBUG("sig", "event %s: %d %s", nua_event_name(event),
			 status, phrase ? phrase : "");
		/* Handles the stack created for requests we do not serve. */
		if (leg == NULL && nh && event < nua_r_set_params &&
		    event != nua_i_outbound)
			sig_handle_release(s, nh);
		break;
	}
}

/* Split "host:port" (or "[v6]:port"); port defaults to 5060. */
static int
sig_hostport(char *buf, size_t len, unsigned *portp, const char *in)
{
	const char *colon = strrchr(in, ':');
	size_t hlen;

	if (in[0] == '[') {
		const char *end = strchr(in, ']');

		if (end == NULL)
			return EINVAL;
		colon = end[1] == ':' ? end + 1 : NULL;
	}
	hlen = colon ? (size_t)(colon - in) : strlen(in);
	if (hlen == 0 || hlen >= len)
		return EINVAL;
	memcpy(buf, in, hlen);
	buf[hlen] = '\0';
	*portp = 5060;
	if (colon) {
		char *end;
		unsigned long p = strtoul(colon + 1, &end, 10);

		if (*end || p == 0 || p > 65535)
			return EINVAL;
		*portp = (unsigned)p;
	}
	return 0;
}

/* A worker's counters, for placement and admission. */
static void
sig_load_h(void *arg, int err, const struct mix_worker_stats *ws,
	   const struct mix_leg_stats *ls, unsigned n)
{
	struct sig *s = arg;

	(void)ls;
	(void)n;
	s->load_asked--;
	if (err == 0 && ws)
		for (unsigned i = 0; i < s->n_workers; i++) {
			if (ws->index == i)
				s->worker_load[i] = ws->load_permille;
		}
}

bool
sig_overloaded(const struct sig *s)
{
	if (s->opts.max_load == 0)
		return false;
	for (unsigned i = 0; i < s->n_workers; i++) {
		if (s->worker_load[i] < s->opts.max_load * 10)
			return false;
	}
	return true;
}

static void
sig_housekeeping(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *s)
{
	(void)magic;
	(void)t;
	sig_conf_housekeeping(s);
	/* Every worker's load, four times a second (one at a time). */
	if (s->load_asked == 0 && !s->shutting_down) {
		for (unsigned i = 0; i < s->n_workers; i++) {
			if (mix_stats_get(s->workers[i], NULL, 0, sig_load_h,
					  s) == 0)
				s->load_asked++;
		}
	}
}

/*
 * SIP digest for owner and moderator actions (RFC 4579 4.11): Sofia-SIP's
 * auth module over the users file. Without a file nobody authenticates.
 */
static int
sig_auth_setup(struct sig *s, const struct sig_conf_opts *opts)
{
	char host[256];
	unsigned port;
	size_t n = 0;

	if (sig_hostport(host, sizeof(host), &port, s->domain))
		snprintf(host, sizeof(host), "%s", s->domain);
	s->realm = strdup(opts->realm && *opts->realm ? opts->realm : host);
	if (s->realm == NULL)
		return ENOMEM;
	if (opts->moderators && *opts->moderators) {
		char *list = strdup(opts->moderators), *save = NULL;

		if (list == NULL)
			return ENOMEM;
		s->moderators =
			calloc(strlen(list) / 2 + 2, sizeof(*s->moderators));
		for (char *t = strtok_r(list, ", ", &save); t && s->moderators;
		     t = strtok_r(NULL, ", ", &save))
			s->moderators[n++] = strdup(t);
		free(list);
		if (s->moderators == NULL)
			return ENOMEM;
	}
	if (opts->users_file == NULL || *opts->users_file == '\0')
		return 0;
	if (access(opts->users_file, R_OK) != 0) {
		FC_ERR("sig", "cannot read --users %s: %s", opts->users_file,
		       strerror(errno));
		return EINVAL;
	}
	s->auth = auth_mod_create(
		s->root, AUTHTAG_METHOD("Digest"), AUTHTAG_REALM(s->realm),
		AUTHTAG_DB(opts->users_file), AUTHTAG_ALGORITHM("MD5"),
		AUTHTAG_QOP("auth"), TAG_END());
	if (s->auth == NULL) {
		FC_ERR("sig", "--users %s: the digest module did not start",
		       opts->users_file);
		return EINVAL;
	}
	FC_INFO("sig", "digest users from %s, realm \"%s\", %zu moderators",
		opts->users_file, s->realm, n);
	return 0;
}

bool
sig_is_moderator(const struct sig *s, const char *user)
{
	for (char **m = s->moderators; m && *m; m++) {
		if (strcmp(*m, user) == 0)
			return true;
	}
	return false;
}

int
sig_alloc(struct sig **sp, const struct sig_conf_opts *opts, struct dp *dp,
	  struct mix_worker **workers, unsigned n_workers, int efd)
{
	char host[256], url[300];
	unsigned port;
	struct sig *s;
	int err;

	if (sp == NULL || opts == NULL || opts->listen == NULL || dp == NULL ||
	    workers == NULL || n_workers == 0)
		return EINVAL;
	err = sig_hostport(host, sizeof(host), &port, opts->listen);
	if (err) {
		FC_ERR("sig", "bad --sip-listen '%s' (want ADDR:PORT)",
		       opts->listen);
		return err;
	}

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return ENOMEM;
	su_home_init(s->home);
	TAILQ_INIT(&s->confs);
	TAILQ_INIT(&s->dying);
	TAILQ_INIT(&s->refers);
	TAILQ_INIT(&s->ending_subs);
	s->opts = *opts;
	s->dp = dp;
	s->workers = workers;
	s->n_workers = n_workers;
	s->worker_legs = su_zalloc(s->home, n_workers * sizeof(unsigned));
	s->worker_load = su_zalloc(s->home, n_workers * sizeof(unsigned));
	s->listen = su_sprintf(s->home, "%s:%u", host, port);
	if (opts->domain && *opts->domain)
		s->domain = su_strdup(s->home, opts->domain);
	else if (port == 5060)
		s->domain = su_strdup(s->home, host);
	else
		s->domain = su_strdup(s->home, s->listen);
	s->opts.application = opts->application && *opts->application
				      ? su_strdup(s->home, opts->application)
				      : NULL;
	s->opts.factory =
		su_strdup(s->home, opts->factory ? opts->factory : "conf");
	s->opts.domain = s->domain;
	s->opts.listen = s->listen;
	s->opts.conf_id_pattern = NULL; /* compiled below, not kept */
	if (s->opts.conf_empty_timeout == 0)
		s->opts.conf_empty_timeout = 32; /* RFC 3261 Timer B */
	if (s->opts.mix_rate == 0)
		s->opts.mix_rate = MIX_RATE_DEFAULT;
	if (!mix_rate_valid(s->opts.mix_rate)) {
		FC_ERR("sig",
		       "--mix-rate %u: must be 8000, 16000, 24000 or "
		       "48000",
		       s->opts.mix_rate);
		err = EINVAL;
		goto out;
	}
	if (opts->conf_id_pattern && *opts->conf_id_pattern) {
		char why[128];
		int rc = regcomp(&s->id_pattern, opts->conf_id_pattern,
				 REG_EXTENDED | REG_NOSUB);

		if (rc) {
			regerror(rc, &s->id_pattern, why, sizeof(why));
			FC_ERR("sig", "bad --conf-id-pattern '%s': %s",
			       opts->conf_id_pattern, why);
			err = EINVAL;
			goto out;
		}
		s->have_id_pattern = true;
	}

	s->root = su_root_create(s);
	if (s->root == NULL) {
		err = ENOMEM;
		goto out;
	}
	/* Keep nua's stack in this thread: one control thread. */
	su_root_threading(s->root, 0);

	snprintf(url, sizeof(url), "sip:%s:%u", host, port);
	s->nua = nua_create(
		s->root, sig_nua_callback, s, NUTAG_URL(url),
		NUTAG_MEDIA_ENABLE(0), NUTAG_AUTOANSWER(0), NUTAG_AUTOALERT(0),
		NUTAG_APPL_METHOD("OPTIONS, REFER"),
		SIPTAG_ALLOW_STR(SIG_ALLOW), SIPTAG_ACCEPT_STR(SIG_ACCEPT),
		SIPTAG_SUPPORTED_STR(SIG_SUPPORTED),
		NUTAG_ALLOW_EVENTS(SIG_ALLOW_EVENTS), NUTAG_SESSION_TIMER(0),
		NUTAG_ENABLEMESSAGE(0),
		SIPTAG_USER_AGENT_STR(opts->user_agent ? opts->user_agent
						       : "focusd"),
		TAG_END());
	if (s->nua == NULL) {
		FC_ERR("sig", "cannot listen for SIP on %s (UDP and TCP)",
		       s->listen);
		err = EADDRINUSE;
		goto out;
	}
	err = sig_auth_setup(s, opts);
	if (err)
		goto out;
	for (unsigned i = 0; i < n_workers; i++) {
		/* Digits from application lobbies (RFC 4579 4.3). */
		err = mix_events_start(workers[i], 8, sig_app_digit, s);
		if (err)
			goto out;
	}
	err = sig_fd_watch(&s->efd_watch, s, efd, sig_media_replies, s);
	if (err)
		goto out;
	s->housekeeping = su_timer_create(su_root_task(s->root), 250);
	if (s->housekeeping == NULL ||
	    su_timer_set_for_ever(s->housekeeping, sig_housekeeping, s) < 0) {
		err = ENOMEM;
		goto out;
	}
	FC_INFO("sig",
		"SIP on %s (UDP, TCP); conference URIs sip:ID@%s, "
		"factory sip:%s@%s, auto-create %s",
		s->listen, s->domain, s->opts.factory, s->domain,
		s->opts.auto_create ? "on" : "off");
	*sp = s;
	return 0;
out:
	sig_free(s);
	return err;
}

void
sig_free(struct sig *s)
{
	struct sig_leg *l;

	if (s == NULL)
		return;
	sig_fd_unwatch(s->efd_watch);
	sig_refer_free_all(s);
	sig_conf_free_all(s);
	sig_confevent_free_all(s);
	if (s->stop_timer)
		su_timer_destroy(s->stop_timer);
	if (s->housekeeping)
		su_timer_destroy(s->housekeeping);
	if (s->have_id_pattern)
		regfree(&s->id_pattern);
	if (s->auth)
		auth_mod_unref(s->auth);
	for (char **m = s->moderators; m && *m; m++)
		free(*m);
	free(s->moderators);
	free(s->realm);
	if (s->nua) {
		/* nua must be shut down before it is destroyed: when start-up
		 * failed after nua_create, do it here, bounded. */
		if (!s->nua_done) {
			uint64_t until = fc_now_ns() + 2000000000ull;

			s->shutting_down = true;
			nua_shutdown(s->nua);
			while (!s->nua_done && fc_now_ns() < until)
				su_root_step(s->root, 100);
		}
		if (s->nua_done)
			nua_destroy(s->nua);
	}
	/* Legs still waiting for the media plane: the workers have stopped
	 * and their memory goes with mix_worker_free(); forget ours. */
	while ((l = TAILQ_FIRST(&s->dying)) != NULL) {
		TAILQ_REMOVE(&s->dying, l, link);
		sig_leg_strings_free(l);
		free(l);
	}
	if (s->root)
		su_root_destroy(s->root);
	su_home_deinit(s->home);
	free(s);
}

int
sig_run(struct sig *s)
{
	su_root_run(s->root);
	return 0;
}

const char *
sig_listen_addr(const struct sig *s)
{
	return s->listen;
}

const char *
sig_domain(const struct sig *s)
{
	return s->domain;
}

static void
sig_stop_timeout(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *s)
{
	(void)magic;
	(void)t;
	FC_WARN("sig", "stop did not finish in %u ms; leaving anyway",
		SIG_STOP_TIMEOUT_MS);
	su_root_break(s->root);
}

void
sig_shutdown(struct sig *s)
{
	struct sig_conf *c;
	struct sig_leg *l;

	if (s->shutting_down)
		return;
	s->shutting_down = true;
	FC_INFO("sig", "shutting down: hanging up %u legs", s->st.legs);
	TAILQ_FOREACH(c, &s->confs, link) {
		TAILQ_FOREACH(l, &c->legs, link) {
			if (l->nh && l->state != SIG_LEG_DISCONNECTING) {
				bool calling =
					l->state == SIG_LEG_DIALING_OUT ||
					l->state == SIG_LEG_ALERTING;

				l->state = SIG_LEG_DISCONNECTING;
				/* A dial-out not answered yet is cancelled. */
				sig_leg_ended_by(
					l, calling ? "cancelled" : "local-bye",
					calling ? 487 : 0);
				if (calling)
					nua_cancel(l->nh, TAG_END());
				else
					nua_bye(l->nh, TAG_END());
			}
		}
	}
	nua_shutdown(s->nua);
	/* A peer that never answers our BYE must not hold the stop up. */
	s->stop_timer = su_timer_create(su_root_task(s->root), 0);
	if (s->stop_timer)
		su_timer_set_interval(s->stop_timer, sig_stop_timeout, s,
				      SIG_STOP_TIMEOUT_MS);
}

/*
 * Leave the loop once shutting down, nua has finished and the media plane
 * holds nothing of ours.
 */
void
sig_maybe_finish(struct sig *s)
{
	struct sig_conf *c, *next;
	unsigned in_flight = dp_in_flight(s->dp);

	if (!s->shutting_down || !s->nua_done || s->finishing)
		return;
	s->finishing = true;
	/* Legs nua never told us about again are released now. */
	for (c = TAILQ_FIRST(&s->confs); c; c = next) {
		next = TAILQ_NEXT(c, link);
		while (!TAILQ_EMPTY(&c->legs))
			sig_leg_release(TAILQ_FIRST(&c->legs));
	}
	s->finishing = false;
	for (unsigned i = 0; i < s->n_workers; i++)
		in_flight += mix_in_flight(s->workers[i]);
	if (in_flight == 0 && TAILQ_EMPTY(&s->dying) && TAILQ_EMPTY(&s->confs))
		su_root_break(s->root);
}

void
sig_conf_foreach(struct sig *s, sig_conf_h *h, void *arg)
{
	struct sig_conf *c;

	TAILQ_FOREACH(c, &s->confs, link) {
		struct sig_conf_info ci = {
			.id = c->id,
			.uri = c->uri,
			.owner = c->owner,
			.participants = c->n_legs,
			.worker = c->worker,
			.created = c->created,
		};

		if (!c->releasing)
			h(&ci, arg);
	}
}

/* ---- nua handles --------------------------------------------------------- */

/*
 * A handle can carry a call (a leg), conference subscriptions and REFER
 * subscriptions at once (RFC 5057 dialog usages). Each user drops its
 * reference by clearing its own pointer and calling sig_handle_release;
 * the handle goes when nobody uses it any more. Nothing else destroys a
 * handle that might be shared.
 */
bool
sig_handle_in_use(struct sig *s, nua_handle_t *nh)
{
	struct sig_conf *c;
	struct sig_leg *l;

	if (nh == NULL)
		return false;
	TAILQ_FOREACH(c, &s->confs, link) {
		TAILQ_FOREACH(l, &c->legs, link) {
			if (l->nh == nh)
				return true;
		}
	}
	TAILQ_FOREACH(l, &s->dying, link) {
		if (l->nh == nh)
			return true;
	}
	return sig_confevent_owns(s, nh) || sig_refer_owns(s, nh);
}

void
sig_reject(struct sig *s, nua_handle_t *nh, int status, const char *phrase,
	   tag_type_t tag, tag_value_t value, ...)
{
	ta_list ta;

	ta_start(ta, tag, value);
	nua_respond(nh, status, phrase, NUTAG_WITH_THIS(s->nua), ta_tags(ta));
	(void)ta_end(ta); /* the macro yields 0 */
	sig_handle_release(s, nh);
}

void
sig_handle_release(struct sig *s, nua_handle_t *nh)
{
	if (nh == NULL || sig_handle_in_use(s, nh))
		return;
	nua_handle_bind(nh, NULL);
	nua_handle_destroy(nh);
}

void
sig_stats_get(struct sig *s, struct sig_stats *st)
{
	*st = s->st;
}

/* ---- media plane counters ---------------------------------------------- */

struct media_stats_req {
	sig_media_stats_h *h;
	void *arg;
	unsigned waiting;
	unsigned n;
	struct dp_stats io;
	struct mix_worker_stats ws[];
};

static void
media_stats_reply(struct media_stats_req *r)
{
	if (--r->waiting == 0) {
		r->h(r->arg, &r->io, r->ws, r->n);
		free(r);
	}
}

static void
media_stats_io(void *arg, const struct dp_stats *st)
{
	struct media_stats_req *r = arg;

	r->io = *st;
	media_stats_reply(r);
}

struct media_stats_slot {
	struct media_stats_req *r;
	unsigned i;
};

static void
media_stats_worker(void *arg, int err, const struct mix_worker_stats *ws,
		   const struct mix_leg_stats *ls, unsigned n)
{
	struct media_stats_slot *slot = arg;
	struct media_stats_req *r = slot->r;

	(void)ls;
	(void)n;
	if (!err)
		r->ws[slot->i] = *ws;
	free(slot);
	media_stats_reply(r);
}

int
sig_media_stats(struct sig *s, sig_media_stats_h *h, void *arg)
{
	struct media_stats_req *r;
	int err;

	if (s == NULL || h == NULL)
		return EINVAL;
	r = calloc(1, sizeof(*r) + s->n_workers * sizeof(r->ws[0]));
	if (r == NULL)
		return ENOMEM;
	r->h = h;
	r->arg = arg;
	r->n = s->n_workers;
	/* One extra count so that h cannot run before every request is
	 * out; dropped at the end. */
	r->waiting = 1;
	err = dp_stats_get(s->dp, media_stats_io, r);
	if (err)
		goto out;
	r->waiting++;
	for (unsigned i = 0; i < s->n_workers; i++) {
		struct media_stats_slot *slot = malloc(sizeof(*slot));

		if (slot == NULL)
			continue; /* that worker's counters stay zero */
		slot->r = r;
		slot->i = i;
		if (mix_stats_get(s->workers[i], NULL, 0, media_stats_worker,
				  slot) != 0) {
			free(slot);
			continue;
		}
		r->waiting++;
	}
	media_stats_reply(r);
	return 0;
out:
	free(r);
	return err;
}
