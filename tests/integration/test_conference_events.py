#!/usr/bin/env python3
"""A conference-event watcher (RFC 4575) sees every participant come,
change and go: a full document first, then numbered partial ones.

It starts focusd with --auto-create and checks, in order:
1. SUBSCRIBE (Event: conference) to room1 before any conference exists
   gets 404, and does not create the conference;
2. alice joins room1 (uac_join); a watcher subscribes
   (uac_subscribe_conf.xml) and gets version 1, state="full": user-count
   1, the conference URI in conf-uris, alice's user with one endpoint
   that is "connected", joining-method "dialed-in", an audio media stream
   "sendrecv", and call-info/sip naming alice's dialog (her Call-ID, her
   From tag, the To tag of focusd's 200);
3. while the conference exists, a SUBSCRIBE with Event: presence gets 489
   with Allow-Events naming conference, and one with Accept: text/plain
   gets 406; neither makes the watcher hear anything;
4. bob joins: version 2 (bob "dialing-in", user-count 2), version 3
   (bob "connected");
5. carol joins and puts herself on hold, then back (uac_hold): versions 4
   (dialing-in, user-count 3), 5 (connected, sendrecv), 6 ("on-hold",
   media "sendonly"), 7 ("connected", "sendrecv");
6. bob hangs up: version 8, bob state="deleted", endpoint "disconnected",
   disconnection-method "departed", user-count 2;
7. the watcher un-subscribes (Expires: 0, after 3 s without a NOTIFY):
   200 and a last NOTIFY with Subscription-State: terminated.
Every NOTIFY carries Event: conference, Content-Type
application/conference-info+xml and, until the last, Subscription-State
active; versions are exactly 1, 2, 3, ... with no gap or repeat, version 1
is state="full" and the others "partial"; every document validates against
tests/schemas/conference-info.xsd (xmllint). After each step the user-count
of the newest document equals the participants conference.list reports.
The last NOTIFY may repeat the last document (the stack resends it when
the subscription ends), but only as an identical copy.

Timing: bob stays 3.5 s, carol holds 0.7 s after her answer for 0.9 s,
so bob leaves about 1.8 s after carol is back; the watcher ends 3 s after
the last NOTIFY; alice and carol stay until about 9 s, past the watcher's
end. Order is checked from the documents, so a machine too slow for these
margins fails with the sequence it saw. About 11 s in all.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_conference_events.py (exit 0 on pass).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confinfo  # noqa: E402
import harness  # noqa: E402
import rtpep  # noqa: E402
import sipcheck  # noqa: E402
from harness import check, log  # noqa: E402

ROOM = "room1"
ALICE_MS = 9000
BOB_MS = 3500
HOLD_AFTER_MS = 700
HOLD_MS = 900
CAROL_TALK_MS = 7000
IDLE_MS = 3000


def participants(fd):
    listing = fd.mgmt_result("conference.list")
    for c in listing.get("conferences", []):
        if c.get("id") == ROOM:
            return c.get("participants")
    return None


def join(fd, name, ep, pause_ms):
    port_file = os.path.join(fd.tmpdir, name + ".port")
    run = sipcheck.run_sipp(
        fd, "uac_join.xml", name, service=ROOM,
        keys={"rtp_port": ep.port, "pause_ms": pause_ms,
              "port_file": port_file},
        sets={"from_user": name}, background=True, timeout=25)
    return run


def wait_state(fd, name, state, timeout=5.0):
    """Wait until conference.show lists name's leg in state."""
    def leg_state():
        r = fd.mgmt("conference.show", {"id": ROOM})
        for p in r.get("result", {}).get("participants", []):
            if ("sip:%s@" % name) in (p.get("uri") or ""):
                return p.get("state")
        return None
    sipcheck.wait_until(lambda: leg_state() == state, timeout,
                        "%s %s in conference.show" % (name, state),
                        leg_state)


def dialog_of(run, who):
    """(Call-ID, From tag, To tag) of the INVITE dialog in a uac_join
    trace."""
    msgs = sipcheck.trace_of(run)
    inv = sipcheck.requests(msgs, "INVITE", "sent")
    check(inv, "%s: no INVITE in the trace" % who)
    ok = [m for m in sipcheck.responses(msgs, cseq="INVITE", final=True)
          if sipcheck.status(m) == 200]
    check(ok, "%s: no 200 to the INVITE in the trace" % who)
    return (sipcheck.header1(inv[0], "Call-ID"),
            sipcheck.tag_of(sipcheck.header1(inv[0], "From")),
            sipcheck.tag_of(sipcheck.header1(ok[0], "To")))


def only_user(n, name, who):
    users = confinfo.user_names(n.doc)
    check(users == [name], "%s: %s names users %r, expected only %s (the "
          "one that changed)" % (who, n.describe(), users, name))
    u = n.doc["users"][0]
    check(len(u["endpoints"]) == 1, "%s: %s: %s has %d endpoints, "
          "expected 1" % (who, n.describe(), name, len(u["endpoints"])))
    return u, u["endpoints"][0]


def check_media(n, ep, status, who):
    check(len(ep["media"]) == 1, "%s: %s: endpoint %s has %d media, "
          "expected 1" % (who, n.describe(), ep["entity"], len(ep["media"])))
    m = ep["media"][0]
    check(m["type"] == "audio" and m["status"] == status,
          "%s: %s: media of %s is type %r status %r, expected audio %s"
          % (who, n.describe(), ep["entity"], m["type"], m["status"],
             status))


def check_change(n, name, state, status, media, count, who="watcher"):
    """A partial document about name: the user in `state` (full or
    deleted), its endpoint's status, its media status (None: no media),
    user-count."""
    d = n.doc
    check(d["state"] == "partial", "%s: %s: state %r, expected partial"
          % (who, n.describe(), d["state"]))
    u, ep = only_user(n, name, who)
    check(u["state"] == state, "%s: %s: user %s has state %r, expected %r"
          % (who, n.describe(), name, u["state"], state))
    check(ep["status"] == status, "%s: %s: %s's endpoint status is %r, "
          "expected %r" % (who, n.describe(), name, ep["status"], status))
    if media is not None:
        check_media(n, ep, media, who)
    check(d["user_count"] == count, "%s: %s: user-count %r, expected %d"
          % (who, n.describe(), d["user_count"], count))
    check(d["active"] is True, "%s: %s: active %r, expected true"
          % (who, n.describe(), d["active"]))
    return u, ep


def main():
    confinfo.xmllint_path()
    runs = []
    eps = []
    errors = []
    failed = True
    with harness.Focusd(auto_create=True) as fd:
        work = os.path.join(fd.tmpdir, "docs")
        try:
            # -- 1: no conference, no subscription
            r = confinfo.subscribe_once(fd, ROOM, name="early")
            check(sipcheck.status(r) == 404, "SUBSCRIBE to %s before any "
                  "conference exists: %r, expected 404\n%s"
                  % (ROOM, r.start, r.raw))
            check(participants(fd) is None, "a refused SUBSCRIBE created "
                  "conference %s: %r" % (ROOM,
                                         fd.mgmt_result("conference.list")))

            # -- 2: alice, then the watcher
            for name in ("alice", "bob", "carol"):
                eps.append(rtpep.RtpEndpoint(name=name,
                                             max_duration=30).start())
            alice = join(fd, "alice", eps[0], ALICE_MS)
            runs.append(alice)
            wait_state(fd, "alice", "connected")
            a_call, a_from, a_to = dialog_of(alice, "alice")
            watcher = confinfo.watch(fd, ROOM, "watcher", idle_ms=IDLE_MS,
                                     duration_ms=20000)
            runs.append(watcher)
            ns = confinfo.wait_notifies(watcher, 1, 5.0, work, "watcher")
            check(participants(fd) == ns[0].doc["user_count"] == 1,
                  "after alice: conference.list says %r participants, the "
                  "document user-count %r; expected 1"
                  % (participants(fd), ns[0].doc["user_count"]))

            # -- 3: refused subscriptions
            r = confinfo.subscribe_once(fd, ROOM, event="presence",
                                        name="presence")
            check(sipcheck.status(r) == 489, "SUBSCRIBE with Event: "
                  "presence: %r, expected 489 Bad Event\n%s"
                  % (r.start, r.raw))
            allow = [t.lower() for t in sipcheck.token_list(
                sipcheck.header(r, "Allow-Events") +
                sipcheck.header(r, "u"))]
            check("conference" in allow, "489 to Event: presence: "
                  "Allow-Events %r does not name conference\n%s"
                  % (allow, r.raw))
            r = confinfo.subscribe_once(fd, ROOM, accept="text/plain",
                                        name="textplain")
            check(sipcheck.status(r) == 406, "SUBSCRIBE with Accept: "
                  "text/plain: %r, expected 406 Not Acceptable\n%s"
                  % (r.start, r.raw))

            # -- 4: bob
            bob = join(fd, "bob", eps[1], BOB_MS)
            runs.append(bob)
            ns = confinfo.wait_notifies(watcher, 3, 5.0, work, "watcher")
            wait_state(fd, "bob", "connected")
            check(participants(fd) == ns[-1].doc["user_count"] == 2,
                  "after bob: conference.list says %r participants, the "
                  "newest document (%s) user-count %r; expected 2"
                  % (participants(fd), ns[-1].describe(),
                     ns[-1].doc["user_count"]))

            # -- 5: carol, on hold and back
            carol = sipcheck.run_sipp(
                fd, "uac_hold.xml", "carol", service=ROOM,
                keys={"rtp_port": eps[2].port, "event_file":
                      os.path.join(fd.tmpdir, "carol.events"),
                      "hold_after_ms": HOLD_AFTER_MS, "hold_ms": HOLD_MS,
                      "talk_ms": CAROL_TALK_MS},
                sets={"from_user": "carol"}, background=True, timeout=25)
            runs.append(carol)
            ns = confinfo.wait_notifies(watcher, 5, 5.0, work, "watcher")
            check(participants(fd) == ns[-1].doc["user_count"] == 3,
                  "after carol: conference.list says %r participants, the "
                  "newest document (%s) user-count %r; expected 3"
                  % (participants(fd), ns[-1].describe(),
                     ns[-1].doc["user_count"]))
            ns = confinfo.wait_notifies(watcher, 7, 6.0, work, "watcher")

            # -- 6: bob leaves
            ns = confinfo.wait_notifies(watcher, 8, 6.0, work, "watcher")
            sipcheck.wait_until(lambda: bob.poll() is not None, 5.0,
                                "bob's SIPp to finish", bob.report)
            check(participants(fd) == ns[-1].doc["user_count"] == 2,
                  "after bob left: conference.list says %r participants, "
                  "the newest document (%s) user-count %r; expected 2"
                  % (participants(fd), ns[-1].describe(),
                     ns[-1].doc["user_count"]))

            # -- 7: the watcher ends its subscription
            msgs = sipcheck.sipp_ok(watcher, "watcher")
            left = participants(fd)
            for run, who in ((alice, "alice"), (bob, "bob"),
                             (carol, "carol")):
                sipcheck.sipp_ok(run, who)

            ns = confinfo.notifies(msgs, work, "watcher")
            log("watcher received:\n" + confinfo.dump(ns))
            check(left == 2, "when the watcher had finished, conference.list "
                  "said %r participants, expected 2 (alice, carol): the "
                  "timing of this test did not hold" % left)
            errors = check_all(ns, (a_call, a_from, a_to), fd, msgs)
            if errors:
                # focusd still stops normally (its exit status, and the
                # sanitizers' verdict, count too); keep its files
                fd.failed = True
                fd.dump_log()
            failed = False
        finally:
            for ep in eps:
                ep.stop()
            for run in runs:
                if failed and run.poll() is None:
                    sys.stderr.write(run.report(lines=60) + "\n")
                run.kill()
    if errors:
        harness.fail("%d problems with what the watcher saw:\n- %s"
                     % (len(errors), "\n- ".join(errors)))


def collect(errors, fn, *args):
    """Run one group of checks; a failure is kept, the next group runs."""
    try:
        fn(*args)
    except harness.TestFailure as e:
        errors.append(str(e))


def check_all(ns, alice_dialog, fd, msgs):
    """Every check on the watcher's NOTIFYs; independent groups all run.
    Returns the failures."""
    errors = []
    collect(errors, check_sequence, ns, msgs)
    if len(ns) >= 9:
        collect(errors, check_first, ns[0], alice_dialog, fd)
        for i, want in enumerate(CHANGES):
            collect(errors, check_change, ns[i + 1], *want)
        collect(errors, check_departure, ns[8])
    return errors


# (name, user state, endpoint status, media status, user-count) of
# versions 2 to 8
CHANGES = [
    ("bob", "full", "dialing-in", "sendrecv", 2),
    ("bob", "full", "connected", "sendrecv", 2),
    ("carol", "full", "dialing-in", "sendrecv", 3),
    ("carol", "full", "connected", "sendrecv", 3),
    ("carol", "full", "on-hold", "sendonly", 3),
    ("carol", "full", "connected", "sendrecv", 3),
    ("bob", "deleted", "disconnected", None, 2),
]


def check_departure(n):
    u, ep = check_change(n, *CHANGES[-1])
    check(ep["disconnection_method"] == "departed", "watcher: %s: bob's "
          "disconnection-method %r, expected departed"
          % (n.describe(), ep["disconnection_method"]))


def check_sequence(ns, msgs):
    who = "watcher"
    seq = "\n" + confinfo.dump(ns)
    check(len(ns) >= 9, "%s: %d NOTIFYs, expected 8 active ones and a "
          "terminated one:%s" % (who, len(ns), seq))
    last = ns[-1]
    active = ns[:-1]
    for n in active:
        confinfo.check_headers(n, who, active=True)
    confinfo.check_headers(last, who, active=False)

    versions = [n.doc["version"] for n in active]
    check(versions == list(range(1, len(active) + 1)),
          "%s: versions %r, expected 1, 2, 3, ... with no gap or repeat:%s"
          % (who, versions, seq))
    check(len(active) == 8, "%s: %d active NOTIFYs, expected 8 (alice in "
          "full; bob dialing-in, connected; carol dialing-in, connected, "
          "on-hold, connected; bob deleted):%s" % (who, len(active), seq))
    states = [n.doc["state"] for n in active]
    check(states == ["full"] + ["partial"] * 7, "%s: document states %r, "
          "expected full then partial:%s" % (who, states, seq))

    # the last one: terminated; its document, if any, is either new or an
    # exact copy of the last one
    lv = last.doc["version"]
    check(lv == versions[-1] + 1 or
          (lv == versions[-1] and last.msg.body == active[-1].msg.body),
          "%s: the terminating NOTIFY carries version %r, expected %d, or "
          "an identical copy of version %d:%s"
          % (who, lv, versions[-1] + 1, versions[-1], seq))
    if lv == versions[-1]:
        log("note: the terminating NOTIFY repeats version %d (the stack's "
            "resend of the last document)" % lv)

    # the un-SUBSCRIBE and its 200 in the trace
    unsub = [m for m in sipcheck.requests(msgs, "SUBSCRIBE", "sent")
             if sipcheck.header(m, "Expires") == ["0"]]
    check(len(unsub) == 1, "%s: %d un-SUBSCRIBEs sent, expected 1"
          % (who, len(unsub)))
    ok = [m for m in sipcheck.responses(msgs, cseq="SUBSCRIBE", final=True)
          if sipcheck.header1(m, "CSeq") == sipcheck.header1(unsub[0],
                                                             "CSeq")]
    check(ok and sipcheck.status(ok[0]) == 200, "%s: the un-SUBSCRIBE got "
          "%r, expected 200" % (who, [m.start for m in ok]))
    check(last.msg.when >= unsub[0].when, "%s: the terminated NOTIFY came "
          "before the un-SUBSCRIBE" % who)


def check_first(n, alice_dialog, fd):
    """Version 1: alice, in full."""
    who = "watcher"
    d = n.doc
    uri = "sip:%s@%s" % (ROOM, fd.sip_target)
    check(uri in d["conf_uris"], "%s: %s: conf-uris %r do not hold the "
          "conference URI %s" % (who, n.describe(), d["conf_uris"], uri))
    check(d["entity"] == uri, "%s: %s: entity %r, expected %s"
          % (who, n.describe(), d["entity"], uri))
    check(d["user_count"] == 1 and d["active"] is True, "%s: %s: "
          "user-count %r active %r, expected 1, true"
          % (who, n.describe(), d["user_count"], d["active"]))
    check(d["users_state"] == "full", "%s: %s: <users state=%r>, expected "
          "full" % (who, n.describe(), d["users_state"]))
    check(confinfo.user_names(d) == ["alice"], "%s: %s: users %r, expected "
          "only alice" % (who, n.describe(), confinfo.user_names(d)))
    u = d["users"][0]
    check(len(u["endpoints"]) == 1, "%s: %s: alice has %d endpoints"
          % (who, n.describe(), len(u["endpoints"])))
    ep = u["endpoints"][0]
    check(ep["status"] == "connected", "%s: %s: alice's endpoint status "
          "%r, expected connected" % (who, n.describe(), ep["status"]))
    check(ep["joining_method"] == "dialed-in", "%s: %s: alice's "
          "joining-method %r, expected dialed-in"
          % (who, n.describe(), ep["joining_method"]))
    check_media(n, ep, "sendrecv", who)
    call_id, from_tag, to_tag = alice_dialog
    ci = ep["call_info"]
    check(ci is not None, "%s: %s: alice's endpoint has no "
          "call-info/sip; expected call-id %s, from-tag %s, to-tag %s"
          % (who, n.describe(), call_id, from_tag, to_tag))
    check((ci["call_id"], ci["from_tag"], ci["to_tag"]) ==
          (call_id, from_tag, to_tag), "%s: %s: alice's call-info/sip is "
          "call-id %r from-tag %r to-tag %r; her dialog is %r %r %r"
          % (who, n.describe(), ci["call_id"], ci["from_tag"],
             ci["to_tag"], call_id, from_tag, to_tag))


if __name__ == "__main__":
    harness.run_main(main)
