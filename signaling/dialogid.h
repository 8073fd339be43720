/*
 * dialogid.h - the dialog identifier headers Sofia-SIP 1.12 has no class
 * for: Join (RFC 3911) and Target-Dialog (RFC 4538), parsed in this one
 * place from the request's unknown headers.
 *
 * Both carry `callid *(; param)`: Join's params are to-tag and from-tag,
 * Target-Dialog's local-tag and remote-tag. (Replaces, RFC 3891, has a
 * Sofia class and is read through it.)
 *
 * Threads: any; no state.
 */
#ifndef FOCUSD_DIALOGID_H
#define FOCUSD_DIALOGID_H

#include <stdbool.h>

struct sip_s;

struct sig_dialog_id {
	char call_id[256];
	char tag1[128];	 /* Join: to-tag; Target-Dialog: local-tag */
	char tag2[128];	 /* Join: from-tag; Target-Dialog: remote-tag */
	bool early_only; /* Join's early-only flag */
};

/*
 * Parse `value` (the header's value) with the given tag parameter names.
 * 0, or EINVAL: no Call-ID, a tag missing or empty, anything too long.
 */
int sig_dialog_id_parse(struct sig_dialog_id *id, const char *value,
			const char *tag1_name, const char *tag2_name);

/*
 * Find header `name` among the request's headers Sofia did not parse and
 * parse it as above: 0, ENOENT (absent), EINVAL (malformed, or present
 * more than once).
 */
int sig_dialog_id_find(struct sig_dialog_id *id, const struct sip_s *sip,
		       const char *name, const char *tag1_name,
		       const char *tag2_name);

#endif
