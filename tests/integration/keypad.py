"""A telephone keypad for integration tests: an RTP endpoint that talks
(a PCMU tone or silence, every 20 ms) and keys digits, either as RFC 4733
telephone-events or as in-band DTMF tones, and records what it hears.

What it does: Phone is a mediacheck.TimedEndpoint (so received packets
carry the kernel's arrival time) whose sender is replaced by one that
plays a queue of frames before falling back to its tone (or silence):
- key_events(digits): for each digit, RFC 4733 section 2.5 packets in
  place of audio - EVENT_FRAMES updates (marker bit on the first, the
  duration growing by 160 each), then the end packet (E bit) sent
  END_REPEATS times; all of one event carry the timestamp of its first
  packet, each packet its own sequence number; GAP_FRAMES of silence
  follow each digit;
- key_tones(digits): for each digit, DTMF_TONE_FRAMES of its two DTMF
  frequencies (each DTMF_DBFS) as PCMU, then DTMF_GAP_FRAMES of silence.
Both return when the last packet of the digits has gone (bounded wait).

Design notes:
- One sender thread, one SSRC, one sequence: events and audio share the
  RTP stream the way a phone's do (RFC 4733 2.1), and the timestamp runs
  at 8 kHz from the first frame whatever is sent, so focusd sees one
  clean stream. The frames are precomputed when keyed (mu-law via rtpep,
  which shares no code with focusd), so the 20 ms loop does no DSP.
- The schedule is absolute (frame k at start + k * 20 ms) as in rtpep;
  a frame more than one period late is counted, not skipped.
- Bounded: the thread stops on stop() or after max_duration seconds;
  every wait has a deadline.

Only the Python standard library is used.
"""

import collections
import math
import struct
import threading
import time

import mediacheck as mc
import rtpep
from harness import check

# ITU-T Q.23: row and column frequencies of each key.
DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}
# RFC 4733 section 3.2: event codes of the DTMF keys.
TE_CODES = {d: i for i, d in enumerate("0123456789*#ABCD")}

EVENT_FRAMES = 5        # updates before the end packet (100 ms)
END_REPEATS = 3         # the end packet, sent this many times
GAP_FRAMES = 5          # silence after each event (100 ms)
TE_VOLUME = 10          # -10 dBm0
DTMF_TONE_FRAMES = 5    # 100 ms of tone per digit
DTMF_GAP_FRAMES = 5     # 100 ms of silence after it
DTMF_DBFS = -10.0       # each of the two tones


def dtmf_frames(digit, n_frames, level_dbfs=DTMF_DBFS):
    """n_frames PCMU payloads (160 bytes) of the DTMF pair of digit."""
    check(digit in DTMF_FREQS, "no DTMF key %r" % digit)
    lo, hi = DTMF_FREQS[digit]
    a = rtpep.FULL_SCALE * 10.0 ** (level_dbfs / 20.0)
    n = n_frames * rtpep.FRAME_SAMPLES
    pcm = rtpep.mulaw_encode_samples(
        round(a * math.sin(2 * math.pi * lo * i / rtpep.RATE) +
              a * math.sin(2 * math.pi * hi * i / rtpep.RATE))
        for i in range(n))
    return [pcm[k * 160:(k + 1) * 160] for k in range(n_frames)]


SILENCE = bytes([rtpep.MULAW_SILENCE]) * rtpep.FRAME_SAMPLES


class Phone(mc.TimedEndpoint):
    """An endpoint that talks and keys. te_pt: the telephone-event payload
    type agreed in SDP (None: in-band DTMF only)."""

    def __init__(self, clock, te_pt=None, **kw):
        super().__init__(clock, **kw)
        self.te_pt = te_pt
        # ("pcm", digit, payload) or ("te", digit, code, duration, end,
        # first): one per 20 ms tick
        self._queue = collections.deque()
        self._qlock = threading.Lock()
        self.te_sent = []                   # (t, seq, ts, event, end)
        self.keyed = []                     # (digit, t first, t last)

    # -- keying

    def _enqueue(self, items):
        with self._qlock:
            self._queue.extend(items)

    def _drain(self, n_items, timeout):
        """Wait until the queue is empty (bounded)."""
        limit = timeout + n_items * rtpep.PTIME_S
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with self._qlock:
                if not self._queue:
                    return
            time.sleep(0.01)
        check(False, "%s: %d queued frames not sent within %.1f s (sender "
              "thread alive: %s)" % (self.name, len(self._queue), limit,
                                      self._tx_thread is not None and
                                      self._tx_thread.is_alive()))

    def key_events(self, digits, timeout=3.0):
        """Key digits as RFC 4733 events; returns when they have gone."""
        check(self.te_pt is not None, "%s: no telephone-event payload type "
              "to key with" % self.name)
        items = []
        for d in digits:
            code = TE_CODES[d]
            for i in range(EVENT_FRAMES):
                items.append(("te", d, code, 160 * (i + 1), False, i == 0))
            for _ in range(END_REPEATS):
                items.append(("te", d, code, 160 * EVENT_FRAMES, True,
                              False))
            items += [("pcm", d, SILENCE)] * GAP_FRAMES
        self._enqueue(items)
        self._drain(len(items), timeout)

    def key_tones(self, digits, timeout=3.0):
        """Key digits as in-band DTMF (PCMU); returns when they have
        gone."""
        items = []
        for d in digits:
            items += [("pcm", d, f) for f in dtmf_frames(d,
                                                         DTMF_TONE_FRAMES)]
            items += [("pcm", d, SILENCE)] * DTMF_GAP_FRAMES
        self._enqueue(items)
        self._drain(len(items), timeout)

    # -- sending

    def _note_keyed(self, digit):
        t = self.now()
        if self.keyed and self.keyed[-1][0] == digit and \
                t - self.keyed[-1][2] < 0.05:
            self.keyed[-1] = (digit, self.keyed[-1][1], t)
        else:
            self.keyed.append((digit, t, t))

    def _tx_loop(self):
        start = time.monotonic()
        k = 0
        ev_ts = None
        while not self._expired():
            due = start + k * rtpep.PTIME_S
            delay = due - time.monotonic()
            if delay > 0:
                if self._stop.wait(delay):
                    break
            elif -delay > rtpep.PTIME_S:
                self.late_frames += 1
            dest = self.dest
            if dest is None:
                k += 1
                continue
            with self._qlock:
                item = self._queue.popleft() if self._queue else None
            ts = (self.ts0 + k * rtpep.FRAME_SAMPLES) & 0xFFFFFFFF
            seq = (self.seq0 + k) & 0xFFFF
            marker = k == 0
            if item is None:
                pt, payload = rtpep.PT_PCMU, self._frame(k)
            elif item[0] == "pcm":
                pt, payload = rtpep.PT_PCMU, item[2]
                self._note_keyed(item[1])
            else:
                _, d, code, dur, end, first = item
                if first or ev_ts is None:
                    ev_ts = ts
                ts = ev_ts
                marker = first
                pt = self.te_pt
                payload = struct.pack("!BBH", code,
                                       (0x80 if end else 0) | TE_VOLUME,
                                       dur)
                self._note_keyed(d)
            hdr = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt,
                              seq, ts, self.ssrc)
            try:
                self.sock.sendto(hdr + payload, dest)
                self.sent += 1
                if self.t_first_send is None:
                    self.t_first_send = self.now()
                if pt != rtpep.PT_PCMU:
                    self.te_sent.append((self.now(), seq, ts, item[2],
                                         item[4]))
            except OSError:
                self.send_errors += 1
            k += 1
