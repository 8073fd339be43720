/*
 * confinfo.h - RFC 4575 conference-info documents, built with libxml2.
 *
 * A pure renderer: the caller (the conference event package, confevent.c)
 * describes the conference as it is now, or the part of it that changed,
 * and gets the XML text back. Nothing here knows about SIP dialogs or
 * subscriptions. Strings are borrowed for the duration of the call; all
 * of them must be UTF-8 made of XML 1.0 characters (no control characters
 * but tab, LF and CR), so text taken from SIP headers (display names) must
 * be cleaned by the caller first.
 *
 * Threads: any; no state is kept between calls. libxml2 is initialised
 * once, under pthread_once, and never cleaned up here.
 */
#ifndef FOCUSD_CONFINFO_H
#define FOCUSD_CONFINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The "state" attribute of RFC 4575 section 5.1 (state-type). */
enum ci_state {
	CI_FULL = 0,
	CI_PARTIAL,
	CI_DELETED,
};

/* One media stream of an endpoint (media-type). */
struct ci_media {
	const char *id;	    /* "id" attribute, e.g. "1" */
	const char *type;   /* "audio" */
	const char *label;  /* the SDP a=label or NULL */
	const char *status; /* sendrecv, sendonly, recvonly, inactive */
	uint32_t src_id;    /* the SSRC we send it with */
	bool have_src_id;
};

/* An endpoint of a user (endpoint-type); NULL strings are left out. */
struct ci_endpoint {
	const char *entity; /* the endpoint's URI (its Contact) */
	enum ci_state state;
	const char *display; /* display-text */
	const char *status;  /* pending, dialing-out, dialing-in, alerting,
				on-hold, connected, muted-via-focus,
				disconnecting, disconnected */
	const char *joining_method; /* dialed-in, dialed-out, focus-owner */
	/* joining-info, left out when when is 0 and by is NULL; times are
	 * seconds since the epoch (UTC), at most 9999-12-31T23:59:59Z. */
	const char *joining_by; /* joining-info/by: who brought it in */
	uint64_t joining_when;	/* joining-info/when; 0 leaves it out */
	const char *disconnection_method; /* departed, booted, failed, busy */
	/* disconnection-info, left out when when is 0 and reason is NULL */
	const char *disconnection_reason; /* disconnection-info/reason */
	uint64_t disconnection_when;
	const struct ci_media *media;
	unsigned n_media;
	/* call-info/sip: the dialog between focus and endpoint (RFC 4575
	 * 5.7.1.2); all three or none. */
	const char *call_id;
	const char *from_tag;
	const char *to_tag;
};

struct ci_user {
	const char *entity; /* the user's URI (its AOR) */
	enum ci_state state;
	const char *display;
	const char *const *roles; /* roles/entry, e.g. "participant" */
	unsigned n_roles;
	const struct ci_endpoint *endpoints;
	unsigned n_endpoints;
};

struct ci_doc {
	const char *entity;  /* the conference URI */
	enum ci_state state; /* CI_FULL or CI_PARTIAL */

	/* conference-description, written when have_description is true;
	 * within it, NULL strings and 0 counts are left out. */
	bool have_description;
	const char *display; /* display-text */
	const char *subject;
	const char *const *conf_uris; /* conf-uris/entry/uri */
	unsigned n_conf_uris;
	unsigned max_users;	    /* maximum-user-count; 0 leaves it out */
	const char *media_types[4]; /* available-media, e.g. "audio" */
	/* available-media/entry@label, which the schema requires: the
	 * focus's a=label of that stream; NULL writes its 1-based index. */
	const char *media_labels[4];
	unsigned n_media_types; /* at most 4 */

	/* conference-state, left out when have_state is false */
	bool have_state;
	unsigned user_count;
	bool active;
	bool locked;

	/* users, left out when have_users is false */
	bool have_users;
	enum ci_state users_state; /* full in full docs, partial in deltas */
	const struct ci_user *users;
	unsigned n_users;
};

/*
 * Render d as a conference-info document with the given version: UTF-8
 * XML, namespace urn:ietf:params:xml:ns:conference-info, valid against the
 * schema of RFC 4575 section 5. *xmlp is malloc'd (free with free()) and
 * NUL-terminated, *lenp its length without the NUL. Every state attribute
 * is written, "full" included.
 *
 * Returns 0, ENOMEM, or EINVAL for: a NULL argument; a missing or empty
 * conference or user entity; a bad state combination (the document
 * "deleted", or anything but "full" inside a full document); a status,
 * joining-method, disconnection-method or media status outside the
 * schema's lists; a media without id; call-info with only some of its
 * three parts; a count above 0 with a NULL array or a NULL entry in it;
 * more than 4 media types; a time after year 9999; or text that is not
 * UTF-8 XML characters. On error *xmlp and *lenp are left as they were.
 */
int ci_render(char **xmlp, size_t *lenp, const struct ci_doc *d,
	      unsigned version);

#endif
