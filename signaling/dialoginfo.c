/*
 * dialoginfo.c - RFC 4235 dialog-info documents (see dialoginfo.h).
 *
 * Two passes, as confinfo.c: a check of the whole description, the only
 * source of EINVAL, then the tree in the schema's element order
 * (dialog-info > dialog > state, duration, local, remote) through
 * xmldoc.c's checked helpers, serialized by xd_render.
 *
 * Cost: one render per NOTIFY body, on the control thread; a dialog is
 * about 600 bytes, a full document linear in the resource's dialogs.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "signaling/dialoginfo.h"
#include "signaling/xmldoc.h"

#define DI_NS "urn:ietf:params:xml:ns:dialog-info"

static const char *const states[] = {
	"trying", "proceeding", "early", "confirmed", "terminated", NULL,
};
static const char *const events[] = {
	"cancelled",  "rejected", "replaced", "local-bye",
	"remote-bye", "error",	  "timeout",  NULL,
};
static const char *const directions[] = {"initiator", "recipient", NULL};

static bool
party_ok(const struct di_party *p)
{
	if (!xd_text_ok(p->identity) || !xd_text_ok(p->display) ||
	    !xd_text_ok(p->target) || p->n_params > 4)
		return false;
	for (unsigned i = 0; i < p->n_params; i++) {
		if (p->params[i][0] == NULL || p->params[i][0][0] == '\0' ||
		    p->params[i][1] == NULL || !xd_text_ok(p->params[i][0]) ||
		    !xd_text_ok(p->params[i][1]))
			return false;
	}
	return true;
}

static bool
dialog_ok(const struct di_dialog *d)
{
	if (d->id == NULL || d->id[0] == '\0' || d->state == NULL)
		return false;
	if (!xd_one_of(d->state, states) || !xd_one_of(d->event, events) ||
	    !xd_one_of(d->direction, directions))
		return false;
	if (d->event && strcmp(d->state, "terminated") != 0)
		return false;
	if (d->code != 0 && (d->code < 100 || d->code > 699))
		return false;
	if (!xd_text_ok(d->id) || !xd_text_ok(d->call_id) ||
	    !xd_text_ok(d->local_tag) || !xd_text_ok(d->remote_tag))
		return false;
	return (!d->have_local || party_ok(&d->local)) &&
	       (!d->have_remote || party_ok(&d->remote));
}

static bool
opt_attr(xmlNodePtr n, const char *name, const char *value)
{
	return value == NULL || xd_attr(n, name, value);
}

static bool
build_party(xmlNodePtr dlg, const char *name, const struct di_party *p)
{
	xmlNodePtr x = xd_add(dlg, name, NULL), id, t;

	if (x == NULL)
		return false;
	if (p->identity) {
		id = xd_add(x, "identity", p->identity);
		if (id == NULL || !opt_attr(id, "display", p->display))
			return false;
	}
	if (p->target == NULL)
		return true;
	t = xd_add(x, "target", NULL);
	if (t == NULL || !xd_attr(t, "uri", p->target))
		return false;
	for (unsigned i = 0; i < p->n_params; i++) {
		xmlNodePtr pm = xd_add(t, "param", NULL);

		if (pm == NULL || !xd_attr(pm, "pname", p->params[i][0]) ||
		    !xd_attr(pm, "pval", p->params[i][1]))
			return false;
	}
	return true;
}

static bool
build_dialog(xmlNodePtr root, const struct di_dialog *d)
{
	xmlNodePtr x = xd_add(root, "dialog", NULL), st;

	if (x == NULL || !xd_attr(x, "id", d->id) ||
	    !opt_attr(x, "call-id", d->call_id) ||
	    !opt_attr(x, "local-tag", d->local_tag) ||
	    !opt_attr(x, "remote-tag", d->remote_tag) ||
	    !opt_attr(x, "direction", d->direction))
		return false;
	st = xd_add(x, "state", d->state);
	if (st == NULL || !opt_attr(st, "event", d->event) ||
	    (d->code && !xd_attr_uint(st, "code", d->code)))
		return false;
	if (d->have_duration && xd_add_uint(x, "duration", d->duration) == NULL)
		return false;
	if (d->have_local && !build_party(x, "local", &d->local))
		return false;
	return !d->have_remote || build_party(x, "remote", &d->remote);
}

struct di_job {
	const char *entity;
	bool full;
	const struct di_dialog *dialogs;
	unsigned n;
	unsigned version;
};

static bool
build_doc(xmlDocPtr doc, const void *arg)
{
	const struct di_job *j = arg;
	xmlNodePtr root = xd_root(doc, "dialog-info", DI_NS);

	if (root == NULL || !xd_attr_uint(root, "version", j->version) ||
	    !xd_attr(root, "state", j->full ? "full" : "partial") ||
	    !xd_attr(root, "entity", j->entity))
		return false;
	for (unsigned i = 0; i < j->n; i++) {
		if (!build_dialog(root, &j->dialogs[i]))
			return false;
	}
	return true;
}

int
di_render(char **xmlp, size_t *lenp, const char *entity, bool full,
	  const struct di_dialog *dialogs, unsigned n, unsigned version)
{
	struct di_job j = {entity, full, dialogs, n, version};

	if (xmlp == NULL || lenp == NULL || entity == NULL ||
	    entity[0] == '\0' || !xd_text_ok(entity) ||
	    (n > 0 && dialogs == NULL))
		return EINVAL;
	for (unsigned i = 0; i < n; i++) {
		if (!dialog_ok(&dialogs[i]))
			return EINVAL;
	}
	return xd_render(xmlp, lenp, build_doc, &j);
}
