"""What a SIP user agent sees: the signalling tests read SIPp's message
trace with this module and check the headers and SDP in it.

What it does:
- parse_trace() splits a SIPp -trace_msg file into the messages sent and
  received (start line, headers in order, body), with their timestamps;
- small parsers for what the tests assert: name-addr headers (Contact),
  comma lists (Allow, Accept), SDP (session lines and m-line sections);
- check_focus_contact(): the focus's Contact on a dialog with a
  participant, <sip:ID@DOMAIN;gr=TOKEN>;isfocus, exactly, returning the
  leg's TOKEN; check_legs_differ(): different legs, different TOKENs;
- run_sipp()/sipp_ok(): harness.sipp() with the scenario taken from
  SIPP_SCENARIOS as an absolute path and SIPp's files kept in focusd's
  temp dir (kept on failure), and a failure message that carries SIPp's
  own report;
- G.711 A-law, written out here from the ITU-T reference (so a bug in
  focusd's codec cannot hide behind the same bug here), and AlawSender,
  which plays a PCMA tone from an rtpep.RtpEndpoint's own socket (so the
  source port is the one in the SDP, as symmetric RTP needs).

Design notes: the trace is the ground truth because it holds the bytes on
the wire, including retransmissions, which a scenario's own checks cannot
count. SIPp writes it line by line as messages go, so a test can read it
while the call is still up. SIPp drops the CR of CRLF in the trace; the
parser accepts either.

Only the Python standard library is used.
"""

import collections
import math
import os
import re
import struct
import threading
import time

import harness
from harness import check, fail

# ---------------------------------------------------------------- trace

SipMsg = collections.namedtuple(
    "SipMsg", "when direction start headers body raw")
"""One message of a SIPp trace.

when: the trace's timestamp (seconds since the epoch, float);
direction: "sent" or "received"; start: the start line;
headers: [(name, value)] in order, names as written; body: text."""

# "----- 2026-01-02 03:04:05.678901" opens each message; a bare "-----"
# line opens SIPp's notes ("Unexpected UDP message received:"), skipped.
_SEP_RE = re.compile(
    r"^-{20,}(?: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?))?[ \t]*$",
    re.M)
_DIR_RE = re.compile(r"^\w+ message (sent|received)\b")
_COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding",
            "l": "content-length", "c": "content-type", "f": "from",
            "s": "subject", "k": "supported", "t": "to", "v": "via"}


def _when(stamp):
    t, _, frac = stamp.partition(".")
    base = time.mktime(time.strptime(t, "%Y-%m-%d %H:%M:%S"))
    return base + (float("0." + frac) if frac else 0.0)


def parse_message(text, when=None, direction=None):
    """Parse one SIP message (text); returns a SipMsg."""
    text = text.replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return SipMsg(when=when, direction=direction, start=lines[0].strip(),
                  headers=headers, body=body, raw=text)


def parse_trace(text):
    """All messages of a SIPp message trace, in order."""
    msgs = []
    marks = list(_SEP_RE.finditer(text))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        chunk = text[m.end():end].lstrip("\n")
        first, _, rest = chunk.partition("\n")
        d = _DIR_RE.match(first)
        if d is None or m.group(1) is None:
            continue   # "Unexpected UDP message received" notes and such
        rest = rest.lstrip("\n")
        # a message ends with its body; the trace adds blank lines
        msg = parse_message(rest.rstrip("\n") + "\n", _when(m.group(1)),
                            d.group(1))
        if msg.body:
            msg = msg._replace(body=msg.body.rstrip("\n") + "\n")
        msgs.append(msg)
    return msgs


def header(msg, name):
    """Values of every header called name (case-insensitive; compact
    forms too), in order."""
    want = name.lower()
    out = []
    for n, v in msg.headers:
        n = n.lower()
        if _COMPACT.get(n, n) == want:
            out.append(v)
    return out


def header1(msg, name):
    """The one value of header name; fails if absent or repeated."""
    vals = header(msg, name)
    check(len(vals) == 1, "%s: expected one %s header, found %d: %r\n%s"
          % (describe(msg), name, len(vals), vals, msg.raw))
    return vals[0]


def status(msg):
    """Status code of a response, None for a request."""
    m = re.match(r"SIP/2\.0 (\d{3})\b", msg.start)
    return int(m.group(1)) if m else None


def method(msg):
    """Method of a request, None for a response."""
    if msg.start.startswith("SIP/2.0"):
        return None
    return msg.start.split(" ", 1)[0]


def cseq_method(msg):
    vals = header(msg, "CSeq")
    return vals[0].split()[-1].upper() if vals else None


def describe(msg):
    return "%s %r" % (msg.direction, msg.start)


def responses(msgs, cseq=None, final=None):
    """Received responses, optionally only those to CSeq method cseq and
    only final (>= 200) or provisional ones."""
    out = []
    for m in msgs:
        st = status(m)
        if m.direction != "received" or st is None:
            continue
        if cseq is not None and cseq_method(m) != cseq:
            continue
        if final is not None and (st >= 200) != final:
            continue
        out.append(m)
    return out


def requests(msgs, name, direction):
    return [m for m in msgs if m.direction == direction and
            method(m) == name]


def via_branch(msg):
    vals = header(msg, "Via")
    check(vals, "%s has no Via" % describe(msg))
    m = re.search(r";\s*branch=([^;,\s]+)", vals[0])
    check(m is not None, "%s: no branch in Via %r" % (describe(msg),
                                                     vals[0]))
    return m.group(1)


def tag_of(value):
    m = re.search(r";\s*tag=([^;,\s]+)", value)
    return m.group(1) if m else None


def name_addr(value):
    """'<sip:a@b>;p;q=1' -> ('sip:a@b', {'p': None, 'q': '1'}); also
    takes a bare URI (params after it are header params only if the URI
    is in <>)."""
    value = value.strip()
    m = re.match(r'^(?:"[^"]*"\s*|[^<"]*?)?<([^>]*)>(.*)$', value)
    if m:
        uri, rest = m.group(1), m.group(2)
    else:
        uri, _, rest = value.partition(";")
        rest = ";" + rest if rest else ""
    params = {}
    for p in rest.split(";"):
        p = p.strip()
        if not p:
            continue
        k, sep, v = p.partition("=")
        params[k.strip().lower()] = v.strip() if sep else None
    return uri.strip(), params


# The focus's Contact on every dialog with a participant (the 200 or 180
# to its INVITE, the focus's re-INVITEs and dial-out INVITEs) names that
# leg: <sip:ID@DOMAIN;gr=TOKEN>;isfocus, a GRUU-like URI whose TOKEN is
# chosen when the leg is made and kept for its whole life, moves to
# another conference included (only ID changes then).
FOCUS_LEG_TOKEN_RE = re.compile(r"l[0-9a-f]{16}")


def check_focus_contact(value, conf_uri, who, leg_token=None):
    """Check a Contact header value the focus sent on a participant's
    dialog: exactly <CONF-URI;gr=TOKEN>;isfocus. conf_uri: the
    conference's URI, "sip:ID@DOMAIN"; the Contact's URI must be it once
    its one gr parameter is taken out, TOKEN must match l[0-9a-f]{16},
    and ;isfocus (no value) must be the only header parameter. leg_token:
    the TOKEN this leg showed before, if any; it must not have changed.
    who: the message, for the failure text. Returns TOKEN."""
    what = "%s: Contact %r" % (who, value)
    m = re.match(r"^<([^<>]*)>((?:\s*;[^;]*)*)$", value.strip())
    check(m is not None, "%s, expected <%s;gr=TOKEN>;isfocus (a name-addr "
          "without display name)" % (what, conf_uri))
    uri, rest = m.group(1).strip(), m.group(2)
    hparams = [p.strip() for p in rest.split(";") if p.strip()]
    check(hparams == ["isfocus"], "%s: header parameters %r, expected "
          "exactly ;isfocus (no value, nothing else)" % (what, hparams))
    parts = uri.split(";")
    grs = [i for i, p in enumerate(parts[1:], 1)
           if p.partition("=")[0].strip().lower() == "gr"]
    check(len(grs) == 1, "%s: %d gr parameters in the URI, expected one "
          "(the leg's own URI, <%s;gr=TOKEN>)" % (what, len(grs), conf_uri))
    name, sep, token = parts[grs[0]].partition("=")
    check(name == "gr" and sep and FOCUS_LEG_TOKEN_RE.fullmatch(token),
          "%s: URI parameter %r, expected gr=TOKEN with TOKEN matching "
          "%s" % (what, parts[grs[0]], FOCUS_LEG_TOKEN_RE.pattern))
    bare = ";".join(parts[:grs[0]] + parts[grs[0] + 1:])
    check(bare == conf_uri, "%s: the URI without its gr is %r, expected "
          "the conference URI %r exactly" % (what, bare, conf_uri))
    if leg_token is not None:
        check(token == leg_token, "%s: gr=%s, but this leg showed gr=%s "
              "before (a leg keeps its gr for life, moves included)"
              % (what, token, leg_token))
    return token


def check_legs_differ(tokens, what):
    """tokens: {leg name: the gr TOKEN of its focus Contact}, one entry
    per leg; every leg must have a TOKEN of its own."""
    seen = {}
    for name, token in tokens.items():
        check(token not in seen, "%s: %s and %s, different legs, both have "
              "gr=%s in the focus's Contact (each leg has its own)"
              % (what, seen.get(token), name, token))
        seen[token] = name


def token_list(values):
    """Comma-separated tokens of one or more header values."""
    out = []
    for v in values:
        out += [t.strip() for t in v.split(",") if t.strip()]
    return out


# ---------------------------------------------------------------- SDP

def parse_sdp(body):
    """{'session': [lines], 'media': [{'type', 'port', 'proto', 'fmts',
    'line', 'lines'}]}; lines are "x=..." strings without line ends."""
    lines = [l.strip() for l in body.replace("\r\n", "\n").split("\n")
             if l.strip()]
    sdp = {"session": [], "media": []}
    for l in lines:
        if l.startswith("m="):
            parts = l[2:].split()
            check(len(parts) >= 3, "malformed m-line %r" % l)
            try:
                port = int(parts[1].split("/")[0])
            except ValueError:
                fail("m-line with a non-numeric port: %r" % l)
            sdp["media"].append({"type": parts[0], "port": port,
                                 "proto": parts[2], "fmts": parts[3:],
                                 "line": l, "lines": []})
        elif sdp["media"]:
            sdp["media"][-1]["lines"].append(l)
        else:
            sdp["session"].append(l)
    return sdp


def sdp_attrs(sdp, media, name):
    """Values of a=name in one media section, or at session level when
    the media section has none."""
    def get(lines):
        out = []
        for l in lines:
            if l == "a=" + name:
                out.append("")
            elif l.startswith("a=" + name + ":"):
                out.append(l[len(name) + 3:])
        return out
    return get(media["lines"]) or get(sdp["session"])


def sdp_direction(sdp, media):
    for d in ("sendrecv", "sendonly", "recvonly", "inactive"):
        if sdp_attrs(sdp, media, d):
            return d
    return "sendrecv"   # RFC 4566: the default


def sdp_connection(sdp, media):
    for l in media["lines"] + sdp["session"]:
        if l.startswith("c="):
            return l[2:]
    return None


# ---------------------------------------------------------------- SIPp

def run_sipp(fd, scenario, name, **kw):
    """harness.sipp() against focusd fd: the scenario from SIPP_SCENARIOS
    by absolute path (SIPp runs in its work dir), the work dir inside
    fd.tmpdir. Returns what harness.sipp() returns."""
    path = os.path.abspath(harness.scenario_path(scenario))
    check(os.path.exists(path), "missing SIPp scenario %s" % path)
    kw.setdefault("workdir", os.path.join(fd.tmpdir, "sipp-" + name))
    kw.setdefault("timeout", 15)
    return harness.sipp(path, fd.sip_target, name=name, **kw)


def sipp_ok(run_or_result, what):
    """Wait for a SippRun (or take a sipp() result) and insist on exit
    status 0; returns the parsed message trace."""
    if isinstance(run_or_result, harness.SippRun):
        rc, msgs, _ = run_or_result.wait()
        report = run_or_result.report()
    else:
        rc, msgs, errs = run_or_result
        report = "----- errors:\n%s\n----- messages:\n%s" % (errs, msgs)
    check(rc == 0, "%s: SIPp exited with %d, expected 0\n%s"
          % (what, rc, report))
    return parse_trace(msgs)


def trace_of(run):
    """The message trace of a SippRun so far (while it still runs)."""
    return parse_trace(run.messages())


def wait_response(run, cseq, timeout, what):
    """Poll a background SippRun's trace until a final response to cseq
    is in; returns it. Fails if SIPp exits first or time runs out."""
    def got():
        final = responses(trace_of(run), cseq=cseq, final=True)
        if final:
            return final[0]
        if run.poll() is not None:
            fail("%s: SIPp exited with %s before a final response to %s\n"
                 "%s" % (what, run.poll(), cseq, run.report()))
        return None
    return harness.wait_for(got, timeout, interval=0.02,
                            what="%s: final response to %s" % (what, cseq))


def wait_until(pred, timeout, what, state):
    """Poll pred() every 20 ms until true (its value is returned); after
    timeout seconds fail with what and state(), the state at that time."""
    return harness.wait_for(pred, timeout, what=what, state=state)


# ---------------------------------------------------------------- A-law

def _alaw_decode(byte):
    """ITU-T G.711 A-law byte -> 16-bit linear sample."""
    a = byte ^ 0x55
    seg = (a >> 4) & 0x07
    t = (a & 0x0F) << 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


ALAW_DECODE = [_alaw_decode(b) for b in range(256)]


def alaw_encode(sample):
    """16-bit linear sample -> A-law byte (ITU-T G.711)."""
    pcm = int(sample) >> 3          # 13-bit magnitude domain
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg_end = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
    seg = 0
    while seg < 8 and pcm > seg_end[seg]:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F
    return aval ^ mask


def alaw_decode_bytes(data):
    t = ALAW_DECODE
    return [t[b] for b in data]


PT_PCMA = 8


def alaw_audio(ep, start_s=None, end_s=None):
    """Decoded samples of the PCMA packets an rtpep.RtpEndpoint received
    in [start_s, end_s), in arrival order."""
    out = []
    for p in ep.packets(start_s, end_s):
        if p.pt == PT_PCMA:
            out.extend(alaw_decode_bytes(p.payload))
    return out


class AlawSender:
    """Plays a PCMA (PT 8) tone, 20 ms frames on an absolute schedule,
    from ep's own socket (rtpep.RtpEndpoint.send_raw) to dest. Bounded by
    max_duration; stop() ends it."""

    def __init__(self, ep, dest, freq, amplitude_dbfs=-12.0,
                 max_duration=30.0):
        amp = 32768.0 * 10.0 ** (amplitude_dbfs / 20.0)
        self.tone = bytes(alaw_encode(round(amp * math.sin(
            2 * math.pi * freq * n / 8000))) for n in range(8000))
        self.ep, self.dest = ep, (dest[0], int(dest[1]))
        self.max_duration = max_duration
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="alaw-" + ep.name)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(2.0)

    def _loop(self):
        ssrc, seq0, ts0 = 0x5EC0A1A7, 1000, 160000
        start = time.monotonic()
        k = 0
        while not self._stop.is_set() and \
                time.monotonic() - start < self.max_duration:
            delay = start + k * 0.020 - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            off = (k * 160) % 8000
            hdr = struct.pack("!BBHII", 0x80, (0x80 if k == 0 else 0) |
                              PT_PCMA, (seq0 + k) & 0xFFFF,
                              (ts0 + 160 * k) & 0xFFFFFFFF, ssrc)
            try:
                self.ep.send_raw(self.dest, hdr + self.tone[off:off + 160])
                self.sent += 1
            except OSError:
                self.errors += 1
            k += 1


# ---------------------------------------------------------------- mgmt

def find_conf(fd, conf_id):
    """conference.list entry for conf_id, or None."""
    listing = fd.mgmt_result("conference.list")
    confs = listing.get("conferences")
    check(isinstance(confs, list), "conference.list: no 'conferences' "
          "array in %r" % listing)
    for c in confs:
        if isinstance(c, dict) and c.get("id") == conf_id:
            return c
    return None


def list_ids(fd):
    listing = fd.mgmt_result("conference.list")
    confs = listing.get("conferences")
    check(isinstance(confs, list), "conference.list: no 'conferences' "
          "array in %r" % listing)
    return [c.get("id") for c in confs]
