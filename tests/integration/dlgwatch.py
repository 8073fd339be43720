"""A dialog-event watcher (RFC 4235) for tests that must refresh, end and
read a subscription step by step; and one-shot SUBSCRIBEs for the
refusals.

What it does:
- DlgWatcher is a confwatch.ConfWatcher with Event: dialog (Accept:
  application/dialog-info+xml unless told otherwise) that can also
  refresh() its subscription (an in-dialog SUBSCRIBE with a new Expires)
  and unsubscribe() after that: every request of the subscription has
  its own, rising CSeq (ConfWatcher's unsubscribe() uses CSeq 2 whatever
  came before). received() / docs() give the NOTIFYs and documents so
  far, validated against tests/schemas/dialog-info.xsd and parsed by
  dialoginfo.py; wait_docs() polls until a predicate over the documents
  holds, and fails with the documents seen when it does not in time.
  hold_answers() / release_answers() keep NOTIFYs unanswered for a while
  (recorded all the same), to act while a NOTIFY transaction is open.
- subscribe_once() sends one out-of-dialog SUBSCRIBE to any Request-URI
  (a conference URI, a leg URI with ;gr=, an unknown one) and returns the
  final response; NOTIFYs that come (there should be none for a refusal)
  are answered 200 and returned too.

Bounded: every wait has a deadline; requests are retransmitted at T1,
2*T1, ... (RFC 3261 17.1.2.2) until a final response or the deadline.

Only the Python standard library is used (plus xmllint, via
dialoginfo.py).
"""

import random
import socket
import threading
import time

import confwatch
import dialoginfo
import harness
import sipcheck
from harness import check, fail, log


class DlgWatcher(confwatch.ConfWatcher):
    def __init__(self, fd, room, workdir, name="dlgwatcher", **kw):
        kw.setdefault("event", "dialog")
        super().__init__(fd, room, name=name, **kw)
        self.workdir = workdir
        self._cseq = 1          # start() sends CSeq 1
        self._hold_lock = threading.Lock()
        self._held = None       # NOTIFYs kept unanswered, or None

    # -- answering NOTIFYs

    def hold_answers(self):
        """From now on NOTIFYs are kept (and recorded) but not answered,
        so that the notifier's NOTIFY transaction stays open (it
        retransmits) until release_answers()."""
        with self._hold_lock:
            if self._held is None:
                self._held = []

    def release_answers(self):
        """Answer every NOTIFY held (retransmissions too) and answer at
        once again from now on."""
        with self._hold_lock:
            held, self._held = self._held or [], None
        for msg, addr in held:
            super()._answer(msg, addr)

    def _answer(self, msg, addr):
        with self._hold_lock:
            if self._held is not None:
                self._held.append((msg, addr))
                return
        super()._answer(msg, addr)

    # -- reading

    def received(self):
        """dialoginfo.Notify for every NOTIFY so far (retransmissions
        dropped), each body validated and parsed."""
        return dialoginfo.received(self, self.workdir, self.name)

    def docs(self):
        return [n.doc for n in self.received() if n.doc is not None]

    def dump(self):
        return dialoginfo.dump(self.received()) or "  (no NOTIFY)"

    def wait_docs(self, pred, timeout, what):
        """Poll until pred(docs) is true; returns its value. Fails with
        what and every NOTIFY received so far."""
        return harness.wait_for(
            lambda: pred(self.docs()), timeout, interval=0.03,
            what="%s: %s" % (self.name, what),
            state=lambda: "NOTIFYs so far:\n" + self.dump())

    # -- in-dialog requests

    def _in_dialog(self, expires, timeout, what):
        check(self.focus_tag, "%s: %s before the subscription was set up"
              % (self.name, what))
        self._cseq += 1
        cseq = self._cseq
        sent_at = time.time()
        r = self._transaction(self._request(self.target, cseq, expires,
                                            self.focus_tag), cseq, timeout,
                              what)
        return r, sent_at

    def refresh(self, expires=300, timeout=5.0):
        """An in-dialog SUBSCRIBE with Expires: expires; insists on 200.
        Returns the wall-clock time it was sent (NOTIFY times compare with
        it)."""
        r, sent_at = self._in_dialog(expires, timeout, "the refresh")
        check(sipcheck.status(r) == 200, "%s: the refresh (Expires: %d) "
              "got %r, expected 200" % (self.name, expires, r.start))
        log("%s: refreshed (Expires: %d): %s" % (self.name, expires,
                                                 r.start))
        return sent_at

    def unsubscribe(self, timeout=5.0):
        """Expires: 0 in the dialog; insists on 200 and a NOTIFY with
        Subscription-State: terminated after it. NOTIFYs held
        (hold_answers()) are answered once the 200 is in. Returns the
        wall-clock time the un-SUBSCRIBE was sent."""
        r, sent_at = self._in_dialog(0, timeout, "the un-SUBSCRIBE")
        check(sipcheck.status(r) == 200, "%s: un-SUBSCRIBE got %r, "
              "expected 200" % (self.name, r.start))
        self.release_answers()
        deadline = time.monotonic() + timeout
        while not any(
                any(v.strip().lower().startswith("terminated")
                    for v in sipcheck.header(n, "Subscription-State"))
                for n in self.notifies()):
            if time.monotonic() >= deadline:
                fail("%s: no NOTIFY with Subscription-State: terminated "
                     "within %.1f s of the un-SUBSCRIBE; NOTIFYs:\n%s"
                     % (self.name, timeout, self.dump()))
            time.sleep(0.02)
        log("%s: un-subscribed" % self.name)
        return sent_at


# ---------------------------------------------------------------- one-shot

def subscribe_once(fd, uri, event="dialog",
                   accept=dialoginfo.DIALOGINFO_TYPE, expires=60,
                   timeout=4.0, name="probe"):
    """One out-of-dialog SUBSCRIBE with Request-URI and To uri (e.g.
    "sip:room1@HOST:PORT;gr=l0123456789abcdef") from a UDP socket of our
    own. accept None: no Accept header. Returns (final response, NOTIFYs
    received meanwhile), both sipcheck.SipMsg; the NOTIFYs are answered
    200. After the final response it listens 0.2 s more for a NOTIFY."""
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
                  "User-Agent: focusd-tests dlgwatch.subscribe_once",
                  "Content-Length: 0", "", ""]
        data = "\r\n".join(lines).encode()
        log("%s: SUBSCRIBE %s Event: %s Accept: %s" % (name, uri, event,
                                                       accept))
        deadline = time.monotonic() + timeout
        interval, next_send = confwatch.T1, 0.0
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
                    _answer(sock, msg, addr)
                continue
            if sipcheck.cseq_method(msg) != "SUBSCRIBE" or st < 200:
                continue
            if final is None:
                log("%s: %s" % (name, msg.start))
                final = msg
                linger_until = time.monotonic() + 0.2
    finally:
        sock.close()


def _answer(sock, msg, addr):
    lines = ["SIP/2.0 200 OK"]
    for n, v in msg.headers:
        if n.lower() in ("via", "v", "from", "f", "to", "t", "call-id", "i",
                         "cseq"):
            lines.append("%s: %s" % (n, v))
    lines += ["Content-Length: 0", "", ""]
    try:
        sock.sendto("\r\n".join(lines).encode(), addr)
    except OSError:
        pass
