#!/usr/bin/env python3
"""Talker selection (--max-talkers) and the shared encode of the full mix,
judged by what participants hear and receive.

Every participant is an RTP endpoint of this file (Talker: an
rtpcodecs.CodecEndpoint, kernel arrival stamps, that sends its tones or
digital silence, switchable mid-call, and notes when the first frame of
each state left). Each joins room1 with uac_invite_sdp_file.xml and an
offer of one codec (sdpcall.offer(); sdpcall.check_answer() insists on
the 200's SDP answering that codec on a port in --rtp-ports), lingers a
time planned from the schedule below, then BYE.

Levels: Goertzel (Hann) over 100 ms blocks of what a participant decoded,
at its codec's rate. A tone is heard "near its sent level" when the
median of its block levels is within LEVEL_TOL_DB (2 dB; OPUS_TOL_DB,
3 dB, for Opus listeners) of the level it was sent at and >= 20 dB over
the noise (the mean power of probes at odd multiples of 50 Hz); a tone is
"not heard" when its mean power over the blocks is at least ABSENT_DB
(30 dB) under both the level it was sent at and the quietest tone heard.
Blocks keep a lost or concealed packet (a phase jump for these tones) from
cancelling a tone across the window. Every window must bring >= 80 % of
its samples.

Part 1, talker cap: focusd --max-talkers 2 (mix rate 16 kHz). PCMU legs:
a silent listener "lis" (digital silence, mu-law 0xFF) and five talkers
t1..t5 playing 523, 811, 1097, 1409, 1733 Hz at -10, -14, -18, -22,
-26 dBFS (all above the gate, about -44 dBFS RMS; mu-law distortion of any
two stays about 50 dB under the others' frequencies). All six join
sending silence; then the tones start, loudest first, 100 ms apart (a
seated talker counts 6 dB over a newcomer, so a talker 4 dB quieter that
got a seat first would keep it: loudest first makes "the two loudest" the
one right answer). Asserted:
- in a 1.2 s window from 0.8 s after t1's first tone frame: lis hears t1
  and t2 near their levels and not t3, t4, t5; t1 hears t2 and not
  itself, t2 hears t1 and not itself (seated: the mix minus themselves);
  t3, t4, t5 each hear t1 and t2 and no other tone (their own included).
- t1 goes silent (digital silence, still sending). Per 20 ms packet of
  lis's: t3's 1097 Hz stays >= 12 dB under its sent level in every packet
  that arrived less than 0.16 s after t1's first silent frame left (the
  200 ms hangover, less a tick's phase), and it appears (within 6 dB of
  its level, as do >= 90 % of the packets after it up to 1 s) in a packet
  that arrived 0.16 to 0.6 s after it.
- in a 1.2 s window from 0.7 s after t1's first silent frame: lis hears
  t2 and t3 and not t1, t4, t5; t2 hears t3 only, t3 hears t2 only; t1,
  t4, t5 hear t2 and t3 only.

Part 2, shared encode: focusd --max-talkers 4 (16 kHz). PCMU talkers a
(330 Hz) and b (770 Hz) at -16 dBFS (not whole periods in 20 ms, so a
frame repeated or skipped shows as a phase jump); then three Opus
listeners l1, l2, l3 (the same offer: opus/48000/2, fmtp
minptime=10;useinbandfec=1; decoded at 16 kHz by libopus), 0.5 s apart,
each sending Opus-encoded digital silence (DTX off: ordinary packets,
which decode under the gate, so they stay non-talkers). Packets of
different legs are paired by focusd's tick: the RTP timestamp advances
by a tick's worth every tick for every leg, so each pair of legs has a
constant timestamp offset, taken from the packets that arrived within 5
ms of each other; RTP headers are not compared. l1 never talks, so it
is on the shared encode throughout: the reference. Asserted:
- in a 1.1 s window from 0.3 s after l3's 200 (before l3 ever talks):
  l2 and l3 each received l1's payload, byte for byte, in every tick l1
  received one (>= 80 % of the window's ticks paired); a and b received
  payloads in the same ticks and none is the same (ticks where both got
  digital silence, both inputs late at once, are left out); l1, l2, l3
  each hear 330 and 770 Hz near their levels; a hears b (770) and not
  itself, b hears a (330) and not itself.
- three times, l3 talks (1500 Hz, -16 dBFS) for 0.7 s, then is silent:
  the first two times for 1.7 s, in which a and b both send digital
  silence for 0.15 s from 0.5 s after l3's first silent frame (after
  l3's 200 ms hangover, its jitter buffer's up to 200 ms included), so
  the mix is quiet for a moment; the third time for 2.8 s, a and b
  talking throughout (no quiet moment).
- each time it becomes a seated talker: the first of its payloads
  unlike l1's in the same tick arrived 0 to SWITCH_MAX_S (0.5 s: the
  jitter buffer may hold 200 ms) after its first tone frame left; while
  it talks l1 and l2 still get identical payloads, l3 different ones in
  >= 90 % of the ticks; l1 and l2 hear 330, 770 and 1500 Hz near their
  levels, l3 hears 330 and 770 and not itself.
- each time it leaves its seat, in ticks counted from E, the last tick
  in which l1 hears l3's 1500 Hz within 20 dB of its level (one 20 ms
  packet): focusd unseats l3 at E+10 (the hangover). B is l3's first
  payload equal to l1's from which all are for 0.3 s; none between its
  first on its own encoder and B equals l1's. A tick is quiet when a and
  b, the only seated talkers, each hearing the other, both received a
  packet of mean square under the gate (200^2, about -44 dBFS): the mix
  was quiet. If a tick Q from E+10 to E+108 is quiet (the first), B is
  Q or the tick before (a's and b's 8 kHz packets may carry a
  resampler's tail after the 16 kHz mix fell quiet); otherwise B is
  E+109 +- 1 (the hangover, then 100 ticks: 2 s). One exception: when
  the mix was quiet before E+10 (every stream stalled at once on a busy
  machine, which unseats l3 early), B may be that quiet tick or the one
  before (logged; a pause cycle's further checks are then skipped).
- the two times a and b pause: Q must be their pause's: l3's packet of
  tick Q arrived no later than 0.25 s after the pause ended as sent (if
  the mix was quiet before it, a and b both lost frames: logged, and B
  judged there, as above, not against the pause); B arrived between
  the pause's start as sent (the later first silent frame of a's and
  b's) and 0.25 s after its end (the jitter buffer). Nothing loud at the
  switch: l1 decodes the same payloads as l3 from B on, never having
  switched, so l3's audio minus l1's is what the switch adds. In B's
  packet (the first independent frame: l3's decoder still overlaps it
  with its past, l3's own stream, which coded the sound that just
  stopped) the difference is at most FIRST_DBFS (-30 dBFS, RMS over the
  packet) with no sample beyond FIRST_PEAK (3277, -20 dBFS), and none
  beyond QUIET_PEAK (328, -40 dBFS) from FADE_S (7.5 ms) into the
  packet on; in each later tick to the pause's end (the mix quiet) l3's
  audio is under QUIET_DBFS (-40 dBFS, RMS over the packet) and the
  difference under SAME_DBFS (-75 dBFS: the decoders agree). When a and
  b resume: over the 15 ticks from the first not quiet after the pause
  l3's audio is l1's (signal to difference >= 60 dB), and in the 20
  ticks from the 5th of them l3 hears 330 and 770 Hz near their levels.
- the time a and b do not pause, B is E+109 +- 1 as above (a quiet tick
  by accident would be logged and B judged against it instead). That
  switch, at a loud moment, is logged (l3 vs l1 per tick, and the click
  check below), not asserted.
- no click in l3's audio where it switches from the shared encoder to
  its own as it starts talking: over the 6 packets from 2 before the
  switch, the largest step between samples is at most CLICK_RATIO
  (1.25) times the largest in the 0.9 s before; and each of those
  packets follows 330 + 770 Hz, fitted by least squares on the 6
  packets before them and extended, with a signal-to-residual ratio at
  most FIT_DROP_DB (10 dB) under the median of the fitted packets'. A
  switch is judged only if the input was clean there: a and b (G.711,
  no encoder state) each hear the other's tone as mixed, and in each
  packet of theirs over the same ticks and one more that tone's phasor
  (least squares per packet, l3's 1500 Hz allowed alongside) stays
  within CONTROL_DEV (0.2) of the one fitted before (a concealed or late
  frame jumps its phase); at least one of the three must be judged.
- Every SIPp call of both parts ends with exit status 0 and focusd exits
  0 on SIGTERM.

Bounded: each join waits at most 5 s for its 200, every call lingers a
planned time (joins must keep to the plan: 0.4 s each), SIPp has its own
30 s timeout; the test takes about 21 s.

Run by hand: cd /work/main && FOCUSD=build/daemon/focusd \
FOCUSCTL=build/mgmt/focusctl SIPP_SCENARIOS=$PWD/tests/sipp \
SIPP=/usr/bin/sipp python3 tests/integration/test_talkers.py
(exit status 0 on pass).
"""

import collections
import math
import os
import statistics
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpcodecs as rc  # noqa: E402
import rtpep  # noqa: E402
import sdpcall  # noqa: E402
from harness import check, log  # noqa: E402

ROOM = "room1"
MIX_RATE = 16000
OPUS_PT = 111
OPUS_FMTP = "minptime=10;useinbandfec=1"
PCMU_OFFER = [(0, "PCMU/8000", None)]
OPUS_OFFER = [(OPUS_PT, "opus/48000/2", OPUS_FMTP)]

BLOCK_S = 0.1
NOISE_NB = mc.NOISE_PROBES_HZ
NOISE_WB = NOISE_NB + (4450, 5450, 6650, 7250)
LEVEL_TOL_DB = 2.0
OPUS_TOL_DB = 3.0
ABSENT_DB = 30.0
JOIN_SLOT_S = 0.4            # planned per join: calls linger accordingly
LINGER_SLACK_S = 0.5

# Part 1: (name, Hz, dBFS), the loudest first
TALKERS = [("t1", 523, -10.0), ("t2", 811, -14.0), ("t3", 1097, -18.0),
           ("t4", 1409, -22.0), ("t5", 1733, -26.0)]
TONE_STAGGER_S = 0.1
WIN_A = (0.8, 2.0)           # after t1's first tone frame
MUTE_AT_S = 2.1              # after t1's first tone frame
WIN_B = (0.7, 1.9)           # after t1's first silent frame
HANG_MIN_S = 0.16
ONSET_MAX_S = 0.6
ONSET_HOLD_S = 1.0
ONSET_DB = 6.0
PRE_ONSET_DB = 12.0
ONSET_SHARE = 0.9

# Part 2
A_HZ, B_HZ, L3_HZ, P2_DBFS = 330, 770, 1500, -16.0
LISTENER_GAP_S = 0.5
SETTLE_S = 0.3
SHARED_S = 1.1
CYCLES = 2                    # l3 talks and falls silent; a and b pause
TALK_S = 0.7
PAUSE_AT_S = 0.5              # after l3's first silent frame
PAUSE_S = 0.15                # a and b send digital silence
SILENT_S = 1.7                # l3's silence, from its first silent frame
LONG_SILENT_S = 2.8           # the last time: a and b never pause
SWITCH_MAX_S = 0.5            # the jitter buffer holds up to 200 ms
JB_MAX_S = 0.2
BACK_HOLD_S = 0.3
HANGOVER_TICKS = 10           # focusd's (mixer/worker.c)
RETURN_MAX_TICKS = 100
GATE_MS = 200 * 200           # mean square, the talker gate
MATCH_S = 0.005
MIN_PAIRED = 0.8
TALK_DIFFER = 0.9
CLICK_RATIO = 1.25
FIT_DROP_DB = 10.0
FIT_PKTS = 6
CONTROL_DEV = 0.2
FIRST_DBFS = -30.0            # l3 minus l1 in the first shared packet
FIRST_PEAK = 3277             # -20 dBFS
FADE_S = 0.0075
QUIET_PEAK = 328              # -40 dBFS
QUIET_DBFS = -40.0
SAME_DBFS = -75.0
SAME_TICKS = 15
HEARD_TICKS = (5, 25)          # after the pause, l3 hears a and b
SAME_DB = 60.0
LIMIT_TOL_TICKS = 1

class Talker(rc.CodecEndpoint):
    """A CodecEndpoint that sends its tones while talking and digital
    silence otherwise, switchable at any time with talk(); changes lists
    (time the first frame of the new state left, talking) in order."""

    def __init__(self, clock, codec, tones, name, talking=False):
        super().__init__(clock, codec, tones, name=name, max_duration=60)
        self.tone_table = self._table
        self.quiet_table = rc.tone_table(codec.rate, [])
        self.talking = talking
        self._was = None
        self.changes = []

    def talk(self, on):
        self.talking = on

    def _frame(self, k):
        on = self.talking
        if on != self._was:
            self._table = self.tone_table if on else self.quiet_table
            self._was = on
            self.changes.append((self.now(), on))
        return super()._frame(k)

    def changed_at(self, on, after=0.0, timeout=1.0):
        """When the first frame of state `on` left after `after` (waits
        up to timeout for it)."""
        def seen():
            for t, o in self.changes:
                if o == on and t >= after:
                    return t
            return None
        return harness.wait_for(seen, timeout, interval=0.005,
                                what="%s: first %s frame" % (
                                    self.name, "tone" if on else "silent"))


def join(fd, clock, ep, linger_s, offer):
    """Offer one codec, wait for the 200 (sdpcall.check_answer()), start
    ep sending to the answered port. Returns (SippRun, port, join time);
    the call lingers linger_s after its ACK."""
    run, port, t = sdpcall.join(fd, clock, ROOM, ep,
                                sdpcall.offer(ep.name, ep.port, offer,
                                              "talkers"),
                                int(linger_s * 1000), timeout=30)
    log("%s joined at %.2f s (%s, from :%d to focusd :%d, lingers %.1f s)"
        % (ep.name, t, ep.codec, ep.port, port, linger_s))
    return run, port, t


def log_legs(fd, eps, ports):
    """Log what focusd counted for each leg and how each endpoint sent:
    the first things to read when a tone is missing or short."""
    show = mc.show(fd, ROOM)
    for name, ep in sorted(eps.items()):
        r = mc.rtp(mc.leg(show, ports[name]))
        log("%s: sent %d (%d late); focusd: %s" % (
            name, ep.sent, ep.late_frames, " ".join(
                "%s=%s" % (k, r.get(k)) for k in (
                    "rx_packets", "rx_lost", "rx_concealed", "rx_late",
                    "rx_overflow", "underruns", "jitter_ms", "jb_target",
                    "tx_packets", "tx_dropped") if k in r)))


# ---------------------------------------------------------------- levels

def block_levels(ep, freqs, probes, w0, w1, x=None):
    """What ep decoded in [w0, w1) (or x, that long), in BLOCK_S blocks:
    ({Hz: median block level}, {Hz: level of the mean block power}, noise
    (the loudest probe's mean), fill)."""
    rate = ep.codec.rate
    if x is None:
        x = ep.audio(w0, w1)
    n = int(rate * BLOCK_S)
    blocks = [x[i:i + n] for i in range(0, len(x) - n + 1, n)]
    med, mean = {}, {}
    for f in list(freqs) + list(probes):
        a = [rtpep.goertzel_amplitude(b, f, rate) for b in blocks] or [0.0]
        med[f] = rtpep.amplitude_dbfs(statistics.median(a))
        mean[f] = rtpep.amplitude_dbfs(math.sqrt(
            sum(v * v for v in a) / len(a)))
    noise = max(mean[f] for f in probes)
    return med, mean, noise, len(x) / max(1.0, (w1 - w0) * rate)


def judge(ep, sent, hears, w0, w1, tol, probes, label, errors, x=None):
    """ep hears the names in hears near their sent level and none of the
    other names of sent {name: (Hz, dBFS)} (see the docstring); in x, if
    given, instead of what arrived in [w0, w1)."""
    freqs = sorted(f for f, _ in sent.values())
    med, mean, noise, fill = block_levels(ep, freqs, probes, w0, w1, x)
    log("%s [%.2f, %.2f) %-4s %s | noise %.1f | %.0f%% of samples" % (
        label, w0, w1, ep.name, "  ".join(
            "%d Hz %.1f/%.1f" % (f, med[f], mean[f]) for f in freqs),
        noise, 100 * fill))
    if fill < mc.MIN_FILL:
        errors.append("%s: %s got only %.0f%% of the window's samples"
                      % (label, ep.name, 100 * fill))
    for o in hears:
        f, d = sent[o]
        if abs(med[f] - d) > tol or med[f] - noise < mc.MIN_SNR_DB:
            errors.append("%s [%.2f, %.2f): %s hears %s's %d Hz at %.1f "
                          "dBFS (median of %.0f ms blocks; sent at %.0f, "
                          "noise %.1f): expected within %.0f dB of the "
                          "sent level and %.0f dB over the noise"
                          % (label, w0, w1, ep.name, o, f, med[f],
                             1000 * BLOCK_S, d, noise, tol, mc.MIN_SNR_DB))
    quietest = min([med[sent[o][0]] for o in hears] or [0.0])
    for o, (f, d) in sorted(sent.items()):
        limit = min(d, quietest) - ABSENT_DB
        if o not in hears and mean[f] > limit:
            errors.append("%s [%.2f, %.2f): %s hears %s%s: %d Hz at %.1f "
                          "dBFS (mean power; sent at %.0f): must be under "
                          "%.1f, %.0f dB under that and under the quietest "
                          "tone heard" % (label, w0, w1, ep.name, o,
                                          " (itself)" if o == ep.name
                                          else "", f, mean[f], d, limit,
                                          ABSENT_DB))


def packet_levels(ep, freq, t0, t1):
    """[(arrival, dBFS of freq in that one payload)] for the PCMU packets
    ep received in [t0, t1)."""
    return [(p.t, rtpep.goertzel_dbfs(rtpep.mulaw_decode_bytes(p.payload),
                                      freq))
            for p in ep.packets(t0, t1) if p.pt == rtpep.PT_PCMU]


# ---------------------------------------------------------------- ticks

def nearest(ref, other):
    """For each packet of ref, the index of other's that arrived within
    MATCH_S of it, or None (both lists in arrival order)."""
    out, j = [], 0
    for p in ref:
        while j < len(other) and other[j].t < p.t - MATCH_S:
            j += 1
        out.append(j if j < len(other) and
                   abs(other[j].t - p.t) <= MATCH_S else None)
    return out


class Ticks:
    """An endpoint's received packets numbered by focusd's tick: a leg's
    RTP timestamp advances by the codec's 20 ms every tick, sent or not,
    so (ts - first ts) / step counts ticks."""

    def __init__(self, ep):
        self.ep = ep
        self.pk = ep.packets()
        check(self.pk, "%s received no RTP at all" % ep.name)
        step, ts0 = ep.codec.ts_step, self.pk[0].ts
        self.n = [((p.ts - ts0) & 0xFFFFFFFF) // step for p in self.pk]
        self.index = {n: i for i, n in enumerate(self.n)}
        self._off = {}

    def offset(self, other):
        """n here minus n there for the same tick: the commonest
        difference over the packets that arrived within MATCH_S."""
        if other.ep.name not in self._off:
            c = collections.Counter(
                self.n[i] - other.n[j]
                for i, j in enumerate(nearest(self.pk, other.pk))
                if j is not None)
            check(c, "%s and %s received no packets at the same time"
                  % (self.ep.name, other.ep.name))
            self._off[other.ep.name] = c.most_common(1)[0][0]
        return self._off[other.ep.name]

    def at(self, i, other):
        """other's packet of the tick of our packet i, or None."""
        j = other.index.get(self.n[i] - self.offset(other))
        return None if j is None else other.pk[j]

    def window(self, w0, w1):
        return [i for i, p in enumerate(self.pk) if w0 <= p.t < w1]

    def there(self, n, other):
        """other's number of our tick n."""
        return n - self.offset(other)

    def pcm(self, n):
        """Decoded audio of tick n's packet, or None (no packet)."""
        i = self.index.get(n)
        if i is None:
            return None
        p = self.pk[i]
        if p.pt == rtpep.PT_PCMU:
            return rtpep.mulaw_decode_bytes(p.payload)
        return self.audio(n, 1)

    def audio(self, n0, count):
        """Decoded audio of the packets of ticks n0 .. n0+count-1 (which
        must have arrived in that order, one each), or None."""
        i = self.index.get(n0)
        if i is None or i + count > len(self.pk) or \
                self.n[i:i + count] != list(range(n0, n0 + count)):
            return None
        end = self.pk[i + count].t if i + count < len(self.pk) else None
        x = self.ep.audio(self.pk[i].t, end)
        return x if len(x) == count * self.ep.codec.frame else None


def quiet(p):
    """A payload that decodes to digital silence (the mix had nothing)."""
    if p.pt != rtpep.PT_PCMU:
        return False
    return max(abs(v) for v in rtpep.mulaw_decode_bytes(p.payload)) <= 8


def compare(ref, other, w0, w1, skip_quiet=False):
    """ref's packets in [w0, w1): (count, paired with other's of the same
    tick, of those with the same payload, the first differing ones).
    skip_quiet: ticks where both got digital silence are left out (both
    heard nobody: two legs whose frames were late at once)."""
    idx = ref.window(w0, w1)
    pairs = [(ref.pk[i], ref.at(i, other)) for i in idx]
    if skip_quiet:
        pairs = [(p, q) for p, q in pairs
                 if q is None or not (quiet(p) and quiet(q))]
    paired = [(p, q) for p, q in pairs if q is not None]
    same = sum(p.payload == q.payload for p, q in paired)
    diff = ["%.3f s (%d vs %d bytes)" % (p.t, len(p.payload),
                                         len(q.payload))
            for p, q in paired if p.payload != q.payload]
    return len(idx), len(paired), same, diff[:3]


def marks(ref, other, s, before=12, after=4):
    """'=' same payload as other's in that tick, 'x' not, '.' none there,
    for ref's packets around s ('|' before s): for the log."""
    out = []
    for i in range(max(0, s - before), min(len(ref.pk), s + after)):
        q = ref.at(i, other)
        out.append(("|" if i == s else "") + (
            "." if q is None else
            "=" if q.payload == ref.pk[i].payload else "x"))
    return "".join(out)


# ---------------------------------------------------------------- clicks

def lsq_tones(x, freqs, rate, i0=0):
    """Least squares of x on cos and sin at each of freqs, sample i of x
    being at time index i0 + i: [(cos, sin) coefficient per freq]."""
    ws = [2 * math.pi * f / rate for f in freqs]
    cols = []
    for w in ws:
        cols.append([math.cos(w * (i0 + i)) for i in range(len(x))])
        cols.append([math.sin(w * (i0 + i)) for i in range(len(x))])
    n = len(cols)
    a = [[sum(u * v for u, v in zip(cols[i], cols[j])) for j in range(n)]
         for i in range(n)]
    y = [sum(u * v for u, v in zip(cols[i], x)) for i in range(n)]
    for i in range(n):          # Gauss: the normal matrix is positive
        for j in range(i + 1, n):   # definite, no pivoting needed
            r = a[j][i] / a[i][i]
            for k in range(i, n):
                a[j][k] -= r * a[i][k]
            y[j] -= r * y[i]
    c = [0.0] * n
    for i in reversed(range(n)):
        c[i] = (y[i] - sum(a[i][k] * c[k] for k in range(i + 1, n))) \
            / a[i][i]
    return [(c[2 * j], c[2 * j + 1]) for j in range(len(freqs))]


def fit_tones(x, freqs, rate):
    """The least-squares sum of freqs over x, as a function of the sample
    index (extending past x)."""
    c = lsq_tones(x, freqs, rate)
    ws = [2 * math.pi * f / rate for f in freqs]

    def model(i):
        return sum(cc * math.cos(w * i) + cs * math.sin(w * i)
                   for (cc, cs), w in zip(c, ws))
    return model


def packet_fit(x, frame, freqs, rate):
    """Signal-to-residual (dB) of each frame of x against freqs fitted on
    its first FIT_PKTS frames and extended."""
    model = fit_tones(x[:FIT_PKTS * frame], freqs, rate)
    out = []
    for k in range(len(x) // frame):
        sig = res = 0.0
        for i in range(k * frame, (k + 1) * frame):
            m = model(i)
            sig += m * m
            res += (x[i] - m) ** 2
        out.append(10 * math.log10(max(sig, 1.0) / max(res, 1.0)))
    return out


def max_step(x):
    return max((abs(x[i] - x[i - 1]) for i in range(1, len(x))), default=0)


def tone_track(x, frame, f, others, rate):
    """How far each frame of x strays from tone f as fitted on the first
    FIT_PKTS frames: |per-frame phasor - fitted phasor| / |fitted|, the
    per-frame phasor estimated with the other tones as nuisance terms
    (they may start or stop after the fit)."""
    (gc, gs), = lsq_tones(x[:FIT_PKTS * frame], (f,), rate)
    g = math.hypot(gc, gs) or 1.0
    out = []
    for k in range(len(x) // frame):
        (c, s) = lsq_tones(x[k * frame:(k + 1) * frame], (f,) + others,
                           rate, k * frame)[0]
        out.append(math.hypot(c - gc, s - gs) / g)
    return out


def input_clean(l3, s, controls):
    """Were a's and b's frames mixed in cleanly around l3's packet s?
    controls: [(Ticks, the tone it hears)]; each one's tone (l3's 1500 Hz
    may join it) must stay within CONTROL_DEV of its fitted phasor in the
    ticks of s-2 .. s+4. Returns (clean, description)."""
    notes, clean = [], True
    for ct, f in controls:
        n0 = l3.n[s] - l3.offset(ct) - FIT_PKTS - 2
        x = ct.audio(n0, FIT_PKTS + 7)
        if x is None:
            notes.append("%s: packets missing" % ct.ep.name)
            clean = False
            continue
        dev = tone_track(x, ct.ep.codec.frame, f, (L3_HZ,),
                         ct.ep.codec.rate)
        clean = clean and max(dev[FIT_PKTS:]) <= CONTROL_DEV
        notes.append("%s %s" % (ct.ep.name, " ".join("%.2f" % v
                                                     for v in dev)))
    return clean, "; ".join(notes)


def check_click(l3, s, freqs, controls, label, errors):
    """No click in l3's audio around its packet s (see the docstring).
    Returns True if judged, False if the input was not clean there."""
    ep, frame = l3.ep, l3.ep.codec.frame
    clean, notes = input_clean(l3, s, controls)
    x = l3.audio(l3.n[s] - FIT_PKTS - 2, FIT_PKTS + 6)
    if x is None or s < FIT_PKTS + 2:
        clean = False
        notes += "; l3: packets missing"
    if not clean:
        log("%s at %.3f s: not judged, the input was not clean there "
            "(control tone's deviation per packet: %s)"
            % (label, l3.pk[s].t, notes))
        return False
    steady = ep.audio(l3.pk[s].t - 0.9 - 2 * rtpep.PTIME_S,
                      l3.pk[s - 2].t)
    d_ss = max_step(steady)
    d_sw = max_step(x[FIT_PKTS * frame - 1:])
    snr = packet_fit(x, frame, freqs, ep.codec.rate)
    base = statistics.median(snr[:FIT_PKTS])
    log("%s at %.3f s: largest step %d (the 0.9 s before: %d); l3's "
        "signal/residual per packet %s dB (fitted on the first %d); "
        "controls %s" % (label, l3.pk[s].t, d_sw, d_ss,
                         " ".join("%.1f" % v for v in snr), FIT_PKTS,
                         notes))
    if d_sw > CLICK_RATIO * d_ss:
        errors.append("%s at %.3f s: a click: a step of %d between "
                      "samples, the largest in the 0.9 s before is %d "
                      "(allowed %.2f times that)"
                      % (label, l3.pk[s].t, d_sw, d_ss, CLICK_RATIO))
    worst = min(snr[FIT_PKTS:])
    if worst < base - FIT_DROP_DB:
        errors.append("%s at %.3f s: the audio breaks: %s Hz fitted on the "
                      "%d packets before leave a residual only %.1f dB "
                      "under the signal in a packet after, %.1f dB worse "
                      "than before (allowed %.0f); per packet: %s; the "
                      "input was clean (a's and b's audio: %s)"
                      % (label, l3.pk[s].t, "+".join(str(f) for f in freqs),
                         FIT_PKTS, worst, base - worst, FIT_DROP_DB,
                         " ".join("%.1f" % v for v in snr), notes))
    return True


# ---------------------------------------------------------------- part 1

def part_talker_cap(clock):
    sent = {n: (f, d) for n, f, d in TALKERS}
    order = [("lis", None, None)] + TALKERS
    eps, runs, ports = {}, [], {}
    with harness.Focusd(auto_create=True, log_level="info",
                        extra_args=["--max-talkers", "2", "--mix-rate",
                                    str(MIX_RATE)]) as fd:
        try:
            t_start = clock.now()
            t0 = t_start + len(order) * JOIN_SLOT_S
            t_end = t0 + MUTE_AT_S + 0.05 + WIN_B[1] + LINGER_SLACK_S
            for i, (name, f, d) in enumerate(order):
                ep = Talker(clock, rc.PCMU, [(f, d)] if f else [], name)
                eps[name] = ep.start()
                runs.append(None)
                runs[-1], ports[name], t = join(fd, clock, ep,
                                                t_end - clock.now(),
                                                PCMU_OFFER)
                due = t_start + (i + 1) * JOIN_SLOT_S
                check(t <= due, "%s joined at %.2f s, planned by %.2f: "
                      "call setup too slow" % (name, t, due))
            for i, (name, _, _) in enumerate(TALKERS):
                clock.sleep_until(t0 + i * TONE_STAGGER_S)
                eps[name].talk(True)
            t_tone = eps["t1"].changed_at(True, t0 - 0.05)
            clock.sleep_until(t_tone + MUTE_AT_S)
            eps["t1"].talk(False)
            t_mute = eps["t1"].changed_at(False, t_tone + MUTE_AT_S - 0.05)
            clock.sleep_until(t_mute + max(WIN_B[1], ONSET_HOLD_S) + 0.05)
            log_legs(fd, eps, ports)
            # analysis once the calls are over: not to slow the senders
            mc.finish_calls(runs, [eps[n] for n, _, _ in order], clock)
            for ep in eps.values():
                ep.stop()

            errors = []
            for w, seated, label in (
                    (WIN_A, ("t1", "t2"), "t1..t5 talk"),
                    (WIN_B, ("t2", "t3"), "t1 silent")):
                base = t_tone if w is WIN_A else t_mute
                for name, ep in sorted(eps.items()):
                    judge(ep, sent, [o for o in seated if o != name],
                          base + w[0], base + w[1], LEVEL_TOL_DB, NOISE_NB,
                          label, errors)

            f3, d3 = sent["t3"]
            pl = packet_levels(eps["lis"], f3, t_mute - 0.3,
                               t_mute + ONSET_HOLD_S)
            log("t1 silent from %.3f s; t3's %d Hz in each of lis's "
                "packets (ms after: dBFS): %s" % (t_mute, f3, " ".join(
                    "%+.0f:%.0f" % (1000 * (t - t_mute), v)
                    for t, v in pl if t < t_mute + ONSET_MAX_S + 0.1)))
            early = [(t, v) for t, v in pl if t < t_mute + HANG_MIN_S and
                     v > d3 - PRE_ONSET_DB]
            if early:
                errors.append("lis hears t3 (%d Hz at %.1f dBFS in a "
                              "packet) %.0f ms after t1's first silent "
                              "frame, before the 200 ms hangover ended "
                              "(must stay %.0f dB under its %.0f dBFS "
                              "until %.0f ms)"
                              % (f3, early[0][1],
                                 1000 * (early[0][0] - t_mute),
                                 PRE_ONSET_DB, d3, 1000 * HANG_MIN_S))
            onset = None
            for i, (t, v) in enumerate(pl):
                rest = [u >= d3 - ONSET_DB for _, u in pl[i:]]
                if rest[0] and sum(rest) >= ONSET_SHARE * len(rest):
                    onset = t
                    break
            if onset is None or not (t_mute + HANG_MIN_S <= onset <=
                                     t_mute + ONSET_MAX_S):
                errors.append("lis: t3 (%d Hz) does not take t1's seat "
                              "%.2f-%.2f s after t1's first silent frame "
                              "(heard within %.0f dB of %.0f dBFS from %s)"
                              % (f3, HANG_MIN_S, ONSET_MAX_S, ONSET_DB, d3,
                                 "nowhere" if onset is None else
                                 "%.3f s after" % (onset - t_mute)))
            else:
                log("t3 heard by lis %.0f ms after t1's first silent frame"
                    % (1000 * (onset - t_mute)))
            check(not errors, "talker cap (--max-talkers 2):\n  " +
                  "\n  ".join(errors))
        finally:
            for ep in eps.values():
                ep.stop()
            for run in runs:
                if run is not None:
                    run.kill()


# ---------------------------------------------------------------- part 2

def mean_square(x):
    return sum(v * v for v in x) / len(x) if x else 0.0


def quiet_tick(t3, ta, tb, n):
    """Was the full mix quiet in l3's tick n, as a and b heard it? Each
    seated talker hears the mix minus itself; with only a and b seated,
    a hears b and b hears a, so the mix was under the gate when both
    received packets are (mean square of the decoded mu-law). None when
    a packet is missing."""
    xs = [tt.pcm(t3.there(n, tt)) for tt in (ta, tb)]
    if None in xs:
        return None
    return max(mean_square(x) for x in xs) < GATE_MS


def tone_end(t3, t1, t_stop):
    """l3's tick of the last frame of its tone that focusd mixed: the last
    in which l1 (the full mix) hears 1500 Hz within 20 dB of its level,
    from 0.1 s before l3's first silent frame left to 0.6 s after; and
    that level per tick, for the log."""
    last, lv = None, []
    for i in t3.window(t_stop - 0.1, t_stop + 0.6):
        x = t1.pcm(t3.there(t3.n[i], t1))
        if x is None:
            continue
        v = rtpep.goertzel_dbfs(x, L3_HZ, t1.ep.codec.rate)
        lv.append("%.0f" % v)
        if v > P2_DBFS - 20:
            last = t3.n[i]
    return last, " ".join(lv)


def find_back(t3, t1, s, t_until):
    """l3's first packet after s (its first on its own encoder) that
    arrived before t_until and equals l1's in the same tick, as do all for
    BACK_HOLD_S on; and the packets in between that equal l1's."""
    stray = []
    for i in range(s + 1, len(t3.pk)):
        if t3.pk[i].t >= t_until:
            break
        q = t3.at(i, t1)
        if q is None or q.payload != t3.pk[i].payload:
            continue
        hold = t3.window(t3.pk[i].t, t3.pk[i].t + BACK_HOLD_S)
        if all(t3.at(j, t1) is not None and
               t3.at(j, t1).payload == t3.pk[j].payload for j in hold):
            return i, stray
        stray.append(i)
    return None, stray


def db_fs(ms):
    """Mean square as dBFS (a full-scale sine: 0)."""
    return 10 * math.log10(max(ms, 1e-3) / (rtpep.FULL_SCALE ** 2 / 2))


def switch_audio(t3, t1, n_back, n_end):
    """l3's audio against l1's, who decodes the same payloads from tick
    n_back on without ever switching: per tick n_back-2 .. n_end-1, (n -
    n_back, l3's level, l1's, their difference's (dBFS, RMS over the
    packet), the difference's peak), or None where a packet is missing;
    and a line for the log."""
    rows, text = [], []
    for n in range(n_back - 2, n_end):
        x3, x1 = t3.pcm(n), t1.pcm(t3.there(n, t1))
        if x3 is None or x1 is None:
            rows.append((n - n_back, None))
            text.append("%+d: missing" % (n - n_back))
            continue
        d = [u - v for u, v in zip(x3, x1)]
        r = (db_fs(mean_square(x3)), db_fs(mean_square(x1)),
             db_fs(mean_square(d)), max(abs(v) for v in d))
        rows.append((n - n_back, r))
        text.append("%+d: l3 %.0f l1 %.0f diff %.0f (peak %d)"
                    % ((n - n_back,) + r))
        if n == n_back:
            text[-1] += " [diff's peak per 2.5 ms: %s]" % " ".join(
                str(max(abs(v) for v in d[j:j + len(d) // 8]))
                for j in range(0, len(d), len(d) // 8))
    return rows, "; ".join(text)


def quiet_switch(t3, t1, n_back, n_end, label, errors):
    """Nothing loud where l3 went back to the shared encode at a quiet
    moment, ticks n_back .. n_end-1 (the mix's pause; see the
    docstring)."""
    rows, text = switch_audio(t3, t1, n_back, n_end)
    log("%s: per tick from the switch (dBFS): %s" % (label, text))
    bad = []
    for k, r in rows:
        if k < 0:
            continue
        if r is None:
            bad.append("tick %+d: no packet" % k)
            continue
        lv3, _, lvd, pkd = r
        if k == 0:
            x3, x1 = t3.pcm(n_back), t1.pcm(t3.there(n_back, t1))
            fade = int(FADE_S * t3.ep.codec.rate)
            late = max(abs(u - v) for u, v in zip(x3[fade:], x1[fade:]))
            if lvd > FIRST_DBFS or pkd > FIRST_PEAK:
                bad.append("the first shared packet: l3's audio differs "
                           "from l1's by %.1f dBFS (peak %d; allowed %.0f,"
                           " peak %d)" % (lvd, pkd, FIRST_DBFS, FIRST_PEAK))
            if late > QUIET_PEAK:
                bad.append("the first shared packet: l3's audio differs "
                           "from l1's by a sample of %d from %.1f ms on "
                           "(allowed %d, -40 dBFS)"
                           % (late, 1000 * FADE_S, QUIET_PEAK))
            continue
        if lv3 > QUIET_DBFS:
            bad.append("tick %+d: l3 hears %.1f dBFS in the mix's pause "
                       "(allowed %.0f)" % (k, lv3, QUIET_DBFS))
        if lvd > SAME_DBFS:
            bad.append("tick %+d: l3's decoder has not caught up with "
                       "l1's: their audio differs by %.1f dBFS (allowed "
                       "%.0f)" % (k, lvd, SAME_DBFS))
    if bad:
        errors.append("%s: not quiet at the switch: %s"
                      % (label, "; ".join(bad)))


def same_audio(t3, t1, n0, count):
    """Signal (l1's) to difference (l3's minus l1's) in dB over ticks
    n0 .. n0+count-1, or None if packets are missing."""
    sig = dif = 0.0
    for n in range(n0, n0 + count):
        x3, x1 = t3.pcm(n), t1.pcm(t3.there(n, t1))
        if x3 is None or x1 is None:
            return None
        sig += sum(v * v for v in x1)
        dif += sum((u - v) ** 2 for u, v in zip(x3, x1))
    return 10 * math.log10(max(sig, 1.0) / max(dif, 1.0))


def part_shared_encode(clock):
    sent = {"a": (A_HZ, P2_DBFS), "b": (B_HZ, P2_DBFS)}
    sent3 = dict(sent, l3=(L3_HZ, P2_DBFS))
    opus = rc.OPUS(OPUS_PT, MIX_RATE)
    eps, runs, ports = {}, [], {}
    with harness.Focusd(auto_create=True, log_level="info",
                        extra_args=["--max-talkers", "4", "--mix-rate",
                                    str(MIX_RATE)]) as fd:
        try:
            t_start = clock.now()
            s0 = t_start + 2 * JOIN_SLOT_S
            order = [("a", rc.PCMU, A_HZ, PCMU_OFFER, t_start),
                     ("b", rc.PCMU, B_HZ, PCMU_OFFER,
                      t_start + JOIN_SLOT_S),
                     ("l1", opus, None, OPUS_OFFER, s0),
                     ("l2", opus, None, OPUS_OFFER, s0 + LISTENER_GAP_S),
                     ("l3", opus, L3_HZ, OPUS_OFFER,
                      s0 + 2 * LISTENER_GAP_S)]
            w0 = order[-1][4] + JOIN_SLOT_S + SETTLE_S
            w1 = w0 + SHARED_S
            t_end = (w1 + CYCLES * (TALK_S + SILENT_S) + TALK_S +
                     LONG_SILENT_S + LINGER_SLACK_S)
            for name, codec, f, offer, at in order:
                clock.sleep_until(at)
                ep = Talker(clock, codec, [(f, P2_DBFS)] if f else [], name,
                            talking=codec is rc.PCMU)
                eps[name] = ep.start()
                runs.append(None)
                runs[-1], ports[name], t = join(fd, clock, ep,
                                                t_end - clock.now(), offer)
                check(t <= at + JOIN_SLOT_S, "%s joined at %.2f s, planned "
                      "by %.2f: call setup too slow"
                      % (name, t, at + JOIN_SLOT_S))
            a, b, l3 = eps["a"], eps["b"], eps["l3"]
            # (l3's first tone frame, its first silent frame, a's and b's
            # common pause as sent [last first silent frame, first first
            # tone frame) or None)
            cycles = []
            clock.sleep_until(w1)
            for k in range(CYCLES + 1):
                l3.talk(True)
                t_talk = l3.changed_at(True, clock.now() - 0.05)
                clock.sleep_until(t_talk + TALK_S)
                l3.talk(False)
                t_stop = l3.changed_at(False, t_talk)
                pause = None
                if k < CYCLES:
                    clock.sleep_until(t_stop + PAUSE_AT_S)
                    t = clock.now()
                    a.talk(False)
                    b.talk(False)
                    clock.sleep_until(t + PAUSE_S)
                    a.talk(True)
                    b.talk(True)
                    pause = (max(ep.changed_at(False, t - 0.01)
                                 for ep in (a, b)),
                             min(ep.changed_at(True, t + PAUSE_S - 0.01)
                                 for ep in (a, b)))
                cycles.append((t_talk, t_stop, pause))
                clock.sleep_until(t_stop + (SILENT_S if pause else
                                            LONG_SILENT_S))
            log_legs(fd, eps, ports)
            mc.finish_calls(runs, [eps[o[0]] for o in order], clock)
            for ep in eps.values():
                ep.stop()

            errors = []
            tk = {name: Ticks(ep) for name, ep in eps.items()}
            t1, t2, t3 = tk["l1"], tk["l2"], tk["l3"]
            ta, tb = tk["a"], tk["b"]
            want = MIN_PAIRED * (w1 - w0) / rtpep.PTIME_S
            # -- all three listening
            for o in ("l2", "l3"):
                n, m, same, diff = compare(t1, tk[o], w0, w1)
                log("listening [%.2f, %.2f): l1 got %d packets, %s the "
                    "same tick's %d, identical %d" % (w0, w1, n, o, m, same))
                if m < want or same != m:
                    errors.append("listeners l1 and %s [%.2f, %.2f): %d "
                                  "ticks paired (want >= %.0f), %d "
                                  "byte-identical payloads, expected all;"
                                  " differing at %s"
                                  % (o, w0, w1, m, want, same, diff))
            n, m, same, _ = compare(ta, tb, w0, w1, skip_quiet=True)
            log("talkers [%.2f, %.2f): a got %d packets, b the same tick's "
                "%d, identical %d" % (w0, w1, n, m, same))
            if m < want or same:
                errors.append("talkers a and b [%.2f, %.2f): %d ticks "
                              "paired (want >= %.0f), %d byte-identical "
                              "payloads, expected none"
                              % (w0, w1, m, want, same))
            for name in ("l1", "l2", "l3"):
                judge(eps[name], sent, ("a", "b"), w0, w1, OPUS_TOL_DB,
                      NOISE_WB, "listening", errors)
            judge(a, sent, ("b",), w0, w1, LEVEL_TOL_DB, NOISE_NB,
                  "listening", errors)
            judge(b, sent, ("a",), w0, w1, LEVEL_TOL_DB, NOISE_NB,
                  "listening", errors)

            # -- l3 talks, then falls silent, CYCLES + 1 times
            controls = [(ta, B_HZ), (tb, A_HZ)]
            judged_on = 0
            for k, (t_talk, t_stop, pause) in enumerate(cycles):
                lab = "cycle %d: " % (k + 1)
                on = [i for i in t3.window(t_talk - 0.05, t_stop)
                      if t3.at(i, t1) is not None and
                      t3.at(i, t1).payload != t3.pk[i].payload]
                s = on[0] if on else None
                if s is None or not (t_talk <= t3.pk[s].t <=
                                     t_talk + SWITCH_MAX_S):
                    errors.append("%sl3 talks from %.3f s: its first "
                                  "payload unlike l1's in the same tick "
                                  "arrived %s, expected within %.1f s"
                                  % (lab, t_talk, "never" if s is None else
                                     "%.3f s after" % (t3.pk[s].t - t_talk),
                                     SWITCH_MAX_S))
                    continue
                log("%sl3 on its own encoder %.0f ms after its first tone "
                    "frame; l3 vs l1 per tick: %s"
                    % (lab, 1000 * (t3.pk[s].t - t_talk), marks(t3, t1, s)))
                judged_on += check_click(
                    t3, s, (A_HZ, B_HZ), controls,
                    lab + "l3 becoming a talker", errors)
                v0, v1 = t3.pk[s].t, t_stop
                n, m, same, diff = compare(t1, t2, v0, v1 + 0.2)
                if m < MIN_PAIRED * n or same != m:
                    errors.append("%sl1 and l2 while l3 talks [%.2f, %.2f):"
                                  " %d of %d paired, %d identical, expected"
                                  " all; differing at %s"
                                  % (lab, v0, v1 + 0.2, m, n, same, diff))
                n, m, same, _ = compare(t3, t1, v0, v1)
                if m - same < TALK_DIFFER * n:
                    errors.append("%sl3 talking [%.2f, %.2f): %d of %d "
                                  "payloads unlike l1's, expected >= %.0f%%"
                                  " (a seated talker hears the mix minus "
                                  "itself)" % (lab, v0, v1, m - same, n,
                                               100 * TALK_DIFFER))
                for name in ("l1", "l2"):
                    judge(eps[name], sent3, ("a", "b", "l3"), v0 + 0.1, v1,
                          OPUS_TOL_DB, NOISE_WB, lab + "l3 talking", errors)
                judge(l3, sent3, ("a", "b"), v0 + 0.1, v1, OPUS_TOL_DB,
                      NOISE_WB, lab + "l3 talking", errors)

                # -- and goes back to the shared encode
                end, lv = tone_end(t3, t1, t_stop)
                log("%sl3 silent from %.3f s: l1 hears its %d Hz per tick "
                    "(dBFS): %s" % (lab, t_stop, L3_HZ, lv))
                if end is None:
                    errors.append("%sl1 never heard l3's tone end" % lab)
                    continue
                t_until = t_stop + (SILENT_S if pause else LONG_SILENT_S)
                back, stray = find_back(t3, t1, s, t_until)
                if stray:
                    errors.append("%sl3 got l1's payload in %d ticks "
                                  "(from %.3f s) before it was back on "
                                  "them for %.1f s" % (lab, len(stray),
                                                       t3.pk[stray[0]].t,
                                                       BACK_HOLD_S))
                if back is None:
                    errors.append("%sl3 silent from %.3f s: never back on "
                                  "l1's payloads (for %.1f s on)"
                                  % (lab, t_stop, BACK_HOLD_S))
                    continue
                nb = t3.n[back]
                qt = [(n, quiet_tick(t3, ta, tb, n))
                      for n in range(end + 1, t3.n[-1])]
                log("%sl3 back on the shared payload %.0f ms after its "
                    "first silent frame, %d ticks after its tone's last "
                    "(l1's); l3 vs l1 per tick: %s; mix quiet from the "
                    "tone's end (a, b heard; q quiet, . not, ? missing): "
                    "%s" % (lab, 1000 * (t3.pk[back].t - t_stop), nb - end,
                            marks(t3, t1, back, 24),
                            "".join("?" if v is None else "q" if v else "."
                                    for m_, v in qt if m_ <= nb + 12)))
                # the rule: back at the first quiet tick of the mix once
                # unseated, at the latest RETURN_MAX_TICKS after
                unseat = end + HANGOVER_TICKS
                limit = unseat + RETURN_MAX_TICKS - 1
                first_q = next((n for n, v in qt if n >= unseat and v),
                               None)
                if first_q is not None and first_q <= limit:
                    i_q = t3.index.get(first_q)
                    t_q = (t3.pk[i_q].t if i_q is not None else
                           t3.pk[back].t + (first_q - nb) * rtpep.PTIME_S)
                    ok = first_q - 1 <= nb <= first_q
                    want = "%d or %d: the mix's first quiet tick after " \
                        "the hangover, or the one before" % (
                            first_q - end, first_q - end - 1)
                else:
                    t_q = None
                    ok = abs(nb - limit) <= LIMIT_TOL_TICKS
                    want = "%d +- %d (the mix never quiet: hangover, then " \
                        "%d ticks)" % (limit - end, LIMIT_TOL_TICKS,
                                       RETURN_MAX_TICKS)
                # A stall of every stream at once (the machine busy)
                # empties the mix and unseats l3 early: then it may go
                # back at that quiet tick, before its hangover ended.
                stall_q = next((n for n, v in qt if n < unseat and v), None)
                if not ok and stall_q is not None and \
                        stall_q - 1 <= nb <= stall_q:
                    log("%sthe mix went quiet %d ticks after l3's tone (all "
                        "streams stalled): l3 went back then" % (
                            lab, stall_q - end))
                    ok, t_q = True, None
                    if pause:
                        continue  # the pause's check needs the pause
                if not ok:
                    errors.append("%sl3 back on l1's payloads in tick %d "
                                  "after its tone's last (%.3f s after its "
                                  "first silent frame), expected in tick %s"
                                  % (lab, nb - end, t3.pk[back].t - t_stop,
                                     want))
                    continue
                if pause:
                    p0, p1 = pause
                    late = p1 + JB_MAX_S + 0.05
                    if t_q is None or t_q > late:
                        errors.append(
                            "%sa's and b's common pause (%.3f-%.3f s as "
                            "sent) never made the mix quiet (as they heard"
                            " it, see the log): the quiet return not "
                            "judged" % (lab, p0, p1))
                        continue
                    if t_q < p0:
                        log("%sthe mix was quiet before a's and b's pause "
                            "(their frames missing?): judged there"
                            % lab)
                    elif not p0 <= t3.pk[back].t <= late:
                        errors.append(
                            "%sl3 back on l1's payloads %.3f s after a's "
                            "and b's common pause began (%.3f-%.3f s as "
                            "sent), expected within it or up to %.2f s "
                            "after (the jitter buffer)"
                            % (lab, t3.pk[back].t - p0, p0, p1,
                               late - p1))
                    n_end = next((n for n, v in qt if n > nb and not v),
                                 nb + 1)
                    quiet_switch(t3, t1, nb, n_end,
                                 lab + "l3 back to the shared encoder",
                                 errors)
                    # a and b resume: l3 decodes the shared stream as l1
                    snr = same_audio(t3, t1, n_end, SAME_TICKS)
                    log("%sa and b heard again from tick %d: l3's audio "
                        "vs l1's over %d ticks: %s dB" % (
                            lab, n_end - end, SAME_TICKS,
                            "?" if snr is None else "%.1f" % snr))
                    if snr is None or snr < SAME_DB:
                        errors.append("%sl3's audio unlike l1's after the "
                                      "pause: %s dB signal to difference "
                                      "over %d ticks, expected >= %.0f"
                                      % (lab, "packets missing" if snr is
                                         None else "%.1f" % snr,
                                         SAME_TICKS, SAME_DB))
                    i_r = t3.index.get(n_end + HEARD_TICKS[0])
                    x = t3.audio(n_end + HEARD_TICKS[0],
                                 HEARD_TICKS[1] - HEARD_TICKS[0])
                    if i_r is None or x is None:
                        errors.append("%safter the pause: l3's packets "
                                      "missing" % lab)
                    else:
                        t_r = t3.pk[i_r].t
                        judge(l3, sent, ("a", "b"), t_r, t_r + len(x) /
                              t3.ep.codec.rate, OPUS_TOL_DB, NOISE_WB,
                              lab + "after the pause", errors, x)
                elif t_q is not None:
                    log("%sthe mix was quiet in tick %d: the 2 s limit not"
                        " judged" % (lab, first_q - end))
                else:
                    # a forced switch at a loud moment: the decoder's
                    # mismatch, for the log only
                    log("%sforced switch, for the log: per tick (dBFS): %s"
                        % (lab, switch_audio(t3, t1, nb, nb + 4)[1]))
                    check_click(t3, back, (A_HZ, B_HZ), controls,
                                lab + "forced switch (not asserted)", [])
            if judged_on == 0 and not errors:
                errors.append("no switch to l3's own encoder could be "
                              "judged for clicks: the input was never "
                              "clean around one (see the log)")
            check(not errors, "shared encode (--max-talkers 4, Opus "
                  "listeners):\n  " + "\n  ".join(errors))
        finally:
            for ep in eps.values():
                ep.stop()
            for run in runs:
                if run is not None:
                    run.kill()


def main():
    clock = mc.Clock()
    part_talker_cap(clock)
    part_shared_encode(clock)


if __name__ == "__main__":
    harness.run_main(main)
