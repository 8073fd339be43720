#!/usr/bin/env python3
"""A sender that restarts its RTP sequence numbers (same SSRC) is heard
again at once.

RFC 3550 A.1: a sequence number far from the expected one, either way,
is the source starting over (a phone's RTP stack restarting, an SBC
re-anchoring the stream), not a late packet. Before this was fixed,
focusd took any packet "behind" the last one as late and dropped it, so
a sender that jumped back (or forward by more than half the sequence
space) was muted for thousands of packets: a minute or more of silence.

focusd runs with auto-create on; alice and bob join room1 (uac_join.xml)
and play tones from their own RTP endpoints (alice 600 Hz, bob 1400 Hz,
-12 dBFS). alice's sender keeps its SSRC and its timestamps running but
jumps its sequence number three times, PHASE_S apart:
    +20000   forward, beyond RFC 3550's MAX_DROPOUT (3000)
    -5000    back, beyond MAX_MISORDER (100)
    +40000   forward by more than half the space: looks like -25536
bob's received audio (arrival times from the kernel: mediacheck.
TimedEndpoint) is measured in 100 ms windows on a grid starting at the
moment the first jumped packet left alice:
- before the first jump (the control), bob hears alice's tone in at
  least MIN_HEARD_SHARE of the windows;
- after each jump, bob hears it in the window [jump + 200 ms, jump +
  300 ms), i.e. again within 300 ms, and in at least MIN_HEARD_SHARE of
  the windows from there to the next jump (it is not a last echo of the
  audio queued before the jump).
"Heard" is alice's 600 Hz at MIN_TONE_DBFS or more. The per-window
levels of every phase are printed, and the failure message carries a
table of the phase that failed, with focusd's rx_late counter for alice.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_rtp_seq_restart.py (exit status 0 on pass).
"""

import os
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpep  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
FREQ = {"alice": 600, "bob": 1400}
JUMPS = (20000, -5000, 40000)
FIRST_JUMP_S = 1.5        # after alice starts sending
PHASE_S = 1.5             # between jumps, and after the last
WINDOW_S = 0.1
HEARD_BY_S = 0.3          # the window that ends here must have the tone
MIN_TONE_DBFS = -30.0     # sent at -12 dBFS
MIN_HEARD_SHARE = 0.8
CONTROL_FROM_S = 0.5      # after alice starts sending
STAY_MS = int(1000 * (FIRST_JUMP_S + len(JUMPS) * PHASE_S + 2.0))


class SeqJumpEndpoint(mc.TimedEndpoint):
    """A TimedEndpoint whose sender can jump its RTP sequence number
    while the stream runs: jump(delta) makes the next packet's seq the
    last one's plus delta (mod 2^16); SSRC, timestamps (+160 a frame),
    payload and schedule go on as before. self.jumps records each as
    (send time in clock seconds, delta, seq before, seq after).

    The send loop is rtpep.RtpEndpoint's (frame k leaves at start + k *
    20 ms); only the header, with the offset added, differs."""

    def __init__(self, clock, **kw):
        super().__init__(clock, **kw)
        self._jump_lock = threading.Lock()
        self._pending = None
        self._offset = 0
        self.last_seq = None
        self._seq = self._delta = None  # of the packet being sent
        self.jumps = []

    def jump(self, delta):
        with self._jump_lock:
            self._pending = delta

    def _header(self, k):
        with self._jump_lock:
            delta, self._pending = self._pending, None
        if delta is not None:
            # next seq = last + delta instead of last + 1
            self._offset += delta - 1
        self._seq = (self.seq0 + k + self._offset) & 0xFFFF
        self._delta = delta
        return struct.pack("!BBHII", 0x80,
                           (0x80 if k == 0 else 0) | rtpep.PT_PCMU,
                           self._seq,
                           (self.ts0 + k * rtpep.FRAME_SAMPLES) & 0xFFFFFFFF,
                           self.ssrc)

    def _on_sent(self, k):
        if self._delta is not None:
            self.jumps.append((self.now(), self._delta, self.last_seq,
                               self._seq))
        self.last_seq = self._seq


def windows(ep, t0, t1):
    """[(w0, level of alice's tone, noise, fill)] for the 100 ms windows
    of the grid t0, t0 + 0.1, ... that end by t1."""
    out = []
    n = int((t1 - t0) / WINDOW_S + 1e-9)
    for i in range(n):
        w0 = t0 + i * WINDOW_S
        lv, noise, fill = mc.levels(ep, [FREQ["alice"]], w0, w0 + WINDOW_S)
        out.append((w0, lv[FREQ["alice"]], noise, fill))
    return out


def table(ws, origin):
    return "\n    ".join(
        "%+5.0f ms  alice %s  noise %s  %3.0f%% of samples%s"
        % (1000 * (w0 - origin), mc.db(lv), mc.db(noise), 100 * fill,
           "" if lv >= MIN_TONE_DBFS else "  <- not heard")
        for w0, lv, noise, fill in ws)


def levels_line(ws):
    return " ".join("%.0f" % max(lv, -99) for _, lv, _, _ in ws)


def heard_share(ws):
    return sum(1 for w in ws if w[1] >= MIN_TONE_DBFS) / max(1, len(ws))


def main():
    clock = mc.Clock()
    eps, runs = {}, []
    failed = True
    with harness.Focusd(auto_create=True) as fd:
        try:
            eps["alice"] = SeqJumpEndpoint(clock, freq=FREQ["alice"],
                                           name="alice", max_duration=30)
            eps["bob"] = mc.TimedEndpoint(clock, freq=FREQ["bob"],
                                          name="bob", max_duration=30)
            ports = {}
            for name in ("alice", "bob"):
                eps[name].start()
                run, ports[name] = mc.join(fd, ROOM, eps[name], name,
                                           STAY_MS)
                runs.append(run)
            for name in ("bob", "alice"):
                eps[name].start_sending(("127.0.0.1", ports[name]))
                log("%s plays %d Hz to focusd :%d" % (name, FREQ[name],
                                                      ports[name]))
            alice = eps["alice"]
            t_start = harness.wait_for(lambda: alice.t_first_send, 2.0,
                                       what="alice's first RTP packet")

            # -- the jumps
            for i, delta in enumerate(JUMPS):
                clock.sleep_until(t_start + FIRST_JUMP_S + i * PHASE_S)
                alice.jump(delta)
                harness.wait_for(lambda: len(alice.jumps) > i, 1.0,
                                 what="alice's jump %+d on the wire" % delta)
                t, d, before, after = alice.jumps[i]
                log("alice jumped %+d at %.3f s: seq %s -> %d (same SSRC "
                    "%08x)" % (d, t, before, after, alice.ssrc))
            clock.sleep_until(alice.jumps[-1][0] + PHASE_S + 0.1)
            check(all(r.poll() is None for r in runs), "a call ended before "
                  "the last phase was over (%.1f s): STAY_MS too short"
                  % clock.now())
            show = mc.show(fd, ROOM)
            a_rtp = mc.rtp(mc.leg(show, ports["alice"]))
            log("focusd's counters for alice: rx_packets %s, rx_late %s"
                % (a_rtp.get("rx_packets"), a_rtp.get("rx_late")))
            mc.finish_calls(runs, [eps["alice"], eps["bob"]], clock)

            # -- what bob heard
            bob = eps["bob"]
            errors = []
            t_j = [j[0] for j in alice.jumps]
            ctl = windows(bob, t_start + CONTROL_FROM_S, t_j[0])
            log("bob hears alice before the jumps (control), dBFS per "
                "100 ms: %s" % levels_line(ctl))
            check(ctl and heard_share(ctl) >= MIN_HEARD_SHARE, "bob hears "
                  "alice in only %.0f%% of the 100 ms windows before any "
                  "jump (expected >= %.0f%%): the test's media path does "
                  "not work\n    %s" % (100 * heard_share(ctl),
                                        100 * MIN_HEARD_SHARE,
                                        table(ctl, t_start)))
            for i, delta in enumerate(JUMPS):
                tj = t_j[i]
                end = t_j[i + 1] if i + 1 < len(t_j) else tj + PHASE_S
                ws = windows(bob, tj, end)
                log("bob hears alice after her jump %+d, dBFS per 100 ms "
                    "from the jump: %s" % (delta, levels_line(ws)))
                k = int(round((HEARD_BY_S - WINDOW_S) / WINDOW_S))
                by = ws[k] if len(ws) > k else None
                rest = ws[k:]
                what = ("after alice's sequence jump %+d (seq %s -> %d, same "
                        "SSRC)" % (delta, alice.jumps[i][2],
                                   alice.jumps[i][3]))
                if by is None or by[1] < MIN_TONE_DBFS:
                    errors.append(
                        "%s bob does not hear her within %.0f ms: %s in the "
                        "window %.0f-%.0f ms after the jump (need >= %.0f "
                        "dBFS)\n    %s"
                        % (what, 1000 * HEARD_BY_S,
                           mc.db(by[1]) if by else "nothing",
                           1000 * (HEARD_BY_S - WINDOW_S),
                           1000 * HEARD_BY_S, MIN_TONE_DBFS, table(ws, tj)))
                elif heard_share(rest) < MIN_HEARD_SHARE:
                    errors.append(
                        "%s bob hears her in only %.0f%% of the 100 ms "
                        "windows from %.0f ms on (expected >= %.0f%%)\n    %s"
                        % (what, 100 * heard_share(rest),
                           1000 * (HEARD_BY_S - WINDOW_S),
                           100 * MIN_HEARD_SHARE, table(ws, tj)))
            if errors:
                fail("bob loses alice when her RTP sequence numbers "
                     "restart (focusd's rx_late for alice: %s, rx_packets "
                     "%s):\n  %s" % (a_rtp.get("rx_late"),
                                     a_rtp.get("rx_packets"),
                                     "\n  ".join(errors)))
            failed = False
        finally:
            for ep in eps.values():
                ep.stop()
            for run in runs:
                run.kill()
                if failed:
                    sys.stderr.write(run.report(lines=20) + "\n")


if __name__ == "__main__":
    harness.run_main(main)
