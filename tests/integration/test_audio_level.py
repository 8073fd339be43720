#!/usr/bin/env python3
"""RFC 6464 client-to-mixer audio level: a leg whose packets say they are
silence (level >= 50 -dBov) is not decoded, so nobody hears it, until it
says it is loud; the extmap is answered recvonly; Opus packets whose SILK
voice-activity flag is 0 count as silence too.

focusd runs with --auto-create (mixing at its default 16 kHz). Five
endpoints (LevelEndpoint: an rtpcodecs.CodecEndpoint, kernel arrival
stamps, whose header hook adds an RFC 8285 header extension with the
ssrc-audio-level element to every packet it sends, at a level the test
can change mid-call) join room1, each with its own SDP offer sent by
uac_invite_sdp_file.xml (offer.sdp in its SIPp work dir; the call lingers
its time from PARTIES, then BYE):
  alice  offers PCMU with a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-
         audio-level; plays 1100 Hz, every packet carrying the one-byte
         form (profile 0xBEDE, element 0x10, V=0, level 127);
  bob    offers PCMU with a=extmap:20 (the same URN; ID 20 needs the
         two-byte form); plays 1900 Hz, every packet carrying the
         two-byte form (profile 0x1000, element ID 20, length 1, V=1,
         level 20);
  carol  offers PCMU, no extmap; plays 700 Hz, no extension;
  dave   offers RTP/AVP 111 (opus/48000/2) with a=extmap:5/recvonly (the
         URN): he would only receive levels, so focusd must not take it;
         plays 1000 Hz at FAINT_DBFS (-70 dBFS), libopus at 48 kHz, DTX
         off, no extension: hybrid (SILK + CELT) packets, config 15, whose
         SILK voice-activity flag is 0 (the test insists that is what it
         sent);
  erin   offers PCMU with a=extmap:200/sendonly (the URN); plays 2450 Hz,
         every packet carrying the two-byte form with an element focusd
         was not offered (ID 2, 2 bytes) before the level element (ID 200,
         V=0, level 127), for the whole call.
The tones are at TONE_DBFS (-18 dBFS) unless said.

Asserted:
- Each 200 (sdpcall.answer()) carries application/sdp with one m=audio
  on a port in --rtp-ports with the offered payload type only, and its
  a=extmap lines are exactly: alice
  ["1/recvonly urn:ietf:params:rtp-hdrext:ssrc-audio-level"], bob
  ["20/recvonly ..."], erin ["200/recvonly ..."], carol and dave none
  (no "extmap" anywhere in the body).
- Phase 1, audio in a 2 s window starting 0.5 s after the last join
  (Goertzel, Hann window, at each listener's codec rate: 8 kHz for the
  PCMU legs, 48 kHz for dave): alice, dave and erin hear bob's 1900 and
  carol's 700; bob hears 700; carol hears 1900. "Hears": >= -30 dBFS and
  >= 20 dB over the loudest noise probe (odd multiples of 50 Hz), with
  >= 80 % of the window's samples. Nobody hears alice's 1100 Hz, erin's
  2450 Hz, dave's 1000 Hz, or its own tone: each is under -45 dBFS and
  25 dB under the quietest tone that listener hears.
- conference.show at the end of phase 1: alice's rtp.rx_silent is >= 90 %
  of her rtp.rx_packets (>= 100 packets); bob's and carol's rx_silent are
  0; erin's rx_silent is >= 90 % of her rx_packets; dave's rx_silent is
  more than half of his rx_packets (SILK VAD flag 0). Everyone has >= 100
  rx_packets.
- Phase 2: alice marks her packets level 30 (V=1) from then on. In a 1 s
  window starting 0.3 s after the switch: bob, carol, dave and erin hear
  1100 Hz; alice hears 1900 and 700 and not her own 1100 (she is a
  talker now: mix-minus); everyone still hears bob and carol (but not
  themselves), and nobody hears erin or dave, as above.
- conference.show at the end of phase 2: alice's rx_silent is at most the
  number of level-127 packets she ever sent (no level-30 packet was taken
  for silence) and her rx_packets less rx_silent grew by >= 80 % of the
  level-30 packets sent in between; bob's and carol's rx_silent are still
  0; erin's still >= 90 % and dave's still more than half of their
  rx_packets.
- The test's own preconditions: the extensions it builds are the RFC
  8285 bytes and rtpep.parse_rtp finds the payload after them; >= 95 %
  of dave's packets were SILK or hybrid (TOC config < 16) with the VAD
  flag 0, as libopus makes of a faint tone.
- Every SIPp call ends with exit status 0 and focusd exits 0 on SIGTERM.

Bounded: each join waits at most 5 s for its 200, each call lingers 5.0
to 5.8 s (earlier joiners longer) and SIPp has its own 20 s timeout; the
test takes about 7 s.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
FOCUSCTL=build/mgmt/focusctl python3 tests/integration/test_audio_level.py
(exit status 0 on pass).
"""

import collections
import os
import struct
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpcodecs as rc  # noqa: E402
import rtpep  # noqa: E402
import sdpcall  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, log  # noqa: E402

ROOM = "room1"
TONE_DBFS = -18.0
FAINT_DBFS = -70.0
OPUS_PT = 111
URN = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
LEVEL_SILENT = 127           # alice in phase 1: "silence" (>= 50)
LEVEL_ALICE_LOUD = 30        # alice in phase 2
LEVEL_BOB = 20               # bob throughout

# The element erin's packets carry before the audio level (two-byte form:
# ID 2, length 2): one focusd was not offered, so it must skip it (RFC
# 8285: elements with an unknown ID are ignored).
ERIN_OTHER = bytes([2, 2, 0x12, 0x34])

# name, codec, tones [(Hz, dBFS)], the offer's extmap value (None: no
# a=extmap), the extension sent (ID, two-byte form, elements before the
# level's) or None, the level first sent, the a=extmap values expected in
# the answer, time in the call after the 200 (ms): earlier joiners stay
# longer.
PARTIES = [
    ("alice", rc.PCMU, [(1100, TONE_DBFS)], "1 " + URN, (1, False, b""),
     LEVEL_SILENT, ["1/recvonly " + URN], 5800),
    ("bob", rc.PCMU, [(1900, TONE_DBFS)], "20 " + URN, (20, True, b""),
     LEVEL_BOB, ["20/recvonly " + URN], 5600),
    ("carol", rc.PCMU, [(700, TONE_DBFS)], None, None, None, [], 5400),
    ("dave", rc.OPUS(OPUS_PT, 48000), [(1000, FAINT_DBFS)],
     "5/recvonly " + URN, None, None, [], 5200),
    ("erin", rc.PCMU, [(2450, TONE_DBFS)], "200/sendonly " + URN,
     (200, True, ERIN_OTHER), LEVEL_SILENT, ["200/recvonly " + URN], 5000),
]
TONE = {name: tones[0][0] for name, _, tones, _, _, _, _, _ in PARTIES}
# Who hears whom (phase 1: alice is marked silent; phase 2: loud).
HEARS_1 = {"alice": ("bob", "carol"), "bob": ("carol",),
           "carol": ("bob",), "dave": ("bob", "carol"),
           "erin": ("bob", "carol")}
HEARS_2 = {"alice": ("bob", "carol"), "bob": ("alice", "carol"),
           "carol": ("alice", "bob"), "dave": ("alice", "bob", "carol"),
           "erin": ("alice", "bob", "carol")}

NOISE = (1250, 2050, 2850, 3450)
WINDOW_1_S = (0.5, 2.5)      # after the last join
SHOW_1_S = 2.6               # after the last join
SWITCH_S = 2.7               # after the last join
WINDOW_2_S = (0.3, 1.3)      # after the switch
SHOW_2_S = 1.4               # after the switch
MIN_OVERLAP_S = SWITCH_S + SHOW_2_S + 0.3
MIN_PACKETS = 100
SILENT_SHARE = 0.9           # rx_silent / rx_packets marked level 127
LOUD_SHARE = 0.8             # of alice's level-30 packets counted


# ---------------------------------------------------------------- RTP

def level_ext(ext_id, two_byte, level, vad, before=b""):
    """An RFC 8285 header extension (the 4-byte header and its data,
    padded with zero bytes to 32-bit words): the elements `before`
    (encoded already), then the ssrc-audio-level element: V (vad) in the
    top bit, the level (-dBov) below."""
    value = (0x80 if vad else 0) | level
    if two_byte:
        data = before + bytes([ext_id, 1, value])
        profile = 0x1000
    else:
        check(1 <= ext_id <= 14, "one-byte form with ID %d" % ext_id)
        data = before + bytes([ext_id << 4, value])   # length - 1 = 0
        profile = 0xBEDE
    data += bytes(-len(data) % 4)
    return struct.pack("!HH", profile, len(data) // 4) + data


class LevelEndpoint(rc.CodecEndpoint):
    """A CodecEndpoint that (ext given) carries the audio level in every
    packet it sends; set `level` to change it from the next packet on.
    Counts the packets sent per level (sent_levels) and, for Opus, per
    (TOC config, SILK VAD flag of the first frame) (sent_toc)."""

    def __init__(self, clock, codec, tones, ext=None, level=None, **kw):
        super().__init__(clock, codec, tones, **kw)
        self.ext = ext
        self.level = level
        self.sent_levels = collections.Counter()
        self.sent_toc = collections.Counter()
        self._pending = None
        self._toc = None

    def _header(self, k):
        h = super()._header(k)
        self._pending = None
        if self.ext is None:
            return h
        level = self.level
        self._pending = level
        return (bytes([h[0] | 0x10]) + h[1:] +
                level_ext(self.ext[0], self.ext[1], level, level < 50,
                          self.ext[2]))

    def _frame(self, k):
        p = super()._frame(k)
        if self.codec.name == "opus":
            self._toc = (p[0] >> 3, (p[1] >> 7) if len(p) > 1 else None)
        return p

    def _on_sent(self, k):
        if self._pending is not None:
            self.sent_levels[self._pending] += 1
        if self.codec.name == "opus":
            self.sent_toc[self._toc] += 1


def check_ext_encoding():
    """The extensions this test sends parse as RTP with the payload
    where it belongs (rtpep.parse_rtp skips the extension by its
    length), and their bytes are the RFC 8285 ones."""
    one = level_ext(1, False, 127, False)
    two = level_ext(20, True, 20, True)
    check(one == bytes.fromhex("bede0001107f0000"), "one-byte form %s"
          % one.hex())
    check(two == bytes.fromhex("1000000114019400"), "two-byte form %s"
          % two.hex())
    erin = level_ext(200, True, 127, False, ERIN_OTHER)
    check(erin == bytes.fromhex("1000000202021234c8017f00"), "two-byte "
          "form after another element %s" % erin.hex())
    for ext in (one, two, erin):
        pkt = struct.pack("!BBHII", 0x90, 0, 1, 160, 1) + ext + b"\xff" * 160
        p = rtpep.parse_rtp(pkt)
        check(p and p["extension"] and p["payload"] == b"\xff" * 160,
              "rtpep.parse_rtp of a packet with extension %s: %r"
              % (ext.hex(), p))


# ---------------------------------------------------------------- SIP

def check_answer(fd, name, resp, codec, want_extmap):
    """The 200's SDP (sdpcall.answer()): one m=audio with codec's PT
    only, on a port in --rtp-ports, and exactly the a=extmap lines
    want_extmap. Returns focusd's RTP port."""
    sdp, m = sdpcall.answer(fd, name, resp, [codec.pt])
    ext = sc.sdp_attrs(sdp, m, "extmap")
    check(ext == want_extmap, "%s: the answer's a=extmap %r, expected %r"
          "\n%s" % (name, ext, want_extmap, resp.body))
    if not want_extmap:
        check("extmap" not in resp.body.lower(), "%s: the answer mentions "
              "extmap, expected no extmap at all\n%s" % (name, resp.body))
    log("%s: answer %s | extmap %r" % (name, m["line"], ext))
    return m["port"]


def join(calls, party):
    """Endpoint receiving, INVITE with its offer, wait for the 200, start
    sending. Returns the endpoint."""
    name, codec, tones, extmap, ext, level, want, linger = party
    ep = LevelEndpoint(calls.clock, codec, tones, ext=ext, level=level,
                       name=name, max_duration=40).start()
    fmtp = "minptime=10;useinbandfec=1" if codec.name == "opus" else None
    sdp = sdpcall.offer(name, ep.port, [(codec.pt, codec.rtpmap, fmtp)],
                        "level", media_attrs=["extmap:" + extmap]
                        if extmap is not None else [])
    port, t = calls.join(ep, sdp, linger, lambda resp: check_answer(
        calls.fd, name, resp, codec, want))
    log("%s joined at %.2f s: %s, %s, extension %s level %s, from :%d to "
        "focusd :%d" % (name, t, codec, tones, ext, level, ep.port, port))
    return ep


# ---------------------------------------------------------------- checks

def check_audio(eps, hears, w0, w1, label):
    """Who hears whom in [w0, w1): each listener hears the tones of the
    parties hears[listener] names; every other party's tone (its own
    included) is under ABSENT_DBFS and ABSENT_UNDER_DB under the quietest
    tone it hears. Returns the problems."""
    errors = []
    freqs = sorted(TONE.values())
    for name in sorted(hears):
        ep = eps[name]
        lv, noise, fill = rc.levels(ep, freqs, NOISE, w0, w1)
        log("%s [%.2f, %.2f) %s" % (label, w0, w1,
                                   rc.describe(name, lv, noise, fill)))
        if fill < mc.MIN_FILL:
            errors.append("%s: %s got only %.0f%% of the window's samples, "
                          "expected >= %.0f%%" % (label, name, 100 * fill,
                                                  100 * mc.MIN_FILL))
        for o in hears[name]:
            f = TONE[o]
            if not mc.heard(lv, noise, f):
                errors.append("%s: %s does not hear %s's %d Hz: %.1f dBFS, "
                              "noise %.1f; expected >= %.0f dBFS and %.0f "
                              "dB over the noise" % (label, name, o, f,
                                                     lv[f], noise,
                                                     mc.MIN_TONE_DBFS,
                                                     mc.MIN_SNR_DB))
        # judged against the tones heard (one not heard is an error
        # above already)
        quietest = min([lv[TONE[o]] for o in hears[name]
                        if mc.heard(lv, noise, TONE[o])] or
                       [mc.MIN_TONE_DBFS])
        for o in sorted(TONE):
            if o in hears[name]:
                continue
            f = TONE[o]
            if lv[f] > mc.ABSENT_DBFS or \
                    lv[f] > quietest - mc.ABSENT_UNDER_DB:
                errors.append("%s: %s hears %s's %d Hz at %.1f dBFS; "
                              "expected under %.0f dBFS and %.0f dB under "
                              "the quietest tone it hears (%.1f)"
                              % (label, name, o, f, lv[f], mc.ABSENT_DBFS,
                                 mc.ABSENT_UNDER_DB, quietest))
    return errors


def counters(calls):
    """{name: the rtp object of its leg} from one conference.show (one
    participant per call)."""
    show = calls.show()
    out = {}
    for name, port in calls.ports.items():
        r = mc.rtp(mc.leg(show, port))
        for k in ("rx_packets", "rx_silent"):
            check(isinstance(r.get(k), int), "conference.show: %s's rtp.%s "
                  "is %r, expected an integer" % (name, k, r.get(k)))
        out[name] = r
    log("conference.show: %s" % "; ".join(
        "%s rx_packets %d rx_silent %d" % (n, r["rx_packets"],
                                           r["rx_silent"])
        for n, r in sorted(out.items())))
    return out


def check_counters(c, label, alice_min_share):
    """bob and carol: no packet silent; dave: most; erin: >= SILENT_SHARE
    of hers; alice: >= alice_min_share of hers (None: not checked
    here)."""
    errors = []
    for name, r in sorted(c.items()):
        if r["rx_packets"] < MIN_PACKETS:
            errors.append("%s: %s's rx_packets %d, expected >= %d"
                          % (label, name, r["rx_packets"], MIN_PACKETS))
    for name in ("bob", "carol"):
        if c[name]["rx_silent"] != 0:
            errors.append("%s: %s's rx_silent %d of %d packets, expected 0 "
                          "(%s)" % (label, name, c[name]["rx_silent"],
                                    c[name]["rx_packets"],
                                    "level %d: loud" % LEVEL_BOB
                                    if name == "bob" else "no extension"))
    d = c["dave"]
    if 2 * d["rx_silent"] <= d["rx_packets"]:
        errors.append("%s: dave's rx_silent %d of %d packets, expected more "
                      "than half (Opus, SILK VAD flag 0)"
                      % (label, d["rx_silent"], d["rx_packets"]))
    for name, share in (("alice", alice_min_share),
                        ("erin", SILENT_SHARE)):
        r = c[name]
        if share is not None and r["rx_silent"] < share * r["rx_packets"]:
            errors.append("%s: %s's rx_silent %d of %d packets, expected "
                          ">= %.0f%% (all marked level %d)"
                          % (label, name, r["rx_silent"], r["rx_packets"],
                             100 * share, LEVEL_SILENT))
    return errors


def check_dave_sent(ep):
    """What the test's libopus made of dave's faint tone: SILK or hybrid
    packets (TOC config < 16) with the VAD flag 0, or the rx_silent check
    on dave would not mean what it says."""
    total = sum(ep.sent_toc.values())
    silk_quiet = sum(n for (cfg, vad), n in ep.sent_toc.items()
                     if cfg < 16 and vad == 0)
    log("dave sent %d Opus packets, (TOC config, SILK VAD flag): %s"
        % (total, ", ".join("%s %d" % kv for kv in
                            sorted(ep.sent_toc.items(), key=str))))
    check(total >= MIN_PACKETS and silk_quiet >= 0.95 * total,
          "the test's own Opus encoder: %d of dave's %d packets are SILK or "
          "hybrid with VAD flag 0, expected >= 95%% (libopus changed its "
          "mode choice? the dave part of this test relies on it)"
          % (silk_quiet, total))


def main():
    check_ext_encoding()
    clock = mc.Clock()
    with harness.Focusd(auto_create=True) as fd, \
            sdpcall.Calls(fd, clock, ROOM) as calls:
        for party in PARTIES:
            join(calls, party)
        calls.check_ports_differ()
        t_all = calls.overlap(MIN_OVERLAP_S)[0]
        eps = calls.eps

        # Phase 1: alice marked silent.
        w1 = (t_all + WINDOW_1_S[0], t_all + WINDOW_1_S[1])
        clock.sleep_until(t_all + SHOW_1_S)
        sent1 = dict(eps["alice"].sent_levels)
        c1 = counters(calls)

        # Phase 2: alice marked loud.
        clock.sleep_until(t_all + SWITCH_S)
        eps["alice"].level = LEVEL_ALICE_LOUD
        t_sw = clock.now()
        log("alice marks her packets level %d from %.2f s"
            % (LEVEL_ALICE_LOUD, t_sw))
        w2 = (t_sw + WINDOW_2_S[0], t_sw + WINDOW_2_S[1])
        clock.sleep_until(t_sw + SHOW_2_S)
        sent2 = dict(eps["alice"].sent_levels)
        c2 = counters(calls)
        calls.check_before_bye(clock.now(), "phase 2 ended", 0.1)

        calls.finish()

        check_dave_sent(eps["dave"])
        errors = check_counters(c1, "phase 1 (alice level %d)"
                                % LEVEL_SILENT, SILENT_SHARE)
        errors += check_counters(c2, "phase 2 (alice level %d)"
                                 % LEVEL_ALICE_LOUD, None)
        a1, a2 = c1["alice"], c2["alice"]
        n127 = sent2.get(LEVEL_SILENT, 0)
        n30 = (sent2.get(LEVEL_ALICE_LOUD, 0) -
               sent1.get(LEVEL_ALICE_LOUD, 0))
        log("alice sent %d packets at level %d (by the phase 2 show), "
            "%d at level %d between the shows"
            % (n127, LEVEL_SILENT, n30, LEVEL_ALICE_LOUD))
        if a2["rx_silent"] > n127:
            errors.append("phase 2: alice's rx_silent %d, more than the "
                          "%d packets she marked level %d: packets "
                          "marked %d were taken for silence"
                          % (a2["rx_silent"], n127, LEVEL_SILENT,
                             LEVEL_ALICE_LOUD))
        grew = ((a2["rx_packets"] - a2["rx_silent"]) -
                (a1["rx_packets"] - a1["rx_silent"]))
        if grew < LOUD_SHARE * n30:
            errors.append("phase 2: alice's rx_packets less rx_silent "
                          "grew by %d between the shows, expected >= "
                          "%.0f%% of the %d she sent at level %d in "
                          "between" % (grew, 100 * LOUD_SHARE, n30,
                                       LEVEL_ALICE_LOUD))

        t_an = time.monotonic()
        errors += check_audio(eps, HEARS_1, w1[0], w1[1],
                              "phase 1 (alice level %d)" % LEVEL_SILENT)
        errors += check_audio(eps, HEARS_2, w2[0], w2[1],
                              "phase 2 (alice level %d)"
                              % LEVEL_ALICE_LOUD)
        log("audio analysis took %.2f s" % (time.monotonic() - t_an))
        check(not errors, "\n  ".join(["audio level:"] + errors))


if __name__ == "__main__":
    harness.run_main(main)
