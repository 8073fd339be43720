#!/usr/bin/env python3
"""REFER with method=BYE (RFC 4579 4.11): only the conference's owner or
a moderator, proved by SIP digest, may have the focus hang up on a
participant.

focusd runs with --users (alice, bob, mod; realm 127.0.0.1, the domain's
host) and --moderators mod. alice joins room1 first, so she owns it;
carl joins room1; dave joins room2 first (he owns it) and alice joins
room2 too. Every REFER is sent by uac_refer_bye.xml outside any dialog:
first without credentials, then, after a 401, once more with an
Authorization that SIPp computes (qop=auth; the digest uri is the
Request-URI). Cases, each asserting the exact status codes of the REFER's
answers, in order:
1. bob (a known user, neither owner nor moderator) asks room1 to remove
   carl: 401, then 403; carl is still in conference.show and got no BYE;
2. alice with a wrong password: 401, then 401 again; carl still there;
3. alice with her password: 401, then 202; carl's dialog gets a BYE from
   the focus (his SIPp answers it and ends), the refer subscription gets
   a NOTIFY with message/sipfrag "SIP/2.0 200" and Subscription-State
   terminated, carl is gone from conference.show, and a conference-event
   watcher of room1 sees carl's endpoint disconnected with
   disconnection-method "booted";
4. mod (a moderator, owner of nothing) asks room2 to remove alice's room2
   leg (her From URI with that leg's port): 401, 202, final sipfrag 200;
   that leg gets the BYE, dave stays, and alice's room1 leg is untouched;
5. alice asks room1 to remove someone who is not there: 401, 202, final
   sipfrag 404; room1 unchanged;
6. a second focusd without --users: a REFER with method=BYE gets 403 at
   once (no challenge, nobody can authenticate); erin stays;
7. as 3 (fred this time) and 8. as 5, but from a REFERer of our own
   (SlowReferer: UDP, the digest computed here) that answers each NOTIFY
   0.3 s after it came, as one behind a slow link would: the final sipfrag
   NOTIFY (200, then 404) must still come, after the stack's 100 Trying
   ones have been answered. (SIPp answers at once, so with it a focus
   that takes the 200 to the stack's NOTIFY for the answer to its final
   one, and lets the subscription go before sending that, fails cases 3
   to 5 only now and then; here it fails every time.)
Every 401 carries WWW-Authenticate: Digest with the realm, a nonce,
algorithm=MD5 and qop auth; the Authorization SIPp sent is checked
against an MD5 computed here (so a 202 means a right digest, and the 401
of case 2 a well-formed wrong one). Sofia-SIP's own "SIP/2.0 100 Trying"
NOTIFYs (pending before the answer, even for a REFER turned down, and
active after a 202) are answered and tolerated; any other NOTIFY on a
refused REFER, or an accepted one without exactly one terminated sipfrag
NOTIFY on the 202's dialog, fails the test. At the end focusd's SIGTERM
hangs up on those still in (alice, dave, erin): their SIPp ends with 0.

About 9 s. Run by hand: FOCUSD=build/daemon/focusd \
SIPP_SCENARIOS=$PWD/tests/sipp python3 tests/integration/test_refer_bye.py
(exit 0 on pass).
"""

import os
import random
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confinfo  # noqa: E402
import harness  # noqa: E402
import sipcheck  # noqa: E402
from harness import check, fail, log  # noqa: E402

REALM = harness.LOOPBACK          # the domain's host: the default realm
PASSWORDS = {"alice": "alice-Secret1", "bob": "bob-Secret2",
             "mod": "mod-Secret3"}
LINGER_ACCEPTED_MS = 800          # NOTIFYs after a 202 come within ms
LINGER_REFUSED_MS = 300
SIPP_TIMEOUT = 20                 # bounds every call that waits for a BYE
SLOW_NOTIFY_S = 0.3               # cases 7, 8: NOTIFYs answered this late


class Rig:
    """The participants' SIPp runs, their RTP sink, the REFERs."""

    def __init__(self, work, rtp_port):
        self.work = work
        self.rtp_port = rtp_port
        self.runs = []

    # -- participants

    def join(self, fd, user, room):
        """user joins room (in the background) and stays until the focus
        hangs up; returns (run, SIP port of that SIPp)."""
        name = "%s-%s" % (user, room)
        keys = {"rtp_port": self.rtp_port, "port_file": "/dev/null"}
        run = sipcheck.run_sipp(fd, "uac_join_until_bye.xml", name,
                                service=room, keys=keys,
                                sets={"from_user": user}, background=True,
                                timeout=SIPP_TIMEOUT,
                                workdir=os.path.join(self.work, name))
        self.runs.append(run)
        port = int(run.args[run.args.index("-p") + 1])
        sipcheck.wait_until(
            lambda: self.leg(fd, room, user, port) is not None, 5.0,
            "%s (port %d) in conference.show %s" % (user, port, room),
            lambda: self.show(fd, room))
        return run, port

    @staticmethod
    def show(fd, room):
        r = fd.mgmt("conference.show", {"id": room})
        if "error" in r:
            return None
        return [p.get("uri") for p in r["result"].get("participants", [])]

    def leg(self, fd, room, user, port):
        uri = "sip:%s@%s:%d" % (user, harness.LOOPBACK, port)
        for u in self.show(fd, room) or []:
            if u == uri:
                return u
        return None

    def assert_in(self, fd, room, user, port, what):
        check(self.leg(fd, room, user, port) is not None,
              "%s: %s (port %d) is no longer in %s; conference.show: %r"
              % (what, user, port, room, self.show(fd, room)))

    # -- REFER

    def refer(self, fd, room, user, password, target, name, accepted):
        """uac_refer_bye.xml as user/password against room, to remove
        target; returns the parsed trace (SIPp must end with 0)."""
        linger = LINGER_ACCEPTED_MS if accepted else LINGER_REFUSED_MS
        res = sipcheck.run_sipp(
            fd, "uac_refer_bye.xml", name, service=room,
            keys={"target": target, "linger_ms": linger},
            sets={"from_user": user}, timeout=10,
            workdir=os.path.join(self.work, name),
            extra_args=["-au", user, "-ap", password,
                        "-auth_uri", "%s@%s" % (room, fd.sip_target)])
        return sipcheck.sipp_ok(res, name)


# ---------------------------------------------------------------- checks

def check_booted(run, who, accepted_at):
    """A participant's uac_join_until_bye run: ended 0 after the focus's
    BYE, which came after accepted_at (the 202's time)."""
    rc, msgs, _ = run.wait(timeout=5)
    check(rc == 0, "%s: SIPp exited with %d, expected 0 (BYE from the "
          "focus)\n%s" % (who, rc, run.report()))
    byes = sipcheck.requests(sipcheck.parse_trace(msgs), "BYE",
                             "received")
    check(byes, "%s: no BYE received\n%s" % (who, run.report()))
    check(byes[0].when >= accepted_at - 0.01, "%s: the BYE came before "
          "the 202 to the REFER" % who)


def check_no_bye(run, who):
    check(run.poll() is None, "%s: SIPp ended early (%s)\n%s"
          % (who, run.poll(), run.report()))
    byes = sipcheck.requests(sipcheck.trace_of(run), "BYE", "received")
    check(not byes, "%s: got a BYE from the focus\n%s"
          % (who, run.report()))


# ---------------------------------------------------------------- slow REFERer

class SlowReferer:
    """A REFER controller of our own (UDP, RFC 3261 digest with qop=auth
    computed here) that answers every NOTIFY 200 OK only notify_delay
    seconds after it came, as a REFERer behind a slow link would. SIPp
    answers at once (-aa), which hides whether focusd waits for the
    answer to its own final NOTIFY or takes the answer to the stack's
    100 Trying for it. Every message sent and received is kept, as
    sipcheck.SipMsg, for sipcheck.check_refer()."""

    def __init__(self, fd, room, user, password, target, notify_delay):
        self.fd, self.room, self.user = fd, room, user
        self.password, self.target = password, target
        self.delay = notify_delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((harness.LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        rnd = "%016x" % random.getrandbits(64)
        self.call_id = "%s@focusd-tests-refer-bye" % rnd
        self.tag = rnd[:10]
        self.ruri = "sip:%s@%s" % (room, fd.sip_target)
        self.msgs = []
        self.replies = []          # [(due, data, addr)]
        self.answered = {}         # NOTIFY CSeq -> the 200 we sent

    def close(self):
        self.sock.close()

    def _record(self, text, direction):
        m = sipcheck.parse_message(text, time.time(), direction)
        self.msgs.append(m)
        return m

    def _send(self, text, addr):
        self.sock.sendto(text.encode(), addr)

    def _refer(self, cseq, auth):
        lines = [
            "REFER %s SIP/2.0" % self.ruri,
            "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-%016x;rport"
            % (harness.LOOPBACK, self.port, random.getrandbits(64)),
            "Max-Forwards: 70",
            "From: <sip:%s@%s:%d>;tag=%s" % (self.user, harness.LOOPBACK,
                                             self.port, self.tag),
            "To: <%s>" % self.ruri,
            "Call-ID: %s" % self.call_id,
            "CSeq: %d REFER" % cseq,
            "Contact: <sip:%s@%s:%d>" % (self.user, harness.LOOPBACK,
                                         self.port),
            "Refer-To: <%s;method=BYE>" % self.target,
        ]
        if auth:
            lines.append("Authorization: " + auth)
        lines += ["Allow: NOTIFY",
                  "User-Agent: focusd-tests test_refer_bye slow",
                  "Content-Length: 0", "", ""]
        return "\r\n".join(lines)

    def _authorization(self, challenge):
        _, p = sipcheck.digest_params(challenge)
        cnonce, nc = "%08x" % random.getrandbits(32), "00000001"
        ha1 = sipcheck.md5("%s:%s:%s" % (self.user, p["realm"],
                                         self.password))
        ha2 = sipcheck.md5("REFER:%s" % self.ruri)
        resp = sipcheck.md5(":".join([ha1, p["nonce"], nc, cnonce, "auth",
                                     ha2]))
        return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", '
                'response="%s", algorithm=MD5, qop=auth, nc=%s, '
                'cnonce="%s"' % (self.user, p["realm"], p["nonce"],
                                 self.ruri, resp, nc, cnonce))

    def _take(self, data, addr):
        """One datagram in: NOTIFYs get their (delayed) 200; returns the
        message."""
        m = self._record(data.decode("utf-8", "replace"), "received")
        if sipcheck.method(m) == "NOTIFY":
            cseq = sipcheck.header1(m, "CSeq")
            if cseq in self.answered:          # a retransmission
                self._send(self.answered[cseq], addr)
                return m
            lines = ["SIP/2.0 200 OK"]
            lines += ["Via: " + v for v in sipcheck.header(m, "Via")]
            for h in ("From", "To", "Call-ID", "CSeq"):
                lines.append("%s: %s" % (h, sipcheck.header1(m, h)))
            lines += ["Contact: <sip:%s@%s:%d>" % (self.user,
                                                   harness.LOOPBACK,
                                                   self.port),
                      "Content-Length: 0", "", ""]
            text = "\r\n".join(lines)
            self.answered[cseq] = text
            self.replies.append((time.monotonic() + self.delay, text, addr))
        return m

    def _pump(self, until, done=None):
        """Receive and answer until monotonic time until, or until
        done(message) is true for a message received (returned)."""
        while True:
            now = time.monotonic()
            for r in [r for r in self.replies if r[0] <= now]:
                self.replies.remove(r)
                self._send(r[1], r[2])
                self._record(r[1], "sent")
            if now >= until:
                return None
            wake = min([until] + [r[0] for r in self.replies])
            self.sock.settimeout(max(0.005, wake - now))
            try:
                data, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            m = self._take(data, addr)
            if done is not None and done(m):
                return m

    def _transaction(self, cseq, auth):
        """Send REFER CSeq cseq (retransmitted at 0.5, 1, 2 s) until a
        final response comes; returns it."""
        text = self._refer(cseq, auth)
        dest = (harness.LOOPBACK, self.fd.sip_port)
        deadline = time.monotonic() + 6.0
        interval = 0.5

        def final(m):
            st = sipcheck.status(m)
            return (st is not None and st >= 200 and
                    sipcheck.header(m, "CSeq") == ["%d REFER" % cseq])
        while time.monotonic() < deadline:
            self._send(text, dest)
            self._record(text, "sent")
            m = self._pump(min(deadline, time.monotonic() + interval),
                           final)
            if m is not None:
                return m
            interval = min(interval * 2, 4.0)
        fail("%s: no final response to REFER CSeq %d within 6 s"
             % (self.user, cseq))

    def run(self, final_wait=3.0):
        """The REFER (then with credentials after a 401), then, after a
        202, NOTIFYs until a terminated one or final_wait seconds; every
        NOTIFY is answered before this returns. Returns the messages."""
        r = self._transaction(1, None)
        if sipcheck.status(r) == 401:
            r = self._transaction(2, self._authorization(
                sipcheck.header1(r, "WWW-Authenticate")))
        if sipcheck.status(r) == 202:
            def terminated(m):
                return (sipcheck.method(m) == "NOTIFY" and
                        (sipcheck.header(m, "Subscription-State")
                         or [""])[0].lower().startswith("terminated"))
            self._pump(time.monotonic() + final_wait, terminated)
        # answer what is still due, and whatever comes meanwhile
        self._pump(time.monotonic() + self.delay + 0.3)
        return self.msgs


# ---------------------------------------------------------------- main

def main():
    confinfo.xmllint_path()
    work = tempfile.mkdtemp(prefix="focusd-it-refer-bye-")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((harness.LOOPBACK, 0))      # takes (and drops) focusd's RTP
    t = Rig(work, sink.getsockname()[1])
    users = os.path.join(work, "users")
    with open(users, "w") as f:
        for u, pw in PASSWORDS.items():
            f.write("%s:%s:%s\n" % (u, pw, REALM))
    ok = False
    try:
        with harness.Focusd(extra_args=["--users", users,
                                        "--moderators", "mod"]) as fd:
            alice1, alice1_port = t.join(fd, "alice", "room1")
            carl, carl_port = t.join(fd, "carl", "room1")
            dave, dave_port = t.join(fd, "dave", "room2")
            alice2, alice2_port = t.join(fd, "alice", "room2")
            owners = {c["id"]: c.get("owner") for c in
                      fd.mgmt_result("conference.list")["conferences"]}
            check(owners.get("room1", "").startswith("sip:alice@") and
                  owners.get("room2", "").startswith("sip:dave@"),
                  "owners %r: expected alice for room1, dave for room2"
                  % owners)
            carl_uri = "sip:carl@%s:%d" % (harness.LOOPBACK, carl_port)

            # 1: bob is a user, but neither owner nor moderator
            msgs = t.refer(fd, "room1", "bob", PASSWORDS["bob"], carl_uri,
                           "refer-bob", accepted=False)
            sipcheck.check_refer(msgs, [401, 403], "case 1 (bob)",
                                 credentials=("bob", PASSWORDS["bob"]))
            t.assert_in(fd, "room1", "carl", carl_port, "case 1")
            check_no_bye(carl, "case 1: carl")

            # 2: the owner with a wrong password
            msgs = t.refer(fd, "room1", "alice", "not-" + PASSWORDS["alice"],
                           carl_uri, "refer-alice-wrong", accepted=False)
            sipcheck.check_refer(msgs, [401, 401], "case 2 (wrong password)",
                                 credentials=("alice",
                                              "not-" + PASSWORDS["alice"]))
            t.assert_in(fd, "room1", "carl", carl_port, "case 2")
            check_no_bye(carl, "case 2: carl")

            # 3: the owner removes carl; a watcher sees him booted
            watcher = confinfo.watch(fd, "room1", "watcher", idle_ms=1500,
                                     duration_ms=10000, timeout=SIPP_TIMEOUT)
            t.runs.append(watcher)
            confinfo.wait_notifies(watcher, 1, 5.0, work, "watcher")
            msgs = t.refer(fd, "room1", "alice", PASSWORDS["alice"],
                           carl_uri, "refer-alice", accepted=True)
            a202, _ = sipcheck.check_refer(
                msgs, [401, 202], "case 3 (owner)", final=200,
                credentials=("alice", PASSWORDS["alice"]))
            check_booted(carl, "case 3: carl", a202.when)
            sipcheck.wait_until(
                lambda: t.leg(fd, "room1", "carl", carl_port) is None, 3.0,
                "carl gone from conference.show room1",
                lambda: t.show(fd, "room1"))
            t.assert_in(fd, "room1", "alice", alice1_port, "case 3")

            # 4: a moderator removes alice's leg from dave's room2
            msgs = t.refer(fd, "room2", "mod", PASSWORDS["mod"],
                           "sip:alice@%s:%d" % (harness.LOOPBACK,
                                                alice2_port),
                           "refer-mod", accepted=True)
            a202, _ = sipcheck.check_refer(
                msgs, [401, 202], "case 4 (moderator)", final=200,
                credentials=("mod", PASSWORDS["mod"]))
            check_booted(alice2, "case 4: alice's room2 leg", a202.when)
            sipcheck.wait_until(
                lambda: t.show(fd, "room2") == [
                    "sip:dave@%s:%d" % (harness.LOOPBACK, dave_port)], 3.0,
                "room2 down to dave alone", lambda: t.show(fd, "room2"))
            t.assert_in(fd, "room1", "alice", alice1_port, "case 4")
            check_no_bye(alice1, "case 4: alice's room1 leg")

            # 5: nobody to remove
            before = t.show(fd, "room1")
            msgs = t.refer(fd, "room1", "alice", PASSWORDS["alice"],
                           "sip:nobody@%s:9" % harness.LOOPBACK,
                           "refer-nobody", accepted=True)
            sipcheck.check_refer(msgs, [401, 202], "case 5 (not a "
                                 "participant)", final=404,
                                 credentials=("alice", PASSWORDS["alice"]))
            check(t.show(fd, "room1") == before, "case 5: room1 changed "
                  "from %r to %r" % (before, t.show(fd, "room1")))

            # the watcher of case 3 saw carl booted
            rc, _, _ = watcher.wait()
            check(rc == 0, "watcher: SIPp exited with %d\n%s"
                  % (rc, watcher.report()))
            ns = confinfo.received(watcher, work, "watcher")
            gone = []
            for x in ns:
                u = confinfo.user_named(x.doc, "carl") if x.doc else None
                for ep in (u or {}).get("endpoints", []):
                    if ep["status"] == "disconnected":
                        gone.append((u, ep))
            # (the last NOTIFY may repeat the last document)
            check(gone and all(u["state"] == "deleted" and
                               ep["disconnection_method"] == "booted"
                               for u, ep in gone),
                  "watcher: expected carl deleted, his endpoint "
                  "disconnected with disconnection-method booted; "
                  "NOTIFYs:\n%s" % confinfo.dump(ns))

            # 6: no --users: nobody may remove anybody, and no challenge
            with harness.Focusd(name="focusd-no-users") as fd2:
                erin, erin_port = t.join(fd2, "erin", "room3")
                erin_uri = "sip:erin@%s:%d" % (harness.LOOPBACK, erin_port)
                msgs = t.refer(fd2, "room3", "alice", PASSWORDS["alice"],
                               erin_uri, "refer-no-users", accepted=False)
                sipcheck.check_refer(msgs, [403], "case 6 (no --users)")
                t.assert_in(fd2, "room3", "erin", erin_port, "case 6")
                check_no_bye(erin, "case 6: erin")
            sipcheck.hung_up_at_stop(erin, "erin (room3)")

            # 7, 8: as 3 and 5, but the REFERer answers NOTIFYs slowly
            fred, fred_port = t.join(fd, "fred", "room1")
            for case, target, final, name in (
                    (7, "sip:fred@%s:%d" % (harness.LOOPBACK, fred_port),
                     200, "slow-fred"),
                    (8, "sip:nobody@%s:9" % harness.LOOPBACK, 404,
                     "slow-nobody")):
                sr = SlowReferer(fd, "room1", "alice", PASSWORDS["alice"],
                                 target, SLOW_NOTIFY_S)
                try:
                    msgs = sr.run()
                finally:
                    sr.close()
                a202, _ = sipcheck.check_refer(
                    msgs, [401, 202], "case %d (%s, NOTIFYs answered after "
                    "%.1f s)" % (case, name, SLOW_NOTIFY_S), final=final,
                    credentials=("alice", PASSWORDS["alice"]))
                if case == 7:
                    check_booted(fred, "case 7: fred", a202.when)
            t.assert_in(fd, "room1", "alice", alice1_port, "case 8")
        sipcheck.hung_up_at_stop(alice1, "alice (room1)")
        sipcheck.hung_up_at_stop(dave, "dave (room2)")
        ok = True
    finally:
        for r in t.runs:
            r.kill()
        sink.close()
        if ok and not os.environ.get("FOCUSD_IT_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("keeping %s" % work)


if __name__ == "__main__":
    harness.run_main(main)
