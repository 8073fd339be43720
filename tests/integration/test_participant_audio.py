#!/usr/bin/env python3
"""participant.audio: mute, deaf and gain per participant from the
management socket, judged by what the participants hear.

Setup: focusd with its defaults (--max-talkers 4, --mix-rate 16000) and
--auto-create. Three RTP endpoints of this file (mediacheck.TimedEndpoint:
kernel arrival stamps), alice, bob and carol, each play their own tone,
500, 1100 and 1900 Hz at -18 dBFS (whole periods in every 20 ms frame, so
a lost or repeated frame is no phase jump), and join room1 with
uac_join_until_bye.xml (PCMU); each starts sending as soon as its 200 is
in. The calls stay until focusd's SIGTERM at the end sends each a BYE.
Participants are named to participant.audio by their Call-ID, read from
conference.show (matched by the RTP port of the SDP answer).

Levels: mediacheck.levels() (Hann Goertzel over a window of what the
listener decoded). "Hears X" / "does not hear X" are
mediacheck.check_audio(): X's tone >= -30 dBFS and 20 dB over the noise
probes, every window bringing >= 80 % of its samples; the tones a
listener must not hear (its own included) under -45 dBFS and 25 dB under
those it hears. Every window opens SETTLE_S (0.25 s: jitter buffer and
the worker's next tick) after the JSON-RPC reply that changed something
and lasts WINDOW_S (0.8 s) unless said otherwise. Audio is analysed after
the last step, from the stored packets, so that the analysis does not
stall the endpoints' sending.

Asserted, in order:
0. Baseline, 0.5 s after the last join: conference.show lists the three,
   connected, mute false, deaf false, gain_db 0; each hears the other
   two and not itself. The level of each tone at each listener is kept.
1. participant.audio {"id": room1, "participant": bob's Call-ID,
   "mute": true} answers exactly {"id": "room1", "participant": that
   Call-ID, "mute": true, "deaf": false, "gain_db": 0} (JSON booleans and
   integer). conference.show: bob "mute": true, the others unchanged.
   Window: alice hears carol, carol hears alice, and neither hears bob,
   whose tone is also >= 30 dB under its baseline level at each of them;
   bob still hears alice and carol.
2. "mute": false on bob: the reply says mute false; conference.show
   too. Window: everyone hears the other two again, bob's tone at alice
   and carol within 1.5 dB of its baseline.
3. "deaf": true on carol: reply deaf true, mute false, gain_db 0;
   conference.show: carol "deaf": true. Over a 1 s window from the settle
   time carol receives at most MAX_DEAF_PACKETS (2) RTP packets (0
   expected), while alice and bob hear carol (and each other). Then
   "deaf": false: carol hears alice and bob again (>= 80 % of the
   window's samples) and conference.show says deaf false.
4. "gain_db": 6 on alice: reply gain_db 6; conference.show: alice 6.
   Window: bob and carol hear alice's tone 6 dB over its baseline level
   at each (within 1 dB), and still hear each other. Then "gain_db": -12:
   alice's tone 12 dB under its baseline at bob and at carol (within
   1 dB).
5. Errors, each with a message and no effect: participant.audio without
   any of mute/deaf/gain_db -32602; "gain_db": 25, -25 or "loud" -32602;
   "mute": "yes" -32602; "deaf": 0 -32602; "mute": true with "gain_db":
   25 -32602 (and bob stays unmuted); no "participant" -32602; an
   unknown conference -32001; an unknown participant -32003; an extra
   unknown key beside a valid "mute": true -32602. conference.show
   afterwards still shows alice gain_db -12 and nobody muted or deaf.
   Then the bounds -24 and 24 are accepted (reply and conference.show),
   and gain_db 0 puts alice back.
At the end focusd stops on SIGTERM with status 0 and every call ended with
the focus's BYE (SIPp exit status 0).

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_participant_audio.py
"""

import json
import os
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import sipcheck  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
SCENARIO = "uac_join_until_bye.xml"
NAMES = ("alice", "bob", "carol")
FREQ = {"alice": 500, "bob": 1100, "carol": 1900}
TONE_DBFS = -18.0
SIPP_TIMEOUT_S = 40          # bounds every call
JOIN_TIMEOUT_S = 5.0
BASELINE_AFTER_S = 0.5       # after the last join
BASELINE_S = 1.0
SETTLE_S = 0.25              # after a reply, before its window opens
WINDOW_S = 0.8
DEAF_WINDOW_S = 1.0
MAX_DEAF_PACKETS = 2
MUTED_DOWN_DB = 30.0         # a muted talker, under its baseline
BACK_TOL_DB = 1.5            # an unmuted talker, near its baseline
GAIN_TOL_DB = 1.0


def jtext(v):
    """Canonical JSON text: True and 1 differ (Python's == does not)."""
    return json.dumps(v, sort_keys=True)


class Party:
    def __init__(self, name, ep, run, port):
        self.name, self.ep, self.run, self.port = name, ep, run, port
        self.call_id = None


def join(fd, clock, name):
    """name joins room1 (uac_join_until_bye) and starts sending its tone
    as soon as the SDP answer is in; returns a Party."""
    ep = mc.TimedEndpoint(clock, freq=FREQ[name], amplitude_dbfs=TONE_DBFS,
                          name=name, max_duration=SIPP_TIMEOUT_S).start()
    port_file = os.path.join(fd.tmpdir, name + ".port")
    run = None
    try:
        run = sipcheck.run_sipp(
            fd, SCENARIO, name, service=ROOM,
            keys={"rtp_port": ep.port, "port_file": port_file},
            sets={"from_user": name}, background=True,
            timeout=SIPP_TIMEOUT_S)
        party = Party(name, ep, run, mc.wait_answered_port(
            fd, run, port_file, JOIN_TIMEOUT_S))
    except BaseException:
        # not a party yet: main() would not stop these
        ep.stop()
        if run is not None:
            run.kill()
        raise
    ep.start_sending((harness.LOOPBACK, party.port))
    log("%s joined %s at %.2f s: %d Hz from :%d to focusd :%d"
        % (name, ROOM, clock.now(), FREQ[name], ep.port, party.port))
    return party


def controls(fd):
    """{name: (mute, deaf, gain_db)} from conference.show (JSON text of
    each, so that a 0 is not a false)."""
    res = mc.show(fd, ROOM)
    out = {}
    for p in res["participants"]:
        for k in ("mute", "deaf", "gain_db"):
            check(k in p, "conference.show %s: participant %s has no %r: "
                  "%r" % (ROOM, p.get("call_id"), k, p))
        out[p.get("call_id")] = (jtext(p["mute"]), jtext(p["deaf"]),
                                 jtext(p["gain_db"]))
    return out


def check_controls(fd, parties, want, what):
    """conference.show: each party's mute, deaf, gain_db are want[name]
    (default false, false, 0)."""
    got = controls(fd)
    bad = []
    for name, p in parties.items():
        w = want.get(name, (False, False, 0))
        w = (jtext(w[0]), jtext(w[1]), jtext(w[2]))
        g = got.get(p.call_id)
        if g != w:
            bad.append("%s: mute/deaf/gain_db %s, expected %s"
                       % (name, g and "/".join(g), "/".join(w)))
    check(not bad, "%s: conference.show:\n  %s" % (what, "\n  ".join(bad)))


def audio(fd, clock, party, params, want, what):
    """participant.audio on party with params; the result must be exactly
    {"id", "participant", "mute", "deaf", "gain_db"} with want's values
    (mute, deaf, gain_db). Returns the time the reply came."""
    req = {"id": ROOM, "participant": party.call_id}
    req.update(params)
    res = fd.mgmt_result("participant.audio", req)
    t = clock.now()
    exp = {"id": ROOM, "participant": party.call_id, "mute": want[0],
           "deaf": want[1], "gain_db": want[2]}
    check(jtext(res) == jtext(exp), "%s: participant.audio %s answered %s, "
          "expected %s" % (what, jtext(req), jtext(res), jtext(exp)))
    log("%s: participant.audio %s -> %s at %.2f s"
        % (what, jtext(params), jtext(res), t))
    return t


def window(clock, t_reply, length=WINDOW_S):
    w0 = t_reply + SETTLE_S
    clock.sleep_until(w0 + length)
    return (w0, w0 + length)


def error_case(fd, params, code, what):
    r = fd.mgmt("participant.audio", params)
    err = r.get("error")
    check(isinstance(err, dict) and err.get("code") == code,
          "%s: participant.audio %s answered %s, expected error %d"
          % (what, jtext(params), jtext(r), code))
    check(isinstance(err.get("message"), str) and err["message"],
          "%s: error without a message: %s" % (what, jtext(r)))
    log("%-34s %s -> %d %s" % (what, jtext(params), code, err["message"]))


def main():
    mc.scenario(SCENARIO)
    clock = mc.Clock()
    parties = {}
    try:
        with harness.Focusd(auto_create=True) as fd:
            body(fd, clock, parties)
        # SIGTERM went out in Focusd.__exit__: everybody got a BYE
        for name in NAMES:
            if name in parties:
                sipcheck.hung_up_at_stop(parties[name].run, name)
    finally:
        for p in parties.values():
            p.ep.stop()
            p.run.kill()


def body(fd, clock, parties):
    for name in NAMES:
        parties[name] = join(fd, clock, name)
    alice, bob, carol = (parties[n] for n in NAMES)
    t_all = clock.now()

    def all_connected():
        res = mc.show(fd, ROOM)
        if len(res["participants"]) != 3:
            return None
        for p in parties.values():
            leg = mc.leg(res, p.port)
            if leg.get("state") != "connected":
                return None
            p.call_id = leg.get("call_id")
        return True
    harness.wait_for(all_connected, JOIN_TIMEOUT_S, interval=0.05,
                     what="alice, bob and carol connected in %s" % ROOM,
                     state=lambda: jtext(mc.legs(fd, ROOM)))
    cids = [p.call_id for p in parties.values()]
    check(all(isinstance(c, str) and c for c in cids) and
          len(set(cids)) == 3, "conference.show: Call-IDs %r, expected "
          "three different strings" % cids)
    check_controls(fd, parties, {}, "after the joins")

    win = {}       # step -> (w0, w1)
    w0 = t_all + BASELINE_AFTER_S
    clock.sleep_until(w0 + BASELINE_S)
    win["baseline"] = (w0, w0 + BASELINE_S)

    # -- 1: mute bob
    t = audio(fd, clock, bob, {"mute": True}, (True, False, 0), "1 mute")
    check_controls(fd, parties, {"bob": (True, False, 0)}, "1 mute")
    win["mute"] = window(clock, t)

    # -- 2: unmute bob
    t = audio(fd, clock, bob, {"mute": False}, (False, False, 0),
              "2 unmute")
    check_controls(fd, parties, {}, "2 unmute")
    win["unmute"] = window(clock, t)

    # -- 3: carol deaf, then not
    t = audio(fd, clock, carol, {"deaf": True}, (False, True, 0), "3 deaf")
    check_controls(fd, parties, {"carol": (False, True, 0)}, "3 deaf")
    win["deaf"] = window(clock, t, DEAF_WINDOW_S)
    t = audio(fd, clock, carol, {"deaf": False}, (False, False, 0),
              "3 undeaf")
    check_controls(fd, parties, {}, "3 undeaf")
    win["undeaf"] = window(clock, t)

    # -- 4: gain on alice
    t = audio(fd, clock, alice, {"gain_db": 6}, (False, False, 6),
              "4 gain +6")
    check_controls(fd, parties, {"alice": (False, False, 6)}, "4 gain +6")
    win["gain+6"] = window(clock, t)
    t = audio(fd, clock, alice, {"gain_db": -12}, (False, False, -12),
              "4 gain -12")
    check_controls(fd, parties, {"alice": (False, False, -12)},
                   "4 gain -12")
    win["gain-12"] = window(clock, t)

    # -- 5: errors change nothing
    b = bob.call_id
    for params, code, what in (
            ({"id": ROOM, "participant": b}, -32602, "no control"),
            ({"id": ROOM, "participant": b, "gain_db": 25}, -32602,
             "gain_db 25"),
            ({"id": ROOM, "participant": b, "gain_db": -25}, -32602,
             "gain_db -25"),
            ({"id": ROOM, "participant": b, "gain_db": "loud"}, -32602,
             "gain_db \"loud\""),
            ({"id": ROOM, "participant": b, "mute": "yes"}, -32602,
             "mute \"yes\""),
            ({"id": ROOM, "participant": b, "deaf": 0}, -32602, "deaf 0"),
            ({"id": ROOM, "participant": b, "mute": True, "gain_db": 25},
             -32602, "mute true with gain_db 25"),
            ({"id": ROOM, "mute": True}, -32602, "no participant"),
            ({"id": "nosuch-room", "participant": b, "mute": True}, -32001,
             "unknown conference"),
            ({"id": ROOM, "participant": "nosuch-call-id@127.0.0.1",
              "mute": True}, -32003, "unknown participant"),
            ({"id": ROOM, "participant": b, "mute": True, "volume": 3},
             -32602, "extra key")):
        error_case(fd, params, code, "5 " + what)
    check_controls(fd, parties, {"alice": (False, False, -12)},
                   "5 after the refused requests")
    audio(fd, clock, alice, {"gain_db": 24}, (False, False, 24),
          "5 gain_db 24")
    audio(fd, clock, alice, {"gain_db": -24}, (False, False, -24),
          "5 gain_db -24")
    check_controls(fd, parties, {"alice": (False, False, -24)},
                   "5 gain_db -24")
    audio(fd, clock, alice, {"gain_db": 0}, (False, False, 0),
          "5 gain_db 0")
    check_controls(fd, parties, {}, "5 gain_db 0")
    t_end = clock.now()

    analyse(parties, win)
    for p in parties.values():
        log("%s: %d frames sent, %d late, %d send errors"
            % (p.name, p.ep.sent, p.ep.late_frames, p.ep.send_errors))
    log("steps 0-5 took %.2f s" % (t_end - t_all))
    check(fd.alive(), "focusd died")


def analyse(parties, win):
    eps = {n: p.ep for n, p in parties.items()}
    freqs = sorted(FREQ.values())
    errors = []

    def lv(listener, step):
        w0, w1 = win[step]
        return mc.levels(eps[listener], freqs, w0, w1)[0]

    def hears(step, heard_by):
        w0, w1 = win[step]
        mc.check_audio(eps, FREQ, w0, w1, heard_by, step, errors)

    everyone = {n: [o for o in NAMES if o != n] for n in NAMES}

    # 0: baseline
    hears("baseline", everyone)
    base = {n: lv(n, "baseline") for n in NAMES}

    # 1: bob muted
    hears("mute", {"alice": ["carol"], "carol": ["alice"],
                   "bob": ["alice", "carol"]})
    for n in ("alice", "carol"):
        down = base[n][FREQ["bob"]] - lv(n, "mute")[FREQ["bob"]]
        log("mute: bob's tone at %s %.1f dB under its baseline" % (n, down))
        if down < MUTED_DOWN_DB:
            errors.append("mute: bob muted, but his tone at %s is only "
                          "%.1f dB under its baseline (%.1f dBFS); "
                          "expected >= %.0f dB"
                          % (n, down, base[n][FREQ["bob"]], MUTED_DOWN_DB))

    # 2: bob unmuted
    hears("unmute", everyone)
    for n in ("alice", "carol"):
        d = lv(n, "unmute")[FREQ["bob"]] - base[n][FREQ["bob"]]
        log("unmute: bob's tone at %s %+.1f dB against its baseline"
            % (n, d))
        if abs(d) > BACK_TOL_DB:
            errors.append("unmute: bob's tone at %s is %+.1f dB off its "
                          "baseline %.1f dBFS; expected within %.1f dB"
                          % (n, d, base[n][FREQ["bob"]], BACK_TOL_DB))

    # 3: carol deaf, then not
    w0, w1 = win["deaf"]
    pk = eps["carol"].packets(w0, w1)
    log("deaf: carol received %d RTP packets in [%.2f, %.2f)"
        % (len(pk), w0, w1))
    if len(pk) > MAX_DEAF_PACKETS:
        errors.append("deaf: carol received %d RTP packets in the %.1f s "
                      "from %.2f s after she was made deaf (first at "
                      "%.3f s, last at %.3f s); expected at most %d"
                      % (len(pk), w1 - w0, SETTLE_S, pk[0].t, pk[-1].t,
                         MAX_DEAF_PACKETS))
    hears("deaf", {"alice": ["bob", "carol"], "bob": ["alice", "carol"]})
    hears("undeaf", everyone)

    # 4: gain on alice
    for step, want in (("gain+6", 6.0), ("gain-12", -12.0)):
        hears(step, everyone)
        for n in ("bob", "carol"):
            d = lv(n, step)[FREQ["alice"]] - base[n][FREQ["alice"]]
            log("%s: alice's tone at %s %+.2f dB against its baseline"
                % (step, n, d))
            if abs(d - want) > GAIN_TOL_DB:
                errors.append("%s: alice's tone at %s is %+.2f dB against "
                              "its baseline %.1f dBFS; expected %+.0f "
                              "within %.1f dB"
                              % (step, n, d, base[n][FREQ["alice"]], want,
                                 GAIN_TOL_DB))
    if errors:
        fail("what the participants hear:\n  " + "\n  ".join(errors))


if __name__ == "__main__":
    harness.run_main(main)
