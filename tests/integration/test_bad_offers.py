#!/usr/bin/env python3
"""INVITEs focusd cannot take get the README's status, are ACKed
cleanly, are counted, and leave everything else as it was.

The README's table: SDP that does not parse -> 400; no usable audio
stream (codec, RTP/AVP, IPv4) -> 488; a body that is not application/sdp
-> 415; an unknown conference with auto-create off -> 404; other m-lines
than the audio one are rejected with port 0 in the answer.

focusd runs with auto-create off. A call to the factory (uac_join.xml)
makes a conference ID and stays in it (the anchor). Then, all at once,
uac_invite_expect.xml sends
    garbage body as application/sdp to ID     -> 400
    audio RTP/AVP 18 (G.729) only to ID       -> 488
    video only to ID                          -> 488
    audio RTP/SAVP (SRTP) only to ID          -> 488
    text/plain body to ID                     -> 415
    a good PCMU offer to sip:nosuchroom@      -> 404
    video first, then audio PCMA, to ID       -> 200
Every scenario checks its own status; from each message trace this test
also checks that exactly one final response came (a second one would be
focusd retransmitting: the ACK did not match), that the non-2xx ACK
carried the INVITE's branch and the response's To tag, and, for the 200,
the SDP answer: two m-lines, `m=video 0 ...` first, then audio RTP/AVP 8
with a=rtpmap:8 PCMA/8000, a port in --rtp-ports, a=ptime:20, sendrecv;
and the focus's Contact: exactly <sip:ID@127.0.0.1:PORT;gr=TOKEN>;isfocus,
TOKEN (l and 16 hex digits) naming the leg. The anchor's 200 and the
good call's below carry such a Contact too, and the three legs' TOKENs
differ.

Afterwards: mgmt stats has rejected == 6, the conference still has just
the anchor (nothing half-built, no nosuchroom), focusd is alive and a good
call (uac_join.xml) to ID still gets its 200.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_bad_offers.py (exit status 0 on pass).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import rtpep  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, fail, log  # noqa: E402

ANCHOR_MS = 6000          # the anchor stays this long in ID
LINGER_MS = 1000          # after each ACK: a retransmission comes at 500
ACK_GRACE_S = 0.1         # a response this soon after the ACK crossed it
# name, offer, target (None: the factory-made ID), expected status
CASES = [
    ("garbage", "garbage", None, 400),
    ("g729", "g729", None, 488),
    ("video", "video", None, 488),
    ("savp", "savp", None, 488),
    ("text", "text", None, 415),
    ("unknown-conf", "pcmu", "nosuchroom", 404),
    ("video-audio", "video_audio", None, 200),
]
N_REJECTED = sum(1 for c in CASES if c[3] >= 300)


def check_rejected(name, msgs, expect):
    """One non-2xx, ACKed in its transaction, not retransmitted."""
    invites = sc.requests(msgs, "INVITE", "sent")
    check(len(invites) >= 1, "%s: no INVITE in the trace" % name)
    final = sc.responses(msgs, cseq="INVITE", final=True)
    got = [sc.status(m) for m in final]
    check(got and got[0] == expect, "%s: final response %r, expected %d"
          % (name, [m.start for m in final], expect))
    acks = sc.requests(msgs, "ACK", "sent")
    check(acks, "%s: no ACK sent (scenario bug)" % name)
    ack = acks[0]
    # One that crossed our ACK on the wire is fair; one after it is not.
    late = [m for m in final if m.when > ack.when + ACK_GRACE_S]
    check(not late, "%s: focusd sent the %d again %.2f s after our ACK "
          "(%d final responses in all): it did not take the ACK as the "
          "end of the transaction\n%s"
          % (name, expect, late[0].when - ack.when if late else 0,
             len(final), "\n".join(m.raw for m in final)))
    check(sc.via_branch(ack) == sc.via_branch(invites[0]),
          "%s: ACK branch %s differs from the INVITE's %s (scenario bug)"
          % (name, sc.via_branch(ack), sc.via_branch(invites[0])))
    to_tag = sc.tag_of(sc.header1(final[0], "To"))
    check(to_tag and sc.tag_of(sc.header1(ack, "To")) == to_tag,
          "%s: ACK To %r does not carry the response's tag %r"
          % (name, sc.header1(ack, "To"), to_tag))
    if expect == 415:
        # RFC 3261 21.4.13: a 415 lists the formats the UAS accepts.
        accept = sc.header1(final[0], "Accept") or ""
        check("application/sdp" in accept.lower(),
              "%s: 415 without 'Accept: application/sdp' (got %r)"
              % (name, accept))
    log("%-12s -> %s (ACKed, no retransmission in %d ms)"
        % (name, final[0].start, LINGER_MS))


def check_two_mlines(name, msgs, fd, conf_id):
    final = sc.responses(msgs, cseq="INVITE", final=True)
    check([sc.status(m) for m in final] == [200], "%s: final responses "
          "%r, expected one 200" % (name, [m.start for m in final]))
    ok = final[0]
    token = sc.check_focus_contact(sc.header1(ok, "Contact"),
                                   "sip:%s@%s" % (conf_id, fd.sip_target),
                                   "%s: the 200" % name)
    ctype = sc.header1(ok, "Content-Type").split(";")[0].strip().lower()
    check(ctype == "application/sdp", "%s: Content-Type %r" % (name, ctype))
    sdp = sc.parse_sdp(ok.body)
    ms = sdp["media"]
    lines = "\n  ".join(m["line"] for m in ms)
    check(len(ms) == 2, "%s: answer has %d m-lines, expected 2 (one per "
          "offered stream, RFC 3264 6):\n  %s\n%s"
          % (name, len(ms), lines, ok.body))
    video, audio = ms
    check(video["type"] == "video" and video["port"] == 0,
          "%s: first m-line %r, expected the video stream rejected: "
          "m=video 0 ..." % (name, video["line"]))
    check(audio["type"] == "audio" and audio["proto"] == "RTP/AVP" and
          audio["fmts"] == ["8"], "%s: second m-line %r, expected m=audio "
          "PORT RTP/AVP 8" % (name, audio["line"]))
    check(fd.rtp.lo <= audio["port"] <= fd.rtp.hi, "%s: audio port %d is "
          "outside --rtp-ports %d-%d" % (name, audio["port"], fd.rtp.lo,
                                         fd.rtp.hi))
    rtpmap = sc.sdp_attrs(sdp, audio, "rtpmap")
    check(rtpmap == ["8 PCMA/8000"], "%s: audio rtpmap %r, expected "
          "['8 PCMA/8000']" % (name, rtpmap))
    ptime = sc.sdp_attrs(sdp, audio, "ptime")
    check(ptime == ["20"], "%s: audio ptime %r, expected ['20']"
          % (name, ptime))
    direction = sc.sdp_direction(sdp, audio)
    check(direction == "sendrecv", "%s: audio direction %s, expected "
          "sendrecv (the mirror of the offer's)" % (name, direction))
    log("%-12s -> 200, answer: %s" % (name, " | ".join(
        m["line"] for m in ms)))
    return token


def rejected(fd):
    st = fd.mgmt_result("stats")
    check(isinstance(st.get("rejected"), int), "stats: no integer "
          "'rejected': %r" % st)
    return st


def main():
    with harness.Focusd(auto_create=False) as fd:
        sink = rtpep.RtpEndpoint(name="sink", max_duration=40).start()
        runs = {}
        try:
            st = rejected(fd)
            check(st["rejected"] == 0, "stats before any call: rejected=%r"
                  % st["rejected"])

            # -- the anchor: a conference through the factory
            t_anchor = time.monotonic()
            runs["anchor"] = sc.run_sipp(
                fd, "uac_join.xml", "anchor", service="conf",
                background=True,
                keys={"rtp_port": sink.port, "pause_ms": ANCHOR_MS,
                      "port_file": "/dev/null"})
            ok = sc.wait_response(runs["anchor"], "INVITE", 5,
                                  "anchor INVITE to the factory")
            check(sc.status(ok) == 200, "anchor: factory INVITE answered "
                  "%r" % ok.start)
            ids = sc.list_ids(fd)
            check(len(ids) == 1, "conference.list after the anchor's 200: "
                  "%r, expected one conference" % ids)
            conf_id = ids[0]
            conf_uri = "sip:%s@%s" % (conf_id, fd.sip_target)
            tokens = {"anchor": sc.check_focus_contact(
                sc.header1(ok, "Contact"), conf_uri, "anchor: the 200")}
            log("anchor in conference %s" % conf_id)

            # -- every case at once
            for name, offer, target, expect in CASES:
                runs[name] = sc.run_sipp(
                    fd, "uac_invite_expect.xml", name,
                    service=target or conf_id, background=True,
                    keys={"offer": offer, "expect": expect,
                          "rtp_port": sink.port, "linger_ms": LINGER_MS})
            errors = []
            for name, offer, target, expect in CASES:
                run = runs.pop(name)
                rc, text, _ = run.wait()
                if rc != 0:
                    errors.append("%s: %s to %s, expected %d: SIPp exited "
                                  "with %d\n%s" % (name, offer,
                                                   target or conf_id,
                                                   expect, rc, run.report()))
                    continue
                msgs = sc.parse_trace(text)
                try:
                    if expect == 200:
                        tokens[name] = check_two_mlines(name, msgs, fd,
                                                        conf_id)
                    else:
                        check_rejected(name, msgs, expect)
                except harness.TestFailure as e:
                    errors.append(str(e))
            if errors:
                fail("%d of %d INVITEs went wrong:\n%s"
                     % (len(errors), len(CASES), "\n".join(errors)))

            # -- counted, nothing half-built, still serving
            check(fd.alive(), "focusd died during the bad offers")
            st = rejected(fd)
            check(st["rejected"] == N_REJECTED, "stats: rejected=%d after "
                  "%d rejected INVITEs (stats %r)"
                  % (st["rejected"], N_REJECTED, st))

            def only_anchor():
                conf = sc.find_conf(fd, conf_id)
                return conf is not None and conf.get("participants") == 1
            sc.wait_until(only_anchor, 2.0, "conference %s back to the "
                          "anchor alone after the video+audio call's BYE"
                          % conf_id, lambda: "conference.list entry %r"
                          % sc.find_conf(fd, conf_id))
            ids = sc.list_ids(fd)
            check(ids == [conf_id], "conference.list %r, expected only %s "
                  "(a rejected INVITE must not create anything)"
                  % (ids, conf_id))
            st = rejected(fd)
            check(st.get("conferences") == 1 and st.get("legs") == 1,
                  "stats: conferences=%r legs=%r, expected 1 and 1 (the "
                  "anchor)" % (st.get("conferences"), st.get("legs")))
            show = fd.mgmt_result("conference.show", {"id": conf_id})
            check(len(show.get("participants", [])) == 1, "conference.show "
                  "%s: %r, expected the anchor only" % (conf_id, show))

            msgs = sc.sipp_ok(sc.run_sipp(
                fd, "uac_join.xml", "good-call", service=conf_id,
                keys={"rtp_port": sink.port, "pause_ms": 300,
                      "port_file": "/dev/null"}), "good call after the "
                "bad offers")
            final = sc.responses(msgs, cseq="INVITE", final=True)
            check([sc.status(m) for m in final] == [200],
                  "good call: final responses %r" % [m.start for m in final])
            tokens["good-call"] = sc.check_focus_contact(
                sc.header1(final[0], "Contact"), conf_uri,
                "good call: the 200")
            sc.check_legs_differ(tokens, "the 200s to the anchor, the "
                                 "video+audio call and the good call")
            log("good call to %s -> %s" % (conf_id, final[0].start))
            st = rejected(fd)
            check(st["rejected"] == N_REJECTED, "stats: rejected=%d after "
                  "a good call, expected still %d"
                  % (st["rejected"], N_REJECTED))

            run = runs.pop("anchor")
            check(run.poll() is None, "the anchor call ended before the "
                  "checks were done (%.1f s): they are too slow for "
                  "ANCHOR_MS=%d" % (time.monotonic() - t_anchor, ANCHOR_MS))
            sc.sipp_ok(run, "anchor call")
            sc.wait_until(lambda: sc.list_ids(fd) == [], 2.0,
                          "conference %s gone after the anchor's BYE"
                          % conf_id,
                          lambda: "conference.list %r" % sc.list_ids(fd))
        finally:
            for run in runs.values():
                if run.poll() is None:
                    log("sipp %s still running; killing it" % run.name)
                run.kill()
                sys.stderr.write(run.report(lines=30) + "\n")
            sink.stop()


if __name__ == "__main__":
    harness.run_main(main)
