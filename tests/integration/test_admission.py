#!/usr/bin/env python3
"""Manual admission (conference.admission, participant.admit) and the
feature referrals that act on a caller waiting for it (AnswerCall,
DeflectCall, ClearConnection; draft-audet-sipping-feature-ref).

focusd runs with --users (alice, realm 127.0.0.1) and --auto-create.
alice joins room1 with uac_join_until_bye.xml, so she owns it. Callers
that wait are plain Python UDP user agents (RawCaller below): each sends
one INVITE with a G.711 offer, stops retransmitting on the first answer,
ACKs a 200 (new transaction, to its Contact) or a non-2xx final answer
(same branch, the To tag of the answer), and answers any request the
focus sends it (BYE at shutdown) with 200. REFERs are sent by alice with
uac_feature_refer.xml (401, then digest) outside any dialog.

As in draft-audet-sipping-feature-ref 5.1-5.3, a controller watches the
Refer-Recipient's dialogs: once alice is in, dlgwatch.Controller (a
dlgwatch.DlgWatcher, Event: dialog, to sip:room1@...) subscribes; its
first NOTIFY is a full dialog-info document with alice's dialog alone,
confirmed, +sip.rendering yes, both tags. Every dialog-info document is
validated against tests/schemas/dialog-info.xsd (dialoginfo.py).

0. The controller subscribes (above).
1. conference.admission: mode "sometimes" -> -32602; unknown conference
   -> -32001; room1 manual -> {"id": "room1", "mode": "manual"}.
2. p1 and p2 call room1: each gets 180 Ringing with Contact exactly
   <sip:room1@HOST:PORT;gr=TOKEN>;isfocus (TOKEN l and 16 hex digits,
   naming the caller's leg) and a To tag, no final answer for 0.5 s;
   conference.show lists both "pending", and the controller is told of
   each dialog "early": id the leg's TOKEN, direction recipient, call-id
   and remote-tag the caller's Call-ID and From tag, no local-tag (README:
   focusd learns its own tag with the ACK), remote identity and target
   the caller's URI. participant.admit of an unknown participant ->
   -32003. Admit p1 by its URI: p1 gets 200 (the same Contact as its 180,
   TOKEN included, and the same To tag; SDP with m=audio), ACKs, becomes
   "connected"; after the admission the controller gets p1's dialog
   "confirmed" with local-tag that To tag and +sip.rendering yes. p2 is
   still pending with no final answer, its dialog still early. Admit p2
   by its Call-ID: same. Admit p1 again -> -32004.
3. p3 calls, 180, early; alice REFERs AnswerCall with Target-Dialog
   Call-ID;local-tag=<focus's 180 To tag>;remote-tag=<p3's From tag>
   -> 401, 202, final sipfrag 200; p3 gets 200, connected; after the
   REFER p3's dialog confirmed as in 2 (flow 5.1). AnswerCall on p3 again
   (connected) -> 401, 488, and no dialog-info document at all.
4. p4 calls, 180, early; DeflectCall;target=sip:vm@127.0.0.1 -> 401,
   202; p4 gets 302 with Contact <sip:vm@127.0.0.1>, ACKs it, is gone
   from conference.show; after the REFER its dialog is terminated, event
   "rejected", code 302 (flow 5.3).
5. p5 calls, 180, early; ClearConnection -> 401, 202; p5 gets 480, is
   gone; its dialog terminated, "rejected", code 480 (flow 5.2, early).
6. The controller un-SUBSCRIBEs (Expires: 0) and its whole NOTIFY
   sequence is checked as dlgwatch.Controller.finish() describes (every
   document, every dialog element, contiguous versions). The state
   sequence per dialog is exactly: alice confirmed/yes (nothing about
   her afterwards); p1, p2, p3 early, confirmed/yes (one document each:
   no second "confirmed" when the ACK comes); p4 early, terminated/
   rejected/302; p5 early, terminated/rejected/480; no other dialog. The
   last NOTIFY may carry nothing, the previous document again (Sofia
   resends it, same version; logged) or the full state (then alice, p1,
   p2, p3 confirmed). Nobody hangs up by themselves here, so there is no
   remote-bye to see.
7. SIGTERM: focusd exits 0; alice's SIPp ends 0 (the focus's BYE).

Every caller must get exactly one distinct final answer, and the five
callers' TOKENs differ (five legs). Every dialog-info wait is bounded
(STATE_TIMEOUT_S) and looks only at documents that came after the
action it follows. About 6 s. Run by hand:
FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_admission.py (exit 0 on pass).
"""

import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dlgwatch  # noqa: E402
import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import sipcheck  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
REALM = harness.LOOPBACK
PASSWORD = "alice-Secret1"
OWNER_SCENARIO = "uac_join_until_bye.xml"
CONTROLLER = "uac_feature_refer.xml"
VM = "sip:vm@127.0.0.1"
STATE_TIMEOUT_S = 3.0
ANSWER_TIMEOUT_S = 3.0
NO_ANSWER_S = 0.5
REFER_TIMEOUT_S = 10
LINGER_MS = 600


# ---------------------------------------------------------------- caller

class RawCaller:
    """A UDP user agent client that calls room1 once."""

    def __init__(self, fd, name):
        self.fd = fd
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((harness.LOOPBACK, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.dest = (harness.LOOPBACK, fd.sip_port)
        self.rtp_sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp_sink.bind((harness.LOOPBACK, 0))
        rnd = "%d-%d" % (os.getpid(), random.randrange(1 << 30))
        self.call_id = "adm-%s-%s@127.0.0.1" % (name, rnd)
        self.tag = "t%s%d" % (name, random.randrange(1 << 30))
        self.branch = "z9hG4bK-%s-%s" % (name, rnd)
        self.uri = "sip:%s@%s:%d" % (name, harness.LOOPBACK, self.port)
        self.req_uri = "sip:%s@%s" % (ROOM, fd.sip_target)
        self.lock = threading.Lock()
        self.received = []          # (monotonic time, parsed message)
        self.answered = False       # any response seen: stop retransmits
        self.token = None           # the gr of the focus's Contact
        self.stop = False
        sdp = ("v=0\r\no=%s 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
               "c=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               "m=audio %d RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\n"
               "a=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
               % (name, self.rtp_sink.getsockname()[1]))
        self.invite = (
            "INVITE %s SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <%s>;tag=%s\r\n"
            "To: <%s>\r\n"
            "Call-ID: %s\r\n"
            "CSeq: 1 INVITE\r\n"
            "Contact: <%s>\r\n"
            "Content-Type: application/sdp\r\n"
            "Content-Length: %d\r\n\r\n%s"
            % (self.req_uri, self.port, self.branch, self.uri, self.tag,
               self.req_uri, self.call_id, self.uri, len(sdp), sdp))
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _send(self, text):
        self.sock.sendto(text.encode(), self.dest)

    def _loop(self):
        self._send(self.invite)
        next_rt, interval = time.monotonic() + 0.5, 0.5
        while not self.stop:
            if not self.answered and time.monotonic() >= next_rt:
                self._send(self.invite)
                interval = min(interval * 2, 4.0)
                next_rt = time.monotonic() + interval
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            m = sipcheck.parse_message(data.decode("utf-8", "replace"))
            with self.lock:
                self.received.append((time.monotonic(), m))
            if sipcheck.status(m) is not None:
                self.answered = True
                if (sipcheck.cseq_method(m) == "INVITE" and
                        sipcheck.status(m) >= 200):
                    self._ack(m)
            else:
                self._answer(m)

    def _ack(self, resp):
        to = sipcheck.header1(resp, "To")
        if sipcheck.status(resp) < 300:
            contact = sipcheck.name_addr(sipcheck.header1(resp,
                                                          "Contact"))[0]
            ruri = contact or self.req_uri
            branch = self.branch + "-ack2xx"
        else:
            ruri, branch = self.req_uri, self.branch
        self._send(
            "ACK %s SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
            "Max-Forwards: 70\r\nFrom: <%s>;tag=%s\r\nTo: %s\r\n"
            "Call-ID: %s\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
            % (ruri, self.port, branch, self.uri, self.tag, to,
               self.call_id))

    def _answer(self, req):
        lines = ["SIP/2.0 200 OK"]
        for h in ("Via", "From", "To", "Call-ID", "CSeq"):
            for v in sipcheck.header(req, h):
                lines.append("%s: %s" % (h, v))
        lines.append("Content-Length: 0")
        self._send("\r\n".join(lines) + "\r\n\r\n")

    def msgs(self):
        with self.lock:
            return [m for _, m in self.received]

    def responses(self, final):
        return [m for m in self.msgs() if sipcheck.status(m) is not None
                and sipcheck.cseq_method(m) == "INVITE" and
                (sipcheck.status(m) >= 200) == final]

    def trace(self):
        return "\n".join("  " + m.start for m in self.msgs())

    def wait_ringing(self):
        """180 with the isfocus Contact of room1 and this leg's gr (kept
        in self.token) and a To tag; no final answer. Returns the focus's
        tag."""
        sipcheck.wait_until(
            lambda: [m for m in self.responses(False)
                     if sipcheck.status(m) == 180],
            ANSWER_TIMEOUT_S, "%s: 180 Ringing" % self.name, self.trace)
        r = [m for m in self.responses(False) if sipcheck.status(m) == 180][0]
        self.token = sipcheck.check_focus_contact(
            sipcheck.header1(r, "Contact"), self.req_uri,
            "%s: the 180" % self.name)
        self.focus_tag = sipcheck.tag_of(sipcheck.header1(r, "To"))
        check(self.focus_tag, "%s: 180 without a To tag" % self.name)
        return self.focus_tag

    def check_unanswered(self, what):
        fin = self.responses(True)
        if fin:
            fail("%s: %s got a final answer %r\n%s"
                 % (what, self.name, fin[0].start, self.trace()))

    def wait_final(self, code):
        """Exactly one distinct final answer, with status code."""
        sipcheck.wait_until(lambda: self.responses(True), ANSWER_TIMEOUT_S,
                            "%s: a final answer" % self.name, self.trace)
        time.sleep(0.1)     # a second, different final answer would show
        fin = self.responses(True)
        starts = {m.start for m in fin}
        check(len(starts) == 1 and sipcheck.status(fin[0]) == code,
              "%s: final answers %r, expected one %d\n%s"
              % (self.name, sorted(starts), code, fin[0].raw))
        r = fin[0]
        if code == 200:
            # the leg of the 180: the same gr
            sipcheck.check_focus_contact(sipcheck.header1(r, "Contact"),
                                         self.req_uri,
                                         "%s: the 200" % self.name,
                                         self.token)
            ct = sipcheck.header1(r, "Content-Type").split(";")[0]
            check(ct.strip().lower() == "application/sdp" and
                  "m=audio " in r.body, "%s: 200 without an SDP answer\n%s"
                  % (self.name, r.raw))
        log("%s: final answer %s" % (self.name, r.start))
        return r

    def target_dialog(self):
        return "%s;local-tag=%s;remote-tag=%s" % (self.call_id,
                                                  self.focus_tag, self.tag)

    def close(self):
        self.stop = True
        self.thread.join(timeout=1)
        self.sock.close()
        self.rtp_sink.close()


# ---------------------------------------------------------------- helpers

def show(fd):
    return fd.mgmt_result("conference.show",
                          {"id": ROOM}).get("participants", [])


def leg(fd, c):
    return mc.leg_by_call_id(show(fd), c.call_id)


def states(fd):
    return [(p.get("uri"), p.get("call_id"), p.get("state"))
            for p in show(fd)]


def wait_state(fd, c, state):
    sipcheck.wait_until(lambda: (leg(fd, c) or {}).get("state") == state,
                        STATE_TIMEOUT_S, "%s in state %r" % (c.name, state),
                        lambda: states(fd))


def wait_gone(fd, c):
    sipcheck.wait_until(lambda: leg(fd, c) is None, STATE_TIMEOUT_S,
                        "%s gone from conference.show" % c.name,
                        lambda: states(fd))


def error_code(fd, method, params, code):
    r = fd.mgmt(method, params)
    got = (r.get("error") or {}).get("code")
    check(got == code, "%s %r: %r, expected error %d"
          % (method, params, r, code))
    log("%s %r -> %d" % (method, params, code))


def refer(fd, name, feature, td, codes, final=None):
    run = sipcheck.run_sipp(
        fd, CONTROLLER, name, service=ROOM,
        keys={"refer_to": "<urn:feature:%s>" % feature,
              "td_name": "Target-Dialog", "td_value": td,
              "linger_ms": LINGER_MS},
        sets={"from_user": "alice"}, timeout=REFER_TIMEOUT_S,
        background=True,
        extra_args=["-au", "alice", "-ap", PASSWORD,
                    "-auth_uri", "%s@%s" % (ROOM, fd.sip_target)])
    msgs = sipcheck.sipp_ok(run, name)
    seen, got = set(), []
    for m in sipcheck.responses(msgs, cseq="REFER", final=True):
        key = (sipcheck.header1(m, "CSeq"), m.start)
        if key not in seen:
            seen.add(key)
            got.append(sipcheck.status(m))
    check(got == codes, "REFER %s: answered %r, expected %r\n%s"
          % (feature, got, codes,
             "\n".join("  %s %s" % (m.direction, m.start) for m in msgs)))
    if final is not None:
        frags = [m.body.strip().split("\n")[0].strip() for m in msgs
                 if m.direction == "received" and
                 sipcheck.method(m) == "NOTIFY" and
                 sipcheck.header1(m, "Subscription-State").lower()
                 .startswith("terminated")]
        check(frags and frags[-1].startswith("SIP/2.0 %d" % final),
              "REFER %s: terminated sipfrag NOTIFYs %r, expected SIP/2.0 "
              "%d" % (feature, frags, final))
    log("REFER %s: %r" % (feature, got))


# ---------------------------------------------------------------- main

def main():
    users_dir = tempfile.mkdtemp(prefix="focusd-it-adm-")
    users = os.path.join(users_dir, "users")
    with open(users, "w") as f:
        f.write("alice:%s:%s\n" % (PASSWORD, REALM))
    callers, owner = [], None
    try:
        with harness.Focusd(extra_args=["--users", users]) as fd:
            owner = body(fd, callers)
        sipcheck.hung_up_at_stop(owner, "alice")
    finally:
        for c in callers:
            c.close()
        if owner is not None:
            owner.kill()
        shutil.rmtree(users_dir, ignore_errors=True)


def body(fd, callers):
    port_file = os.path.join(fd.tmpdir, "alice.port")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((harness.LOOPBACK, 0))
    owner = sipcheck.run_sipp(
        fd, OWNER_SCENARIO, "alice", service=ROOM,
        keys={"rtp_port": sink.getsockname()[1], "port_file": port_file},
        sets={"from_user": "alice"}, background=True, timeout=25)

    def joined():
        if owner.poll() is not None:
            fail("alice: SIPp ended (%s) before joining\n%s"
                 % (owner.poll(), owner.report()))
        try:
            with open(port_file) as f:
                return f.read().strip()
        except OSError:
            return None
    sipcheck.wait_until(joined, 5.0, "alice joined room1", lambda: "")
    ctl = dlgwatch.Controller(fd, ROOM)
    try:
        return body2(fd, callers, owner, ctl)
    finally:
        ctl.stop()
        sink.close()


def body2(fd, callers, owner, ctl):
    # -- 0: the controller subscribes to room1's dialogs: alice's only
    first = ctl.start()
    check(len(first["dialogs"]) == 1 and
          dlgwatch.step(first["dialogs"][0]) == "confirmed/yes" and
          first["dialogs"][0]["direction"] == "recipient" and
          first["dialogs"][0]["local_tag"] and
          first["dialogs"][0]["remote_tag"],
          "controller: the first document, expected alice's dialog alone, "
          "confirmed, rendering yes, both tags: %s"
          % dlgwatch.dump([first]))
    alice_id = first["dialogs"][0]["id"]

    # -- 1: conference.admission
    error_code(fd, "conference.admission", {"id": ROOM, "mode": "sometimes"},
               -32602)
    error_code(fd, "conference.admission", {"id": "nosuch-room",
                                            "mode": "manual"}, -32001)
    res = fd.mgmt_result("conference.admission", {"id": ROOM,
                                                  "mode": "manual"})
    check(res == {"id": ROOM, "mode": "manual"},
          "conference.admission: %r" % res)

    # -- 2: waiting callers, participant.admit
    p1, p2 = RawCaller(fd, "p1"), RawCaller(fd, "p2")
    callers += [p1, p2]
    for c in (p1, p2):
        c.wait_ringing()
        wait_state(fd, c, "pending")
        wait_early(ctl, c)
    time.sleep(NO_ANSWER_S)
    for c in (p1, p2):
        c.check_unanswered("manual admission, nobody admitted")
        check((leg(fd, c) or {}).get("state") == "pending",
              "%s no longer pending: %r" % (c.name, states(fd)))
    log("p1, p2 pending: %r" % (states(fd),))
    error_code(fd, "participant.admit",
               {"id": ROOM, "participant": "sip:nobody@127.0.0.1:9"},
               -32003)
    p1_uri = leg(fd, p1).get("uri")
    check(p1_uri and "p1@" in p1_uri, "p1's uri in conference.show: %r"
          % p1_uri)
    mark = ctl.mark()
    fd.mgmt_result("participant.admit", {"id": ROOM, "participant": p1_uri})
    wait_confirmed(ctl, p1, p1.wait_final(200), mark)
    wait_state(fd, p1, "connected")
    p2.check_unanswered("after admitting p1")
    check((leg(fd, p2) or {}).get("state") == "pending",
          "p2 not pending after p1's admission: %r" % (states(fd),))
    check_latest(ctl, p2, "early", "after admitting p1")
    mark = ctl.mark()
    fd.mgmt_result("participant.admit", {"id": ROOM,
                                         "participant": p2.call_id})
    wait_confirmed(ctl, p2, p2.wait_final(200), mark)
    wait_state(fd, p2, "connected")
    error_code(fd, "participant.admit", {"id": ROOM, "participant": p1_uri},
               -32004)

    # -- 3: AnswerCall
    p3 = waiting_caller(fd, ctl, callers, "p3")
    mark = ctl.mark()
    refer(fd, "answer", "AnswerCall", p3.target_dialog(), [401, 202],
          final=200)
    wait_confirmed(ctl, p3, p3.wait_final(200), mark)
    wait_state(fd, p3, "connected")
    mark = ctl.mark()
    refer(fd, "answer-again", "AnswerCall", p3.target_dialog(), [401, 488])
    check(ctl.mark() == mark, "AnswerCall refused (488) but the controller "
          "got dialog-info documents:\n%s" % dlgwatch.dump(ctl.docs()[mark:]))

    # -- 4: DeflectCall
    p4 = waiting_caller(fd, ctl, callers, "p4")
    mark = ctl.mark()
    refer(fd, "deflect", "DeflectCall;target=" + VM, p4.target_dialog(),
          [401, 202])
    r = p4.wait_final(302)
    contact = sipcheck.name_addr(sipcheck.header1(r, "Contact"))[0]
    check(contact == VM, "p4: 302 Contact %r, expected <%s>"
          % (sipcheck.header1(r, "Contact"), VM))
    wait_gone(fd, p4)
    ctl.wait_step(dlgwatch.by_call_id(p4.call_id), "terminated/rejected/302",
                  "p4's dialog (DeflectCall)", since=mark,
                  timeout=STATE_TIMEOUT_S)

    # -- 5: ClearConnection
    p5 = waiting_caller(fd, ctl, callers, "p5")
    mark = ctl.mark()
    refer(fd, "clear", "ClearConnection", p5.target_dialog(), [401, 202])
    p5.wait_final(480)
    wait_gone(fd, p5)
    ctl.wait_step(dlgwatch.by_call_id(p5.call_id), "terminated/rejected/480",
                  "p5's dialog (ClearConnection)", since=mark,
                  timeout=STATE_TIMEOUT_S)
    for c in (p1, p2, p3):
        check((leg(fd, c) or {}).get("state") == "connected",
              "%s not connected at the end: %r" % (c.name, states(fd)))
    sipcheck.check_legs_differ({c.name: c.token for c in callers},
                               "the 180s to p1 ... p5")

    # -- the controller's whole NOTIFY sequence
    docs = ctl.finish()
    ids = {d["id"] for doc in docs for d in doc["dialogs"]}
    want = {alice_id} | {c.token for c in callers}
    check(ids == want, "controller: dialogs %r in the documents, expected "
          "alice's and p1 ... p5's %r:\n%s" % (sorted(ids), sorted(want),
                                                dlgwatch.dump(docs)))
    dlgwatch.check_steps(docs, dlgwatch.by_id(alice_id), ["confirmed/yes"],
                         "controller: alice's dialog")
    for c in (p1, p2, p3):
        check_answered_steps(docs, c)
    for c, code in ((p4, 302), (p5, 480)):
        hist = dlgwatch.check_steps(
            docs, dlgwatch.by_call_id(c.call_id),
            ["early", "terminated/rejected/%d" % code],
            "controller: %s's dialog" % c.name)
        for _, doc, d in hist:
            check_ids(d, c, "controller: v%d" % doc["version"])
    if ctl.final_doc is not None:
        got = sorted((d["id"], dlgwatch.step(d))
                     for d in ctl.final_doc["dialogs"])
        exp = sorted((i, "confirmed/yes") for i in
                     [alice_id, p1.token, p2.token, p3.token])
        check(got == exp, "controller: the final full document has %r, "
              "expected %r" % (got, exp))
    return owner


# ---------------------------------------------------------------- dialogs

def check_ids(d, c, what):
    """A waiting caller's dialog element as the focus sees it: the leg's
    id, c's Call-ID and From tag (remote), c's URI, the recipient."""
    what = "%s: %s's dialog %s" % (what, c.name, dlgwatch.step(d))
    check(d["id"] == c.token, "%s: id %r, expected the leg token %s of the "
          "180's Contact" % (what, d["id"], c.token))
    check(d["call_id"] == c.call_id and d["remote_tag"] == c.tag,
          "%s: call-id %r remote-tag %r, expected %s / %s (the caller's "
          "From tag)" % (what, d["call_id"], d["remote_tag"], c.call_id,
                         c.tag))
    check(d["direction"] == "recipient", "%s: direction %r, expected "
          "recipient" % (what, d["direction"]))
    check(d["remote_identity"] == c.uri and d["remote_target"] == c.uri,
          "%s: remote identity %r target %r, expected %s (From, Contact)"
          % (what, d["remote_identity"], d["remote_target"], c.uri))
    if d["state"] == "early":
        check(d["local_tag"] is None, "%s: local-tag %r; an early dialog "
              "answered 180 leaves it out (README)" % (what, d["local_tag"]))


def waiting_caller(fd, ctl, callers, name):
    """name calls room1 (admission manual): it gets a 180, is pending in
    conference.show, and the controller sees its dialog early."""
    c = RawCaller(fd, name)
    callers.append(c)
    c.wait_ringing()
    wait_state(fd, c, "pending")
    wait_early(ctl, c)
    return c


def wait_early(ctl, c):
    """c's dialog is announced early."""
    _, doc, d = ctl.wait_step(dlgwatch.by_call_id(c.call_id), "early",
                              "%s's dialog" % c.name,
                              timeout=STATE_TIMEOUT_S)
    check_ids(d, c, "controller: v%d" % doc["version"])


def wait_confirmed(ctl, c, ok, mark):
    """After the admission (documents from mark on), c's dialog is
    confirmed, rendering yes, with local-tag the To tag of ok (the 200,
    whose tag must be the 180's: RFC 3261 8.2.6.2)."""
    tag = sipcheck.tag_of(sipcheck.header1(ok, "To"))
    check(tag == c.focus_tag, "%s: the 200 has To tag %r, the 180 had %r "
          "(one tag for every response to an INVITE, RFC 3261 8.2.6.2)"
          % (c.name, tag, c.focus_tag))
    _, doc, d = ctl.wait(dlgwatch.by_call_id(c.call_id),
                         lambda d: (dlgwatch.step(d) == "confirmed/yes" and
                                    d["local_tag"] is not None),
                         "%s's dialog confirmed/yes with a local-tag"
                         % c.name, since=mark, timeout=STATE_TIMEOUT_S)
    check(d["local_tag"] == tag, "controller: v%d: %s's confirmed dialog "
          "has local-tag %r, expected %r (the To tag of the focus's 200)"
          % (doc["version"], c.name, d["local_tag"], tag))
    check_ids(d, c, "controller: v%d" % doc["version"])


def check_latest(ctl, c, want, what):
    d = ctl.latest(dlgwatch.by_call_id(c.call_id))
    got = dlgwatch.step(d) if d else None
    check(got == want, "controller, %s: %s's dialog is %r, expected %r:\n%s"
          % (what, c.name, got, want, dlgwatch.dump(ctl.docs())))


def check_answered_steps(docs, c):
    """c's dialog went early (no local-tag), then confirmed/yes with the
    focus's tag, and nothing else: one document per state (the 200 and
    its ACK, which makes the leg "connected", are one dialog state)."""
    who = "controller: %s's dialog" % c.name
    hist = dlgwatch.history(docs, dlgwatch.by_call_id(c.call_id))
    got = [dlgwatch.step(d) for _, _, d in hist]
    tags = [d["local_tag"] for _, _, d in hist]
    for _, doc, d in hist:
        check_ids(d, c, "controller: v%d" % doc["version"])
    check(got == ["early", "confirmed/yes"] and
          tags == [None, c.focus_tag], "%s: states %r with local-tags %r, "
          "expected early (no local-tag), then confirmed/yes with %s; "
          "documents:\n%s" % (who, got, tags, c.focus_tag,
                              dlgwatch.dump(docs)))


if __name__ == "__main__":
    harness.run_main(main)
