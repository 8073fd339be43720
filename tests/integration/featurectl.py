"""Helpers for the tests of feature referral (draft-audet-sipping-
feature-ref): test_feature_referral.py (HoldCall, RetrieveCall,
ClearConnection), and those of features that act on more than one call
(SingleStepTransfer, SeparateCalls, ConferenceCalls),
test_feature_transfer.py and test_feature_calls.py.

What it does:
- Users: a --users file (by default alice, mod, eve; realm the domain's
  host) and focusd's arguments for it (by default --moderators mod);
- Party: one participant's call, made by a SIPp scenario that joins a
  conference and answers the focus's requests (uac_join_answer_reinvites,
  uac_transferee, uac_transferee_refuse: they share the event-file lines
  "answer PORT", "reinvite DIR", "ack", "refer", "bye"), with its dialog
  read from the message trace: Call-ID, both tags, its Contact, the
  focus's Contact checked as <sip:ROOM@DOMAIN;gr=TOKEN>;isfocus and the
  leg's TOKEN; what a controller puts in Target-Dialog, in a
  ConferenceCalls URN (urn_dialog(): percent-encoded), or as the leg's
  URI;
- conf_uri(), sink_socket(), wait_exit(): a conference's URI, an RTP
  port nobody reads, a background SIPp that must end 0;
- by_call_id(), states(), conferences(), wait_state(): what
  conference.show (mediacheck.legs()) and conference.list say;
- refer(): a controller's REFER with uac_feature_refer_uri.xml, to any
  Request-URI (a conference's, or a leg's own), with SIP digest when
  challenged; its answers and NOTIFYs are checked with
  sipcheck.check_refer(); refused_at_once(): REFERs that must all be
  refused, sent at once, then checked;
- check_reinvite(): a re-INVITE the focus sent a Party, in its dialog,
  with an isfocus Contact (of the conference expected, with the leg's
  own TOKEN, when given), offering the RTP port of the first answer,
  answered and ACKed;
- check_silent(): a participant alone hears no tone (who hears whom is
  mediacheck.check_audio());
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


# ---------------------------------------------------------------- users

class Users:
    """The --users file (user:password:realm lines, passwords: {user:
    password}) in a temp dir; moderators: the --moderators list."""

    def __init__(self, passwords=PASSWORDS, moderators=MODERATORS):
        self.moderators = moderators
        self.dir = tempfile.mkdtemp(prefix="focusd-it-feat-")
        self.path = os.path.join(self.dir, "users")
        with open(self.path, "w") as f:
            for u, pw in passwords.items():
                f.write("%s:%s:%s\n" % (u, pw, REALM))

    def focusd_args(self):
        return ["--users", self.path, "--moderators", self.moderators]

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
        self.ok = sipcheck.invite_ok(msgs, name)
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
        return sipcheck.distinct_requests(self.msgs(), method)

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

def by_call_id(fd, room, call_id):
    """The conference.show entry of room with that call_id, None if there
    is none (or no such conference)."""
    return mc.leg_by_call_id(mc.legs(fd, room), call_id)


def states(fd, room):
    return [(p.get("uri"), p.get("call_id"), p.get("state"))
            for p in mc.legs(fd, room)]


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


def refused_at_once(fd, cases, what, runs, linger_ms=300, send=None):
    """Feature REFERs that must all be refused, sent at once. cases:
    [(name, user, ruri, feature, td, codes)]: by default refer() from
    user to the Request-URI ruri with Refer-To <urn:feature:FEATURE> and
    Target-Dialog td; send(name, user, ruri, feature, td), if given,
    starts it instead (returns the background SippRun). runs gets every
    run. Then each SIPp must end 0 and its REFER be answered exactly
    codes, without a sipfrag NOTIFY (sipcheck.check_refer(), as "WHAT
    NAME (FEATURE)")."""
    if send is None:
        def send(name, user, ruri, feature, td):
            return refer(fd, name, user, ruri, "<urn:feature:%s>" % feature,
                         td, background=True, linger_ms=linger_ms)
    pending = []
    for name, user, ruri, feature, td, codes in cases:
        run = send(name, user, ruri, feature, td)
        runs.append(run)
        pending.append((run, name, feature, codes))
    for run, name, feature, codes in pending:
        msgs = sipcheck.sipp_ok(run, name)
        sipcheck.check_refer(msgs, codes, "%s %s (%s)" % (what, name,
                                                         feature))


# ---------------------------------------------------------------- re-INVITE

def check_reinvite(p, count, direction, conf, timeout=WAIT_S):
    """p has received exactly count re-INVITEs; the last one is in its
    dialog (Request-URI its Contact, Call-ID, tags), its Contact exactly
    <CONF;gr=TOKEN>;isfocus with the leg's own TOKEN (conf: the
    conference URI expected; None: any Contact with ;isfocus), an SDP
    offer of direction on the RTP port of the first answer; p's 200 to it
    went out and was ACKed. Returns (re-INVITE, our 200)."""
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
    contact = sipcheck.header1(r, "Contact")
    if conf is not None:
        sipcheck.check_focus_contact(contact, conf, who, p.token)
    else:
        check("isfocus" in sipcheck.name_addr(contact)[1], "%s: Contact %r "
              "without isfocus" % (who, contact))
    sdp, audio = sipcheck.audio_offer(r, who)
    check(audio["port"] == p.focus_port, "%s: m=audio port %d, the "
          "first answer had %d (the media endpoint stays)"
          % (who, audio["port"], p.focus_port))
    got = sipcheck.sdp_direction(sdp, audio)
    check(got == direction, "%s: offers %s, expected %s\n%s"
          % (who, got, direction, r.body))
    cseq = sipcheck.header1(r, "CSeq")
    ours = [m for m in p.msgs() if m.direction == "sent" and
            sipcheck.status(m) == 200 and
            sipcheck.header(m, "CSeq") == [cseq]]
    check(ours, "%s: no 200 of ours with CSeq %s" % (who, cseq))
    log("%s: Contact %s, offer %s on :%d; answered and ACKed"
        % (who, contact, got, audio["port"]))
    return r, ours[0]


# ---------------------------------------------------------------- audio

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
    if dbfs > mc.ABSENT_DBFS:
        errors.append("%s: %s, alone, receives audio at %.1f dBFS RMS "
                      "(must be under %.0f)" % (label, ep.name, dbfs,
                                                mc.ABSENT_DBFS))

