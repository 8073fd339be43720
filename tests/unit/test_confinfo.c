/*
 * test_confinfo.c - RFC 4575 conference-info documents (signaling/
 * confinfo.c).
 *
 * Checks what a subscriber to the conference event package reads: a full
 * document for a conference of three (one connected with its dialog in
 * call-info, one on hold, one being dialed out and ringing) is valid
 * against RFC 4575's schema (xmllint --schema) and, parsed back with
 * libxml2, says by XPath what it was given: entity, version, counts, each
 * endpoint's status, each media's status and SSRC, the dialog ids, the
 * joining time as an xs:dateTime in UTC. A partial document that deletes a
 * user who departed, and one with only conference-state, are valid too and
 * carry nothing else. Display names with markup characters, quotes, tabs
 * and non-ASCII text come back byte for byte, escaped in the raw text.
 * Versions go up to 4294967295 unchanged. Bad input gives EINVAL and
 * leaves the outputs alone; every allocation libxml2 makes is failed in
 * turn, and each gives ENOMEM (or the same document) with nothing leaked.
 * The schema check itself is shown to reject a document in the wrong
 * order, so a pass means something.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signaling/confinfo.h"
#include "tests/unit/xmltest.h"

#define CI_NS	  "urn:ietf:params:xml:ns:conference-info"
#define CONF_URI  "sip:conf42@focus.example.com"
#define T_JOIN	  1795255200ULL /* 2026-11-21T10:00:00Z */
#define T_LEAVE	  1795257737ULL /* 2026-11-21T10:42:17Z */
#define CALL_ID	  "a84b4c76e66710@pc33.example.com"
#define FROM_TAG  "1928301774"
#define TO_TAG	  "as7f9b2c1"
#define ROOT_PATH "/ci:conference-info"
#define USER_PATH ROOT_PATH "/ci:users/ci:user"

/* For xmltest.c; ci: is the RFC 4575 namespace in every XPath here. */
static const struct xt_conf xml_conf = {
	.name = "confinfo",
	.prefix = "ci",
	.ns = CI_NS,
	.xsd = CI_XSD,
	.xmllint = CI_XMLLINT,
};

/*
 * The conference of three.
 */
static const char *const conf_uris[] = {
	CONF_URI,
	"sips:conf42@focus.example.com",
};
static const char *const participant[] = {"participant"};
static const char *const chair[] = {"chair", "participant"};

static const struct ci_media alice_media[] = {{
	.id = "1",
	.type = "audio",
	.label = "11",
	.status = "sendrecv",
	.src_id = 3735928559u,
	.have_src_id = true,
}};
static const struct ci_endpoint alice_ep[] = {{
	.entity = "sip:alice@192.0.2.10:5060",
	.state = CI_FULL,
	.display = "Alice's desk phone",
	.status = "connected",
	.joining_method = "dialed-in",
	.joining_when = T_JOIN,
	.media = alice_media,
	.n_media = 1,
	.call_id = CALL_ID,
	.from_tag = FROM_TAG,
	.to_tag = TO_TAG,
}};

static const struct ci_media bob_media[] = {{
	.id = "1",
	.type = "audio",
	.label = "11",
	.status = "sendonly",
	.src_id = 42,
	.have_src_id = true,
}};
static const struct ci_endpoint bob_ep[] = {{
	.entity = "sip:bob@198.51.100.7",
	.state = CI_FULL,
	.status = "on-hold",
	.joining_method = "dialed-in",
	.joining_when = T_JOIN + 60,
	.media = bob_media,
	.n_media = 1,
}};

static const struct ci_endpoint carol_ep[] = {{
	.entity = "sip:carol@example.org",
	.state = CI_FULL,
	.status = "alerting",
	.joining_method = "dialed-out",
	.joining_by = CONF_URI,
}};

static const struct ci_user three_users[] = {
	{
		.entity = "sip:alice@example.com",
		.state = CI_FULL,
		.display = "Alice",
		.roles = chair,
		.n_roles = 2,
		.endpoints = alice_ep,
		.n_endpoints = 1,
	},
	{
		.entity = "sip:bob@example.com",
		.state = CI_FULL,
		.display = "Bob",
		.roles = participant,
		.n_roles = 1,
		.endpoints = bob_ep,
		.n_endpoints = 1,
	},
	{
		.entity = "sip:carol@example.org",
		.state = CI_FULL,
		.endpoints = carol_ep,
		.n_endpoints = 1,
	},
};

static struct ci_doc
full_doc(void)
{
	struct ci_doc d = {
		.entity = CONF_URI,
		.state = CI_FULL,
		.have_description = true,
		.display = "Weekly sync",
		.subject = "Q4 planning",
		.conf_uris = conf_uris,
		.n_conf_uris = 2,
		.max_users = 16,
		.media_types = {"audio"},
		.media_labels = {"11"},
		.n_media_types = 1,
		.have_state = true,
		.user_count = 3,
		.active = true,
		.locked = false,
		.have_users = true,
		.users_state = CI_FULL,
		.users = three_users,
		.n_users = 3,
	};
	return d;
}

/*
 * Rendering (reading back is xt_parse and assert_xpath, xmltest.h).
 */
static char *
render_ok(const struct ci_doc *d, unsigned version, size_t *lenp)
{
	char *xml = NULL;
	size_t len = 0;
	int rc = ci_render(&xml, &len, d, version);

	return xt_rendered(rc, xml, len, lenp);
}

/*
 * The tests.
 */
static void
test_schema_check_rejects_wrong_order(void **state)
{
	/* conference-state before conference-description */
	static const char bad[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<conference-info xmlns=\"" CI_NS "\" entity=\"" CONF_URI "\">"
		"<conference-state><user-count>1</user-count>"
		"</conference-state>"
		"<conference-description><subject>x</subject>"
		"</conference-description></conference-info>\n";
	char msg[4096];

	(void)state;
	if (!xt_have_xmllint())
		skip();
	assert_int_not_equal(
		xt_xmllint_schema(bad, strlen(bad), msg, sizeof(msg)), 0);
	assert_null(strstr(msg, "validates"));
}

static void
test_full_doc_values(void **state)
{
	struct ci_doc d = full_doc();
	size_t len;
	char *xml = render_ok(&d, 7, &len);
	xmlDocPtr doc = xt_parse(xml, len);

	(void)state;
	assert_non_null(strstr(xml, "encoding=\"UTF-8\""));
	assert_children(doc, ROOT_PATH,
			"conference-description conference-state users");
	assert_xpath(doc, "/ci:conference-info/@entity", CONF_URI);
	assert_xpath(doc, "/ci:conference-info/@state", "full");
	assert_xpath(doc, "/ci:conference-info/@version", "7");

	assert_xpath(doc, "//ci:conference-description/ci:display-text",
		     "Weekly sync");
	assert_xpath(doc, "//ci:conference-description/ci:subject",
		     "Q4 planning");
	assert_count(doc, "//ci:conf-uris/ci:entry/ci:uri", "2");
	assert_xpath(doc, "//ci:conf-uris/ci:entry[2]/ci:uri",
		     "sips:conf42@focus.example.com");
	assert_xpath(doc, "//ci:maximum-user-count", "16");
	assert_xpath(doc, "//ci:available-media/ci:entry/@label", "11");
	assert_xpath(doc, "//ci:available-media/ci:entry/ci:type", "audio");

	assert_xpath(doc, "//ci:conference-state/ci:user-count", "3");
	assert_xpath(doc, "//ci:conference-state/ci:active", "true");
	assert_xpath(doc, "//ci:conference-state/ci:locked", "false");

	assert_xpath(doc, "/ci:conference-info/ci:users/@state", "full");
	assert_count(doc, USER_PATH, "3");
	assert_xpath(doc, USER_PATH "[1]/@entity", "sip:alice@example.com");
	assert_xpath(doc, USER_PATH "[2]/@entity", "sip:bob@example.com");
	assert_xpath(doc, USER_PATH "[3]/@entity", "sip:carol@example.org");

	/* alice: connected, sendrecv, her dialog, joined at T_JOIN */
#define ALICE USER_PATH "[@entity='sip:alice@example.com']"
	assert_xpath(doc, ALICE "/ci:display-text", "Alice");
	assert_xpath(doc, ALICE "/ci:roles/ci:entry[1]", "chair");
	assert_xpath(doc, ALICE "/ci:roles/ci:entry[2]", "participant");
	assert_xpath(doc, ALICE "/ci:endpoint/@entity",
		     "sip:alice@192.0.2.10:5060");
	assert_xpath(doc, ALICE "/ci:endpoint/ci:display-text",
		     "Alice's desk phone");
	assert_xpath(doc, ALICE "/ci:endpoint/ci:status", "connected");
	assert_xpath(doc, ALICE "/ci:endpoint/ci:joining-method", "dialed-in");
	assert_xpath(doc, ALICE "/ci:endpoint/ci:joining-info/ci:when",
		     "2026-11-21T10:00:00Z");
	assert_xpath(doc, ALICE "/ci:endpoint/ci:media/@id", "1");
	assert_xpath(doc, ALICE "/ci:endpoint/ci:media/ci:type", "audio");
	assert_xpath(doc, ALICE "/ci:endpoint/ci:media/ci:label", "11");
	assert_xpath(doc, ALICE "/ci:endpoint/ci:media/ci:src-id",
		     "3735928559");
	assert_xpath(doc, ALICE "/ci:endpoint/ci:media/ci:status", "sendrecv");
	assert_xpath(doc, ALICE "/ci:endpoint/ci:call-info/ci:sip/ci:call-id",
		     CALL_ID);
	assert_xpath(doc, ALICE "/ci:endpoint/ci:call-info/ci:sip/ci:from-tag",
		     FROM_TAG);
	assert_xpath(doc, ALICE "/ci:endpoint/ci:call-info/ci:sip/ci:to-tag",
		     TO_TAG);

	/* bob: on hold, sendonly, no call-info */
#define BOB USER_PATH "[@entity='sip:bob@example.com']"
	assert_xpath(doc, BOB "/ci:endpoint/ci:status", "on-hold");
	assert_xpath(doc, BOB "/ci:endpoint/ci:media/ci:status", "sendonly");
	assert_xpath(doc, BOB "/ci:endpoint/ci:media/ci:src-id", "42");
	assert_xpath(doc, BOB "/ci:endpoint/ci:joining-info/ci:when",
		     "2026-11-21T10:01:00Z");
	assert_count(doc, BOB "/ci:endpoint/ci:call-info", "0");

	/* carol: being dialed out by the focus, ringing, no media yet */
#define CAROL USER_PATH "[@entity='sip:carol@example.org']"
	assert_xpath(doc, CAROL "/ci:endpoint/ci:status", "alerting");
	assert_xpath(doc, CAROL "/ci:endpoint/ci:joining-method", "dialed-out");
	assert_xpath(doc, CAROL "/ci:endpoint/ci:joining-info/ci:by", CONF_URI);
	assert_count(doc, CAROL "/ci:endpoint/ci:joining-info/ci:when", "0");
	assert_count(doc, CAROL "/ci:endpoint/ci:media", "0");
	assert_count(doc, CAROL "/ci:display-text", "0");
	assert_count(doc, CAROL "/ci:roles", "0");

	xmlFreeDoc(doc);
	free(xml);
}

static void
test_full_doc_schema_valid(void **state)
{
	struct ci_doc d = full_doc();
	size_t len;
	char *xml = render_ok(&d, 7, &len);

	(void)state;
	assert_schema_valid(xml, len);
	free(xml);
}

static void
test_partial_deleted_user(void **state)
{
	static const struct ci_endpoint ep[] = {{
		.entity = "sip:bob@198.51.100.7",
		.state = CI_DELETED,
		.status = "disconnected",
		.disconnection_method = "departed",
		.disconnection_when = T_LEAVE,
		.disconnection_reason = "BYE",
	}};
	static const struct ci_user u[] = {{
		.entity = "sip:bob@example.com",
		.state = CI_DELETED,
		.endpoints = ep,
		.n_endpoints = 1,
	}};
	struct ci_doc d = {
		.entity = CONF_URI,
		.state = CI_PARTIAL,
		.have_users = true,
		.users_state = CI_PARTIAL,
		.users = u,
		.n_users = 1,
	};
	size_t len;
	char *xml = render_ok(&d, 8, &len);
	xmlDocPtr doc = xt_parse(xml, len);

	(void)state;
	assert_children(doc, ROOT_PATH, "users");
	assert_xpath(doc, "/ci:conference-info/@state", "partial");
	assert_xpath(doc, "/ci:conference-info/@version", "8");
	assert_xpath(doc, "/ci:conference-info/ci:users/@state", "partial");
	assert_count(doc, USER_PATH, "1");
	assert_xpath(doc, USER_PATH "/@entity", "sip:bob@example.com");
	assert_xpath(doc, USER_PATH "/@state", "deleted");
	assert_xpath(doc, USER_PATH "/ci:endpoint/@state", "deleted");
	assert_xpath(doc, USER_PATH "/ci:endpoint/ci:status", "disconnected");
	assert_xpath(doc, USER_PATH "/ci:endpoint/ci:disconnection-method",
		     "departed");
	assert_xpath(doc,
		     USER_PATH "/ci:endpoint/ci:disconnection-info/ci:when",
		     "2026-11-21T10:42:17Z");
	assert_xpath(doc,
		     USER_PATH "/ci:endpoint/ci:disconnection-info/ci:reason",
		     "BYE");
	assert_count(doc, USER_PATH "/ci:endpoint/ci:joining-info", "0");
	xmlFreeDoc(doc);
	assert_schema_valid(xml, len);
	free(xml);
}

static void
test_partial_state_only(void **state)
{
	struct ci_doc d = {
		.entity = CONF_URI,
		.state = CI_PARTIAL,
		.have_state = true,
		.user_count = 2,
		.active = true,
		.locked = true,
	};
	size_t len;
	char *xml = render_ok(&d, 9, &len);
	xmlDocPtr doc = xt_parse(xml, len);

	(void)state;
	assert_children(doc, ROOT_PATH, "conference-state");
	assert_xpath(doc, "/ci:conference-info/@state", "partial");
	assert_xpath(doc, "//ci:conference-state/ci:user-count", "2");
	assert_xpath(doc, "//ci:conference-state/ci:active", "true");
	assert_xpath(doc, "//ci:conference-state/ci:locked", "true");
	xmlFreeDoc(doc);
	assert_schema_valid(xml, len);
	free(xml);
}

static void
test_media_label_defaults_to_index(void **state)
{
	struct ci_doc d = {
		.entity = CONF_URI,
		.state = CI_PARTIAL,
		.have_description = true,
		.media_types = {"audio", "video"},
		.media_labels = {"11", NULL},
		.n_media_types = 2,
	};
	size_t len;
	char *xml = render_ok(&d, 1, &len);
	xmlDocPtr doc = xt_parse(xml, len);

	(void)state;
	assert_children(doc, ROOT_PATH, "conference-description");
	assert_xpath(doc, "//ci:available-media/ci:entry[1]/@label", "11");
	assert_xpath(doc, "//ci:available-media/ci:entry[2]/@label", "2");
	assert_xpath(doc, "//ci:available-media/ci:entry[2]/ci:type", "video");
	assert_count(doc, "//ci:conference-description/*", "1");
	xmlFreeDoc(doc);
	assert_schema_valid(xml, len);
	free(xml);
}

static void
test_text_escaping_round_trips(void **state)
{
	static const char conf_name[] = "R&D <weekly> \"sync\" ]]> 'x'";
	static const char subject[] = "line one\nline two\tand a tab";
	static const char user_name[] = "Zoë <b>Ünal</b> & \"Z\" 日本 🎧";
	static const char role[] = "a&b<c>";
	/* endpoint@entity is xs:string: quotes, markup, tab, newline */
	static const char ep_entity[] = "sip:zoe@example.com;x=\"1\"&y=<2>\t\n";
	static const char reason[] = "Q.850;cause=16;text=\"Normal <ok>\"";
	static const char *const roles[] = {role};
	static const struct ci_endpoint ep[] = {{
		.entity = ep_entity,
		.state = CI_FULL,
		.display = user_name,
		.status = "disconnected",
		.disconnection_reason = reason,
	}};
	static const struct ci_user u[] = {{
		.entity = "sip:zoe@example.com",
		.state = CI_FULL,
		.display = user_name,
		.roles = roles,
		.n_roles = 1,
		.endpoints = ep,
		.n_endpoints = 1,
	}};
	struct ci_doc d = {
		.entity = CONF_URI,
		.state = CI_FULL,
		.have_description = true,
		.display = conf_name,
		.subject = subject,
		.have_users = true,
		.users = u,
		.n_users = 1,
	};
	size_t len;
	char *xml = render_ok(&d, 3, &len);
	xmlDocPtr doc = xt_parse(xml, len);

	(void)state;
	/* escaped in the raw text; UTF-8 written as is */
	assert_null(strstr(xml, "<b>"));
	assert_non_null(strstr(xml, "&lt;b&gt;"));
	assert_non_null(strstr(xml, "R&amp;D"));
	assert_non_null(strstr(xml, "Zoë"));
	assert_non_null(strstr(xml, "🎧"));
	/* and the same strings when read back */
	assert_xpath(doc, "//ci:conference-description/ci:display-text",
		     conf_name);
	assert_xpath(doc, "//ci:conference-description/ci:subject", subject);
	assert_xpath(doc, USER_PATH "/ci:display-text", user_name);
	assert_xpath(doc, USER_PATH "/ci:roles/ci:entry", role);
	assert_xpath(doc, USER_PATH "/ci:endpoint/@entity", ep_entity);
	assert_xpath(doc, USER_PATH "/ci:endpoint/ci:display-text", user_name);
	assert_xpath(doc,
		     USER_PATH "/ci:endpoint/ci:disconnection-info/ci:reason",
		     reason);
	xmlFreeDoc(doc);
	assert_schema_valid(xml, len);
	free(xml);
}

static void
test_version_as_given(void **state)
{
	struct ci_doc d = {
		.entity = CONF_URI,
		.state = CI_PARTIAL,
		.have_state = true,
	};
	static const unsigned versions[] = {4294967295u, 0, 1, 2147483648u};
	static const char *const want[] = {"4294967295", "0", "1",
					   "2147483648"};

	(void)state;
	for (unsigned i = 0; i < 4; i++) {
		size_t len;
		char *xml = render_ok(&d, versions[i], &len);
		xmlDocPtr doc = xt_parse(xml, len);
		char attr[32];

		assert_xpath(doc, "/ci:conference-info/@version", want[i]);
		snprintf(attr, sizeof(attr), "version=\"%s\"", want[i]);
		assert_non_null(strstr(xml, attr));
		xmlFreeDoc(doc);
		if (i == 0)
			assert_schema_valid(xml, len); /* xs:unsignedInt */
		free(xml);
	}
}

/* ci_render(d) must say EINVAL and leave the outputs alone. */
static void
expect_einval(const struct ci_doc *d, const char *what)
{
	char sentinel;
	char *xml = &sentinel;
	size_t len = 12345;
	int rc = ci_render(&xml, &len, d, 1);

	if (rc != EINVAL)
		print_error("%s: got %d\n", what, rc);
	assert_int_equal(rc, EINVAL);
	assert_ptr_equal(xml, &sentinel);
	assert_int_equal(len, 12345);
}

static void
test_einval(void **state)
{
	struct ci_doc d;
	struct ci_user u[3];
	struct ci_endpoint ep;
	struct ci_media m;
	static const char *const null_role[] = {NULL};
	char *xml = NULL;
	size_t len = 0;

	(void)state;
	d = full_doc();
	assert_int_equal(ci_render(NULL, &len, &d, 1), EINVAL);
	assert_int_equal(ci_render(&xml, NULL, &d, 1), EINVAL);
	assert_int_equal(ci_render(&xml, &len, NULL, 1), EINVAL);
	assert_null(xml);

	/* The base case renders, so each EINVAL below is the one change. */
	xml = render_ok(&d, 1, NULL);
	free(xml);

#define BAD(what, change)                          \
	do {                                       \
		d = full_doc();                    \
		memcpy(u, three_users, sizeof(u)); \
		ep = alice_ep[0];                  \
		m = alice_media[0];                \
		u[0].endpoints = &ep;              \
		ep.media = &m;                     \
		d.users = u;                       \
		change;                            \
		expect_einval(&d, what);           \
	} while (0)

	BAD("no entity", d.entity = NULL);
	BAD("empty entity", d.entity = "");
	BAD("doc deleted", d.state = CI_DELETED);
	BAD("doc state out of range", d.state = (enum ci_state)7);
	BAD("user without entity", u[1].entity = NULL);
	BAD("user with empty entity", u[2].entity = "");
	BAD("users partial in a full doc", d.users_state = CI_PARTIAL);
	BAD("user deleted in a full doc", u[1].state = CI_DELETED);
	BAD("endpoint partial in a full doc", ep.state = CI_PARTIAL);
	BAD("users without array", d.users = NULL);
	BAD("roles without array", u[0].roles = NULL);
	BAD("NULL role", u[0].roles = null_role; u[0].n_roles = 1);
	BAD("endpoints without array", u[0].endpoints = NULL);
	BAD("conf-uris without array", d.conf_uris = NULL);
	BAD("five media types", d.n_media_types = 5);
	BAD("NULL media type", d.n_media_types = 2);
	BAD("bad endpoint status", ep.status = "talking");
	BAD("bad joining method", ep.joining_method = "walked-in");
	BAD("bad disconnection method", ep.disconnection_method = "left");
	BAD("bad media status", m.status = "sendrecv ");
	BAD("media without id", m.id = NULL);
	BAD("media without array", ep.media = NULL);
	BAD("call-info without to-tag", ep.to_tag = NULL);
	BAD("call-info with only call-id", ep.from_tag = NULL;
	    ep.to_tag = NULL);
	BAD("joining after 9999", ep.joining_when = 253402300800ULL);
	BAD("disconnection after 9999", ep.disconnection_when = UINT64_MAX);
	BAD("invalid UTF-8", u[0].display = "Zo\xeb");
	BAD("truncated UTF-8", u[0].display = "Zo\xc3");
	BAD("overlong '<'", d.subject = "\xc0\xbc");
	BAD("surrogate", ep.display = "\xed\xa0\x80");
	BAD("U+FFFF", m.label = "\xef\xbf\xbf");
	BAD("control character", d.display = "bell\a");
	BAD("control character in a tag", ep.from_tag = "a\x01");
	BAD("ESC in an entity", d.entity = "sip:\x1b@x");

	/* Time 9999-12-31T23:59:59Z is still fine. */
	d = full_doc();
	memcpy(u, three_users, sizeof(u));
	ep = alice_ep[0];
	ep.joining_when = 253402300799ULL;
	u[0].endpoints = &ep;
	d.users = u;
	xml = render_ok(&d, 1, &len);
	assert_non_null(strstr(xml, "<when>9999-12-31T23:59:59Z</when>"));
	free(xml);
}

static int
render_7(char **xmlp, size_t *lenp, const void *d)
{
	return ci_render(xmlp, lenp, d, 7);
}

static void
test_enomem_everywhere(void **state)
{
	struct ci_doc d = full_doc();
	size_t ref_len;
	char *ref = render_ok(&d, 7, &ref_len);
	long k;

	(void)state;
	k = xt_enomem_everywhere(render_7, &d, ref, ref_len);
	/* every allocation of a 3-user document was tried */
	assert_true(k > 50);
	free(ref);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema_check_rejects_wrong_order),
		cmocka_unit_test(test_full_doc_values),
		cmocka_unit_test(test_full_doc_schema_valid),
		cmocka_unit_test(test_partial_deleted_user),
		cmocka_unit_test(test_partial_state_only),
		cmocka_unit_test(test_media_label_defaults_to_index),
		cmocka_unit_test(test_text_escaping_round_trips),
		cmocka_unit_test(test_version_as_given),
		cmocka_unit_test(test_einval),
		cmocka_unit_test(test_enomem_everywhere),
	};

	/* Before any other libxml2 call, so every block is counted. */
	if (xt_init(&xml_conf) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
