/*
 * dialogid.c - Join and Target-Dialog header parsing (see dialogid.h).
 *
 * Grammar (RFC 3911 7.1, RFC 4538 7): callid *(SEMI param), where a param
 * is token [= value]. Parameter names are case-insensitive; the Call-ID is
 * compared exactly. Values may be quoted strings only in generic params we
 * ignore. Unknown params are skipped, as both RFCs allow extensions.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "signaling/dialogid.h"
#include "signaling/sig_priv.h"

static const char *
skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Copy [b, e) trimmed into out[len]; false if empty or too long. */
static bool
copy_trim(char *out, size_t len, const char *b, const char *e)
{
	b = skip_ws(b);
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (e <= b || (size_t)(e - b) >= len)
		return false;
	memcpy(out, b, e - b);
	out[e - b] = '\0';
	return true;
}

int
sig_dialog_id_parse(struct sig_dialog_id *id, const char *value,
		    const char *tag1_name, const char *tag2_name)
{
	const char *p, *semi;
	bool have1 = false, have2 = false;

	if (id == NULL || value == NULL)
		return EINVAL;
	memset(id, 0, sizeof(*id));
	semi = strchr(value, ';');
	if (!copy_trim(id->call_id, sizeof(id->call_id), value,
		       semi ? semi : value + strlen(value)))
		return EINVAL;
	for (p = semi; p && *p == ';';) {
		const char *name = p + 1, *end = strchr(name, ';'), *eq;

		if (end == NULL)
			end = name + strlen(name);
		eq = memchr(name, '=', end - name);
		if (eq) {
			char key[32];

			if (!copy_trim(key, sizeof(key), name, eq))
				return EINVAL;
			if (strcasecmp(key, tag1_name) == 0) {
				if (!copy_trim(id->tag1, sizeof(id->tag1),
					       eq + 1, end))
					return EINVAL;
				have1 = true;
			} else if (strcasecmp(key, tag2_name) == 0) {
				if (!copy_trim(id->tag2, sizeof(id->tag2),
					       eq + 1, end))
					return EINVAL;
				have2 = true;
			}
		} else {
			char key[32];

			if (copy_trim(key, sizeof(key), name, end) &&
			    strcasecmp(key, "early-only") == 0)
				id->early_only = true;
		}
		p = end;
	}
	return have1 && have2 ? 0 : EINVAL;
}

int
sig_dialog_id_find(struct sig_dialog_id *id, const struct sip_s *sip,
		   const char *name, const char *tag1_name,
		   const char *tag2_name)
{
	const sip_unknown_t *u, *found = NULL;

	for (u = sip->sip_unknown; u; u = u->un_next) {
		if (u->un_name && strcasecmp(u->un_name, name) == 0) {
			if (found)
				return EINVAL; /* exactly one, RFC 3911 */
			found = u;
		}
	}
	if (found == NULL)
		return ENOENT;
	return sig_dialog_id_parse(id, found->un_value, tag1_name, tag2_name);
}
