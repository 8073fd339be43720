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

1. conference.admission: mode "sometimes" -> -32602; unknown conference
   -> -32001; room1 manual -> {"id": "room1", "mode": "manual"}.
2. p1 and p2 call room1: each gets 180 Ringing with Contact exactly
   <sip:room1@HOST:PORT;gr=TOKEN>;isfocus (TOKEN l and 16 hex digits,
   naming the caller's leg) and a To tag, no final answer for 0.5 s;
   conference.show lists both "pending". participant.admit of an unknown
   participant -> -32003. Admit p1 by its URI: p1 gets 200 (the same
   Contact as its 180, TOKEN included; SDP with m=audio), ACKs, becomes
   "connected"; p2 is still pending
   with no final answer. Admit p2 by its Call-ID: same. Admit p1 again
   -> -32004.
3. p3 calls, 180; alice REFERs AnswerCall with Target-Dialog
   Call-ID;local-tag=<focus's 180 To tag>;remote-tag=<p3's From tag>
   -> 401, 202, final sipfrag 200; p3 gets 200, connected. AnswerCall on
   p3 again (connected) -> 401, 488.
4. p4 calls, 180; DeflectCall;target=sip:vm@127.0.0.1 -> 401, 202; p4
   gets 302 with Contact <sip:vm@127.0.0.1>, ACKs it, is gone from
   conference.show.
5. p5 calls, 180; ClearConnection -> 401, 202; p5 gets 480, is gone.
6. SIGTERM: focusd exits 0; alice's SIPp ends 0 (the focus's BYE).

Every caller must get exactly one distinct final answer, and the five
callers' TOKENs differ (five legs). About 6 s. Run
by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
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

import harness  # noqa: E402
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
    for p in show(fd):
        if p.get("call_id") == c.call_id:
            return p
    return None


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
        rc, _, _ = owner.wait(timeout=10)
        check(rc == 0, "alice: SIPp exited with %d, expected 0 (BYE at "
              "shutdown)\n%s" % (rc, owner.report()))
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
    try:
        return body2(fd, callers, owner)
    finally:
        sink.close()


def body2(fd, callers, owner):
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
    fd.mgmt_result("participant.admit", {"id": ROOM, "participant": p1_uri})
    p1.wait_final(200)
    wait_state(fd, p1, "connected")
    p2.check_unanswered("after admitting p1")
    check((leg(fd, p2) or {}).get("state") == "pending",
          "p2 not pending after p1's admission: %r" % (states(fd),))
    fd.mgmt_result("participant.admit", {"id": ROOM,
                                         "participant": p2.call_id})
    p2.wait_final(200)
    wait_state(fd, p2, "connected")
    error_code(fd, "participant.admit", {"id": ROOM, "participant": p1_uri},
               -32004)

    # -- 3: AnswerCall
    p3 = RawCaller(fd, "p3")
    callers.append(p3)
    p3.wait_ringing()
    wait_state(fd, p3, "pending")
    refer(fd, "answer", "AnswerCall", p3.target_dialog(), [401, 202],
          final=200)
    p3.wait_final(200)
    wait_state(fd, p3, "connected")
    refer(fd, "answer-again", "AnswerCall", p3.target_dialog(), [401, 488])

    # -- 4: DeflectCall
    p4 = RawCaller(fd, "p4")
    callers.append(p4)
    p4.wait_ringing()
    wait_state(fd, p4, "pending")
    refer(fd, "deflect", "DeflectCall;target=" + VM, p4.target_dialog(),
          [401, 202])
    r = p4.wait_final(302)
    contact = sipcheck.name_addr(sipcheck.header1(r, "Contact"))[0]
    check(contact == VM, "p4: 302 Contact %r, expected <%s>"
          % (sipcheck.header1(r, "Contact"), VM))
    wait_gone(fd, p4)

    # -- 5: ClearConnection
    p5 = RawCaller(fd, "p5")
    callers.append(p5)
    p5.wait_ringing()
    wait_state(fd, p5, "pending")
    refer(fd, "clear", "ClearConnection", p5.target_dialog(), [401, 202])
    p5.wait_final(480)
    wait_gone(fd, p5)
    for c in (p1, p2, p3):
        check((leg(fd, c) or {}).get("state") == "connected",
              "%s not connected at the end: %r" % (c.name, states(fd)))
    sipcheck.check_legs_differ({c.name: c.token for c in callers},
                               "the 180s to p1 ... p5")
    return owner


if __name__ == "__main__":
    harness.run_main(main)
