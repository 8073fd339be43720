/*
 * auth.c - who may act on a conference: SIP digest (RFC 3261 22) through
 * Sofia-SIP's auth module, and the owner/moderator rule.
 *
 * Actions that change other people's calls - removing a participant by
 * REFER (RFC 4579 4.11), taking a participant's place with Replaces
 * (RFC 3891 7 asks for exactly this check) - need a user authenticated
 * against --users who is the conference's owner, a --moderators entry,
 * or (where the caller allows it) one named user, such as the
 * participant being replaced. The module keeps nonces and checks
 * responses; without a users file nobody authenticates.
 *
 * Control thread only; cost per checked request, not per packet.
 */
#include <stdio.h>
#include <string.h>

#include "signaling/sig_priv.h"

#include <sofia-sip/auth_module.h>

/* The user part of a SIP URI string, into buf; NULL if there is none. */
const char *
sig_uri_user(char *buf, size_t len, const char *uri)
{
	const char *colon = uri ? strchr(uri, ':') : NULL;
	const char *at = colon ? strchr(colon, '@') : NULL;

	if (at == NULL || (size_t)(at - colon - 1) >= len)
		return NULL;
	memcpy(buf, colon + 1, at - colon - 1);
	buf[at - colon - 1] = '\0';
	return buf;
}

static void
auth_reject(struct sig *s, nua_handle_t *nh, int status, const char *phrase,
	    const sip_header_t *challenge)
{
	sig_reject(s, nh, status, phrase,
		   TAG_IF(challenge, SIPTAG_HEADER(challenge)), TAG_END());
}

static bool
is_owner(const struct sig_conf *c, const char *user)
{
	char owner[128];
	const char *o = c ? sig_uri_user(owner, sizeof(owner), c->owner) : NULL;

	return o && strcmp(o, user) == 0;
}

static bool
auth_check(struct sig *s, nua_handle_t *nh, const sip_t *sip,
	   const struct sig_conf *c, const struct sig_conf *c2,
	   const char *also_user, const char *what)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	auth_status_t *as;
	bool ok = false;

	if (s->auth == NULL) {
		auth_reject(s, nh, 403, "Forbidden - No Users Configured",
			    NULL);
		return false;
	}
	as = auth_status_new(home);
	if (as == NULL) {
		auth_reject(s, nh, SIP_500_INTERNAL_SERVER_ERROR, NULL);
		return false;
	}
	as->as_realm = s->realm;
	as->as_uri = url_as_string(home, sip->sip_request->rq_url);
	auth_mod_check(s->auth, as, sip, auth_server);
	if (as->as_status == 0 && as->as_user) {
		ok = sig_is_moderator(s, as->as_user) ||
		     (is_owner(c, as->as_user) &&
		      (c2 == NULL || is_owner(c2, as->as_user))) ||
		     (also_user && strcmp(also_user, as->as_user) == 0);
		if (!ok) {
			FC_INFO("sig", "conference %s: %s may not %s", c->id,
				as->as_user, what);
			auth_reject(s, nh, 403,
				    "Forbidden - Not Owner or Moderator", NULL);
		}
	} else {
		auth_reject(s, nh, as->as_status ? as->as_status : 403,
			    as->as_phrase ? as->as_phrase : "Forbidden",
			    (const sip_header_t *)as->as_response);
	}
	auth_status_unref(as);
	su_home_deinit(home);
	return ok;
}

bool
sig_auth_require(struct sig *s, nua_handle_t *nh, const sip_t *sip,
		 const struct sig_conf *c, const char *also_user,
		 const char *what)
{
	return auth_check(s, nh, sip, c, NULL, also_user, what);
}

bool
sig_auth_require2(struct sig *s, nua_handle_t *nh, const sip_t *sip,
		  const struct sig_conf *c, const struct sig_conf *c2,
		  const char *what)
{
	return auth_check(s, nh, sip, c, c2, NULL, what);
}
