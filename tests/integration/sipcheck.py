"""What a SIP user agent sees: the signalling tests read SIPp's message
trace with this module and check the headers and SDP in it.

What it does:
- parse_trace() splits a SIPp -trace_msg file into the messages sent and
  received (start line, headers in order, body), with their timestamps;
- small parsers for what the tests assert: name-addr headers (Contact),
  comma lists (Allow, Accept), SDP (session lines and m-line sections;
  audio_offer(): a request's SDP offer with its one m=audio);
- invite_ok(), distinct_requests(): the 200 to a call's INVITE, the
  requests received without their retransmissions (by Via branch);
- check_focus_contact(): the focus's Contact on a dialog with a
  participant, <sip:ID@DOMAIN;gr=TOKEN>;isfocus, exactly, returning the
  leg's TOKEN; check_legs_differ(): different legs, different TOKENs;
- check_refer(): the exact answers to a REFER sent outside any dialog
  (SIP digest after a 401; check_challenge() and check_authorization()
  check it in full when the test knows the credentials) and the NOTIFYs
  of its implicit subscription (Sofia-SIP's own "100 Trying" ones
  tolerated, the rest exactly the progress and final sipfrags expected,
  on the 202's dialog, answered 200); authorized(): the REFER that
  carried credentials;
- run_sipp()/sipp_ok(): harness.sipp() with the scenario taken from
  SIPP_SCENARIOS as an absolute path and SIPp's files kept in focusd's
  temp dir (kept on failure), and a failure message that carries SIPp's
  own report; start_uas(): a SIPp UAS, once it listens;
  hung_up_at_stop(): a call that focusd's SIGTERM ended (with a BYE);
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
import hashlib
import math
import os
import re
import socket
import struct
import threading
import time

import harness
from harness import check, fail, log

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


def distinct_requests(msgs, name, direction="received"):
    """Requests of method name, one per Via branch: retransmissions
    dropped."""
    out, seen = [], set()
    for m in requests(msgs, name, direction):
        b = via_branch(m)
        if b not in seen:
            seen.add(b)
            out.append(m)
    return out


def invite_ok(msgs, who):
    """The (first) 200 to the INVITE in a caller's trace; fails if there
    is none."""
    oks = [m for m in responses(msgs, cseq="INVITE", final=True)
           if status(m) == 200]
    check(oks, "%s: no 200 to the INVITE in the trace" % who)
    return oks[0]


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


def audio_offer(msg, who):
    """The SDP a request (a re-INVITE) offers: Content-Type
    application/sdp with exactly one m=audio line. Returns (parse_sdp()
    of the body, that m-line's section)."""
    ct = header1(msg, "Content-Type").split(";")[0].strip().lower()
    check(ct == "application/sdp", "%s: Content-Type %r, expected an SDP "
          "offer\n%s" % (who, ct, msg.raw))
    sdp = parse_sdp(msg.body)
    audio = [m for m in sdp["media"] if m["type"] == "audio"]
    check(len(audio) == 1, "%s: %d m=audio lines, expected 1\n%s"
          % (who, len(audio), msg.body))
    return sdp, audio[0]


# ---------------------------------------------------------------- REFER

REALM = harness.LOOPBACK      # the domain's host: focusd's default realm


def dedup(msgs):
    """Drop retransmissions: one message per (direction, Call-ID, CSeq,
    start line)."""
    seen, out = set(), []
    for m in msgs:
        key = (m.direction, tuple(header(m, "Call-ID")),
               tuple(header(m, "CSeq")), m.start)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def authorized(msgs):
    """The last REFER sent (the one with credentials)."""
    refers = [m for m in msgs if m.direction == "sent" and
              method(m) == "REFER"]
    check(refers, "no REFER in the controller's trace")
    return refers[-1]


def stack_trying(n):
    """Sofia-SIP's own NOTIFY: sipfrag 100 Trying, not terminated."""
    ss = (header(n, "Subscription-State") or [""])[0]
    return (n.body.strip().startswith("SIP/2.0 100 ") and
            not ss.lower().startswith("terminated"))


def sipfrag(n):
    """The status code of a sipfrag NOTIFY's body, or None."""
    m = re.match(r"SIP/2\.0 (\d{3})\b", n.body.strip())
    return int(m.group(1)) if m else None


def digest_params(value):
    """'Digest a="b", c=d' -> ('digest', {'a': 'b', 'c': 'd'})."""
    scheme, _, rest = value.strip().partition(" ")
    params = {}
    for m in re.finditer(r'([\w-]+)\s*=\s*("([^"]*)"|[^,\s]+)', rest):
        params[m.group(1).lower()] = (m.group(3) if m.group(3) is not None
                                      else m.group(2))
    return scheme.lower(), params


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def check_challenge(resp, who, realm=REALM):
    """A 401's one WWW-Authenticate: Digest with realm, a nonce,
    algorithm=MD5 and qop auth; returns its parameters."""
    vals = header(resp, "WWW-Authenticate")
    check(len(vals) == 1, "%s: 401 with %d WWW-Authenticate headers, "
          "expected 1\n%s" % (who, len(vals), resp.raw))
    scheme, p = digest_params(vals[0])
    check(scheme == "digest", "%s: challenge scheme %r, expected Digest"
          % (who, scheme))
    check(p.get("realm") == realm, "%s: challenge realm %r, expected %r"
          % (who, p.get("realm"), realm))
    check(p.get("nonce"), "%s: challenge without a nonce: %r"
          % (who, vals[0]))
    check((p.get("algorithm") or "").upper() == "MD5",
          "%s: challenge algorithm %r, expected MD5" % (who,
                                                        p.get("algorithm")))
    qops = [q.strip() for q in (p.get("qop") or "").split(",")]
    check("auth" in qops, "%s: challenge qop %r does not offer auth"
          % (who, p.get("qop")))
    return p


def check_authorization(req, challenge, user, password, who, realm=REALM):
    """The REFER sent after a 401: its digest is the one RFC 2617
    (qop=auth) gives for user/password and that challenge (the
    parameters check_challenge() returned)."""
    vals = header(req, "Authorization")
    check(len(vals) == 1, "%s: retried REFER with %d Authorization "
          "headers, expected 1\n%s" % (who, len(vals), req.raw))
    scheme, p = digest_params(vals[0])
    ruri = req.start.split()[1]
    check(scheme == "digest" and p.get("username") == user and
          p.get("realm") == realm and p.get("nonce") == challenge["nonce"]
          and p.get("uri") == ruri and p.get("qop") == "auth" and
          p.get("nc") and p.get("cnonce"),
          "%s: Authorization %r: expected Digest for %s, realm %s, the "
          "challenge's nonce, uri %s (the Request-URI), qop=auth, nc, "
          "cnonce" % (who, vals[0], user, realm, ruri))
    ha1 = md5("%s:%s:%s" % (user, realm, password))
    ha2 = md5("REFER:%s" % ruri)
    want = md5(":".join([ha1, p["nonce"], p["nc"], p["cnonce"], "auth",
                         ha2]))
    check(p.get("response") == want, "%s: Authorization response %r, the "
          "digest of %s's password is %s" % (who, p.get("response"), user,
                                             want))


def check_refer(msgs, codes, who, final=None, progress=(), credentials=None,
                realm=REALM):
    """The REFER's answers (msgs: the REFERer's trace) are exactly codes,
    in order; the first REFER carries no credentials. After a 401: with
    credentials (user, password) known, the REFERs are one dialog attempt
    (Call-ID, From tag), the 401 carries a whole challenge
    (check_challenge()) and the REFER after it the digest computed here
    (check_authorization()); without them, the 401 carries one Digest
    challenge for realm and the REFER after it Digest credentials. Every
    NOTIFY is a refer sipfrag we answered 200. Beyond Sofia's 100 Trying
    ones: none for a refused REFER (final None); for an accepted one,
    exactly the sipfrags progress (1xx, Subscription-State active) then
    final (terminated), in that order, on the 202's dialog, after the
    202. Returns (the 202, [those NOTIFYs]) or None."""
    msgs = dedup(msgs)
    refers = [m for m in msgs if m.direction == "sent" and
              method(m) == "REFER"]
    answers = responses(msgs, cseq="REFER", final=True)
    got = [status(m) for m in answers]
    trace = "\n".join("  %s %s" % (m.direction, m.start) for m in msgs)
    check(got == codes, "%s: REFER answered %r, expected %r\n%s"
          % (who, got, codes, trace))
    check(len(refers) == len(codes), "%s: %d REFERs sent for %d answers"
          % (who, len(refers), len(codes)))
    check(not header(refers[0], "Authorization"),
          "%s: the first REFER already carried credentials" % who)
    if credentials is not None:
        check(len({header1(r, "Call-ID") for r in refers}) == 1 and
              len({tag_of(header1(r, "From")) for r in refers}) == 1,
              "%s: the retried REFER is not the same Call-ID and From tag"
              % who)
    for i, a in enumerate(answers):
        if status(a) != 401:
            continue
        if credentials is not None:
            ch = check_challenge(a, "%s: answer %d" % (who, i + 1), realm)
            if i + 1 < len(refers):
                check_authorization(refers[i + 1], ch, credentials[0],
                                    credentials[1],
                                    "%s: REFER %d" % (who, i + 2), realm)
            continue
        ch = header(a, "WWW-Authenticate")
        check(len(ch) == 1 and ch[0].lower().startswith("digest ") and
              'realm="%s"' % realm in ch[0],
              "%s: 401 without one Digest challenge for realm %s: %r"
              % (who, realm, ch))
        if i + 1 < len(refers):
            au = header(refers[i + 1], "Authorization")
            check(len(au) == 1 and au[0].lower().startswith("digest "),
                  "%s: the REFER after the 401 has Authorization %r"
                  % (who, au))
    log("%s: %s" % (who, ", ".join(a.start for a in answers)))

    notifies = [m for m in msgs if m.direction == "received" and
                method(m) == "NOTIFY"]
    for n in notifies:
        ev = header(n, "Event") + header(n, "o")
        ct = header(n, "Content-Type")
        check(ev and ev[0].split(";")[0].strip().lower() == "refer" and
              ct and ct[0].split(";")[0].strip().lower() ==
              "message/sipfrag",
              "%s: NOTIFY with Event %r, Content-Type %r; expected refer, "
              "message/sipfrag\n%s" % (who, ev, ct, n.raw))
        cseq = header1(n, "CSeq")
        check(any(m.direction == "sent" and status(m) == 200 and
                  header(m, "CSeq") == [cseq] for m in msgs),
              "%s: NOTIFY CSeq %s was not answered 200\n%s"
              % (who, cseq, trace))
    others = [n for n in notifies if not stack_trying(n)]
    if final is None:
        check(not others, "%s: a refused REFER got NOTIFYs beyond the "
              "stack's 100 Trying:\n%s"
              % (who, "\n".join(n.raw for n in others)))
        return None
    want = list(progress) + [final]
    seen = [sipfrag(n) for n in others]
    check(seen == want, "%s: sipfrag NOTIFYs %r beyond the stack's 100 "
          "Trying, expected %r\n%s\n%s"
          % (who, seen, want, trace, "\n".join(n.raw for n in others)))
    accepted = answers[-1]
    for i, n in enumerate(others):
        ss = header1(n, "Subscription-State")
        last = i == len(others) - 1
        check(ss.lower().startswith("terminated" if last else "active"),
              "%s: NOTIFY %r has Subscription-State %r, expected %s\n%s"
              % (who, n.body.strip(), ss,
                 "terminated" if last else "active", n.raw))
        check(tag_of(header1(n, "From")) == tag_of(header1(accepted, "To")),
              "%s: NOTIFY %r (From %s) is not on the 202's dialog (To %s)"
              % (who, n.body.strip(), header1(n, "From"),
                 header1(accepted, "To")))
        check(n.when >= accepted.when, "%s: NOTIFY %r came before the 202"
              % (who, n.body.strip()))
    log("%s: NOTIFYs %s; the last %.3f s after the 202" % (who, ", ".join(
        "%r [%s]" % (n.body.strip(), header1(n, "Subscription-State"))
        for n in others), others[-1].when - accepted.when))
    return accepted, others


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


def port_taken(port):
    """True once something (a SIPp started in the background) has bound
    UDP port on loopback."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((harness.LOOPBACK, port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def start_uas(fd, name, scenario, keys, timeout=20, listen_s=5.0):
    """A SIPp UAS (scenario, keys) in the background as user name (its
    service); returns (SippRun, its URI sip:NAME@127.0.0.1:PORT) once it
    listens on its port. Fails if it exits first or does not listen
    within listen_s."""
    run = run_sipp(fd, scenario, name, service=name, background=True,
                   timeout=timeout, keys=keys)
    port = int(run.args[run.args.index("-p") + 1])
    harness.wait_for(lambda: port_taken(port) or run.poll() is not None,
                     listen_s, interval=0.01,
                     what="UAS %s listening on %d" % (name, port),
                     state=run.report)
    check(run.poll() is None, "UAS %s exited with %s before it listened\n%s"
          % (name, run.poll(), run.report()))
    return run, "sip:%s@%s:%d" % (name, harness.LOOPBACK, port)


def hung_up_at_stop(run, who, timeout=10):
    """After focusd's SIGTERM: a participant's SippRun ends (within
    timeout) with 0, having got and answered the focus's BYE."""
    rc, _, _ = run.wait(timeout=timeout)
    check(rc == 0, "%s: SIPp exited with %d, expected 0 (the focus's BYE "
          "at shutdown)\n%s" % (who, rc, run.report()))


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
