/*
 * xmltest.c - helpers shared by the unit tests of the libxml2 renderers
 * (see xmltest.h).
 *
 * Compiled into each test executable rather than built once as a library:
 * it is small, and each test's copy reads only that test's xt_conf. The
 * schema, xmllint and namespace come from xt_init rather than from -D
 * macros, so one source serves every document type; a test's own meson
 * c_args still carry the paths to its main.
 *
 * Single-threaded: the allocator's counters are plain statics, as libxml2
 * is only ever called from the test's one thread.
 */
#include "tests/unit/xmltest.h"

#include <errno.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

static const struct xt_conf *conf; /* borrowed, from xt_init */

/*
 * libxml2's allocator, counted, with one allocation made to fail on
 * demand (xmlMemSetup in xt_init, before any other libxml2 call).
 */
static long live;    /* allocations not yet freed */
static long fail_in; /* 0: off; n: the n-th allocation from now fails */
static bool failed;  /* fail_in reached 0 */

static bool
fail_now(void)
{
	if (fail_in > 0 && --fail_in == 0) {
		failed = true;
		return true;
	}
	return false;
}

static void *
t_malloc(size_t n)
{
	void *p = fail_now() ? NULL : malloc(n);

	if (p != NULL)
		live++;
	return p;
}

static void *
t_realloc(void *p, size_t n)
{
	void *q = fail_now() ? NULL : realloc(p, n);

	if (q != NULL && p == NULL)
		live++;
	return q;
}

static void
t_free(void *p)
{
	if (p != NULL)
		live--;
	free(p);
}

static char *
t_strdup(const char *s)
{
	char *p = fail_now() ? NULL : strdup(s);

	if (p != NULL)
		live++;
	return p;
}

static void
quiet_generic(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static void
quiet_structured(void *ctx, xmlErrorPtr err)
{
	(void)ctx;
	(void)err;
}

int
xt_init(const struct xt_conf *c)
{
	conf = c;
	/* Before any other libxml2 call, so every block is counted. */
	if (xmlMemSetup(t_free, t_malloc, t_realloc, t_strdup) != 0)
		return EINVAL;
	return 0;
}

/*
 * Reading the documents back.
 */
char *
xt_rendered(int rc, char *xml, size_t len, size_t *lenp)
{
	assert_int_equal(rc, 0);
	assert_non_null(xml);
	assert_true(len > 0);
	assert_int_equal(strlen(xml), len);
	if (lenp != NULL)
		*lenp = len;
	return xml;
}

xmlDocPtr
xt_parse(const char *xml, size_t len)
{
	char url[64];
	xmlDocPtr doc;

	snprintf(url, sizeof(url), "%s.xml", conf->name);
	doc = xmlReadMemory(xml, (int)len, url, NULL, XML_PARSE_NONET);
	if (doc == NULL)
		print_error("does not parse:\n%s\n", xml);
	assert_non_null(doc);
	return doc;
}

/* An XPath context on doc with the conf's prefix bound to its namespace. */
static xmlXPathContextPtr
xpath_ctx(xmlDocPtr doc)
{
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);

	assert_non_null(ctx);
	assert_int_equal(xmlXPathRegisterNs(ctx, BAD_CAST conf->prefix,
					    BAD_CAST conf->ns),
			 0);
	return ctx;
}

char *
xt_xpath_str(xmlDocPtr doc, const char *expr)
{
	xmlXPathContextPtr ctx = xpath_ctx(doc);
	xmlXPathObjectPtr res;
	char *s;
	char wrapped[512];

	snprintf(wrapped, sizeof(wrapped), "string(%s)", expr);
	res = xmlXPathEval(BAD_CAST wrapped, ctx);
	assert_non_null(res);
	assert_int_equal(res->type, XPATH_STRING);
	s = strdup((const char *)res->stringval);
	assert_non_null(s);
	xmlXPathFreeObject(res);
	xmlXPathFreeContext(ctx);
	return s;
}

void
assert_children(xmlDocPtr doc, const char *expr, const char *want)
{
	xmlXPathContextPtr ctx = xpath_ctx(doc);
	xmlXPathObjectPtr res;
	char got[256] = "";

	res = xmlXPathEval(BAD_CAST expr, ctx);
	assert_non_null(res);
	assert_int_equal(res->type, XPATH_NODESET);
	assert_non_null(res->nodesetval);
	assert_int_equal(res->nodesetval->nodeNr, 1);
	for (xmlNodePtr n = res->nodesetval->nodeTab[0]->children; n != NULL;
	     n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		/* every element is in the document's namespace */
		assert_non_null(n->ns);
		assert_string_equal((const char *)n->ns->href, conf->ns);
		if (got[0] != '\0')
			strncat(got, " ", sizeof(got) - strlen(got) - 1);
		strncat(got, (const char *)n->name,
			sizeof(got) - strlen(got) - 1);
	}
	xmlXPathFreeObject(res);
	xmlXPathFreeContext(ctx);
	if (strcmp(got, want) != 0)
		print_error("children of %s: got '%s'\n", expr, got);
	assert_string_equal(got, want);
}

/*
 * The schema check.
 */
bool
xt_have_xmllint(void)
{
	return conf->xmllint[0] != '\0';
}

int
xt_xmllint_schema(const char *xml, size_t len, char *msg, size_t msg_size)
{
	const char *tmp = getenv("TMPDIR");
	char path[512];
	char cmd[2048];
	FILE *p;
	size_t got;
	int fd, status;

	snprintf(path, sizeof(path), "%s/test_%s_XXXXXX.xml",
		 tmp != NULL ? tmp : "/tmp", conf->name);
	fd = mkstemps(path, 4);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, xml, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	snprintf(cmd, sizeof(cmd), "'%s' --noout --schema '%s' '%s' 2>&1",
		 conf->xmllint, conf->xsd, path);
	p = popen(cmd, "r");
	assert_non_null(p);
	got = fread(msg, 1, msg_size - 1, p);
	msg[got] = '\0';
	status = pclose(p);
	unlink(path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void
assert_schema_valid(const char *xml, size_t len)
{
	char msg[4096];

	if (!xt_have_xmllint())
		skip();
	if (xt_xmllint_schema(xml, len, msg, sizeof(msg)) != 0) {
		print_error("%s\n--- document:\n%s\n", msg, xml);
		fail_msg("not valid against %s", conf->xsd);
	}
	assert_non_null(strstr(msg, "validates"));
}

/*
 * Out of memory.
 */
long
xt_enomem_everywhere(xt_render_h render, const void *arg, const char *ref,
		     size_t ref_len)
{
	size_t len;
	long base, k;

	xmlSetGenericErrorFunc(NULL, quiet_generic);
	xmlSetStructuredErrorFunc(NULL, quiet_structured);
	xmlResetLastError();
	base = live;
	for (k = 1; k < 100000; k++) {
		char *xml = NULL;
		int rc;

		failed = false;
		fail_in = k;
		rc = render(&xml, &len, arg);
		fail_in = 0;
		if (rc == 0) {
			/* survived, or nothing failed: the same bytes */
			assert_int_equal(len, ref_len);
			assert_memory_equal(xml, ref, len);
			free(xml);
		} else {
			if (rc != ENOMEM)
				print_error("allocation %ld: %d\n", k, rc);
			assert_int_equal(rc, ENOMEM);
			assert_null(xml);
		}
		xmlResetLastError();
		if (live != base)
			print_error("allocation %ld failed: %ld leaked\n", k,
				    live - base);
		assert_int_equal(live, base);
		if (!failed)
			break;
	}
	xmlSetGenericErrorFunc(NULL, NULL);
	xmlSetStructuredErrorFunc(NULL, NULL);
	assert_false(failed);
	return k;
}
