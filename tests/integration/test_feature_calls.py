#!/usr/bin/env python3
"""Feature referral that moves calls between conferences (draft-audet-
sipping-feature-ref 3: urn:feature:SeparateCalls and ConferenceCalls, the
draft's 5.7 and 5.8 "T.B.D." as focusd does them), and REFERs sent to a
leg's own URI (the draft's "REFER sip:Alice-GRUU"): what each participant
is sent, what conference.list says, and who hears whom.

focusd runs with --users (alice, mod, eve; realm 127.0.0.1) and
--moderators mod. alice, bob and carol join room1 (alice first, so she
owns it) and dave joins room2 (he owns it), all with
uac_join_answer_reinvites.xml (each answers the focus's re-INVITEs until
the focus's BYE); each plays its own tone for its whole call (alice 500,
bob 1100, carol 1900, dave 2600 Hz, -12 dBFS). carol's Call-ID is made
with SIPp's -cid_str to hold '/', '?' and '%' (legal in a Call-ID, to be
percent-encoded in a URN). Each 200 carries the focus's Contact
<sip:ROOM@127.0.0.1:PORT;gr=TOKEN>;isfocus; the four TOKENs differ. Every
REFER is sent by uac_feature_refer_uri.xml outside any dialog, to room1's
or room2's URI or to a leg's URI (<conference URI>;gr=TOKEN; To the
same), first without credentials, then after a 401 with them.

1. Refused, all at once, touching nobody (no request to any participant,
   conference.list unchanged): SeparateCalls of dave, alone in room2, by
   mod 401 then 488; SeparateCalls by eve (neither owner nor moderator)
   401 then 403; ConferenceCalls without a second dialog 400; with only
   ;call-id= of one 400; with ;leg= bob's TOKEN (the same conference as
   the Target-Dialog's alice) 401 then 488; ;leg= a TOKEN nobody has 401
   then 481; a ;call-id;local-tag;remote-tag nobody has 401 then 481;
   alice merging dave's room2 (she owns room1 only) 401 then 403; a REFER
   to bob's leg URI whose Target-Dialog names carol 401 then 481; a REFER
   to sip:room1@...;gr=l0123456789abcdef (no such leg) 404. Meanwhile
   (the control window) alice, bob and carol each hear the other two;
   dave hears nothing and nobody hears him.
2. alice: SeparateCalls to carol's leg URI, no Target-Dialog -> 401, 202.
   carol gets one re-INVITE in her dialog whose Contact is exactly
   <sip:NEW@127.0.0.1:PORT;gr=TOKEN>;isfocus, NEW not room1 and TOKEN
   hers, offering sendrecv on the RTP port of her first answer; she
   answers, it is ACKed; the controller's final sipfrag is 200
   (terminated), after her 200. conference.list: NEW with alice's AOR as
   owner and one participant, carol (conference.show); room1 alice and
   bob. Then alice and bob hear each other only; carol and dave hear
   nothing; nobody hears carol or dave.
3. mod: ConferenceCalls;leg=DAVE-TOKEN to room1 with Target-Dialog alice
   -> 401, 202, final 200. dave gets one re-INVITE with Contact
   <sip:room1@...;gr=DAVE-TOKEN>;isfocus; room2 leaves conference.list;
   room1 lists alice, bob, dave. Then those three each hear the other
   two; carol still hears nothing and is not heard.
4. alice (owner of room1 and NEW): ConferenceCalls;call-id=..;local-tag=
   ..;remote-tag=.. naming carol's dialog, percent-encoded, sent to bob's
   leg URI without Target-Dialog (acts on bob's leg) -> 401, 202, final
   200. carol gets a second re-INVITE, Contact <sip:room1@...;gr=TOKEN>;
   isfocus with her TOKEN; NEW leaves conference.list; room1 lists all
   four, connected. Then everybody hears the other three (N-1 tones).
5. focusd's SIGTERM hangs up on all four: their SIPps end 0; focusd exits
   0. Nobody got a re-INVITE or BYE beyond those named above.

Sofia-SIP's own "SIP/2.0 100 Trying" NOTIFYs to the controller are
tolerated; any other NOTIFY on a refused REFER, or an accepted one
without exactly one terminated sipfrag NOTIFY on the 202's dialog, fails.
Every answer is asserted exactly, in order.

RTP arrival times are the kernel's (mediacheck.TimedEndpoint); the audio
is analysed after case 4. A tone counts as heard at >= -30 dBFS and 20
dB over the noise probes, as absent under -45 dBFS and 25 dB under the
tones heard; a participant alone must receive under -45 dBFS RMS.

About 8 s. Run by hand: FOCUSD=build/daemon/focusd \
SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_feature_calls.py (exit 0 on pass).
"""

import os
import re
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import featurectl as fc  # noqa: E402
import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import sipcheck  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM, OTHER_ROOM = "room1", "room2"
FREQ = {"alice": 500, "bob": 1100, "carol": 1900, "dave": 2600}
PARTICIPANT = "uac_join_answer_reinvites.xml"
# carol's Call-ID: SIPp's %u (call number) and %p (pid), and '/', '?',
# '%' ('%%' to SIPp) that a URN parameter must percent-encode.
CAROL_CID = "%u-%p/carol?merge%%41@%s"
SIPP_TIMEOUT_S = 40               # bounds every participant's call
LINGER_REFUSED_MS = 300
LINGER_ACCEPTED_MS = 800          # the outcome's NOTIFY comes within this
SETTLE_S = 0.3                    # skip this much audio after a change
WINDOW_S = 1.0                    # audio windows at least this long
NOBODY = "l0123456789abcdef"      # a TOKEN no leg has


def wait_window(clock, t0, what):
    clock.sleep_until(t0 + WINDOW_S)
    log("%s window: [%.2f, %.2f)" % (what, t0, clock.now()))
    return (t0, clock.now())


def room_call_ids(fd, room):
    return sorted(p.get("call_id") for p in mc.legs(fd, room))


def check_room(fd, room, parties, what):
    want = sorted(p.call_id for p in parties)
    sipcheck.wait_until(lambda: room_call_ids(fd, room) == want, fc.WAIT_S,
                        "%s: conference.show %s lists %s" % (
                            what, room, ", ".join(p.name for p in parties)),
                        lambda: fc.states(fd, room))
    for p in parties:
        fc.wait_state(fd, room, p, "connected")


def main():
    mc.scenario(PARTICIPANT)
    mc.scenario(fc.REFER_SCENARIO)
    clock = mc.Clock()
    users = fc.Users()
    parties, runs = {}, []
    try:
        with harness.Focusd(extra_args=users.focusd_args()) as fd:
            body(fd, clock, parties, runs)
        # SIGTERM went out in Focusd.__exit__: everybody got BYE
        for name, p in parties.items():
            sipcheck.hung_up_at_stop(p.run, name)
    finally:
        for p in parties.values():
            p.close()
        for r in runs:
            r.kill()
        users.cleanup()


def body(fd, clock, parties, runs):
    eps = {}
    for name, room in (("alice", ROOM), ("bob", ROOM), ("carol", ROOM),
                       ("dave", OTHER_ROOM)):
        eps[name] = mc.TimedEndpoint(clock, freq=FREQ[name], name=name,
                                     max_duration=60).start()
        parties[name] = fc.Party(
            fd, name, room, PARTICIPANT, ep=eps[name], freq=FREQ[name],
            timeout=SIPP_TIMEOUT_S,
            sipp_args=["-cid_str", CAROL_CID] if name == "carol" else ())
    alice, bob, carol, dave = (parties[n] for n in
                               ("alice", "bob", "carol", "dave"))
    check(any(c in carol.call_id for c in "/?%"), "carol's Call-ID %r "
          "lacks the characters it is for" % carol.call_id)
    sipcheck.check_legs_differ({p.name: p.token for p in parties.values()},
                               "the joins")
    room1, room2 = fc.conf_uri(fd, ROOM), fc.conf_uri(fd, OTHER_ROOM)
    confs = fc.conferences(fd)
    check(sorted(confs) == [ROOM, OTHER_ROOM], "conference.list: %r, "
          "expected room1 and room2" % sorted(confs))
    owner1 = confs[ROOM].get("owner") or ""
    check(owner1.startswith("sip:alice@") and
          (confs[OTHER_ROOM].get("owner") or "").startswith("sip:dave@"),
          "conference.list owners %r, expected alice's AOR for room1, "
          "dave's for room2" % ({k: v.get("owner") for k, v in
                                 confs.items()},))
    check_room(fd, ROOM, [alice, bob, carol], "the joins")
    check_room(fd, OTHER_ROOM, [dave], "the joins")
    t_joined = clock.now()

    # -- 1: refused, all at once
    cases = [
        ("separate-alone", "mod", room2, "SeparateCalls",
         dave.target_dialog(), [401, 488]),
        ("separate-eve", "eve", room1, "SeparateCalls",
         bob.target_dialog(), [401, 403]),
        ("conference-none", "alice", room1, "ConferenceCalls",
         alice.target_dialog(), [400]),
        ("conference-half", "alice", room1, "ConferenceCalls;call-id=%s"
         % fc.urn_escape(dave.call_id), alice.target_dialog(), [400]),
        ("conference-same", "alice", room1, "ConferenceCalls;leg=%s"
         % bob.token, alice.target_dialog(), [401, 488]),
        ("conference-no-leg", "alice", room1, "ConferenceCalls;leg=%s"
         % NOBODY, alice.target_dialog(False), [401, 481]),
        ("conference-no-dialog", "alice", room1,
         "ConferenceCalls;call-id=nosuch-%d%%40x;local-tag=a1;"
         "remote-tag=b2" % os.getpid(), alice.target_dialog(), [401, 481]),
        ("conference-not-owner", "alice", room1, "ConferenceCalls;leg=%s"
         % dave.token, alice.target_dialog(), [401, 403]),
        ("leg-uri-other-td", "alice", bob.leg_uri(), "SeparateCalls",
         carol.target_dialog(), [401, 481]),
        ("leg-uri-nobody", "alice", "%s;gr=%s" % (room1, NOBODY),
         "SeparateCalls", None, [404]),
    ]
    fc.refused_at_once(fd, cases, "case 1", runs,
                       linger_ms=LINGER_REFUSED_MS)
    for p in parties.values():
        check(p.untouched(), "case 1: a refused REFER reached %s: %s"
              % (p.name, p.touched()))
    confs = fc.conferences(fd)
    check(sorted(confs) == [ROOM, OTHER_ROOM] and
          room_call_ids(fd, ROOM) == sorted([alice.call_id, bob.call_id,
                                             carol.call_id]) and
          room_call_ids(fd, OTHER_ROOM) == [dave.call_id],
          "case 1: after the refused REFERs conference.list is %r, room1 "
          "%r, room2 %r" % (sorted(confs), fc.states(fd, ROOM),
                            fc.states(fd, OTHER_ROOM)))
    w_control = wait_window(clock, t_joined + SETTLE_S, "control")

    # -- 2: SeparateCalls, to carol's leg URI
    msgs = fc.refer(fd, "separate", "alice", carol.leg_uri(),
                    "<urn:feature:SeparateCalls>", None,
                    linger_ms=LINGER_ACCEPTED_MS)
    _, ns = sipcheck.check_refer(msgs, [401, 202], "case 2 SeparateCalls",
                                 final=200)
    sipcheck.wait_until(lambda: carol.reinvites(), fc.WAIT_S,
                        "case 2: carol's re-INVITE",
                        lambda: "\n".join("  %s %s" % (m.direction, m.start)
                                          for m in carol.msgs()))
    contact = sipcheck.header1(carol.reinvites()[0], "Contact")
    m = re.match(r"<sip:([^@;>]+)@", contact)
    check(m is not None, "case 2: carol's re-INVITE has Contact %r"
          % contact)
    new_id = m.group(1)
    check(new_id not in (ROOM, OTHER_ROOM), "case 2: carol's re-INVITE "
          "names conference %r, expected a new one" % new_id)
    ri, ok = fc.check_reinvite(carol, 1, "sendrecv",
                               fc.conf_uri(fd, new_id))
    check(ri.when >= sipcheck.authorized(msgs).when - 0.005, "case 2: carol's "
          "re-INVITE came before the REFER with credentials was sent")
    check(ns[-1].when >= ok.when - 0.005, "case 2: the final NOTIFY came "
          "before carol's 200 to the re-INVITE")
    confs = fc.conferences(fd)
    check(sorted(confs) == sorted([ROOM, OTHER_ROOM, new_id]),
          "case 2: conference.list %r, expected room1, room2, %s"
          % (sorted(confs), new_id))
    check(confs[new_id].get("owner") == owner1 and
          confs[new_id].get("uri") == fc.conf_uri(fd, new_id) and
          confs[new_id].get("participants") == 1,
          "case 2: conference.list says %r for %s; expected owner %r "
          "(room1's), URI %s, 1 participant"
          % (confs[new_id], new_id, owner1, fc.conf_uri(fd, new_id)))
    check_room(fd, new_id, [carol], "case 2")
    check_room(fd, ROOM, [alice, bob], "case 2")
    for p in (alice, bob, dave):
        check(p.untouched(), "case 2: %s: %s" % (p.name, p.touched()))
    t_sep = clock.from_wall(ok.when)
    w_sep = wait_window(clock, t_sep + SETTLE_S, "separated")

    # -- 3: ConferenceCalls;leg=, by a moderator: room2 joins room1
    msgs = fc.refer(fd, "merge-room2", "mod", room1,
                    "<urn:feature:ConferenceCalls;leg=%s>" % dave.token,
                    alice.target_dialog(), linger_ms=LINGER_ACCEPTED_MS)
    sipcheck.check_refer(msgs, [401, 202], "case 3 ConferenceCalls;leg=",
                         final=200)
    ri, ok = fc.check_reinvite(dave, 1, "sendrecv", room1)
    sipcheck.wait_until(lambda: OTHER_ROOM not in fc.conferences(fd),
                        fc.WAIT_S, "case 3: room2 gone from "
                        "conference.list", lambda: sorted(fc.conferences(fd)))
    check_room(fd, ROOM, [alice, bob, dave], "case 3")
    check_room(fd, new_id, [carol], "case 3")
    for p in (alice, bob):
        check(p.untouched(), "case 3: %s: %s" % (p.name, p.touched()))
    check(len(carol.reinvites()) == 1 and not carol.byes(),
          "case 3: carol: %s" % carol.touched())
    t_m1 = clock.from_wall(ok.when)
    w_m1 = wait_window(clock, t_m1 + SETTLE_S, "room2 merged")

    # -- 4: ConferenceCalls;call-id;local-tag;remote-tag, by the owner of
    # both, to bob's leg URI: carol's conference joins room1
    msgs = fc.refer(fd, "merge-carol", "alice", bob.leg_uri(),
                    "<urn:feature:ConferenceCalls;%s>" % carol.urn_dialog(),
                    None, linger_ms=LINGER_ACCEPTED_MS)
    sipcheck.check_refer(msgs, [401, 202],
                         "case 4 ConferenceCalls;call-id=..", final=200)
    ri, ok = fc.check_reinvite(carol, 2, "sendrecv", room1)
    sipcheck.wait_until(lambda: new_id not in fc.conferences(fd),
                        fc.WAIT_S, "case 4: %s gone from conference.list"
                        % new_id, lambda: sorted(fc.conferences(fd)))
    check(sorted(fc.conferences(fd)) == [ROOM], "case 4: conference.list "
          "%r, expected room1 alone" % sorted(fc.conferences(fd)))
    check_room(fd, ROOM, [alice, bob, carol, dave], "case 4")
    for p in (alice, bob):
        check(p.untouched(), "case 4: %s: %s" % (p.name, p.touched()))
    check(len(dave.reinvites()) == 1 and not dave.byes(),
          "case 4: dave: %s" % dave.touched())
    t_m2 = clock.from_wall(ok.when)
    w_m2 = wait_window(clock, t_m2 + SETTLE_S, "all merged")

    # -- audio: in each window those mixed together hear each other, and
    # those alone hear nothing
    errors = []
    for w, label, mixed, alone in (
            (w_control, "control", ["alice", "bob", "carol"], ["dave"]),
            (w_sep, "carol separated", ["alice", "bob"], ["carol", "dave"]),
            (w_m1, "room2 merged", ["alice", "bob", "dave"], ["carol"]),
            (w_m2, "all merged", list(FREQ), [])):
        mc.check_audio(eps, FREQ, *w,
                       heard_by={n: [o for o in mixed if o != n]
                                 for n in mixed},
                       label=label, errors=errors)
        for n in alone:
            fc.check_silent(eps[n], *w, label=label, errors=errors)
    if errors:
        fail("%d audio problems:\n- %s" % (len(errors),
                                           "\n- ".join(errors)))
    log("audio: every window as expected")


if __name__ == "__main__":
    harness.run_main(main)
