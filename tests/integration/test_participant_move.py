#!/usr/bin/env python3
"""participant.move takes a participant's call into another conference
(RFC 4579 4.10): its audio follows, the focus re-INVITEs it with the new
conference's isfocus Contact (the same leg: the same gr), and the rooms'
rosters and watchers follow.

It starts focusd with --auto-create and three RTP endpoints that play
their own tones for their whole call (alice 500 Hz, bob 1100 Hz, carol
1900 Hz, -12 dBFS). alice and bob join conference A with
uac_join_reinvited.xml (each answers the focus's re-INVITE with PCMU,
sendrecv, stays STAY_MS and hangs up to the refreshed target); carol
joins B with uac_join.xml. Each 200 carries the Contact exactly
<sip:ROOM@127.0.0.1:SIP-PORT;gr=TOKEN>;isfocus, TOKEN (l and 16 hex
digits) naming the leg: three different ones. A conference-event watcher
subscribes to each room (uac_subscribe_conf.xml).

1. Control window, before any move: alice and bob hear each other, carol
   (alone in B) hears neither - the measurement can tell.
2. `participant.move {"id": "A", "participant": BOB-URI, "to": "B"}`, with
   bob's URI as conference.show lists it: the result is exactly
   {"participant", "from", "to"}; bob receives one re-INVITE in his
   dialog (Request-URI his Contact, Call-ID and tags of the dialog) whose
   Contact is exactly <sip:B@127.0.0.1:SIP-PORT;gr=TOKEN>;isfocus, TOKEN
   the one of his 200 in A (only the user part changes), and whose SDP
   offers PT 0 and 8, sendrecv, at the RTP port of his first answer; his
   200 is ACKed. conference.show B lists bob "connected", sendrecv, same
   local RTP port; A lists only alice; conference.list says A 1, B 2.
   Audio from GRACE_S (500 ms) after the move, for WINDOW_S: bob hears
   carol and not alice, carol hears bob and not alice, alice hears
   neither; bob's packets still come from his port.
3. `participant.move` of alice into B by her Call-ID (checked against her
   INVITE and conference.show): her re-INVITE carries B's Contact with
   her own TOKEN (as in her 200 in A), A disappears from conference.list
   (conference.show A: -32001), B counts 3, and all three hear the other
   two. The watchers: A's saw the full
   state, then bob and alice each deleted (disconnected, departed), user
   counts 1 and 0; B's saw carol, then bob and alice each join connected,
   user counts 2 and 3; versions 1, 2, 3 on both; A's end then ends its
   watcher's subscription (a terminated NOTIFY, reason=noresource; the
   watcher exits 0). B's watcher is stopped (by PID) once read.
4. Errors, none of which moves anyone or makes a conference: FROM gone or
   unknown -32001; unknown participant URI or Call-ID -32003; into its
   own conference -32602; malformed params (a member missing, wrong type,
   null, an extra member, an array, none) -32602.
5. Every call ends with its own BYE and 200 (bob's and alice's to
   sip:B@...;gr=TOKEN, the re-INVITE's Contact); no conference is left;
   nobody got more than one re-INVITE; focusd exits 0 on SIGTERM.

RTP arrival times are the kernel's (mediacheck.TimedEndpoint), so a test
process stalled by a loaded machine does not move packets between windows;
all audio is analysed at the end. A tone counts as heard at >= -30 dBFS
and 20 dB over the noise probes, as absent under -45 dBFS and 25 dB under
the tones heard (G.711 distortion of the others reads about -60).

A known gap is logged, not asserted (set SDP_VERSION_MUST_RISE once
focusd is fixed): the re-INVITE's offer differs from focusd's previous
SDP (PT 0 and 8 against the one codec answered), so RFC 3264 section 8
wants its o= version one up, and focusd keeps it.

About 10 s. Run by hand: FOCUSD=build/daemon/focusd \
SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_participant_move.py (exit 0 on pass).
"""

import json
import os
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confinfo  # noqa: E402
import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import sipcheck  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM_A, ROOM_B = "A", "B"
FREQ = {"alice": 500, "bob": 1100, "carol": 1900}
SCENARIO = "uac_join_reinvited.xml"
# Time in the call after the re-INVITE's ACK (alice, bob) or after the
# 200 (carol); the checks need ~5 s after the joins, the test fails with
# "too slow" rather than measure after someone has left.
STAY_MS = {"alice": 3000, "bob": 6500}
CAROL_MS = 9000
SIPP_TIMEOUT_S = 25
JOIN_TIMEOUT_S = 5.0
REINVITE_TIMEOUT_S = 3.0
GRACE_S = 0.5            # after a move, before audio is measured
CONTROL_S = 1.0          # control window before the first move
WINDOW_S = 2.0           # after bob's move
WINDOW2_S = 1.0          # after alice's move
WATCH_MS = 25000
SDP_VERSION_MUST_RISE = False    # see the docstring; focusd keeps it
ENDED_NOTIFY_WAIT_S = 2.0


def conf_uri(room, fd):
    return "sip:%s@%s" % (room, fd.sip_target)


def sipp_port(run):
    return int(run.args[run.args.index("-p") + 1])


def join_reinvited(fd, room, ep, name):
    """uac_join_reinvited for ep; returns (run, event file, focusd's RTP
    port from the answer). ep starts sending at once."""
    ev = os.path.join(fd.tmpdir, name + ".events")
    run = sipcheck.run_sipp(
        fd, SCENARIO, name, service=room,
        keys={"rtp_port": ep.port, "event_file": ev,
              "stay_ms": STAY_MS[name]},
        sets={"from_user": name}, background=True, timeout=SIPP_TIMEOUT_S)
    words = mc.wait_line(run, ev, "answer", JOIN_TIMEOUT_S,
                         "%s: the 200 OK with the SDP answer" % name)
    port = mc.answered_port(fd, words[0] if words else "", name)
    ep.start_sending(("127.0.0.1", port))
    return run, ev, port


def rpc_error(fd, params, code, what):
    resp = fd.mgmt("participant.move", params)
    err = resp.get("error")
    check(isinstance(err, dict) and err.get("code") == code,
          "participant.move %s (%s): %r, expected error %d"
          % (json.dumps(params), what, resp, code))
    log("participant.move %s: error %d %r (%s)"
        % (json.dumps(params), code, err.get("message"), what))


def part_by_uri(res, uri):
    for p in res["participants"]:
        if p.get("uri") == uri:
            return p
    return None


def counts(fd):
    listing = fd.mgmt_result("conference.list")
    return {c.get("id"): c.get("participants")
            for c in listing.get("conferences", [])}


# ---------------------------------------------------------------- SIP

def check_reinvite(run, fd, who, room, focus_port, leg_token):
    """The one re-INVITE who received: in the dialog, with room's isfocus
    Contact of the leg whose gr is leg_token and an SDP offer at
    focus_port; and the ACK to our 200."""
    msgs = sipcheck.trace_of(run)
    ok = sipcheck.invite_ok(msgs, who)
    inv = sipcheck.requests(msgs, "INVITE", "sent")[0]
    ri = sipcheck.distinct_requests(msgs, "INVITE")
    check(len(ri) == 1, "%s: %d re-INVITEs received, expected 1:\n%s"
          % (who, len(ri), "\n".join(m.raw for m in ri)))
    r = ri[0]
    where = "%s's re-INVITE" % who

    contact = sipcheck.header1(r, "Contact")
    sipcheck.check_focus_contact(contact, conf_uri(room, fd), where,
                                 leg_token)

    our_contact = sipcheck.name_addr(sipcheck.header1(inv, "Contact"))[0]
    check(r.start == "INVITE %s SIP/2.0" % our_contact, "%s: Request-URI "
          "line %r, expected the remote target %s" % (where, r.start,
                                                      our_contact))
    check(sipcheck.header1(r, "Call-ID") == sipcheck.header1(inv,
                                                             "Call-ID"),
          "%s: Call-ID %r is not the dialog's %r" % (
              where, sipcheck.header1(r, "Call-ID"),
              sipcheck.header1(inv, "Call-ID")))
    our_tag = sipcheck.tag_of(sipcheck.header1(inv, "From"))
    focus_tag = sipcheck.tag_of(sipcheck.header1(ok, "To"))
    check(sipcheck.tag_of(sipcheck.header1(r, "From")) == focus_tag and
          sipcheck.tag_of(sipcheck.header1(r, "To")) == our_tag,
          "%s: From tag %r / To tag %r, the dialog's are %r / %r"
          % (where, sipcheck.tag_of(sipcheck.header1(r, "From")),
             sipcheck.tag_of(sipcheck.header1(r, "To")), focus_tag, our_tag))

    sdp, m = sipcheck.audio_offer(r, where)
    check(m["proto"] == "RTP/AVP" and
          m["fmts"] == ["0", "111", "9", "8", "101", "100"],
          "%s: m-line %r, expected RTP/AVP with PT 0 111 9 8 101 100 (the "
          "call's PCMU first, then Opus, G.722, PCMA, telephone-event at "
          "8000 and 48000)" % (where, m["line"]))
    check(m["port"] == focus_port, "%s: m=audio port %d, expected %d (the "
          "port of the first answer: the media endpoint stays)"
          % (where, m["port"], focus_port))
    check(sipcheck.sdp_direction(sdp, m) == "sendrecv", "%s: direction "
          "%s, expected sendrecv\n%s"
          % (where, sipcheck.sdp_direction(sdp, m), r.body))
    conn = sipcheck.sdp_connection(sdp, m)
    check(conn == "IN IP4 127.0.0.1", "%s: c=%r, expected IN IP4 "
          "127.0.0.1" % (where, conn))
    o_old = [l for l in sipcheck.parse_sdp(ok.body)["session"]
             if l.startswith("o=")]
    o_new = [l for l in sdp["session"] if l.startswith("o=")]
    check(len(o_old) == 1 and len(o_new) == 1, "%s: o= lines %r / %r"
          % (where, o_old, o_new))
    old_f, new_f = o_old[0].split(), o_new[0].split()
    check(old_f[1] == new_f[1], "%s: o= session id %s, the dialog's SDP "
          "has %s" % (where, new_f[1], old_f[1]))
    if int(new_f[2]) <= int(old_f[2]):
        msg = ("%s: o= version %s is not above the %s of focusd's previous "
               "SDP although the SDP changed (RFC 3264 8)"
               % (where, new_f[2], old_f[2]))
        check(not SDP_VERSION_MUST_RISE, msg)
        log("known gap, not asserted: " + msg)

    cseq = sipcheck.header1(r, "CSeq").split()[0]
    acks = [a for a in sipcheck.requests(msgs, "ACK", "received")
            if sipcheck.header1(a, "CSeq").split()[0] == cseq]
    check(acks, "%s: no ACK with CSeq %s to our 200" % (who, cseq))
    log("%s: re-INVITE at %s, Contact %s, %s; ACKed"
        % (who, time.strftime("%H:%M:%S", time.localtime(r.when)), contact,
           m["line"]))


def check_bye(run, fd, who, room, leg_token):
    """After the move our BYE goes to the refreshed target (room's URI
    with the leg's gr) and gets 200."""
    msgs = sipcheck.trace_of(run)
    byes = sipcheck.requests(msgs, "BYE", "sent")
    check(byes, "%s: no BYE sent" % who)
    want = "BYE %s;gr=%s SIP/2.0" % (conf_uri(room, fd), leg_token)
    check(byes[0].start == want, "%s: BYE line %r, expected %r (the "
          "re-INVITE's Contact)" % (who, byes[0].start, want))
    oks = [m for m in sipcheck.responses(msgs, cseq="BYE", final=True)]
    check(oks and sipcheck.status(oks[0]) == 200, "%s: BYE answered %r, "
          "expected 200" % (who, [m.start for m in oks]))


# ---------------------------------------------------------------- audio

def check_audio(eps, w0, w1, heard, label):
    """heard: {listener: [names it must hear]}; every other party's tone
    must be absent (a listener's own is not looked at), for every
    endpoint (mediacheck.check_audio). Collects every listener before
    failing."""
    errors = []
    mc.check_audio(eps, FREQ, w0, w1, {n: heard.get(n, []) for n in eps},
                   label, errors, own=False)
    if errors:
        fail("%d audio problems:\n- %s" % (len(errors), "\n- ".join(errors)))


def check_source(ep, port, w0, w1):
    bad = [p for p in ep.packets(w0, w1) if p.addr != ("127.0.0.1", port)]
    check(not bad, "%s: %d packets in [%.2f, %.2f) not from focusd's port "
          "%d, e.g. from %s" % (ep.name, len(bad), w0, w1, port,
                                bad[0].addr if bad else None))


# ---------------------------------------------------------------- events

def check_watchers(wa, wb, work):
    """A: full (alice, bob), bob deleted (departed), alice deleted
    (departed); B: full (carol), bob joins connected, alice joins
    connected. Then A's end terminates its subscription."""
    na = confinfo.wait_notifies(wa, 3, 3.0, work, "watcher-A")
    nb = confinfo.wait_notifies(wb, 3, 3.0, work, "watcher-B")
    log("watcher-A received:\n" + confinfo.dump(na))
    log("watcher-B received:\n" + confinfo.dump(nb))

    def one_user(n, name, who):
        confinfo.check_headers(n, who, active=True)
        check(n.doc["state"] == "partial" and
              confinfo.user_names(n.doc) == [name], "%s: %s, expected a "
              "partial document about %s only" % (who, n.describe(), name))
        u = confinfo.user_named(n.doc, name)
        check(len(u["endpoints"]) == 1, "%s: %s: %s has %d endpoints"
              % (who, n.describe(), name, len(u["endpoints"])))
        return u, u["endpoints"][0]

    # A: what a watcher of the conference the participants leave sees
    check(sorted(confinfo.user_names(na[0].doc)) == ["alice", "bob"],
          "watcher-A: the first document lists %r, expected alice and bob"
          % confinfo.user_names(na[0].doc))
    for n, name, count in ((na[1], "bob", 1), (na[2], "alice", 0)):
        u, e = one_user(n, name, "watcher-A")
        check(u["state"] == "deleted" and e["status"] == "disconnected" and
              e["disconnection_method"] == "departed" and
              n.doc["user_count"] == count, "watcher-A: after %s's move "
              "%s; expected %s deleted, disconnected, departed, user-count "
              "%d" % (name, n.describe(), name, count))
    versions = [n.doc["version"] for n in na[:3]]
    check(versions == [1, 2, 3], "watcher-A: versions %r, expected 1, 2, 3"
          % versions)

    # B: what a watcher of the conference they join sees
    check(confinfo.user_names(nb[0].doc) == ["carol"], "watcher-B: the "
          "first document lists %r, expected carol"
          % confinfo.user_names(nb[0].doc))
    for n, name, count in ((nb[1], "bob", 2), (nb[2], "alice", 3)):
        u, e = one_user(n, name, "watcher-B")
        check(u["state"] != "deleted" and e["status"] == "connected" and
              n.doc["user_count"] == count, "watcher-B: after %s's move "
              "%s; expected %s connected, user-count %d"
              % (name, n.describe(), name, count))
    versions = [n.doc["version"] for n in nb[:3]]
    check(versions == [1, 2, 3], "watcher-B: versions %r, expected 1, 2, 3"
          % versions)

    # A has ended: RFC 6665 / README, a terminated NOTIFY (noresource)
    deadline = time.monotonic() + ENDED_NOTIFY_WAIT_S
    while True:
        na = confinfo.received(wa, work, "watcher-A")
        ended = [n for n in na if n.substate == "terminated"]
        if ended or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    check(ended, "watcher-A: no terminated NOTIFY within %.1f s of A's "
          "end (README: the conference's end terminates the subscription, "
          "noresource); it has:\n%s" % (ENDED_NOTIFY_WAIT_S,
                                       confinfo.dump(na)))
    check(ended[0].reason == "noresource", "watcher-A: %s, expected "
          "reason=noresource" % ended[0].describe())
    sipcheck.sipp_ok(wa, "watcher-A")


# ---------------------------------------------------------------- main

def main():
    confinfo.xmllint_path()
    mc.scenario(SCENARIO)
    clock = mc.Clock()
    eps = {}
    runs = []
    failed = True
    with harness.Focusd(auto_create=True) as fd:
        work = os.path.join(fd.tmpdir, "docs")
        try:
            for name, f in FREQ.items():
                eps[name] = mc.TimedEndpoint(clock, freq=f, name=name,
                                             max_duration=40).start()
            alice, alice_ev, a_port = join_reinvited(fd, ROOM_A,
                                                     eps["alice"], "alice")
            runs.append(alice)
            bob, bob_ev, b_port = join_reinvited(fd, ROOM_A, eps["bob"],
                                                 "bob")
            runs.append(bob)
            carol, c_port = mc.join(fd, ROOM_B, eps["carol"], "carol",
                                    CAROL_MS)
            runs.append(carol)
            eps["carol"].start_sending(("127.0.0.1", c_port))
            t_joined = clock.now()
            tokens = {}
            for run, who, room in ((alice, "alice", ROOM_A),
                                   (bob, "bob", ROOM_A),
                                   (carol, "carol", ROOM_B)):
                tokens[who] = sipcheck.check_focus_contact(
                    sipcheck.header1(sipcheck.invite_ok(
                        sipcheck.trace_of(run), who), "Contact"),
                    conf_uri(room, fd), "%s: the 200 to the INVITE" % who)
            sipcheck.check_legs_differ(tokens, "the 200s to alice, bob and "
                                       "carol")
            log("joined by %.2f s: alice :%d, bob :%d (A), carol :%d (B)"
                % (t_joined, a_port, b_port, c_port))

            # -- who is who, as conference.show lists them
            show_a = mc.show(fd, ROOM_A)
            bob_uri = "sip:bob@127.0.0.1:%d" % sipp_port(bob)
            alice_uri = "sip:alice@127.0.0.1:%d" % sipp_port(alice)
            pb = part_by_uri(show_a, bob_uri)
            pa = part_by_uri(show_a, alice_uri)
            check(pb is not None and pa is not None, "conference.show A "
                  "lists %r, expected %s and %s" % (
                      [p.get("uri") for p in show_a["participants"]],
                      alice_uri, bob_uri))
            alice_call = sipcheck.header1(sipcheck.requests(
                sipcheck.trace_of(alice), "INVITE", "sent")[0], "Call-ID")
            check(pa.get("call_id") == alice_call, "conference.show A: "
                  "alice's call_id %r, her INVITE's Call-ID is %r"
                  % (pa.get("call_id"), alice_call))

            # -- watchers
            wa = confinfo.watch(fd, ROOM_A, "watcher-A", idle_ms=WATCH_MS,
                                duration_ms=WATCH_MS, timeout=30)
            runs.append(wa)
            wb = confinfo.watch(fd, ROOM_B, "watcher-B", idle_ms=WATCH_MS,
                                duration_ms=WATCH_MS, timeout=30)
            runs.append(wb)
            confinfo.wait_notifies(wa, 1, 5.0, work, "watcher-A")
            confinfo.wait_notifies(wb, 1, 5.0, work, "watcher-B")

            # -- 1: control window
            t0 = clock.now() + GRACE_S
            w0 = (t0, t0 + CONTROL_S)
            clock.sleep_until(w0[1])

            # -- 2: bob to B by URI
            params = {"id": ROOM_A, "participant": bob_uri, "to": ROOM_B}
            t_mv1 = clock.now()
            res = fd.mgmt_result("participant.move", params)
            t_mv1r = clock.now()
            log("move bob at %.2f s (answered in %.0f ms): %r"
                % (t_mv1, 1000 * (t_mv1r - t_mv1), res))
            check(res == {"participant": bob_uri, "from": ROOM_A,
                          "to": ROOM_B}, "participant.move %s: result %r, "
                  "expected {participant: %s, from: A, to: B}"
                  % (params, res, bob_uri))
            mc.wait_line(bob, bob_ev, "reinvite", REINVITE_TIMEOUT_S,
                         "bob: the focus's re-INVITE after the move")
            mc.wait_line(bob, bob_ev, "ack", REINVITE_TIMEOUT_S,
                         "bob: the ACK to his 200 for the re-INVITE")
            check_reinvite(bob, fd, "bob", ROOM_B, b_port, tokens["bob"])

            def bob_connected():
                p = part_by_uri(mc.show(fd, ROOM_B), bob_uri)
                return p is not None and p.get("state") == "connected"
            sipcheck.wait_until(
                bob_connected, 2.0, "bob connected in conference.show B",
                lambda: mc.show(fd, ROOM_B)["participants"])
            show_b = mc.show(fd, ROOM_B)
            pb = part_by_uri(show_b, bob_uri)
            check(pb.get("direction") == "sendrecv" and
                  mc.port_of(pb.get("local_rtp")) == b_port,
                  "conference.show B: bob %r, expected sendrecv on local "
                  "RTP port %d" % (pb, b_port))
            check(len(show_b["participants"]) == 2, "conference.show B: "
                  "%r, expected carol and bob"
                  % [p.get("uri") for p in show_b["participants"]])
            show_a = mc.show(fd, ROOM_A)
            check([p.get("uri") for p in show_a["participants"]] ==
                  [alice_uri], "conference.show A after bob's move lists "
                  "%r, expected only %s" % (
                      [p.get("uri") for p in show_a["participants"]],
                      alice_uri))
            cn = counts(fd)
            check(cn.get(ROOM_A) == 1 and cn.get(ROOM_B) == 2,
                  "conference.list after bob's move: %r, expected A 1, B 2"
                  % cn)
            confinfo.wait_notifies(wa, 2, 3.0, work, "watcher-A")
            confinfo.wait_notifies(wb, 2, 3.0, work, "watcher-B")

            w1 = (t_mv1r + GRACE_S, t_mv1r + GRACE_S + WINDOW_S)
            clock.sleep_until(w1[1])

            # -- 3: alice to B by Call-ID
            params = {"id": ROOM_A, "participant": alice_call, "to": ROOM_B}
            t_mv2 = clock.now()
            res = fd.mgmt_result("participant.move", params)
            t_mv2r = clock.now()
            log("move alice at %.2f s: %r" % (t_mv2, res))
            check(res == {"participant": alice_call, "from": ROOM_A,
                          "to": ROOM_B}, "participant.move %s: result %r"
                  % (params, res))
            sipcheck.wait_until(lambda: ROOM_A not in counts(fd), 2.0,
                                "A gone from conference.list after its "
                                "last participant moved", lambda: counts(fd))
            rpc = fd.mgmt("conference.show", {"id": ROOM_A})
            check(rpc.get("error", {}).get("code") == -32001,
                  "conference.show A after it emptied: %r, expected -32001"
                  % rpc)
            mc.wait_line(alice, alice_ev, "ack", REINVITE_TIMEOUT_S,
                         "alice: the ACK to her 200 for the re-INVITE")
            check_reinvite(alice, fd, "alice", ROOM_B, a_port,
                           tokens["alice"])
            check(counts(fd).get(ROOM_B) == 3, "conference.list after "
                  "alice's move: %r, expected B 3" % counts(fd))
            w2 = (t_mv2r + GRACE_S, t_mv2r + GRACE_S + WINDOW2_S)
            check_watchers(wa, wb, work)
            wa.kill()
            wb.kill()

            # -- 4: errors (B holds all three now)
            rpc_error(fd, {"id": ROOM_A, "participant": bob_uri,
                           "to": ROOM_B}, -32001, "FROM is gone")
            rpc_error(fd, {"id": "nosuch", "participant": bob_uri,
                           "to": "C"}, -32001, "unknown FROM")
            rpc_error(fd, {"id": ROOM_B, "participant":
                           "sip:nobody@127.0.0.1", "to": "C"}, -32003,
                      "unknown participant URI")
            rpc_error(fd, {"id": ROOM_B, "participant": "no-such-call-id",
                           "to": "C"}, -32003, "unknown Call-ID")
            rpc_error(fd, {"id": ROOM_B, "participant": bob_uri,
                           "to": ROOM_B}, -32602, "into its own conference")
            rpc_error(fd, {"id": ROOM_B, "participant": alice_call,
                           "to": ROOM_B}, -32602, "into its own conference")
            for bad, what in (
                    ({"id": ROOM_B, "participant": bob_uri}, "no to"),
                    ({"id": ROOM_B, "to": "C"}, "no participant"),
                    ({"participant": bob_uri, "to": "C"}, "no id"),
                    ({"id": ROOM_B, "participant": 7, "to": "C"},
                     "participant a number"),
                    ({"id": ROOM_B, "participant": bob_uri, "to": None},
                     "to null"),
                    ({"id": ROOM_B, "participant": bob_uri, "to": "C",
                      "x": 1}, "an extra member"),
                    ([ROOM_B, bob_uri, "C"], "an array"),
                    (None, "no params")):
                rpc_error(fd, bad, -32602, what)
            cn = counts(fd)
            check(cn == {ROOM_B: 3}, "conference.list after the refused "
                  "moves: %r, expected only B with 3 (no conference made, "
                  "nobody moved)" % cn)

            clock.sleep_until(w2[1])
            t_checked = clock.now()
            gone = [r.name for r in (alice, bob, carol)
                    if r.poll() is not None]
            check(not gone, "%s already hung up at %.2f s, before the last "
                  "audio window ended: this run was too slow for the "
                  "STAY_MS/CAROL_MS budget" % (gone, t_checked))

            # -- 5: the calls end
            mc.finish_calls([alice, bob, carol],
                            [eps["alice"], eps["bob"], eps["carol"]],
                            clock, timeout=SIPP_TIMEOUT_S)
            check_bye(bob, fd, "bob", ROOM_B, tokens["bob"])
            check_bye(alice, fd, "alice", ROOM_B, tokens["alice"])
            sipcheck.wait_until(lambda: not counts(fd), 3.0,
                                "no conference left after the BYEs",
                                lambda: counts(fd))
            for run, who in ((alice, "alice"), (bob, "bob")):
                n = len(sipcheck.distinct_requests(sipcheck.trace_of(run),
                                                   "INVITE"))
                check(n == 1, "%s received %d re-INVITEs, expected 1 (a "
                      "refused move must not re-INVITE)" % (who, n))

            # -- audio, measured on the kernel's arrival times
            check_audio(eps, *w0, {"alice": ["bob"], "bob": ["alice"]},
                        "before the move")
            check_audio(eps, *w1, {"bob": ["carol"], "carol": ["bob"]},
                        "after bob's move")
            check_source(eps["bob"], b_port, *w1)
            check_audio(eps, *w2, {"alice": ["bob", "carol"],
                                   "bob": ["alice", "carol"],
                                   "carol": ["alice", "bob"]},
                        "after alice's move")
            failed = False
        finally:
            for ep in eps.values():
                ep.stop()
            for run in runs:
                if failed:
                    sys.stderr.write(run.report(lines=40) + "\n")
                run.kill()


if __name__ == "__main__":
    harness.run_main(main)
