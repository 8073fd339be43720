"""The controller's view in draft-audet-sipping-feature-ref's call flows
(section 5): a subscriber to the dialog event package (RFC 4235) of the
Refer-Recipient, here the focus's dialogs with one conference, and the
checks on the dialog-info NOTIFYs it receives as features take effect.

What it does: Controller wraps a confwatch.ConfWatcher(event="dialog",
name="controller") on the conference URI.
- start() subscribes and waits for the first NOTIFY: active, a full
  document (RFC 6665 4.2.2); returns it.
- mark() / wait() / history(): the documents so far are parsed afresh
  (dialoginfo.received: every body validated against
  tests/schemas/dialog-info.xsd); wait() polls until a document at or
  after a mark holds a dialog in a wanted state, so a test can say "this
  change was announced after that REFER went out"; when() gives the
  arrival time (wall clock, as in SIPp's traces) of a document's NOTIFY.
- finish() un-SUBSCRIBEs, then checks the whole NOTIFY sequence: every
  NOTIFY but the last active with a dialog-info body; the last
  terminated; versions contiguous from the first, full, document
  (dialoginfo.check_versions); every later document partial with exactly
  one dialog (README, Dialog event package); every document's entity the
  conference URI; and every dialog element as the README describes it:
  local identity the conference URI, local target the leg's URI
  (CONF-URI;gr=ID) with isfocus=true, +sip.rendering yes/no exactly while
  confirmed, a duration while confirmed and none before.
  The last NOTIFY (answering Expires: 0) may carry no body, a new full
  document (the next version; kept as final_doc), or the previous
  document again with its version (Sofia-SIP's nua resends the last
  NOTIFY body by itself); that resent copy is left out of the version
  check. Returns the documents before the last NOTIFY, for sequence
  checks (check_steps).
- step(): one dialog element as a short string for sequence assertions:
  "early", "confirmed/yes" (the +sip.rendering value), "terminated/
  rejected/480" (state event and code).

Bounded: every wait has a deadline; the watcher ends after max_duration
seconds whatever happens.

Only the Python standard library is used (plus xmllint, via
dialoginfo.py).
"""

import time

import confwatch
import dialoginfo
from harness import check, fail, log

POLL_S = 0.05
RENDERING = "+sip.rendering"


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


class Controller:
    def __init__(self, fd, room, name="controller", max_duration=90.0):
        self.fd = fd
        self.name = name
        self.entity = "sip:%s@%s" % (room, fd.sip_target)
        self.watcher = confwatch.ConfWatcher(fd, room, event="dialog",
                                             name=name,
                                             max_duration=max_duration)
        self.final_doc = None   # a full document in the last NOTIFY

    # -- watching

    def start(self, timeout=5.0):
        """SUBSCRIBE; returns the first document (full, active)."""
        self.watcher.start(timeout)
        self.watcher.wait_notifies(1, timeout, "the first dialog-info "
                                   "NOTIFY after the 200")
        first = self.notifies()[0]
        dialoginfo.check_headers(first, self.name, active=True)
        check(first.doc["state"] == "full", "%s: the first document is %s,"
              " expected full (RFC 6665 4.2.2)\n%s"
              % (self.name, first.doc["state"], first.msg.body))
        log("%s: %s" % (self.name, dialoginfo.summary(first.doc)))
        return first.doc

    def notifies(self):
        return dialoginfo.received(self.watcher, self.fd.tmpdir, self.name)

    def docs(self):
        return [n.doc for n in self.notifies() if n.doc is not None]

    def when(self, index):
        """Arrival time (time.time()) of the NOTIFY carrying document
        number index (as in docs())."""
        return [n.msg.when for n in self.notifies()
                if n.doc is not None][index]

    def mark(self):
        """How many documents are in so far: a later wait(since=mark)
        only looks at documents that came after now."""
        return len(self.docs())

    def wait(self, find, pred, what, since=0, timeout=3.0):
        """Poll until a document at index >= since has a dialog (found by
        find) for which pred holds; returns (index, doc, dialog)."""
        deadline = time.monotonic() + timeout
        while True:
            docs = self.docs()
            for i in range(since, len(docs)):
                d = find(docs[i])
                if d is not None and pred(d):
                    log("%s: %s (v%d)" % (self.name, what,
                                          docs[i]["version"]))
                    return i, docs[i], d
            if time.monotonic() >= deadline:
                fail("%s: no document with %s within %.1f s (of those "
                     "from #%d on); documents so far:\n%s"
                     % (self.name, what, timeout, since, dump(docs)))
            time.sleep(POLL_S)

    def wait_step(self, find, want, what, since=0, timeout=3.0):
        """wait() for a dialog whose step() is want."""
        return self.wait(find, lambda d: step(d) == want,
                         "%s %s" % (what, want), since, timeout)

    def latest(self, find, docs=None):
        """The dialog (found by find) in the last document that has it."""
        hist = history(self.docs() if docs is None else docs, find)
        return hist[-1][2] if hist else None

    def stop(self):
        self.watcher.stop()

    # -- the end

    def finish(self, timeout=5.0):
        """Un-SUBSCRIBE and check the whole NOTIFY sequence (above).
        Returns the documents before the last NOTIFY, in order; a full
        document in that one is final_doc."""
        self.watcher.unsubscribe(timeout)
        ns = self.notifies()
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
