"""Dialog-event watchers (RFC 4235) in Python: DlgWatcher, for tests that
must refresh, end and read a subscription step by step; and Controller,
the controller's view in draft-audet-sipping-feature-ref's call flows
(section 5): a subscriber to the dialog event package of the
Refer-Recipient, here the focus's dialogs with one conference, that
checks the dialog-info NOTIFYs it receives as features take effect.

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
- Controller is a DlgWatcher (name "controller") on the conference URI.
  - start() subscribes and waits for the first NOTIFY: active, a full
    document (RFC 6665 4.2.2); returns it.
  - mark() / wait() / history(): the documents so far are parsed afresh
    (every body validated); wait() polls until a document at or after a
    mark holds a dialog in a wanted state, so a test can say "this
    change was announced after that REFER went out"; when() gives the
    arrival time (wall clock, as in SIPp's traces) of a document's
    NOTIFY.
  - finish() un-SUBSCRIBEs, then checks the whole NOTIFY sequence: every
    NOTIFY but the last active with a dialog-info body; the last
    terminated; versions contiguous from the first, full, document
    (dialoginfo.check_versions); every later document partial with
    exactly one dialog (README, Dialog event package); every document's
    entity the conference URI; and every dialog element as the README
    describes it: local identity the conference URI, local target the
    leg's URI (CONF-URI;gr=ID) with isfocus=true, +sip.rendering yes/no
    exactly while confirmed, a duration while confirmed and none before.
    The last NOTIFY (answering Expires: 0) may carry no body, a new full
    document (the next version; kept as final_doc), or the previous
    document again with its version (Sofia-SIP's nua resends the last
    NOTIFY body by itself); that resent copy is left out of the version
    check. Returns the documents before the last NOTIFY, for sequence
    checks (check_steps).
- step(): one dialog element as a short string for sequence assertions:
  "early", "confirmed/yes" (the +sip.rendering value), "terminated/
  rejected/480" (state event and code); by_id(), by_call_id(): finders
  of a dialog in a document.

One-shot SUBSCRIBEs (the refusals) are confwatch.subscribe_once().

Bounded: every wait has a deadline; requests are retransmitted at T1,
2*T1, ... (RFC 3261 17.1.2.2) until a final response or the deadline; a
watcher ends after max_duration seconds whatever happens.

Only the Python standard library is used (plus xmllint, via
dialoginfo.py).
"""

import threading
import time

import confwatch
import dialoginfo
import harness
import sipcheck
from harness import check, fail, log

POLL_S = 0.05
RENDERING = "+sip.rendering"


class DlgWatcher(confwatch.ConfWatcher):
    """A dialog-event watcher of room (or of target, a leg URI) whose
    documents are validated in workdir."""

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

    def wait_docs(self, pred, timeout, what, interval=0.03):
        """Poll until pred(docs) is true; returns its value. Fails with
        what and every NOTIFY received so far."""
        return harness.wait_for(
            lambda: pred(self.docs()), timeout, interval=interval,
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


# ---------------------------------------------------------------- controller

def by_call_id(call_id):
    """A finder: doc -> its dialog with that call-id attribute, or None."""
    return lambda doc: dialoginfo.dialog_by_call_id(doc, call_id)


def by_id(did):
    """A finder: doc -> its dialog with that id attribute, or None."""
    return lambda doc: dialoginfo.dialog_by_id(doc, did)


def step(d):
    """'state[/rendering][/event][/code]' of one dialog element."""
    s = d["state"]
    if s == "confirmed":
        s += "/%s" % d["local_params"].get(RENDERING)
    if d["event"]:
        s += "/" + d["event"]
    if d["code"] is not None:
        s += "/%d" % d["code"]
    return s


def dump(docs):
    return "\n".join("  " + dialoginfo.summary(d) for d in docs)


class Controller(DlgWatcher):
    """The draft's controller, subscribed to room's dialogs (above)."""

    def __init__(self, fd, room, name="controller", max_duration=90.0):
        super().__init__(fd, room, fd.tmpdir, name=name,
                         max_duration=max_duration)
        self.entity = "sip:%s@%s" % (room, fd.sip_target)
        self.final_doc = None   # a full document in the last NOTIFY

    # -- watching

    def start(self, timeout=5.0):
        """SUBSCRIBE; returns the first document (full, active)."""
        super().start(timeout)
        self.wait_notifies(1, timeout, "the first dialog-info NOTIFY after "
                           "the 200")
        first = self.received()[0]
        dialoginfo.check_headers(first, self.name, active=True)
        check(first.doc["state"] == "full", "%s: the first document is %s,"
              " expected full (RFC 6665 4.2.2)\n%s"
              % (self.name, first.doc["state"], first.msg.body))
        log("%s: %s" % (self.name, dialoginfo.summary(first.doc)))
        return first.doc

    def when(self, index):
        """Arrival time (time.time()) of the NOTIFY carrying document
        number index (as in docs())."""
        return [n.msg.when for n in self.received()
                if n.doc is not None][index]

    def mark(self):
        """How many documents are in so far: a later wait(since=mark)
        only looks at documents that came after now."""
        return len(self.docs())

    def wait(self, find, pred, what, since=0, timeout=3.0):
        """Poll until a document at index >= since has a dialog (found by
        find) for which pred holds; returns (index, doc, dialog)."""
        def found(docs):
            for i in range(since, len(docs)):
                d = find(docs[i])
                if d is not None and pred(d):
                    return i, docs[i], d
            return None
        i, doc, d = self.wait_docs(found, timeout, "a document with %s (of "
                                   "those from #%d on)" % (what, since),
                                   interval=POLL_S)
        log("%s: %s (v%d)" % (self.name, what, doc["version"]))
        return i, doc, d

    def wait_step(self, find, want, what, since=0, timeout=3.0):
        """wait() for a dialog whose step() is want."""
        return self.wait(find, lambda d: step(d) == want,
                         "%s %s" % (what, want), since, timeout)

    def latest(self, find, docs=None):
        """The dialog (found by find) in the last document that has it."""
        hist = history(self.docs() if docs is None else docs, find)
        return hist[-1][2] if hist else None

    # -- the end

    def finish(self, timeout=5.0):
        """Un-SUBSCRIBE and check the whole NOTIFY sequence (above).
        Returns the documents before the last NOTIFY, in order; a full
        document in that one is final_doc."""
        self.unsubscribe(timeout)
        ns = self.received()
        who = self.name
        listing = dialoginfo.dump(ns)
        for n in ns[:-1]:
            dialoginfo.check_headers(n, who, active=True)
        last = ns[-1]
        check(last.substate == "terminated", "%s: the last NOTIFY is %r, "
              "expected terminated (answering Expires: 0):\n%s"
              % (who, last.substate_raw, listing))
        docs = [n.doc for n in ns[:-1]]
        self.final_doc = None
        if last.doc is None:
            log("%s: final NOTIFY [%s] without a body"
                % (who, last.substate_raw))
        elif len(ns) > 1 and last.msg.body == ns[-2].msg.body:
            log("%s: final NOTIFY [%s] resends the last document (v%d) "
                "as it was" % (who, last.substate_raw,
                               last.doc["version"]))
        else:
            check(last.doc["state"] == "full", "%s: the final NOTIFY "
                  "carries a new %s document; expected none, the last one "
                  "again, or the full state:\n%s"
                  % (who, last.doc["state"], listing))
            self.final_doc = last.doc
        versions = dialoginfo.check_versions(
            docs + ([self.final_doc] if self.final_doc else []), who)
        log("%s: %d documents, versions %d..%d contiguous"
            % (who, len(versions), versions[0], versions[-1]))
        for i, doc in enumerate(docs + ([self.final_doc] if self.final_doc
                                        else [])):
            what = "%s: document v%d" % (who, doc["version"])
            check(doc["entity"] == self.entity, "%s: entity %r, expected "
                  "the conference URI %r" % (what, doc["entity"],
                                             self.entity))
            if 0 < i < len(docs):
                check(doc["state"] == "partial" and
                      len(doc["dialogs"]) == 1, "%s: %s with %d dialogs; "
                      "each change is a partial document with that one "
                      "dialog:\n%s" % (what, doc["state"],
                                       len(doc["dialogs"]), dump(docs)))
            for d in doc["dialogs"]:
                self.check_dialog(d, what)
        return docs

    def check_dialog(self, d, what):
        """What the README says of every dialog element."""
        what = "%s: dialog %s (%s)" % (what, d["id"], step(d))
        check(d["direction"] in ("recipient", "initiator"),
              "%s: direction %r" % (what, d["direction"]))
        check(d["local_identity"] == self.entity, "%s: local identity %r, "
              "expected the conference URI %s" % (what, d["local_identity"],
                                                  self.entity))
        leg_uri = "%s;gr=%s" % (self.entity, d["id"])
        check(d["local_target"] == leg_uri, "%s: local target %r, expected "
              "the leg's URI %s" % (what, d["local_target"], leg_uri))
        params = d["local_params"]
        check(params.get("isfocus") == "true", "%s: local target params %r "
              "without isfocus=true" % (what, params))
        if d["state"] == "confirmed":
            check(params.get(RENDERING) in ("yes", "no"), "%s: confirmed "
                  "with %s %r, expected yes or no"
                  % (what, RENDERING, params.get(RENDERING)))
            check(d["duration"] is not None, "%s: confirmed without a "
                  "duration" % what)
        else:
            check(RENDERING not in params, "%s: %s=%r while not confirmed"
                  % (what, RENDERING, params.get(RENDERING)))
        if d["state"] in ("trying", "proceeding", "early"):
            check(d["duration"] is None, "%s: a duration (%r) before "
                  "confirmed" % (what, d["duration"]))
        check(d["remote_identity"], "%s: no remote identity" % what)


def history(docs, find):
    """[(index, doc, dialog)] for every document that has the dialog."""
    out = []
    for i, doc in enumerate(docs):
        d = find(doc)
        if d is not None:
            out.append((i, doc, d))
    return out


def check_steps(docs, find, want, who):
    """The dialog's steps over docs are exactly want; returns its
    history."""
    hist = history(docs, find)
    got = [step(d) for _, _, d in hist]
    check(got == want, "%s: dialog states %r, expected %r; documents:\n%s"
          % (who, got, want, dump(docs)))
    ids = {d["id"] for _, _, d in hist}
    check(len(ids) == 1, "%s: the dialog changed id: %r" % (who, ids))
    return hist
