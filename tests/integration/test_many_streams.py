#!/usr/bin/env python3
"""An offer with many streams gets a well-formed answer, or 488 when
focusd cannot write one; never a truncated SDP.

The README's table: "no usable audio stream ..., or too many streams to
answer: 488", and "other m-lines rejected with port 0". Before this was
fixed, the rejected m-lines were collected in 256-byte buffers and cut
off silently: an offer with a dozen video streams got a 200 whose SDP had
a broken m-line (and lost the ones after it).

focusd runs with auto-create on. uac_invite_sdp_file.xml sends an INVITE
to room1 with the offer this test writes into SIPp's working directory:
  twelve  12 m=video lines (ports 40000, 40002, ..., payload types
          96..107, each with an a=rtpmap), then m=audio RTP/AVP 0 (PCMU).
          Either a 200 whose answer has exactly 13 m-lines, the 12 video
          streams rejected in place (m=video 0 RTP/AVP PT, PT the one
          offered for that stream) and then m=audio on a port in
          --rtp-ports, RTP/AVP 0 with a=rtpmap:0 PCMU/8000, sendrecv, the
          Contact exactly <sip:room1@127.0.0.1:PORT;gr=TOKEN>;isfocus
          (TOKEN l and 16 hex digits, naming the leg); or a 488 whose
          reason phrase mentions streams.
  eighty  80 m=video lines, then the same m=audio (about 5 KB, in one
          UDP datagram): 488, the reason phrase mentions streams.
Every SDP line of an answer must look like "x=value" and every m-line
match ^m=\\w+ \\d+ [A-Z/]+ \\S+ (nothing cut off or run together).
Exactly one final response comes to each INVITE. Afterwards focusd is
alive, stats counts each 488 as rejected, a plain PCMU call to room1
still gets 200 (with such a Contact, its TOKEN not twelve's), and room1
ends.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_many_streams.py (exit status 0 on pass).
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import rtpep  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
LINGER_MS = 600
M_LINE_RE = re.compile(r"^m=\w+ \d+ [A-Z/]+ \S+")
SDP_LINE_RE = re.compile(r"^[a-z]=\S")


def video_pt(i):
    return 96 + i % 32


def offer(n_video, audio_port):
    lines = ["v=0", "o=streams 53655765 1 IN IP4 127.0.0.1",
             "s=many streams", "c=IN IP4 127.0.0.1", "t=0 0"]
    for i in range(n_video):
        pt = video_pt(i)
        lines += ["m=video %d RTP/AVP %d" % (40000 + 2 * i, pt),
                  "a=rtpmap:%d %s/90000" % (pt, "H264" if i % 2 else "VP8"),
                  "a=sendrecv"]
    lines += ["m=audio %d RTP/AVP 0" % audio_port, "a=rtpmap:0 PCMU/8000",
              "a=ptime:20", "a=sendrecv"]
    return "".join(l + "\r\n" for l in lines)


def invite(fd, name, n_video, audio_port, transport="u1"):
    """One INVITE with n_video video streams and one audio stream; returns
    (the one final response, the trace)."""
    workdir = os.path.join(fd.tmpdir, "sipp-" + name)
    os.makedirs(workdir, exist_ok=True)
    body = offer(n_video, audio_port)
    with open(os.path.join(workdir, "offer.sdp"), "w", newline="") as f:
        f.write(body)
    log("%s: offer with %d m=video lines and one m=audio, %d bytes, over "
        "%s" % (name, n_video, len(body),
                "TCP" if transport.startswith("t") else "UDP"))
    rc, text, errs = sc.run_sipp(fd, "uac_invite_sdp_file.xml", name,
                                 service=ROOM, workdir=workdir,
                                 transport=transport,
                                 keys={"linger_ms": LINGER_MS})
    msgs = sc.parse_trace(text)
    invites = sc.requests(msgs, "INVITE", "sent")
    check(invites and sc.parse_sdp(invites[0].body)["media"],
          "%s: the INVITE in the trace carries no SDP (scenario or "
          "offer.sdp not found); SIPp exit %d\n%s\n%s"
          % (name, rc, errs, text[-3000:]))
    sent_m = len(sc.parse_sdp(invites[0].body)["media"])
    check(sent_m == n_video + 1, "%s: the INVITE on the wire has %d "
          "m-lines, expected %d (test bug)" % (name, sent_m, n_video + 1))
    final = sc.responses(msgs, cseq="INVITE", final=True)
    check(final, "%s: no final response to the INVITE (SIPp exit %d)\n"
          "%s\n%s" % (name, rc, errs, text[-3000:]))
    check(len(final) == 1, "%s: %d final responses %r, expected one (a "
          "retransmission means our ACK did not match)"
          % (name, len(final), [m.start for m in final]))
    check(rc == 0, "%s: SIPp exited with %d after %r\n%s"
          % (name, rc, final[0].start, errs))
    log("%s -> %s" % (name, final[0].start))
    return final[0], msgs


def check_wellformed(name, resp):
    """No line of the SDP is cut off or run into the next."""
    bad = [l for l in resp.body.replace("\r\n", "\n").split("\n")
           if l.strip() and not SDP_LINE_RE.match(l)]
    check(not bad, "%s: SDP lines that are not x=value: %r\n%s"
          % (name, bad, resp.body))
    mlines = [l for l in resp.body.replace("\r\n", "\n").split("\n")
              if l.startswith("m=")]
    bad = [l for l in mlines if not M_LINE_RE.match(l)]
    check(not bad, "%s: truncated or garbled m-lines %r\n%s"
          % (name, bad, resp.body))
    glued = [l for l in resp.body.split("\n") if l.count("m=") > 1]
    check(not glued, "%s: m-lines run together %r\n%s"
          % (name, glued, resp.body))


def check_488(name, resp):
    check(sc.status(resp) == 488, "%s: %r, expected 488" % (name,
                                                             resp.start))
    phrase = resp.start.split(" ", 2)[2] if resp.start.count(" ") >= 2 \
        else ""
    check(re.search(r"stream", phrase, re.I), "%s: 488 with reason phrase "
          "%r, expected one that says there are too many streams"
          % (name, phrase))


def room_uri(fd):
    return "sip:%s@%s" % (ROOM, fd.sip_target)


def check_answer(name, resp, fd, n_video):
    """A 200 to n_video video streams and one audio; returns the gr of
    its Contact."""
    check_wellformed(name, resp)
    token = sc.check_focus_contact(sc.header1(resp, "Contact"),
                                   room_uri(fd), "%s: the 200" % name)
    sdp = sc.parse_sdp(resp.body)
    ms = sdp["media"]
    listing = "\n  ".join(m["line"] for m in ms)
    check(len(ms) == n_video + 1, "%s: the answer has %d m-lines, expected "
          "%d (one per offered stream, in order, RFC 3264 6):\n  %s"
          % (name, len(ms), n_video + 1, listing))
    for i, m in enumerate(ms[:n_video]):
        check(m["type"] == "video" and m["port"] == 0 and
              m["proto"] == "RTP/AVP" and m["fmts"] == [str(video_pt(i))],
              "%s: m-line %d is %r, expected the offered video stream "
              "rejected in place: m=video 0 RTP/AVP %d\n  %s"
              % (name, i + 1, m["line"], video_pt(i), listing))
    audio = ms[-1]
    check(audio["type"] == "audio" and audio["proto"] == "RTP/AVP" and
          audio["fmts"] == ["0"], "%s: last m-line %r, expected m=audio "
          "PORT RTP/AVP 0" % (name, audio["line"]))
    check(fd.rtp.lo <= audio["port"] <= fd.rtp.hi, "%s: audio port %d "
          "outside --rtp-ports %d-%d" % (name, audio["port"], fd.rtp.lo,
                                         fd.rtp.hi))
    check(sc.sdp_attrs(sdp, audio, "rtpmap") == ["0 PCMU/8000"],
          "%s: audio rtpmap %r" % (name, sc.sdp_attrs(sdp, audio,
                                                       "rtpmap")))
    check(sc.sdp_direction(sdp, audio) == "sendrecv", "%s: audio direction "
          "%s, expected sendrecv" % (name, sc.sdp_direction(sdp, audio)))
    log("%s: answer has %d m-lines: %s ... %s" % (name, len(ms),
                                                  ms[0]["line"],
                                                  audio["line"]))
    return token


def main():
    with harness.Focusd(auto_create=True) as fd:
        sink = rtpep.RtpEndpoint(name="sink", max_duration=30).start()
        n488 = 0
        tokens = {}
        try:
            resp, _ = invite(fd, "twelve", 12, sink.port)
            if sc.status(resp) == 200:
                tokens["twelve"] = check_answer("twelve", resp, fd, 12)
            elif sc.status(resp) == 488:
                check_488("twelve", resp)
                n488 += 1
                log("twelve: 488 is allowed (too many streams to answer)")
            else:
                fail("twelve: %r, expected 200 with 13 m-lines or 488\n%s"
                     % (resp.start, resp.raw))

            resp, _ = invite(fd, "eighty", 80, sink.port)
            if sc.status(resp) == 200:
                check_wellformed("eighty", resp)
            check_488("eighty", resp)
            n488 += 1

            check(fd.alive(), "focusd died after the many-stream offers")
            st = fd.mgmt_result("stats")
            log("stats after the offers: rejected=%r legs=%r"
                % (st.get("rejected"), st.get("legs")))
            check(st.get("rejected") == n488, "stats: rejected=%r after %d "
                  "INVITEs answered 488" % (st.get("rejected"), n488))
            msgs = sc.sipp_ok(sc.run_sipp(
                fd, "uac_invite_expect.xml", "good-call", service=ROOM,
                keys={"offer": "pcmu", "expect": 200, "rtp_port": sink.port,
                      "linger_ms": 300}), "a plain PCMU call after the "
                "many-stream offers")
            final = sc.responses(msgs, cseq="INVITE", final=True)
            check([sc.status(m) for m in final] == [200], "plain call: "
                  "final responses %r" % [m.start for m in final])
            tokens["good-call"] = sc.check_focus_contact(
                sc.header1(final[0], "Contact"), room_uri(fd),
                "plain call: the 200")
            sc.check_legs_differ(tokens, "the 200s to twelve and the plain "
                                 "call")
            sc.wait_until(lambda: sc.find_conf(fd, ROOM) is None, 2.0,
                          "%s gone after the calls" % ROOM,
                          lambda: "conference.list %r"
                          % fd.mgmt_result("conference.list"))
        finally:
            sink.stop()


if __name__ == "__main__":
    harness.run_main(main)
