"""Wideband codecs for the integration tests' RTP endpoints: Opus
(libopus) and G.722 (SpanDSP) through ctypes, and G.711 mu-law from
rtpep, behind one small interface; CodecEndpoint, a mediacheck
TimedEndpoint that sends a chord of tones in any of them and decodes what
it receives with the same codec; levels() and friends at any rate.

What it does:
- OpusEncoder/OpusDecoder: opus_encoder_create / opus_encode /
  opus_encoder_destroy, opus_decoder_create / opus_decode /
  opus_decoder_destroy from libopus.so.0, mono, any Opus rate; plus
  opus_packet_info() (samples per packet at 48 kHz, audio bandwidth,
  channels, from the TOC byte) to check what a peer sends.
- G722Encoder/G722Decoder: SpanDSP's g722_encode_init(NULL, 64000, 0) /
  g722_encode / g722_encode_free and the decode counterparts from
  libspandsp.so.2: 64 kbit/s, 16 kHz PCM, one byte per two samples.
- MulawEncoder/MulawDecoder: rtpep's mu-law (the Sun/ITU reference).
- Codec: what a leg's codec means on the wire: payload type, rtpmap, the
  test's PCM rate, the RTP clock, PCM samples and timestamp units per
  20 ms, and new encoder/decoder instances. OPUS(pt), G722, PCMU.
- CodecEndpoint: like rtpep.RtpEndpoint (absolute 20 ms schedule, one
  SSRC, seq +1, marker on the first packet) but the payload is the codec's
  encoding of a sum of sines (tones=[(Hz, dBFS), ...]), the timestamp
  steps by the codec's clock (960 for Opus, 160 for G.722 and PCMU), and
  audio() decodes the received packets of the codec's payload type in
  arrival order through one decoder (the codecs keep state from packet to
  packet, so a window is never decoded from a fresh decoder).
- levels()/describe(): tone levels by rtpep's Hann-windowed Goertzel at
  the endpoint's own PCM rate (mediacheck.levels() assumes 8 kHz).

Design notes:
- libopus and SpanDSP are the libraries focusd links; a test that decodes
  with them checks focusd's packets with the reference implementations
  (Opus) and the same G.722 code (SpanDSP) as the far end would have.
  Missing libraries fail with a clear message naming the package.
- ctypes prototypes are declared in full (restype and argtypes), so
  pointers are not truncated to int on 64-bit.
- Encoding happens in the sender thread, frame by frame (a few tens of
  microseconds per frame in C); the tone is precomputed for one second
  (integer frequencies repeat every second) as int16 and sliced.
- Decoding happens when audio() is asked for, never in the receive
  thread, so the kernel timestamps of TimedEndpoint stay the only clock.

Only the Python standard library is used (ctypes included).
"""

import array
import ctypes
import math
import threading

import rtpep
from harness import check, fail
from mediacheck import TimedEndpoint

# ---------------------------------------------------------------- libraries

_libs = {}


def _load(soname, package):
    lib = _libs.get(soname)
    if lib is None:
        try:
            lib = ctypes.CDLL(soname)
        except OSError as e:
            fail("cannot load %s (%s): install %s" % (soname, e, package))
        _libs[soname] = lib
    return lib


def _opus():
    lib = _libs.get("opus-proto")
    if lib is not None:
        return lib
    lib = _load("libopus.so.0", "libopus0")
    vp, i32, c_int = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int
    i16p = ctypes.POINTER(ctypes.c_int16)
    u8p = ctypes.POINTER(ctypes.c_ubyte)
    lib.opus_encoder_create.restype = vp
    lib.opus_encoder_create.argtypes = [i32, c_int, c_int,
                                        ctypes.POINTER(c_int)]
    lib.opus_encode.restype = i32
    lib.opus_encode.argtypes = [vp, i16p, c_int, u8p, i32]
    lib.opus_encoder_destroy.restype = None
    lib.opus_encoder_destroy.argtypes = [vp]
    lib.opus_decoder_create.restype = vp
    lib.opus_decoder_create.argtypes = [i32, c_int, ctypes.POINTER(c_int)]
    lib.opus_decode.restype = c_int
    lib.opus_decode.argtypes = [vp, u8p, i32, i16p, c_int, c_int]
    lib.opus_decoder_destroy.restype = None
    lib.opus_decoder_destroy.argtypes = [vp]
    lib.opus_packet_get_nb_samples.restype = c_int
    lib.opus_packet_get_nb_samples.argtypes = [u8p, i32, i32]
    lib.opus_packet_get_bandwidth.restype = c_int
    lib.opus_packet_get_bandwidth.argtypes = [u8p]
    lib.opus_packet_get_nb_channels.restype = c_int
    lib.opus_packet_get_nb_channels.argtypes = [u8p]
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [c_int]
    # opus_encoder_ctl is variadic; every request used here takes one int
    lib.opus_encoder_ctl.restype = c_int
    _libs["opus-proto"] = lib
    return lib


def _spandsp():
    lib = _libs.get("spandsp-proto")
    if lib is not None:
        return lib
    lib = _load("libspandsp.so.2", "libspandsp2")
    vp, c_int = ctypes.c_void_p, ctypes.c_int
    i16p = ctypes.POINTER(ctypes.c_int16)
    u8p = ctypes.POINTER(ctypes.c_ubyte)
    for d in ("encode", "decode"):
        init = getattr(lib, "g722_%s_init" % d)
        init.restype = vp
        init.argtypes = [vp, c_int, c_int]
        free = getattr(lib, "g722_%s_free" % d)
        free.restype = c_int
        free.argtypes = [vp]
    lib.g722_encode.restype = c_int
    lib.g722_encode.argtypes = [vp, u8p, i16p, c_int]
    lib.g722_decode.restype = c_int
    lib.g722_decode.argtypes = [vp, i16p, u8p, c_int]
    _libs["spandsp-proto"] = lib
    return lib


def _i16(samples):
    """(ctypes int16 pointer, keep-alive) for a sequence of samples."""
    a = samples if (isinstance(samples, array.array) and
                    samples.typecode == "h") else array.array("h", samples)
    buf = (ctypes.c_int16 * len(a)).from_buffer(a)
    return ctypes.cast(buf, ctypes.POINTER(ctypes.c_int16)), (a, buf)


def _u8(data):
    buf = (ctypes.c_ubyte * max(1, len(data))).from_buffer_copy(
        bytes(data) or b"\0")
    return ctypes.cast(buf, ctypes.POINTER(ctypes.c_ubyte)), buf


# ---------------------------------------------------------------- Opus

OPUS_OK = 0
OPUS_APPLICATION_VOIP = 2048
OPUS_APPLICATION_AUDIO = 2049
OPUS_SET_BITRATE_REQUEST = 4002
OPUS_AUTO = -1000
OPUS_BANDWIDTHS = {1101: "NB", 1102: "MB", 1103: "WB", 1104: "SWB",
                   1105: "FB"}
OPUS_BANDWIDTH_WIDEBAND = 1103
OPUS_MAX_PACKET = 1500


class _LibState:
    """A C library's codec state (self._lib, self._st), freed once by the
    library function named _FREE: on close(), or when collected."""

    _FREE = None
    _st = None

    def close(self):
        if self._st:
            getattr(self._lib, self._FREE)(self._st)
            self._st = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class OpusEncoder(_LibState):
    """Mono Opus encoder at `rate` Hz (8000, 12000, 16000, 24000, 48000)."""

    def __init__(self, rate=48000, application=OPUS_APPLICATION_AUDIO,
                 bitrate=None):
        self._lib = _opus()
        err = ctypes.c_int(0)
        self._st = self._lib.opus_encoder_create(rate, 1, application,
                                                 ctypes.byref(err))
        if not self._st or err.value != OPUS_OK:
            fail("opus_encoder_create(%d, 1, %d): %s"
                 % (rate, application,
                    self._lib.opus_strerror(err.value).decode()))
        self.rate = rate
        if bitrate is not None:
            r = self._lib.opus_encoder_ctl(
                ctypes.c_void_p(self._st),
                ctypes.c_int(OPUS_SET_BITRATE_REQUEST),
                ctypes.c_int32(bitrate))
            check(r == OPUS_OK, "OPUS_SET_BITRATE(%d): %s"
                  % (bitrate, self._lib.opus_strerror(r).decode()))
        self._out = (ctypes.c_ubyte * OPUS_MAX_PACKET)()

    def encode(self, pcm):
        """One frame (2.5 to 60 ms of samples) -> one Opus packet."""
        p, keep = _i16(pcm)
        n = self._lib.opus_encode(self._st, p, len(keep[0]),
                                  ctypes.cast(self._out, ctypes.POINTER(
                                      ctypes.c_ubyte)), OPUS_MAX_PACKET)
        if n < 0:
            fail("opus_encode: %s"
                 % self._lib.opus_strerror(n).decode())
        return bytes(self._out[:n])

    _FREE = "opus_encoder_destroy"


class OpusDecoder(_LibState):
    """Mono Opus decoder producing PCM at `rate` Hz (stereo packets are
    mixed down, as RFC 7587 allows a mono receiver)."""

    MAX_FRAME_S = 0.120

    def __init__(self, rate=48000):
        self._lib = _opus()
        err = ctypes.c_int(0)
        self._st = self._lib.opus_decoder_create(rate, 1, ctypes.byref(err))
        if not self._st or err.value != OPUS_OK:
            fail("opus_decoder_create(%d, 1): %s"
                 % (rate, self._lib.opus_strerror(err.value).decode()))
        self.rate = rate
        self._cap = int(rate * self.MAX_FRAME_S)
        self._pcm = (ctypes.c_int16 * self._cap)()

    def decode(self, payload):
        """One packet -> samples (array('h')); raises TestFailure with
        libopus's reason if it refuses the packet. payload None: packet
        loss concealment for one 20 ms frame."""
        if payload is None:
            p, n_in, frame = None, 0, self.rate // 50
        else:
            p, _keep = _u8(payload)
            n_in, frame = len(payload), self._cap
        n = self._lib.opus_decode(self._st, p, n_in,
                                  ctypes.cast(self._pcm, ctypes.POINTER(
                                      ctypes.c_int16)), frame, 0)
        if n < 0:
            fail("opus_decode of a %d-byte packet: %s"
                 % (n_in, self._lib.opus_strerror(n).decode()))
        return array.array("h", self._pcm[:n])

    _FREE = "opus_decoder_destroy"


def opus_packet_info(payload):
    """(samples per packet at 48 kHz, bandwidth name, channels) from the
    packet's TOC (and frame count); samples is negative for a packet
    libopus calls invalid."""
    lib = _opus()
    if not payload:
        return -1, "?", 0
    p, _keep = _u8(payload)
    n = lib.opus_packet_get_nb_samples(p, len(payload), 48000)
    bw = lib.opus_packet_get_bandwidth(p)
    ch = lib.opus_packet_get_nb_channels(p)
    return n, OPUS_BANDWIDTHS.get(bw, str(bw)), ch


# ---------------------------------------------------------------- G.722

class G722Encoder(_LibState):
    """SpanDSP G.722 at 64 kbit/s: 16 kHz samples in, a byte per two out."""

    def __init__(self):
        self._lib = _spandsp()
        self._st = self._lib.g722_encode_init(None, 64000, 0)
        check(bool(self._st), "g722_encode_init(NULL, 64000, 0) failed")

    def encode(self, pcm):
        p, keep = _i16(pcm)
        n_in = len(keep[0])
        out = (ctypes.c_ubyte * (n_in // 2 + 1))()
        n = self._lib.g722_encode(self._st, ctypes.cast(
            out, ctypes.POINTER(ctypes.c_ubyte)), p, n_in)
        check(n >= 0, "g722_encode: %d" % n)
        return bytes(out[:n])

    _FREE = "g722_encode_free"


class G722Decoder(_LibState):
    """SpanDSP G.722 at 64 kbit/s: a byte in, two 16 kHz samples out."""

    def __init__(self):
        self._lib = _spandsp()
        self._st = self._lib.g722_decode_init(None, 64000, 0)
        check(bool(self._st), "g722_decode_init(NULL, 64000, 0) failed")

    def decode(self, payload):
        if payload is None:
            return array.array("h")
        p, _keep = _u8(payload)
        out = (ctypes.c_int16 * (2 * len(payload) + 2))()
        n = self._lib.g722_decode(self._st, ctypes.cast(
            out, ctypes.POINTER(ctypes.c_int16)), p, len(payload))
        check(n >= 0, "g722_decode of %d bytes: %d" % (len(payload), n))
        return array.array("h", out[:n])

    _FREE = "g722_decode_free"


# ---------------------------------------------------------------- G.711

class MulawEncoder:
    def encode(self, pcm):
        return rtpep.mulaw_encode_samples(pcm)


class MulawDecoder:
    def decode(self, payload):
        if payload is None:
            return array.array("h")
        return array.array("h", rtpep.mulaw_decode_bytes(payload))


# ---------------------------------------------------------------- codecs

class Codec:
    """A codec as a leg uses it: name (the rtpmap encoding name), pt,
    rtpmap ("opus/48000/2"), rate (the PCM rate on the test's side), clock
    (RTP clock rate), and per 20 ms: frame (PCM samples) and ts_step (RTP
    timestamp units)."""

    def __init__(self, name, pt, rtpmap, rate, clock, encoder, decoder):
        self.name, self.pt, self.rtpmap = name, pt, rtpmap
        self.rate, self.clock = rate, clock
        self.frame = rate * 20 // 1000
        self.ts_step = clock * 20 // 1000
        self._encoder, self._decoder = encoder, decoder

    def encoder(self):
        return self._encoder()

    def decoder(self):
        return self._decoder()

    def __repr__(self):
        return "%s/%d PT %d" % (self.name, self.clock, self.pt)


def OPUS(pt=111, rate=48000, application=OPUS_APPLICATION_AUDIO,
         bitrate=None):
    """Opus (RFC 7587: rtpmap opus/48000/2, RTP clock 48000 whatever the
    audio rate), mono PCM at `rate` on the test's side."""
    return Codec("opus", pt, "opus/48000/2", rate, 48000,
                 lambda: OpusEncoder(rate, application, bitrate),
                 lambda: OpusDecoder(rate))


G722 = Codec("G722", 9, "G722/8000", 16000, 8000, G722Encoder, G722Decoder)
PCMU = Codec("PCMU", 0, "PCMU/8000", 8000, 8000, MulawEncoder, MulawDecoder)


def tone_table(rate, tones):
    """One second of sum(sin) at rate Hz as array('h'); tones [(Hz,
    dBFS)]. Integer frequencies complete whole periods in a second, so
    the table loops seamlessly. Fails if the sum could clip."""
    amps = [(float(f), rtpep.FULL_SCALE * 10.0 ** (d / 20.0))
            for f, d in tones]
    check(sum(a for _, a in amps) < 32767, "tones %r would clip" % (tones,))
    w = [(2 * math.pi * f / rate, a) for f, a in amps]
    return array.array("h", (int(round(sum(a * math.sin(k * n)
                                           for k, a in w)))
                             for n in range(rate)))


# ---------------------------------------------------------------- endpoint

class CodecEndpoint(TimedEndpoint):
    """A TimedEndpoint that speaks `codec` (a Codec): sends tones (a list
    of (Hz, dBFS), empty for silence) every 20 ms once start_sending() is
    called, and decodes what it receives with the same codec."""

    def __init__(self, clock, codec, tones=(), **kw):
        super().__init__(clock, **kw)
        self.codec = codec
        self.pt, self.ts_step = codec.pt, codec.ts_step
        self.tones = list(tones)
        self._table = tone_table(codec.rate, self.tones)
        self._enc = codec.encoder()
        self._dec = codec.decoder()
        self._dec_lock = threading.Lock()
        self._decoded = []          # (arrival t, samples), packet order
        self._n_decoded = 0         # packets of self._rx looked at
        self.other_pt = 0           # packets received with another PT

    def _frame(self, k):
        n = self.codec.frame
        off = (k * n) % self.codec.rate
        return self._enc.encode(self._table[off:off + n])

    def _decode_new(self):
        with self._lock:
            new = self._rx[self._n_decoded:]
            self._n_decoded = len(self._rx)
        for p in new:
            if p.pt != self.codec.pt:
                self.other_pt += 1
                continue
            self._decoded.append((p.t, self._dec.decode(p.payload)))

    def audio(self, start_s=None, end_s=None, pt=None):
        """Decoded samples (at codec.rate) of the codec's packets that
        arrived in [start_s, end_s), in arrival order. Every packet
        received so far is decoded once, in order, by one decoder."""
        with self._dec_lock:
            self._decode_new()
            out = array.array("h")
            for t, s in self._decoded:
                if (start_s is None or t >= start_s) and \
                        (end_s is None or t < end_s):
                    out.extend(s)
        return out

    def tone_power(self, freq, start_s=None, end_s=None):
        return rtpep.goertzel_dbfs(self.audio(start_s, end_s), freq,
                                   self.codec.rate)


# ---------------------------------------------------------------- analysis

def levels(ep, freqs, probes, w0, w1):
    """What CodecEndpoint ep heard in [w0, w1), at its codec's rate:
    ({freq: dBFS}, noise dBFS (the loudest probe), fill (the share of the
    window's samples that arrived))."""
    rate = ep.codec.rate
    samples = ep.audio(w0, w1)
    lv = {f: rtpep.goertzel_dbfs(samples, f, rate) for f in freqs}
    noise = max(rtpep.goertzel_dbfs(samples, f, rate) for f in probes)
    return lv, noise, len(samples) / max(1.0, (w1 - w0) * rate)


def describe(name, lv, noise, fill):
    return "%-6s %s | noise %6.1f | %3.0f%% of samples" % (
        name, "  ".join("%4d Hz %6.1f" % (f, v)
                        for f, v in sorted(lv.items())),
        noise, 100 * fill)
