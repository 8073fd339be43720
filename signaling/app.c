/*
 * app.c - the conference application (RFC 4579 section 4.3).
 *
 * A call to the application URI (sip:APP@domain, --application) is
 * answered into a lobby of its own: an application conference on a
 * mixer worker, where the caller hears a prompt (a short beep every
 * 1.5 s) and nobody else. The digits it keys - RFC 4733 telephone-events
 * when its offer had them, in-band DTMF otherwise, both found by the
 * worker - come back here one by one. '#' ends the number: the caller is
 * moved (sig_leg_move, 4.10) into the conference named by the digits,
 * created if it does not exist with the caller as its owner, and the
 * move's re-INVITE gives it that conference's URI with isfocus. '*'
 * starts the number over; '#' alone is ignored. The lobby, empty then,
 * goes away.
 *
 * Control thread only; a digit is a rare event.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signaling/sig_priv.h"

static void
app_enter(struct sig_leg *l)
{
	struct sig *s = l->s;
	struct sig_conf *dst;
	char *owner = NULL;
	int err;
	l->digits[l->n_digits] = '\0';
	dst = sig_conf_find(s, l->digits);
	if (dst == NULL && s->have_id_pattern &&
	    regexec(&s->id_pattern, l->digits, 0, NULL, 0) != 0) {
		/* The ID policy binds the application too (auto-create does
		 * not: the application is a way of creating, like the
		 * factory). The caller stays in the lobby. */
		FC_INFO("sig",
			"application: %s keyed %s, which "
			"--conf-id-pattern does not allow",
			l->peer_uri ? l->peer_uri : "?", l->digits);
		l->n_digits = 0;
		return;
	}
	if (dst == NULL) {
		char buf[256];

		if (l->peer_uri) {
			/* The owner is the caller's AOR, like a dial-in's. */
			su_home_t home[1] = {SU_HOME_INIT(home)};
			url_t *u = url_make(home, l->peer_uri);

			if (u) {
				u->url_port = NULL;
				u->url_params = NULL;
				url_e(buf, sizeof(buf), u);
				owner = buf;
			}
			err = sig_conf_create(&dst, s, l->digits, owner);
			su_home_deinit(home);
		} else {
			err = sig_conf_create(&dst, s, l->digits, NULL);
		}
		if (err) {
			FC_WARN("sig",
				"application: cannot make conference "
				"%s: %s",
				l->digits, strerror(err));
			l->n_digits = 0;
			return;
		}
	}
	FC_INFO("sig", "application: %s keyed %s",
		l->peer_uri ? l->peer_uri : "?", l->digits);
	err = sig_leg_move(l, dst);
	if (err) {
		FC_WARN("sig", "application: cannot move %s to %s: %s",
			l->peer_uri ? l->peer_uri : "?", l->digits,
			strerror(err));
		if (dst->n_legs == 0)
			sig_conf_gc(dst);
	}
	l->n_digits = 0;
}

void
sig_app_digit(void *sp, void *owner, char digit)
{
	struct sig_leg *l = owner;

	(void)sp;
	/* Reported before the leg left its lobby: it may be gone since. */
	if (l == NULL || l->releasing || l->conf == NULL || l->moving)
		return;
	if (!l->conf->app) {
		/* A conference does nothing with digits; the NOC sees them
		 * here and counted in conference.show (rtp.rx_dtmf). */
		FC_INFO("sig", "conference %s: %s keyed '%c'", l->conf->id,
			l->peer_uri ? l->peer_uri : "?", digit);
		return;
	}
	FC_DEBUG("sig", "application: %s keyed '%c'",
		 l->peer_uri ? l->peer_uri : "?", digit);
	if (digit == '*') {
		l->n_digits = 0;
	} else if (digit == '#') {
		if (l->n_digits)
			app_enter(l);
	} else if (digit >= '0' && digit <= '9' &&
		   l->n_digits + 1 < sizeof(l->digits) && l->n_digits < 64) {
		l->digits[l->n_digits++] = digit;
	}
}
