/*
 * dialoginfo.h - RFC 4235 dialog-info documents, built with libxml2.
 *
 * A pure renderer, like confinfo.h: the dialog event package (the
 * subscription side lives in confevent.c) describes the focus's dialogs
 * as they are now, or the one that changed, and gets the XML back.
 * Strings are borrowed for the call and must be UTF-8 XML characters;
 * NULL strings are left out.
 *
 * Threads: any; nothing is kept between calls.
 */
#ifndef FOCUSD_DIALOGINFO_H
#define FOCUSD_DIALOGINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One side of a dialog (RFC 4235 4.1.6, participant type). */
struct di_party {
	const char *identity; /* its URI, e.g. the AOR */
	const char *display;  /* identity/@display */
	const char *target;   /* target/@uri: its Contact */
	/* target/param: Contact parameters (pname, pval), e.g.
	 * isfocus, +sip.rendering; written only with a target. */
	const char *params[4][2];
	unsigned n_params;
};

struct di_dialog {
	const char *id;	       /* required: stable for the dialog's life */
	const char *call_id;   /* the three dialog identifiers, each left */
	const char *local_tag; /* out when not known yet */
	const char *remote_tag;
	const char *direction; /* initiator, recipient or NULL */
	const char *state;     /* trying, proceeding, early, confirmed,
			      terminated */
	const char *event;     /* with terminated: cancelled, rejected,
			      replaced, local-bye, remote-bye, error,
			      timeout; or NULL */
	unsigned code; /* the final response's status, 0 leaves it out */
	bool have_duration;
	uint64_t duration; /* seconds since it was set up */
	struct di_party local, remote;
	bool have_local, have_remote;
};

/*
 * Render the document of entity (the watched resource's URI): full (every
 * dialog of the resource) or partial (the dialogs that changed), with the
 * given version. *xmlp is malloc'd and NUL-terminated (free()), *lenp its
 * length. 0, ENOMEM, or EINVAL: no entity, a dialog without id or state,
 * a state, event or direction outside RFC 4235's lists, an event without
 * state terminated, a code outside 100-699, bad text, n > 0 with NULL.
 */
int di_render(char **xmlp, size_t *lenp, const char *entity, bool full,
	      const struct di_dialog *dialogs, unsigned n, unsigned version);

#endif
