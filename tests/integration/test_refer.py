#!/usr/bin/env python3
"""REFER to the conference brings the referred user in (RFC 4579 4.6,
RFC 3515, RFC 4488).

focusd runs with auto-create on; alice dials in to room1 (uac_join) so
that it exists. Then, all at once, each with its own SIPp controller
(uac_refer.xml) and, where it dials, its own target (uas_answer.xml,
which rings at once and answers after ANSWER_MS):
- "out":   REFER sip:room1@DOMAIN outside any dialog, Refer-To the
           target tgt_out, Refer-Sub true;
- "in":    a participant (the controller itself joins room1 with an
           INVITE) sends the REFER inside its call: same Call-ID and
           tags, Request-URI the 200's Contact, CSeq 2; target tgt_in;
- "nosub": like "out" with Refer-Sub: false; target tgt_nosub;
- "busy":  like "out"; target tgt_busy rings and answers 486;
- "nosuch": REFER to sip:nosuchroom@DOMAIN (no such conference);
- "tel":   Refer-To <tel:+1234>;
- "none":  no Refer-To header at all.
Checks, from each controller's message trace (SIPp -trace_msg) and
conference.show:
- out, in, busy: exactly one final response to the REFER, 202; every
  NOTIFY carries Event: refer (an id parameter, if any, equal to the
  REFER's CSeq number), Content-Type message/sipfrag, a Subscription-
  State, the REFER's Call-ID and the dialog's tags (From tag = the 202's
  To tag, To tag = ours), and a sipfrag "SIP/2.0 NNN Phrase"; the first
  is "SIP/2.0 100 Trying" (RFC 3515 2.4.4 / RFC 6665 4.2.1: a NOTIFY at
  once; focusd's refer.c promises it), then only 100 or 180 (the target
  rings, so 180 must be among them), never going down, and last the
  final status with Subscription-State terminated and nothing after it:
  "SIP/2.0 200 OK" for out and in, "SIP/2.0 486 Busy Here" for busy.
  NOTIFY and 202 may come in either order: Sofia-SIP sends its own
  first NOTIFY before focusd's 202 (a stack quirk, accepted);
- out, in, nosub: conference.show lists the target's URI "connected"
  (within ANSWER_MS + CONNECT_S), alongside alice;
- busy: the target's URI is never "connected" and is gone from
  conference.show within GONE_S of the final NOTIFY;
- nosub: the 202 carries Refer-Sub: false; no NOTIFY carries a final
  status or Subscription-State terminated, and at most one NOTIFY comes
  at all: Sofia-SIP's own first "SIP/2.0 100 Trying", which it sends
  even for Refer-Sub: false (accepted as a stack quirk, logged); the
  controller waits 4 s after its last message, well past the target's
  answer, so a late NOTIFY would be seen;
- nosuch: 404 and room "nosuchroom" not created; tel: 400 whose reason
  phrase says a SIP URI is needed; none: 400. None of the three dials
  anyone; each may see only the stack's early "100 Trying" NOTIFY
  (logged: Sofia-SIP sends it before focusd turns the REFER down);
- every SIPp run exits 0; after everyone left room1 ends within GONE_S,
  stats shows no legs, and focusd exits 0 on SIGTERM.
All findings are gathered and reported together at the end, after
focusd has stopped (so its exit status is checked in any case).

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_refer.py (exit status 0 on pass).
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpep  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
ANSWER_MS = 600           # each target rings this long
HOLD_MS = 4000            # answered targets stay this long
ALICE_MS = 9000           # alice (who makes room1) stays this long
STAY_MS = 1500            # the "in" controller stays after its REFER
CONNECT_S = 5.0
GONE_S = 2.0
IDLE_S = 4.0              # uac_refer.xml's idle timeout

SIPFRAG_RE = re.compile(r"^SIP/2\.0 (\d{3}) (.*)$")

# name: (join, service, refer_to (None: the target's URI), refer_sub,
#        target status (None: no target))
CASES = {
    "out": (0, ROOM, None, "true", 200),
    "in": (1, ROOM, None, "true", 200),
    "nosub": (0, ROOM, None, "false", 200),
    "busy": (0, ROOM, None, "true", 486),
    "nosuch": (0, "nosuchroom", "sip:nobody@127.0.0.1:9", "true", None),
    "tel": (0, ROOM, "tel:+1234", "true", None),
    "none": (0, ROOM, "none", "true", None),
}


def start_uas(fd, name, rtp_port, status):
    """A uas_answer.xml target as user name, answering status; returns
    (SippRun, its URI) once it listens."""
    return sc.start_uas(fd, name, "uas_answer.xml",
                        {"rtp_port": rtp_port, "ring": 1,
                         "answer_ms": ANSWER_MS, "status": status,
                         "hold_ms": HOLD_MS})


def cseq(msg):
    v = sc.header(msg, "CSeq")
    parts = v[0].split() if v else []
    return (int(parts[0]), parts[1].upper()) if len(parts) == 2 else None


def sipfrag(msg):
    """(status, phrase) of a NOTIFY's message/sipfrag body, or None."""
    line = msg.body.strip().split("\n")[0].strip() if msg.body else ""
    m = SIPFRAG_RE.match(line)
    return (int(m.group(1)), m.group(2).strip()) if m else None


def timeline(msgs):
    t0 = msgs[0].when if msgs else 0
    out = []
    for m in msgs:
        extra = ""
        if sc.method(m) == "NOTIFY":
            extra = " [%s] %s" % (
                ",".join(sc.header(m, "Subscription-State")),
                m.body.strip().split("\n")[0] if m.body else "(no body)")
        out.append("%+7.3f s %-8s %s%s" % (m.when - t0, m.direction,
                                           m.start, extra))
    return "\n    ".join(out)


class Refer:
    """What one controller's trace says about its REFER."""

    def __init__(self, name, msgs):
        self.name = name
        self.msgs = msgs
        refers = sc.requests(msgs, "REFER", "sent")
        check(refers, "%s: no REFER in the controller's trace:\n    %s"
              % (name, timeline(msgs)))
        self.refer = refers[0]
        self.refer_cseq = cseq(self.refer)
        self.finals = [m for m in sc.responses(msgs, final=True)
                       if cseq(m) == self.refer_cseq]
        self.notifies = sc.requests(msgs, "NOTIFY", "received")
        self.call_id = sc.header1(self.refer, "Call-ID")
        self.our_tag = sc.tag_of(sc.header1(self.refer, "From"))

    def final_status(self):
        return [sc.status(m) for m in self.finals]

    def frags(self):
        return [sipfrag(n) for n in self.notifies]

    def describe(self):
        return "%s:\n    %s" % (self.name, timeline(self.msgs))


def check_notify_form(errors, r):
    """Event, Content-Type, Subscription-State, dialog of each NOTIFY."""
    focus_tag = None
    if r.finals and sc.status(r.finals[0]) == 202:
        focus_tag = sc.tag_of(sc.header1(r.finals[0], "To"))
    for n in r.notifies:
        what = "%s: NOTIFY %s" % (r.name, ",".join(sc.header(n, "CSeq")))
        ev = sc.header(n, "Event") or sc.header(n, "o")
        evm = re.match(r"^\s*refer\s*(?:;\s*id\s*=\s*(\d+))?\s*$",
                       ev[0] if len(ev) == 1 else "", re.I)
        if not evm:
            errors.append("%s: Event %r, expected refer[;id=N]" % (what, ev))
        elif evm.group(1) and int(evm.group(1)) != r.refer_cseq[0]:
            errors.append("%s: Event %r: id should be the REFER's CSeq "
                          "number %d" % (what, ev[0], r.refer_cseq[0]))
        ct = sc.header(n, "Content-Type")
        if len(ct) != 1 or ct[0].split(";")[0].strip().lower() != \
                "message/sipfrag":
            errors.append("%s: Content-Type %r, expected message/sipfrag"
                          % (what, ct))
        if len(sc.header(n, "Subscription-State")) != 1:
            errors.append("%s: Subscription-State %r, expected one"
                          % (what, sc.header(n, "Subscription-State")))
        if sipfrag(n) is None:
            errors.append("%s: body %r is not a sipfrag status line"
                          % (what, n.body))
        if sc.header1(n, "Call-ID") != r.call_id:
            errors.append("%s: Call-ID %r, the REFER's is %r"
                          % (what, sc.header1(n, "Call-ID"), r.call_id))
        if sc.tag_of(sc.header1(n, "To")) != r.our_tag:
            errors.append("%s: To %r lacks our tag %r"
                          % (what, sc.header1(n, "To"), r.our_tag))
        if focus_tag and sc.tag_of(sc.header1(n, "From")) != focus_tag:
            errors.append("%s: From tag %r, the 202's To tag is %r"
                          % (what, sc.tag_of(sc.header1(n, "From")),
                             focus_tag))


def terminated(n):
    return any(v.strip().lower().startswith("terminated")
               for v in sc.header(n, "Subscription-State"))


def check_progress(errors, r, final):
    """202, then sipfrags 100 ... (180) ... final, the last terminated."""
    if r.final_status() != [202]:
        errors.append("%s: final responses to the REFER %r, expected "
                      "exactly one 202\n  %s"
                      % (r.name, [m.start for m in r.finals], r.describe()))
        return
    check_notify_form(errors, r)
    frags = r.frags()
    statuses = [f[0] if f else None for f in frags]
    log("%s: 202; NOTIFY sipfrags %s" % (
        r.name, ", ".join("%s [%s]" % (f and "%d %s" % f,
                                       ",".join(sc.header(
                                           n, "Subscription-State")))
                          for f, n in zip(frags, r.notifies))))
    if not frags or frags[-1] != final or not terminated(r.notifies[-1]):
        errors.append("%s: the last NOTIFY says %r [%s], expected "
                      "\"SIP/2.0 %d %s\" with Subscription-State "
                      "terminated\n  %s"
                      % (r.name, frags[-1] if frags else None,
                         ",".join(sc.header(r.notifies[-1],
                                            "Subscription-State"))
                         if frags else "", final[0], final[1],
                         r.describe()))
        return
    if any(terminated(n) for n in r.notifies[:-1]):
        errors.append("%s: a NOTIFY before the last one ended the "
                      "subscription\n  %s" % (r.name, r.describe()))
    if statuses[0] != 100:
        errors.append("%s: the first NOTIFY says %r, expected \"SIP/2.0 "
                      "100 Trying\" at once (RFC 6665 4.2.1: a NOTIFY right "
                      "after accepting the subscription; refer.c and the "
                      "README promise 100 Trying, 180, then the final "
                      "status)\n  %s" % (r.name, frags[0], r.describe()))
    if any(s not in (100, 180) for s in statuses[:-1]):
        errors.append("%s: provisional sipfrags %r, expected only 100 and "
                      "180 before the final one" % (r.name, statuses))
    if 180 not in statuses:
        errors.append("%s: the target rang, but no NOTIFY said \"SIP/2.0 "
                      "180 Ringing\": %r" % (r.name, frags))
    if statuses != sorted(statuses):
        errors.append("%s: sipfrag statuses go down: %r"
                      % (r.name, statuses))


def check_in_dialog(errors, r):
    """The "in" REFER really was in the call's dialog."""
    msgs = r.msgs
    inv = sc.requests(msgs, "INVITE", "sent")
    ok = [m for m in sc.responses(msgs, cseq="INVITE", final=True)]
    if not inv or not ok or sc.status(ok[0]) != 200:
        errors.append("in: the controller's call did not get a 200:\n  %s"
                      % r.describe())
        return
    contact, _ = sc.name_addr(sc.header1(ok[0], "Contact"))
    ref = r.refer
    problems = []
    if ref.start != "REFER %s SIP/2.0" % contact:
        problems.append("Request-URI line %r, the 200's Contact is %s"
                        % (ref.start, contact))
    if sc.header1(ref, "Call-ID") != sc.header1(inv[0], "Call-ID"):
        problems.append("another Call-ID")
    if sc.tag_of(sc.header1(ref, "To")) != sc.tag_of(sc.header1(ok[0],
                                                                "To")):
        problems.append("To tag %r, the 200's is %r" % (
            sc.tag_of(sc.header1(ref, "To")),
            sc.tag_of(sc.header1(ok[0], "To"))))
    if r.refer_cseq != (cseq(inv[0])[0] + 1, "REFER"):
        problems.append("CSeq %r after the INVITE's %r"
                        % (r.refer_cseq, cseq(inv[0])))
    if problems:
        errors.append("in: the REFER was not in the call's dialog (test "
                      "scenario problem): %s" % "; ".join(problems))


def stack_notify_only(errors, r, why):
    """At most Sofia-SIP's own early NOTIFY (100 Trying), nothing with a
    final status; logged as the quirk it is."""
    frags = r.frags()
    extra = [f for f in frags if f is None or f[0] != 100]
    if len(frags) > 1 or extra or any(terminated(n) for n in r.notifies):
        errors.append("%s: NOTIFYs %r [%s], expected none, or only the "
                      "stack's one early \"SIP/2.0 100 Trying\" (%s)\n  %s"
                      % (r.name, frags, "; ".join(
                          ",".join(sc.header(n, "Subscription-State"))
                          for n in r.notifies), why, r.describe()))
    elif frags:
        log("%s: Sofia-SIP's own early NOTIFY %r [%s] came (%s); accepted "
            "as a stack quirk" % (r.name, frags[0], ",".join(
                sc.header(r.notifies[0], "Subscription-State")), why))


def participants(fd):
    return mc.show(fd, ROOM)["participants"]


def state_of(parts, uri):
    found = [p.get("state") for p in parts if p.get("uri") == uri]
    return found[0] if found else None


def main():
    sink = rtpep.RtpEndpoint(name="sink", max_duration=40).start()
    ctls, uases, targets = {}, {}, {}
    runs = []
    failed = True
    errors = []
    with harness.Focusd(auto_create=True) as fd:
        try:
            alice, _ = mc.join(fd, ROOM, sink, "alice", ALICE_MS)
            runs.append(alice)

            for name, (join, service, refer_to, sub, status) in \
                    CASES.items():
                if status is not None:
                    uases[name], targets[name] = start_uas(
                        fd, "tgt_" + name, sink.port, status)
                    runs.append(uases[name])
            t_refer = time.monotonic()
            for name, (join, service, refer_to, sub, status) in \
                    CASES.items():
                ctls[name] = sc.run_sipp(
                    fd, "uac_refer.xml", "ctl_" + name, service=service,
                    background=True, timeout=20,
                    keys={"refer_to": refer_to or targets[name],
                          "refer_sub": sub, "join": join,
                          "rtp_port": sink.port, "stay_ms": STAY_MS})
                runs.append(ctls[name])

            # -- the roster while the answered targets are in
            want = {targets[n]: n for n in ("out", "in", "nosub")}
            seen_busy = []

            def roster():
                parts = participants(fd)
                st = state_of(parts, targets["busy"])
                if st is not None and st not in seen_busy:
                    seen_busy.append(st)
                return all(state_of(parts, u) == "connected" for u in want)

            sc.wait_until(roster, ANSWER_MS / 1000.0 + CONNECT_S,
                          "the referred targets connected in %s" % ROOM,
                          lambda: [(p.get("uri"), p.get("state"))
                                   for p in participants(fd)])
            parts = participants(fd)
            log("%s %.2f s after the REFERs: %s" % (
                ROOM, time.monotonic() - t_refer,
                ", ".join("%s %s" % (p.get("uri"), p.get("state"))
                          for p in parts)))
            others = [p.get("uri") for p in parts
                      if p.get("uri") != targets["busy"]]
            check(len(others) == 5, "conference.show %s: %d participants "
                  "besides the busy target, expected 5 (alice, the in "
                  "controller and the three answered targets): %r"
                  % (ROOM, len(others), others))

            # -- the controllers' traces
            for name in ("out", "busy", "nosuch", "tel", "none"):
                sc.sipp_ok(ctls[name], "controller %s" % name)
            r = {n: Refer(n, sc.trace_of(ctls[n]))
                 for n in ("out", "busy", "nosuch", "tel", "none")}
            check_progress(errors, r["out"], (200, "OK"))
            check_progress(errors, r["busy"], (486, "Busy Here"))

            # busy: never connected, gone soon after the final NOTIFY
            t_final = time.monotonic()
            sc.wait_until(lambda: state_of(participants(fd),
                                           targets["busy"]) is None,
                          GONE_S, "the busy target's leg gone",
                          lambda: state_of(participants(fd),
                                           targets["busy"]))
            log("busy target: states seen %r, gone %.2f s after the "
                "controller ended" % (seen_busy,
                                      time.monotonic() - t_final))
            if "connected" in seen_busy:
                errors.append("busy: the target that answered 486 showed "
                              "as connected: %r" % seen_busy)

            # rejections
            for name, code, phrase_re in (
                    ("nosuch", 404, None),
                    ("tel", 400, re.compile(r"\bSIP\b.*\bURI\b", re.I)),
                    ("none", 400, None)):
                rr = r[name]
                if rr.final_status() != [code]:
                    errors.append("%s: final responses %r, expected %d\n  %s"
                                  % (name, [m.start for m in rr.finals],
                                     code, rr.describe()))
                    continue
                phrase = rr.finals[0].start.split(" ", 2)[2]
                log("%s: %s" % (name, rr.finals[0].start))
                if phrase_re and not phrase_re.search(phrase):
                    errors.append("%s: %d reason phrase %r does not say a "
                                  "SIP URI is needed" % (name, code,
                                                         phrase))
                stack_notify_only(errors, rr, "the REFER was turned down")
            check(sc.find_conf(fd, "nosuchroom") is None, "a REFER to "
                  "sip:nosuchroom@ created that conference: %r"
                  % sc.list_ids(fd))

            # nosub: waits IDLE_S after its last message
            sc.sipp_ok(ctls["nosub"], "controller nosub")
            rn = Refer("nosub", sc.trace_of(ctls["nosub"]))
            if rn.final_status() != [202]:
                errors.append("nosub: final responses %r, expected 202\n  %s"
                              % ([m.start for m in rn.finals],
                                 rn.describe()))
            else:
                rs = sc.header(rn.finals[0], "Refer-Sub")
                if [v.strip().lower() for v in rs] != ["false"]:
                    errors.append("nosub: the 202 has Refer-Sub %r, "
                                  "expected false (RFC 4488 4)" % rs)
                stack_notify_only(errors, rn, "even with Refer-Sub: false")
                log("nosub: 202 with Refer-Sub %r" % rs)
            # the quiet time must cover the target's answer, or the
            # "no NOTIFY" check proves nothing
            answered = [m.when for m in sc.trace_of(uases["nosub"])
                        if m.direction == "sent" and sc.status(m) == 200
                        and sc.cseq_method(m) == "INVITE"]
            check(answered, "nosub: the target never answered 200\n%s"
                  % uases["nosub"].report())
            check(rn.msgs[-1].when + IDLE_S > answered[0] + 0.5,
                  "nosub: the controller stopped listening (%.2f s after "
                  "its last message) before the target answered at "
                  "%+.2f s; the no-NOTIFY check would prove nothing"
                  % (IDLE_S, answered[0] - rn.msgs[-1].when))

            # in: the call ends STAY_MS after its REFER is done
            sc.sipp_ok(ctls["in"], "controller in")
            ri = Refer("in", sc.trace_of(ctls["in"]))
            check_in_dialog(errors, ri)
            check_progress(errors, ri, (200, "OK"))

            # -- everyone leaves
            for run in runs:
                sc.sipp_ok(run, "sipp %s" % run.name)
            sc.wait_until(lambda: ROOM not in sc.list_ids(fd), GONE_S,
                          "room1 ended after everyone left",
                          lambda: sc.list_ids(fd))
            st = fd.mgmt_result("stats")
            check(st.get("legs") == 0, "stats after the calls: legs=%r"
                  % st.get("legs"))
            for e in errors:
                log("FINDING: " + e)
            failed = False
        finally:
            sink.stop()
            for run in runs:
                if failed and run.poll() is None:
                    sys.stderr.write(run.report(lines=40) + "\n")
                run.kill()
    # after focusd's clean exit (status 0), so that is checked as well
    if errors:
        fail("%d finding(s):\n- %s" % (len(errors), "\n- ".join(errors)))


if __name__ == "__main__":
    harness.run_main(main)
