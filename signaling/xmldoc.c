/*
 * xmldoc.c - the XML event documents' shared helpers (see xmldoc.h).
 *
 * Text reaches a tree only through xmlNewTextChild and xmlNewProp, so
 * libxml2's serializer does all the escaping. libxml2 2.9 does not check
 * every copy it makes when building nodes (a text node whose string copy
 * failed is kept, empty), so xd_add() and xd_attr() check the result of
 * each call and turn a missing piece into a failure rather than a
 * silently shortened document. Each document has its own dictionary, so
 * each element name is stored once and a failed name lookup makes the
 * node call fail instead of leaving a nameless node.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "signaling/xmldoc.h"

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void
xml_init(void)
{
	xmlInitParser();
}

bool
xd_text_ok(const char *s)
{
	static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL)
		return true;
	while (*p != '\0') {
		uint32_t c = *p;
		unsigned n;

		if (c < 0x80) {
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				return false;
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			c &= 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			c &= 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			c &= 0x07;
		} else {
			return false;
		}
		/* A NUL fails the test too, so nothing past it is read. */
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			c = c << 6 | (p[i] & 0x3f);
		}
		if (c < min[n] || c > 0x10ffff ||
		    (c >= 0xd800 && c <= 0xdfff) || c == 0xfffe || c == 0xffff)
			return false;
		p += n + 1;
	}
	return true;
}

bool
xd_one_of(const char *s, const char *const *set)
{
	if (s == NULL)
		return true;
	for (; *set != NULL; set++) {
		if (strcmp(s, *set) == 0)
			return true;
	}
	return false;
}

xmlNodePtr
xd_add(xmlNodePtr parent, const char *name, const char *text)
{
	xmlNodePtr n;

	if (text != NULL)
		n = xmlNewTextChild(parent, parent->ns, BAD_CAST name,
				    BAD_CAST text);
	else
		n = xmlNewChild(parent, parent->ns, BAD_CAST name, NULL);
	if (n == NULL || n->name == NULL)
		return NULL;
	/* A text node whose copy failed is kept without content. */
	if (text != NULL &&
	    (n->children == NULL || n->children->content == NULL))
		return NULL;
	return n;
}

bool
xd_attr(xmlNodePtr n, const char *name, const char *value)
{
	xmlAttrPtr a = xmlNewProp(n, BAD_CAST name, BAD_CAST value);

	return a != NULL && a->name != NULL && a->children != NULL &&
	       a->children->content != NULL;
}

xmlNodePtr
xd_add_uint(xmlNodePtr parent, const char *name, unsigned long long v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%llu", v);
	return xd_add(parent, name, buf);
}

bool
xd_attr_uint(xmlNodePtr n, const char *name, unsigned long long v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%llu", v);
	return xd_attr(n, name, buf);
}

xmlNodePtr
xd_root(xmlDocPtr doc, const char *name, const char *ns_uri)
{
	xmlNodePtr root = xmlNewDocNode(doc, NULL, BAD_CAST name, NULL);
	xmlNsPtr ns;

	if (root == NULL || root->name == NULL) {
		xmlFreeNode(root);
		return NULL;
	}
	xmlDocSetRootElement(doc, root);
	ns = xmlNewNs(root, BAD_CAST ns_uri, NULL);
	if (ns == NULL || ns->href == NULL)
		return NULL;
	xmlSetNs(root, ns);
	return root;
}

int
xd_render(char **xmlp, size_t *lenp,
	  bool (*build)(xmlDocPtr doc, const void *arg), const void *arg)
{
	xmlDocPtr doc = NULL;
	xmlChar *mem = NULL;
	int size = 0;
	char *out = NULL;
	int err = ENOMEM;

	pthread_once(&xml_once, xml_init);
	doc = xmlNewDoc(BAD_CAST "1.0");
	if (doc == NULL)
		goto out;
	doc->dict = xmlDictCreate();
	if (doc->dict == NULL || !build(doc, arg))
		goto out;
	xmlDocDumpFormatMemoryEnc(doc, &mem, &size, "UTF-8", 1);
	if (mem == NULL || size <= 0)
		goto out;
	out = malloc((size_t)size + 1);
	if (out == NULL)
		goto out;
	memcpy(out, mem, (size_t)size);
	out[size] = '\0';
	*xmlp = out;
	*lenp = (size_t)size;
	err = 0;
out:
	xmlFree(mem);
	xmlFreeDoc(doc);
	return err;
}
