#!/usr/bin/env python3
"""The packet time focusd sends each participant follows that
participant's SDP offer (a=ptime, a=maxptime, at media or session level,
made one its codec can send), whatever packet time the participant sends
itself; the audio still mixes.

focusd runs with --auto-create --mix-rate 16000 --max-talkers 5. Eight
endpoints (PtimeEndpoint below: an rtpcodecs.CodecEndpoint that sends
packets of any length on an absolute schedule, kernel arrival stamps) join
room1 one after the other, each offering one payload type in its own SDP
(uac_invite_sdp_file.xml, offer.sdp in its SIPp work dir; every call is
planned to end CALL_END_S after the test's start, then BYE):

  name   codec  offer says (m: media level)         focusd sends  it sends
  alice  Opus   m: a=ptime:40 a=maxptime:120        40 ms         40 ms
  bob    PCMU   m: a=ptime:30                       30 ms         20 ms
  carol  PCMU   m: a=maxptime:10 (no ptime)         10 ms         10 ms
  dave   G.722  session: a=ptime:100                60 ms (cap)   30 ms
  erin   Opus   m: a=ptime:30                       20 ms (down)  60 ms
  frank  Opus   m: a=ptime:5                        10 ms (min)   20 ms
  gina   G.722  m: a=ptime:50 a=maxptime:45         40 ms (down)  20 ms
  henry  Opus   session: a=maxptime:60, m: a=ptime:70  60 ms      20 ms

Opus is PT 111 opus/48000/2 (fmtp minptime=10), encoded
and decoded here at 16 kHz by libopus (RTP clock 48000); at the 64 kbit/s
the endpoints send, libopus makes CELT packets, so alice's 40 ms are two
20 ms frames (TOC code 1) and erin's 60 ms three (code 3). G.722 is PT 9,
SpanDSP's, 16 kHz; PCMU PT 0, mu-law, 8 kHz. alice, erin, bob, carol and
dave play 530, 830, 1130, 1730 and 2330 Hz at TONE_DBFS (-18 dBFS), so
nobody's mix of up to five can clip (peak -4 dBFS); frank, gina and henry
send digital silence (listeners only). The tones complete whole periods in
100 ms but not in 10 or 20 ms, so audio that a packet carries from the
wrong place (repeated, skipped, shifted by part of a packet) shows as
phase jumps; every sum, difference and low harmonic of them is away from
the noise probes (odd multiples of 50 Hz).

Asserted:
- Each 200 (sdpcall.check_answer()) carries application/sdp with one
  m=audio on a port in --rtp-ports with the offered payload type only
  (its rtpmap, any a=fmtp only for it), sendrecv, c=IN IP4 127.0.0.1 and
  a=ptime:20 (what focusd asks to receive, whatever the offer said).
- conference.show, while all eight are in: eight participants, each with
  "ptime_ms" the packet time focusd sends it (the table) and its codec.
- The RTP focusd sends each leg, over the whole call: from the answered
  port, V=2, the answered PT, one SSRC; every payload one packet time
  long: PCMU and G.722 8 bytes a millisecond (80 for 10 ms, 240 for 30,
  320 for 40, 480 for 60), Opus a single frame (TOC code 0) whose TOC
  configuration gives that duration and libopus agrees (48 samples a
  millisecond at 48 kHz); seq +1 and timestamp + one packet time (8 units
  a ms for PCMU and G.722, 48 for Opus) from packet to packet; the marker
  bit on the first packet and on no other; the timestamps span the time
  the packets took to arrive (within DRIFT_TOL_S, 0.1 s); in the 2 s
  window below 2000 / ptime packets (+- 1, and +- COUNT_TOL_MS, 60 ms, of
  packets); all decodable by the listener's codec. How the packets are
  spaced on arrival is logged, not asserted (the mixer's 20 ms tick sends
  10 ms packets in pairs, 30 ms ones 20 and 40 ms apart).
- Audio in a 2 s window starting 0.5 s after the last join, decoded by
  each listener with its own codec from the packets it got, Goertzel
  levels (Hann window): every participant hears every other participant's
  tone within LEVEL_TOL_DB of TONE_DBFS and >= 20 dB over the loudest
  noise probe, and its own tone (if any) at least 20 dB under the quietest
  tone it hears; >= 80 % of the window's samples arrive; no decoded sample
  reaches 32000. SINAD: in each 100 ms block of the window the five
  tones are fitted (their DFT coefficients: whole periods in a block) and
  the power fitted is compared with the power left over; the median over
  the blocks must be >= 25 dB for PCMU and G.722 listeners (mu-law gives
  about 37) and >= 12 dB for Opus ones (focusd's 32 kbit/s Opus of a
  four- or five-tone chord gives 19 to 29; the offers leave out
  useinbandfec, with which it varies from 4 to 25 from block to block).
  A queue that repeated or lost a 10 ms piece of every 30 ms packet
  reads about 12 dB, of every 10 ms packet below 0. The tones heard
  travelled in packets of 10 to 60 ms both ways, so this also shows
  focusd receives any of those packet times.
- Every SIPp call ends with exit status 0 and focusd exits 0 on SIGTERM.

Bounded: each join waits at most 5 s for its 200, the calls end
CALL_END_S (5.5 s) after the start and SIPp has its own 20 s timeout; the
test takes about 6.5 s.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_ptime.py (exit status 0 on pass).
"""

import collections
import math
import operator
import os
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpcodecs as rc  # noqa: E402
import sdpcall  # noqa: E402
from harness import check, log  # noqa: E402

ROOM = "room1"
MIX_RATE = 16000
MAX_TALKERS = 5
TONE_DBFS = -18.0
OPUS_PT = 111
OPUS = rc.OPUS(OPUS_PT, rate=16000, bitrate=64000)
OPUS_FMTP = "minptime=10"    # no useinbandfec: see SINAD above

Party = collections.namedtuple(
    "Party", "name codec tone send_ms session_attrs media_attrs want_ms")

PARTIES = [
    Party("alice", OPUS, 530, 40, [], ["ptime:40", "maxptime:120"], 40),
    Party("bob", rc.PCMU, 1130, 20, [], ["ptime:30"], 30),
    Party("carol", rc.PCMU, 1730, 10, [], ["maxptime:10"], 10),
    Party("dave", rc.G722, 2330, 30, ["ptime:100"], [], 60),
    Party("erin", OPUS, 830, 60, [], ["ptime:30"], 20),
    Party("frank", OPUS, None, 20, [], ["ptime:5"], 10),
    Party("gina", rc.G722, None, 20, [], ["ptime:50", "maxptime:45"], 40),
    Party("henry", OPUS, None, 20, ["maxptime:60"], ["ptime:70"], 60),
]

NOISE_NB = (1250, 2050, 2850, 3450)
NOISE_WB = NOISE_NB + (4450, 5450, 6650, 7250)
CALL_END_S = 5.5             # every call's BYE, after the clock's start
WINDOW_S = (0.5, 2.5)        # audio and packet-count window, after the
                             # last join
MGMT_AT_S = 0.3
MIN_OVERLAP_S = 3.0
OWN_REJECT_DB = 20.0
LEVEL_TOL_DB = 3.0
BLOCK_S = 0.1                # SINAD blocks: whole periods of every tone
MIN_SINAD_DB = {"opus": 12.0, "G722": 25.0, "PCMU": 25.0}
MAX_PEAK = 32000
COUNT_TOL_MS = 60            # packets in the 2 s window: 2000 / ptime
                             # +- 1 and this much of a ptime's packets
DRIFT_TOL_S = 0.1            # timestamp span vs arrival span
MIN_CALL_S = 3.0             # packets expected at least for this long

# Opus TOC configuration -> frame duration in ms (RFC 6716 3.1): SILK
# 10/20/40/60, hybrid 10/20, CELT 2.5/5/10/20.
OPUS_CONFIG_MS = ([10, 20, 40, 60] * 3 + [10, 20] * 2 +
                  [2.5, 5, 10, 20] * 4)


class PtimeEndpoint(rc.CodecEndpoint):
    """A CodecEndpoint that sends a packet of send_ms milliseconds (what
    one encode() of that much PCM gives) every send_ms, on an absolute
    schedule (rtpep's, with ptime_s send_ms), timestamp + send_ms of the
    codec's clock a packet; notes the first payload it sent."""

    def __init__(self, clock, codec, tones, send_ms, **kw):
        super().__init__(clock, codec, tones, **kw)
        self.send_ms = send_ms
        self.send_samples = codec.rate * send_ms // 1000
        self.ts_step = codec.clock * send_ms // 1000
        self.ptime_s = send_ms / 1000.0
        self.first_payload = None

    def _frame(self, k):
        n, tab = self.send_samples, self._table
        off = (k * n) % len(tab)
        pcm = tab[off:off + n]
        if len(pcm) < n:        # the one-second table wraps
            pcm = pcm + tab[:n - len(pcm)]
        payload = self._enc.encode(pcm)
        if self.first_payload is None:
            self.first_payload = payload
        return payload


def join(calls, p):
    """Endpoint receiving, INVITE with its offer (the call to end at
    CALL_END_S), wait for the 200 (sdpcall.check_answer()), start
    sending. Returns the endpoint."""
    c = p.codec
    tones = [(p.tone, TONE_DBFS)] if p.tone else []
    ep = PtimeEndpoint(calls.clock, c, tones, p.send_ms, name=p.name,
                       max_duration=40).start()
    attrs = " ".join(p.session_attrs + p.media_attrs)
    sdp = sdpcall.offer(p.name, ep.port, [
        (c.pt, c.rtpmap, OPUS_FMTP if c.name == "opus" else None)],
        "ptime", p.session_attrs, p.media_attrs, ptime=None)
    linger_ms = int(1000 * (CALL_END_S - calls.clock.now()))

    def answer(resp):
        return sdpcall.check_answer(calls.fd, p.name, resp, c,
                                    "what focusd receives best, whatever "
                                    "the offer asked: %s" % attrs)
    port, t = calls.join(ep, sdp, linger_ms, answer)
    log("%s joined at %.2f s: %s offering %s, %s, sending %d ms packets "
        "from :%d to focusd :%d" % (
            p.name, t, c,
            " ".join(["session a=" + a for a in p.session_attrs] +
                     ["a=" + a for a in p.media_attrs]),
            "%d Hz" % p.tone if p.tone else "silence", p.send_ms, ep.port,
            port))
    return ep


def payload_ms(codec, payload):
    """(ms of audio in the payload or None, its shape, its shape and
    size): G.711 8 bytes a ms, G.722 8 bytes a ms (64 kbit/s), Opus by its
    TOC (a single frame only) as libopus reads it."""
    n = len(payload)
    if codec.name != "opus":
        what = "%d bytes" % n
        return (n // 8 if n % 8 == 0 else None), what, what
    if not payload:
        return None, "empty", "empty"
    toc = payload[0]
    cfg, code = toc >> 3, toc & 3
    samples = rc.opus_packet_info(payload)[0]
    shape = "TOC config %d (%s ms frames) code %d, %d samples at 48 kHz" % (
        cfg, OPUS_CONFIG_MS[cfg], code, samples)
    ms = OPUS_CONFIG_MS[cfg]
    if code != 0 or samples != 48 * ms:
        ms = None
    return ms, shape, "%s, %d bytes" % (shape, n)


def check_stream(p, ep, focus_port, w0, w1):
    """Every packet focusd sent ep over the whole call: p.want_ms long."""
    codec, want = p.codec, p.want_ms
    step = codec.clock * want // 1000
    min_packets = int(MIN_CALL_S * 1000 / want)
    errors, pk = sdpcall.stream_errors(
        ep, focus_port, codec.pt, step, min_packets,
        "(%.0f s of %d ms packets)" % (MIN_CALL_S, want),
        "%d ms at %d Hz" % (want, codec.clock))
    if pk is None:
        return errors
    # payload durations
    seen = collections.Counter()
    odd = []
    for q in pk:
        ms, shape, what = payload_ms(codec, q.payload)
        seen[shape] += 1
        if ms != want:
            odd.append((q, what))
    shapes = "; ".join("%s x%d" % kv for kv in sorted(seen.items()))
    if odd:
        q, what = odd[0]
        errors.append("%s: %d of %d packets from focusd are not %d ms "
                      "(expected %s), e.g. seq %d: %s; seen: %s"
                      % (p.name, len(odd), len(pk), want,
                         "a single %d ms Opus frame, %d samples at 48 kHz"
                         % (want, 48 * want) if codec.name == "opus" else
                         "%d bytes" % (8 * want), q.seq, what, shapes))
    # marker: the first packet only (no DTX was offered)
    if not pk[0].marker:
        errors.append("%s: the first packet from focusd (seq %d) has no "
                      "marker bit" % (p.name, pk[0].seq))
    marked = [q for q in pk[1:] if q.marker]
    if marked:
        errors.append("%s: %d packets after the first carry the marker "
                      "bit, expected none: seq %s"
                      % (p.name, len(marked), ", ".join(
                          "%d at %.3f s" % (q.seq, q.t)
                          for q in marked[:6])))
    # the timestamps keep time with the arrivals
    span_ts = ((pk[-1].ts - pk[0].ts) & 0xFFFFFFFF) / float(codec.clock)
    span_t = pk[-1].t - pk[0].t
    if abs(span_ts - span_t) > DRIFT_TOL_S:
        errors.append("%s: the timestamps of focusd's packets span %.3f s, "
                      "their arrivals %.3f s (%d packets): expected within "
                      "%.2f s" % (p.name, span_ts, span_t, len(pk),
                                  DRIFT_TOL_S))
    # packets in the window
    n_w = len(ep.packets(w0, w1))
    exp_w = (w1 - w0) * 1000.0 / want
    tol = 1 + COUNT_TOL_MS // want
    if abs(n_w - exp_w) > tol:
        errors.append("%s: %d packets from focusd arrived in [%.2f, %.2f),"
                      " expected %.0f +- %d (one per %d ms)"
                      % (p.name, n_w, w0, w1, exp_w, tol, want))
    # arrival pattern (logged: the mixer's 20 ms tick sends them)
    gaps = collections.Counter(10 * round(100 * (b.t - a.t))
                               for a, b in zip(pk, pk[1:]))
    sent = ""
    if codec.name == "opus" and ep.first_payload:
        sent = " (%s)" % payload_ms(codec, ep.first_payload)[1]
    secs = sdpcall.decoded_s(ep, errors)
    if secs is not None:
        log("%s: %d packets from focusd: %s; %d in the window; timestamps "
            "span %.3f s, arrivals %.3f s; arrival gaps (to 10 ms) %s; "
            "decoded %.2f s; it sent %d packets of %d ms%s (%d late)"
            % (p.name, len(pk), shapes, n_w, span_ts, span_t,
               ", ".join("%d ms x%d" % kv for kv in sorted(gaps.items())
                         if kv[1] * 50 >= len(pk)),
               secs, ep.sent, p.send_ms, sent, ep.late_frames))
    return errors


_basis = {}


def _basis_tables(rate, f, n):
    key = (rate, f, n)
    t = _basis.get(key)
    if t is None:
        w = 2 * math.pi * f / rate
        t = ([math.cos(w * i) for i in range(n)],
             [math.sin(w * i) for i in range(n)])
        _basis[key] = t
    return t


def block_sinad(samples, rate, freqs):
    """SINAD (dB) of each BLOCK_S block of samples: the power of the sines
    at freqs fitted to the block over the power of what is left. Every
    tone completes whole periods in a block, so the sines are orthogonal
    there and the fit is their DFT coefficients."""
    n = int(round(rate * BLOCK_S))
    out = []
    for k in range(0, len(samples) - n + 1, n):
        x = samples[k:k + n]
        mean = sum(x) / float(n)
        x = [v - mean for v in x]
        total = sum(map(operator.mul, x, x)) / n
        fit = 0.0
        for f in freqs:
            c, s = _basis_tables(rate, f, n)
            a = 2.0 / n * sum(map(operator.mul, x, c))
            b = 2.0 / n * sum(map(operator.mul, x, s))
            fit += (a * a + b * b) / 2
        out.append(10 * math.log10(max(fit, 1e-9) /
                                   max(total - fit, 1e-9)))
    return out


def check_audio(eps, w0, w1):
    """Who hears whom in [w0, w1); returns the problems."""
    errors = []
    tones = {p.name: p.tone for p in PARTIES if p.tone}
    for p in PARTIES:
        ep = eps[p.name]
        wide = ep.codec.rate > 8000
        others = sorted((o, f) for o, f in tones.items() if o != p.name)
        freqs = sorted(tones.values())
        lv, noise, fill = rc.levels(ep, freqs, NOISE_WB if wide else
                                    NOISE_NB, w0, w1)
        peak = max((abs(x) for x in ep.audio(w0, w1)), default=0)
        log("heard [%.2f, %.2f) %s | peak %.1f dBFS"
            % (w0, w1, rc.describe(p.name, lv, noise, fill),
               20 * math.log10(max(peak, 1) / 32768.0)))
        sinad = sorted(block_sinad(ep.audio(w0, w1), ep.codec.rate,
                                   freqs)) or [-200.0]
        med = sinad[len(sinad) // 2]
        log("%s: SINAD of the tones in %d blocks of %d ms: median %.1f dB,"
            " min %.1f, max %.1f" % (p.name, len(sinad), 1000 * BLOCK_S,
                                    med, sinad[0], sinad[-1]))
        if med < MIN_SINAD_DB[ep.codec.name]:
            errors.append("%s (%s, %d ms packets): the tones it hears are "
                          "%.1f dB over what else it hears (median SINAD "
                          "of %d blocks of %d ms), expected >= %.0f dB: "
                          "audio lost, repeated or misplaced in its "
                          "packets" % (p.name, ep.codec.name, p.want_ms,
                                       med, len(sinad), 1000 * BLOCK_S,
                                       MIN_SINAD_DB[ep.codec.name]))
        if peak >= MAX_PEAK:
            errors.append("%s: a decoded sample reaches %d: the mix clips"
                          % (p.name, peak))
        if fill < mc.MIN_FILL:
            errors.append("%s got only %.0f%% of the window's samples"
                          % (p.name, 100 * fill))
        for o, f in others:
            if not mc.heard(lv, noise, f) or \
                    abs(lv[f] - TONE_DBFS) > LEVEL_TOL_DB:
                errors.append("%s (%d ms packets) does not hear %s's %d Hz "
                              "as sent: %.1f dBFS, noise %.1f (expected "
                              "%.0f +- %.0f dBFS and %.0f dB over the "
                              "noise)" % (p.name, p.want_ms, o, f, lv[f],
                                          noise, TONE_DBFS, LEVEL_TOL_DB,
                                          mc.MIN_SNR_DB))
        if p.tone:
            quietest = min([lv[f] for _, f in others])
            if quietest - lv[p.tone] < OWN_REJECT_DB:
                errors.append("%s hears its own %d Hz at %.1f dBFS, only "
                              "%.1f dB under the quietest tone it should "
                              "hear (mix-minus needs >= %.0f)"
                              % (p.name, p.tone, lv[p.tone],
                                 quietest - lv[p.tone], OWN_REJECT_DB))
    return errors


def main():
    clock = mc.Clock()
    with harness.Focusd(auto_create=True,
                        extra_args=["--mix-rate", str(MIX_RATE),
                                    "--max-talkers",
                                    str(MAX_TALKERS)]) as fd, \
            sdpcall.Calls(fd, clock, ROOM) as calls:
        for p in PARTIES:
            join(calls, p)
        calls.check_ports_differ()
        t_all = calls.overlap(MIN_OVERLAP_S)[0]
        eps, ports = calls.eps, calls.ports

        clock.sleep_until(t_all + MGMT_AT_S)
        show = calls.show()
        wrong, seen = [], []
        for p in PARTIES:
            leg = mc.leg(show, ports[p.name])
            got = (leg.get("ptime_ms"), leg.get("codec"))
            want = (p.want_ms, p.codec.name)
            seen.append("%s %s ptime_ms %r" % (p.name, got[1], got[0]))
            if got != want:
                wrong.append("%s (:%d, offered %s): ptime_ms %r codec %r, "
                             "expected %r %r"
                             % (p.name, ports[p.name],
                                " ".join(p.session_attrs + p.media_attrs),
                                got[0], got[1], want[0], want[1]))
        log("conference.show %s: %s" % (ROOM, ", ".join(seen)))
        check(not wrong, "conference.show %s:\n  %s"
              % (ROOM, "\n  ".join(wrong)))

        w0, w1 = t_all + WINDOW_S[0], t_all + WINDOW_S[1]
        calls.check_before_bye(w1, "the audio window ends", 0.2)
        calls.finish()

        t_an = time.monotonic()
        audio = check_audio(eps, w0, w1)
        log("audio analysis took %.2f s" % (time.monotonic() - t_an))
        stream = []
        for p in PARTIES:
            stream += check_stream(p, eps[p.name], ports[p.name], w0, w1)
        check(not audio and not stream, "\n  ".join(
            (["audio while all are in:"] + audio if audio else []) +
            (["RTP from focusd:"] + stream if stream else [])))


if __name__ == "__main__":
    harness.run_main(main)
