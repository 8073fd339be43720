#!/usr/bin/env python3
"""DTMF in an ordinary conference: RFC 4733 telephone-events are never
mixed, and each digit is reported once (an INFO line in focusd's log and
conference.show's rtp.rx_dtmf); in-band DTMF tones are just audio, mixed
like a voice, and neither detected nor counted.

focusd runs with --auto-create. Two endpoints join room1, each with its
own SDP offer sent by uac_invite_sdp_file.xml (offer.sdp in its SIPp work
dir; the call lingers its time from PARTIES, then BYE):
  alice  a keypad.Phone with telephone-event PT 101; offers RTP/AVP 0 101
         (0 PCMU/8000, 101 telephone-event/8000, fmtp 0-15); talks
         500 Hz (-12 dBFS, PCMU) whenever she is not keying;
  bob    a PCMU endpoint (mediacheck.TimedEndpoint, kernel arrival
         stamps) offering RTP/AVP 0 only; sends silence and records what
         he hears.

Asserted:
- alice's 200 answers "m=audio P RTP/AVP 0 101" with a=rtpmap:101
  telephone-event/8000; bob's "m=audio P RTP/AVP 0" with no
  telephone-event (each sdpcall.answer(): application/sdp, that one
  m-line, P in --rtp-ports).
- alice keys 5 # 9 as telephone-events (keypad: 5 updates, the end packet
  three times, 100 ms of silence, per digit). Within DTMF_TIMEOUT_S
  conference.show room1 gives alice's leg rtp.rx_dtmf == 3 (each digit
  once, not once per end packet), bob's 0.
- Audio bob hears (Hann-windowed Goertzel over kernel arrival times):
  before the keying ([first key - 0.8 s, first key)) and after it
  ([last key + 0.3 s, + 0.7 s)) he hears alice's 500 Hz (>= -30 dBFS and
  20 dB over the noise probes: the path is live, so the next check can
  fail); in a window from DIGIT_PAD_S before each digit's first event
  packet to DIGIT_PAD_S after its last frame (the 100 ms of silence after
  the end packets; 0.56 s, the digit in its middle where the Hann window
  weighs it fully), every row/column frequency of 5, # and 9 (770, 852,
  941, 1336, 1477 Hz) is under -45 dBFS and 25 dB under the quieter of the
  two 500 Hz levels: the events are not mixed, nor turned into tones.
- Then alice keys 1 in-band (100 ms of 697 + 1209 Hz, -10 dBFS each, as
  PCMU): in bob's 20 ms packets that arrived from the tone's first frame
  to KEY_TAIL_S after its last, at least MIN_TONE_PACKETS have both
  697 and 1209 Hz >= -30 dBFS (mixed like voice). STABLE_S later alice's
  rx_dtmf is still 3 and bob's 0 (in-band DTMF is not detected in a
  conference), and alice's rx_lost is 0: the events' sequence numbers
  are not lost audio.
- focusd's log has exactly three "conference room1: URI keyed 'D'" lines
  (INFO), in order 5, #, 9, each URI alice's conference.show uri; no
  other conference's keyed lines.
- Both SIPp calls end with exit status 0 and focusd exits 0 on SIGTERM.

Bounded: each join waits at most 5 s for its 200, rx_dtmf is polled for
at most 2 s, each call lingers 5.5 / 5 s and SIPp has its own 20 s
timeout; the test takes about 6 s. A run too slow for the lingers fails
as "too slow", not as a wrong result.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
FOCUSCTL=build/mgmt/focusctl \
python3 tests/integration/test_conference_dtmf.py (exit status 0 on pass).
"""

import os
import re
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import keypad  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpep  # noqa: E402
import sdpcall  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
TE_PT = 101
TALK_HZ = 500
EVENT_KEYS = "5#9"
TONE_KEY = "1"
# name, offered payloads (pt, rtpmap, fmtp), time in the call after the
# 200 (ms): alice joins first and stays longer.
PARTIES = [
    ("alice", [(0, "PCMU/8000", None),
               (TE_PT, "telephone-event/8000", "0-15")], 5500),
    ("bob", [(0, "PCMU/8000", None)], 5000),
]
TALK_BEFORE_S = 1.2      # after both joined, before the first key
BEFORE_S = 0.8           # the "before" window, ending at the first key
AFTER_AT_S = 0.3         # the "after" window, from the last key's end
AFTER_S = 0.7
KEY_TAIL_S = 0.3         # focusd's latency margin after a keying ends
DIGIT_PAD_S = 0.15       # around each event digit's packets
DTMF_TIMEOUT_S = 2.0     # for rx_dtmf to reach 3
TONES_AT_S = 1.1         # in-band keying, after the events' end
STABLE_S = 0.6           # after the in-band keying: rx_dtmf still 3
MIN_TONE_DBFS = mc.MIN_TONE_DBFS       # -30
ABSENT_DBFS = mc.ABSENT_DBFS           # -45
ABSENT_UNDER_DB = mc.ABSENT_UNDER_DB   # 25
MIN_TONE_PACKETS = 3     # of the 5 frames of in-band tone
KEYED_RE = re.compile(r" info sig: conference (\S+): (\S+) keyed '(.)'$")


def check_answer(fd, name, resp, te):
    """The 200's SDP (sdpcall.answer()): PCMU, plus telephone-event at
    TE_PT if offered. Returns focusd's RTP port."""
    sdp, m = sdpcall.answer(fd, name, resp, [0, TE_PT] if te else [0])
    te_maps = [a for a in sc.sdp_attrs(sdp, m, "rtpmap")
               if "telephone-event" in a.lower()]
    if te:
        want_m = "m=audio %d RTP/AVP 0 %d" % (m["port"], TE_PT)
        want_te = ["%d telephone-event/8000" % TE_PT]
    else:
        want_m = "m=audio %d RTP/AVP 0" % m["port"]
        want_te = []
    check(m["line"] == want_m and te_maps == want_te,
          "%s: answered %r with telephone-event rtpmaps %r, expected %r "
          "and %r\n%s" % (name, m["line"], te_maps, want_m, want_te,
                          resp.body))
    log("%s: answer %s | %s" % (name, m["line"],
                                "; ".join(sc.sdp_attrs(sdp, m, "rtpmap"))))
    return m["port"]


def join(calls, ep, payloads, linger_ms):
    """INVITE with ep's offer (ep receiving), wait for the 200, start
    sending."""
    te = any("telephone-event" in r for _, r, _ in payloads)
    port, t = calls.join(ep, sdpcall.offer(ep.name, ep.port, payloads,
                                           "dtmf"), linger_ms,
                         lambda resp: check_answer(calls.fd, ep.name, resp,
                                                   te))
    log("%s joined at %.2f s: from :%d to focusd :%d" % (ep.name, t,
                                                         ep.port, port))


def dtmf_counts(fd, ports):
    """{name: rx_dtmf} of each leg in conference.show (None: no rtp)."""
    show = mc.show(fd, ROOM)
    out = {}
    for name, port in ports.items():
        r = mc.leg(show, port).get("rtp")
        out[name] = r.get("rx_dtmf") if isinstance(r, dict) else None
    return out


def keyed_lines(fd):
    """[(conference, uri, digit)] of focusd's 'keyed' INFO lines."""
    with open(fd.log_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    out = []
    for line in text.splitlines():
        m = KEYED_RE.search(line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3)))
    return out


def key_span(phone, digits):
    """phone.keyed's entries (digit, first, last send time) of the digits
    just keyed, its last ones; fails if they are not all there."""
    got = phone.keyed[-len(digits):]
    check("".join(d for d, _, _ in got) == digits, "%s: keyed %r, expected "
          "the last entries to be %r" % (phone.name, phone.keyed, digits))
    return got


def packet_levels(ep, w0, w1, freqs):
    """[(arrival t, {freq: dBFS})] of each PCMU packet ep got in
    [w0, w1)."""
    out = []
    for p in ep.packets(w0, w1):
        if p.pt != rtpep.PT_PCMU:
            continue
        s = rtpep.mulaw_decode_bytes(p.payload)
        out.append((p.t, {f: rtpep.goertzel_dbfs(s, f) for f in freqs}))
    return out


def main():
    clock = mc.Clock()
    alice = keypad.Phone(clock, te_pt=TE_PT, name="alice", freq=TALK_HZ,
                         max_duration=40)
    bob = mc.TimedEndpoint(clock, name="bob", max_duration=40)
    with harness.Focusd(auto_create=True) as fd, \
            sdpcall.Calls(fd, clock, ROOM) as calls:
        eps = {"alice": calls.add(alice.start()),
               "bob": calls.add(bob.start())}
        for name, payloads, linger in PARTIES:
            join(calls, eps[name], payloads, linger)
        ports = calls.ports
        t_all = calls.span()[0]
        show = calls.show()
        alice_uri = mc.leg(show, ports["alice"]).get("uri")
        c0 = dtmf_counts(fd, ports)
        check(c0 == {"alice": 0, "bob": 0}, "conference.show %s: "
              "rx_dtmf %r before anyone keyed, expected 0 each"
              % (ROOM, c0))

        # -- telephone-events: 5 # 9
        clock.sleep_until(t_all + TALK_BEFORE_S)
        alice.key_events(EVENT_KEYS)
        ev_keyed = key_span(alice, EVENT_KEYS)
        k0, k1 = ev_keyed[0][1], ev_keyed[-1][2]
        te = [x for x in alice.te_sent if x[0] >= k0]
        log("alice keyed %s as events in [%.2f, %.2f]: %d telephone-"
            "event packets, %d with E" % (EVENT_KEYS, k0, k1, len(te),
                                         sum(1 for x in te if x[4])))
        counts = {}

        def three():
            counts.update(dtmf_counts(fd, ports))
            return counts.get("alice") == len(EVENT_KEYS)
        sc.wait_until(three, DTMF_TIMEOUT_S,
                      "conference.show %s: alice's rtp.rx_dtmf == %d "
                      "(one per digit of %s)" % (ROOM, len(EVENT_KEYS),
                                                 EVENT_KEYS),
                      lambda: "rx_dtmf %r" % counts)
        log("rx_dtmf %r at %.2f s" % (counts, clock.now()))
        check(counts.get("bob") == 0, "conference.show %s: bob's "
              "rx_dtmf %r, expected 0 (he keyed nothing)"
              % (ROOM, counts.get("bob")))

        # -- in-band: 1
        clock.sleep_until(k1 + TONES_AT_S)
        alice.key_tones(TONE_KEY)
        tone_keyed = key_span(alice, TONE_KEY)
        i0, i1 = tone_keyed[0][1], tone_keyed[-1][2]
        log("alice keyed %s in-band in [%.2f, %.2f]" % (TONE_KEY, i0,
                                                         i1))
        clock.sleep_until(i1 + STABLE_S)
        c2 = dtmf_counts(fd, ports)
        check(c2 == {"alice": len(EVENT_KEYS), "bob": 0},
              "conference.show %s: rx_dtmf %r %.1f s after alice keyed "
              "%s in-band, expected alice %d (the events only) and bob "
              "0: in-band DTMF is audio in a conference"
              % (ROOM, c2, STABLE_S, TONE_KEY, len(EVENT_KEYS)))
        for name, port in sorted(ports.items()):
            log("%s's rtp counters: %r" % (name, mc.leg(
                mc.show(fd, ROOM), port).get("rtp")))
        # The events took the audio's sequence numbers (RFC 4733
        # 2.1): their places are held, not counted lost.
        a_rtp = mc.leg(mc.show(fd, ROOM), ports["alice"]).get("rtp")
        check(isinstance(a_rtp, dict) and a_rtp.get("rx_lost") == 0,
              "conference.show %s: alice's rtp.rx_lost %r after %d "
              "telephone-event packets, expected 0 (events are not "
              "lost audio)" % (ROOM, (a_rtp or {}).get("rx_lost"),
                               len(te)))
        calls.check_before_bye(clock.now(), "the checks ended", 0.1)

        calls.finish()

        # -- the log
        keyed = keyed_lines(fd)
        want = [(ROOM, alice_uri, d) for d in EVENT_KEYS]
        check(keyed == want, "focusd log: 'conference ... keyed' lines "
              "%r, expected exactly %r (alice's telephone-events, each "
              "once, in order; not the in-band %s)"
              % (keyed, want, TONE_KEY))
        log("focusd log: %s" % "; ".join("%s %s keyed %s" % k
                                         for k in keyed))

        # -- what bob heard
        errors = []
        absent = sorted({f for d in EVENT_KEYS
                         for f in keypad.DTMF_FREQS[d]})
        talk = {}
        for what, w0, w1 in (("before the keying", k0 - BEFORE_S, k0),
                             ("after the keying", k1 + AFTER_AT_S,
                              k1 + AFTER_AT_S + AFTER_S)):
            lv, noise, fill = mc.levels(bob, [TALK_HZ] + absent, w0, w1)
            log("bob %s [%.2f, %.2f) %s" % (what, w0, w1,
                                           mc.describe("bob", lv, noise,
                                                       fill)))
            talk[what] = lv[TALK_HZ]
            if fill < mc.MIN_FILL:
                errors.append("%s: bob got only %.0f%% of the window's "
                              "samples" % (what, 100 * fill))
            if not mc.heard(lv, noise, TALK_HZ):
                errors.append("%s: bob does not hear alice's %d Hz: "
                              "%.1f dBFS, noise %.1f (expected >= %.0f "
                              "and %.0f dB over the noise)"
                              % (what, TALK_HZ, lv[TALK_HZ], noise,
                                 MIN_TONE_DBFS, mc.MIN_SNR_DB))
        loud = min(talk.values())
        for d, t0, t1 in ev_keyed:
            # one window per digit, its packets in the middle (the
            # Hann window all but ignores a window's edges)
            w0, w1 = t0 - DIGIT_PAD_S, t1 + DIGIT_PAD_S
            lv, noise, fill = mc.levels(bob, absent, w0, w1)
            log("bob while alice keyed %r as an event [%.2f, %.2f) %s"
                % (d, w0, w1, mc.describe("bob", lv, noise, fill)))
            if fill < mc.MIN_FILL:
                errors.append("while alice keyed %r as an event, bob "
                              "got only %.0f%% of the window's samples"
                              % (d, 100 * fill))
            for f in absent:
                if lv[f] > ABSENT_DBFS or \
                        lv[f] > loud - ABSENT_UNDER_DB:
                    errors.append(
                        "while alice keyed %r as a telephone-event, bob "
                        "hears %d Hz at %.1f dBFS in [%.2f, %.2f); "
                        "expected under %.0f dBFS and %.0f dB under "
                        "alice's %d Hz (%.1f): events are not mixed"
                        % (d, f, lv[f], w0, w1, ABSENT_DBFS,
                           ABSENT_UNDER_DB, TALK_HZ, loud))
        lo, hi = keypad.DTMF_FREQS[TONE_KEY]
        pl = packet_levels(bob, i0, i1 + KEY_TAIL_S, (lo, hi))
        both = [t for t, v in pl if v[lo] >= MIN_TONE_DBFS and
                v[hi] >= MIN_TONE_DBFS]
        desc = " ".join("%.0f/%.0f" % (v[lo], v[hi]) for _, v in pl)
        log("bob's packets while alice keyed %s in-band [%.2f, %.2f): "
            "%d Hz/%d Hz dBFS per packet: %s"
            % (TONE_KEY, i0, i1 + KEY_TAIL_S, lo, hi, desc))
        if len(both) < MIN_TONE_PACKETS:
            errors.append("while alice keyed %s in-band, %d of bob's %d "
                          "packets in [%.2f, %.2f) have both %d and %d "
                          "Hz >= %.0f dBFS, expected >= %d (in-band "
                          "DTMF is mixed like voice); %d Hz/%d Hz per "
                          "packet: %s"
                          % (TONE_KEY, len(both), len(pl), i0,
                             i1 + KEY_TAIL_S, lo, hi, MIN_TONE_DBFS,
                             MIN_TONE_PACKETS, lo, hi, desc))
        if errors:
            fail("%d audio problems:\n- %s" % (len(errors),
                                               "\n- ".join(errors)))
        log("alice sent %d packets (%d late frames, %d telephone-event)"
            ", bob %d (%d late)" % (alice.sent, alice.late_frames,
                                    len(alice.te_sent), bob.sent,
                                    bob.late_frames))


if __name__ == "__main__":
    harness.run_main(main)
