"""Calls that carry the test's own SDP offer: the integration tests whose
participants offer particular codecs, packet times or header extensions
write the offer here, join with uac_invite_sdp_file.xml, check the 200's
SDP answer and what focusd then sends on the answered port.

What it does:
- offer(): an SDP offer of one m=audio from a list of payload types
  (pt, rtpmap, fmtp or None), with any session- and media-level
  attributes, a=ptime:20 unless told otherwise, and a=sendrecv; CRLF line
  ends (uac_invite_sdp_file.xml sends offer.sdp as it is).
- answer(): the checks every such test makes of the INVITE's final
  response: a 200 with Content-Type application/sdp whose body has
  exactly one m-line, m=audio on a port in --rtp-ports, RTP/AVP with
  exactly the payload types expected; returns the parsed SDP and that
  m-line's section for the test's own checks. check_rtpmaps() and
  check_ptime(): the answer's a=rtpmap lines, exactly, and a=ptime:20.
- check_answer(): the whole answer to an offer of one codec (first):
  answer() with the codec's payload type only, its rtpmap, a=fmtp only
  for it, a=ptime:20, sendrecv, c=IN IP4 127.0.0.1; logged.
- start_call(): uac_invite_sdp_file.xml in the background with an offer
  in offer.sdp of its SIPp work dir; join(): that for an endpoint that is
  receiving, the wait for the final response (JOIN_TIMEOUT_S), the
  answer's check, then the endpoint sends to the answered port (on any
  failure the endpoint is stopped and SIPp killed).
- Calls: a test's calls into one conference, as a context manager:
  join() records each call's endpoint, SippRun, answered port, join time
  and planned BYE; span() and overlap() (when every call is up; the
  latter fails if call setup left too little of it); check_before_bye()
  (a window or a check that must end before the first BYE); show()
  (conference.show with one participant per call); finish() waits for
  every SIPp to exit 0 (mediacheck.finish_calls(): each endpoint stops
  sending at its call's end) and stops the endpoints; on the way out,
  pass or fail, every endpoint is stopped and every SIPp still running
  killed.
- stream_errors(): what every packet focusd sent an endpoint must share
  (only RTP, enough of it, from the answered port, V=2 and the answered
  payload type, one SSRC, seq +1 and a fixed timestamp step) as a list
  of problems, so a test reports them with its others, and the packets
  for its own checks; decoded_s(): how much audio the endpoint's codec
  decodes from them (a refused packet is a problem on that list).

Design notes: every check names the participant and carries the SDP it
judged; a helper that leaves a test's particular checks to the test
returns what they need instead of guessing them. Every wait has a
deadline.

Only the Python standard library is used.
"""

import os

import harness
import mediacheck as mc
import sipcheck as sc
from harness import check, log

SCENARIO = "uac_invite_sdp_file.xml"
JOIN_TIMEOUT_S = 5.0         # for the final response to the INVITE
SIPP_TIMEOUT_S = 20          # SIPp's own -timeout


# ---------------------------------------------------------------- offer

def offer(name, port, payloads, session, session_attrs=(), media_attrs=(),
          ptime=20):
    """An SDP offer (text, CRLF line ends): o= from name, s=session,
    c=IN IP4 127.0.0.1, then session_attrs (a= values without the "a=");
    one "m=audio PORT RTP/AVP" of the payload types of payloads, [(pt,
    rtpmap, fmtp or None)] in that order, each with its a=rtpmap and its
    a=fmtp if any; then media_attrs, a=ptime:PTIME (None: no a=ptime
    here) and a=sendrecv."""
    pts = " ".join(str(pt) for pt, _, _ in payloads)
    lines = ["v=0", "o=%s 4711 1 IN IP4 127.0.0.1" % name, "s=" + session,
             "c=IN IP4 127.0.0.1", "t=0 0"]
    lines += ["a=" + a for a in session_attrs]
    lines.append("m=audio %d RTP/AVP %s" % (port, pts))
    for pt, rtpmap, fmtp in payloads:
        lines.append("a=rtpmap:%d %s" % (pt, rtpmap))
        if fmtp:
            lines.append("a=fmtp:%d %s" % (pt, fmtp))
    lines += ["a=" + a for a in media_attrs]
    if ptime is not None:
        lines.append("a=ptime:%d" % ptime)
    lines.append("a=sendrecv")
    return "".join(l + "\r\n" for l in lines)


# ---------------------------------------------------------------- answer

def answer(fd, name, resp, pts, note=""):
    """The final response resp to name's INVITE: a 200 with Content-Type
    application/sdp whose SDP has exactly one m-line, m=audio, on a port
    in fd's --rtp-ports, RTP/AVP with exactly the payload types pts (in
    that order). note: said after the payload types when that fails.
    Returns (sipcheck.parse_sdp() of the body, the m-line's section)."""
    check(sc.status(resp) == 200, "%s: %r to the INVITE, expected 200\n%s"
          % (name, resp.start, resp.raw))
    ct = sc.header1(resp, "Content-Type").split(";")[0].strip().lower()
    check(ct == "application/sdp", "%s: the 200 has Content-Type %r, "
          "expected application/sdp" % (name, ct))
    sdp = sc.parse_sdp(resp.body)
    ms = sdp["media"]
    check(len(ms) == 1 and ms[0]["type"] == "audio", "%s: the answer has "
          "m-lines %r, expected the one m=audio offered\n%s"
          % (name, [m["line"] for m in ms], resp.body))
    m = ms[0]
    want = [str(pt) for pt in pts]
    check(m["proto"] == "RTP/AVP" and m["fmts"] == want,
          "%s: answered %r, expected RTP/AVP with payload type%s %s only%s"
          "\n%s" % (name, m["line"], "s" if len(want) > 1 else "",
                    " ".join(want), " " + note if note else "", resp.body))
    check(fd.rtp.lo <= m["port"] <= fd.rtp.hi, "%s: answered RTP port %d "
          "outside --rtp-ports %d-%d" % (name, m["port"], fd.rtp.lo,
                                         fd.rtp.hi))
    return sdp, m


def check_rtpmaps(name, resp, sdp, m, want):
    """The answer's a=rtpmap values for m are exactly want (["PT
    encoding/clock[/channels]"], in order; case-insensitive). Returns
    them."""
    rtpmaps = sc.sdp_attrs(sdp, m, "rtpmap")
    check([r.lower() for r in rtpmaps] == [w.lower() for w in want],
          "%s: a=rtpmap %r, expected %r\n%s" % (name, rtpmaps, list(want),
                                                resp.body))
    return rtpmaps


def check_ptime(name, resp, sdp, m, why=""):
    """The answer says a=ptime:20 (once), what focusd asks to receive;
    why: said after the expectation when it does not. Returns the
    values."""
    ptime = sc.sdp_attrs(sdp, m, "ptime")
    check(ptime == ["20"], "%s: the answer says a=ptime %r, expected "
          "['20']%s\n%s" % (name, ptime, " (%s)" % why if why else "",
                            resp.body))
    return ptime


def check_answer(fd, name, resp, codec, ptime_why=""):
    """The 200's SDP answer to an offer whose first payload type is
    codec's (an rtpcodecs.Codec): one m=audio on a port in --rtp-ports,
    RTP/AVP with codec's payload type only, its rtpmap, any a=fmtp only
    for it, a=ptime:20 (ptime_why: see check_ptime()), sendrecv, c=IN
    IP4 127.0.0.1. Returns focusd's RTP port."""
    sdp, m = answer(fd, name, resp, [codec.pt], "(%s, the first codec "
                    "offered)" % codec.rtpmap)
    rtpmaps = check_rtpmaps(name, resp, sdp, m,
                            ["%d %s" % (codec.pt, codec.rtpmap)])
    fmtps = sc.sdp_attrs(sdp, m, "fmtp")
    check(all(f.split(" ", 1)[0] == str(codec.pt) for f in fmtps),
          "%s: a=fmtp %r for a payload type not answered (%d)"
          % (name, fmtps, codec.pt))
    ptime = check_ptime(name, resp, sdp, m, ptime_why)
    d = sc.sdp_direction(sdp, m)
    check(d == "sendrecv", "%s: direction %s, expected sendrecv"
          % (name, d))
    conn = sc.sdp_connection(sdp, m)
    check(conn == "IN IP4 127.0.0.1", "%s: c=%r, expected IN IP4 "
          "127.0.0.1" % (name, conn))
    log("%s: answer %s | %s | ptime %s" % (name, m["line"],
                                           "; ".join(rtpmaps + fmtps),
                                           ptime[0]))
    return m["port"]


# ---------------------------------------------------------------- calls

def start_call(fd, name, sdp, room, linger_ms, timeout=SIPP_TIMEOUT_S):
    """uac_invite_sdp_file.xml as name in the background: the offer sdp
    (text) written to offer.sdp in its SIPp work dir (fd.tmpdir/sipp-NAME),
    the INVITE to room; after a 2xx the call stays linger_ms, then BYE.
    SIPp gives up after timeout seconds. Returns the SippRun."""
    workdir = os.path.join(fd.tmpdir, "sipp-" + name)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "offer.sdp"), "w", newline="") as f:
        f.write(sdp)
    return sc.run_sipp(fd, SCENARIO, name, service=room, workdir=workdir,
                       keys={"linger_ms": int(linger_ms)}, background=True,
                       timeout=timeout)


def join(fd, clock, room, ep, sdp, linger_ms, judge=None,
         timeout=SIPP_TIMEOUT_S):
    """start_call() as ep.name (ep: an rtpep.RtpEndpoint, receiving
    already) with offer sdp; wait at most JOIN_TIMEOUT_S for the final
    response to the INVITE; judge(resp) checks it and returns focusd's
    RTP port (default: check_answer() with ep.codec); then ep starts
    sending there. On any failure ep is stopped and SIPp killed. Returns
    (SippRun, focusd's port, join time on clock)."""
    run = start_call(fd, ep.name, sdp, room, linger_ms, timeout)
    try:
        resp = sc.wait_response(run, "INVITE", JOIN_TIMEOUT_S, ep.name)
        if judge is None:
            port = check_answer(fd, ep.name, resp, ep.codec)
        else:
            port = judge(resp)
    except BaseException:
        ep.stop()
        run.kill()
        raise
    ep.start_sending(("127.0.0.1", port))
    return run, port, clock.now()


class Calls:
    """A test's calls into conference room on focusd fd, in the order
    they were joined. eps {name: endpoint}, runs [SippRun], ports {name:
    focusd's port}, t_join and t_bye {name: join time, planned BYE (join
    time + linger)} on clock. As a context manager: on the way out, pass
    or fail, every endpoint is stopped and every SIPp still running
    killed."""

    def __init__(self, fd, clock, room):
        self.fd, self.clock, self.room = fd, clock, room
        self.names, self.runs = [], []
        self.eps, self.ports, self.t_join, self.t_bye = {}, {}, {}, {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def add(self, ep):
        """An endpoint started before its call (stopped on the way out
        even if its join never happens). Returns ep."""
        self.eps[ep.name] = ep
        return ep

    def join(self, ep, sdp, linger_ms, judge=None, **kw):
        """join() for ep, recorded. Returns (focusd's port, join time)."""
        run, port, t = join(self.fd, self.clock, self.room, ep, sdp,
                            linger_ms, judge, **kw)
        name = ep.name
        self.names.append(name)
        self.runs.append(run)
        self.eps[name], self.ports[name] = ep, port
        self.t_join[name], self.t_bye[name] = t, t + linger_ms / 1000.0
        return port, t

    def check_ports_differ(self):
        check(len(set(self.ports.values())) == len(self.ports), "the legs "
              "got RTP ports %r, expected different ones" % self.ports)

    def span(self):
        """(the last join, the first planned BYE): when every call is
        up."""
        return max(self.t_join.values()), min(self.t_bye.values())

    def overlap(self, min_s):
        """span(); fails unless its two ends are min_s apart (call setup
        too slow for the lingers)."""
        t_all, t_end = self.span()
        check(t_end - t_all >= min_s, "the calls overlap only %.2f s, "
              "expected >= %.2f (joins %r): call setup too slow"
              % (t_end - t_all, min_s, self.t_join))
        return t_all, t_end

    def check_before_bye(self, t, what, margin):
        """what, at t, comes more than margin seconds before the first
        planned BYE; fails (the run too slow for the lingers) if not."""
        t_end = self.span()[1]
        check(t < t_end - margin, "%s at %.2f s, too close to the first "
              "BYE at %.2f s (expected over %.1f s before it): this run "
              "was too slow for the lingers" % (what, t, t_end, margin))

    def show(self):
        """conference.show of the room; fails unless it lists exactly one
        participant per call joined."""
        show = mc.show(self.fd, self.room)
        parts = show["participants"]
        check(len(parts) == len(self.names), "conference.show %s: %d "
              "participants, expected %d: %r"
              % (self.room, len(parts), len(self.names), parts))
        return show

    def finish(self, timeout=30.0):
        """Every SIPp exits 0 (mediacheck.finish_calls(): each endpoint
        stops sending as its call ends); then every endpoint stops."""
        mc.finish_calls(self.runs, [self.eps[n] for n in self.names],
                        self.clock, timeout)
        for ep in self.eps.values():
            ep.stop()

    def close(self):
        for ep in self.eps.values():
            ep.stop()
        for run in self.runs:
            run.kill()


# ---------------------------------------------------------------- RTP

def stream_errors(ep, focus_port, pt, ts_step, min_packets, why="",
                  step_what=""):
    """What every packet focusd sent ep must share, as problems: no
    datagram that is not RTP; >= min_packets packets (why: said after
    the number); all from 127.0.0.1:focus_port, V=2, payload type pt, one
    SSRC; seq +1 and timestamp +ts_step (step_what: what that is, for
    the text) from each packet to the next. Returns ([problems], the
    packets, or None when too few to judge the rest: then only the first
    two are)."""
    name = ep.name
    errors = []
    pk = ep.packets()
    bad = ep.bad_datagrams()
    if bad:
        errors.append("%s got %d datagrams that are not RTP, first %r"
                      % (name, len(bad), bad[0][2][:32]))
    if len(pk) < min_packets:
        errors.append("%s got only %d RTP packets from focusd, expected "
                      ">= %d%s" % (name, len(pk), min_packets,
                                   " " + why if why else ""))
        return errors, None
    wrong_src = [p for p in pk if p.addr != ("127.0.0.1", focus_port)]
    if wrong_src:
        errors.append("%s: %d of %d packets not from 127.0.0.1:%d, e.g. "
                      "from %s:%d" % (name, len(wrong_src), len(pk),
                                      focus_port, wrong_src[0].addr[0],
                                      wrong_src[0].addr[1]))
    wrong = [p for p in pk if p.version != 2 or p.pt != pt]
    if wrong:
        errors.append("%s: %d of %d packets not V=2 PT=%d, e.g. V=%d PT=%d"
                      % (name, len(wrong), len(pk), pt, wrong[0].version,
                         wrong[0].pt))
    ssrcs = sorted({p.ssrc for p in pk})
    if len(ssrcs) != 1:
        errors.append("%s: %d SSRCs from focusd, expected one: %s"
                      % (name, len(ssrcs),
                         ", ".join("%08x" % s for s in ssrcs[:5])))
    jumps = []
    for a, b in zip(pk, pk[1:]):
        dseq = (b.seq - a.seq) & 0xFFFF
        dts = (b.ts - a.ts) & 0xFFFFFFFF
        if dseq != 1 or dts != ts_step:
            jumps.append("seq %d->%d ts +%d at %.3f s"
                         % (a.seq, b.seq, dts, b.t))
    if jumps:
        errors.append("%s: %d of %d steps are not seq +1 / ts +%d%s: %s"
                      % (name, len(jumps), len(pk) - 1, ts_step,
                         " (%s)" % step_what if step_what else "",
                         "; ".join(jumps[:6])))
    return errors, pk


def decoded_s(ep, errors):
    """Seconds of audio ep (an rtpcodecs.CodecEndpoint) decodes from
    everything focusd sent it; None, with the problem appended to errors,
    when its decoder refuses a packet."""
    try:
        return len(ep.audio()) / float(ep.codec.rate)
    except harness.TestFailure as e:
        errors.append("%s: cannot decode what focusd sent: %s"
                      % (ep.name, e))
        return None
