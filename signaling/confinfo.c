/*
 * confinfo.c - RFC 4575 conference-info documents, built with libxml2.
 *
 * ci_render() turns a struct ci_doc into the XML body of a NOTIFY for the
 * conference event package. It works in two passes. The first checks the
 * whole description (entities present, states that make sense together,
 * the schema's enumerations, UTF-8 text made of XML characters, counts
 * against arrays) and is the only place EINVAL comes from. The second
 * builds a libxml2 tree in the element order the schema's sequences
 * require (RFC 4575 section 5) and serializes it with
 * xmlDocDumpFormatMemoryEnc; from there on the only failure is ENOMEM, and
 * every node is attached to the document as soon as it exists, so one
 * xmlFreeDoc releases a half-built tree on any path.
 *
 * The libxml2 helpers and the render skeleton (escaping, checked copies,
 * one dictionary per document) are xmldoc.c's, shared with dialoginfo.c.
 *
 * Alternatives rejected: string templates printed with snprintf, as
 * sdp.c does. SDP is small and fixed in shape; this document has a dozen
 * optional parts and carries display names that come from other people's
 * From headers, and one missed escape would be markup injected into every
 * subscriber's view. xmlTextWriter would save the tree's allocations, but
 * documents are rare (one per change of the conference) and small, and a
 * tree gives one checkable call per element. Rendering on a thread of its
 * own would cost more in handoff than the rendering itself. Checking the
 * output against the schema at run time would load the schema into every
 * focusd; the unit test does it instead.
 *
 * Threads: any, for different documents at once (see xmldoc.h).
 *
 * Cost, per call (focusd makes one per NOTIFY body, on the control
 * thread): a few allocations for the document and its dictionary, then
 * about three and a half per element (node, text node, its string,
 * attributes; libxml2 makes 205 for the three-user document of the unit
 * test, serialization included), one pass of serialization into
 * libxml2's buffer, and two copies of the text (libxml2's buffer to an
 * xmlChar string, that to the caller's malloc'd buffer). Linear in users,
 * endpoints and media: a user with one endpoint, one stream and its
 * call-info is about 850 bytes and 5 us (100 users: 85 KB in 0.5 ms on an
 * x86 build host), so full documents of large conferences need TCP or a
 * rate limit, which the caller decides.
 * Nothing is kept between calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "signaling/confinfo.h"
#include "signaling/xmldoc.h"

#define CI_NS "urn:ietf:params:xml:ns:conference-info"
/* 9999-12-31T23:59:59Z: xs:dateTime takes longer years, but nobody needs
 * them and four digits keep the format fixed. */
#define CI_MAX_WHEN 253402300799ULL

static const char *const state_names[] = {
	[CI_FULL] = "full",
	[CI_PARTIAL] = "partial",
	[CI_DELETED] = "deleted",
};

/* The schema's enumerations, each ended by NULL. */
static const char *const endpoint_statuses[] = {
	"pending",	"dialing-out", "dialing-in",	  "alerting",
	"on-hold",	"connected",   "muted-via-focus", "disconnecting",
	"disconnected", NULL,
};
static const char *const joining_methods[] = {
	"dialed-in",
	"dialed-out",
	"focus-owner",
	NULL,
};
static const char *const disconnection_methods[] = {
	"departed", "booted", "failed", "busy", NULL,
};
static const char *const media_statuses[] = {
	"recvonly", "sendonly", "sendrecv", "inactive", NULL,
};

/*
 * The first pass: what ci_render() refuses with EINVAL.
 */

/* RFC 4575 section 5.1: partial and deleted only mean something in a
 * partial notification; a full one describes everything as it is. */
static bool
state_ok(enum ci_state s, bool full_doc)
{
	if ((unsigned)s > CI_DELETED)
		return false;
	return !full_doc || s == CI_FULL;
}

static int
check_media(const struct ci_media *m)
{
	if (m->id == NULL || !xd_text_ok(m->id) || !xd_text_ok(m->type) ||
	    !xd_text_ok(m->label) || !xd_one_of(m->status, media_statuses))
		return EINVAL;
	return 0;
}

static int
check_endpoint(const struct ci_endpoint *e, bool full_doc)
{
	unsigned n_call = (e->call_id != NULL) + (e->from_tag != NULL) +
			  (e->to_tag != NULL);

	if (!state_ok(e->state, full_doc) || !xd_text_ok(e->entity) ||
	    !xd_text_ok(e->display) || !xd_text_ok(e->joining_by) ||
	    !xd_text_ok(e->disconnection_reason) || !xd_text_ok(e->call_id) ||
	    !xd_text_ok(e->from_tag) || !xd_text_ok(e->to_tag))
		return EINVAL;
	if (!xd_one_of(e->status, endpoint_statuses) ||
	    !xd_one_of(e->joining_method, joining_methods) ||
	    !xd_one_of(e->disconnection_method, disconnection_methods))
		return EINVAL;
	if (e->joining_when > CI_MAX_WHEN ||
	    e->disconnection_when > CI_MAX_WHEN)
		return EINVAL;
	if (n_call != 0 && n_call != 3)
		return EINVAL;
	if (e->n_media > 0 && e->media == NULL)
		return EINVAL;
	for (unsigned i = 0; i < e->n_media; i++) {
		if (check_media(&e->media[i]) != 0)
			return EINVAL;
	}
	return 0;
}

static int
check_user(const struct ci_user *u, bool full_doc)
{
	if (u->entity == NULL || u->entity[0] == '\0' ||
	    !xd_text_ok(u->entity) || !state_ok(u->state, full_doc) ||
	    !xd_text_ok(u->display))
		return EINVAL;
	if ((u->n_roles > 0 && u->roles == NULL) ||
	    (u->n_endpoints > 0 && u->endpoints == NULL))
		return EINVAL;
	for (unsigned i = 0; i < u->n_roles; i++) {
		if (u->roles[i] == NULL || !xd_text_ok(u->roles[i]))
			return EINVAL;
	}
	for (unsigned i = 0; i < u->n_endpoints; i++) {
		if (check_endpoint(&u->endpoints[i], full_doc) != 0)
			return EINVAL;
	}
	return 0;
}

static int
check_doc(const struct ci_doc *d)
{
	bool full = d->state == CI_FULL;

	if (d->entity == NULL || d->entity[0] == '\0' || !xd_text_ok(d->entity))
		return EINVAL;
	if (d->state != CI_FULL && d->state != CI_PARTIAL)
		return EINVAL;
	if (d->have_description) {
		if (!xd_text_ok(d->display) || !xd_text_ok(d->subject))
			return EINVAL;
		if (d->n_conf_uris > 0 && d->conf_uris == NULL)
			return EINVAL;
		for (unsigned i = 0; i < d->n_conf_uris; i++) {
			if (d->conf_uris[i] == NULL ||
			    !xd_text_ok(d->conf_uris[i]))
				return EINVAL;
		}
		if (d->n_media_types > 4)
			return EINVAL;
		for (unsigned i = 0; i < d->n_media_types; i++) {
			if (d->media_types[i] == NULL ||
			    !xd_text_ok(d->media_types[i]) ||
			    !xd_text_ok(d->media_labels[i]))
				return EINVAL;
		}
	}
	if (d->have_users) {
		if (!state_ok(d->users_state, full))
			return EINVAL;
		if (d->n_users > 0 && d->users == NULL)
			return EINVAL;
		for (unsigned i = 0; i < d->n_users; i++) {
			if (check_user(&d->users[i], full) != 0)
				return EINVAL;
		}
	}
	return 0;
}

/*
 * The second pass: the tree. Each function returns NULL or false when
 * libxml2 ran out of memory; what it built so far is already in the tree.
 */

static xmlNodePtr
add_bool(xmlNodePtr parent, const char *name, bool v)
{
	return xd_add(parent, name, v ? "true" : "false");
}

/* An execution-type element (when, reason, by), left out when all three
 * are absent; when is written as an xs:dateTime in UTC. */
static bool
add_execution(xmlNodePtr parent, const char *name, uint64_t when,
	      const char *reason, const char *by)
{
	xmlNodePtr x;

	if (when == 0 && reason == NULL && by == NULL)
		return true;
	x = xd_add(parent, name, NULL);
	if (x == NULL)
		return false;
	if (when != 0) {
		time_t t = (time_t)when;
		struct tm tm;
		char buf[32];

		/* check_endpoint bounded when, so neither call fails. */
		gmtime_r(&t, &tm);
		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (xd_add(x, "when", buf) == NULL)
			return false;
	}
	if (reason != NULL && xd_add(x, "reason", reason) == NULL)
		return false;
	if (by != NULL && xd_add(x, "by", by) == NULL)
		return false;
	return true;
}

/* media-type: display-text, type, label, src-id, status. */
static bool
build_media(xmlNodePtr ep, const struct ci_media *m)
{
	xmlNodePtr x = xd_add(ep, "media", NULL);

	if (x == NULL || !xd_attr(x, "id", m->id))
		return false;
	if (m->type != NULL && xd_add(x, "type", m->type) == NULL)
		return false;
	if (m->label != NULL && xd_add(x, "label", m->label) == NULL)
		return false;
	if (m->have_src_id && xd_add_uint(x, "src-id", m->src_id) == NULL)
		return false;
	if (m->status != NULL && xd_add(x, "status", m->status) == NULL)
		return false;
	return true;
}

/* endpoint-type: display-text, status, joining-method, joining-info,
 * disconnection-method, disconnection-info, media*, call-info. */
static bool
build_endpoint(xmlNodePtr user, const struct ci_endpoint *e)
{
	xmlNodePtr x = xd_add(user, "endpoint", NULL);

	if (x == NULL)
		return false;
	if (e->entity != NULL && !xd_attr(x, "entity", e->entity))
		return false;
	if (!xd_attr(x, "state", state_names[e->state]))
		return false;
	if (e->display != NULL && xd_add(x, "display-text", e->display) == NULL)
		return false;
	if (e->status != NULL && xd_add(x, "status", e->status) == NULL)
		return false;
	if (e->joining_method != NULL &&
	    xd_add(x, "joining-method", e->joining_method) == NULL)
		return false;
	if (!add_execution(x, "joining-info", e->joining_when, NULL,
			   e->joining_by))
		return false;
	if (e->disconnection_method != NULL &&
	    xd_add(x, "disconnection-method", e->disconnection_method) == NULL)
		return false;
	if (!add_execution(x, "disconnection-info", e->disconnection_when,
			   e->disconnection_reason, NULL))
		return false;
	for (unsigned i = 0; i < e->n_media; i++) {
		if (!build_media(x, &e->media[i]))
			return false;
	}
	if (e->call_id != NULL) {
		xmlNodePtr ci = xd_add(x, "call-info", NULL);
		xmlNodePtr sip = ci != NULL ? xd_add(ci, "sip", NULL) : NULL;

		if (sip == NULL || xd_add(sip, "call-id", e->call_id) == NULL ||
		    xd_add(sip, "from-tag", e->from_tag) == NULL ||
		    xd_add(sip, "to-tag", e->to_tag) == NULL)
			return false;
	}
	return true;
}

/* user-type: display-text, roles, endpoint*. */
static bool
build_user(xmlNodePtr users, const struct ci_user *u)
{
	xmlNodePtr x = xd_add(users, "user", NULL);

	if (x == NULL || !xd_attr(x, "entity", u->entity) ||
	    !xd_attr(x, "state", state_names[u->state]))
		return false;
	if (u->display != NULL && xd_add(x, "display-text", u->display) == NULL)
		return false;
	if (u->n_roles > 0) {
		xmlNodePtr roles = xd_add(x, "roles", NULL);

		if (roles == NULL)
			return false;
		for (unsigned i = 0; i < u->n_roles; i++) {
			if (xd_add(roles, "entry", u->roles[i]) == NULL)
				return false;
		}
	}
	for (unsigned i = 0; i < u->n_endpoints; i++) {
		if (!build_endpoint(x, &u->endpoints[i]))
			return false;
	}
	return true;
}

/* conference-description-type: display-text, subject, conf-uris,
 * maximum-user-count, available-media. */
static bool
build_description(xmlNodePtr root, const struct ci_doc *d)
{
	xmlNodePtr x = xd_add(root, "conference-description", NULL);

	if (x == NULL)
		return false;
	if (d->display != NULL && xd_add(x, "display-text", d->display) == NULL)
		return false;
	if (d->subject != NULL && xd_add(x, "subject", d->subject) == NULL)
		return false;
	if (d->n_conf_uris > 0) {
		xmlNodePtr uris = xd_add(x, "conf-uris", NULL);

		if (uris == NULL)
			return false;
		for (unsigned i = 0; i < d->n_conf_uris; i++) {
			xmlNodePtr entry = xd_add(uris, "entry", NULL);

			if (entry == NULL ||
			    xd_add(entry, "uri", d->conf_uris[i]) == NULL)
				return false;
		}
	}
	if (d->max_users > 0 &&
	    xd_add_uint(x, "maximum-user-count", d->max_users) == NULL)
		return false;
	if (d->n_media_types > 0) {
		xmlNodePtr media = xd_add(x, "available-media", NULL);

		if (media == NULL)
			return false;
		for (unsigned i = 0; i < d->n_media_types; i++) {
			xmlNodePtr entry = xd_add(media, "entry", NULL);
			char index[12];
			const char *label = d->media_labels[i];

			if (label == NULL) {
				snprintf(index, sizeof(index), "%u", i + 1);
				label = index;
			}
			if (entry == NULL || !xd_attr(entry, "label", label) ||
			    xd_add(entry, "type", d->media_types[i]) == NULL)
				return false;
		}
	}
	return true;
}

/* conference-type: conference-description, conference-state, users. */
static bool
build_doc(xmlDocPtr doc, const struct ci_doc *d, unsigned version)
{
	xmlNodePtr root = xd_root(doc, "conference-info", CI_NS);
	char buf[16];

	if (root == NULL)
		return false;
	snprintf(buf, sizeof(buf), "%u", version);
	if (!xd_attr(root, "entity", d->entity) ||
	    !xd_attr(root, "state", state_names[d->state]) ||
	    !xd_attr(root, "version", buf))
		return false;
	if (d->have_description && !build_description(root, d))
		return false;
	if (d->have_state) {
		xmlNodePtr x = xd_add(root, "conference-state", NULL);

		if (x == NULL ||
		    xd_add_uint(x, "user-count", d->user_count) == NULL ||
		    add_bool(x, "active", d->active) == NULL ||
		    add_bool(x, "locked", d->locked) == NULL)
			return false;
	}
	if (d->have_users) {
		xmlNodePtr x = xd_add(root, "users", NULL);

		if (x == NULL ||
		    !xd_attr(x, "state", state_names[d->users_state]))
			return false;
		for (unsigned i = 0; i < d->n_users; i++) {
			if (!build_user(x, &d->users[i]))
				return false;
		}
	}
	return true;
}

struct ci_job {
	const struct ci_doc *d;
	unsigned version;
};

static bool
build_job(xmlDocPtr doc, const void *arg)
{
	const struct ci_job *j = arg;

	return build_doc(doc, j->d, j->version);
}

int
ci_render(char **xmlp, size_t *lenp, const struct ci_doc *d, unsigned version)
{
	struct ci_job j = {d, version};
	int err;

	if (xmlp == NULL || lenp == NULL || d == NULL)
		return EINVAL;
	err = check_doc(d);
	if (err != 0)
		return err;
	return xd_render(xmlp, lenp, build_job, &j);
}
