#!/usr/bin/env python3
"""A re-INVITE without SDP gets an offer in the 200, which the ACK
answers; an ACK without the answer ends the call with a BYE.

The README's table: "re-INVITE ... without SDP, the 200 offers sendrecv
and the ACK must answer (else BYE)". Before this was fixed, focusd's 200
repeated its previous answer (one codec, the mirrored direction: recvonly
for a held call) and ignored an ACK without SDP.

focusd runs with auto-create on; both calls go to room1 at the same time
with uac_reinvite_no_sdp.xml.
  held   -key mode answer -key pts "8 0": joins preferring PCMA, puts the
         call on hold (re-INVITE a=sendonly; the answer must be recvonly
         and conference.show must say on-hold/sendonly), then sends a
         re-INVITE without SDP. The 200 must carry an offer: one m=audio
         on the call's RTP port, RTP/AVP with payload types exactly
         8 111 9 0 101 100 (the current codec, PCMA, first, then what
         else the 16 kHz conference takes: Opus, G.722, PCMU; then
         telephone-event at 8000 and 48000), a=sendrecv, c=IN IP4
         127.0.0.1, and an o= line with the call's session id and a
         version above the one of the hold's answer. The ACK answers PT 8
         sendrecv; conference.show must then say connected, sendrecv,
         PCMA. No BYE from focusd; our BYE gets 200.
  silent -key mode none -key pts "0 8": joins (PCMU), sends a re-INVITE
         without SDP (the 200 must offer 0 111 9 8 101 100, PCMU first, sendrecv, a
         higher o= version) and ACKs without SDP: focusd must send BYE
         within 2 s of the ACK (the scenario answers 200), and the leg
         must leave conference.show.
Afterwards room1 ends and stats counts no legs.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_reinvite_no_sdp.py (exit status 0 on pass).
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
BYE_WITHIN_S = 2.0
SETTLE_S = 0.3           # after an ACK, before conference.show


def cseq_num(msg):
    vals = sc.header(msg, "CSeq")
    m = re.match(r"\s*(\d+)\s+(\S+)", vals[0]) if vals else None
    return (int(m.group(1)), m.group(2).upper()) if m else (None, None)


def finals(msgs, num, meth):
    return [m for m in sc.responses(msgs, final=True)
            if cseq_num(m) == (num, meth)]


def sent(msgs, meth, num):
    return [m for m in sc.requests(msgs, meth, "sent")
            if cseq_num(m) == (num, meth)]


def timeline(run):
    msgs = sc.trace_of(run)
    t0 = msgs[0].when if msgs else 0
    return "trace of %s:\n  %s" % (run.name, "\n  ".join(
        "%+7.3f s %-8s %s" % (m.when - t0, m.direction, m.start)
        for m in msgs))


def wait_trace(run, pred, timeout, what):
    """Poll run's trace until pred(msgs) gives a value; fail with the
    timeline if SIPp exits first or time runs out."""
    def got():
        msgs = sc.trace_of(run)
        v = pred(msgs)
        if v:
            return v
        if run.poll() is not None:
            v = pred(sc.trace_of(run))
            if v:
                return v
            fail("%s: SIPp %s exited with %d first\n%s\n%s"
                 % (what, run.name, run.poll(), timeline(run),
                    run.report()))
        return None
    try:
        return harness.wait_for(got, timeout, what=what)
    except harness.TestFailure as e:
        fail("%s\n%s" % (e, timeline(run)))


def wait_final(run, num, meth, timeout):
    ok = wait_trace(run, lambda msgs: finals(msgs, num, meth), timeout,
                    "%s: final response to CSeq %d %s"
                    % (run.name, num, meth))[0]
    check(sc.status(ok) == 200, "%s: CSeq %d %s answered %r, expected "
          "200\n%s" % (run.name, num, meth, ok.start, timeline(run)))
    return ok


def origin(sdp, what):
    """(session id, version) from the o= line."""
    o = [l for l in sdp["session"] if l.startswith("o=")]
    check(len(o) == 1, "%s: %d o= lines: %r" % (what, len(o),
                                                 sdp["session"]))
    parts = o[0][2:].split()
    check(len(parts) == 6 and parts[1].isdigit() and parts[2].isdigit(),
          "%s: malformed o= line %r" % (what, o[0]))
    return parts[1], int(parts[2])


def audio_of(msg, what):
    ctype = sc.header(msg, "Content-Type")
    check(ctype and ctype[0].split(";")[0].strip().lower() ==
          "application/sdp", "%s: Content-Type %r, expected "
          "application/sdp (an SDP body)\n%s" % (what, ctype, msg.raw))
    sdp = sc.parse_sdp(msg.body)
    ms = sdp["media"]
    check(len(ms) == 1 and ms[0]["type"] == "audio", "%s: m-lines %r, "
          "expected one m=audio\n%s" % (what, [m["line"] for m in ms],
                                       msg.body))
    return sdp, ms[0]


def check_offer(msg, what, want_fmts, port, sess_id, prev_version):
    """focusd's offer in the 200 to an INVITE without SDP."""
    sdp, m = audio_of(msg, what)
    check(m["proto"] == "RTP/AVP", "%s: %r is not RTP/AVP"
          % (what, m["line"]))
    check(m["fmts"] == want_fmts, "%s: %r offers payload types %s, "
          "expected exactly %s (the call's current codec first, then the "
          "others the conference takes, best first)\n%s" % (what, m["line"], " ".join(m["fmts"]),
                          " ".join(want_fmts), msg.body))
    check(m["port"] == port, "%s: offer on RTP port %d, the call's port "
          "is %d" % (what, m["port"], port))
    direction = [d for d in ("sendrecv", "sendonly", "recvonly", "inactive")
                 if sc.sdp_attrs(sdp, m, d)]
    check(direction == ["sendrecv"], "%s: direction attributes %r, "
          "expected a=sendrecv (an offer to resume, whatever the call was)"
          "\n%s" % (what, direction, msg.body))
    conn = sc.sdp_connection(sdp, m)
    check(conn == "IN IP4 127.0.0.1", "%s: c=%r, expected IN IP4 127.0.0.1"
          % (what, conn))
    rtpmaps = {}
    for v in sc.sdp_attrs(sdp, m, "rtpmap"):
        pt, _, enc = v.partition(" ")
        rtpmaps[pt] = enc.upper()
    for pt, enc in (("0", "PCMU/8000"), ("8", "PCMA/8000")):
        check(rtpmaps.get(pt, enc) == enc, "%s: a=rtpmap:%s %s, expected "
              "%s" % (what, pt, rtpmaps.get(pt), enc))
    sid, ver = origin(sdp, what)
    check(sid == sess_id, "%s: o= session id %s, the call's is %s"
          % (what, sid, sess_id))
    check(ver > prev_version, "%s: o= version %d, expected more than %d "
          "(our previous SDP; this one differs, RFC 3264 8)"
          % (what, ver, prev_version))
    log("%s: %s | %s | o= %s %d" % (what, m["line"], direction[0], sid,
                                    ver))
    return ver


def leg_by_call_id(fd, call_id):
    """(the leg with call_id or None, conference.show's result); a room
    that has ended has no legs."""
    resp = fd.mgmt("conference.show", {"id": ROOM})
    if "error" in resp:
        check(resp["error"].get("code") == -32001, "conference.show %s: "
              "error %r" % (ROOM, resp["error"]))
        return None, resp
    show = resp["result"]
    for p in show.get("participants", []):
        if p.get("call_id") == call_id:
            return p, show
    return None, show


def check_leg(fd, call_id, want, when):
    p, show = leg_by_call_id(fd, call_id)
    check(p is not None, "conference.show %s %s: no leg with Call-ID %s: "
          "%r" % (ROOM, when, call_id, show))
    got = {k: p.get(k) for k in want}
    check(got == want, "conference.show %s %s: leg %s has %r, expected %r "
          "(leg %r)" % (ROOM, when, call_id, got, want, p))
    log("conference.show %s: %r" % (when, got))


def held_call(fd, run):
    """mode answer, PCMA first: hold, then an offerless re-INVITE."""
    ok1 = wait_final(run, 1, "INVITE", 5.0)
    call_id = sc.header1(ok1, "Call-ID")
    sdp1, m1 = audio_of(ok1, "held: 200 to the INVITE")
    check(m1["fmts"] == ["8"], "held: the first answer %r does not take "
          "PCMA (8), the offer's first codec" % m1["line"])
    port = m1["port"]
    sess_id, v1 = origin(sdp1, "held: the first answer")

    ok2 = wait_final(run, 2, "INVITE", 5.0)
    sdp2, m2 = audio_of(ok2, "held: 200 to the hold")
    check(sc.sdp_direction(sdp2, m2) == "recvonly", "held: the answer to "
          "a=sendonly says %s, expected recvonly" % sc.sdp_direction(sdp2,
                                                                    m2))
    sid2, v2 = origin(sdp2, "held: the answer to the hold")
    check(sid2 == sess_id and v2 > v1, "held: the hold's answer has o= %s "
          "%d after %s %d: same session id and a higher version expected"
          % (sid2, v2, sess_id, v1))
    check_leg(fd, call_id, {"state": "on-hold", "direction": "sendonly"},
              "after the hold")
    check(not sent(sc.trace_of(run), "INVITE", 3), "held: the offerless "
          "re-INVITE went out before conference.show was checked "
          "(machine too slow)")

    ok3 = wait_final(run, 3, "INVITE", 5.0)
    check_offer(ok3, "held: 200 to the re-INVITE without SDP (on hold, "
                "PCMA)", ["8", "111", "9", "0", "101", "100"], port, sess_id, v2)
    ack = wait_trace(run, lambda msgs: sent(msgs, "ACK", 3), 3.0,
                     "held: the ACK with our answer")[0]
    check(sc.parse_sdp(ack.body)["media"], "held: our ACK carries no SDP "
          "(scenario bug)")
    time.sleep(SETTLE_S)
    check_leg(fd, call_id, {"state": "connected", "direction": "sendrecv",
                            "codec": "PCMA"},
              "after the ACK answered sendrecv")
    check(not sent(sc.trace_of(run), "BYE", 4), "held: our BYE went out "
          "before conference.show was checked (machine too slow)")

    rc, text, _ = run.wait()
    msgs = sc.parse_trace(text)
    byes = sc.requests(msgs, "BYE", "received")
    check(not byes, "held: focusd sent BYE (%r) although our ACK answered "
          "its offer\n%s" % (byes[0].start if byes else "", timeline(run)))
    bye_ok = finals(msgs, 4, "BYE")
    check([sc.status(m) for m in bye_ok] == [200], "held: our BYE got %r, "
          "expected 200\n%s" % ([m.start for m in bye_ok], timeline(run)))
    check(rc == 0, "held: SIPp exited with %d\n%s\n%s"
          % (rc, timeline(run), run.report()))
    return call_id


def silent_call(fd, run):
    """mode none, PCMU first: an offerless re-INVITE, ACK without SDP."""
    ok1 = wait_final(run, 1, "INVITE", 5.0)
    call_id = sc.header1(ok1, "Call-ID")
    sdp1, m1 = audio_of(ok1, "silent: 200 to the INVITE")
    check(m1["fmts"] == ["0"], "silent: the first answer %r does not take "
          "PCMU (0), the offer's first codec" % m1["line"])
    sess_id, v1 = origin(sdp1, "silent: the first answer")

    ok2 = wait_final(run, 2, "INVITE", 5.0)
    check_offer(ok2, "silent: 200 to the re-INVITE without SDP (PCMU)",
                ["0", "111", "9", "8", "101", "100"], m1["port"], sess_id, v1)

    rc, text, _ = run.wait()
    msgs = sc.parse_trace(text)
    acks = sent(msgs, "ACK", 2)
    check(acks, "silent: no ACK to the offer in the trace\n%s"
          % timeline(run))
    check(not sc.parse_sdp(acks[0].body)["media"], "silent: our ACK carries "
          "SDP (scenario bug)")
    byes = sc.requests(msgs, "BYE", "received")
    check(byes, "silent: focusd sent no BYE after an ACK without the answer "
          "to its offer (SIPp waited %.0f s); SIPp exit status %d\n%s"
          % (BYE_WITHIN_S, rc, timeline(run)))
    delay = byes[0].when - acks[0].when
    check(0 <= delay <= BYE_WITHIN_S, "silent: focusd's BYE came %.3f s "
          "after our ACK, expected within %.1f s" % (delay, BYE_WITHIN_S))
    check(sc.header1(byes[0], "Call-ID") == call_id, "silent: BYE for "
          "Call-ID %r, the call is %r" % (sc.header1(byes[0], "Call-ID"),
                                          call_id))
    check(rc == 0, "silent: SIPp exited with %d\n%s\n%s"
          % (rc, timeline(run), run.report()))
    log("silent: focusd sent BYE %.3f s after the ACK without SDP" % delay)
    sc.wait_until(lambda: leg_by_call_id(fd, call_id)[0] is None, 1.0,
                  "silent: leg gone from conference.show after focusd's "
                  "BYE", lambda: leg_by_call_id(fd, call_id)[1])
    return call_id


def main():
    with harness.Focusd(auto_create=True) as fd:
        eps = [rtpep.RtpEndpoint(name=n, max_duration=30).start()
               for n in ("held", "silent")]
        runs = {}
        failed = True
        try:
            runs["held"] = sc.run_sipp(
                fd, "uac_reinvite_no_sdp.xml", "held", service=ROOM,
                background=True, keys={"mode": "answer", "pts": "8 0",
                                       "rtp_port": eps[0].port})
            runs["silent"] = sc.run_sipp(
                fd, "uac_reinvite_no_sdp.xml", "silent", service=ROOM,
                background=True, keys={"mode": "none", "pts": "0 8",
                                       "rtp_port": eps[1].port})
            # held's steps are timed against conference.show; silent only
            # needs its trace, read once held is done.
            held_call(fd, runs["held"])
            silent_call(fd, runs["silent"])
            sc.wait_until(lambda: sc.find_conf(fd, ROOM) is None, 2.0,
                          "%s gone after both calls" % ROOM,
                          lambda: "conference.list %r"
                          % fd.mgmt_result("conference.list"))
            st = fd.mgmt_result("stats")
            check(st.get("legs") == 0 and st.get("conferences") == 0,
                  "stats after the calls: legs=%r conferences=%r"
                  % (st.get("legs"), st.get("conferences")))
            failed = False
        finally:
            for run in runs.values():
                run.kill()
                if failed:
                    sys.stderr.write(run.report(lines=40) + "\n")
            for ep in eps:
                ep.stop()


if __name__ == "__main__":
    harness.run_main(main)
