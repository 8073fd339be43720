#!/usr/bin/env python3
"""OPTIONS discovers the focus (RFC 4579 4.12): 200 with the isfocus
Contact for the factory and for conferences, 404 for anyone else.

The README's table: "OPTIONS to the factory or a conference: 200 with the
isfocus Contact, Allow, Allow-Events, Accept, Supported; OPTIONS to any
other user:
404", and the Allow lists what this build implements: INVITE, ACK, BYE,
CANCEL, OPTIONS, SUBSCRIBE, NOTIFY (the sipfrags of its own REFERs),
REFER; Allow-Events the event packages it serves: conference, dialog
(RFC 4235), refer. The OPTIONS Contact names
the conference, not a leg: no gr parameter (that is only on dialogs with
participants). With auto-create on, a valid ID that does not exist yet
is a conference a caller could make, so it answers 200 too.

Two focusd instances, each with SIPp's uac_options.xml (which checks the
status itself) and this script reading the message trace for the exact
headers:
  A: auto-create off, default domain (the listen address, 127.0.0.1:PORT).
     A call to the factory (uac_join.xml) makes a conference with an opaque
     ID, then: OPTIONS sip:conf@ -> 200, Contact <sip:conf@DOMAIN>;isfocus;
     OPTIONS sip:ID@ -> 200, Contact <sip:ID@DOMAIN>;isfocus; OPTIONS
     sip:nosuchroom@ -> 404. The 200s carry Allow (exactly the seven
     methods), Allow-Events (exactly conference, dialog, refer), Accept
     with application/sdp, and Supported.
  B: auto-create on and --domain focus.example.net: OPTIONS sip:room42@
     (no such conference yet) -> 200, Contact <sip:room42@focus.example.net>
     ;isfocus (the domain, not the listen address), and the OPTIONS did not
     create room42.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_options.py (exit status 0 on pass).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import rtpep  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, log  # noqa: E402

ALLOW = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "SUBSCRIBE", "NOTIFY",
         "REFER"}
ALLOW_EVENTS = ["conference", "dialog", "refer"]
DOMAIN_B = "focus.example.net"


def options(fd, user, expect, name):
    """One OPTIONS to sip:user@focusd; the scenario insists on status
    expect. Returns the final response from the trace."""
    msgs = sc.sipp_ok(sc.run_sipp(fd, "uac_options.xml", name,
                                  service=user, keys={"expect": expect},
                                  timeout=10),
                      "OPTIONS sip:%s@ (expecting %d)" % (user, expect))
    final = sc.responses(msgs, cseq="OPTIONS", final=True)
    check(final, "OPTIONS sip:%s@: no final response in the trace" % user)
    got = [sc.status(m) for m in final]
    check(got == [expect], "OPTIONS sip:%s@: final responses %r, expected "
          "one %d" % (user, got, expect))
    log("OPTIONS sip:%s@%s -> %s" % (user, fd.sip_target, final[0].start))
    return final[0]


def check_focus_200(resp, user, domain):
    """A 200 to OPTIONS as the README promises it."""
    what = "200 to OPTIONS sip:%s@" % user
    contact = sc.header1(resp, "Contact")
    uri, params = sc.name_addr(contact)
    want = "sip:%s@%s" % (user, domain)
    check(uri == want, "%s: Contact URI %r, expected %r (Contact: %s)"
          % (what, uri, want, contact))
    check("isfocus" in params and params["isfocus"] is None,
          "%s: Contact %r lacks the ;isfocus parameter" % (what, contact))
    check(contact.replace(" ", "") == "<%s>;isfocus" % want,
          "%s: Contact is %r, expected exactly <%s>;isfocus"
          % (what, contact, want))

    allow = sc.token_list(sc.header(resp, "Allow"))
    check(allow, "%s: no Allow header\n%s" % (what, resp.raw))
    got = {m.upper() for m in allow}
    check(got == ALLOW, "%s: Allow lists %s, expected exactly %s (what "
          "this build implements)" % (what, ", ".join(allow),
                                       ", ".join(sorted(ALLOW))))

    accept = [a.split(";")[0].strip().lower()
              for a in sc.token_list(sc.header(resp, "Accept"))]
    check("application/sdp" in accept, "%s: Accept %r does not contain "
          "application/sdp\n%s" % (what, sc.header(resp, "Accept"),
                                   resp.raw))
    check(sc.header(resp, "Supported") != [],
          "%s: no Supported header\n%s" % (what, resp.raw))
    events = sorted(e.lower() for e in sc.token_list(sc.header(
        resp, "Allow-Events")))
    check(events == ALLOW_EVENTS, "%s: Allow-Events lists %s, expected "
          "exactly %s, each once\n%s"
          % (what, ", ".join(events) or "nothing", ", ".join(ALLOW_EVENTS),
             resp.raw))


def main():
    # -- A: auto-create off, a conference made through the factory
    with harness.Focusd(auto_create=False, name="focusd-A") as fd:
        domain = fd.sip_target      # no --domain: the listen address
        sink = rtpep.RtpEndpoint(name="sink", max_duration=30).start()
        call = None
        try:
            call = sc.run_sipp(fd, "uac_join.xml", "factory-call",
                               service="conf", background=True,
                               keys={"rtp_port": sink.port,
                                     "pause_ms": 2000,
                                     "port_file": "/dev/null"})
            ok = sc.wait_response(call, "INVITE", 5, "factory INVITE")
            check(sc.status(ok) == 200, "factory INVITE answered %r"
                  % ok.start)
            ids = sc.list_ids(fd)
            check(len(ids) == 1 and ids[0] not in (None, "conf"),
                  "conference.list after a factory INVITE: %r, expected "
                  "one conference with an opaque ID" % ids)
            conf_id = ids[0]
            log("factory made conference %s" % conf_id)

            resp = options(fd, "conf", 200, "options-factory")
            check_focus_200(resp, "conf", domain)
            resp = options(fd, conf_id, 200, "options-conf")
            check_focus_200(resp, conf_id, domain)
            options(fd, "nosuchroom", 404, "options-unknown")
            check(sc.list_ids(fd) == [conf_id], "OPTIONS changed the "
                  "conferences: %r, expected [%r]"
                  % (sc.list_ids(fd), conf_id))
            sc.sipp_ok(call, "factory call")
            call = None
        finally:
            if call is not None:
                call.kill()
                sys.stderr.write(call.report(lines=30) + "\n")
            sink.stop()

    # -- B: auto-create on, a configured domain
    with harness.Focusd(auto_create=True, domain=DOMAIN_B,
                        name="focusd-B") as fd:
        check(sc.list_ids(fd) == [], "focusd B starts with conferences: "
              "%r" % sc.list_ids(fd))
        resp = options(fd, "room42", 200, "options-autocreate")
        check_focus_200(resp, "room42", DOMAIN_B)
        resp = options(fd, "conf", 200, "options-factory-B")
        check_focus_200(resp, "conf", DOMAIN_B)
        check(sc.list_ids(fd) == [], "OPTIONS sip:room42@ with auto-create "
              "on created conferences: %r (it must only answer)"
              % sc.list_ids(fd))


if __name__ == "__main__":
    harness.run_main(main)
