/*
 * test_dialoginfo.c - RFC 4235 dialog-info documents (signaling/
 * dialoginfo.c).
 *
 * Checks what a subscriber to the dialog event package reads: a full
 * document with two dialogs (one the focus received and confirmed, with
 * its duration, the focus's identity and Contact with isfocus and
 * +sip.rendering, the caller's display name and Contact; one the focus
 * is dialing out, early, no local tag yet) is valid against RFC 4235's
 * schema (xmllint --schema) and, parsed back with libxml2, says by XPath
 * what it was given and nothing more. A partial document with a dialog
 * terminated by a 486 rejection, and a full document with no dialogs, are
 * valid too. Every state and every terminated event of RFC 4235 renders
 * and validates; codes 100 and 699 are taken. A display name with markup
 * characters and quotes comes back byte for byte. Bad input gives EINVAL
 * and leaves the outputs alone; every allocation libxml2 makes is failed
 * in turn, and each gives ENOMEM (or the same document) with nothing
 * leaked. The schema check itself is shown to reject a dialog whose
 * children are in the wrong order, so a pass means something.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signaling/dialoginfo.h"
#include "tests/unit/xmltest.h"

#define DI_NS	     "urn:ietf:params:xml:ns:dialog-info"
#define CONF_URI     "sip:conf42@focus.example.com"
#define FOCUS_TARGET "sip:conf42@192.0.2.1:5060;transport=udp"
#define CALL_ID_IN   "a84b4c76e66710@pc33.example.com"
#define CALL_ID_OUT  "f81d4fae-7dec-11d0-a765-00a0c91e6bf6@192.0.2.1"
#define DIALOG_PATH  "/di:dialog-info/di:dialog"
#define IN	     DIALOG_PATH "[@id='in1']"
#define OUT	     DIALOG_PATH "[@id='out1']"

/* For xmltest.c; di: is the RFC 4235 namespace in every XPath here. */
static const struct xt_conf xml_conf = {
	.name = "dialoginfo",
	.prefix = "di",
	.ns = DI_NS,
	.xsd = DI_XSD,
	.xmllint = DI_XMLLINT,
};

/*
 * The two dialogs: alice called in and is connected; the focus is
 * dialing bob out and his phone is ringing (early, no local tag yet).
 */
static const struct di_dialog two_dialogs[2] = {
	{
		.id = "in1",
		.call_id = CALL_ID_IN,
		.local_tag = "as7f9b2c1",
		.remote_tag = "1928301774",
		.direction = "recipient",
		.state = "confirmed",
		.have_duration = true,
		.duration = 274,
		.have_local = true,
		.local =
			{
				.identity = CONF_URI,
				.target = FOCUS_TARGET,
				.params = {{"isfocus", "true"},
					   {"+sip.rendering", "no"}},
				.n_params = 2,
			},
		.have_remote = true,
		.remote =
			{
				.identity = "sip:alice@example.com",
				.display = "Alice Liddell",
				.target = "sip:alice@192.0.2.10:5060",
			},
	},
	{
		.id = "out1",
		.call_id = CALL_ID_OUT,
		.remote_tag = "314159",
		.direction = "initiator",
		.state = "early",
		.have_remote = true,
		.remote =
			{
				.identity = "sip:bob@example.org",
			},
	},
};

/*
 * Rendering (reading back is xt_parse and assert_xpath, xmltest.h).
 */
static char *
render_ok(const char *entity, bool full, const struct di_dialog *dialogs,
	  unsigned n, unsigned version, size_t *lenp)
{
	char *xml = NULL;
	size_t len = 0;
	int rc = di_render(&xml, &len, entity, full, dialogs, n, version);

	return xt_rendered(rc, xml, len, lenp);
}

/*
 * The tests.
 */
static void
test_schema_check_rejects_wrong_order(void **state)
{
	/* the same document twice: state, duration, remote in order, then
	 * duration before state and remote before local */
	static const char good[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<dialog-info xmlns=\"" DI_NS "\" version=\"1\" state=\"full\""
		" entity=\"" CONF_URI "\">"
		"<dialog id=\"x\"><state>confirmed</state>"
		"<duration>1</duration><local/><remote/></dialog>"
		"</dialog-info>\n";
	static const char bad_state[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<dialog-info xmlns=\"" DI_NS "\" version=\"1\" state=\"full\""
		" entity=\"" CONF_URI "\">"
		"<dialog id=\"x\"><duration>1</duration>"
		"<state>confirmed</state></dialog>"
		"</dialog-info>\n";
	static const char bad_party[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<dialog-info xmlns=\"" DI_NS "\" version=\"1\" state=\"full\""
		" entity=\"" CONF_URI "\">"
		"<dialog id=\"x\"><state>confirmed</state>"
		"<remote/><local/></dialog>"
		"</dialog-info>\n";
	char msg[4096];

	(void)state;
	if (!xt_have_xmllint())
		skip();
	assert_int_equal(
		xt_xmllint_schema(good, strlen(good), msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "validates"));
	assert_int_not_equal(xt_xmllint_schema(bad_state, strlen(bad_state),
					       msg, sizeof(msg)),
			     0);
	assert_null(strstr(msg, "validates"));
	assert_int_not_equal(xt_xmllint_schema(bad_party, strlen(bad_party),
					       msg, sizeof(msg)),
			     0);
	assert_null(strstr(msg, "validates"));
}

static void
test_full_doc_values(void **state)
{
	size_t len;
	char *xml = render_ok(CONF_URI, true, two_dialogs, 2, 7, &len);
	xmlDocPtr doc = xt_parse(xml, len);

	(void)state;
	assert_non_null(strstr(xml, "encoding=\"UTF-8\""));
	assert_string_equal((const char *)xmlDocGetRootElement(doc)->name,
			    "dialog-info");
	assert_xpath(doc, "/di:dialog-info/@entity", CONF_URI);
	assert_xpath(doc, "/di:dialog-info/@state", "full");
	assert_xpath(doc, "/di:dialog-info/@version", "7");
	assert_children(doc, "/di:dialog-info", "dialog dialog");
	assert_xpath(doc, DIALOG_PATH "[1]/@id", "in1");
	assert_xpath(doc, DIALOG_PATH "[2]/@id", "out1");

	/* alice's dialog: received by the focus, confirmed */
	assert_xpath(doc, IN "/@call-id", CALL_ID_IN);
	assert_xpath(doc, IN "/@local-tag", "as7f9b2c1");
	assert_xpath(doc, IN "/@remote-tag", "1928301774");
	assert_xpath(doc, IN "/@direction", "recipient");
	assert_children(doc, IN, "state duration local remote");
	assert_xpath(doc, IN "/di:state", "confirmed");
	assert_count(doc, IN "/di:state/@*", "0");
	assert_xpath(doc, IN "/di:duration", "274");
	assert_children(doc, IN "/di:local", "identity target");
	assert_xpath(doc, IN "/di:local/di:identity", CONF_URI);
	assert_count(doc, IN "/di:local/di:identity/@display", "0");
	assert_xpath(doc, IN "/di:local/di:target/@uri", FOCUS_TARGET);
	assert_count(doc, IN "/di:local/di:target/di:param", "2");
	assert_xpath(doc, IN "/di:local/di:target/di:param[1]/@pname",
		     "isfocus");
	assert_xpath(doc, IN "/di:local/di:target/di:param[1]/@pval", "true");
	assert_xpath(doc, IN "/di:local/di:target/di:param[2]/@pname",
		     "+sip.rendering");
	assert_xpath(doc, IN "/di:local/di:target/di:param[2]/@pval", "no");
	assert_children(doc, IN "/di:remote", "identity target");
	assert_xpath(doc, IN "/di:remote/di:identity", "sip:alice@example.com");
	assert_xpath(doc, IN "/di:remote/di:identity/@display",
		     "Alice Liddell");
	assert_xpath(doc, IN "/di:remote/di:target/@uri",
		     "sip:alice@192.0.2.10:5060");
	assert_count(doc, IN "/di:remote/di:target/*", "0");

	/* bob's dialog: dialed out by the focus, ringing */
	assert_xpath(doc, OUT "/@call-id", CALL_ID_OUT);
	assert_count(doc, OUT "/@local-tag", "0");
	assert_xpath(doc, OUT "/@remote-tag", "314159");
	assert_xpath(doc, OUT "/@direction", "initiator");
	assert_count(doc, OUT "/@*", "4"); /* id, call-id, remote-tag, dir. */
	assert_children(doc, OUT, "state remote");
	assert_xpath(doc, OUT "/di:state", "early");
	assert_children(doc, OUT "/di:remote", "identity");
	assert_xpath(doc, OUT "/di:remote/di:identity", "sip:bob@example.org");
	assert_count(doc, OUT "/di:remote/di:identity/@display", "0");

	xmlFreeDoc(doc);
	assert_schema_valid(xml, len);
	free(xml);
}

static void
test_partial_terminated_rejected(void **state)
{
	static const struct di_dialog d[] = {{
		.id = "out1",
		.call_id = CALL_ID_OUT,
		.remote_tag = "314159",
		.direction = "initiator",
		.state = "terminated",
		.event = "rejected",
		.code = 486,
	}};
	size_t len;
	char *xml = render_ok(CONF_URI, false, d, 1, 8, &len);
	xmlDocPtr doc = xt_parse(xml, len);

	(void)state;
	assert_xpath(doc, "/di:dialog-info/@state", "partial");
	assert_xpath(doc, "/di:dialog-info/@version", "8");
	assert_xpath(doc, "/di:dialog-info/@entity", CONF_URI);
	assert_children(doc, "/di:dialog-info", "dialog");
	assert_xpath(doc, DIALOG_PATH "/@id", "out1");
	assert_children(doc, DIALOG_PATH, "state");
	assert_xpath(doc, DIALOG_PATH "/di:state", "terminated");
	assert_xpath(doc, DIALOG_PATH "/di:state/@event", "rejected");
	assert_xpath(doc, DIALOG_PATH "/di:state/@code", "486");
	xmlFreeDoc(doc);
	assert_schema_valid(xml, len);
	free(xml);
}

static void
test_empty_full_doc(void **state)
{
	size_t len;
	char *xml = render_ok(CONF_URI, true, NULL, 0, 0, &len);
	xmlDocPtr doc = xt_parse(xml, len);

	(void)state;
	assert_xpath(doc, "/di:dialog-info/@state", "full");
	assert_xpath(doc, "/di:dialog-info/@version", "0");
	assert_xpath(doc, "/di:dialog-info/@entity", CONF_URI);
	assert_children(doc, "/di:dialog-info", "");
	xmlFreeDoc(doc);
	assert_schema_valid(xml, len);
	free(xml);
}

/* Each state and each event of RFC 4235 (3.7.1, 4.1.4), and the ends of
 * the code range, in one document. */
static void
test_every_state_and_event(void **state)
{
	static const char *const states[] = {
		"trying", "proceeding", "early", "confirmed", "terminated",
	};
	static const char *const events[] = {
		"cancelled",  "rejected", "replaced", "local-bye",
		"remote-bye", "error",	  "timeout",
	};
	static const char *const ids[] = {
		"s0", "s1", "s2", "s3", "s4", "e0",
		"e1", "e2", "e3", "e4", "e5", "e6",
	};
	struct di_dialog d[12];
	size_t len;
	char *xml;
	xmlDocPtr doc;

	(void)state;
	memset(d, 0, sizeof(d));
	for (unsigned i = 0; i < 12; i++) {
		d[i].id = ids[i];
		if (i < 5) {
			d[i].state = states[i];
		} else {
			d[i].state = "terminated";
			d[i].event = events[i - 5];
		}
	}
	d[0].code = 100;
	d[11].code = 699;
	xml = render_ok(CONF_URI, true, d, 12, 3, &len);
	doc = xt_parse(xml, len);
	assert_count(doc, DIALOG_PATH, "12");
	for (unsigned i = 0; i < 12; i++) {
		char expr[128];

		snprintf(expr, sizeof(expr), DIALOG_PATH "[%u]/@id", i + 1);
		assert_xpath(doc, expr, ids[i]);
		snprintf(expr, sizeof(expr), DIALOG_PATH "[%u]/di:state",
			 i + 1);
		assert_xpath(doc, expr, d[i].state);
		snprintf(expr, sizeof(expr), DIALOG_PATH "[%u]/di:state/@event",
			 i + 1);
		assert_xpath(doc, expr, i < 5 ? "" : events[i - 5]);
	}
	assert_xpath(doc, DIALOG_PATH "[1]/di:state/@code", "100");
	assert_xpath(doc, DIALOG_PATH "[12]/di:state/@code", "699");
	assert_count(doc, "//di:state/@code", "2");
	xmlFreeDoc(doc);
	assert_schema_valid(xml, len);
	free(xml);
}

/* Four params, the most a party has, all written in order; params
 * without a target are not written (there is no target to hang them on);
 * a party with nothing known is an empty element. */
static void
test_params_and_empty_party(void **state)
{
	struct di_dialog d[1];
	size_t len;
	char *xml;
	xmlDocPtr doc;

	(void)state;
	memset(d, 0, sizeof(d));
	d[0].id = "p";
	d[0].state = "trying";
	d[0].have_local = true;
	d[0].local.target = FOCUS_TARGET;
	d[0].local.params[0][0] = "isfocus";
	d[0].local.params[0][1] = "";
	d[0].local.params[1][0] = "+sip.rendering";
	d[0].local.params[1][1] = "no";
	d[0].local.params[2][0] = "transport";
	d[0].local.params[2][1] = "udp";
	d[0].local.params[3][0] = "x";
	d[0].local.params[3][1] = "\"q&<>\"";
	d[0].local.n_params = 4;
	d[0].have_remote = true;
	d[0].remote.params[0][0] = "isfocus";
	d[0].remote.params[0][1] = "true";
	d[0].remote.n_params = 1;
	d[0].have_duration = true;
	d[0].duration = UINT64_MAX;
	xml = render_ok(CONF_URI, false, d, 1, 1, &len);
	doc = xt_parse(xml, len);
	assert_children(doc, DIALOG_PATH, "state duration local remote");
	assert_xpath(doc, DIALOG_PATH "/di:duration", "18446744073709551615");
	assert_children(doc, DIALOG_PATH "/di:local", "target");
	assert_children(doc, DIALOG_PATH "/di:local/di:target",
			"param param param param");
	assert_xpath(doc, DIALOG_PATH "/di:local/di:target/di:param[1]/@pval",
		     "");
	assert_count(doc, DIALOG_PATH "/di:local/di:target/di:param[1]/@pval",
		     "1");
	assert_xpath(doc, DIALOG_PATH "/di:local/di:target/di:param[3]/@pname",
		     "transport");
	assert_xpath(doc, DIALOG_PATH "/di:local/di:target/di:param[4]/@pval",
		     "\"q&<>\"");
	assert_children(doc, DIALOG_PATH "/di:remote", "");
	assert_count(doc, DIALOG_PATH "/di:remote/@*", "0");
	xmlFreeDoc(doc);
	assert_schema_valid(xml, len);
	free(xml);
}

static void
test_text_escaping_round_trips(void **state)
{
	static const char name[] = "R&D <ops> \"night\" 'shift' ]]> Zoë 🎧";
	static const char id[] = "id<&>\"'";
	struct di_dialog d[1];
	size_t len;
	char *xml;
	xmlDocPtr doc;

	(void)state;
	memcpy(d, &two_dialogs[0], sizeof(d));
	d[0].id = id;
	d[0].remote.display = name;
	d[0].local.params[1][1] = "a&b<c>\"d\"";
	xml = render_ok(CONF_URI, true, d, 1, 2, &len);
	doc = xt_parse(xml, len);
	/* escaped in the raw text; UTF-8 written as is */
	assert_null(strstr(xml, "<ops>"));
	assert_non_null(strstr(xml, "&lt;ops&gt;"));
	assert_non_null(strstr(xml, "R&amp;D"));
	assert_non_null(strstr(xml, "&quot;night&quot;"));
	assert_non_null(strstr(xml, "Zoë"));
	assert_non_null(strstr(xml, "🎧"));
	/* and the same strings when read back */
	assert_xpath(doc, DIALOG_PATH "/di:remote/di:identity/@display", name);
	assert_xpath(doc, DIALOG_PATH "/@id", id);
	assert_xpath(doc, DIALOG_PATH "/di:local/di:target/di:param[2]/@pval",
		     "a&b<c>\"d\"");
	xmlFreeDoc(doc);
	assert_schema_valid(xml, len);
	free(xml);
}

/* di_render must say EINVAL and leave the outputs alone. */
static void
expect_einval(const char *entity, const struct di_dialog *d, unsigned n,
	      const char *what)
{
	char sentinel;
	char *xml = &sentinel;
	size_t len = 12345;
	int rc = di_render(&xml, &len, entity, true, d, n, 1);

	if (rc != EINVAL)
		print_error("%s: got %d\n", what, rc);
	assert_int_equal(rc, EINVAL);
	assert_ptr_equal(xml, &sentinel);
	assert_int_equal(len, 12345);
	/* partial documents are checked the same */
	rc = di_render(&xml, &len, entity, false, d, n, 1);
	assert_int_equal(rc, EINVAL);
	assert_ptr_equal(xml, &sentinel);
	assert_int_equal(len, 12345);
}

static void
test_einval(void **state)
{
	struct di_dialog d[2];
	char sentinel;
	char *xml = &sentinel;
	size_t len = 12345;

	(void)state;
	assert_int_equal(
		di_render(NULL, &len, CONF_URI, true, two_dialogs, 2, 1),
		EINVAL);
	assert_int_equal(len, 12345);
	assert_int_equal(
		di_render(&xml, NULL, CONF_URI, true, two_dialogs, 2, 1),
		EINVAL);
	assert_ptr_equal(xml, &sentinel);
	expect_einval(NULL, two_dialogs, 2, "no entity");
	expect_einval("", two_dialogs, 2, "empty entity");
	expect_einval("sip:\x1b@x", two_dialogs, 2, "ESC in the entity");
	expect_einval("sip:zo\xeb@x", two_dialogs, 2, "entity not UTF-8");
	expect_einval(CONF_URI, NULL, 1, "n > 0 without dialogs");

	/* The base case renders, so each EINVAL below is the one change. */
	xml = render_ok(CONF_URI, true, two_dialogs, 2, 1, NULL);
	free(xml);

#define BAD(what, change)                            \
	do {                                         \
		memcpy(d, two_dialogs, sizeof(d));   \
		change;                              \
		expect_einval(CONF_URI, d, 2, what); \
	} while (0)

	BAD("dialog without id", d[1].id = NULL);
	BAD("dialog with empty id", d[0].id = "");
	BAD("dialog without state", d[1].state = NULL);
	BAD("empty state", d[0].state = "");
	BAD("state not in RFC 4235", d[0].state = "ringing");
	BAD("state in upper case", d[0].state = "Confirmed");
	BAD("state with a space", d[1].state = "early ");
	BAD("event with confirmed", d[0].event = "remote-bye");
	BAD("event with early", d[1].event = "cancelled");
	BAD("unknown event", d[1].state = "terminated"; d[1].event = "hung-up");
	BAD("empty event", d[1].state = "terminated"; d[1].event = "");
	BAD("unknown direction", d[0].direction = "outbound");
	BAD("empty direction", d[1].direction = "");
	BAD("code 99", d[1].state = "terminated"; d[1].code = 99);
	BAD("code 700", d[1].state = "terminated"; d[1].event = "rejected";
	    d[1].code = 700);
	BAD("code 1", d[0].code = 1);
	BAD("invalid UTF-8 display", d[0].remote.display = "Zo\xeb");
	BAD("truncated UTF-8 display", d[0].remote.display = "Zo\xc3");
	BAD("overlong '<' in display", d[0].remote.display = "\xc0\xbc");
	BAD("surrogate in display", d[0].remote.display = "\xed\xa0\x80");
	BAD("U+FFFF in display", d[0].remote.display = "\xef\xbf\xbf");
	BAD("control character in display", d[0].remote.display = "bell\a");
	BAD("ESC in local display", d[0].local.display = "a\x1b[0m");
	BAD("control character in identity",
	    d[1].remote.identity = "sip:\x01@x");
	BAD("control character in target", d[0].local.target = "sip:x\x7f\x02");
	BAD("control character in call-id", d[0].call_id = "a\x01");
	BAD("control character in local-tag", d[0].local_tag = "\x02");
	BAD("control character in remote-tag", d[1].remote_tag = "\x03");
	BAD("control character in id", d[0].id = "\x04");
	BAD("NULL pname", d[0].local.params[0][0] = NULL);
	BAD("empty pname", d[0].local.params[1][0] = "");
	BAD("NULL pval", d[0].local.params[1][1] = NULL);
	BAD("control character in pname", d[0].local.params[0][0] = "a\x05");
	BAD("invalid UTF-8 in pval", d[0].local.params[0][1] = "\xff");
	BAD("five params", d[0].local.params[2][0] = "a";
	    d[0].local.params[2][1] = "b"; d[0].local.params[3][0] = "c";
	    d[0].local.params[3][1] = "d"; d[0].local.n_params = 5);
	BAD("too many params on the remote", d[1].remote.n_params = 1000);
#undef BAD
}

static int
render_two(char **xmlp, size_t *lenp, const void *arg)
{
	(void)arg;
	return di_render(xmlp, lenp, CONF_URI, true, two_dialogs, 2, 7);
}

static void
test_enomem_everywhere(void **state)
{
	size_t ref_len;
	char *ref = render_ok(CONF_URI, true, two_dialogs, 2, 7, &ref_len);
	long k;

	(void)state;
	k = xt_enomem_everywhere(render_two, NULL, ref, ref_len);
	/* every allocation of a two-dialog document was tried */
	assert_true(k > 30);
	free(ref);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema_check_rejects_wrong_order),
		cmocka_unit_test(test_full_doc_values),
		cmocka_unit_test(test_partial_terminated_rejected),
		cmocka_unit_test(test_empty_full_doc),
		cmocka_unit_test(test_every_state_and_event),
		cmocka_unit_test(test_params_and_empty_party),
		cmocka_unit_test(test_text_escaping_round_trips),
		cmocka_unit_test(test_einval),
		cmocka_unit_test(test_enomem_everywhere),
	};

	/* Before any other libxml2 call, so every block is counted. */
	if (xt_init(&xml_conf) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
