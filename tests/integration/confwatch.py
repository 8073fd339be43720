"""A conference-event watcher (RFC 4575, RFC 6665) in Python, for tests
that must say exactly when it stops watching; with event="dialog", a
dialog-event watcher (RFC 4235) the same way.

What it does: one UDP socket on 127.0.0.1. start() sends an out-of-dialog
SUBSCRIBE (Event: conference) to sip:ROOM@focusd and retransmits it at T1,
2*T1, ... until a final response; a receiver thread answers every NOTIFY
with 200 (a retransmitted one too) and keeps each NOTIFY once (by CSeq)
with its arrival time. unsubscribe() sends the in-dialog SUBSCRIBE with
Expires: 0 (Request-URI from the 200's Contact, focusd's To tag) and waits
for its 200 and for a NOTIFY with Subscription-State: terminated.

Other packages: event names the Event header (default "conference"),
accept the Accept header (default: the package's own type, from ACCEPT;
False: no Accept header), target a whole Request-URI for the first
SUBSCRIBE instead of sip:ROOM@focusd, e.g. a leg-specific URI
"sip:room1@127.0.0.1:5060;gr=l0123abcd" (the To header then names it
too). dialog_info() returns the dialog-info documents received so far,
validated and parsed by dialoginfo.py.

subscribe_once() sends one out-of-dialog SUBSCRIBE to any Request-URI
from a socket of its own and returns the final response (for the
refusals: a SIPp scenario would need one recv per possible status), and
the NOTIFYs that came meanwhile (there should be none), answered 200.

Why not SIPp: a SIPp watcher (tests/sipp/uac_subscribe_conf.xml) decides
when to end from timers fixed when it starts; a test that must watch
through a sequence of calls and then stop, before the conference ends,
needs to say when. The messages are built here by hand; they are parsed
with sipcheck.parse_message.

Bounded: every wait has a deadline; the receiver polls its stop flag every
50 ms and ends after max_duration seconds whatever happens.

Only the Python standard library is used.
"""

import random
import socket
import threading
import time

import harness
import sipcheck
from harness import check, fail, log

T1 = 0.5
# Event package -> the Accept header a watcher of it sends by default.
ACCEPT = {"conference": "application/conference-info+xml",
          "dialog": "application/dialog-info+xml"}


class ConfWatcher:
    def __init__(self, fd, room, name="watcher", expires=300,
                 max_duration=60.0, event="conference", accept=None,
                 target=None):
        self.fd, self.room, self.name = fd, room, name
        self.expires = expires
        self.event = event
        self.accept = ACCEPT.get(event) if accept is None else accept
        self.max_duration = max_duration
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((harness.LOOPBACK, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        rnd = "%016x" % random.getrandbits(64)
        self.call_id = "%s@focusd-tests" % rnd
        self.tag = rnd[:10]
        self.focus_tag = None
        self.target = target or "sip:%s@%s" % (room, fd.sip_target)
        self.to_uri = self.target
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._responses = {}         # CSeq number -> first final response
        self._notifies = []          # SipMsg, once per CSeq
        self._seen = set()
        self._other = []             # requests other than NOTIFY
        self._thread = None
        self._t0 = time.monotonic()

    # -- messages

    def _request(self, uri, cseq, expires, to_tag):
        branch = "z9hG4bK-%016x" % random.getrandbits(64)
        to = "<%s>" % self.to_uri
        if to_tag:
            to += ";tag=%s" % to_tag
        lines = [
            "SUBSCRIBE %s SIP/2.0" % uri,
            "Via: SIP/2.0/UDP %s:%d;branch=%s;rport"
            % (harness.LOOPBACK, self.port, branch),
            "Max-Forwards: 70",
            "From: <sip:%s@%s:%d>;tag=%s" % (self.name, harness.LOOPBACK,
                                             self.port, self.tag),
            "To: %s" % to,
            "Call-ID: %s" % self.call_id,
            "CSeq: %d SUBSCRIBE" % cseq,
            "Contact: <sip:%s@%s:%d>" % (self.name, harness.LOOPBACK,
                                         self.port),
            "Event: %s" % self.event]
        if self.accept:
            lines.append("Accept: %s" % self.accept)
        lines += [
            "Expires: %d" % expires,
            "Allow: NOTIFY",
            "User-Agent: focusd-tests confwatch",
            "Content-Length: 0", "", ""]
        return "\r\n".join(lines).encode()

    def _answer(self, msg, addr):
        self.sock.sendto(ok_to(msg, "<sip:%s@%s:%d>" % (
            self.name, harness.LOOPBACK, self.port)), addr)

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
            st = sipcheck.status(msg)
            cseq = sipcheck.header(msg, "CSeq")
            num = int(cseq[0].split()[0]) if cseq else -1
            with self._lock:
                if st is not None:
                    if st >= 200 and num not in self._responses:
                        self._responses[num] = msg
                    continue
                if sipcheck.method(msg) != "NOTIFY":
                    self._other.append(msg)
                    continue
                if num not in self._seen:
                    self._seen.add(num)
                    self._notifies.append(msg)
            try:
                self._answer(msg, addr)
            except OSError:
                pass

    def _transaction(self, data, cseq, timeout, what):
        """Send a SUBSCRIBE with retransmissions until its final
        response; returns it."""
        deadline = time.monotonic() + timeout
        interval, next_send = T1, 0.0
        while True:
            with self._lock:
                r = self._responses.get(cseq)
            if r is not None:
                return r
            now = time.monotonic()
            if now >= deadline:
                fail("%s: no final response to %s within %.1f s"
                     % (self.name, what, timeout))
            if now >= next_send:
                self.sock.sendto(data, (harness.LOOPBACK, self.fd.sip_port))
                next_send = now + interval
                interval = min(interval * 2, 4.0)
            time.sleep(0.01)

    # -- use

    def start(self, timeout=5.0):
        """SUBSCRIBE; returns once focusd has said 200 (fails otherwise)."""
        self._thread = threading.Thread(target=self._rx_loop, daemon=True,
                                        name="confwatch-" + self.name)
        self._thread.start()
        r = self._transaction(self._request(self.target, 1, self.expires,
                                            None), 1, timeout, "SUBSCRIBE")
        check(sipcheck.status(r) == 200, "%s: SUBSCRIBE (Event: %s) to %s "
              "got %r" % (self.name, self.event, self.target, r.start))
        self.focus_tag = sipcheck.tag_of(sipcheck.header1(r, "To"))
        check(self.focus_tag, "%s: the 200 to SUBSCRIBE has no To tag"
              % self.name)
        contact = sipcheck.header(r, "Contact")
        if contact:
            self.target = sipcheck.name_addr(contact[0])[0]
        log("%s: subscribed to %s events of %s (dialog %s, tags %s/%s)"
            % (self.name, self.event, self.to_uri, self.call_id, self.tag,
               self.focus_tag))
        return self

    def notifies(self):
        with self._lock:
            return list(self._notifies)

    def dialog_info(self, workdir):
        """The dialog-info documents (dialoginfo.parse_doc dicts) received
        so far, in order, each validated against the RFC 4235 schema."""
        import dialoginfo
        return dialoginfo.docs(self, workdir)

    def others(self):
        with self._lock:
            return list(self._other)

    def wait_notifies(self, count, timeout, what):
        """Wait until count NOTIFYs are in; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            ns = self.notifies()
            if len(ns) >= count:
                return ns
            if time.monotonic() >= deadline:
                fail("%s: %d NOTIFY(s) within %.1f s, expected %d (%s)"
                     % (self.name, len(ns), timeout, count, what))
            time.sleep(0.02)

    def unsubscribe(self, timeout=5.0):
        """Expires: 0 in the dialog; waits for its 200 and a NOTIFY with
        Subscription-State: terminated."""
        r = self._transaction(self._request(self.target, 2, 0,
                                            self.focus_tag), 2, timeout,
                              "the un-SUBSCRIBE")
        check(sipcheck.status(r) == 200, "%s: un-SUBSCRIBE got %r"
              % (self.name, r.start))
        deadline = time.monotonic() + timeout

        def terminated():
            return [n for n in self.notifies() if any(
                v.strip().lower().startswith("terminated")
                for v in sipcheck.header(n, "Subscription-State"))]
        while not terminated():
            if time.monotonic() >= deadline:
                fail("%s: no NOTIFY with Subscription-State: terminated "
                     "within %.1f s of the un-SUBSCRIBE" % (self.name,
                                                             timeout))
            time.sleep(0.02)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        try:
            self.sock.close()
        except OSError:
            pass


def ok_to(msg, contact=None):
    """The 200 OK (bytes) to a request received: its Via, From, To,
    Call-ID and CSeq, and contact as the Contact if given."""
    lines = ["SIP/2.0 200 OK"]
    for n, v in msg.headers:
        if n.lower() in ("via", "v", "from", "f", "to", "t", "call-id", "i",
                         "cseq"):
            lines.append("%s: %s" % (n, v))
    if contact is not None:
        lines.append("Contact: %s" % contact)
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def subscribe_once(fd, uri, event="conference", accept=None, expires=60,
                   timeout=4.0, name="probe", linger_s=0.0):
    """One out-of-dialog SUBSCRIBE with Request-URI and To uri (e.g.
    "sip:room1@HOST:PORT", or a leg URI with ;gr=) from a UDP socket of
    our own, retransmitted at T1, 2*T1, ... (RFC 3261 17.1.2.2) until a
    final response or timeout (then it fails). accept None: no Accept
    header. Returns (final response, NOTIFYs received meanwhile), both
    sipcheck.SipMsg; the NOTIFYs are answered 200. After the final
    response it listens linger_s more for a NOTIFY."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    notifies = []
    try:
        sock.bind((harness.LOOPBACK, 0))
        port = sock.getsockname()[1]
        rnd = "%016x" % random.getrandbits(64)
        lines = [
            "SUBSCRIBE %s SIP/2.0" % uri,
            "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-%s;rport"
            % (harness.LOOPBACK, port, rnd),
            "Max-Forwards: 70",
            "From: <sip:%s@%s:%d>;tag=%s" % (name, harness.LOOPBACK, port,
                                             rnd[:8]),
            "To: <%s>" % uri,
            "Call-ID: %s@focusd-tests" % rnd,
            "CSeq: 1 SUBSCRIBE",
            "Contact: <sip:%s@%s:%d>" % (name, harness.LOOPBACK, port),
            "Event: %s" % event,
        ]
        if accept is not None:
            lines.append("Accept: %s" % accept)
        lines += ["Expires: %d" % expires,
                  "User-Agent: focusd-tests confwatch.subscribe_once",
                  "Content-Length: 0", "", ""]
        data = "\r\n".join(lines).encode()
        log("%s: SUBSCRIBE %s Event: %s Accept: %s" % (name, uri, event,
                                                       accept))
        deadline = time.monotonic() + timeout
        interval, next_send = T1, 0.0
        final, linger_until = None, None
        while True:
            now = time.monotonic()
            if final is not None and now >= linger_until:
                return final, notifies
            if final is None and now >= deadline:
                fail("%s: no final response to SUBSCRIBE %s (Event: %s) "
                     "within %.1f s" % (name, uri, event, timeout))
            if final is None and now >= next_send:
                sock.sendto(data, (harness.LOOPBACK, fd.sip_port))
                next_send = now + interval
                interval = min(interval * 2, 4.0)
            wake = linger_until if final is not None else \
                min(next_send, deadline)
            sock.settimeout(max(0.01, wake - now))
            try:
                pkt, addr = sock.recvfrom(65536)
            except socket.timeout:
                continue
            msg = sipcheck.parse_message(pkt.decode("utf-8", "replace"),
                                         time.time(), "received")
            st = sipcheck.status(msg)
            if st is None:
                if sipcheck.method(msg) == "NOTIFY":
                    notifies.append(msg)
                    try:
                        sock.sendto(ok_to(msg), addr)
                    except OSError:
                        pass
                continue
            if sipcheck.cseq_method(msg) != "SUBSCRIBE" or st < 200:
                continue
            if final is None:
                log("%s: %s" % (name, msg.start))
                final = msg
                linger_until = time.monotonic() + linger_s
    finally:
        sock.close()


def describe(ns):
    """NOTIFYs for a failure message: CSeq, Subscription-State and the
    start of the body."""
    out = []
    for n in ns:
        out.append("  %s; CSeq %s; Subscription-State %s\n    %s"
                   % (n.start, ",".join(sipcheck.header(n, "CSeq")),
                      ",".join(sipcheck.header(n, "Subscription-State")),
                      " ".join(n.body.split())[:500]))
    return "\n".join(out)
