#!/usr/bin/env python3
"""An OPTIONS inside a call (a keepalive) is answered and leaves the call
up.

The README's table: "in-dialog OPTIONS (keepalive): 200 with the isfocus
Contact; the call stays up". Before this was fixed, the keepalive
destroyed the call's SIP handle: focusd hung up on its own (BYE) while
the roster kept the leg, and the caller's later BYE got 481.

focusd runs with auto-create on. uac_options_in_dialog.xml joins room1
(PCMU/PCMA offer, RTP to a silent local endpoint), then sends two OPTIONS
in the dialog (same Call-ID, our From tag, focusd's To tag, Request-URI =
focusd's Contact, CSeq 2 and 3), waits 2.5 s and sends BYE (CSeq 4).
Checks:
- each OPTIONS gets exactly one final response, 200, with the Contact
  <sip:room1@HOST:PORT>;isfocus exactly, the dialog's To tag and Call-ID;
- 1 s after the second 200, conference.show room1 still lists the call
  (by Call-ID) in state "connected";
- focusd sends no BYE of its own (the scenario answers one and fails);
- our BYE gets 200 (not 481), and then room1 ends within 2 s and stats
  counts no legs.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_options_in_dialog.py (exit status 0 on
pass).
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import rtpep  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
STILL_UP_AFTER_S = 1.0
GONE_TIMEOUT_S = 2.0


def cseq_num(msg):
    vals = sc.header(msg, "CSeq")
    m = re.match(r"\s*(\d+)\s+(\S+)", vals[0]) if vals else None
    return (int(m.group(1)), m.group(2).upper()) if m else (None, None)


def finals(msgs, num, meth):
    """Final responses received to CSeq num meth."""
    return [m for m in sc.responses(msgs, final=True)
            if cseq_num(m) == (num, meth)]


def timeline(msgs, t0):
    return "\n  ".join("%+7.3f s %-8s %s" % (m.when - t0, m.direction,
                                             m.start) for m in msgs)


def check_keepalive(msgs, num, fd, call_id, to_tag):
    what = "in-dialog OPTIONS (CSeq %d)" % num
    got = finals(msgs, num, "OPTIONS")
    check(got, "%s: no final response in the trace" % what)
    check([sc.status(m) for m in got] == [200], "%s: final responses %r, "
          "expected exactly one 200" % (what, [m.start for m in got]))
    ok = got[0]
    contact = sc.header1(ok, "Contact").replace(" ", "")
    want = "<sip:%s@%s>;isfocus" % (ROOM, fd.sip_target)
    check(contact == want, "%s: 200 has Contact %r, expected %r"
          % (what, contact, want))
    check(sc.header1(ok, "Call-ID") == call_id, "%s: 200 for Call-ID %r, "
          "the call is %r" % (what, sc.header1(ok, "Call-ID"), call_id))
    tag = sc.tag_of(sc.header1(ok, "To"))
    check(tag == to_tag, "%s: 200 has To tag %r, the dialog's is %r (an "
          "in-dialog request is answered in the dialog)"
          % (what, tag, to_tag))
    log("%s -> %s, Contact %s" % (what, ok.start, contact))


def main():
    with harness.Focusd(auto_create=True) as fd:
        sink = rtpep.RtpEndpoint(name="sink", max_duration=30).start()
        run = None
        try:
            run = sc.run_sipp(fd, "uac_options_in_dialog.xml", "keepalive",
                              service=ROOM, background=True,
                              keys={"rtp_port": sink.port}, timeout=15)

            def second_keepalive_answered():
                msgs = sc.trace_of(run)
                if finals(msgs, 3, "OPTIONS"):
                    return msgs
                if run.poll() is not None:
                    msgs = sc.trace_of(run)
                    byes = sc.requests(msgs, "BYE", "received")
                    fail("SIPp exited with %d before the second keepalive "
                         "was answered%s; trace:\n  %s\n%s"
                         % (run.poll(), " (focusd sent its own BYE: the "
                            "keepalive ended the call)" if byes else "",
                            timeline(msgs, msgs[0].when if msgs else 0),
                            run.report()))
                return None
            msgs = harness.wait_for(second_keepalive_answered, 8.0,
                                    what="200 to the second in-dialog "
                                    "OPTIONS")
            t_ok = time.monotonic()
            invite_ok = finals(msgs, 1, "INVITE")
            check([sc.status(m) for m in invite_ok][:1] == [200],
                  "INVITE answered %r" % [m.start for m in invite_ok])
            call_id = sc.header1(invite_ok[0], "Call-ID")
            to_tag = sc.tag_of(sc.header1(invite_ok[0], "To"))
            check(to_tag, "200 to the INVITE has no To tag")

            # -- the call is still there a second later
            time.sleep(max(0.0, t_ok + STILL_UP_AFTER_S - time.monotonic()))
            show = fd.mgmt_result("conference.show", {"id": ROOM})
            legs = [p for p in show.get("participants", [])
                    if p.get("call_id") == call_id]
            check(len(legs) == 1, "conference.show %s %.1f s after the "
                  "keepalives: %d legs with Call-ID %s, expected 1: %r"
                  % (ROOM, STILL_UP_AFTER_S, len(legs), call_id, show))
            check(legs[0].get("state") == "connected", "conference.show: "
                  "the call is in state %r after the keepalives, expected "
                  "'connected' (%r)" % (legs[0].get("state"), legs[0]))
            log("conference.show %.1f s after the keepalives: %s %s %s"
                % (time.monotonic() - t_ok, legs[0].get("uri"),
                   legs[0].get("state"), legs[0].get("direction")))
            msgs = sc.trace_of(run)
            check(not sc.requests(msgs, "BYE", "sent"), "SIPp sent its BYE "
                  "before the conference.show check (machine too slow)")

            # -- the end, and what the trace says about all of it
            rc, text, _ = run.wait()
            msgs = sc.parse_trace(text)
            t0 = msgs[0].when if msgs else 0
            where = "trace:\n  %s\n%s" % (timeline(msgs, t0), run.report())
            byes_in = sc.requests(msgs, "BYE", "received")
            check(not byes_in, "focusd sent its own BYE %.3f s into the "
                  "call (after the keepalives), the call should have stayed "
                  "up; %s" % (byes_in[0].when - t0 if byes_in else 0, where))
            contact_uri = sc.name_addr(sc.header1(invite_ok[0],
                                                  "Contact"))[0]
            for opt in sc.requests(msgs, "OPTIONS", "sent"):
                ruri = opt.start.split()[1]
                to = sc.header1(opt, "To")
                check(ruri == contact_uri and sc.tag_of(to) == to_tag,
                      "scenario bug: OPTIONS %s with To %r is not in the "
                      "dialog (Contact %s, To tag %s)"
                      % (ruri, to, contact_uri, to_tag))
            for num in (2, 3):
                check_keepalive(msgs, num, fd, call_id, to_tag)
            bye_ok = finals(msgs, 4, "BYE")
            check(bye_ok, "no final response to our BYE; %s" % where)
            check([sc.status(m) for m in bye_ok] == [200], "our BYE after "
                  "the keepalives got %r, expected 200 (481: focusd lost "
                  "the dialog); %s" % ([m.start for m in bye_ok], where))
            check(rc == 0, "SIPp exited with %d, expected 0; %s"
                  % (rc, where))
            run = None
            log("BYE -> %s" % bye_ok[0].start)

            sc.wait_until(lambda: sc.find_conf(fd, ROOM) is None,
                          GONE_TIMEOUT_S, "%s gone after the BYE" % ROOM,
                          lambda: "conference.list %r"
                          % fd.mgmt_result("conference.list"))
            st = fd.mgmt_result("stats")
            check(st.get("legs") == 0 and st.get("conferences") == 0,
                  "stats after the call: legs=%r conferences=%r, expected "
                  "0 and 0" % (st.get("legs"), st.get("conferences")))
        finally:
            if run is not None:
                run.kill()
                sys.stderr.write(run.report(lines=60) + "\n")
            sink.stop()


if __name__ == "__main__":
    harness.run_main(main)
