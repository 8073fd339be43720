#!/usr/bin/env python3
"""The focus's dialog event package (RFC 4235): SUBSCRIBE with Event:
dialog to a conference URI watches every dialog the focus has with that
conference's participants; to a leg URI (the focus's Contact on one
dialog, sip:ROOM@DOMAIN;gr=TOKEN) it watches that one dialog.

focusd runs with --auto-create, --users (mod; realm 127.0.0.1, the
domain's host) and --moderators mod. Feature REFERs (draft-audet-sipping-
feature-ref; uac_feature_refer.xml, outside any dialog, to room1) are
sent by mod: each must be answered 401, then 202, and its SIPp end 0.
Participants: alice (uac_join_answer_reinvites.xml), erin
(uac_join_reinvited.xml), gina (uac_join_subscribe_dialog.xml), frank
(uac_join.xml) dial in; carl, dave (uas_answer.xml) and ringo
(uas_ring_cancel.xml) are dialled with conference.dialout. Their SIPp
traces are the ground truth for Call-IDs, tags, Contacts and the focus's
gr TOKENs (sipcheck.check_focus_contact, which also insists that each
focus Contact is exactly <sip:ROOM@DOMAIN;gr=TOKEN>;isfocus). Watchers
W, W2, W3 and L are dlgwatch.DlgWatcher (Python, out of any dialog).

Steps (each wait at most STEP_S):
1. alice joins room1. Refused, each by one SUBSCRIBE with no NOTIFY
   after it: Event: dialog to sip:nosuch@HOST (no such conference) 404;
   to sip:room1@HOST;gr=l0000000000000000 (a gr naming no leg) 404;
   Event: presence to room1 489 with Allow-Events holding conference
   and dialog; Accept: text/plain alone 406 with Accept:
   application/dialog-info+xml.
2. W (Accept: "text/plain, application/dialog-info+xml"), W2 (no
   Accept) and W3 subscribe to sip:room1@HOST: 200, then a full
   document, version 1, entity the conference URI, with alice's dialog
   alone, confirmed, +sip.rendering=yes.
3. W3 stops answering NOTIFYs; erin joins; once the NOTIFY about her is
   in (unanswered), W3 un-subscribes (Expires: 0), then answers again:
   the 200 and a NOTIFY with Subscription-State: terminated must come
   (RFC 6665 4.2.1.4). When W shows erin's dialog with focusd's tag, L
   subscribes to erin's leg URI (her 200's Contact): full, version 1,
   entity that URI, erin's dialog alone. W2 un-subscribes: 200 and a
   terminated NOTIFY; W2 then receives nothing more to the end.
4. gina joins, subscribes inside her call's dialog (Request-URI: her
   leg URI, the remote target) and gets a full document, version 1,
   entity the conference URI (not a leg URI), listing alice, erin and
   gina; she hangs up 300 ms later, keeps watching, and un-subscribes
   after 400 ms without a NOTIFY (the scenario insists on the terminated
   NOTIFY; the test waits for its SIPp to end 0 before going on, so
   nothing else changes meanwhile). Her own dialog must show
   terminated/remote-bye in her subscription.
5. At once: conference.dialout to carl (rings, answers 200 after 600
   ms), dave (rings, answers 486 after 300 ms), ringo (rings for ever);
   participant.move erin (by Call-ID) to room2; conference.admission
   room1 manual and frank calls: his 180 and 200 carry the same focus
   tag and gr; W shows his dialog early, then participant.admit;
   admission back to auto; frank hangs up 300 ms after his 200.
6. When W shows ringo early: ClearConnection ringo (Target-Dialog: his
   Call-ID, the focus's From tag, his 180's To tag) and HoldCall alice;
   W shows alice confirmed with +sip.rendering=no.
7. When W shows carl confirmed: ClearConnection carl and RetrieveCall
   alice; W shows alice with +sip.rendering=yes.
8. When W shows every dialog but alice's (and erin's, moved) terminated,
   all SIPps but alice's have ended 0 and L shows erin's dialog
   terminated: W refreshes (Expires: 300) and gets 200.
9. ClearConnection alice: her SIPp gets BYE and ends 0; W gets a NOTIFY
   with Subscription-State terminated; room1 leaves conference.list.

Then the verdict on what the watchers received:
- every subscription (W, W2, W3, L, gina's): every NOTIFY has Event:
  dialog, Content-Type application/dialog-info+xml and a body that
  validates against tests/schemas/dialog-info.xsd (xmllint);
  Subscription-State active but for the last; versions 1, 2, 3, ...
  without a gap (a NOTIFY that repeats the previous document exactly,
  after a refresh or an un-SUBSCRIBE, is the stack's resend and
  skipped); a partial document carries exactly one dialog; one call-id
  per dialog id and one id per call-id.
- every dialog of every document: id l + 16 hex digits; direction
  initiator or recipient; local identity the conference URI, local
  target that URI;gr=id with param isfocus=true; +sip.rendering (yes or
  no) exactly when confirmed; a duration when confirmed and none while
  trying, proceeding or early; an event when terminated.
- every appearance of a participant's dialog, against its trace: dial-in
  (alice, erin, gina, frank): id its gr, call-id, remote-tag its From
  tag, direction recipient, remote identity its From URI with its
  display name, remote target its Contact; local-tag the To tag of the
  focus's 200 when confirmed, absent when early (Sofia-SIP does not tell
  focusd its tag before the ACK). Dial-out (carl, dave, ringo): id the
  gr of the INVITE's Contact, call-id and local-tag (the focus's From
  tag) of that INVITE in every state, trying included (it has been
  sent), direction initiator, remote identity the URI dialled; when
  early or confirmed remote-tag the UAS's To tag and remote target its
  Contact.
- W, per dialog, its successive states (a repeat logged and skipped):
  carl trying, [proceeding,] early, confirmed, terminated/local-bye;
  dave trying, [proceeding,] early, terminated/rejected code 486; ringo
  trying, [proceeding,] early, terminated/cancelled code 487; gina
  confirmed, terminated/remote-bye; frank early, confirmed, terminated/
  remote-bye; alice (state, event, +sip.rendering) confirmed yes,
  confirmed no, confirmed yes, terminated/local-bye. erin: only ever
  confirmed, then a full document without her, between the move and the
  refresh, that still lists alice, and no mention of her after it. After
  the refresh (past one exact resend), a full document with the version
  after the last one (not 1) with alice's dialog alone, confirmed,
  rendering yes, a duration within 2 s of the time since her 200. The
  last NOTIFY: full, no dialog but terminated ones, Subscription-State
  terminated;reason=noresource.
- L: erin's dialog alone; full only first; room1's URIs until the move,
  then room2's (entity sip:room2@HOST;gr=TOKEN, same TOKEN); confirmed,
  then terminated/remote-bye, in a partial document with Subscription-
  State: terminated;reason=noresource.
- gina's subscription: as in step 4, and her SUBSCRIBE went to her leg
  URI.
Deviations in the documents, and the W3 un-SUBSCRIBE, are collected and
reported together, one line per kind with its count and first example,
so one run shows every way focusd disagrees; any other failure stops
the test at once. Every SIPp run ends 0; focusd exits 0 on SIGTERM.

About 5 s (13 s when W3's terminated NOTIFY never comes). Run by hand:
FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_dialog_events.py (exit 0 on pass).
"""

import os
import re
import shutil
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confwatch  # noqa: E402
import dialoginfo  # noqa: E402
import dlgwatch  # noqa: E402
import harness  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM, ROOM2 = "room1", "room2"
REALM = harness.LOOPBACK          # the domain's host: the default realm
MOD, MOD_PASSWORD = "mod", "mod-Secret3"
CONTROLLER = "uac_feature_refer.xml"
SIPP_TIMEOUT_S = 30               # bounds every call
REFER_TIMEOUT_S = 10
LINGER_MS = 600                   # REFER: the outcome's NOTIFY comes within
STEP_S = 8.0                      # any one change shows within this
CARL_ANSWER_MS = 600
DAVE_ANSWER_MS = 300
FRANK_MS = 300
GINA_MS = 300
GINA_IDLE_MS = 400
ERIN_STAY_MS = 800
TOKEN_RE = re.compile(r"l[0-9a-f]{16}")


# ---------------------------------------------------------------- calls

class DialIn:
    """A participant's call as its SIPp trace shows it (a dial-in)."""

    def __init__(self, name, run):
        self.name, self.run = name, run

    def read(self, conf_uri, final=True):
        """Call-ID, our tag, our Contact and From, the focus's tag and
        gr TOKEN; from the 200 (final) or the first 180."""
        msgs = sc.trace_of(self.run)
        inv = sc.requests(msgs, "INVITE", "sent")
        check(inv, "%s: no INVITE in the trace" % self.name)
        inv = inv[0]
        want = 200 if final else 180
        rs = [m for m in sc.responses(msgs, cseq="INVITE")
              if sc.status(m) == want]
        check(rs, "%s: no %d to the INVITE in the trace" % (self.name, want))
        r = rs[0]
        self.call_id = sc.header1(inv, "Call-ID")
        frm = sc.header1(inv, "From")
        self.uri = sc.name_addr(frm)[0]
        self.tag = sc.tag_of(frm)
        self.contact = sc.name_addr(sc.header1(inv, "Contact"))[0]
        self.focus_tag = sc.tag_of(sc.header1(r, "To"))
        self.token = sc.check_focus_contact(
            sc.header1(r, "Contact"), conf_uri,
            "%s: the focus's %d" % (self.name, want))
        self.leg_uri = "%s;gr=%s" % (conf_uri, self.token)
        self.t_answer = r.when
        check(self.tag and self.focus_tag, "%s: tags %r / %r"
              % (self.name, self.tag, self.focus_tag))
        log("%s: Call-ID %s, tags %s (ours) / %s (focus), leg %s"
            % (self.name, self.call_id, self.tag, self.focus_tag,
               self.leg_uri))
        return self

    def target_dialog(self):
        return "%s;local-tag=%s;remote-tag=%s" % (self.call_id,
                                                  self.focus_tag, self.tag)


class DialOut:
    """A UAS the focus dials, as its SIPp trace shows it."""

    def __init__(self, name, run, uri):
        self.name, self.run, self.uri = name, run, uri

    def read(self, conf_uri):
        msgs = sc.trace_of(self.run)
        inv = sc.requests(msgs, "INVITE", "received")
        check(inv, "%s: no INVITE from the focus in the trace" % self.name)
        inv = inv[0]
        self.call_id = sc.header1(inv, "Call-ID")
        self.focus_tag = sc.tag_of(sc.header1(inv, "From"))
        self.token = sc.check_focus_contact(
            sc.header1(inv, "Contact"), conf_uri,
            "%s: the focus's INVITE" % self.name)
        sent = [m for m in msgs if m.direction == "sent" and
                sc.status(m) is not None and sc.status(m) > 100 and
                sc.cseq_method(m) == "INVITE"]
        self.tag = sc.tag_of(sc.header1(sent[0], "To")) if sent else None
        contacts = [sc.header(m, "Contact") for m in sent]
        contacts = [c[0] for c in contacts if c]
        self.contact = sc.name_addr(contacts[0])[0] if contacts else None
        return self

    def target_dialog(self):
        return "%s;local-tag=%s;remote-tag=%s" % (self.call_id,
                                                  self.focus_tag, self.tag)


def refer(fd, name, feature, td, room=ROOM):
    """mod's feature REFER (uac_feature_refer.xml) in the background."""
    return sc.run_sipp(
        fd, CONTROLLER, name, service=room,
        keys={"refer_to": "<urn:feature:%s>" % feature,
              "td_name": "Target-Dialog", "td_value": td,
              "linger_ms": LINGER_MS},
        sets={"from_user": MOD}, timeout=REFER_TIMEOUT_S, background=True,
        extra_args=["-au", MOD, "-ap", MOD_PASSWORD,
                    "-auth_uri", "%s@%s" % (room, fd.sip_target)])


def finished(run, who, timeout):
    """Wait (at most timeout s; then kill it and fail) for a SippRun to
    end with 0; returns its parsed trace."""
    rc, msgs, _ = run.wait(timeout)
    check(rc == 0, "%s: SIPp exited with %d, expected 0\n%s"
          % (who, rc, run.report()))
    return sc.parse_trace(msgs)


def refer_accepted(run, who):
    """The REFER's SIPp ended 0 with the answers 401 then 202."""
    msgs = finished(run, who, REFER_TIMEOUT_S + 2)
    got, seen = [], set()
    for m in sc.responses(msgs, cseq="REFER", final=True):
        cs = sc.header1(m, "CSeq")
        if cs not in seen:
            seen.add(cs)
            got.append(sc.status(m))
    check(got == [401, 202], "%s: the REFER was answered %r, expected "
          "[401, 202]\n%s" % (who, got, "\n".join(
              "  %s %s" % (m.direction, m.start) for m in msgs)))
    log("%s: 401, 202" % who)


# ---------------------------------------------------------------- documents

class Problems:
    """Deviations found in the documents, by kind: each kind is reported
    once, with how often it was seen and its first example, so that one
    run tells every way the documents are wrong."""

    def __init__(self):
        self.kinds = {}           # kind -> [count, example]
        self.order = []

    def add(self, kind, example):
        if kind not in self.kinds:
            self.kinds[kind] = [0, example]
            self.order.append(kind)
        self.kinds[kind][0] += 1

    def run(self, fn, *args):
        """fn(*args); a TestFailure it raises is one problem of its own."""
        try:
            return fn(*args)
        except harness.TestFailure as e:
            self.add(str(e), None)
            return None

    def verdict(self):
        if not self.order:
            return
        out = []
        for k in self.order:
            n, ex = self.kinds[k]
            out.append("%s%s%s" % (k, " (%d times)" % n if n > 1 else "",
                                   "\n    first: " + ex.replace(
                                       "\n", "\n    ") if ex else ""))
        fail("%d kinds of problems:\n- %s" % (len(out), "\n- ".join(out)))


def dlg(doc, did):
    return dialoginfo.dialog_by_id(doc, did)


def history(docs, did):
    """Every appearance of dialog did in docs, in order: [(doc, dialog)]."""
    return [(d, x) for d in docs for x in d["dialogs"] if x["id"] == did]


def last_of(docs, did):
    h = history(docs, did)
    return h[-1][1] if h else None


def key(x):
    return (x["state"], x["event"], x["code"],
            x["local_params"].get("+sip.rendering"))


def collapsed(docs, did, who, name):
    """The distinct successive descriptions of dialog did (key()),
    logging repeats: a partial document that says nothing new about the
    dialog's state."""
    out = []
    for d, x in history(docs, did):
        k = key(x)
        if out and out[-1] == k:
            if d["state"] == "full":
                continue
            log("%s: v%d repeats the state of %s's dialog (%s)"
                % (who, d["version"], name, "/".join(
                    str(v) for v in k if v is not None)))
            continue
        out.append(k)
    return out


def states_of(seq):
    return [k[0] if k[0] != "terminated" else "terminated/%s%s"
            % (k[1], "" if k[2] is None else "/%d" % k[2]) for k in seq]


def dialog_problems(x, conf_uris):
    """What every dialog of every document must say; returns the rules
    it breaks, [(kind, detail)]. Call-ID and tags are compared with the
    SIPp traces by check_dialin() and check_dialout()."""
    out = []
    st = x["state"]
    if not TOKEN_RE.fullmatch(x["id"] or ""):
        out.append(("id is not l + 16 hex digits (the leg's gr TOKEN)",
                    repr(x["id"])))
    if x["direction"] not in ("initiator", "recipient"):
        out.append(("direction neither initiator nor recipient",
                    repr(x["direction"])))
    if x["local_identity"] not in conf_uris:
        out.append(("local identity not the conference URI",
                    "%r, expected %s" % (x["local_identity"],
                                         " or ".join(conf_uris))))
    if x["local_target"] != "%s;gr=%s" % (x["local_identity"], x["id"]):
        out.append(("local target not the leg URI (conference URI;gr=id)",
                    repr(x["local_target"])))
    p = x["local_params"]
    if p.get("isfocus") != "true":
        out.append(("local target without param isfocus=true", repr(p)))
    if st == "confirmed":
        if p.get("+sip.rendering") not in ("yes", "no"):
            out.append(("confirmed dialog without +sip.rendering yes|no",
                        repr(p)))
        if x["duration"] is None:
            out.append(("confirmed dialog without <duration>", ""))
    elif "+sip.rendering" in p:
        out.append(("+sip.rendering on a dialog not confirmed (%s)" % st,
                    repr(p)))
    if st in ("trying", "proceeding", "early") and x["duration"] is not None:
        out.append(("<duration> on a %s dialog" % st, repr(x["duration"])))
    if st == "terminated" and not x["event"]:
        out.append(("terminated dialog without an event", ""))
    if not x["remote_identity"]:
        out.append(("no remote identity", ""))
    return out


def check_stream(ns, who, conf_uris, problems, entity=None, leg=False,
                 ended=False, resend_after=None):
    """One subscription's NOTIFYs (dialoginfo.Notify): headers, versions
    (raises), the document rules (into problems); entity: what every
    entity must be (None: not checked here); leg: a leg subscription
    (entity = its dialog's local target); ended: the last NOTIFY is the
    terminated one. resend_after: wall time of a refresh or un-SUBSCRIBE,
    after which a NOTIFY that repeats the previous document exactly is
    dropped (the stack resends it). Returns the documents kept."""
    check(ns, "%s: no NOTIFY" % who)
    kept = []
    for n in ns:
        is_last = n is ns[-1]
        dialoginfo.check_headers(n, who, active=not (ended and is_last))
        if (resend_after is not None and kept and n.msg.when >= resend_after
                and n.msg.body == kept[-1].msg.body):
            log("%s: %s resends the previous document" % (who,
                                                         n.describe()))
            continue
        kept.append(n)
    dialoginfo.check_versions(kept, who)
    check(kept[0].doc["version"] == 1, "%s: the first document is version "
          "%s, expected 1" % (who, kept[0].doc["version"]))
    ids, cids = {}, {}
    for n in kept:
        d = n.doc
        if entity is not None:
            check(d["entity"] == entity, "%s: %s: entity %r, expected %r"
                  % (who, n.describe(), d["entity"], entity))
        if d["state"] == "partial":
            check(len(d["dialogs"]) == 1, "%s: %s: a partial document with "
                  "%d dialogs, expected exactly the one that changed"
                  % (who, n.describe(), len(d["dialogs"])))
        for x in d["dialogs"]:
            for kind, detail in dialog_problems(x, conf_uris):
                problems.add(kind, "%s v%d, dialog %s (%s): %s\n%s"
                             % (who, d["version"], x["id"], x["state"],
                                detail, n.msg.body.strip()))
            if leg:
                check(d["entity"] == x["local_target"], "%s: %s: entity %r, "
                      "expected the watched leg's URI %r"
                      % (who, n.describe(), d["entity"], x["local_target"]))
            if x["call_id"] is None:
                continue
            check(ids.setdefault(x["id"], x["call_id"]) == x["call_id"] and
                  cids.setdefault(x["call_id"], x["id"]) == x["id"],
                  "%s: %s: dialog %s with call-id %s; before, %s had %s"
                  % (who, n.describe(), x["id"], x["call_id"],
                     cids.get(x["call_id"]), ids.get(x["id"])))
    return [n.doc for n in kept]


def compare(x, doc, want, who, name, problems):
    """x's fields against want (field -> value); a difference is a
    problem of kind "<direction> <state> dialog: <field> absent|wrong"."""
    for k, v in want.items():
        if x[k] != v:
            problems.add("%s %s dialog: %s %s" % (
                x["direction"], x["state"], k.replace("_", "-"),
                "absent" if x[k] is None else "wrong"),
                "%s v%d, %s's dialog: %s is %r, expected %r (from %s's "
                "SIPp trace)" % (who, doc["version"], name, k, x[k], v,
                                 name))


def check_dialin(docs, p, conf_uri, who, problems):
    """Every appearance of a dial-in dialog against the participant's own
    trace: id, call-id, tags (local-tag only once confirmed: before it,
    Sofia-SIP does not tell focusd its tag), direction, identities,
    remote target."""
    for d, x in history(docs, p.token):
        want = {"call_id": p.call_id, "remote_tag": p.tag,
                "direction": "recipient", "local_identity": conf_uri,
                "remote_identity": p.uri, "remote_display": p.name,
                "remote_target": p.contact}
        if x["state"] == "confirmed":
            want["local_tag"] = p.focus_tag
        elif x["state"] == "early":
            want["local_tag"] = None
        compare(x, d, want, who, p.name, problems)


def check_dialout(docs, p, conf_uri, who, problems):
    """Every appearance of a dial-out dialog against the UAS's trace:
    call-id and local-tag (the focus's From tag) from the INVITE on, the
    UAS's To tag once it answered with one, the URI dialled as remote
    identity, its Contact as remote target once it sent one."""
    for d, x in history(docs, p.token):
        want = {"call_id": p.call_id, "local_tag": p.focus_tag,
                "direction": "initiator", "local_identity": conf_uri,
                "remote_identity": p.uri}
        if x["state"] in ("early", "confirmed"):
            want["remote_tag"] = p.tag
            want["remote_target"] = p.contact
        compare(x, d, want, who, p.name, problems)


def expect_states(seq, want, who, name):
    """seq: collapsed(); want: a list of state strings, "?state" for one
    that may be missing."""
    got = states_of(seq)
    i = 0
    ok = True
    for s in want:
        opt = s.startswith("?")
        s = s.lstrip("?")
        if i < len(got) and got[i] == s:
            i += 1
        elif not opt:
            ok = False
            break
    check(ok and i == len(got), "%s: %s's dialog went %s, expected %s"
          % (who, name, " -> ".join(got) or "(nowhere)",
             " -> ".join("[%s]" % s[1:] if s[0] == "?" else s
                         for s in want)))


# ---------------------------------------------------------------- the test

def main():
    users_dir = tempfile.mkdtemp(prefix="focusd-it-dlg-")
    users = os.path.join(users_dir, "users")
    with open(users, "w") as f:
        f.write("%s:%s:%s\n" % (MOD, MOD_PASSWORD, REALM))
    runs, watchers = [], []
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((harness.LOOPBACK, 0))
    try:
        with harness.Focusd(extra_args=["--users", users,
                                        "--moderators", MOD]) as fd:
            body(fd, sink.getsockname()[1], runs, watchers)
    finally:
        for w in watchers:
            w.stop()
        for r in runs:
            r.kill()
        sink.close()
        shutil.rmtree(users_dir, ignore_errors=True)


def body(fd, rtp_port, runs, watchers):
    host = fd.sip_target
    t0 = time.monotonic()
    pr = Problems()

    def bg(run):
        runs.append(run)
        return run

    # -- 1: alice; refusals
    alice = DialIn("alice", bg(sc.run_sipp(
        fd, "uac_join_answer_reinvites.xml", "alice", service=ROOM,
        keys={"rtp_port": rtp_port, "event_file": "/dev/null"},
        sets={"from_user": "alice"}, background=True,
        timeout=SIPP_TIMEOUT_S)))
    sc.wait_response(alice.run, "INVITE", STEP_S, "alice")
    conf1 = sc.find_conf(fd, ROOM)["uri"]
    conf2 = "sip:%s@%s" % (ROOM2, host)
    check(conf1 == "sip:%s@%s" % (ROOM, host), "conference.list: room1's "
          "URI is %r, expected sip:%s@%s" % (conf1, ROOM, host))
    alice.read(conf1)
    uris = (conf1, conf2)

    for what, uri, event, accept, want in (
            ("unknown conference", "sip:nosuch@%s" % host, "dialog",
             dialoginfo.DIALOGINFO_TYPE, 404),
            ("gr naming no leg", "%s;gr=l0000000000000000" % conf1,
             "dialog", dialoginfo.DIALOGINFO_TYPE, 404),
            ("Event: presence", conf1, "presence", None, 489),
            ("Accept: text/plain", conf1, "dialog", "text/plain", 406)):
        r, ns = confwatch.subscribe_once(fd, uri, event=event,
                                         accept=accept, linger_s=0.2)
        check(sc.status(r) == want, "SUBSCRIBE %s (Event: %s, Accept: %s; "
              "%s) answered %r, expected %d" % (uri, event, accept, what,
                                                r.start, want))
        check(not ns, "SUBSCRIBE %s (%s), refused %d, was followed by "
              "NOTIFYs:\n%s" % (uri, what, want,
                                "\n".join(n.raw for n in ns)))
        if want == 489:
            ae = sc.token_list(sc.header(r, "Allow-Events"))
            check({"conference", "dialog"} <= set(ae), "489 to Event: "
                  "presence: Allow-Events %r, expected conference and "
                  "dialog in it" % ae)
        if want == 406:
            acc = [a.split(";")[0].strip().lower()
                   for a in sc.token_list(sc.header(r, "Accept"))]
            check(acc == [dialoginfo.DIALOGINFO_TYPE], "406 to Accept: "
                  "text/plain: Accept %r, expected %s"
                  % (sc.header(r, "Accept"), dialoginfo.DIALOGINFO_TYPE))

    # -- 2: W, W2 and W3 on room1
    w = dlgwatch.DlgWatcher(fd, ROOM, fd.tmpdir, name="W",
                            accept="text/plain, application/dialog-info+xml")
    w2 = dlgwatch.DlgWatcher(fd, ROOM, fd.tmpdir, name="W2", accept=False)
    w3 = dlgwatch.DlgWatcher(fd, ROOM, fd.tmpdir, name="W3")
    watchers += [w, w2, w3]
    for x in (w, w2, w3):
        x.start()
        d = x.wait_docs(lambda ds: ds[:1], STEP_S, "the first document")[0]
        check(d["state"] == "full" and d["version"] == 1 and
              d["entity"] == conf1 and
              [y["id"] for y in d["dialogs"]] == [alice.token],
              "%s: first document %s, expected full, version 1, entity %s, "
              "alice's dialog (%s) alone"
              % (x.name, dialoginfo.summary(d), conf1, alice.token))
        check(key(d["dialogs"][0]) == ("confirmed", None, None, "yes"),
              "%s: alice's dialog %s, expected confirmed with "
              "+sip.rendering=yes" % (x.name, dialoginfo.summary(d)))

    # -- 3: erin; W3 un-subscribes with a NOTIFY open; L on her leg;
    #       W2 un-subscribes
    w3.hold_answers()
    erin = DialIn("erin", bg(sc.run_sipp(
        fd, "uac_join_reinvited.xml", "erin", service=ROOM,
        keys={"rtp_port": rtp_port, "event_file": "/dev/null",
              "stay_ms": ERIN_STAY_MS},
        sets={"from_user": "erin"}, background=True,
        timeout=SIPP_TIMEOUT_S)))
    sc.wait_response(erin.run, "INVITE", STEP_S, "erin")
    erin.read(conf1)
    w3.wait_notifies(2, STEP_S, "a NOTIFY about erin (left unanswered)")
    try:
        w3.unsubscribe(STEP_S)
    except harness.TestFailure as e:
        pr.add("W3 un-SUBSCRIBEd while a NOTIFY of its subscription was "
               "still unanswered: %s" % e, None)
    # the ACK is in once the dialog shows focusd's tag
    w.wait_docs(lambda ds: (last_of(ds, erin.token) or {}).get(
        "local_tag") == erin.focus_tag, STEP_S,
        "erin's dialog confirmed with local-tag %s" % erin.focus_tag)
    leg = dlgwatch.DlgWatcher(fd, ROOM, fd.tmpdir, name="L",
                              target=erin.leg_uri)
    watchers.append(leg)
    leg.start()
    d = leg.wait_docs(lambda ds: ds[:1], STEP_S, "the first document")[0]
    check(d["state"] == "full" and d["version"] == 1 and
          d["entity"] == erin.leg_uri and
          [y["id"] for y in d["dialogs"]] == [erin.token],
          "L: first document %s, expected full, version 1, entity %s, "
          "erin's dialog alone" % (dialoginfo.summary(d), erin.leg_uri))
    w2.wait_docs(lambda ds: (last_of(ds, erin.token) or {}).get(
        "local_tag") == erin.focus_tag, STEP_S,
        "erin's dialog confirmed with local-tag %s" % erin.focus_tag)
    t_w2_end = w2.unsubscribe(STEP_S)
    w2_count = len(w2.notifies())

    # -- 4: gina subscribes in her call's dialog, hangs up, un-subscribes
    #       (while nothing else changes)
    gina = DialIn("gina", bg(sc.run_sipp(
        fd, "uac_join_subscribe_dialog.xml", "gina", service=ROOM,
        keys={"rtp_port": rtp_port, "port_file": "/dev/null",
              "expires": 300, "pause_ms": GINA_MS, "idle_ms": GINA_IDLE_MS,
              "duration_ms": 3000},
        sets={"from_user": "gina"}, background=True,
        timeout=SIPP_TIMEOUT_S)))
    sc.wait_response(gina.run, "INVITE", STEP_S, "gina")
    gina.read(conf1)
    finished(gina.run, "gina", STEP_S)

    # -- 5: dial-outs, the move, manual admission
    outs = []
    for name, scen, keys in (
            ("carl", "uas_answer.xml", {
                "rtp_port": rtp_port, "ring": 1,
                "answer_ms": CARL_ANSWER_MS, "status": 200, "hold_ms": 0}),
            ("dave", "uas_answer.xml", {
                "rtp_port": rtp_port, "ring": 1,
                "answer_ms": DAVE_ANSWER_MS, "status": 486, "hold_ms": 0}),
            ("ringo", "uas_ring_cancel.xml", {"event_file": "/dev/null"})):
        run, uri = sc.start_uas(fd, name, scen, keys,
                                timeout=SIPP_TIMEOUT_S)
        outs.append(DialOut(name, bg(run), uri))
    carl, dave, ringo = outs
    for p in outs:
        r = fd.mgmt_result("conference.dialout", {"id": ROOM, "uri": p.uri})
        check(r.get("state") == "dialing-out", "conference.dialout %s: %r, "
              "expected state dialing-out" % (p.uri, r))
    t_move = time.time()
    r = fd.mgmt_result("participant.move", {"id": ROOM, "to": ROOM2,
                                            "participant": erin.call_id})
    log("participant.move erin: %r" % r)
    r = fd.mgmt_result("conference.admission", {"id": ROOM,
                                                "mode": "manual"})
    check(r.get("mode") == "manual", "conference.admission: %r" % r)
    frank = DialIn("frank", bg(sc.run_sipp(
        fd, "uac_join.xml", "frank", service=ROOM,
        keys={"rtp_port": rtp_port, "pause_ms": FRANK_MS,
              "port_file": "/dev/null"},
        sets={"from_user": "frank"}, background=True,
        timeout=SIPP_TIMEOUT_S)))
    sc.wait_until(lambda: [m for m in sc.responses(
        sc.trace_of(frank.run), cseq="INVITE") if sc.status(m) == 180],
        STEP_S, "frank: 180 Ringing (manual admission)", frank.run.report)
    frank.read(conf1, final=False)
    tag180, token180 = frank.focus_tag, frank.token
    w.wait_docs(lambda ds: (last_of(ds, frank.token) or {}).get("state")
                == "early", STEP_S, "frank's dialog early")
    fd.mgmt_result("participant.admit", {"id": ROOM,
                                         "participant": frank.call_id})
    sc.wait_response(frank.run, "INVITE", STEP_S, "frank")
    frank.read(conf1)
    check(frank.focus_tag == tag180 and frank.token == token180,
          "frank: the focus's To tag %s and gr %s in the 200, %s and %s in "
          "the 180 (one dialog, one leg)"
          % (frank.focus_tag, frank.token, tag180, token180))
    r = fd.mgmt_result("conference.admission", {"id": ROOM, "mode": "auto"})
    check(r.get("mode") == "auto", "conference.admission: %r" % r)

    # -- 6: once ringo is early, ClearConnection ringo and HoldCall alice
    #    (its outcome checked at once); 7: once carl is confirmed,
    #    ClearConnection carl and RetrieveCall alice; each time W then
    #    shows alice's dialog with the +sip.rendering that follows
    for p in outs:
        sc.wait_until(lambda: [m for m in sc.trace_of(p.run)
                               if m.direction == "sent" and
                               sc.status(m) == 180], STEP_S,
                      "%s: the 180 sent" % p.name, p.run.report)
        p.read(conf1)
    later = []
    for p, state, feature, rendering, at_once in (
            (ringo, "early", "HoldCall", "no", True),
            (carl, "confirmed", "RetrieveCall", "yes", False)):
        w.wait_docs(lambda ds: (last_of(ds, p.token) or {}).get("state")
                    == state, STEP_S, "%s's dialog %s" % (p.name, state))
        r_clear = bg(refer(fd, "refer-clear-%s" % p.name, "ClearConnection",
                           p.target_dialog()))
        r_alice = bg(refer(fd, "refer-%s-alice" % feature[:-4].lower(),
                           feature, alice.target_dialog()))
        w.wait_docs(lambda ds: key(last_of(ds, alice.token)) ==
                    ("confirmed", None, None, rendering), STEP_S,
                    "alice's dialog with +sip.rendering=%s (%s)"
                    % (rendering, feature))
        later.append(("ClearConnection %s" % p.name, r_clear))
        if at_once:
            refer_accepted(r_alice, "%s alice" % feature)
        else:
            later.append(("%s alice" % feature, r_alice))
    for name, run in later:
        refer_accepted(run, name)

    # -- 8, 9: everyone but alice gone; W refreshes
    others = [gina, frank, carl, dave, ringo]
    w.wait_docs(lambda ds: all((last_of(ds, p.token) or {}).get("state")
                               == "terminated" for p in others),
                STEP_S, "every dialog but alice's (and erin's, moved) "
                "terminated")
    for p in [erin] + others:
        finished(p.run, p.name, STEP_S)
    leg.wait_docs(lambda ds: (last_of(ds, erin.token) or {}).get("state")
                  == "terminated", STEP_S, "erin's dialog terminated")
    n_before = len(w.docs())
    t_refresh = w.refresh(300, STEP_S)
    w.wait_docs(lambda ds: [d for d in ds[n_before:]
                            if d["state"] == "full"], STEP_S,
                "a full document after the refresh")
    t_refreshed = time.time()

    # -- 10: ClearConnection alice: room1 ends
    r_alice = bg(refer(fd, "refer-clear-alice", "ClearConnection",
                       alice.target_dialog()))
    harness.wait_for(lambda: any(n.substate == "terminated"
                                 for n in w.received()), STEP_S,
                     what="W: a NOTIFY with Subscription-State: "
                     "terminated (room1 ended)",
                     state=lambda: "NOTIFYs:\n" + w.dump())
    refer_accepted(r_alice, "ClearConnection alice")
    finished(alice.run, "alice", STEP_S)
    harness.wait_for(lambda: sc.find_conf(fd, ROOM) is None, STEP_S,
                     what="room1 gone from conference.list",
                     state=lambda: sc.list_ids(fd))
    time.sleep(0.2)      # anything W2 or L would still (wrongly) get
    log("all steps done in %.1f s; checking the documents"
        % (time.monotonic() - t0))
    for x in (w, w2, w3, leg):
        log("%s's NOTIFYs:\n%s" % (x.name, x.dump()))

    # ------------------------------------------------------------ verdict
    wn = w.received()
    wd = pr.run(check_stream, wn, "W", uris, pr, conf1, False, True,
                t_refresh)
    if wd is not None:
        pr.run(verdict_w, wn, wd, pr, conf1, alice, erin, gina, frank,
               carl, dave, ringo, t_move, t_refresh, t_refreshed)
    w2n = w2.received()
    pr.run(check_stream, w2n, "W2", uris, pr, conf1, False, True, t_w2_end)
    later = w2.notifies()[w2_count:]
    if later:
        pr.add("W2: %d NOTIFYs after its un-SUBSCRIBE ended it:\n%s"
               % (len(later), "\n".join(
                   n.start + " " + " ".join(sc.header(
                       n, "Subscription-State")) for n in later)), None)
    w3n = w3.received()
    if w3n and w3n[-1].substate == "terminated":
        pr.run(check_stream, w3n, "W3", uris, pr, conf1, False, True, 0)
    ln = leg.received()
    ld = pr.run(check_stream, ln, "L", uris, pr, None, True, True)
    if ld is not None:
        pr.run(verdict_leg, ln, ld, pr, erin, conf1, conf2)
    gmsgs = sc.trace_of(gina.run)
    gn = dialoginfo.notifies(gmsgs, fd.tmpdir, "gina")
    unsub = [m for m in sc.requests(gmsgs, "SUBSCRIBE", "sent")
             if sc.header(m, "Expires") == ["0"]]
    who = "gina (in her call's dialog)"
    subs = [m for m in sc.requests(gmsgs, "SUBSCRIBE", "sent")
            if sc.header(m, "Expires") != ["0"]]
    if not subs or subs[0].start != "SUBSCRIBE %s SIP/2.0" % gina.leg_uri:
        pr.add("%s: her SUBSCRIBE is %r, expected one in her call's dialog "
               "to her leg URI %s" % (who, subs[0].start if subs else None,
                                      gina.leg_uri), None)
    gd = pr.run(check_stream, gn, who, uris, pr, conf1, False,
                bool(gn) and gn[-1].substate == "terminated",
                unsub[0].when if unsub else None)
    if gd is not None:
        pr.run(verdict_gina, gn, gd, pr, who, conf1, alice, erin, gina)
        for p in (alice, erin, frank):
            check_dialin(gd, p, conf1, who, pr)
        for p in outs:
            check_dialout(gd, p, conf1, who, pr)
    pr.verdict()
    log("W %d, W2 %d, L %d, gina %d documents; all as specified"
        % (len(wd), len(w2n), len(ld), len(gd)))


def verdict_w(wn, wd, pr, conf1, alice, erin, gina, frank, carl, dave,
              ringo, t_move, t_refresh, t_refreshed):
    who = "W"
    for p in (alice, erin, gina, frank):
        check_dialin(wd, p, conf1, who, pr)
    for p in (carl, dave, ringo):
        check_dialout(wd, p, conf1, who, pr)
    for p, want in (
            (carl, ["trying", "?proceeding", "early", "confirmed",
                    "terminated/local-bye"]),
            (dave, ["trying", "?proceeding", "early",
                    "terminated/rejected/486"]),
            (ringo, ["trying", "?proceeding", "early",
                     "terminated/cancelled/487"]),
            (gina, ["confirmed", "terminated/remote-bye"]),
            (frank, ["early", "confirmed", "terminated/remote-bye"])):
        pr.run(expect_states, collapsed(wd, p.token, who, p.name), want,
               who, p.name)
    a_seq = [(k[0], k[1], k[3]) for k in
             collapsed(wd, alice.token, who, "alice")]
    want = [("confirmed", None, "yes"), ("confirmed", None, "no"),
            ("confirmed", None, "yes"), ("terminated", "local-bye", None)]
    if a_seq != want:
        pr.add("W: alice's dialog went %r, expected (state, event, "
               "+sip.rendering) %r" % (a_seq, want), None)

    # erin: confirmed while in room1, then a full document without her
    e_idx = [i for i, d in enumerate(wd) if dlg(d, erin.token)]
    check(e_idx and all(dlg(wd[i], erin.token)["state"] == "confirmed"
                        for i in e_idx), "W: erin's dialog, before her "
          "move, must be confirmed (and never terminated):\n%s"
          % dialoginfo.dump(wn))
    gone = [i for i in range(e_idx[-1] + 1, len(wd))
            if wd[i]["state"] == "full"]
    check(gone, "W: no full document without erin's dialog after its last "
          "mention (v%d)\n%s" % (wd[e_idx[-1]]["version"],
                                 dialoginfo.dump(wn)))
    move_doc = wd[gone[0]]
    when = [n.msg.when for n in wn if n.doc is move_doc][0]
    check(t_move - 1 <= when < t_refresh, "W: the first full document "
          "without erin (v%d) did not come between her move and the "
          "refresh\n%s" % (move_doc["version"], dialoginfo.dump(wn)))
    check(dlg(move_doc, alice.token), "W: v%d, the full document after "
          "erin's move, lacks alice's dialog: %s"
          % (move_doc["version"], dialoginfo.summary(move_doc)))

    # the refresh: the next version, full, alice's dialog alone
    ref = [n for n in wn if n.msg.when >= t_refresh and n.doc and
           n.doc["state"] == "full"]
    check(ref, "W: no full document after the refresh:\n%s"
          % dialoginfo.dump(wn))
    rd = ref[0].doc
    before = max(n.doc["version"] for n in wn
                 if n.doc and n.msg.when < t_refresh)
    check(rd["version"] == before + 1, "W: after the refresh, %s; expected "
          "a full document with version %d, the one after %d (not a reset)"
          % (dialoginfo.summary(rd), before + 1, before))
    check([x["id"] for x in rd["dialogs"]] == [alice.token] and
          key(rd["dialogs"][0]) == ("confirmed", None, None, "yes"),
          "W: after the refresh, %s; expected alice's dialog alone, "
          "confirmed, +sip.rendering=yes" % dialoginfo.summary(rd))
    dur = rd["dialogs"][0]["duration"]
    elapsed = ref[0].msg.when - alice.t_answer
    check(dur is not None and elapsed - 2 <= dur <= elapsed + 1,
          "W (refresh): alice's duration %s s, but her 200 came %.1f s "
          "before" % (dur, elapsed))

    # the end: alice terminated, then the last, full, document
    ends = [n for n in wn if n.doc and dlg(n.doc, alice.token) and
            dlg(n.doc, alice.token)["state"] == "terminated"]
    check(ends and ends[0].msg.when >= t_refreshed, "W: alice's dialog "
          "not terminated after the refresh (ClearConnection):\n%s"
          % dialoginfo.dump(wn))
    last = wn[-1]
    check(last.doc["state"] == "full" and
          all(x["state"] == "terminated" for x in last.doc["dialogs"]),
          "W: the last NOTIFY (room1 ended) is %s; expected a full document "
          "without a dialog that is not terminated" % last.describe())
    check(last.reason == "noresource", "W: the last NOTIFY says %r, "
          "expected Subscription-State: terminated;reason=noresource"
          % last.substate_raw)


def verdict_leg(ln, ld, pr, erin, conf1, conf2):
    who = "L"
    strangers = sorted(set(x["id"] for d in ld for x in d["dialogs"]) -
                       {erin.token})
    check(not strangers, "L (erin's leg) got documents about other "
          "dialogs %r:\n%s" % (strangers, dialoginfo.dump(ln)))
    check(all(d["state"] == "partial" for d in ld[1:]), "L: a full "
          "document after the first:\n%s" % dialoginfo.dump(ln))
    for d in ld:
        check(d["dialogs"], "L: v%d has no dialog" % d["version"])
    here = [d for d in ld if d["dialogs"][0]["local_identity"] == conf1]
    moved = [d for d in ld if d["dialogs"][0]["local_identity"] == conf2]
    check(here and moved and ld == here + moved, "L: erin's dialog must "
          "show room1 until her move, room2 after it:\n%s"
          % dialoginfo.dump(ln))
    check(all(d["entity"] == "%s;gr=%s" % (conf2, erin.token)
              for d in moved), "L: entity after the move %r, expected "
          "%s;gr=%s (same gr, room2)"
          % ([d["entity"] for d in moved], conf2, erin.token))
    check_dialin(here, erin, conf1, who, pr)
    check_dialin(moved, erin, conf2, who, pr)
    pr.run(expect_states, collapsed(ld, erin.token, who, "erin"),
           ["confirmed", "terminated/remote-bye"], who, "erin")
    le = ln[-1]
    y = le.doc["dialogs"][0]
    check(le.doc["state"] == "partial" and y["state"] == "terminated" and
          y["event"] == "remote-bye" and le.reason == "noresource",
          "L: the last NOTIFY is %s; expected partial, erin "
          "terminated/remote-bye, Subscription-State: terminated;"
          "reason=noresource" % le.describe())


def verdict_gina(gn, gd, pr, who, conf1, alice, erin, gina):
    first = gd[0]
    check(first["state"] == "full" and
          {alice.token, erin.token, gina.token} <=
          set(x["id"] for x in first["dialogs"]),
          "%s: her first document %s; expected full, with alice, erin "
          "and gina" % (who, dialoginfo.summary(first)))
    check_dialin(gd, gina, conf1, who, pr)
    check(("terminated", "remote-bye") in
          [k[:2] for k in collapsed(gd, gina.token, who, "gina")],
          "%s: her own dialog never terminated/remote-bye:\n%s"
          % (who, dialoginfo.dump(gn)))

if __name__ == "__main__":
    harness.run_main(main)
