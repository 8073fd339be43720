#!/usr/bin/env python3
"""A participant on hold leaves the mix and hears nothing; back off hold,
it is heard and hears again.

It starts focusd with --auto-create; three RTP endpoints play their own
tones (alice 500 Hz, bob 1100 Hz, carol 1900 Hz, -12 dBFS) and keep
sending for their whole call. alice and bob join room1 with uac_join;
carol joins with uac_hold: after HOLD_AFTER_MS in the call she sends a
re-INVITE with a=sendonly (focusd must answer a=recvonly, which the
scenario checks), stays HOLD_MS on hold, sends a re-INVITE with
a=sendrecv (answer a=sendrecv), stays TALK_MS, and hangs up.

Checks, with times taken from SIPp's message trace:
- before the hold, alice and bob hear carol (the control for what
  follows);
- while carol is on hold: conference.show says carol is "on-hold" with
  direction "sendonly" (alice and bob "connected", "sendrecv"); focusd
  still receives carol's packets (rx_packets grows) but sends her none
  (tx_packets stands still); alice and bob each hear the other's tone and
  carol's at least HOLD_REJECT_DB below it, although carol never stops
  sending; carol receives no RTP at all from HOLD_GRACE_S after the 200 to
  her hold re-INVITE until she sends the retrieve;
- after the retrieve: conference.show says "connected", "sendrecv";
  alice and bob hear carol again, carol hears both of them and not
  herself;
- every SIPp call succeeds and focusd exits 0 on SIGTERM.
RTP arrival times are the kernel's (mediacheck.TimedEndpoint), so a test
process stalled by a loaded machine does not move packets from one window
to another; each audio window needs at least MIN_AUDIO_S of audio.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_hold.py (exit status 0 on pass).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpep  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
FREQ = {"alice": 500, "bob": 1100, "carol": 1900}
HOLD_AFTER_MS = 2000
HOLD_MS = 3500
TALK_MS = 2500
# alice and bob stay long enough to outlast carol's call by a margin
STAY_MS = {"alice": 11000, "bob": 10500}
SETTLE_S = 0.3           # skip this much audio after each change
HOLD_GRACE_S = 0.1       # focusd may still send this long after the 200
HOLD_REJECT_DB = 20.0    # held carol under the tone of the other listener
OWN_REJECT_DB = 20.0     # own tone under each other tone
MIN_AUDIO_S = 0.5        # audio that must have arrived in a window
MIN_WINDOW_S = 1.0


def check_hears(errors, name, lv, noise, audio_s, hear, when):
    if audio_s < MIN_AUDIO_S:
        errors.append("%s %s: only %.2f s of audio arrived in the window, "
                      "expected >= %.1f s" % (name, when, audio_s,
                                              MIN_AUDIO_S))
    for who in hear:
        f = FREQ[who]
        if not mc.heard(lv, noise, f):
            errors.append("%s %s: hears %s (%d Hz) at %.1f dBFS, noise "
                          "%.1f dBFS; expected >= %.0f dBFS and >= %.0f dB "
                          "over the noise" % (name, when, who, f, lv[f],
                                              noise, mc.MIN_TONE_DBFS,
                                              mc.MIN_SNR_DB))


def check_legs(res, ports, want, when):
    for name, (state, direction) in want.items():
        p = mc.leg(res, ports[name])
        got = (p.get("state"), p.get("direction"))
        check(got == (state, direction), "conference.show %s (%s): %s "
              "(local_rtp %s) has state=%r direction=%r, expected %r %r"
              % (ROOM, when, name, p.get("local_rtp"), got[0], got[1],
                 state, direction))


def main():
    clock = mc.Clock()
    eps = {}
    runs = []
    failed = True
    with harness.Focusd(auto_create=True) as fd:
        try:
            for name, f in FREQ.items():
                eps[name] = mc.TimedEndpoint(clock, freq=f, name=name,
                                             max_duration=40).start()
            ports = {}
            for name in ("alice", "bob"):
                run, port = mc.join(fd, ROOM, eps[name], name,
                                    STAY_MS[name])
                runs.append(run)
                ports[name] = port
                eps[name].start_sending(("127.0.0.1", port))
                log("%s in %s at %.2f s: %d Hz to focusd :%d"
                    % (name, ROOM, clock.now(), FREQ[name], port))

            ev_file = os.path.join(fd.tmpdir, "carol.events")
            carol = harness.sipp(
                mc.scenario("uac_hold.xml"), fd.sip_target, service=ROOM,
                keys={"rtp_port": eps["carol"].port, "event_file": ev_file,
                      "hold_after_ms": HOLD_AFTER_MS, "hold_ms": HOLD_MS,
                      "talk_ms": TALK_MS},
                sets={"from_user": "carol"}, background=True,
                workdir=os.path.join(fd.tmpdir, "sipp-carol"), name="carol")
            runs.append(carol)
            words = mc.wait_line(carol, ev_file, "answer", 5.0,
                                 "carol's SDP answer")
            ports["carol"] = mc.answered_port(fd, words[0], "carol")
            eps["carol"].start_sending(("127.0.0.1", ports["carol"]))
            log("carol in %s at %.2f s: %d Hz to focusd :%d"
                % (ROOM, clock.now(), FREQ["carol"], ports["carol"]))
            check(len(set(ports.values())) == 3, "the three legs got RTP "
                  "ports %r, expected three different ports" % ports)

            # -- on hold: what the NOC sees
            words = mc.wait_line(carol, ev_file, "held",
                                 HOLD_AFTER_MS / 1000.0 + 5.0,
                                 "the 200 OK to carol's hold re-INVITE")
            check(mc.answered_port(fd, words[0], "carol on hold")
                  == ports["carol"], "the answer to the hold moved carol's "
                  "RTP port from %d to %s" % (ports["carol"], words[0]))
            t_seen_held = clock.now()
            time.sleep(0.4)
            res1 = mc.show(fd, ROOM)
            t_show1 = clock.now()
            check_legs(res1, ports, {"alice": ("connected", "sendrecv"),
                                     "bob": ("connected", "sendrecv"),
                                     "carol": ("on-hold", "sendonly")},
                       "carol on hold")
            time.sleep(1.0)
            res2 = mc.show(fd, ROOM)
            t_show2 = clock.now()
            check_legs(res2, ports, {"carol": ("on-hold", "sendonly")},
                       "carol still on hold")
            c1 = mc.rtp(mc.leg(res1, ports["carol"]))
            c2 = mc.rtp(mc.leg(res2, ports["carol"]))
            frames = (t_show2 - t_show1) / rtpep.PTIME_S
            log("carol on hold, %.2f s apart: rx_packets %d -> %d, "
                "tx_packets %d -> %d, rx_unmixed %s -> %s"
                % (t_show2 - t_show1, c1["rx_packets"], c2["rx_packets"],
                   c1["tx_packets"], c2["tx_packets"],
                   c1.get("rx_unmixed"), c2.get("rx_unmixed")))
            check(c2["rx_packets"] - c1["rx_packets"] >= 0.5 * frames,
                  "carol on hold: focusd's rx_packets for her went %d -> %d "
                  "in %.2f s while she sent all along; expected about +%d"
                  % (c1["rx_packets"], c2["rx_packets"], t_show2 - t_show1,
                     frames))
            check(c2["tx_packets"] == c1["tx_packets"],
                  "carol on hold: focusd's tx_packets to her went %d -> %d "
                  "in %.2f s; a held (sendonly) leg must get no RTP"
                  % (c1["tx_packets"], c2["tx_packets"], t_show2 - t_show1))

            # -- off hold
            words = mc.wait_line(carol, ev_file, "retrieved",
                                 HOLD_MS / 1000.0 + 5.0,
                                 "the 200 OK to carol's retrieve re-INVITE")
            check(mc.answered_port(fd, words[0], "carol retrieved")
                  == ports["carol"], "the answer to the retrieve moved "
                  "carol's RTP port from %d to %s"
                  % (ports["carol"], words[0]))
            time.sleep(0.4)
            check_legs(mc.show(fd, ROOM), ports,
                       {"alice": ("connected", "sendrecv"),
                        "bob": ("connected", "sendrecv"),
                        "carol": ("connected", "sendrecv")},
                       "carol back")

            mc.finish_calls(runs, [eps["alice"], eps["bob"], eps["carol"]],
                            clock)
            for ep in eps.values():
                ep.stop()

            # -- when things happened, from carol's SIPp trace
            ev = mc.trace_events(carol.messages(), clock)
            t_ans = mc.trace_time(ev, "carol", "recv", "INVITE", 1, 200)
            t_hold = mc.trace_time(ev, "carol", "sent", "INVITE", 2)
            t_held = mc.trace_time(ev, "carol", "recv", "INVITE", 2, 200)
            t_retr = mc.trace_time(ev, "carol", "sent", "INVITE", 3)
            t_back = mc.trace_time(ev, "carol", "recv", "INVITE", 3, 200)
            t_bye = mc.trace_time(ev, "carol", "sent", "BYE", 4)
            log("carol: answer %.3f, hold sent %.3f, 200 %.3f, retrieve "
                "sent %.3f, 200 %.3f, BYE %.3f (s)"
                % (t_ans, t_hold, t_held, t_retr, t_back, t_bye))
            check(t_ans <= t_hold <= t_held <= t_retr <= t_back <= t_bye,
                  "carol's SIPp trace is out of order")
            check(t_show2 < t_retr, "the second conference.show (%.3f s) "
                  "came after carol's retrieve (%.3f s); machine too slow"
                  % (t_show2, t_retr))
            check(t_seen_held >= t_held - 0.05, "the 'held' line (%.3f s) "
                  "came before the 200 OK in the trace (%.3f s): the trace "
                  "times are off" % (t_seen_held, t_held))

            freqs = list(FREQ.values())
            windows = [
                ("before the hold", t_ans + 2 * SETTLE_S, t_hold),
                ("on hold", t_held + SETTLE_S, t_retr),
                ("after the retrieve", t_back + SETTLE_S, t_bye),
            ]
            errors = []
            heard = {}
            for when, w0, w1 in windows:
                check(w1 - w0 >= MIN_WINDOW_S, "window %s is only %.2f s "
                      "(%.3f-%.3f); calls too slow" % (when, w1 - w0, w0, w1))
                log("levels heard %s, %.2f-%.2f s:" % (when, w0, w1))
                for name in ("alice", "bob", "carol"):
                    lv, noise, fill = mc.levels(eps[name], freqs, w0, w1)
                    audio_s = fill * (w1 - w0)
                    heard[(name, when)] = lv
                    log("  " + mc.describe(name, lv, noise, fill))
                    if name == "carol" and when == "on hold":
                        continue
                    others = [n for n in FREQ if n != name]
                    if when == "on hold" and name != "carol":
                        other = [n for n in others if n != "carol"][0]
                        check_hears(errors, name, lv, noise, audio_s, [other],
                                    when)
                        gap = lv[FREQ[other]] - lv[FREQ["carol"]]
                        if gap < HOLD_REJECT_DB:
                            errors.append(
                                "%s %s: hears held carol (1900 Hz) at %.1f "
                                "dBFS, only %.1f dB under %s (%d Hz, %.1f "
                                "dBFS); expected >= %.0f dB under"
                                % (name, when, lv[FREQ["carol"]], gap, other,
                                   FREQ[other], lv[FREQ[other]],
                                   HOLD_REJECT_DB))
                    else:
                        check_hears(errors, name, lv, noise, audio_s, others,
                                    when)
                        own = lv[FREQ[name]]
                        for o in others:
                            if lv[FREQ[o]] - own < OWN_REJECT_DB:
                                errors.append(
                                    "%s %s: hears itself (%d Hz) at %.1f "
                                    "dBFS, only %.1f dB under %s"
                                    % (name, when, FREQ[name], own,
                                       lv[FREQ[o]] - own, o))

            # -- nothing to carol while she is on hold
            pk = eps["carol"].packets(t_held + HOLD_GRACE_S, t_retr)
            before = eps["carol"].packets(t_held - 1.0, t_held)
            log("carol received %d RTP packets from focusd in %.3f-%.3f s "
                "(on hold, after %.0f ms grace), %d in the second before "
                "the hold's 200" % (len(pk), t_held + HOLD_GRACE_S, t_retr,
                                    1000 * HOLD_GRACE_S, len(before)))
            if pk:
                errors.append("carol on hold received %d RTP packets from "
                              "focusd between %.3f s (200 OK + %.0f ms) "
                              "and %.3f s (retrieve sent); first at %.3f s "
                              "from %s:%d, last at %.3f s"
                              % (len(pk), t_held + HOLD_GRACE_S,
                                 1000 * HOLD_GRACE_S, t_retr, pk[0].t,
                                 pk[0].addr[0], pk[0].addr[1], pk[-1].t))
            check(len(before) >= 10, "carol received only %d packets in the "
                  "second before her hold; the 'nothing on hold' check "
                  "would prove nothing" % len(before))
            if errors:
                fail("what the participants hear:\n  " +
                     "\n  ".join(errors))
            failed = False
        finally:
            for ep in eps.values():
                ep.stop()
            for run in runs:
                if failed:
                    run.kill()
                    sys.stderr.write(run.report(lines=40) + "\n")
                else:
                    run.kill()


if __name__ == "__main__":
    harness.run_main(main)
