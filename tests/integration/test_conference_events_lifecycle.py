#!/usr/bin/env python3
"""Conference-event subscriptions live as long as the conference, not as
the call that made them: they survive a BYE, end with the conference, and
a refresh gives the full state under the next version number.

It starts focusd with --auto-create; pat joins room1 (uac_join) and stays
about 5.5 s; a watcher subscribes from outside any call
(uac_subscribe_conf.xml) and refreshes 3 s after its 200; alice joins and
subscribes inside her call's dialog (uac_join_subscribe.xml), hangs up
after 1 s, keeps watching, and un-subscribes 2.5 s after her last NOTIFY;
bob joins as soon as alice's subscription has reported her departure and
stays 4.5 s, so he is the last to leave.

(a) alice, in her INVITE dialog: the SUBSCRIBE (same Call-ID and tags,
    CSeq 2, Request-URI = the Contact of focusd's 200) gets 200 and a full
    NOTIFY in that dialog (version 1: pat and alice, alice "connected");
    her BYE gets 200; her subscription then receives, still in that
    dialog, version 2 (alice state="deleted", "disconnected", "departed",
    user-count 1), then 3 and 4 about bob ("dialing-in", "connected",
    user-count 2); her un-SUBSCRIBE gets 200 and a terminated NOTIFY.
(b) when bob, the last participant, leaves, the watcher gets a last
    NOTIFY with Subscription-State: terminated;reason=noresource whose
    document says active false or user-count 0, and the conference is
    gone from conference.list.
(c) the watcher's refresh (Expires: 600) gets 200 and then a document
    with state="full" whose version is one more than the last before the
    refresh (not 1 again), listing pat and bob; a resend of the previous
    document, identical, may come before it (the stack does that).
For both subscriptions: every NOTIFY has Event: conference and
Content-Type application/conference-info+xml, Subscription-State active
until the last; versions count 1, 2, 3, ... without gaps (identical
resends aside); every document validates against
tests/schemas/conference-info.xsd (xmllint). Problems in (a), (b) and (c)
are all reported together. About 11 s (15 s when (b) fails: the watcher
then idles out and its un-SUBSCRIBE gets 481).

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_conference_events_lifecycle.py (exit 0 on
pass).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confinfo  # noqa: E402
import harness  # noqa: E402
import rtpep  # noqa: E402
import sipcheck  # noqa: E402
from harness import check, log  # noqa: E402

ROOM = "room1"
PAT_MS = 5500
BOB_MS = 4500
ALICE_CALL_MS = 1000
ALICE_IDLE_MS = 2500
WATCH_REFRESH_MS = 3000
WATCH_IDLE_MS = 4000


def collect(errors, fn, *args):
    try:
        fn(*args)
    except harness.TestFailure as e:
        errors.append(str(e))


def without_resends(ns, who):
    """Drop NOTIFYs that repeat the previous one's document exactly
    (version and body); returns (kept, dropped)."""
    kept, dropped = [], []
    for n in ns:
        if kept and n.doc is not None and kept[-1].doc is not None and \
                n.doc["version"] == kept[-1].doc["version"] and \
                n.msg.body == kept[-1].msg.body:
            dropped.append(n)
            continue
        kept.append(n)
    if dropped:
        log("%s: %d NOTIFYs resent the previous document: %s"
            % (who, len(dropped), ", ".join("CSeq %s v%s"
                                            % (n.cseq, n.doc["version"])
                                            for n in dropped)))
    return kept, dropped


def check_versions(kept, who):
    versions = [n.doc["version"] for n in kept]
    check(versions == list(range(1, len(kept) + 1)), "%s: versions %r "
          "(identical resends left out), expected 1, 2, 3, ...:\n%s"
          % (who, versions, confinfo.dump(kept)))


def check_user(n, name, state, status, count, who, method=None):
    d = n.doc
    u = confinfo.user_named(d, name)
    check(u is not None, "%s: %s does not name %s" % (who, n.describe(),
                                                     name))
    check(u["state"] == state, "%s: %s: %s has state %r, expected %r"
          % (who, n.describe(), name, u["state"], state))
    check(len(u["endpoints"]) == 1 and
          u["endpoints"][0]["status"] == status,
          "%s: %s: %s's endpoint status %r, expected %r"
          % (who, n.describe(), name,
             [e["status"] for e in u["endpoints"]], status))
    if method is not None:
        got = u["endpoints"][0]["disconnection_method"]
        check(got == method, "%s: %s: %s's disconnection-method %r, "
              "expected %r" % (who, n.describe(), name, got, method))
    check(d["user_count"] == count, "%s: %s: user-count %r, expected %d"
          % (who, n.describe(), d["user_count"], count))


def dialog(msgs, who):
    """(Call-ID, our From tag, focusd's To tag, focusd's Contact URI) of
    the INVITE dialog in a trace."""
    inv = sipcheck.requests(msgs, "INVITE", "sent")
    check(inv, "%s: no INVITE sent" % who)
    ok = [m for m in sipcheck.responses(msgs, cseq="INVITE", final=True)
          if sipcheck.status(m) == 200]
    check(ok, "%s: no 200 to the INVITE" % who)
    return (sipcheck.header1(inv[0], "Call-ID"),
            sipcheck.tag_of(sipcheck.header1(inv[0], "From")),
            sipcheck.tag_of(sipcheck.header1(ok[0], "To")),
            sipcheck.name_addr(sipcheck.header1(ok[0], "Contact"))[0])


# ---------------------------------------------------------------- (a)

def check_alice(msgs, ns, rc, work):
    who = "alice (subscribed in her call)"
    call_id, our_tag, focus_tag, contact = dialog(msgs, who)
    sub = [m for m in sipcheck.requests(msgs, "SUBSCRIBE", "sent")]
    check(len(sub) == 2, "%s: %d SUBSCRIBEs sent, expected 2 (subscribe, "
          "un-subscribe)" % (who, len(sub)))
    s = sub[0]
    check(s.start.split()[1] == contact, "%s: the SUBSCRIBE went to %r, "
          "not the Contact of the 200 (%s)" % (who, s.start, contact))
    check((sipcheck.header1(s, "Call-ID"),
           sipcheck.tag_of(sipcheck.header1(s, "From")),
           sipcheck.tag_of(sipcheck.header1(s, "To")),
           sipcheck.header1(s, "CSeq")) ==
          (call_id, our_tag, focus_tag, "2 SUBSCRIBE"),
          "%s: the SUBSCRIBE is not in the INVITE's dialog:\n%s"
          % (who, s.raw))
    for req in sub:
        cseq = sipcheck.header1(req, "CSeq")
        r = [m for m in sipcheck.responses(msgs, cseq="SUBSCRIBE",
                                            final=True)
             if sipcheck.header1(m, "CSeq") == cseq]
        check(r and sipcheck.status(r[0]) == 200, "%s: SUBSCRIBE (CSeq "
              "%s) got %r, expected 200" % (who, cseq,
                                            [m.start for m in r]))
    bye = sipcheck.requests(msgs, "BYE", "sent")
    check(len(bye) == 1, "%s: %d BYEs sent, expected 1" % (who, len(bye)))
    r = sipcheck.responses(msgs, cseq="BYE", final=True)
    check(r and sipcheck.status(r[0]) == 200, "%s: the BYE got %r, "
          "expected 200" % (who, [m.start for m in r]))

    log("%s received:\n%s" % (who, confinfo.dump(ns)))
    check(rc == 0, "%s: SIPp exited with %d, expected 0" % (who, rc))
    check(len(ns) >= 5, "%s: %d NOTIFYs, expected 4 active ones (full; "
          "alice deleted; bob dialing-in, connected) and a terminated "
          "one:\n%s" % (who, len(ns), confinfo.dump(ns)))
    for n in ns:
        m = n.msg
        check((sipcheck.header1(m, "Call-ID"),
               sipcheck.tag_of(sipcheck.header1(m, "From")),
               sipcheck.tag_of(sipcheck.header1(m, "To"))) ==
              (call_id, focus_tag, our_tag), "%s: %s is not in her call's "
              "dialog (Call-ID %s, From tag %s, To tag %s):\n%s"
              % (who, n.describe(), call_id, focus_tag, our_tag, m.raw))
    last = ns[-1]
    active = ns[:-1]
    for n in active:
        confinfo.check_headers(n, who, active=True)
    confinfo.check_headers(last, who, active=False)
    versions = [n.doc["version"] for n in active]
    check(versions == list(range(1, len(active) + 1)), "%s: versions %r, "
          "expected 1, 2, 3, ... with no gap or repeat:\n%s"
          % (who, versions, confinfo.dump(ns)))
    lv = last.doc["version"]
    check(lv == versions[-1] + 1 or
          (lv == versions[-1] and last.msg.body == active[-1].msg.body),
          "%s: the terminating NOTIFY carries version %r, expected %d, or "
          "an identical copy of version %d" % (who, lv, versions[-1] + 1,
                                               versions[-1]))
    check(len(active) == 4, "%s: %d active NOTIFYs, expected 4:\n%s"
          % (who, len(active), confinfo.dump(ns)))
    check([n.doc["state"] for n in active] ==
          ["full", "partial", "partial", "partial"],
          "%s: document states %r, expected full then partial"
          % (who, [n.doc["state"] for n in active]))
    d = active[0].doc
    check(sorted(confinfo.user_names(d)) == ["alice", "pat"],
          "%s: %s: users %r, expected alice and pat"
          % (who, active[0].describe(), confinfo.user_names(d)))
    check_user(active[0], "alice", "full", "connected", 2, who)
    check(active[1].msg.when >= bye[0].when, "%s: %s came before her BYE"
          % (who, active[1].describe()))
    check_user(active[1], "alice", "deleted", "disconnected", 1, who,
               method="departed")
    check_user(active[2], "bob", "full", "dialing-in", 2, who)
    check_user(active[3], "bob", "full", "connected", 2, who)
    check(last.msg.when >= sub[1].when, "%s: the terminated NOTIFY came "
          "before her un-SUBSCRIBE" % who)


# ---------------------------------------------------------------- (b), (c)

def watcher_parts(msgs, ns):
    """(NOTIFYs before the refresh SUBSCRIBE went out, those after, the
    refresh request)."""
    ref = [m for m in sipcheck.requests(msgs, "SUBSCRIBE", "sent")
           if sipcheck.header(m, "Expires") == ["600"]]
    check(len(ref) == 1, "watcher: %d refresh SUBSCRIBEs (Expires: 600) "
          "sent, expected 1" % len(ref))
    before = [n for n in ns if n.msg.when < ref[0].when]
    after = [n for n in ns if n.msg.when >= ref[0].when]
    return before, after, ref[0]


def check_refresh(msgs, ns):
    who = "watcher (refresh)"
    before, after, ref = watcher_parts(msgs, ns)
    cseq = sipcheck.header1(ref, "CSeq")
    r = [m for m in sipcheck.responses(msgs, cseq="SUBSCRIBE", final=True)
         if sipcheck.header1(m, "CSeq") == cseq]
    check(r and sipcheck.status(r[0]) == 200, "%s: the refresh got %r, "
          "expected 200" % (who, [m.start for m in r]))
    check(before, "%s: no NOTIFY before the refresh" % who)
    prev = before[-1]
    pv = prev.doc["version"]
    check(pv >= 6, "%s: the last document before the refresh is version "
          "%r, expected 6 (pat; alice came, went; bob came): the refresh "
          "came too early to tell a reset from a count" % (who, pv))
    rest = list(after)
    while rest and rest[0].doc is not None and \
            rest[0].doc["version"] == pv and rest[0].msg.body == \
            prev.msg.body:
        log("%s: %s resends version %d" % (who, rest[0].describe(), pv))
        rest.pop(0)
    check(rest, "%s: no NOTIFY after the refresh (besides resends of "
          "version %d):\n%s" % (who, pv, confinfo.dump(after)))
    n = rest[0]
    check(n.doc["state"] == "full" and n.doc["version"] == pv + 1,
          "%s: after the refresh came %s, expected state=\"full\" version "
          "%d (the version after %d, not a reset to 1)"
          % (who, n.describe(), pv + 1, pv))
    check(sorted(confinfo.user_names(n.doc)) == ["bob", "pat"],
          "%s: %s: users %r, expected bob and pat"
          % (who, n.describe(), confinfo.user_names(n.doc)))
    check(n.doc["user_count"] == 2, "%s: %s: user-count %r, expected 2"
          % (who, n.describe(), n.doc["user_count"]))
    check(n.substate == "active", "%s: %s: Subscription-State %r, "
          "expected active" % (who, n.describe(), n.substate_raw))


def check_watcher_sequence(ns):
    who = "watcher"
    check(ns, "%s: no NOTIFYs" % who)
    for n in ns:
        confinfo.check_headers(n, who, active=not (
            n is ns[-1] and n.substate == "terminated"))
    kept, _ = without_resends(ns, who)
    check_versions(kept, who)
    check(kept[0].doc["state"] == "full", "%s: %s: the first document "
          "is not full" % (who, kept[0].describe()))
    # the six changes before the refresh, in order
    want = [("pat", "full", "connected", 1),
            ("alice", "full", "dialing-in", 2),
            ("alice", "full", "connected", 2),
            ("alice", "deleted", "disconnected", 1),
            ("bob", "full", "dialing-in", 2),
            ("bob", "full", "connected", 2)]
    check(len(kept) >= len(want), "%s: %d documents, expected at least "
          "%d:\n%s" % (who, len(kept), len(want), confinfo.dump(kept)))
    for n, (name, state, status, count) in zip(kept, want):
        check_user(n, name, state, status, count, who)
        if n is not kept[0]:
            check(n.doc["state"] == "partial", "%s: %s is not partial"
                  % (who, n.describe()))


def check_end(ns, bye_when, rc, run):
    who = "watcher (conference end)"
    check(ns, "%s: no NOTIFYs" % who)
    last = ns[-1]
    after = [n for n in ns if n.msg.when >= bye_when]
    check(last.substate == "terminated", "%s: the last NOTIFY is %s, "
          "expected Subscription-State: terminated;reason=noresource after "
          "bob, the last participant, left; NOTIFYs since his BYE:\n%s\n"
          "(the watcher then %s)"
          % (who, last.describe(), confinfo.dump(after),
             "un-subscribed and got: " + ", ".join(
                 m.start for m in sipcheck.responses(
                     sipcheck.trace_of(run), cseq="SUBSCRIBE", final=True)
                 [-1:])))
    check(last.reason == "noresource", "%s: %s: reason %r, expected "
          "noresource" % (who, last.describe(), last.reason))
    confinfo.check_headers(last, who, active=False)
    check(last.doc["active"] is False or last.doc["user_count"] == 0,
          "%s: %s: active %r user-count %r; expected active false or "
          "user-count 0" % (who, last.describe(), last.doc["active"],
                            last.doc["user_count"]))
    check(last.msg.when >= bye_when, "%s: %s came before bob's BYE"
          % (who, last.describe()))
    check(rc == 0, "%s: SIPp exited with %d, expected 0 (it ends when "
          "focusd ends the subscription)\n%s" % (who, rc, run.report()))


# ---------------------------------------------------------------- main

def main():
    confinfo.xmllint_path()
    runs = []
    eps = []
    errors = []
    failed = True
    with harness.Focusd(auto_create=True) as fd:
        work = os.path.join(fd.tmpdir, "docs")
        try:
            for name in ("pat", "alice", "bob"):
                eps.append(rtpep.RtpEndpoint(name=name,
                                             max_duration=30).start())
            pat = sipcheck.run_sipp(
                fd, "uac_join.xml", "pat", service=ROOM,
                keys={"rtp_port": eps[0].port, "pause_ms": PAT_MS,
                      "port_file": os.path.join(fd.tmpdir, "pat.port")},
                sets={"from_user": "pat"}, background=True, timeout=25)
            runs.append(pat)
            sipcheck.wait_until(
                lambda: sipcheck.find_conf(fd, ROOM), 5.0,
                "conference %s" % ROOM, lambda: sipcheck.list_ids(fd))

            watcher = confinfo.watch(fd, ROOM, "watcher",
                                     idle_ms=WATCH_IDLE_MS,
                                     duration_ms=20000,
                                     refresh_ms=WATCH_REFRESH_MS)
            runs.append(watcher)
            confinfo.wait_notifies(watcher, 1, 5.0, work, "watcher")

            alice = sipcheck.run_sipp(
                fd, "uac_join_subscribe.xml", "alice", service=ROOM,
                keys={"rtp_port": eps[1].port, "port_file":
                      os.path.join(fd.tmpdir, "alice.port"),
                      "expires": 300, "pause_ms": ALICE_CALL_MS,
                      "idle_ms": ALICE_IDLE_MS, "duration_ms": 10000},
                sets={"from_user": "alice"}, background=True, timeout=25)
            runs.append(alice)
            # her BYE, and her subscription reporting it
            confinfo.wait_notifies(alice, 2, ALICE_CALL_MS / 1000.0 + 5.0,
                                   work, "alice")
            bob = sipcheck.run_sipp(
                fd, "uac_join.xml", "bob", service=ROOM,
                keys={"rtp_port": eps[2].port, "pause_ms": BOB_MS,
                      "port_file": os.path.join(fd.tmpdir, "bob.port")},
                sets={"from_user": "bob"}, background=True, timeout=25)
            runs.append(bob)

            # everyone finishes on their own
            rcs = {}
            for run in (alice, pat, bob):
                rcs[run.name] = run.wait()[0]
                log("sipp %s exited with %d" % (run.name, rcs[run.name]))
            for run in (pat, bob):
                check(rcs[run.name] == 0, "%s: SIPp exited with %d, "
                      "expected 0\n%s" % (run.name, rcs[run.name],
                                          run.report()))
            rcs["watcher"] = watcher.wait()[0]
            log("sipp watcher exited with %d" % rcs["watcher"])
            gone = sipcheck.find_conf(fd, ROOM)

            a_msgs = sipcheck.trace_of(alice)
            a_ns = confinfo.notifies(a_msgs, work, "alice")
            w_msgs = sipcheck.trace_of(watcher)
            w_ns = confinfo.notifies(w_msgs, work, "watcher")
            log("watcher received:\n" + confinfo.dump(w_ns))
            b_bye = sipcheck.requests(sipcheck.trace_of(bob), "BYE", "sent")
            check(b_bye, "bob sent no BYE")

            collect(errors, check_alice, a_msgs, a_ns, rcs["alice"], work)
            collect(errors, check_watcher_sequence, w_ns)
            collect(errors, check_refresh, w_msgs, w_ns)
            collect(errors, check_end, w_ns, b_bye[0].when,
                    rcs["watcher"], watcher)
            if gone is not None:
                errors.append("conference %s still listed after its last "
                              "participant left: %r" % (ROOM, gone))
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
        harness.fail("%d problems:\n- %s" % (len(errors),
                                             "\n- ".join(errors)))


if __name__ == "__main__":
    harness.run_main(main)
