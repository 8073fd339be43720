#!/usr/bin/env python3
"""The seed's call flows of draft-audet-sipping-feature-ref section 5 with
the focus as Alice's phone and a dialog-event watcher as the controller:
5.4 HoldCall, 5.5 RetrieveCall and 5.6 SingleStepTransfer, with the
transferee really calling the transfer target, and the transfer's
failure paths (the target busy, a transferee that refuses REFER).

focusd runs with --users (alice, mod, eve; realm 127.0.0.1) and
--moderators mod. alice joins room1 first (uac_join_answer_reinvites.xml),
so she owns it. Then the controller subscribes to room1 twice from
Python (confwatch.ConfWatcher): Event: dialog (RFC 4235, the draft's
"controller subscribed to Alice's dialog events") and Event: conference
(RFC 4575). Then bob and carol join with uac_transferee.xml, each with a
twin SIPp (uac_transfer_twin.xml, SIPp 3PCC mode: the twin places the
transferee's call to the target, since SIPp sends a call's requests to
one address only), and dave with uac_transferee_refuse.xml. The transfer
targets are uas_answer.xml SIPps: cathy (180, then 200 after 150 ms;
the twin hangs up 300 ms later) and busy (180, then 486). Each 200 to a
join carries the focus's Contact <sip:room1@127.0.0.1:PORT;gr=TOKEN>;
isfocus (sipcheck.check_focus_contact); the controller's REFERs
(uac_feature_refer_uri.xml) go either to room1's URI or, as in the
draft's figures ("REFER sip:Alice-GRUU, To: sip:Alice-GRUU"), to the leg's
own URI with that TOKEN, with a Target-Dialog naming the same dialog;
credentials follow a 401 challenge.

0. After the joins the dialog watcher's first document is full (version
   1) with alice's dialog confirmed, and every later one up to here is a
   partial naming bob's, carol's or dave's dialog; each of the three ends
   confirmed with +sip.rendering "yes", with the Call-ID and tags of its
   INVITE and 200 (local-tag the focus's) and its leg TOKEN as dialog id.
1. Refused, at once, touching nobody (no request to any participant, no
   dialog-info or conference document): SingleStepTransfer without
   ;target 400; with ;target= empty 400; with ;target=tel:+15551234 (not
   SIP) 400; eve (a user, neither owner nor moderator) transferring carol
   401 then 403.
2. 5.4: alice: HoldCall, to bob's leg URI -> 401, 202; bob gets one
   re-INVITE in his dialog, isfocus Contact with his TOKEN, a=sendonly on
   the port of his first answer; final sipfrag 200 (terminated) after his
   200. The dialog watcher gets exactly one document: a partial with
   bob's dialog confirmed, +sip.rendering "no", version one up.
3. 5.5: mod: RetrieveCall, to bob's leg URI -> 401, 202; a second
   re-INVITE, a=sendrecv; final 200; exactly one document: bob's dialog
   confirmed, +sip.rendering "yes".
4. 5.6 and its failures, at once:
   - alice: SingleStepTransfer;target=sip:cathy@127.0.0.1:CATHY-PORT to
     bob's leg URI -> 401, 202. bob gets one REFER in his dialog
     (Request-URI his Contact, his Call-ID, the focus's tag), Refer-To
     <sip:cathy@...> exactly, Referred-By <sip:room1@127.0.0.1:PORT> (the
     conference URI), Contact <sip:room1@...;gr=TOKEN>;isfocus with his
     TOKEN, after the controller's REFER with credentials. bob answers
     202, NOTIFYs "SIP/2.0 100 Trying"; his twin's INVITE reaches cathy
     with Request-URI sip:cathy@... and that Referred-By; cathy rings and
     answers; bob NOTIFYs "SIP/2.0 180 Ringing" (after the fact: see
     uac_transferee.xml) and "SIP/2.0 200 OK" (terminated), each
     answered 200 by the focus. The focus then BYEs bob in his dialog
     (after his NOTIFY 200 went out); the controller's refer subscription
     carries, beyond Sofia's own 100 Trying NOTIFYs, exactly a 180
     (active) and then the final 200 (terminated), the latter after bob's
     NOTIFY 200. bob's, his twin's and cathy's SIPps end with 0.
   - mod: SingleStepTransfer of carol (Target-Dialog, room1's URI) to
     busy -> 401, 202; carol's twin gets 180 and 486; carol NOTIFYs 100,
     180, 486; the controller gets 180 then final 486; carol gets no BYE
     and stays connected.
   - alice: SingleStepTransfer of dave to cathy -> 401, 202; dave
     answers the focus's REFER 405; the controller's only sipfrag is the
     final 405; dave gets no BYE and stays connected.
   The dialog watcher gets exactly one document in all of this: a
   partial with bob's dialog terminated, event "local-bye", after bob's
   NOTIFY 200 went out. The conference watcher sees bob deleted with
   disconnection-method "departed" and nothing about carol or dave;
   conference.show lists alice, carol and dave connected.
5. The dialog watcher's documents, all validated against
   tests/schemas/dialog-info.xsd (dialoginfo.py), have contiguous
   versions from 1 on one subscription, every NOTIFY Event: dialog,
   application/dialog-info+xml, active. Both watchers unsubscribe.
   SIGTERM: alice, carol and dave get BYE (their SIPps end 0); focusd
   exits 0.

Every REFER's answers are asserted exactly, in order; Sofia-SIP's own
"SIP/2.0 100 Trying" NOTIFYs to the controller are tolerated, nothing
else. Requests to participants are asserted from their SIPp traces,
times from the traces' stamps (one clock, one machine).

About 8 s. Run by hand: FOCUSD=build/daemon/focusd \
SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_feature_transfer.py (exit 0 on pass).
"""

import os
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confinfo  # noqa: E402
import confwatch  # noqa: E402
import dialoginfo  # noqa: E402
import featurectl as fc  # noqa: E402
import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import sipcheck  # noqa: E402
from harness import check, log  # noqa: E402

ROOM = "room1"
PARTICIPANT = "uac_join_answer_reinvites.xml"
TRANSFEREE = "uac_transferee.xml"
TWIN = "uac_transfer_twin.xml"
REFUSER = "uac_transferee_refuse.xml"
TARGET = "uas_answer.xml"
SIPP_TIMEOUT_S = 40               # bounds every participant's call
TARGET_ANSWER_MS = 150
TALK_MS = 300
LINGER_REFUSED_MS = 300
LINGER_ACCEPTED_MS = 800          # a hold's final NOTIFY comes within this
LINGER_TRANSFER_MS = 1500         # a transfer's final NOTIFY: ~0.2 s
DOC_WAIT_S = 3.0
QUIET_S = 0.3                     # no NOTIFY this long: a phase is over
EARLY_S = 0.005                   # trace stamps are rounded: tolerance


# ---------------------------------------------------------------- helpers

def target(fd, name, status, runs):
    """A transfer target: uas_answer.xml as name, 180 then status."""
    run = harness.sipp(
        mc.scenario(TARGET), fd.sip_target, service=name,
        keys={"rtp_port": sink(), "ring": 1,
              "answer_ms": TARGET_ANSWER_MS, "status": status,
              "hold_ms": 0},
        background=True, timeout=SIPP_TIMEOUT_S, name=name,
        workdir=os.path.join(fd.tmpdir, "sipp-" + name))
    runs.append(run)
    port = int(run.args[run.args.index("-p") + 1])
    return run, "sip:%s@%s:%d" % (name, harness.LOOPBACK, port)


_SINKS = []


def sink():
    """A port for SDPs whose media nobody looks at (kept bound)."""
    s = fc.sink_socket()
    _SINKS.append(s)
    return s.getsockname()[1]


def twin(fd, name, user, target_run, runs):
    """uac_transfer_twin.xml calling target_run's address; returns (run,
    the -3pcc address its transferee must connect to)."""
    tport = harness.free_port(("tcp",))
    dest = "%s:%s" % (harness.LOOPBACK,
                      target_run.args[target_run.args.index("-p") + 1])
    events = os.path.join(fd.tmpdir, name + ".events")
    run = harness.sipp(
        mc.scenario(TWIN), dest,
        keys={"rtp_port": sink(),
              "talk_ms": TALK_MS, "event_file": events},
        sets={"from_user": user}, background=True, timeout=SIPP_TIMEOUT_S,
        name=name, workdir=os.path.join(fd.tmpdir, "sipp-" + name),
        extra_args=["-3pcc", "%s:%d" % (harness.LOOPBACK, tport)])
    runs.append(run)
    harness.wait_for(lambda: fc.tcp_listening(tport) or
                     run.poll() is not None, 5.0,
                     what="%s listening on its 3PCC port %d" % (name, tport))
    check(run.poll() is None, "%s: SIPp exited with %s before the "
          "transferee connected\n%s" % (name, run.poll(), run.report()))
    return run, "%s:%d" % (harness.LOOPBACK, tport)


class Docs:
    """The dialog watcher's documents, taken phase by phase."""

    def __init__(self, watcher, workdir):
        self.w, self.workdir = watcher, workdir
        self.taken = 0

    def all(self):
        return dialoginfo.received(self.w, self.workdir, "controller")

    def new(self, what, count=None, until=None, timeout=DOC_WAIT_S):
        """The NOTIFYs since the last call: wait until there are count
        of them (or until(those) is true), then until none has come for
        QUIET_S (so that an extra one is seen, not left to the next
        phase); fails unless exactly count came (if given). Returns
        them."""
        def enough(ns):
            return len(ns) >= count if until is None else until(ns)
        deadline = time.monotonic() + timeout
        ns = self.all()[self.taken:]
        while not enough(ns):
            check(time.monotonic() < deadline, "%s: the dialog watcher "
                  "got %d NOTIFYs in %.1f s, expected %s:\n%s"
                  % (what, len(ns), timeout,
                     count if until is None else "more",
                     dialoginfo.dump(ns)))
            time.sleep(0.02)
            ns = self.all()[self.taken:]
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < QUIET_S:
            time.sleep(0.02)
            more = self.all()[self.taken:]
            if len(more) != len(ns):
                ns, quiet_since = more, time.monotonic()
            check(time.monotonic() < deadline + 2 * QUIET_S, "%s: the "
                  "dialog watcher does not stop getting NOTIFYs:\n%s"
                  % (what, dialoginfo.dump(ns)))
        if count is not None:
            check(len(ns) == count, "%s: the dialog watcher got %d "
                  "NOTIFYs, expected %d:\n%s"
                  % (what, len(ns), count, dialoginfo.dump(ns)))
        self.taken += len(ns)
        for n in ns:
            log("controller (%s): %s" % (what, n.describe()))
        return ns


def dialog_of(doc, p):
    return dialoginfo.dialog_by_call_id(doc, p.call_id)


def check_dialog(d, p, state, rendering, what, event=None):
    """d (a parse_doc dialog) is p's dialog in state, with the focus's
    tag as local-tag, its own TOKEN as id; rendering: the +sip.rendering
    pval of the local target (None: no such param, as for a terminated
    dialog); event: the state event expected (terminated only)."""
    check(d is not None, "%s: no dialog with %s's Call-ID %s"
          % (what, p.name, p.call_id))
    check(d["local_tag"] == p.focus_tag and d["remote_tag"] == p.tag,
          "%s: %s's dialog has local-tag %r, remote-tag %r; expected %r "
          "(the focus's) and %r" % (what, p.name, d["local_tag"],
                                    d["remote_tag"], p.focus_tag, p.tag))
    check(d["id"] == p.token, "%s: %s's dialog id %r, expected its leg "
          "TOKEN %r" % (what, p.name, d["id"], p.token))
    check(d["state"] == state and d["event"] == event,
          "%s: %s's dialog is %r (event %r), expected %r (event %r)"
          % (what, p.name, d["state"], d["event"], state, event))
    got = d["local_params"].get("+sip.rendering")
    check(got == rendering, "%s: %s's dialog has +sip.rendering %r, "
          "expected %r (local params %r)" % (what, p.name, got, rendering,
                                              d["local_params"]))


def one_partial(ns, what):
    check(len(ns) == 1 and ns[0].doc is not None and
          ns[0].doc["state"] == "partial" and
          len(ns[0].doc["dialogs"]) == 1,
          "%s: expected one partial document with one dialog:\n%s"
          % (what, dialoginfo.dump(ns)))
    return ns[0].doc


def notify_answers(p, want, what):
    """p's NOTIFYs (retransmissions dropped) said the sipfrags want, in
    order, and the focus answered each 200 (RFC 3515 2.4.4: the REFER's
    sender accepts the NOTIFYs of the subscription it made)."""
    msgs = p.msgs()
    sent = p.sent_requests("NOTIFY")
    got = [sipcheck.sipfrag(m) for m in sent]
    answers = []
    for m in sent:
        cseq = sipcheck.header1(m, "CSeq")
        finals = [r for r in msgs if r.direction == "received" and
                  sipcheck.status(r) is not None and
                  sipcheck.status(r) >= 200 and
                  sipcheck.header(r, "CSeq") == [cseq]]
        answers.append(finals[0].start if finals else "no answer")
    check(all(a.startswith("SIP/2.0 200 ") for a in answers),
          "%s: the focus answered %s's NOTIFYs (sipfrags %r, Event: refer, "
          "in the dialog of its own REFER) with %r; expected 200 each"
          % (what, p.name, got, answers))
    check(got == want, "%s: %s's NOTIFYs said %r, expected %r"
          % (what, p.name, got, want))


def wait_event_or_exit(p, word, timeout, what):
    """Wait until p's event file has a line starting with word, or its
    SIPp has ended (judged by the caller)."""
    harness.wait_for(
        lambda: p.run.poll() is not None or any(
            line.split()[:1] == [word] for line in mc.read_lines(p.events)),
        timeout, what="%s: %s's %r line" % (what, p.name, word),
        state=lambda: "events %r\n%s" % (mc.read_lines(p.events),
                                          p.run.report(30)))


# ---------------------------------------------------------------- main

def main():
    for s in (PARTICIPANT, TRANSFEREE, TWIN, REFUSER, TARGET,
              fc.REFER_SCENARIO):
        mc.scenario(s)
    users = fc.Users()
    parties, runs, watchers = {}, [], []
    try:
        with harness.Focusd(extra_args=users.focusd_args()) as fd:
            body(fd, parties, runs, watchers)
        # SIGTERM went out in Focusd.__exit__: the rest got BYE
        for name in ("alice", "carol", "dave"):
            sipcheck.hung_up_at_stop(parties[name].run, name)
    finally:
        for w in watchers:
            w.stop()
        for p in parties.values():
            p.close()
        for r in runs:
            r.kill()
        for s in _SINKS:
            s.close()
        users.cleanup()


def body(fd, parties, runs, watchers):
    conf = fc.conf_uri(fd, ROOM)
    parties["alice"] = fc.Party(fd, "alice", ROOM, PARTICIPANT,
                                timeout=SIPP_TIMEOUT_S)
    alice = parties["alice"]
    owner = (fc.conferences(fd).get(ROOM) or {}).get("owner") or ""
    check(owner.startswith("sip:alice@"), "conference.list: room1's owner "
          "is %r, expected alice's AOR" % owner)

    dlg = confwatch.ConfWatcher(fd, ROOM, name="controller",
                                event="dialog").start()
    watchers.append(dlg)
    cw = confwatch.ConfWatcher(fd, ROOM, name="confwatch").start()
    watchers.append(cw)
    docs = Docs(dlg, fd.tmpdir)
    first = docs.new("the subscription", 1)[0]
    check(first.doc["state"] == "full" and first.doc["version"] == 1,
          "controller: first document %s, expected full, version 1"
          % first.describe())
    check_dialog(dialog_of(first.doc, alice), alice, "confirmed", "yes",
                 "controller's full document")

    # -- targets, twins, transferees
    cathy, cathy_uri = target(fd, "cathy", 200, runs)
    busy, busy_uri = target(fd, "busy", 486, runs)
    twin_b, addr_b = twin(fd, "bob-twin", "bob", cathy, runs)
    twin_c, addr_c = twin(fd, "carol-twin", "carol", busy, runs)
    parties["bob"] = fc.Party(fd, "bob", ROOM, TRANSFEREE,
                              sipp_args=["-3pcc", addr_b],
                              timeout=SIPP_TIMEOUT_S)
    parties["carol"] = fc.Party(fd, "carol", ROOM, TRANSFEREE,
                                sipp_args=["-3pcc", addr_c],
                                timeout=SIPP_TIMEOUT_S)
    parties["dave"] = fc.Party(fd, "dave", ROOM, REFUSER,
                               timeout=SIPP_TIMEOUT_S)
    bob, carol, dave = parties["bob"], parties["carol"], parties["dave"]
    for p in (alice, bob, carol, dave):
        fc.wait_state(fd, ROOM, p, "connected")
    sipcheck.check_legs_differ({p.name: p.token for p in parties.values()},
                               "the joins")

    # -- 0: the joins as the controller saw them
    def joined(ns):
        last = {}
        for n in ns:
            for d in (n.doc or {}).get("dialogs", []):
                last[d["call_id"]] = d
        return all((last.get(p.call_id) or {}).get("state") == "confirmed"
                   for p in (bob, carol, dave))
    ns = docs.new("the joins", until=joined)
    last = {}
    for n in ns:
        check(n.doc is not None and n.doc["state"] == "partial" and
              len(n.doc["dialogs"]) == 1 and
              n.doc["dialogs"][0]["call_id"] in
              (bob.call_id, carol.call_id, dave.call_id),
              "controller: while bob, carol and dave joined: %s; expected "
              "partials about one of them each" % n.describe())
        last[n.doc["dialogs"][0]["call_id"]] = n.doc["dialogs"][0]
    for p in (bob, carol, dave):
        check_dialog(last[p.call_id], p, "confirmed", "yes",
                     "controller, %s joined" % p.name)
    cw_taken = len(cw.notifies())

    # -- 1: refused, at once
    cases = [
        ("no-target", "alice", bob.leg_uri(), "SingleStepTransfer",
         bob.target_dialog(), [400]),
        ("empty-target", "alice", conf, "SingleStepTransfer;target=",
         bob.target_dialog(), [400]),
        ("tel-target", "alice", conf,
         "SingleStepTransfer;target=tel:+15551234",
         bob.target_dialog(), [400]),
        ("eve-transfers", "eve", conf,
         "SingleStepTransfer;target=%s" % cathy_uri,
         carol.target_dialog(False), [401, 403]),
    ]
    fc.refused_at_once(fd, cases, "case 1", runs,
                       linger_ms=LINGER_REFUSED_MS)
    for p in (alice, bob, carol, dave):
        check(p.untouched(), "case 1: a refused REFER reached %s: %s"
              % (p.name, p.touched()))
    docs.new("case 1", 0)
    check(len(cw.notifies()) == cw_taken, "case 1: the conference watcher "
          "got NOTIFYs:\n%s" % confwatch.describe(cw.notifies()[cw_taken:]))

    # -- 2: 5.4 HoldCall, 3: 5.5 RetrieveCall, to bob's leg URI; each:
    # bob's count-th re-INVITE offers direction, the final NOTIFY comes
    # after his 200, his leg goes to state, and the dialog watcher gets
    # one document: his dialog confirmed, +sip.rendering rendering
    for case, flow, name, user, feature, td, count, direction, state, \
            rendering in (
                (2, "5.4", "hold", "alice", "HoldCall", bob.target_dialog(),
                 1, "sendonly", "on-hold", "no"),
                (3, "5.5", "retrieve", "mod", "RetrieveCall",
                 bob.target_dialog(False), 2, "sendrecv", "connected",
                 "yes")):
        msgs = fc.refer(fd, name, user, bob.leg_uri(),
                        "<urn:feature:%s>" % feature, td,
                        linger_ms=LINGER_ACCEPTED_MS)
        _, ns = sipcheck.check_refer(msgs, [401, 202], "case %d %s (%s)"
                                     % (case, feature, flow), final=200)
        ri, ok = fc.check_reinvite(bob, count, direction, conf)
        if case == 2:
            check(ri.when >= sipcheck.authorized(msgs).when - EARLY_S,
                  "case 2: bob's re-INVITE came before the REFER with "
                  "credentials was sent")
        check(ns[-1].when >= ok.when - EARLY_S, "case %d: the final NOTIFY "
              "came before bob's 200 to the %s" % (case, name))
        fc.wait_state(fd, ROOM, bob, state)
        what = "case %d (%s F6)" % (case, flow)
        doc = one_partial(docs.new(what, 1), "case %d" % case)
        check_dialog(doc["dialogs"][0], bob, "confirmed", rendering, what)

    # -- 4: 5.6 SingleStepTransfer, and its failures, at once
    cw_taken = len(cw.notifies())
    r_bob = fc.refer(fd, "transfer-bob", "alice", bob.leg_uri(),
                     "<urn:feature:SingleStepTransfer;target=%s>"
                     % cathy_uri, bob.target_dialog(), background=True,
                     linger_ms=LINGER_TRANSFER_MS)
    r_carol = fc.refer(fd, "transfer-carol", "mod", conf,
                       "<urn:feature:SingleStepTransfer;target=%s>"
                       % busy_uri, carol.target_dialog(), background=True,
                       linger_ms=LINGER_TRANSFER_MS)
    r_dave = fc.refer(fd, "transfer-dave", "alice", conf,
                      "<urn:feature:SingleStepTransfer;target=%s>"
                      % cathy_uri, dave.target_dialog(False),
                      background=True, linger_ms=LINGER_TRANSFER_MS)
    runs.extend([r_bob, r_carol, r_dave])

    # bob: transferred
    wait_event_or_exit(bob, "bye", 10.0, "case 4")
    notify_answers(bob, [100, 180, 200], "case 4")
    fc.wait_exit(bob.run, 5.0, "case 4 bob (transferred)")
    m_bob = sipcheck.sipp_ok(r_bob, "transfer-bob")
    _, ns_bob = sipcheck.check_refer(m_bob, [401, 202], "case 4 bob "
                                     "SingleStepTransfer (5.6)", final=200,
                                     progress=[180])
    refers = bob.refers()
    check(len(refers) == 1, "case 4: bob got %d REFERs, expected 1"
          % len(refers))
    rf = refers[0]
    check(rf.start == "REFER %s SIP/2.0" % bob.contact and
          sipcheck.header1(rf, "Call-ID") == bob.call_id and
          sipcheck.tag_of(sipcheck.header1(rf, "From")) == bob.focus_tag and
          sipcheck.tag_of(sipcheck.header1(rf, "To")) == bob.tag,
          "case 4: the REFER to bob is not in his dialog (Request-URI %s, "
          "Call-ID %s, tags %s/%s)\n%s" % (bob.contact, bob.call_id,
                                          bob.focus_tag, bob.tag, rf.raw))
    rt = sipcheck.header1(rf, "Refer-To")
    check(sipcheck.name_addr(rt)[0] == cathy_uri, "case 4: the focus's "
          "Refer-To is %r, expected <%s> (the URN's target)"
          % (rt, cathy_uri))
    rb = sipcheck.header1(rf, "Referred-By")
    check(sipcheck.name_addr(rb)[0] == conf, "case 4: the focus's "
          "Referred-By is %r, expected <%s> (the conference URI)"
          % (rb, conf))
    sipcheck.check_focus_contact(sipcheck.header1(rf, "Contact"), conf,
                                 "case 4: the REFER to bob", bob.token)
    check(rf.when >= sipcheck.authorized(m_bob).when - EARLY_S, "case 4: the "
          "REFER to bob came before the controller's REFER with "
          "credentials was sent")
    t_bob200 = bob.sent_requests("NOTIFY")[-1].when
    byes = bob.byes()
    check(len(byes) == 1 and
          sipcheck.header1(byes[0], "Call-ID") == bob.call_id and
          sipcheck.tag_of(sipcheck.header1(byes[0], "From")) ==
          bob.focus_tag, "case 4: bob got %d BYEs, expected one in his "
          "dialog\n%s" % (len(byes), "\n".join(b.raw for b in byes)))
    check(byes[0].when >= t_bob200 - EARLY_S, "case 4: the focus's BYE "
          "(%.3f) came before bob's NOTIFY 200 (%.3f)"
          % (byes[0].when, t_bob200))
    check(ns_bob[-1].when >= t_bob200 - EARLY_S, "case 4: the controller's "
          "final NOTIFY (%.3f) came before bob's NOTIFY 200 (%.3f)"
          % (ns_bob[-1].when, t_bob200))
    fc.wait_exit(twin_b, 5.0, "case 4 bob's twin")
    cmsgs = fc.wait_exit(cathy, 5.0, "case 4 cathy")
    inv = sipcheck.requests(cmsgs, "INVITE", "received")
    check(inv and inv[0].start == "INVITE %s SIP/2.0" % cathy_uri and
          sipcheck.name_addr(sipcheck.header1(inv[0], "Referred-By"))[0]
          == conf and
          sipcheck.name_addr(sipcheck.header1(inv[0], "From"))[0]
          .startswith("sip:bob@"),
          "case 4: cathy's INVITE is not bob's call to %s referred by %s\n%s"
          % (cathy_uri, conf, inv[0].raw if inv else cathy.report()))

    # carol: the target was busy
    wait_event_or_exit(carol, "notified", 10.0, "case 4")
    notify_answers(carol, [100, 180, 486], "case 4")
    m_carol = sipcheck.sipp_ok(r_carol, "transfer-carol")
    sipcheck.check_refer(m_carol, [401, 202], "case 4 carol "
                         "SingleStepTransfer to a busy target", final=486,
                         progress=[180])
    fc.wait_exit(twin_c, 5.0, "case 4 carol's twin")
    fc.wait_exit(busy, 5.0, "case 4 busy")

    # dave: REFER refused
    m_dave = sipcheck.sipp_ok(r_dave, "transfer-dave")
    sipcheck.check_refer(m_dave, [401, 202], "case 4 dave "
                         "SingleStepTransfer, REFER refused", final=405)
    check(len(dave.refers()) == 1, "case 4: dave got %d REFERs"
          % len(dave.refers()))
    d405 = [m for m in dave.msgs() if m.direction == "sent" and
            sipcheck.status(m) == 405]
    check(d405, "case 4: dave's 405 is not in his trace")

    for p in (carol, dave):
        check(not p.byes() and p.run.poll() is None, "case 4: %s was not "
              "transferred but %s" % (p.name, p.touched()))
    sipcheck.wait_until(lambda: fc.by_call_id(fd, ROOM, bob.call_id) is None,
                        fc.WAIT_S, "bob gone from conference.show",
                        lambda: fc.states(fd, ROOM))
    got = sorted((p.get("call_id"), p.get("state")) for p in mc.legs(fd, ROOM))
    want = sorted((p.call_id, "connected") for p in (alice, carol, dave))
    check(got == want, "case 4: room1 is %r, expected alice, carol and dave "
          "connected" % (fc.states(fd, ROOM),))

    doc_n = docs.new("case 4 (5.6 F15)", 1)[0]
    doc = one_partial([doc_n], "case 4")
    check_dialog(doc["dialogs"][0], bob, "terminated", None,
                 "case 4 (5.6 F15)", event="local-bye")
    check(doc_n.msg.when >= t_bob200 - EARLY_S, "case 4: the controller "
          "learnt of bob's terminated dialog (%.3f) before bob's NOTIFY "
          "200 went out (%.3f)" % (doc_n.msg.when, t_bob200))

    cns = confinfo.notifies(cw.notifies()[cw_taken:], fd.tmpdir,
                            "confwatch")
    check(len(cns) == 1 and cns[0].doc is not None and
          [confinfo.user_names({"users": [u]})[0]
           for u in cns[0].doc["users"]] == ["bob"],
          "case 4: the conference watcher got:\n%s\n"
          "expected one partial about bob" % confinfo.dump(cns))
    u = cns[0].doc["users"][0]
    ep = (u["endpoints"] or [{}])[0]
    check(u["state"] == "deleted" or ep.get("state") == "deleted",
          "case 4: bob's user is %r (endpoint %r), expected deleted"
          % (u["state"], ep.get("state")))
    check(ep.get("disconnection_method") == "departed", "case 4: bob left "
          "with disconnection-method %r, expected departed (RFC 4575: "
          "transferred away)" % ep.get("disconnection_method"))

    # -- 5: the subscription as a whole
    ns = docs.all()
    for n in ns:
        dialoginfo.check_headers(n, "controller", active=True)
    versions = dialoginfo.check_versions(ns, "controller")
    log("controller: versions %s" % versions)
    dlg.unsubscribe()
    cw.unsubscribe()


if __name__ == "__main__":
    harness.run_main(main)
