#!/usr/bin/env python3
"""Edges of the event packages and of feature referral that a review of
focusd turned up: two subscriptions on one call's dialog, an Event id,
an over-long gr, a transfer whose subscription ends without an outcome,
transfer and deflect targets that are no SIP URI, and a leg that is busy
with a transfer. Each case runs against a focusd of its own (with
--users alice, mod, eve, realm 127.0.0.1, --moderators mod, and
--auto-create); a failing case does not stop the others, and the test
fails naming every case that failed.

Participants are Phone objects (below): a user agent written here in
Python over UDP that calls a conference, answers the focus's requests
(re-INVITE: 200 mirroring the offer's direction; BYE, NOTIFY, OPTIONS:
200; REFER: 202, or 405 for a phone that does no transfers) and sends
requests in its call's dialog when the test says so (SUBSCRIBE, the
sipfrag NOTIFYs of a transfer). SIPp cannot do that on command: its
scenarios fix every step and wait when they start. Every 200 to a
Phone's INVITE must carry <sip:ROOM@127.0.0.1:PORT;gr=TOKEN>;isfocus
(sipcheck.check_focus_contact). Controllers' REFERs are
uac_feature_refer_uri.xml (featurectl.refer) sent by mod (a moderator):
401, then the answer asserted; their NOTIFYs are checked by
sipcheck.check_refer (Sofia-SIP's own "100 Trying" ones tolerated,
nothing else). Out-of-dialog watchers are dlgwatch.DlgWatcher and
confwatch.subscribe_once. Every event document is validated against
its RFC's schema (confinfo.py, dialoginfo.py).

1. One call dialog, two subscriptions: alice calls e1 and SUBSCRIBEs
   inside her call's dialog (same Call-ID and tags, Request-URI her
   leg URI) to Event: conference, then to Event: dialog. Each gets 200
   and a first NOTIFY of its own in that dialog: Event conference /
   dialog, Content-Type application/conference-info+xml /
   application/dialog-info+xml, a full document, version 1, and nothing
   else. bob joins: each package reports it on its own subscription, in
   that dialog: exactly one dialog NOTIFY (partial, version 2, bob's
   dialog) and the conference NOTIFYs of the join (README: each change a
   partial with the version plus one; focusd sends two, bob dialing-in
   and then connected): versions from 2 on by one, each about bob
   alone, the last showing him connected. alice un-SUBSCRIBEs Event:
   dialog (Expires: 0): 200 and one NOTIFY Event: dialog,
   Subscription-State terminated; no conference NOTIFY, and her
   conference NOTIFYs so far all active. carol joins: conference
   NOTIFYs as for bob (versions on from the last), active, and no dialog
   NOTIFY.
2. Event: dialog;id=abc out of any dialog to e2's URI (pat is in e2):
   200 and a first NOTIFY, full, version 1, active; when quinn joins, a
   partial (version 2) about his dialog; the un-SUBSCRIBE's 200 and a
   terminated NOTIFY. Every NOTIFY carries Event: dialog;id=abc (type
   dialog, exactly one parameter, id=abc).
3. rita is in e3. Control: a dialog watcher SUBSCRIBEs (out of any
   dialog) to her leg URI, gr=TOKEN: 200, her dialog alone in its first
   document. Then a dialog SUBSCRIBE to e3's URI with gr=TOKEN+"xyz" (20
   characters whose first 17 are her TOKEN): 404 and no NOTIFY (within
   0.5 s). The watcher then un-SUBSCRIBEs.
4. Two SingleStepTransfers at once, by Target-Dialog, to a SIP target,
   of dan and eli (e4). Each gets the focus's REFER, answers 202, then
   sends one NOTIFY with Subscription-State: terminated;reason=
   noresource and a sipfrag that is no outcome: dan "SIP/2.0 100
   Trying", eli "SIP/2.0 180 Ringing"; the focus answers each 200. Then
   neither gets a BYE and both stay in e4 (conference.show: connected);
   HoldCall on each leg URI: 401, 202, final 200, and one re-INVITE
   offering sendonly (the legs are no longer busy transferring). Each
   transfer's controller: 401, 202, and beyond Sofia's 100 Trying
   exactly one sipfrag NOTIFY, the final 408 (terminated).
5. Targets that are no plain SIP URI with a host, each sent at once as
   DeflectCall (to the leg URI of erin, who waits for admission in e5:
   180, no final answer) and as SingleStepTransfer (to the leg URI of
   ann, connected in e5): target=sip%3Ax%40h%3E (sip:x@h>), target=sips:
   (no host), target=sipx:bob@h, target=sip:bob%20x@h (a space): each
   400 at once (no challenge), no NOTIFY beyond the stack's. Neither ann
   nor erin gets a request or a final answer; both stay as they were
   (conference.show). Control: DeflectCall;target=sip:frank@127.0.0.1:9
   to erin: 401, 202, final 200; erin gets 302 with Contact
   <sip:frank@127.0.0.1:9>.
6. A transfer outstanding: SingleStepTransfer of tom (e6a); tom answers
   202 and NOTIFYs "100 Trying" (active), nothing more yet. Meanwhile:
   ConferenceCalls;leg=TOM-TOKEN with Target-Dialog uma (e6b) is 401,
   then 488; participant.move of tom to e6b is refused with JSON-RPC
   error -32004 (not in a stable call state, README: Management
   socket); tom gets no re-INVITE or BYE and stays connected in e6a.
   Then tom NOTIFYs "SIP/2.0 486 Busy Here" (terminated): tom gets no
   BYE and stays in e6a; participant.move to e6b now succeeds, tom gets
   one re-INVITE whose Contact is <sip:e6b@...;gr=TOM-TOKEN>;isfocus,
   and conference.show e6b lists tom and uma. The controller's REFER:
   401, 202, final sipfrag 486.

Each case ends with focusd's SIGTERM: exit status 0 within 10 s (every
Phone still answers its BYE). Every wait is bounded (STEP_S and the like;
SIPp by its -timeout). About 16 s.

Run by hand: cd /work/main && FOCUSD=build/daemon/focusd \
SIPP_SCENARIOS=$PWD/tests/sipp SIPP=/usr/bin/sipp \
python3 tests/integration/test_event_edges.py [CASE...] (exit 0 on pass;
CASE: numbers of the cases to run, default all).
"""

import os
import random
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confinfo  # noqa: E402
import confwatch  # noqa: E402
import dialoginfo  # noqa: E402
import dlgwatch  # noqa: E402
import featurectl as fc  # noqa: E402
import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import sipcheck  # noqa: E402
from harness import TestFailure, check, fail, log  # noqa: E402

T1 = 0.5
STEP_S = 3.0          # bound of every wait for one thing focusd does
QUIET_S = 0.4         # nothing more for this long: a step is over
NOTIFY_LINGER_S = 0.5  # how long a refused SUBSCRIBE is watched
LINGER_REFUSED_MS = 300
LINGER_ACCEPTED_MS = 800
LINGER_TRANSFER_MS = 2000  # a transfer's controller: the outcome within
CONFINFO = confinfo.CONFINFO_TYPE
DLGINFO = dialoginfo.DIALOGINFO_TYPE
BUSY_STATE = -32004   # README: participant not in a stable call state


# ---------------------------------------------------------------- Phone

def reply(msg, code, reason, extra=(), body="", ctype=None):
    """A response (bytes) to a request received: its Via, From, To,
    Call-ID and CSeq, then the extra header lines, then body."""
    lines = ["SIP/2.0 %d %s" % (code, reason)]
    for n, v in msg.headers:
        if n.lower() in ("via", "v", "from", "f", "to", "t", "call-id", "i",
                         "cseq"):
            lines.append("%s: %s" % (n, v))
    lines += list(extra)
    if body:
        lines.append("Content-Type: %s" % ctype)
    lines += ["Content-Length: %d" % len(body.encode()), "", body]
    return "\r\n".join(lines).encode()


def sdp(name, port, direction):
    return "\r\n".join([
        "v=0", "o=%s 1 %d IN IP4 %s" % (name, random.randrange(1, 10 ** 6),
                                        harness.LOOPBACK),
        "s=edge", "c=IN IP4 %s" % harness.LOOPBACK, "t=0 0",
        "m=audio %d RTP/AVP 0" % port, "a=rtpmap:0 PCMU/8000",
        "a=ptime:20", "a=%s" % direction, ""])


MIRROR = {"sendrecv": "sendrecv", "sendonly": "recvonly",
          "recvonly": "sendonly", "inactive": "inactive"}


class Phone:
    """A participant's user agent on one UDP socket (see the docstring
    above). refer: the status a REFER from the focus gets (202, or 405).
    Every message sent and received is kept with its time (time.time(),
    as SIPp's traces) for assertions and failure messages."""

    def __init__(self, fd, name, room, refer=405, max_duration=60.0):
        self.fd, self.name, self.room = fd, name, room
        self.refer_status = refer
        self.max_duration = max_duration
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((harness.LOOPBACK, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.sink = fc.sink_socket()      # the RTP port offered
        rnd = "%016x" % random.getrandbits(64)
        self.call_id = "%s-%s@focusd-tests" % (name, rnd)
        self.tag = rnd[:10]
        self.uri = "sip:%s@%s:%d" % (name, harness.LOOPBACK, self.port)
        self.contact = "<%s>" % self.uri
        self.conf = fc.conf_uri(fd, room)
        self.cseq = 0
        self.focus_tag = None
        self.remote_target = None
        self.token = None
        self.invite_final = None
        self.error = None            # a check failed in the receiver
        self._invite = None          # (bytes, branch) of our INVITE
        self._ack = None             # bytes of the ACK to its 2xx
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._log = []               # every SipMsg, sent and received
        self._seen = set()           # (method, CSeq) of requests received
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._rx_loop, daemon=True,
                                        name="phone-" + name)
        self._thread.start()

    # -- plumbing

    def _send(self, data):
        self.sock.sendto(data, (harness.LOOPBACK, self.fd.sip_port))
        with self._lock:
            self._log.append(sipcheck.parse_message(
                data.decode("utf-8", "replace"), time.time(), "sent"))

    def _rx_loop(self):
        while (not self._stop.is_set() and
               time.monotonic() - self._t0 < self.max_duration):
            try:
                data, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            msg = sipcheck.parse_message(data.decode("utf-8", "replace"),
                                         time.time(), "received")
            with self._lock:
                self._log.append(msg)
            try:
                if sipcheck.status(msg) is not None:
                    self._on_response(msg)
                else:
                    self._on_request(msg, addr)
            except OSError:
                pass
            except TestFailure as e:     # e.g. a wrong focus Contact
                self.error = e

    def _on_response(self, msg):
        st = sipcheck.status(msg)
        if sipcheck.cseq_method(msg) != "INVITE" or st < 200:
            return
        if st < 300:
            # the 2xx (or its retransmission): ACK it in the dialog
            if self._ack is None:
                self._learn_dialog(msg)
                self._ack = self._request_bytes(
                    "ACK", self.remote_target, 1, "ACK", self.focus_tag)
            self._send(self._ack)
            return
        # a non-2xx final: the ACK of the INVITE transaction (RFC 3261
        # 17.1.1.3): its branch and Request-URI, the response's To
        data, branch = self._invite
        to = sipcheck.header1(msg, "To")
        lines = ["ACK %s SIP/2.0" % self.conf,
                 "Via: SIP/2.0/UDP %s:%d;branch=%s;rport"
                 % (harness.LOOPBACK, self.port, branch),
                 "Max-Forwards: 70",
                 "From: \"%s\" <%s>;tag=%s" % (self.name, self.uri,
                                               self.tag),
                 "To: %s" % to, "Call-ID: %s" % self.call_id,
                 "CSeq: 1 ACK", "Content-Length: 0", "", ""]
        self._send("\r\n".join(lines).encode())

    def _learn_dialog(self, msg):
        """Tags, remote target and leg TOKEN from the focus's 1xx/2xx."""
        self.focus_tag = sipcheck.tag_of(sipcheck.header1(msg, "To"))
        contact = sipcheck.header1(msg, "Contact")
        self.token = sipcheck.check_focus_contact(
            contact, self.conf, "%s: %s to the INVITE" % (self.name,
                                                         msg.start),
            self.token)
        self.remote_target = sipcheck.name_addr(contact)[0]

    def _on_request(self, msg, addr):
        m = sipcheck.method(msg)
        key = (m, sipcheck.header1(msg, "CSeq"))
        first = key not in self._seen
        self._seen.add(key)
        if m == "ACK":
            return
        if m == "INVITE":
            offer = sipcheck.parse_sdp(msg.body)
            audio = [x for x in offer["media"] if x["type"] == "audio"]
            d = sipcheck.sdp_direction(offer, audio[0]) if audio \
                else "sendrecv"
            data = reply(msg, 200, "OK", ["Contact: %s" % self.contact],
                         sdp(self.name, self.sink.getsockname()[1],
                             MIRROR[d]), "application/sdp")
        elif m == "REFER":
            if self.refer_status == 202:
                data = reply(msg, 202, "Accepted",
                             ["Contact: %s" % self.contact])
            else:
                data = reply(msg, 405, "Method Not Allowed",
                             ["Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, "
                              "NOTIFY"])
        else:     # NOTIFY, BYE, OPTIONS
            data = confwatch.ok_to(msg, self.contact)
        self._send(data)
        if first and m != "NOTIFY":
            log("%s: %s, answered %s" % (self.name, msg.start,
                                         data.split(b"\r\n", 1)[0]
                                         .decode()))

    def _request_bytes(self, method, uri, cseq, cseq_method, to_tag,
                       extra=(), body="", ctype=None, branch=None):
        branch = branch or "z9hG4bK-%016x" % random.getrandbits(64)
        to = "<%s>" % self.conf + (";tag=%s" % to_tag if to_tag else "")
        lines = ["%s %s SIP/2.0" % (method, uri),
                 "Via: SIP/2.0/UDP %s:%d;branch=%s;rport"
                 % (harness.LOOPBACK, self.port, branch),
                 "Max-Forwards: 70",
                 "From: \"%s\" <%s>;tag=%s" % (self.name, self.uri,
                                               self.tag),
                 "To: %s" % to, "Call-ID: %s" % self.call_id,
                 "CSeq: %d %s" % (cseq, cseq_method),
                 "Contact: %s" % self.contact]
        lines += list(extra)
        if body:
            lines.append("Content-Type: %s" % ctype)
        lines += ["Content-Length: %d" % len(body.encode()), "", body]
        return "\r\n".join(lines).encode()

    def responses(self, cseq, method):
        with self._lock:
            return [m for m in self._log if m.direction == "received" and
                    sipcheck.status(m) is not None and
                    sipcheck.header(m, "CSeq") == ["%d %s" % (cseq,
                                                              method)]]

    def _transact(self, data, cseq, method, timeout=STEP_S, final=True):
        """Send a request, retransmitted at T1, 2*T1, ... until a final
        response (an INVITE: until any response); returns the final one
        (final=False: the first response, provisional or final)."""
        deadline = time.monotonic() + timeout
        interval, next_send = T1, 0.0
        while True:
            rs = self.responses(cseq, method)
            finals = [r for r in rs if sipcheck.status(r) >= 200]
            if finals:
                return finals[0]
            if rs and not final:
                return rs[0]
            now = time.monotonic()
            if now >= deadline:
                fail("%s: no %s response to %s (CSeq %d) within %.1f s\n%s"
                     % (self.name, "final" if final else "", method, cseq,
                        timeout, self.dump()))
            if now >= next_send and not (rs and method == "INVITE"):
                self._send(data)
                next_send = now + interval
                interval = min(interval * 2, 4.0)
            time.sleep(0.01)

    # -- use

    def call(self, answered=True, timeout=STEP_S):
        """INVITE the conference with a PCMU offer. answered: wait for the
        200 (then ACKed); else for a 180 (manual admission), whose
        Contact gives the leg's TOKEN and the early dialog's tag."""
        self.cseq = 1
        branch = "z9hG4bK-%016x" % random.getrandbits(64)
        data = self._request_bytes(
            "INVITE", self.conf, 1, "INVITE", None,
            ["Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER",
             "User-Agent: focusd-tests test_event_edges"],
            sdp(self.name, self.sink.getsockname()[1], "sendrecv"),
            "application/sdp", branch)
        self._invite = (data, branch)
        if answered:
            r = self._transact(data, 1, "INVITE", timeout)
            check(sipcheck.status(r) == 200, "%s: INVITE %s answered %r, "
                  "expected 200\n%s" % (self.name, self.conf, r.start,
                                        self.dump()))
            harness.wait_for(lambda: self._ack is not None or self.error,
                             timeout, what="%s: our ACK" % self.name)
            if self.error:
                raise self.error
            self.invite_final = r
        else:
            def rang():
                for x in self.responses(1, "INVITE"):
                    if sipcheck.status(x) == 180 or \
                            sipcheck.status(x) >= 200:
                        return x
                return None
            self._transact(data, 1, "INVITE", timeout, final=False)
            r = harness.wait_for(rang, timeout, what="%s: 180 to the "
                                 "INVITE" % self.name, state=self.dump)
            check(sipcheck.status(r) == 180, "%s: INVITE answered %r, "
                  "expected 180 Ringing (manual admission)\n%s"
                  % (self.name, r.start, self.dump()))
            self._learn_dialog(r)
        log("%s in %s: Call-ID %s, tags %s (ours) / %s (focus), gr=%s"
            % (self.name, self.room, self.call_id, self.tag,
               self.focus_tag, self.token))
        return self

    def in_dialog(self, method, extra=(), body="", ctype=None,
                  timeout=STEP_S):
        """A request in the call's dialog (Request-URI the remote target,
        the focus's Contact: the leg URI); returns its final response."""
        check(self.focus_tag and self.remote_target,
              "%s: %s before the call was set up" % (self.name, method))
        self.cseq += 1
        data = self._request_bytes(method, self.remote_target, self.cseq,
                                   method, self.focus_tag, extra, body,
                                   ctype)
        return self._transact(data, self.cseq, method, timeout)

    def subscribe(self, event, expires=300):
        """SUBSCRIBE Event: event (Accept: the package's type) in the
        call's dialog; returns (final response, its time)."""
        t = time.time()
        r = self.in_dialog("SUBSCRIBE", [
            "Event: %s" % event, "Accept: %s" % confwatch.ACCEPT[event],
            "Expires: %d" % expires, "Allow: NOTIFY"])
        log("%s: SUBSCRIBE Event: %s, Expires: %d in the call's dialog: %s"
            % (self.name, event, expires, r.start))
        return r, t

    def notify_refer(self, frag, substate):
        """The sipfrag NOTIFY of the focus's REFER (the last one
        received), Event: refer;id=ITS-CSEQ; returns its final
        response."""
        refers = self.received("REFER")
        check(refers, "%s: no REFER to report on" % self.name)
        cseq = sipcheck.header1(refers[-1], "CSeq").split()[0]
        r = self.in_dialog("NOTIFY", [
            "Event: refer;id=%s" % cseq, "Subscription-State: %s" % substate],
            frag + "\r\n", "message/sipfrag;version=2.0")
        log("%s: NOTIFY %r [%s]: %s" % (self.name, frag, substate, r.start))
        return r

    # -- what happened

    def msgs(self):
        with self._lock:
            return list(self._log)

    def received(self, method):
        """Requests of that method received, retransmissions dropped."""
        out, seen = [], set()
        for m in self.msgs():
            if m.direction != "received" or sipcheck.method(m) != method:
                continue
            key = sipcheck.header1(m, "CSeq")
            if key not in seen:
                seen.add(key)
                out.append(m)
        return out

    def notifies(self, event):
        """NOTIFYs received in the call's dialog whose Event names the
        package event, retransmissions dropped."""
        return [m for m in self.received("NOTIFY")
                if confinfo.event_names(m) == [event]]

    def invite_answers(self):
        return [m for m in self.responses(1, "INVITE")
                if sipcheck.status(m) >= 200]

    def dump(self):
        return "\n".join("  %s %s %s [%s]" % (
            time.strftime("%H:%M:%S", time.localtime(m.when)),
            m.direction, m.start, ",".join(sipcheck.header(m, "CSeq")))
            for m in self.msgs()) or "  (nothing)"

    def target_dialog(self):
        return "%s;local-tag=%s;remote-tag=%s" % (self.call_id,
                                                  self.focus_tag, self.tag)

    def leg_uri(self):
        return "%s;gr=%s" % (self.conf, self.token)

    def close(self):
        self._stop.set()
        self._thread.join(2.0)
        for s in (self.sock, self.sink):
            try:
                s.close()
            except OSError:
                pass


# ---------------------------------------------------------------- helpers

def quiet(count_fn, what, quiet_s=QUIET_S, timeout=STEP_S):
    """Wait until count_fn() has not changed for quiet_s; returns it."""
    deadline = time.monotonic() + timeout
    last, since = count_fn(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        check(time.monotonic() < deadline, "%s: messages keep coming"
              % what)
        time.sleep(0.02)
        now = count_fn()
        if now != last:
            last, since = now, time.monotonic()
    return last


def wait_count(fn, count, what, state, timeout=STEP_S):
    """Wait until len(fn()) >= count, then until it is quiet; returns
    fn()."""
    harness.wait_for(lambda: len(fn()) >= count, timeout, what=what,
                     state=state)
    quiet(lambda: len(fn()), what)
    return fn()


def event_header(msg):
    """(type, {param: value}) of a message's one Event header."""
    vals = sipcheck.header(msg, "Event") + sipcheck.header(msg, "o")
    check(len(vals) == 1, "%s: %d Event headers: %r\n%s"
          % (sipcheck.describe(msg), len(vals), vals, msg.raw))
    parts = [p.strip() for p in vals[0].split(";")]
    params = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip()
    return parts[0].lower(), params


def same_dialog(n, phone, what):
    """NOTIFY n is in phone's call dialog (the focus's From tag, ours in
    To, the call's Call-ID)."""
    check(sipcheck.header1(n, "Call-ID") == phone.call_id and
          sipcheck.tag_of(sipcheck.header1(n, "From")) == phone.focus_tag
          and sipcheck.tag_of(sipcheck.header1(n, "To")) == phone.tag,
          "%s: NOTIFY %s is not in %s's call dialog (Call-ID %s, tags "
          "%s/%s)\n%s" % (what, sipcheck.header1(n, "CSeq"), phone.name,
                          phone.call_id, phone.focus_tag, phone.tag, n.raw))


def read_confinfo(body, workdir, what):
    confinfo.validate(body, workdir, what)
    return confinfo.parse_doc(body, what)


def conf_docs(msgs, workdir, who):
    """confinfo.Notify for the conference NOTIFYs among msgs, each body
    application/conference-info+xml, validated and parsed."""
    return confinfo.package_notifies(msgs, workdir, who, read_confinfo,
                                     event="conference",
                                     content_type=CONFINFO)


def joined(cn, user):
    """Do the conference NOTIFYs cn show user connected (last word)?"""
    for n in reversed(cn):
        u = confinfo.user_named(n.doc, user) if n.doc else None
        if u is not None:
            return any(e["status"] == "connected" for e in u["endpoints"])
    return False


def check_conf_news(ns, version, user, what, state):
    """ns: the conference NOTIFYs a join brought (README: every change,
    the join and each state, a partial NOTIFY with the version plus
    one): at least one, each active and partial, Event conference, versions
    from version on by one, about user alone; the last shows user
    connected."""
    check(ns, "%s: none\n%s" % (what, state()))
    for i, n in enumerate(ns):
        confinfo.check_headers(n, what, True, "conference", CONFINFO)
        check(n.doc["state"] == "partial" and
              n.doc["version"] == version + i and
              confinfo.user_names(n.doc) == [user],
              "%s: %s, expected a partial, version %d, about %s alone\n%s"
              % (what, n.describe(), version + i, user, state()))
    check(joined(ns, user), "%s: the last does not show %s connected:\n%s"
          % (what, user, state()))


def wait_sipfrag(run, what):
    """Wait until a controller's SIPp (background) has received a
    terminated sipfrag NOTIFY, the outcome it is told (what it says is
    checked by sipcheck.check_refer once the SIPp has ended)."""
    def final():
        return [n for n in sipcheck.requests(sipcheck.trace_of(run),
                                             "NOTIFY", "received")
                if ",".join(sipcheck.header(n, "Subscription-State"))
                .lower().startswith("terminated")]
    harness.wait_for(final, STEP_S, what=what,
                     state=lambda: run.report(30))


def leg_state(fd, room, phone):
    return (fc.by_call_id(fd, room, phone.call_id) or {}).get("state")


def refer_ok(fd, name, ruri, refer_to, td, final, codes=(401, 202),
             linger_ms=LINGER_ACCEPTED_MS, progress=()):
    """A controller's REFER as mod (featurectl.refer): answers codes,
    final sipfrag final (sipcheck.check_refer). Returns the trace."""
    msgs = fc.refer(fd, name, "mod", ruri, refer_to, td,
                    linger_ms=linger_ms)
    sipcheck.check_refer(msgs, list(codes), name, final=final,
                         progress=progress)
    return msgs


# ---------------------------------------------------------------- cases

def case1(fd, phones, watchers):
    room = "e1"
    alice = Phone(fd, "alice", room)
    phones.append(alice)
    alice.call()
    r, _ = alice.subscribe("conference")
    check(sipcheck.status(r) == 200, "SUBSCRIBE Event: conference in "
          "alice's call dialog answered %r, expected 200" % r.start)
    wait_count(lambda: alice.notifies("conference"), 1, "the first "
               "conference NOTIFY", alice.dump)
    r, _ = alice.subscribe("dialog")
    check(sipcheck.status(r) == 200, "SUBSCRIBE Event: dialog in alice's "
          "call dialog (which already carries her conference "
          "subscription) answered %r, expected 200" % r.start)
    wait_count(lambda: alice.notifies("dialog"), 1, "the first dialog "
               "NOTIFY after the second SUBSCRIBE", alice.dump)

    def docs():
        msgs = alice.msgs()
        return (conf_docs(msgs, fd.tmpdir, "alice (conference)"),
                dialoginfo.notifies(msgs, fd.tmpdir, "alice (dialog)"))

    def counts():
        c, d = docs()
        return len(c), len(d)

    def state():
        c, d = docs()
        return "conference:\n%s\ndialog:\n%s\nall:\n%s" % (
            confinfo.dump(c), dialoginfo.dump(d), alice.dump())

    others = [m for m in alice.received("NOTIFY")
              if confinfo.event_names(m) not in (["conference"],
                                                 ["dialog"])]
    check(not others, "alice got NOTIFYs of another package: %r"
          % [sipcheck.header(m, "Event") for m in others])
    cn, dn = docs()
    check(len(cn) == 1 and len(dn) == 1, "after the two SUBSCRIBEs alice "
          "has %d conference and %d dialog NOTIFYs, expected one each "
          "(the first of each subscription):\n%s" % (len(cn), len(dn),
                                                     state()))
    for n, event, ctype, who in ((cn[0], "conference", CONFINFO,
                                  "conference"),
                                 (dn[0], "dialog", DLGINFO, "dialog")):
        confinfo.check_headers(n, "alice's first %s NOTIFY" % who, True,
                               event, ctype)
        same_dialog(n.msg, alice, "alice's first %s NOTIFY" % who)
        check(n.doc["version"] == 1 and n.doc["state"] == "full",
              "alice's first %s NOTIFY: %s, expected a full document, "
              "version 1" % (who, n.describe()))
    check(dialoginfo.dialog_by_call_id(dn[0].doc, alice.call_id)
          is not None, "alice's first dialog document lacks her own "
          "dialog: %s" % dn[0].describe())

    # bob joins: each package reports it, on its own subscription
    bob = Phone(fd, "bob", room)
    phones.append(bob)
    bob.call()
    harness.wait_for(lambda: joined(docs()[0], "bob") and
                     len(docs()[1]) >= 2, STEP_S, what="the conference "
                     "and the dialog NOTIFYs about bob", state=state)
    quiet(counts, "bob's join")
    cn, dn = docs()
    check_conf_news(cn[1:], 2, "bob", "alice's conference NOTIFYs about "
                    "bob", state)
    check(len(dn) == 2, "bob's join gave alice %d dialog NOTIFYs, "
          "expected one:\n%s" % (len(dn) - 1, state()))
    dialoginfo.check_headers(dn[1], "alice's dialog NOTIFY about bob",
                             True)
    check(dn[1].doc["version"] == 2 and dn[1].doc["state"] == "partial"
          and dialoginfo.dialog_by_call_id(dn[1].doc, bob.call_id)
          is not None, "alice's dialog NOTIFY about bob: %s, expected a "
          "partial, version 2, with bob's dialog" % dn[1].describe())
    for n in cn + dn:
        same_dialog(n.msg, alice, "case 1")
    n_conf = len(cn)

    # the dialog subscription ends alone
    r, _ = alice.subscribe("dialog", expires=0)
    check(sipcheck.status(r) == 200, "alice's un-SUBSCRIBE (Event: "
          "dialog, Expires: 0) answered %r, expected 200" % r.start)
    harness.wait_for(lambda: any(n.substate == "terminated"
                                 for n in docs()[1]), STEP_S,
                     what="a terminated dialog NOTIFY after alice's "
                     "un-SUBSCRIBE", state=state)
    quiet(counts, "alice's un-SUBSCRIBE of the dialog package")
    ends = [m for m in alice.notifies("dialog")
            if sipcheck.header1(m, "Subscription-State").lower()
            .startswith("terminated")]
    check(len(ends) == 1 and event_header(ends[0])[0] == "dialog",
          "alice: %d terminated dialog NOTIFYs, expected one (Event: "
          "dialog):\n%s" % (len(ends), state()))
    cn, _ = docs()
    check(len(cn) == n_conf and all(n.substate == "active" for n in cn),
          "alice's un-SUBSCRIBE of the dialog package touched her "
          "conference subscription:\n%s" % state())
    n_dialog = len(alice.notifies("dialog"))

    # carol joins: the conference subscription goes on, alone
    carol = Phone(fd, "carol", room)
    phones.append(carol)
    carol.call()
    harness.wait_for(lambda: joined(docs()[0], "carol"), STEP_S,
                     what="conference NOTIFYs about carol", state=state)
    quiet(counts, "carol's join")
    cn, _ = docs()
    check_conf_news(cn[n_conf:], n_conf + 1, "carol", "alice's conference "
                    "NOTIFYs about carol", state)
    check(len(alice.notifies("dialog")) == n_dialog, "alice got a dialog "
          "NOTIFY after her dialog subscription ended:\n%s" % state())
    log("case 1: conference %s; dialog %s" % (
        ", ".join("v%d" % n.doc["version"] for n in cn),
        ", ".join(n.substate_raw for n in docs()[1])))


def check_event_id(n, what):
    """A dialoginfo.Notify carries Event: dialog;id=abc exactly."""
    typ, params = event_header(n.msg)
    check(typ == "dialog" and params == {"id": "abc"}, "%s: %s carries "
          "Event: %r, expected dialog;id=abc (the SUBSCRIBE's id, RFC 6665 "
          "8.2.1)" % (what, n.describe(), sipcheck.header(n.msg, "Event")))


def case2(fd, phones, watchers):
    room = "e2"
    event = "dialog;id=abc"
    p1 = Phone(fd, "pat", room)
    phones.append(p1)
    p1.call()
    w = dlgwatch.DlgWatcher(fd, room, fd.tmpdir, name="idwatch",
                            event=event, accept=DLGINFO)
    watchers.append(w)
    w.start()
    harness.wait_for(lambda: len(w.received()) >= 1, STEP_S,
                     what="the first NOTIFY to SUBSCRIBE Event: %s" % event,
                     state=w.dump)
    check_event_id(w.received()[0], "idwatch's first NOTIFY")
    first = w.received()[0]
    check(first.doc is not None and first.doc["state"] == "full" and
          first.doc["version"] == 1 and first.substate == "active",
          "idwatch: the first NOTIFY is %s, expected a full document, "
          "version 1, active" % first.describe())
    p2 = Phone(fd, "quinn", room)
    phones.append(p2)
    p2.call()
    harness.wait_for(lambda: any(
        dialoginfo.dialog_by_call_id(d, p2.call_id) for d in w.docs()),
        STEP_S, what="a NOTIFY about quinn's dialog", state=w.dump)
    w.unsubscribe()
    ns = w.received()
    check(len(ns) >= 3 and ns[1].doc is not None and
          ns[1].doc["state"] == "partial" and ns[1].doc["version"] == 2,
          "idwatch: expected a first, a partial about quinn, and a "
          "terminated NOTIFY:\n%s" % w.dump())
    check(ns[-1].substate == "terminated", "idwatch: the last NOTIFY is "
          "%s, expected terminated" % ns[-1].describe())
    for i, n in enumerate(ns):
        check_event_id(n, "idwatch's NOTIFY %d" % (i + 1))
    log("case 2: %d NOTIFYs, each Event: dialog;id=abc" % len(ns))


def case3(fd, phones, watchers):
    room = "e3"
    p = Phone(fd, "rita", room)
    phones.append(p)
    p.call()
    # control first: her exact leg URI watches her dialog
    w = dlgwatch.DlgWatcher(fd, room, fd.tmpdir, name="legwatch",
                            target=p.leg_uri())
    watchers.append(w)
    w.start()
    harness.wait_for(lambda: w.docs(), STEP_S, what="legwatch's first "
                     "document", state=w.dump)
    doc = w.docs()[0]
    check(len(doc["dialogs"]) == 1 and doc["dialogs"][0]["id"] == p.token
          and doc["dialogs"][0]["call_id"] == p.call_id,
          "SUBSCRIBE to rita's leg URI %s: first document %s, expected "
          "her dialog alone" % (p.leg_uri(), dialoginfo.summary(doc)))
    long_gr = p.token + "xyz"
    check(len(long_gr) >= 20 and long_gr[:17] == p.token, "gr %r" % long_gr)
    uri = "%s;gr=%s" % (p.conf, long_gr)
    r, ns = confwatch.subscribe_once(fd, uri, event="dialog",
                                     accept=DLGINFO, name="longgr",
                                     linger_s=NOTIFY_LINGER_S)
    check(sipcheck.status(r) == 404 and not ns, "SUBSCRIBE Event: dialog "
          "to %s (a gr whose first 17 characters are rita's TOKEN %s) got "
          "%r and %d NOTIFYs, expected 404 and none%s"
          % (uri, p.token, r.start, len(ns),
             "".join("\n" + n.body for n in ns)))
    w.unsubscribe()
    log("case 3: gr=%s watches rita's dialog; gr=%s 404" % (p.token,
                                                             long_gr))


def case4(fd, phones, watchers):
    """Two transferees at once: dan's subscription ends on "100 Trying",
    eli's on "180 Ringing"."""
    room = "e4"
    parties = [(Phone(fd, "dan", room, refer=202), "SIP/2.0 100 Trying"),
               (Phone(fd, "eli", room, refer=202), "SIP/2.0 180 Ringing")]
    runs = []
    for p, _ in parties:
        phones.append(p)
        p.call()
    for p, _ in parties:
        runs.append(fc.refer(
            fd, "sst-noresource-" + p.name, "mod", p.conf,
            "<urn:feature:SingleStepTransfer;target=sip:vic@%s:9>"
            % harness.LOOPBACK, p.target_dialog(), background=True,
            linger_ms=LINGER_TRANSFER_MS))
    RUNS.extend(runs)
    for (p, frag), run in zip(parties, runs):
        harness.wait_for(lambda: p.received("REFER"), STEP_S,
                         what="the focus's REFER to %s" % p.name,
                         state=p.dump)
        r = p.notify_refer(frag, "terminated;reason=noresource")
        check(sipcheck.status(r) == 200, "the focus answered %s's "
              "terminated refer NOTIFY with %r, expected 200"
              % (p.name, r.start))
    for (p, frag), run in zip(parties, runs):
        wait_sipfrag(run, "case 4 (%s, %r): the controller's final "
                     "sipfrag" % (p.name, frag))
    for p, _ in parties:
        check(not p.received("BYE"), "case 4: %s got BYE:\n%s"
              % (p.name, p.dump()))
        st = leg_state(fd, room, p)
        check(st == "connected", "case 4: conference.show %s: %s is %r, "
              "expected connected (%r)" % (room, p.name, st,
                                           fc.states(fd, room)))
    # the legs are no longer busy with the transfers
    holds = [fc.refer(fd, "hold-" + p.name, "mod", p.leg_uri(),
                      "<urn:feature:HoldCall>", None, background=True,
                      linger_ms=LINGER_ACCEPTED_MS) for p, _ in parties]
    RUNS.extend(holds)
    for (p, frag), run, hold in zip(parties, runs, holds):
        msgs = sipcheck.sipp_ok(hold, "hold-" + p.name)
        sipcheck.check_refer(msgs, [401, 202], "case 4: HoldCall of %s "
                             "after the transfer ended on %r"
                             % (p.name, frag), final=200)
        ri = p.received("INVITE")
        check(len(ri) == 1, "case 4: %s got %d re-INVITEs after HoldCall, "
              "expected 1\n%s" % (p.name, len(ri), p.dump()))
        off = sipcheck.parse_sdp(ri[0].body)
        check(sipcheck.sdp_direction(off, off["media"][0]) == "sendonly",
              "case 4: HoldCall's re-INVITE to %s offers:\n%s"
              % (p.name, ri[0].body))
        msgs = sipcheck.sipp_ok(run, "sst-noresource-" + p.name)
        sipcheck.check_refer(msgs, [401, 202], "case 4 SingleStepTransfer "
                             "of %s (subscription ended on %r)"
                             % (p.name, frag), final=408)
    log("case 4: final 408 each, both stay, HoldCall 202/200 afterwards")


BAD_TARGETS = [("gt", "sip%3Ax%40h%3E"),      # sip:x@h>
               ("nohost", "sips:"),
               ("scheme", "sipx:bob@h"),
               ("space", "sip:bob%20x@h")]


def case5(fd, phones, watchers):
    room = "e5"
    ann = Phone(fd, "ann", room)
    phones.append(ann)
    ann.call()
    fd.mgmt_result("conference.admission", {"id": room, "mode": "manual"})
    erin = Phone(fd, "erin", room)
    phones.append(erin)
    erin.call(answered=False)
    erin_state = harness.wait_for(
        lambda: leg_state(fd, room, erin), STEP_S,
        what="conference.show %s lists erin" % room,
        state=lambda: fc.states(fd, room))
    cases = []
    for label, t in BAD_TARGETS:
        cases.append(("deflect-" + label, "mod", erin.leg_uri(),
                      "DeflectCall;target=%s" % t, None, [400]))
        cases.append(("transfer-" + label, "mod", ann.leg_uri(),
                      "SingleStepTransfer;target=%s" % t, None, [400]))
    fc.refused_at_once(fd, cases, "case 5", RUNS,
                       linger_ms=LINGER_REFUSED_MS)
    quiet(lambda: len(ann.msgs()) + len(erin.msgs()), "case 5 refusals")
    check(not ann.received("REFER") and not ann.received("INVITE") and
          not ann.received("BYE"), "case 5: a refused REFER reached ann:"
          "\n%s" % ann.dump())
    check(not erin.invite_answers(), "case 5: erin, waiting, got a final "
          "answer:\n%s" % erin.dump())
    check(leg_state(fd, room, ann) == "connected" and
          leg_state(fd, room, erin) == erin_state,
          "case 5: conference.show %s after the refusals: %r" %
          (room, fc.states(fd, room)))
    # control: a good target deflects her
    good = "sip:frank@%s:9" % harness.LOOPBACK
    refer_ok(fd, "deflect-good", erin.leg_uri(),
             "<urn:feature:DeflectCall;target=%s>" % good, None, 200)
    harness.wait_for(erin.invite_answers, STEP_S, what="erin's final "
                     "answer", state=erin.dump)
    a = erin.invite_answers()[0]
    check(sipcheck.status(a) == 302 and
          sipcheck.header(a, "Contact") == ["<%s>" % good],
          "case 5: DeflectCall to %s: erin got %r with Contact %r, "
          "expected 302 with <%s>" % (good, a.start,
                                      sipcheck.header(a, "Contact"), good))
    log("case 5: %d bad targets 400; a good one deflects" % len(cases))


def case6(fd, phones, watchers):
    room, other = "e6a", "e6b"
    tom = Phone(fd, "tom", room, refer=202)
    uma = Phone(fd, "uma", other)
    phones += [tom, uma]
    tom.call()
    uma.call()
    run = fc.refer(fd, "sst-busy", "mod", tom.conf,
                   "<urn:feature:SingleStepTransfer;target=sip:vic@%s:9>"
                   % harness.LOOPBACK, tom.target_dialog(),
                   background=True, linger_ms=LINGER_TRANSFER_MS)
    RUNS.append(run)
    harness.wait_for(lambda: tom.received("REFER"), STEP_S,
                     what="the focus's REFER to tom", state=tom.dump)
    r = tom.notify_refer("SIP/2.0 100 Trying", "active;expires=60")
    check(sipcheck.status(r) == 200, "the focus answered tom's refer "
          "NOTIFY with %r" % r.start)

    msgs = fc.refer(fd, "merge-busy", "mod", uma.conf,
                    "<urn:feature:ConferenceCalls;leg=%s>" % tom.token,
                    uma.target_dialog(), linger_ms=LINGER_REFUSED_MS)
    sipcheck.check_refer(msgs, [401, 488], "case 6 ConferenceCalls naming "
                         "tom (transferring) as second dialog")
    resp = fd.mgmt("participant.move", {"id": room,
                                        "participant": tom.call_id,
                                        "to": other})
    check("error" in resp and resp["error"].get("code") == BUSY_STATE,
          "case 6: participant.move of tom while his transfer is "
          "outstanding answered %r, expected error %d (not in a stable "
          "call state)" % (resp, BUSY_STATE))
    check(not tom.received("INVITE") and not tom.received("BYE"),
          "case 6: tom, transferring, got a request:\n%s" % tom.dump())
    check(leg_state(fd, room, tom) == "connected", "case 6: conference.show"
          " %s: %r" % (room, fc.states(fd, room)))

    r = tom.notify_refer("SIP/2.0 486 Busy Here",
                         "terminated;reason=noresource")
    check(sipcheck.status(r) == 200, "the focus answered tom's final "
          "NOTIFY with %r" % r.start)
    wait_sipfrag(run, "case 6: the controller's final sipfrag")
    check(not tom.received("BYE") and leg_state(fd, room, tom) ==
          "connected", "case 6: after the 486 tom is %r in %s, BYEs %d"
          % (leg_state(fd, room, tom), room, len(tom.received("BYE"))))
    res = fd.mgmt_result("participant.move", {"id": room,
                                              "participant": tom.call_id,
                                              "to": other})
    log("case 6: participant.move after the 486: %r" % res)
    harness.wait_for(lambda: tom.received("INVITE"), STEP_S,
                     what="tom's re-INVITE into %s" % other,
                     state=tom.dump)
    ri = tom.received("INVITE")
    check(len(ri) == 1, "case 6: tom got %d re-INVITEs" % len(ri))
    sipcheck.check_focus_contact(sipcheck.header1(ri[0], "Contact"),
                                 fc.conf_uri(fd, other),
                                 "case 6: tom's re-INVITE", tom.token)
    want = sorted([tom.call_id, uma.call_id])
    harness.wait_for(lambda: sorted(p.get("call_id") for p in
                                    mc.legs(fd, other)) == want, STEP_S,
                     what="conference.show %s lists tom and uma" % other,
                     state=lambda: fc.states(fd, other))
    msgs = sipcheck.sipp_ok(run, "sst-busy")
    sipcheck.check_refer(msgs, [401, 202], "case 6 SingleStepTransfer "
                         "(target busy)", final=486)
    log("case 6: move -32004 and ConferenceCalls 488 while transferring; "
        "final 486; moved afterwards")


RUNS = []     # background SIPps of the case running, killed at its end
CASES = {1: case1, 2: case2, 3: case3, 4: case4, 5: case5, 6: case6}


# ---------------------------------------------------------------- main

def run_case(n, users):
    phones, watchers = [], []
    t0 = time.monotonic()
    try:
        with harness.Focusd(extra_args=users.focusd_args(),
                            name="focusd-case%d" % n) as fd:
            CASES[n](fd, phones, watchers)
    finally:
        for w in watchers:
            w.stop()
        for p in phones:
            p.close()
        for r in RUNS:
            r.kill()
        del RUNS[:]
    log("case %d passed (%.1f s)" % (n, time.monotonic() - t0))


def main():
    mc.scenario(fc.REFER_SCENARIO)
    dialoginfo.schema_path()
    confinfo.xmllint_path()
    wanted = [int(a) for a in sys.argv[1:]] or sorted(CASES)
    users = fc.Users()
    failed = []
    try:
        for n in wanted:
            log("===== case %d" % n)
            try:
                run_case(n, users)
            except TestFailure as e:
                log("case %d FAILED: %s" % (n, e))
                failed.append((n, str(e).split("\n", 1)[0]))
    finally:
        users.cleanup()
    if failed:
        fail("%d of %d cases failed:\n%s" % (
            len(failed), len(wanted), "\n".join(
                "  case %d: %s" % f for f in failed)))


if __name__ == "__main__":
    harness.run_main(main)
