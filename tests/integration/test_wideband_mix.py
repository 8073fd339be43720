#!/usr/bin/env python3
"""Opus, G.722 and PCMU legs in one 16 kHz conference: each hears the
other two and not itself, and wideband audio passes between the wideband
legs but not to the narrowband one.

focusd runs with --auto-create --mix-rate 16000. Three endpoints
(rtpcodecs.CodecEndpoint, kernel arrival stamps) join room1, each with its
own SDP offer sent by uac_invite_sdp_file.xml (offer.sdp in its SIPp work
dir; the call lingers its time from PARTIES, then BYE):
  alice  offers RTP/AVP 111 9 0 (111 opus/48000/2 with fmtp
         minptime=10;useinbandfec=1, 9 G722/8000, 0 PCMU/8000); plays
         500 Hz + 5000 Hz, Opus from 48 kHz PCM, 20 ms frames, RTP
         timestamp +960;
  bob    offers RTP/AVP 9 0 8; plays 1100 Hz + 6000 Hz, G.722 (SpanDSP,
         64 kbit/s, 16 kHz PCM), 160-byte payloads, timestamp +160;
  carol  offers RTP/AVP 0 8; plays 1900 Hz, PCMU, timestamp +160.
Every tone is at TONE_DBFS (-18 dBFS), so nobody's mix of up to four
tones can clip (peak -6 dBFS).

Asserted:
- Each 200 (sdpcall.check_answer()) carries application/sdp with one
  m=audio on a port in --rtp-ports, RTP/AVP, exactly one payload type,
  the offerer's first: alice 111 with a=rtpmap:111 opus/48000/2 (any
  a=fmtp only for 111), bob 9 with a=rtpmap:9 G722/8000, carol 0 with
  a=rtpmap:0 PCMU/8000; a=ptime:20; sendrecv; c=IN IP4 127.0.0.1.
- conference.show, while all three are in: three participants, codecs
  opus / G722 / PCMU on the answered ports.
- Audio in a 2 s window starting 0.5 s after the last join, decoded by
  each listener with its own codec (alice Opus at 48 kHz, bob G.722 at
  16 kHz, carol mu-law at 8 kHz), Goertzel levels (Hann window):
  alice hears 1100, 6000 (bob) and 1900 (carol); bob hears 500, 5000
  (alice) and 1900 (carol); carol hears 500 (alice) and 1100 (bob).
  "Hears": >= -30 dBFS and >= 20 dB over the loudest noise probe (odd
  multiples of 50 Hz, away from every tone and distortion line; above
  4 kHz too for the wideband listeners). Each listener's own tones are
  at least 20 dB under every tone it hears (mix-minus). carol (8 kHz) does
  not get the wideband tones folded down: 3000 Hz (alias of 5000) and
  2000 Hz (alias of 6000) are under -45 dBFS and 25 dB under the tones
  she hears; alice and bob (16 kHz and up) do not hear carol's 1900 Hz
  imaged by upsampling: 6100 Hz is under the same limits. Each listener
  gets >= 80 % of the window's samples, and no decoded sample in the
  window reaches 32000 (the mix does not clip).
- The RTP focusd sends each leg, over the whole call: all from the
  answered port, V=2, the answered PT (111 / 9 / 0), one SSRC, seq +1 and
  timestamp +960 (Opus) / +160 (G.722, PCMU) per packet; G.722 and PCMU
  payloads 160 bytes; every Opus packet 20 ms (960 samples at 48 kHz by
  its TOC) and decodable by libopus; at least 100 packets each.
- Every SIPp call ends with exit status 0 and focusd exits 0 on SIGTERM.

Bounded: each join waits at most 5 s for its 200, each call lingers 4.4
to 5 s and SIPp has its own 20 s timeout; the test takes about 6 s.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_wideband_mix.py (exit status 0 on pass).
"""

import math
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
TONE_DBFS = -18.0
OPUS_PT = 111

# name, codec, tones (Hz), offered payload types (rtpmap, fmtp), time in
# the call after the 200 (ms): earlier joiners stay longer.
PARTIES = [
    ("alice", rc.OPUS(OPUS_PT, 48000), (500, 5000),
     [(OPUS_PT, "opus/48000/2", "minptime=10;useinbandfec=1"),
      (9, "G722/8000", None), (0, "PCMU/8000", None)], 5000),
    ("bob", rc.G722, (1100, 6000),
     [(9, "G722/8000", None), (0, "PCMU/8000", None),
      (8, "PCMA/8000", None)], 4700),
    ("carol", rc.PCMU, (1900,),
     [(0, "PCMU/8000", None), (8, "PCMA/8000", None)], 4400),
]
HEARS = {"alice": {"bob": (1100, 6000), "carol": (1900,)},
         "bob": {"alice": (500, 5000), "carol": (1900,)},
         "carol": {"alice": (500,), "bob": (1100,)}}
# What an 8 kHz listener would hear of the wideband tones if they were
# folded down instead of filtered out: 8000 - f.
ALIASES_8K = {5000: 3000, 6000: 2000}
# What a 16 kHz listener would hear of an 8 kHz talker's tone f if the
# upsampling left its image in: 8000 - f.
NARROWBAND = {"carol"}
SHOW_CODEC = {"alice": "opus", "bob": "G722", "carol": "PCMU"}
MAX_PEAK = 32000             # decoded samples stay below: nothing clips

NOISE_NB = (1250, 2050, 2850, 3450)
NOISE_WB = NOISE_NB + (4450, 5450, 6650, 7250)
WINDOW_S = (0.5, 2.5)        # after the last join
MGMT_AT_S = 0.3
MIN_OVERLAP_S = 3.0
OWN_REJECT_DB = 20.0
MIN_PACKETS = 100


def join(calls, name, codec, tones, payloads, linger_ms):
    """Endpoint receiving, INVITE with its offer, wait for the 200
    (sdpcall.check_answer()), start sending. Returns the endpoint."""
    ep = rc.CodecEndpoint(calls.clock, codec,
                          [(f, TONE_DBFS) for f in tones], name=name,
                          max_duration=40).start()
    port, t = calls.join(ep, sdpcall.offer(name, ep.port, payloads,
                                           "wideband"), linger_ms)
    log("%s joined at %.2f s: %s, %s Hz, from :%d to focusd :%d"
        % (name, t, codec, "+".join(str(f) for f in tones), ep.port, port))
    return ep


def check_audio(eps, w0, w1):
    """Who hears whom in [w0, w1); returns the problems."""
    errors = []
    own = {name: tones for name, _, tones, _, _ in PARTIES}
    for name, _, tones, _, _ in PARTIES:
        ep = eps[name]
        wide = ep.codec.rate > 8000
        want = [f for o in sorted(HEARS[name]) for f in HEARS[name][o]]
        if wide:
            absent = {8000 - f: "%s's %d Hz imaged by upsampling" % (o, f)
                      for o in sorted(HEARS[name]) if o in NARROWBAND
                      for f in HEARS[name][o]}
        else:
            absent = {f: "the wideband %d Hz folded down" % hf
                      for hf, f in ALIASES_8K.items()}
        freqs = sorted(set(want) | set(own[name]) | set(absent))
        lv, noise, fill = rc.levels(ep, freqs, NOISE_WB if wide else
                                    NOISE_NB, w0, w1)
        peak = max((abs(x) for x in ep.audio(w0, w1)), default=0)
        log("heard [%.2f, %.2f) %s | peak %.1f dBFS"
            % (w0, w1, rc.describe(name, lv, noise, fill),
               20 * math.log10(max(peak, 1) / 32768.0)))
        if ep.codec.name == "opus":
            bws = {}
            for p in ep.packets(w0, w1):
                bw = rc.opus_packet_info(p.payload)[1]
                bws[bw] = bws.get(bw, 0) + 1
            log("%s: Opus audio bandwidth of focusd's packets in the "
                "window: %s" % (name, ", ".join("%s %d" % kv for kv in
                                                sorted(bws.items()))))
        if peak >= MAX_PEAK:
            errors.append("%s: a decoded sample reaches %d: the mix clips"
                          % (name, peak))
        if fill < mc.MIN_FILL:
            errors.append("%s got only %.0f%% of the window's samples"
                          % (name, 100 * fill))
        for o in sorted(HEARS[name]):
            for f in HEARS[name][o]:
                if not mc.heard(lv, noise, f):
                    errors.append("%s does not hear %s's %d Hz: %.1f dBFS,"
                                  " noise %.1f (needs >= %.0f and %.0f dB "
                                  "over the noise)"
                                  % (name, o, f, lv[f], noise,
                                     mc.MIN_TONE_DBFS, mc.MIN_SNR_DB))
        # own tones and aliases are judged against the tones heard (one
        # not heard is an error above already)
        quietest = min([lv[f] for f in want if mc.heard(lv, noise, f)] or
                       [mc.MIN_TONE_DBFS])
        for f in own[name]:
            if quietest - lv[f] < OWN_REJECT_DB:
                errors.append("%s hears its own %d Hz at %.1f dBFS, only "
                              "%.1f dB under the quietest tone it should "
                              "hear (mix-minus needs >= %.0f)"
                              % (name, f, lv[f], quietest - lv[f],
                                 OWN_REJECT_DB))
        for f, what in sorted(absent.items()):
            if lv[f] > mc.ABSENT_DBFS or \
                    lv[f] > quietest - mc.ABSENT_UNDER_DB:
                errors.append("%s (%d Hz) hears %d Hz at %.1f dBFS: %s "
                              "(must be under %.0f dBFS and %.0f dB under "
                              "%.1f)" % (name, ep.codec.rate, f, lv[f], what,
                                         mc.ABSENT_DBFS, mc.ABSENT_UNDER_DB,
                                         quietest))
    return errors


def check_stream(ep, focus_port):
    """Every packet focusd sent ep over the whole call."""
    codec = ep.codec
    errors, pk = sdpcall.stream_errors(ep, focus_port, codec.pt,
                                       codec.ts_step, MIN_PACKETS)
    if pk is None:
        return errors
    if codec.name == "opus":
        info = [(p, rc.opus_packet_info(p.payload)) for p in pk]
        not20 = [(p, i) for p, i in info if i[0] != 960]
        if not not20:
            bws = {}
            for _, i in info:
                bws[i[1]] = bws.get(i[1], 0) + 1
            log("%s: Opus from focusd: %d packets of 960 samples, %d-%d "
                "bytes, bandwidths %s" % (
                    ep.name, len(pk), min(len(p.payload) for p in pk),
                    max(len(p.payload) for p in pk),
                    ", ".join("%s %d" % kv for kv in sorted(bws.items()))))
        else:
            p, i = not20[0]
            errors.append("%s: %d of %d Opus packets are not 20 ms (960 "
                          "samples at 48 kHz), e.g. %d samples, %d bytes, "
                          "%s" % (ep.name, len(not20), len(pk), i[0],
                                  len(p.payload), i[1]))
    else:
        size = codec.frame if codec.name == "PCMU" else codec.frame // 2
        odd = [p for p in pk if len(p.payload) != size]
        if odd:
            errors.append("%s: %d of %d payloads not %d bytes, e.g. %d"
                          % (ep.name, len(odd), len(pk), size,
                             len(odd[0].payload)))
    secs = sdpcall.decoded_s(ep, errors)
    if secs is not None:
        log("%s: %d packets from focusd (%.2f s of audio), sent %d (%d "
            "late)" % (ep.name, len(pk), secs, ep.sent, ep.late_frames))
    return errors


def main():
    clock = mc.Clock()
    with harness.Focusd(auto_create=True,
                        extra_args=["--mix-rate", str(MIX_RATE)]) as fd, \
            sdpcall.Calls(fd, clock, ROOM) as calls:
        for name, codec, tones, payloads, linger in PARTIES:
            join(calls, name, codec, tones, payloads, linger)
        calls.check_ports_differ()
        t_all = calls.overlap(MIN_OVERLAP_S)[0]
        eps, ports = calls.eps, calls.ports

        clock.sleep_until(t_all + MGMT_AT_S)
        show = calls.show()
        for name, port in sorted(ports.items()):
            p = mc.leg(show, port)
            check(p.get("codec") == SHOW_CODEC[name], "conference.show %s: "
                  "%s's leg (:%d) has codec %r, expected %r"
                  % (ROOM, name, port, p.get("codec"), SHOW_CODEC[name]))

        w0, w1 = t_all + WINDOW_S[0], t_all + WINDOW_S[1]
        calls.check_before_bye(w1, "the audio window ends", 0.2)
        # each endpoint stops sending at its BYE; analysis waits for the
        # calls to end so it does not compete with the senders
        calls.finish()

        t_an = time.monotonic()
        audio = check_audio(eps, w0, w1)
        log("audio analysis took %.2f s" % (time.monotonic() - t_an))
        stream = []
        for name, ep in sorted(eps.items()):
            stream += check_stream(ep, ports[name])
        check(not audio and not stream, "\n  ".join(
            (["audio while all three are in:"] + audio if audio else []) +
            (["RTP from focusd:"] + stream if stream else [])))


if __name__ == "__main__":
    harness.run_main(main)
