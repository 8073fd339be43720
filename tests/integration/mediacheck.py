"""Shared helpers for the integration tests that join calls and measure
what participants hear: start a SIPp call and wait for its SDP answer,
read SIPp's message trace as timed events, measure tone levels in a time
window and judge who hears whom (heard(), check_audio()), find a leg in
conference.show (legs(), leg(), leg_by_call_id()), wait for calls to end.

What it adds to harness.py and rtpep.py (which it only uses): the glue
that test_hold.py and test_rtp_garbage.py would otherwise each copy.

Design notes:
- Times are seconds since a test's `epoch` (time.monotonic() at its
  start), as in rtpep. SIPp's -trace_msg stamps messages with the wall
  clock; Clock maps wall time to the epoch with one offset taken at the
  start (a test lasts seconds, so clock slew does not matter).
- SIPp writes progress lines from a background shell (exec), so they can
  lag the message by a few milliseconds; tests use them to know *that*
  something happened and the trace to know *when*.
- Every wait has a deadline and fails with what was seen.
- TimedEndpoint stamps each datagram with the kernel's arrival time
  (SO_TIMESTAMPNS) instead of the moment Python got round to reading it.
  On a loaded two-core machine the test process can stall for a second;
  read-time stamps would then move packets out of the window they were
  sent in (a held participant would seem to receive RTP after the hold,
  a window would seem to lack audio). Kernel stamps on loopback are the
  moment focusd sent the packet.

Only the Python standard library is used.
"""

import os
import re
import socket
import struct
import time

import harness
import rtpep
from harness import check, fail, log

# Probes for the noise floor, away from the test tones and from the
# mu-law distortion lines of tones that repeat every 80 samples (multiples
# of 100 Hz): odd multiples of 50 Hz.
NOISE_PROBES_HZ = (1250, 2050, 2850, 3450)

# Test tones are sent at -12 dBFS. Heard: >= MIN_TONE_DBFS and MIN_SNR_DB
# over the noise probes; absent: under ABSENT_DBFS and ABSENT_UNDER_DB
# under the tones heard (G.711 distortion of the others reads about -60);
# a window must bring MIN_FILL of its samples.
MIN_TONE_DBFS = -30.0
MIN_SNR_DB = 20.0
ABSENT_DBFS = -45.0
ABSENT_UNDER_DB = 25.0
MIN_FILL = 0.8


def db(x):
    return "%6.1f dBFS" % x


def scenario(name):
    """Absolute path of a scenario under SIPP_SCENARIOS: SIPp runs in its
    own working directory, so a relative path would not resolve there."""
    p = os.path.abspath(harness.scenario_path(name))
    check(os.path.exists(p), "missing SIPp scenario %s" % p)
    return p


class Clock:
    """A test's time base: seconds since epoch (time.monotonic())."""

    def __init__(self):
        self.epoch = time.monotonic()
        self.wall_offset = time.time() - self.epoch

    def now(self):
        return time.monotonic() - self.epoch

    def sleep_until(self, t):
        d = self.epoch + t - time.monotonic()
        if d > 0:
            time.sleep(d)

    def from_wall(self, wall):
        return wall - self.wall_offset - self.epoch


# ---------------------------------------------------------------- RTP

# Linux's value on every architecture that uses asm-generic/socket.h,
# x86 included; Python's socket module does not export it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class TimedEndpoint(rtpep.RtpEndpoint):
    """An rtpep.RtpEndpoint whose received packets carry the kernel's
    arrival time (seconds since clock.epoch), not Python's read time.

    Only the receive loop differs; it fills the same records the base
    class keeps, so packets(), audio() and tone_power() work unchanged."""

    def __init__(self, clock, **kw):
        kw.setdefault("epoch", clock.epoch)
        super().__init__(**kw)
        self._clock = clock
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def _rx_loop(self):
        space = socket.CMSG_SPACE(16)
        while not self._expired():
            try:
                data, anc, _, addr = self.sock.recvmsg(4096, space)
            except socket.timeout:
                continue
            except OSError:
                break
            t = None
            for level, kind, cdata in anc:
                if (level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS
                        and len(cdata) >= 16):
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    t = self._clock.from_wall(sec + nsec * 1e-9)
            if t is None:
                t = self.now()
            p = rtpep.parse_rtp(data)
            with self._lock:
                if p is None:
                    self._rx_bad.append((t, addr, data))
                else:
                    self._rx.append(rtpep.RtpPacket(t=t, addr=addr,
                                                    size=len(data), **p))


# ---------------------------------------------------------------- SIPp

def read_lines(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    # only complete lines: the writer may be half way through one
    return text.split("\n")[:-1]


def wait_line(run, path, prefix, timeout, what):
    """Wait for a complete line starting with prefix in path (written by
    SIPp's exec); returns its words after the prefix. Fails early if SIPp
    exits first."""
    deadline = time.monotonic() + timeout
    while True:
        for line in read_lines(path):
            words = line.split()
            if words and words[0] == prefix:
                return words[1:]
        if run.poll() is not None:
            # one last look: the exec may have finished just now
            time.sleep(0.05)
            for line in read_lines(path):
                words = line.split()
                if words and words[0] == prefix:
                    return words[1:]
            fail("sipp %s exited with %d before %s\n%s"
                 % (run.name, run.poll(), what, run.report()))
        if time.monotonic() >= deadline:
            fail("%s: not seen within %.1f s (file %s has %r)\n%s"
                 % (what, timeout, path, read_lines(path), run.report()))
        time.sleep(0.01)


def answered_port(fd, text, who):
    check(text.isdigit() and 0 < int(text) < 65536,
          "%s: m=audio port in the answer is %r" % (who, text))
    port = int(text)
    check(fd.rtp.lo <= port <= fd.rtp.hi,
          "%s: answered RTP port %d is outside --rtp-ports %d-%d"
          % (who, port, fd.rtp.lo, fd.rtp.hi))
    return port


def wait_answered_port(fd, run, port_file, timeout=5.0):
    """The answered RTP port a SIPp call writes to port_file once its 200
    is in (checked as answered_port does); fails if SIPp exits first, or
    after timeout."""
    def got():
        lines = read_lines(port_file)
        if lines and lines[0].strip():
            return lines[0].strip()
        if run.poll() is not None:
            fail("sipp %s exited with %d before its 200 OK was in\n%s"
                 % (run.name, run.poll(), run.report()))
        return None
    text = harness.wait_for(got, timeout, interval=0.01,
                            what="SDP answer for %s" % run.name)
    return answered_port(fd, text, run.name)


def join(fd, room, ep, name, pause_ms, timeout=5.0):
    """Start a uac_join call for endpoint ep (which must be receiving) and
    wait for the SDP answer; returns (SippRun, focusd's RTP port). The
    endpoint does not start sending: the caller decides."""
    port_file = os.path.join(fd.tmpdir, name + ".port")
    run = harness.sipp(scenario("uac_join.xml"), fd.sip_target,
                       service=room,
                       keys={"rtp_port": ep.port, "pause_ms": pause_ms,
                             "port_file": port_file},
                       sets={"from_user": name}, background=True,
                       workdir=os.path.join(fd.tmpdir, "sipp-" + name),
                       name=name)
    return run, wait_answered_port(fd, run, port_file, timeout)


_TRACE_HDR = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d+)\s*$")


def trace_events(text, clock):
    """SIPp -trace_msg text -> list of dicts, in order:
    {t (epoch seconds), dir ('sent'|'recv'), first (first line),
     cseq (number), method (CSeq method), status (int or None)}."""
    events = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _TRACE_HDR.match(lines[i])
        if not m:
            i += 1
            continue
        wall = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"))
        wall += float("0." + m.group(2))
        j = i + 1
        body = []
        while j < len(lines) and not _TRACE_HDR.match(lines[j]):
            body.append(lines[j])
            j += 1
        i = j
        kind = body[0] if body else ""
        if "sent" in kind:
            d = "sent"
        elif "received" in kind:
            d = "recv"
        else:
            continue
        msg = [l for l in body[1:] if l.strip()]
        if not msg:
            continue
        first = msg[0].strip()
        cseq, method = None, None
        for l in msg:
            mm = re.match(r"^\s*CSeq\s*:\s*(\d+)\s+(\S+)", l, re.I)
            if mm:
                cseq, method = int(mm.group(1)), mm.group(2).upper()
                break
        status = None
        ms = re.match(r"^SIP/2\.0 (\d{3})", first)
        if ms:
            status = int(ms.group(1))
        events.append(dict(t=clock.from_wall(wall), dir=d, first=first,
                           cseq=cseq, method=method, status=status))
    return events


def trace_time(events, who, dir, method, cseq, status=None):
    """Epoch time of the first event that matches; fails if none."""
    for e in events:
        if (e["dir"] == dir and e["method"] == method and e["cseq"] == cseq
                and e["status"] == status):
            return e["t"]
    fail("%s: no %s %s (CSeq %d%s) in the SIPp trace; trace has: %s"
         % (who, dir, method, cseq,
            "" if status is None else ", status %d" % status,
            "; ".join("%.3f %s %s" % (e["t"], e["dir"], e["first"])
                      for e in events)))


def finish_calls(runs, eps, clock, timeout=30.0):
    """Wait for every SIPp run to exit; each endpoint stops sending as
    soon as its call ends (as a phone would). Returns the exit statuses;
    fails if any is not 0."""
    rcs = [None] * len(runs)
    deadline = time.monotonic() + timeout
    while None in rcs and time.monotonic() < deadline:
        for i, run in enumerate(runs):
            if rcs[i] is None and run.poll() is not None:
                rcs[i] = run.wait()[0]
                if eps[i] is not None:
                    eps[i].stop_sending()
                log("sipp %s exited with %d at %.2f s"
                    % (run.name, rcs[i], clock.now()))
        time.sleep(0.02)
    for i, run in enumerate(runs):
        if rcs[i] is None:
            rcs[i] = run.wait()[0]
    for i, run in enumerate(runs):
        check(rcs[i] == 0, "sipp %s exited with %d, expected 0\n%s"
              % (run.name, rcs[i], run.report()))
    return rcs


# ---------------------------------------------------------------- audio

def levels(ep, freqs, w0, w1):
    """What ep heard in [w0, w1): ({freq: dBFS}, noise dBFS, fill), fill
    being the share of the window's samples that arrived."""
    samples = ep.audio(w0, w1)
    want = max(1.0, (w1 - w0) * rtpep.RATE)
    lv = {f: rtpep.goertzel_dbfs(samples, f) for f in freqs}
    noise = max(rtpep.goertzel_dbfs(samples, f) for f in NOISE_PROBES_HZ)
    return lv, noise, len(samples) / want


def describe(name, lv, noise, fill):
    return "%-6s %s | noise %s | %3.0f%% of samples" % (
        name, "  ".join("%4d Hz %s" % (f, db(v))
                        for f, v in sorted(lv.items())),
        db(noise), 100 * fill)


def heard(lv, noise, f):
    """Is tone f heard in levels() lv: at least MIN_TONE_DBFS and
    MIN_SNR_DB over the noise?"""
    return lv[f] >= MIN_TONE_DBFS and lv[f] - noise >= MIN_SNR_DB


def check_audio(eps, freq, w0, w1, heard_by, label, errors, own=True):
    """Who hears whom in [w0, w1). eps: {name: endpoint}; freq: {name: its
    tone}; heard_by: {listener: [names it must hear]}, the listeners
    measured. Each must hear those (heard()) and, if it must hear any,
    have MIN_FILL of the window's samples; every other tone of freq
    (own: the listener's own too) must be under ABSENT_DBFS and
    ABSENT_UNDER_DB under the tones it hears. Problems are appended to
    errors."""
    freqs = sorted(freq.values())
    check(w1 - w0 >= 0.5, "%s: window [%.2f, %.2f) too short"
          % (label, w0, w1))
    for name, want in sorted(heard_by.items()):
        ep = eps[name]
        lv, noise, fill = levels(ep, freqs, w0, w1)
        log("%s [%.2f, %.2f) %s" % (label, w0, w1,
                                   describe(name, lv, noise, fill)))
        if want and fill < MIN_FILL:
            errors.append("%s: %s got only %.0f%% of the window's samples"
                          % (label, name, 100 * fill))
        for o in want:
            f = freq[o]
            if not heard(lv, noise, f):
                errors.append("%s: %s does not hear %s: %d Hz at %.1f dBFS "
                              "(noise %.1f); expected >= %.0f and %.0f dB "
                              "over the noise" % (label, name, o, f, lv[f],
                                                   noise, MIN_TONE_DBFS,
                                                   MIN_SNR_DB))
        loud = min([lv[freq[o]] for o in want] or [0.0])
        for o in freq:
            if o in want or (o == name and not own):
                continue
            f = freq[o]
            if lv[f] > ABSENT_DBFS or lv[f] > loud - ABSENT_UNDER_DB:
                errors.append("%s: %s hears %s: %d Hz at %.1f dBFS (must "
                              "be under %.0f and %.0f dB under the tones "
                              "it should hear)"
                              % (label, name, o, f, lv[f], ABSENT_DBFS,
                                 ABSENT_UNDER_DB))


# ---------------------------------------------------------------- mgmt

def port_of(hostport):
    try:
        return int(str(hostport).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def show(fd, room):
    """conference.show of room (fails if there is no such conference)."""
    res = fd.mgmt_result("conference.show", {"id": room})
    parts = res.get("participants")
    check(isinstance(parts, list), "conference.show %s: no participants "
          "array in %r" % (room, res))
    return res


def legs(fd, room):
    """conference.show participants of room ([] if there is no such
    conference, e.g. it is gone)."""
    r = fd.mgmt("conference.show", {"id": room})
    if "result" not in r:
        return []
    parts = r["result"].get("participants")
    check(isinstance(parts, list), "conference.show %s: no participants "
          "array in %r" % (room, r["result"]))
    return parts


def leg_by_call_id(parts, call_id):
    """The participant (of a conference.show list) with that call_id, or
    None."""
    for p in parts:
        if p.get("call_id") == call_id:
            return p
    return None


def leg(show_result, local_port):
    """The participant whose local_rtp port is local_port (focusd's port
    from the SDP answer); fails if there is none."""
    for p in show_result.get("participants", []):
        if port_of(p.get("local_rtp")) == local_port:
            return p
    fail("conference.show %s: no participant with local_rtp port %d: %r"
         % (show_result.get("id"), local_port,
            [p.get("local_rtp") for p in show_result.get("participants",
                                                          [])]))


def rtp(p):
    r = p.get("rtp")
    check(isinstance(r, dict), "conference.show: participant %s has no "
          "rtp counters: %r" % (p.get("uri"), r))
    return r


def io_stats(fd):
    st = fd.mgmt_result("stats")
    io = st.get("io")
    check(isinstance(io, dict), "stats: no io object in %r" % st)
    for k in ("rx_packets", "rx_no_flow", "rx_malformed"):
        check(isinstance(io.get(k), int), "stats: io.%s is not an integer: "
              "%r" % (k, io))
    return io
