/*
 * xmltest.h - what the unit tests of the libxml2 renderers (test_confinfo,
 * test_dialoginfo) share: libxml2's allocator, counted and failing on
 * demand; reading a document back by XPath; checking it against its XSD
 * with xmllint; and failing every allocation of a render in turn.
 *
 * A test calls xt_init once, first thing in main, with its namespace,
 * schema and xmllint; everything else reads those. Single-threaded, like
 * the tests.
 */
#ifndef FOCUSD_XMLTEST_H
#define FOCUSD_XMLTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libxml/tree.h>

/* What the helpers need to know about the documents under test. */
struct xt_conf {
	const char *name;    /* "confinfo": temp file and parse names */
	const char *prefix;  /* XPath prefix bound to ns ("ci") */
	const char *ns;	     /* the documents' namespace URI */
	const char *xsd;     /* the schema xmllint checks against */
	const char *xmllint; /* its path; "" where it is not installed */
};

/*
 * Installs the counting allocator (xmlMemSetup) and keeps conf (borrowed:
 * it must outlive the tests). Before any other libxml2 call, so every
 * block is counted. 0, or EINVAL when libxml2 refuses the allocator.
 */
int xt_init(const struct xt_conf *conf);

/* A render that must succeed: rc 0, and xml a NUL-terminated string of
 * len bytes. Returns xml, with len in *lenp unless lenp is NULL. */
char *xt_rendered(int rc, char *xml, size_t len, size_t *lenp);

/* xml parsed by libxml2 (no network); fails the test when it does not
 * parse. */
xmlDocPtr xt_parse(const char *xml, size_t len);

/* The string value of XPath expr (the conf's prefix is its namespace),
 * malloc'd. */
char *xt_xpath_str(xmlDocPtr doc, const char *expr);

#define assert_xpath(doc, expr, want)                              \
	do {                                                       \
		char *got_ = xt_xpath_str(doc, expr);              \
		if (strcmp(got_, want) != 0)                       \
			print_error("%s: got '%s'\n", expr, got_); \
		assert_string_equal(got_, want);                   \
		free(got_);                                        \
	} while (0)

/* How many nodes expr selects, as a string ("0", "3"). */
#define assert_count(doc, expr, want) assert_xpath(doc, "count(" expr ")", want)

/* The names of the child elements of the node expr selects (one),
 * space-separated. */
void assert_children(xmlDocPtr doc, const char *expr, const char *want);

/* Whether xmllint is installed; the schema checks skip where it is not. */
bool xt_have_xmllint(void);

/* Runs xmllint --schema on xml; returns its exit status (-1 when it did
 * not exit) and puts what it said in msg. */
int xt_xmllint_schema(const char *xml, size_t len, char *msg, size_t msg_size);

/* Last in a test: skips (the rest of) it where xmllint is missing. */
void assert_schema_valid(const char *xml, size_t len);

/* One render under test: 0, or an errno (ENOMEM expected); *xmlp
 * malloc'd. */
typedef int (*xt_render_h)(char **xmlp, size_t *lenp, const void *arg);

/*
 * Fails every allocation libxml2 makes during render(arg) in turn, the
 * first, then the second, and so on until one render makes no allocation
 * fail. Each must give ENOMEM with *xmlp left NULL, or survive and give
 * the bytes ref, and leak nothing. Returns the number of the allocation
 * that was never reached (one more than the allocations tried).
 */
long xt_enomem_everywhere(xt_render_h render, const void *arg, const char *ref,
			  size_t ref_len);

#endif
