"""A loopback RTP endpoint for integration tests: it plays a tone and
records what it hears.

What it does: one UDP socket on 127.0.0.1. A sender thread sends PCMU
(payload type 0) frames of 20 ms (160 samples) carrying a sine tone, on an
absolute schedule (frame k leaves at start + k * 20 ms, so scheduling
jitter does not accumulate into drift), with one SSRC, seq +1 and
timestamp +160 per frame, marker bit on the first frame (a subclass
with another codec or packet time sets pt, ts_step and ptime_s, the
period of that schedule, and overrides _frame()). A receiver
thread records every datagram that arrives (arrival time, source address,
RTP header fields, payload). Analysis decodes the received payloads in
arrival order and measures tone levels with a Hann-windowed Goertzel
filter.

Design notes:
- G.711 mu-law is written out here (the classic Sun/ITU reference
  algorithm: bias 0x84, clip 32635) so the test shares no code with
  focusd's codec; a bug there cannot hide behind the same bug here.
- The tone is precomputed for one second (8000 samples; any integer
  frequency completes whole periods in a second) and sliced per frame, so
  the send loop does no DSP.
- Goertzel with a Hann window: side lobes fall fast, so tones a few
  hundred hertz apart do not leak into each other even when the mix has
  gaps or phase jumps (lost packets, jitter buffer adjustments). Bin width
  for a window of N samples is 8000/N Hz (2 s -> 0.5 Hz), far below the
  spacing of the test tones.
- Bounded: both threads stop on stop() or after max_duration seconds,
  whichever is first; the socket has a receive timeout so the receiver
  polls its stop flag.
- Times are seconds on time.monotonic() minus `epoch`; pass one epoch to
  every endpoint of a test so their windows line up.

Only the Python standard library is used.
"""

import collections
import math
import random
import socket
import struct
import threading
import time

RATE = 8000
FRAME_SAMPLES = 160
PTIME_S = 0.020
PT_PCMU = 0
MULAW_BIAS = 0x84
MULAW_CLIP = 32635
FULL_SCALE = 32768.0


# ---------------------------------------------------------------- G.711 mu-law

def mulaw_encode(sample):
    """16-bit linear PCM sample -> mu-law byte."""
    sample = int(sample)
    if sample < 0:
        sign = 0x80
        sample = -sample
    else:
        sign = 0
    if sample > MULAW_CLIP:
        sample = MULAW_CLIP
    sample += MULAW_BIAS
    exponent = (sample >> 7).bit_length() - 1     # 0..7
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _mulaw_decode(byte):
    byte = ~byte & 0xFF
    sign = byte & 0x80
    exponent = (byte >> 4) & 0x07
    mantissa = byte & 0x0F
    sample = (((mantissa << 3) + MULAW_BIAS) << exponent) - MULAW_BIAS
    return -sample if sign else sample


MULAW_DECODE = [_mulaw_decode(b) for b in range(256)]
MULAW_SILENCE = mulaw_encode(0)        # 0xFF


def mulaw_decode_bytes(data):
    t = MULAW_DECODE
    return [t[b] for b in data]


def mulaw_encode_samples(samples):
    return bytes(mulaw_encode(s) for s in samples)


# ---------------------------------------------------------------- analysis

_hann_cache = {}


def _hann(n):
    w = _hann_cache.get(n)
    if w is None:
        if n == 1:
            w = [1.0]
        else:
            w = [0.5 - 0.5 * math.cos(2 * math.pi * i / (n - 1))
                 for i in range(n)]
        _hann_cache[n] = w
    return w


def goertzel_amplitude(samples, freq, rate=RATE):
    """Estimated peak amplitude (linear, PCM units) of a sine at freq in
    samples, Hann windowed. A full-scale sine gives about 32768."""
    n = len(samples)
    if n < 2:
        return 0.0
    w = _hann(n)
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x, wi in zip(samples, w):
        s0 = x * wi + coeff * s1 - s2
        s2 = s1
        s1 = s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    if power <= 0:
        return 0.0
    return 2.0 * math.sqrt(power) / sum(w)


def amplitude_dbfs(amp):
    if amp <= 0:
        return -200.0
    return 20.0 * math.log10(amp / FULL_SCALE)


def goertzel_dbfs(samples, freq, rate=RATE):
    """Level of the tone at freq in dBFS (0 dBFS = full-scale sine)."""
    return amplitude_dbfs(goertzel_amplitude(samples, freq, rate))


def rms_dbfs(samples):
    """RMS level in dBFS relative to a full-scale sine (so a sine reads
    the same as goertzel_dbfs gives for it)."""
    if not samples:
        return -200.0
    ms = sum(x * x for x in samples) / len(samples)
    if ms <= 0:
        return -200.0
    return 10.0 * math.log10(ms / (FULL_SCALE * FULL_SCALE / 2.0))


# ---------------------------------------------------------------- endpoint

RtpPacket = collections.namedtuple(
    "RtpPacket", "t addr version padding extension cc marker pt seq ts "
                 "ssrc payload size")


def parse_rtp(data):
    """Parse a datagram as RTP; returns a dict or None if it is not one."""
    if len(data) < 12:
        return None
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    version = b0 >> 6
    padding = bool(b0 & 0x20)
    extension = bool(b0 & 0x10)
    cc = b0 & 0x0F
    off = 12 + 4 * cc
    if len(data) < off:
        return None
    if extension:
        if len(data) < off + 4:
            return None
        _, words = struct.unpack("!HH", data[off:off + 4])
        off += 4 + 4 * words
        if len(data) < off:
            return None
    end = len(data)
    if padding and end > off:
        end -= data[-1]
    return dict(version=version, padding=padding, extension=extension,
                cc=cc, marker=bool(b1 & 0x80), pt=b1 & 0x7F, seq=seq, ts=ts,
                ssrc=ssrc, payload=bytes(data[off:max(off, end)]))


class RtpEndpoint:
    """A PCMU endpoint on 127.0.0.1:port (port 0: the kernel picks).

    ep = RtpEndpoint(freq=500, epoch=t0); ep.start()  # receiving
    ep.start_sending(("127.0.0.1", focus_port))       # and sending
    ...; ep.stop()
    """

    def __init__(self, port=0, freq=None, amplitude_dbfs=-12.0, ssrc=None,
                 max_duration=60.0, epoch=None, name="ep",
                 addr="127.0.0.1"):
        self.name = name
        self.freq = freq
        self.amplitude = FULL_SCALE * 10.0 ** (amplitude_dbfs / 20.0)
        self.ssrc = ssrc if ssrc is not None else random.getrandbits(32)
        self.seq0 = random.getrandbits(16)
        self.ts0 = random.getrandbits(32)
        self.pt = PT_PCMU             # what _header sends
        self.ts_step = FRAME_SAMPLES
        self.ptime_s = PTIME_S        # frame k leaves at start + k * this
        self.max_duration = max_duration
        self.epoch = time.monotonic() if epoch is None else epoch
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((addr, port))
        self.sock.settimeout(0.05)
        self.addr = self.sock.getsockname()
        self.port = self.addr[1]
        self.dest = None
        self.sent = 0
        self.send_errors = 0
        self.late_frames = 0          # frames sent > 1 frame late
        self.t_first_send = None
        self._rx = []                 # RtpPacket, arrival order
        self._rx_bad = []             # (t, addr, bytes) not parseable
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rx_thread = None
        self._tx_thread = None
        self._t_created = time.monotonic()
        self._tone = None
        self._tone_freq = None

    # -- clock

    def now(self):
        """Seconds since the epoch of this endpoint (shared per test)."""
        return time.monotonic() - self.epoch

    # -- control

    def start(self):
        """Start the receiver (sending starts with start_sending)."""
        if self._rx_thread is None:
            self._rx_thread = threading.Thread(
                target=self._rx_loop, name="rx-" + self.name, daemon=True)
            self._rx_thread.start()
        return self

    def start_sending(self, dest, freq=None):
        """Send the tone to dest=(host, port) from now on."""
        if freq is not None:
            self.freq = freq
        self.dest = (dest[0], int(dest[1]))
        self.start()
        if self._tx_thread is None:
            self._tx_thread = threading.Thread(
                target=self._tx_loop, name="tx-" + self.name, daemon=True)
            self._tx_thread.start()

    def stop_sending(self):
        self.dest = None

    def stop(self):
        self._stop.set()
        for t in (self._tx_thread, self._rx_thread):
            if t is not None:
                t.join(2.0)
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _expired(self):
        return (self._stop.is_set() or
                time.monotonic() - self._t_created > self.max_duration)

    # -- sending

    def _frame(self, k):
        """Payload of frame k: 160 mu-law bytes of the tone (or silence)."""
        if self.freq is None:
            return bytes([MULAW_SILENCE]) * FRAME_SAMPLES
        if self._tone_freq != self.freq:
            f, a = float(self.freq), self.amplitude
            self._tone = mulaw_encode_samples(
                round(a * math.sin(2 * math.pi * f * n / RATE))
                for n in range(RATE))
            self._tone_freq = self.freq
        off = (k * FRAME_SAMPLES) % RATE
        return self._tone[off:off + FRAME_SAMPLES]

    def _tx_loop(self):
        start = time.monotonic()
        k = 0
        while not self._expired():
            due = start + k * self.ptime_s
            delay = due - time.monotonic()
            if delay > 0:
                if self._stop.wait(delay):
                    break
            elif -delay > self.ptime_s:
                self.late_frames += 1
            dest = self.dest
            if dest is not None:
                hdr = self._header(k)
                try:
                    self.sock.sendto(hdr + self._frame(k), dest)
                    self.sent += 1
                    if self.t_first_send is None:
                        self.t_first_send = self.now()
                    self._on_sent(k)
                except OSError:
                    self.send_errors += 1
            k += 1

    def _header(self, k):
        """The RTP header of frame k: marker on the first, sequence and
        timestamp counting up by one frame. Subclasses with another codec
        set pt and ts_step; ones that renumber override this."""
        return struct.pack("!BBHII", 0x80, (0x80 if k == 0 else 0) | self.pt,
                           (self.seq0 + k) & 0xFFFF,
                           (self.ts0 + k * self.ts_step) & 0xFFFFFFFF,
                           self.ssrc)

    def _on_sent(self, k):
        """Frame k went out (a hook for subclasses)."""

    # -- receiving

    def _rx_loop(self):
        while not self._expired():
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            t = self.now()
            p = parse_rtp(data)
            with self._lock:
                if p is None:
                    self._rx_bad.append((t, addr, data))
                else:
                    self._rx.append(RtpPacket(t=t, addr=addr,
                                              size=len(data), **p))

    def packets(self, start_s=None, end_s=None):
        """Received RTP packets (arrival order), optionally only those that
        arrived in [start_s, end_s)."""
        with self._lock:
            pk = list(self._rx)
        if start_s is not None:
            pk = [p for p in pk if p.t >= start_s]
        if end_s is not None:
            pk = [p for p in pk if p.t < end_s]
        return pk

    def bad_datagrams(self):
        with self._lock:
            return list(self._rx_bad)

    def audio(self, start_s=None, end_s=None, pt=PT_PCMU):
        """Decoded linear samples of the PCMU packets that arrived in
        [start_s, end_s), concatenated in arrival order."""
        out = []
        for p in self.packets(start_s, end_s):
            if p.pt == pt:
                out.extend(mulaw_decode_bytes(p.payload))
        return out

    def tone_power(self, freq, start_s=None, end_s=None):
        """Level in dBFS of the tone at freq in what arrived in the
        window."""
        return goertzel_dbfs(self.audio(start_s, end_s), freq)

    # -- junk

    def send_garbage(self, dest, data=None, count=1, size=172):
        """Send raw UDP datagrams to dest from a separate socket (random
        bytes of the given size if data is None). Returns the source
        address used."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((self.addr[0], 0))
            for _ in range(count):
                payload = data if data is not None else bytes(
                    random.getrandbits(8) for _ in range(size))
                s.sendto(payload, (dest[0], int(dest[1])))
            return s.getsockname()
        finally:
            s.close()

    def send_raw(self, dest, data):
        """Send raw bytes from this endpoint's own socket."""
        self.sock.sendto(data, (dest[0], int(dest[1])))


def send_garbage(dest, data, count=1, src_addr="127.0.0.1"):
    """Module-level variant: raw datagrams from a throwaway socket."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((src_addr, 0))
        for _ in range(count):
            s.sendto(data, (dest[0], int(dest[1])))
        return s.getsockname()
    finally:
        s.close()
