"""Helpers for the tests of feature referral that acts on more than one
call (draft-audet-sipping-feature-ref: SingleStepTransfer, SeparateCalls,
ConferenceCalls), test_feature_transfer.py and test_feature_calls.py.

What it does:
- Users: the --users file of those tests (alice, mod, eve; realm the
  domain's host) and focusd's arguments for it (--moderators mod);
- Party: one participant's call, made by a SIPp scenario that joins a
  conference and answers the focus's requests (uac_join_answer_reinvites,
  uac_transferee, uac_transferee_refuse: they share the event-file lines
  "answer PORT", "reinvite DIR", "ack", "refer", "bye"), with its dialog
  read from the message trace: Call-ID, both tags, its Contact, the
  focus's Contact checked as <sip:ROOM@DOMAIN;gr=TOKEN>;isfocus and the
  leg's TOKEN; what a controller puts in Target-Dialog, in a
  ConferenceCalls URN (urn_param(): percent-encoded), or as the leg's URI;
- refer(): a controller's REFER with uac_feature_refer_uri.xml, to any
  Request-URI (a conference's, or a leg's own), with SIP digest when
  challenged;
- check_refer(): the exact answers to such a REFER and the NOTIFYs of its
  implicit subscription (Sofia-SIP's own "100 Trying" ones tolerated, the
  rest exactly the progress and final sipfrags expected, on the 202's
  dialog, answered 200);
- check_reinvite(): a re-INVITE the focus sent a Party, in its dialog,
  with the isfocus Contact of the conference expected and the leg's own
  TOKEN, offering the RTP port of the first answer, answered and ACKed;
- check_audio(): who hears whom in a window (mediacheck levels);
- tcp_listening(): whether a TCP port is in LISTEN state (/proc/net/tcp),
  to start a SIPp 3PCC twin before the instance that connects to it
  without connecting to it ourselves.

Design notes: SIPp's message trace is the ground truth (it holds every
byte on the wire, retransmissions included); every wait has a deadline
and fails saying what it saw. Only the Python standard library is used.
"""

import os
import re
import shutil
import socket
import tempfile

import harness
import mediacheck as mc
import rtpep
import sipcheck
from harness import check, log

REALM = harness.LOOPBACK          # the domain's host: the default realm
PASSWORDS = {"alice": "alice-Secret1", "mod": "mod-Secret3",
             "eve": "eve-Secret4"}
MODERATORS = "mod"
REFER_SCENARIO = "uac_feature_refer_uri.xml"
REFER_TIMEOUT_S = 12
JOIN_TIMEOUT_S = 5.0
WAIT_S = 5.0

# Heard: >= -30 dBFS and 20 dB over the noise probes; absent: under -45
# dBFS and 25 dB under the tones heard (as test_feature_referral.py).
MIN_TONE_DBFS = -30.0
MIN_SNR_DB = 20.0
ABSENT_DBFS = -45.0
ABSENT_UNDER_DB = 25.0
MIN_FILL = 0.8


# ---------------------------------------------------------------- users

class Users:
    """The --users file (user:password:realm lines) in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="focusd-it-feat-")
        self.path = os.path.join(self.dir, "users")
        with open(self.path, "w") as f:
            for u, pw in PASSWORDS.items():
                f.write("%s:%s:%s\n" % (u, pw, REALM))

    def focusd_args(self):
        return ["--users", self.path, "--moderators", MODERATORS]

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- calls

def conf_uri(fd, room):
    """A conference's URI as focusd names it: sip:ID@DOMAIN (the domain
    is the listen address here)."""
    return "sip:%s@%s" % (room, fd.sip_target)


def sink_socket():
    """A bound UDP socket nobody reads: an RTP port to offer when what
    the focus sends there does not matter."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((harness.LOOPBACK, 0))
    return s


def urn_escape(value):
    """Percent-encode a value for a feature URN parameter: ';' (the next
    parameter), '?', '#', '/', '%' and anything outside RFC 2141's
    characters; '@', ':', '-', '.' and the like stay."""
    out = []
    for ch in value:
        if re.match(r"[A-Za-z0-9()+,\-.:=@$_!*']", ch):
            out.append(ch)
        else:
            out.extend("%%%02X" % b for b in ch.encode("utf-8"))
    return "".join(out)


class Party:
    """One participant: a SIPp scenario (background) that joins room and
    answers the focus; ep: an RTP endpoint (rtpep/mediacheck) whose port
    is offered, or None for a sink socket. freq: the endpoint starts
    playing its tone to focusd's port once the 200 is in (None: silent).
    sipp_args: extra SIPp arguments (-3pcc, -cid_str)."""

    def __init__(self, fd, name, room, scenario, ep=None, freq=None,
                 sipp_args=(), timeout=40, from_user=None):
        self.fd, self.name, self.room = fd, name, room
        self.ep = ep
        self.sink = None if ep is not None else sink_socket()
        port = ep.port if ep is not None else self.sink.getsockname()[1]
        self.events = os.path.join(fd.tmpdir, name + ".events")
        self.run = sipcheck.run_sipp(
            fd, scenario, name, service=room,
            keys={"rtp_port": port, "event_file": self.events},
            sets={"from_user": from_user or name}, background=True,
            timeout=timeout, extra_args=list(sipp_args))
        words = mc.wait_line(self.run, self.events, "answer",
                             JOIN_TIMEOUT_S, "%s: the 200 OK with the SDP "
                             "answer" % name)
        self.focus_port = mc.answered_port(fd, words[0] if words else "",
                                           name)
        if ep is not None and freq is not None:
            ep.start_sending((harness.LOOPBACK, self.focus_port))
        msgs = self.msgs()
        self.invite = sipcheck.requests(msgs, "INVITE", "sent")[0]
        oks = [m for m in sipcheck.responses(msgs, cseq="INVITE",
                                             final=True)
               if sipcheck.status(m) == 200]
        check(oks, "%s: the 'answer' line is in but no 200 in the trace"
              % name)
        self.ok = oks[0]
        self.call_id = sipcheck.header1(self.invite, "Call-ID")
        self.tag = sipcheck.tag_of(sipcheck.header1(self.invite, "From"))
        self.focus_tag = sipcheck.tag_of(sipcheck.header1(self.ok, "To"))
        self.contact = sipcheck.name_addr(
            sipcheck.header1(self.invite, "Contact"))[0]
        check(self.tag and self.focus_tag, "%s: dialog tags %r / %r"
              % (name, self.tag, self.focus_tag))
        self.token = sipcheck.check_focus_contact(
            sipcheck.header1(self.ok, "Contact"), conf_uri(fd, room),
            "%s: the 200 to the INVITE" % name)
        log("%s in %s: Call-ID %s, tags %s (ours) / %s (focus), gr=%s, "
            "focusd RTP :%d" % (name, room, self.call_id, self.tag,
                                self.focus_tag, self.token,
                                self.focus_port))

    # -- names of the dialog

    def target_dialog(self, focus_first=True):
        """The Target-Dialog value (RFC 4538) naming this call; the
        focus's tag is its local-tag."""
        t1, t2 = ((self.focus_tag, self.tag) if focus_first
                  else (self.tag, self.focus_tag))
        return "%s;local-tag=%s;remote-tag=%s" % (self.call_id, t1, t2)

    def urn_dialog(self):
        """The ConferenceCalls parameters naming this call by its dialog
        identifiers, percent-encoded for the URN."""
        return "call-id=%s;local-tag=%s;remote-tag=%s" % (
            urn_escape(self.call_id), urn_escape(self.focus_tag),
            urn_escape(self.tag))

    def leg_uri(self, room=None):
        """The leg's own URI, the focus's Contact on this dialog."""
        return "%s;gr=%s" % (conf_uri(self.fd, room or self.room),
                             self.token)

    # -- what happened

    def msgs(self):
        return sipcheck.trace_of(self.run)

    def received(self, method):
        """Distinct requests of that method received (retransmissions
        dropped)."""
        out, seen = [], set()
        for m in sipcheck.requests(self.msgs(), method, "received"):
            b = sipcheck.via_branch(m)
            if b not in seen:
                seen.add(b)
                out.append(m)
        return out

    def reinvites(self):
        return self.received("INVITE")

    def byes(self):
        return self.received("BYE")

    def refers(self):
        return self.received("REFER")

    def sent_requests(self, method):
        out, seen = [], set()
        for m in sipcheck.requests(self.msgs(), method, "sent"):
            key = sipcheck.header1(m, "CSeq")
            if key not in seen:
                seen.add(key)
                out.append(m)
        return out

    def untouched(self):
        """Nothing the focus sent since the 200 but ACKs."""
        return (not self.reinvites() and not self.byes() and
                not self.refers() and self.run.poll() is None)

    def touched(self):
        return ("re-INVITEs %r, BYEs %r, REFERs %r, SIPp %r"
                % ([m.start for m in self.reinvites()],
                   [m.start for m in self.byes()],
                   [m.start for m in self.refers()], self.run.poll()))

    def close(self):
        self.run.kill()
        if self.ep is not None:
            self.ep.stop()
        if self.sink is not None:
            self.sink.close()
            self.sink = None


def wait_exit(run, timeout, what):
    """Wait for a background SippRun to exit 0; returns its trace."""
    harness.wait_for(lambda: run.poll() is not None, timeout,
                     what="%s: sipp %s ends" % (what, run.name),
                     state=lambda: run.report(30))
    rc, text, _ = run.wait()
    check(rc == 0, "%s: sipp %s exited with %d, expected 0\n%s"
          % (what, run.name, rc, run.report()))
    return sipcheck.parse_trace(text)


def tcp_listening(port):
    """Is some socket listening on 127.0.0.1:port (or any address)?"""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 3 and f[3] == "0A" and \
                    int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


# ---------------------------------------------------------------- mgmt

def show(fd, room):
    """conference.show participants of room, [] if there is no such
    conference."""
    r = fd.mgmt("conference.show", {"id": room})
    if "result" not in r:
        return []
    parts = r["result"].get("participants")
    check(isinstance(parts, list), "conference.show %s: no participants "
          "array in %r" % (room, r["result"]))
    return parts


def by_call_id(fd, room, call_id):
    for p in show(fd, room):
        if p.get("call_id") == call_id:
            return p
    return None


def states(fd, room):
    return [(p.get("uri"), p.get("call_id"), p.get("state"))
            for p in show(fd, room)]


def conferences(fd):
    """{id: conference.list entry}."""
    confs = fd.mgmt_result("conference.list").get("conferences")
    check(isinstance(confs, list), "conference.list: no conferences "
          "array: %r" % confs)
    return {c.get("id"): c for c in confs}


def wait_state(fd, room, p, state, timeout=WAIT_S):
    sipcheck.wait_until(
        lambda: (by_call_id(fd, room, p.call_id) or {}).get("state")
        == state, timeout,
        "conference.show %s: %s in state %r" % (room, p.name, state),
        lambda: states(fd, room))


# ---------------------------------------------------------------- REFER

def refer(fd, name, user, ruri, refer_to, td=None, background=False,
          linger_ms=300, password=None):
    """uac_feature_refer_uri.xml as user (its password from PASSWORDS
    unless given) to the Request-URI ruri, Refer-To refer_to (a whole
    header value), td the Target-Dialog value (None: no such header).
    Returns the SippRun, or the parsed trace once SIPp ended with 0."""
    check(ruri.startswith("sip:"), "refer: Request-URI %r" % ruri)
    keys = {"ruri": ruri, "refer_to": refer_to,
            "td_name": "Target-Dialog" if td is not None
            else "X-No-Target-Dialog",
            "td_value": td if td is not None else "none",
            "linger_ms": linger_ms}
    run = sipcheck.run_sipp(
        fd, REFER_SCENARIO, name, keys=keys, sets={"from_user": user},
        timeout=REFER_TIMEOUT_S, background=True,
        extra_args=["-au", user, "-ap",
                    password if password is not None else PASSWORDS[user],
                    "-auth_uri", ruri[len("sip:"):]])
    log("%s: REFER %s as %s, Refer-To: %s%s" % (
        name, ruri, user, refer_to,
        "" if td is None else ", Target-Dialog: %s" % td))
    if background:
        return run
    return sipcheck.sipp_ok(run, name)


def authorized(msgs):
    """The last REFER sent (the one with credentials)."""
    refers = [m for m in msgs if m.direction == "sent" and
              sipcheck.method(m) == "REFER"]
    check(refers, "no REFER in the controller's trace")
    return refers[-1]


def dedup(msgs):
    """Drop retransmissions: one message per (direction, Call-ID, CSeq,
    start line)."""
    seen, out = set(), []
    for m in msgs:
        key = (m.direction, tuple(sipcheck.header(m, "Call-ID")),
               tuple(sipcheck.header(m, "CSeq")), m.start)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def stack_trying(n):
    """Sofia-SIP's own NOTIFY: sipfrag 100 Trying, not terminated."""
    ss = (sipcheck.header(n, "Subscription-State") or [""])[0]
    return (n.body.strip().startswith("SIP/2.0 100 ") and
            not ss.lower().startswith("terminated"))


def sipfrag(n):
    """The status code of a sipfrag NOTIFY's body, or None."""
    m = re.match(r"SIP/2\.0 (\d{3})\b", n.body.strip())
    return int(m.group(1)) if m else None


def check_refer(msgs, codes, who, final=None, progress=()):
    """The REFER's answers are exactly codes, in order; a REFER after a
    401 carries Digest credentials, the 401 one challenge for REALM.
    Every NOTIFY is a refer sipfrag we answered 200. Beyond Sofia's 100
    Trying ones: none for a refused REFER (final None); for an accepted
    one, exactly the sipfrags progress (1xx, Subscription-State active)
    then final (terminated), in that order, on the 202's dialog, after
    the 202. Returns (the 202, [those NOTIFYs]) or None."""
    msgs = dedup(msgs)
    refers = [m for m in msgs if m.direction == "sent" and
              sipcheck.method(m) == "REFER"]
    answers = sipcheck.responses(msgs, cseq="REFER", final=True)
    got = [sipcheck.status(m) for m in answers]
    trace = "\n".join("  %s %s" % (m.direction, m.start) for m in msgs)
    check(got == codes, "%s: REFER answered %r, expected %r\n%s"
          % (who, got, codes, trace))
    check(len(refers) == len(codes), "%s: %d REFERs sent for %d answers"
          % (who, len(refers), len(codes)))
    check(not sipcheck.header(refers[0], "Authorization"),
          "%s: the first REFER already carried credentials" % who)
    for i, a in enumerate(answers):
        if sipcheck.status(a) == 401:
            ch = sipcheck.header(a, "WWW-Authenticate")
            check(len(ch) == 1 and ch[0].lower().startswith("digest ") and
                  'realm="%s"' % REALM in ch[0],
                  "%s: 401 without one Digest challenge for realm %s: %r"
                  % (who, REALM, ch))
            if i + 1 < len(refers):
                au = sipcheck.header(refers[i + 1], "Authorization")
                check(len(au) == 1 and au[0].lower().startswith("digest "),
                      "%s: the REFER after the 401 has Authorization %r"
                      % (who, au))
    log("%s: %s" % (who, ", ".join(a.start for a in answers)))

    notifies = [m for m in msgs if m.direction == "received" and
                sipcheck.method(m) == "NOTIFY"]
    for n in notifies:
        ev = sipcheck.header(n, "Event") + sipcheck.header(n, "o")
        ct = sipcheck.header(n, "Content-Type")
        check(ev and ev[0].split(";")[0].strip().lower() == "refer" and
              ct and ct[0].split(";")[0].strip().lower() ==
              "message/sipfrag",
              "%s: NOTIFY with Event %r, Content-Type %r; expected refer, "
              "message/sipfrag\n%s" % (who, ev, ct, n.raw))
        cseq = sipcheck.header1(n, "CSeq")
        check(any(m.direction == "sent" and sipcheck.status(m) == 200 and
                  sipcheck.header(m, "CSeq") == [cseq] for m in msgs),
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
        ss = sipcheck.header1(n, "Subscription-State")
        last = i == len(others) - 1
        check(ss.lower().startswith("terminated" if last else "active"),
              "%s: NOTIFY %r has Subscription-State %r, expected %s\n%s"
              % (who, n.body.strip(), ss,
                 "terminated" if last else "active", n.raw))
        check(sipcheck.tag_of(sipcheck.header1(n, "From")) ==
              sipcheck.tag_of(sipcheck.header1(accepted, "To")),
              "%s: NOTIFY %r (From %s) is not on the 202's dialog (To %s)"
              % (who, n.body.strip(), sipcheck.header1(n, "From"),
                 sipcheck.header1(accepted, "To")))
        check(n.when >= accepted.when, "%s: NOTIFY %r came before the 202"
              % (who, n.body.strip()))
    log("%s: NOTIFYs %s; the last %.3f s after the 202" % (who, ", ".join(
        "%r [%s]" % (n.body.strip(), sipcheck.header1(n,
                                                      "Subscription-State"))
        for n in others), others[-1].when - accepted.when))
    return accepted, others


# ---------------------------------------------------------------- re-INVITE

def check_reinvite(p, count, direction, conf, timeout=WAIT_S):
    """p has received exactly count re-INVITEs; the last one is in its
    dialog (Request-URI its Contact, Call-ID, tags), its Contact exactly
    <CONF;gr=TOKEN>;isfocus with the leg's own TOKEN (conf: the
    conference URI expected), an SDP offer of direction on the RTP port
    of the first answer; p's 200 to it went out and was ACKed. Returns
    (re-INVITE, our 200)."""
    who = "%s's re-INVITE %d" % (p.name, count)

    def acked():
        ri = p.reinvites()
        if len(ri) < count:
            return None
        cseq = sipcheck.header1(ri[count - 1], "CSeq").split()[0]
        acks = [a for a in sipcheck.requests(p.msgs(), "ACK", "received")
                if sipcheck.header1(a, "CSeq").split()[0] == cseq]
        return ri if acks else None
    sipcheck.wait_until(acked, timeout,
                        "%s received, answered and ACKed" % who,
                        lambda: "\n".join("  %s %s" % (m.direction, m.start)
                                          for m in p.msgs()))
    ri = p.reinvites()
    check(len(ri) == count, "%s: %d re-INVITEs received, expected %d"
          % (p.name, len(ri), count))
    r = ri[-1]
    check(r.start == "INVITE %s SIP/2.0" % p.contact, "%s: Request-URI "
          "line %r, expected the remote target %s" % (who, r.start,
                                                      p.contact))
    check(sipcheck.header1(r, "Call-ID") == p.call_id and
          sipcheck.tag_of(sipcheck.header1(r, "From")) == p.focus_tag and
          sipcheck.tag_of(sipcheck.header1(r, "To")) == p.tag,
          "%s: not in the dialog (Call-ID %s, tags %s/%s)\n%s"
          % (who, p.call_id, p.focus_tag, p.tag, r.raw))
    sipcheck.check_focus_contact(sipcheck.header1(r, "Contact"), conf, who,
                                 p.token)
    ct = sipcheck.header1(r, "Content-Type").split(";")[0].strip().lower()
    check(ct == "application/sdp", "%s: Content-Type %r, expected an SDP "
          "offer\n%s" % (who, ct, r.raw))
    sdp = sipcheck.parse_sdp(r.body)
    audio = [m for m in sdp["media"] if m["type"] == "audio"]
    check(len(audio) == 1, "%s: %d m=audio lines, expected 1\n%s"
          % (who, len(audio), r.body))
    check(audio[0]["port"] == p.focus_port, "%s: m=audio port %d, the "
          "first answer had %d (the media endpoint stays)"
          % (who, audio[0]["port"], p.focus_port))
    got = sipcheck.sdp_direction(sdp, audio[0])
    check(got == direction, "%s: offers %s, expected %s\n%s"
          % (who, got, direction, r.body))
    cseq = sipcheck.header1(r, "CSeq")
    ours = [m for m in p.msgs() if m.direction == "sent" and
            sipcheck.status(m) == 200 and
            sipcheck.header(m, "CSeq") == [cseq]]
    check(ours, "%s: no 200 of ours with CSeq %s" % (who, cseq))
    log("%s: Contact %s, offer %s on :%d; answered and ACKed"
        % (who, sipcheck.header1(r, "Contact"), got, audio[0]["port"]))
    return r, ours[0]


# ---------------------------------------------------------------- audio

def check_audio(eps, freq, w0, w1, heard, label, errors):
    """eps: {name: endpoint}; freq: {name: its tone}; heard: {listener:
    [names it must hear]}; every other tone of freq must be absent for
    those listeners. Problems are appended to errors."""
    freqs = sorted(freq.values())
    check(w1 - w0 >= 0.5, "%s: window [%.2f, %.2f) too short"
          % (label, w0, w1))
    for name, want in sorted(heard.items()):
        ep = eps[name]
        lv, noise, fill = mc.levels(ep, freqs, w0, w1)
        log("%s [%.2f, %.2f) %s" % (label, w0, w1,
                                   mc.describe(name, lv, noise, fill)))
        if fill < MIN_FILL:
            errors.append("%s: %s got only %.0f%% of the window's samples"
                          % (label, name, 100 * fill))
        for o in want:
            f = freq[o]
            if lv[f] < MIN_TONE_DBFS or lv[f] - noise < MIN_SNR_DB:
                errors.append("%s: %s does not hear %s: %d Hz at %.1f dBFS "
                              "(noise %.1f); expected >= %.0f and %.0f dB "
                              "over the noise" % (label, name, o, f, lv[f],
                                                   noise, MIN_TONE_DBFS,
                                                   MIN_SNR_DB))
        loud = min([lv[freq[o]] for o in want] or [0.0])
        for o in freq:
            if o in want:
                continue
            f = freq[o]
            if lv[f] > ABSENT_DBFS or lv[f] > loud - ABSENT_UNDER_DB:
                errors.append("%s: %s hears %s: %d Hz at %.1f dBFS (must "
                              "be under %.0f and %.0f dB under the tones "
                              "it should hear)"
                              % (label, name, o, f, lv[f], ABSENT_DBFS,
                                 ABSENT_UNDER_DB))


def check_silent(ep, w0, w1, label, errors):
    """A participant alone in its conference: focusd sends it silence
    (or nothing); either way no tone may come through. Checked by the
    total power of what arrived."""
    samples = ep.audio(w0, w1)
    if not samples:
        log("%s [%.2f, %.2f) %s: no audio packets" % (label, w0, w1,
                                                      ep.name))
        return
    dbfs = rtpep.rms_dbfs(samples)
    log("%s [%.2f, %.2f) %s: %d samples at %.1f dBFS RMS"
        % (label, w0, w1, ep.name, len(samples), dbfs))
    if dbfs > ABSENT_DBFS:
        errors.append("%s: %s, alone, receives audio at %.1f dBFS RMS "
                      "(must be under %.0f)" % (label, ep.name, dbfs,
                                                ABSENT_DBFS))

