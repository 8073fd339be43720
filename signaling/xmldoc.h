/*
 * xmldoc.h - what the XML event documents (RFC 4575 conference-info,
 * RFC 4235 dialog-info) share: text checks, libxml2 node helpers that
 * check every copy they make, and the render skeleton from tree to a
 * malloc'd UTF-8 string.
 *
 * Threads: any, for different documents at once; libxml2 is thread-safe
 * for separate trees. xmlInitParser runs once, under pthread_once, before
 * the first tree; nothing here calls xmlCleanupParser, which would pull
 * libxml2 from under other users in the process.
 */
#ifndef FOCUSD_XMLDOC_H
#define FOCUSD_XMLDOC_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

/*
 * Whether s (NULL counts as absent, so fine) is UTF-8 made only of XML
 * 1.0 Chars (section 2.2): no C0 control but tab, LF and CR, no
 * surrogate, U+FFFE or U+FFFF, no overlong or truncated sequence.
 * libxml2 would write most of these into a document no parser takes.
 */
bool xd_text_ok(const char *s);
/* Whether s is absent (NULL) or one of set, which NULL ends. */
bool xd_one_of(const char *s, const char *const *set);

/*
 * A child element of parent in parent's namespace, with text (escaped by
 * the serializer) unless text is NULL; NULL when libxml2 ran out of
 * memory (a text node whose copy failed counts as that).
 */
xmlNodePtr xd_add(xmlNodePtr parent, const char *name, const char *text);
xmlNodePtr xd_add_uint(xmlNodePtr parent, const char *name,
		       unsigned long long v);
/* An attribute; false when out of memory. */
bool xd_attr(xmlNodePtr n, const char *name, const char *value);
bool xd_attr_uint(xmlNodePtr n, const char *name, unsigned long long v);
/* The document's root element, in namespace ns_uri (the default one). */
xmlNodePtr xd_root(xmlDocPtr doc, const char *name, const char *ns_uri);

/*
 * Build a document with build(doc, arg) - false means out of memory -
 * and serialize it: *xmlp malloc'd and NUL-terminated, *lenp its length.
 * 0 or ENOMEM; on error *xmlp and *lenp are left as they were.
 */
int xd_render(char **xmlp, size_t *lenp,
	      bool (*build)(xmlDocPtr doc, const void *arg), const void *arg);

#endif
