#!/usr/bin/env python3
"""RTCP on a leg's RTP port + 1 (RFC 3550 6): what focusd reports to a
participant, what it takes from the participant's reports, and what
conference.show says of both.

focusd runs with --auto-create. Two PCMU participants join room1 with
uac_join.xml, alice and then bob, each a Python RTP endpoint
(mediacheck.TimedEndpoint, kernel arrival stamps) on an even port P of a
block this process reserved, playing a tone at 20 ms. alice also has two
RTCP sockets: P+1 (where RTCP goes by default) and P+3 (the one she
sends her own RTCP from). bob has no RTCP socket and sends no RTCP.

Asserted, in this order:
- focusd's first compound reaches alice's P+1 within 3 s of her join,
  from 127.0.0.1 and focusd's answered port + 1: every packet V=2, no
  padding, lengths that add up to the datagram; an SR (PT 200) then an
  SDES (PT 202) and nothing else. SR: SSRC = the one SSRC of focusd's
  RTP to alice; NTP time (32.32 since 1900) within 2 s of the wall clock
  at arrival; RTP timestamp within 100 ms (800) of focusd's RTP time
  then (the last RTP packet alice got, advanced by the time since); packet
  count within 2 of the RTP packets alice had received by then, octet
  count exactly 160 x packet count; one report block, about alice's SSRC:
  cumulative lost 0, fraction 0, extended highest sequence number that
  of a packet alice sent at most 100 ms before the report arrived, LSR 0
  and DLSR 0 (she sent no SR yet). SDES: one chunk, same SSRC, CNAME
  "focusd-%08x" % SSRC, END item, zero padding to 32 bits.
- conference.show right after it: alice's rtp.rtcp rx_sr = rx_rr =
  rx_malformed = 0, tx >= 1, rtt_ms null, peer null.
- 300 ms after that compound alice sends, from P+3, an SR (her SSRC, NTP
  now, her RTP time and counts) + SDES, then an RR + SDES whose block is
  about focusd's SSRC: fraction 64 (25 %), cumulative lost 7, jitter 80
  (10 ms at 8 kHz), LSR = middle 32 bits of the NTP time of focusd's SR,
  DLSR = (time since she received it) - 100 ms. Within 2 s
  conference.show says rx_sr = 1, rx_rr = 1, rtt_ms in [95, 200] (100 ms
  plus loopback and scheduling delay), peer {"lost": 7, "fraction_lost":
  0.25, "jitter_ms": 10}.
- An RR with other values from 127.0.0.2 (not alice's address) counts as
  rtp.rx_foreign (+1 within 2 s) and changes nothing of rtcp; so does one
  from P+1 (her address, but not the port her RTCP latched onto, P+3).
- An RTP packet, a truncated SR (length field 28 bytes, 20 sent), 3 bytes
  and 8 bytes of version 0 to focusd's RTCP port from P+3 make
  rtcp.rx_malformed 4 within 2 s (the short ones too: counted on her
  leg, not by the io lcore); rx_sr, rx_rr, rtt_ms, peer and rx_foreign
  stay as they were.
- bob (no RTCP): rx_sr = rx_rr = rx_malformed = 0, rtt_ms null, peer
  null, tx >= 1.
- focusd's next compound for alice arrives 2.5 to 7.5 s after the first
  (0.1 s / 0.2 s of slack for scheduling), on P+3, where her RTCP came
  from (none more on P+1); the same checks as the first (packet and octet
  counts grown), and its block's LSR = middle 32 bits of alice's SR's NTP
  time, DLSR within 100 ms of the time from her sending that SR to this
  report's arrival.
- Both SIPp calls end with exit status 0 and focusd exits 0 on SIGTERM.

Bounded: each join waits at most 5 s for its 200; alice stays 10 s, bob
9.6 s; every wait has a deadline (3 s for the first report, 7.7 s after
it for the second, 2 s for each conference.show condition). The test
takes about 11 s.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_rtcp.py (exit status 0 on pass).
"""

import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpep  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
LINGER_MS = {"alice": 10000, "bob": 9600}
TONES = {"alice": 500, "bob": 1100}
NTP_UNIX = 2208988800            # 1900 to 1970, in seconds

FIRST_WITHIN_S = 3.0             # first report after alice's join
INTERVAL_S = (2.5, 7.5)          # between reports (RFC 3550 6.2 x 0.5..1.5)
INTERVAL_SLACK_S = (0.1, 0.2)
NTP_WITHIN_S = 2.0
RTP_TS_WITHIN = 800              # 100 ms at 8 kHz
PACKETS_WITHIN = 2
SEQ_LAG = 5                      # frames: focusd's block lags 100 ms at most
REPLY_AFTER_S = 0.3              # alice answers focusd's first SR then
FAKE_DELAY_S = 0.1               # taken off her DLSR: the RTT focusd sees
RTT_MS = (95, 200)
DLSR_WITHIN_S = 0.1
SHOW_WITHIN_S = 2.0
# alice's report on focusd's stream
BLOCK_FRACTION, BLOCK_LOST, BLOCK_JITTER = 64, 7, 80
PEER_WANT = {"lost": 7, "fraction_lost": 0.25, "jitter_ms": 10}

PT_SR, PT_RR, PT_SDES = 200, 201, 202


# ---------------------------------------------------------------- NTP

def ntp_of(wall):
    """Wall clock seconds (time.time()) -> NTP 32.32."""
    sec = int(wall)
    return (sec + NTP_UNIX) << 32 | int((wall - sec) * (1 << 32))


def wall_of(ntp):
    return (ntp >> 32) - NTP_UNIX + (ntp & 0xFFFFFFFF) / float(1 << 32)


def mid32(ntp):
    return (ntp >> 16) & 0xFFFFFFFF


# ---------------------------------------------------------------- RTCP

def block_bytes(ssrc, fraction, lost, ext_seq, jitter, lsr, dlsr):
    return struct.pack("!IIIIII", ssrc, (fraction << 24) |
                       (lost & 0xFFFFFF), ext_seq & 0xFFFFFFFF, jitter,
                       lsr & 0xFFFFFFFF, dlsr & 0xFFFFFFFF)


def sdes_bytes(ssrc, cname):
    c = cname.encode()
    body = struct.pack("!I", ssrc) + bytes([1, len(c)]) + c + b"\0"
    body += b"\0" * (-len(body) % 4)
    return struct.pack("!BBH", 0x81, PT_SDES, len(body) // 4) + body


def sr_bytes(ssrc, ntp, rtp_ts, packets, octets, blocks=()):
    body = struct.pack("!IIIIII", ssrc, ntp >> 32, ntp & 0xFFFFFFFF,
                       rtp_ts & 0xFFFFFFFF, packets, octets) + b"".join(blocks)
    return struct.pack("!BBH", 0x80 | len(blocks), PT_SR,
                       len(body) // 4) + body


def rr_bytes(ssrc, blocks=()):
    body = struct.pack("!I", ssrc) + b"".join(blocks)
    return struct.pack("!BBH", 0x80 | len(blocks), PT_RR,
                       len(body) // 4) + body


def parse_block(b):
    ssrc, fl, ext, jit, lsr, dlsr = struct.unpack("!IIIIII", b[:24])
    lost = fl & 0xFFFFFF
    if lost & 0x800000:
        lost -= 1 << 24
    return dict(ssrc=ssrc, fraction=fl >> 24, lost=lost, ext_seq=ext,
                jitter=jit, lsr=lsr, dlsr=dlsr)


def parse_compound(data):
    """A compound RTCP packet -> ([packets], [problems]). Each packet:
    dict(pt, count, raw); SR/RR also ssrc, blocks and (SR) ntp, rtp_ts,
    packets, octets; SDES chunks [(ssrc, [(type, bytes)])]."""
    out, errs = [], []
    off = 0
    while off < len(data):
        if len(data) - off < 4:
            errs.append("%d stray bytes at offset %d" % (len(data) - off,
                                                         off))
            break
        b0, pt, words = struct.unpack("!BBH", data[off:off + 4])
        plen = 4 * (words + 1)
        if b0 >> 6 != 2:
            errs.append("packet at offset %d has V=%d, expected 2"
                        % (off, b0 >> 6))
        if b0 & 0x20:
            errs.append("packet at offset %d has the padding bit set" % off)
        if off + plen > len(data):
            errs.append("packet at offset %d (PT %d) says %d bytes, the "
                        "datagram has %d left" % (off, pt, plen,
                                                  len(data) - off))
            break
        raw = data[off:off + plen]
        p = dict(pt=pt, count=b0 & 0x1F, raw=raw)
        if pt in (PT_SR, PT_RR):
            hdr = 28 if pt == PT_SR else 8
            if plen < hdr + 24 * p["count"]:
                errs.append("%s at offset %d: %d bytes, too short for %d "
                            "blocks" % ("SR" if pt == PT_SR else "RR", off,
                                        plen, p["count"]))
            else:
                p["ssrc"] = struct.unpack("!I", raw[4:8])[0]
                if pt == PT_SR:
                    hi, lo, ts, pc, oc = struct.unpack("!IIIII", raw[8:28])
                    p.update(ntp=hi << 32 | lo, rtp_ts=ts, packets=pc,
                             octets=oc)
                p["blocks"] = [parse_block(raw[hdr + 24 * i:])
                               for i in range(p["count"])]
                if plen != hdr + 24 * p["count"]:
                    errs.append("%s at offset %d: %d bytes for %d blocks, "
                                "expected %d (no profile extension)"
                                % ("SR" if pt == PT_SR else "RR", off, plen,
                                   p["count"], hdr + 24 * p["count"]))
        elif pt == PT_SDES:
            chunks, o = [], 4
            for _ in range(p["count"]):
                if o + 4 > plen:
                    errs.append("SDES chunk runs past its packet")
                    break
                cssrc = struct.unpack("!I", raw[o:o + 4])[0]
                o += 4
                items = []
                while o < plen and raw[o] != 0:
                    if o + 2 > plen or o + 2 + raw[o + 1] > plen:
                        errs.append("SDES item runs past its packet")
                        o = plen
                        break
                    items.append((raw[o], bytes(raw[o + 2:o + 2 +
                                                    raw[o + 1]])))
                    o += 2 + raw[o + 1]
                if o >= plen:
                    errs.append("SDES chunk of %08x has no END item"
                                % cssrc)
                    break
                end = o + 1 + (-(o + 1) % 4)     # END, pad to 32 bits
                if end > plen or any(raw[o:end]):
                    errs.append("SDES chunk of %08x: END/padding %r not "
                                "zeros to a 32-bit boundary"
                                % (cssrc, bytes(raw[o:end])))
                chunks.append((cssrc, items))
                o = end
            if o != plen:
                errs.append("SDES: %d bytes after its chunks" % (plen - o))
            p["chunks"] = chunks
        out.append(p)
        off += plen
    return out, errs


def hexdump(data):
    return " ".join("%02x" % b for b in data)


class RtcpSocket:
    """A UDP socket on 127.0.0.1:port that records every datagram with
    its kernel arrival time: (t on clock, wall, source, bytes)."""

    def __init__(self, clock, port, name):
        self.clock, self.name = clock, name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.setsockopt(socket.SOL_SOCKET, mc.SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.05)
        self.port = port
        self._rx = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="rtcp-" + name)
        self._thread.start()

    def _loop(self):
        space = socket.CMSG_SPACE(16)
        while not self._stop.is_set():
            try:
                data, anc, _, addr = self.sock.recvmsg(2048, space)
            except socket.timeout:
                continue
            except OSError:
                break
            wall = None
            for level, kind, cdata in anc:
                if (level == socket.SOL_SOCKET and kind == mc.SO_TIMESTAMPNS
                        and len(cdata) >= 16):
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    wall = sec + nsec * 1e-9
            if wall is None:
                wall = time.time()
            with self._lock:
                self._rx.append((self.clock.from_wall(wall), wall, addr,
                                 data))

    def received(self):
        with self._lock:
            return list(self._rx)

    def wait(self, n, deadline, what):
        """The first n datagrams; fails at deadline (clock time)."""
        while True:
            rx = self.received()
            if len(rx) >= n:
                return rx[:n]
            if self.clock.now() >= deadline:
                fail("%s: not by %.2f s on the test's clock (now %.2f s; %s "
                     "has %d datagrams)" % (what, deadline, self.clock.now(),
                                            self.name, len(rx)))
            time.sleep(0.01)

    def send(self, dest, data):
        self.sock.sendto(data, dest)

    def stop(self):
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()


class SendLogEndpoint(mc.TimedEndpoint):
    """A TimedEndpoint that remembers when (clock time) each frame went
    out, so a report's sequence number can be judged by time."""

    def __init__(self, clock, **kw):
        super().__init__(clock, **kw)
        self.sent_at = []          # (clock time, frame index k)

    def _on_sent(self, k):
        self.sent_at.append((self._clock.now(), k))

    def last_frame_before(self, t):
        last = None
        for ts, k in list(self.sent_at):
            if ts > t:
                break
            last = k
        return last


# ---------------------------------------------------------------- checks

def check_report(label, rx, alice, focus_port, want_lsr, errors):
    """One compound focusd sent alice: rx = (t, wall, src, data). Returns
    the SR packet dict (or fails when the compound cannot be judged)."""
    t, wall, src, data = rx
    log("%s: %d bytes from %s:%d at %.3f s: %s" % (label, len(data), src[0],
                                                   src[1], t,
                                                   hexdump(data)))
    if src != ("127.0.0.1", focus_port + 1):
        errors.append("%s came from %s:%d, expected 127.0.0.1:%d (focusd's "
                      "RTP port + 1)" % (label, src[0], src[1],
                                         focus_port + 1))
    pkts, errs = parse_compound(data)
    if errs:
        fail("%s: malformed compound: %s\n  bytes: %s"
             % (label, "; ".join(errs), hexdump(data)))
    pts = [p["pt"] for p in pkts]
    check(pts == [PT_SR, PT_SDES], "%s: packet types %r, expected [200 (SR), "
          "202 (SDES)]\n  bytes: %s" % (label, pts, hexdump(data)))
    sr, sdes = pkts
    rtp = alice.packets()
    ssrcs = sorted({p.ssrc for p in rtp})
    check(len(ssrcs) == 1, "%s: alice got RTP from focusd in SSRCs %s, "
          "expected one" % (label, ["%08x" % s for s in ssrcs]))
    focus_ssrc = ssrcs[0]
    if sr["ssrc"] != focus_ssrc:
        errors.append("%s: SR SSRC %08x, expected %08x (focusd's RTP to "
                      "alice)" % (label, sr["ssrc"], focus_ssrc))
    skew = wall_of(sr["ntp"]) - wall
    if abs(skew) > NTP_WITHIN_S:
        errors.append("%s: SR NTP time %016x is %.3f s from the wall clock "
                      "at arrival, expected within %.1f s"
                      % (label, sr["ntp"], skew, NTP_WITHIN_S))
    before = [p for p in rtp if p.t <= t]
    if before:
        last = before[-1]
        want_ts = (last.ts + int(round((t - last.t) * rtpep.RATE))) \
            & 0xFFFFFFFF
        dts = ((sr["rtp_ts"] - want_ts + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        if abs(dts) > RTP_TS_WITHIN:
            errors.append("%s: SR RTP timestamp %d, expected about %d (last "
                          "RTP ts %d, %.0f ms before), off by %d"
                          % (label, sr["rtp_ts"], want_ts, last.ts,
                             1000 * (t - last.t), dts))
    if abs(sr["packets"] - len(before)) > PACKETS_WITHIN:
        errors.append("%s: SR packet count %d, alice had received %d RTP "
                      "packets from focusd (expected within %d)"
                      % (label, sr["packets"], len(before), PACKETS_WITHIN))
    if sr["octets"] != rtpep.FRAME_SAMPLES * sr["packets"]:
        errors.append("%s: SR octet count %d, expected %d (160 payload "
                      "bytes x %d packets)" % (label, sr["octets"],
                                               160 * sr["packets"],
                                               sr["packets"]))
    log("%s: SR ssrc %08x ntp %016x (%+.3f s) rtp_ts %d packets %d (alice "
        "got %d) octets %d" % (label, sr["ssrc"], sr["ntp"], skew,
                               sr["rtp_ts"], sr["packets"], len(before),
                               sr["octets"]))
    # the report block about alice's stream
    blocks = sr["blocks"]
    if len(blocks) != 1:
        errors.append("%s: SR carries %d report blocks, expected 1 (about "
                      "alice's SSRC %08x)" % (label, len(blocks),
                                              alice.ssrc))
    else:
        b = blocks[0]
        log("%s: block ssrc %08x fraction %d lost %d ext_seq %d jitter %d "
            "lsr %08x dlsr %d (%.3f s)" % (label, b["ssrc"], b["fraction"],
                                           b["lost"], b["ext_seq"],
                                           b["jitter"], b["lsr"], b["dlsr"],
                                           b["dlsr"] / 65536.0))
        if b["ssrc"] != alice.ssrc:
            errors.append("%s: block about SSRC %08x, expected alice's "
                          "%08x" % (label, b["ssrc"], alice.ssrc))
        if b["lost"] != 0 or b["fraction"] != 0:
            errors.append("%s: block says lost %d, fraction %d; expected "
                          "0 and 0 (loopback)" % (label, b["lost"],
                                                  b["fraction"]))
        k = alice.last_frame_before(t)
        if k is None:
            errors.append("%s: alice had sent nothing when it arrived"
                          % label)
        else:
            hi = alice.seq0 + k
            if not hi - SEQ_LAG <= b["ext_seq"] <= hi + 1:
                errors.append("%s: block ext highest seq %d, alice's last "
                              "seq sent before it arrived was %d (expected "
                              "%d..%d)" % (label, b["ext_seq"], hi,
                                           hi - SEQ_LAG, hi + 1))
        if want_lsr is None:
            if b["lsr"] != 0 or b["dlsr"] != 0:
                errors.append("%s: LSR %08x DLSR %d, expected 0 and 0 "
                              "(alice sent no SR yet)" % (label, b["lsr"],
                                                          b["dlsr"]))
        else:
            lsr, sent_wall = want_lsr
            if b["lsr"] != lsr:
                errors.append("%s: LSR %08x, expected %08x (middle 32 bits "
                              "of alice's SR's NTP time)" % (label, b["lsr"],
                                                            lsr))
            held = wall - sent_wall
            if abs(b["dlsr"] / 65536.0 - held) > DLSR_WITHIN_S:
                errors.append("%s: DLSR %d (%.3f s), alice sent her SR %.3f "
                              "s before this arrived (expected within "
                              "%.1f s)" % (label, b["dlsr"],
                                           b["dlsr"] / 65536.0, held,
                                           DLSR_WITHIN_S))
    # SDES CNAME
    chunks = sdes.get("chunks", [])
    want_cname = "focusd-%08x" % focus_ssrc
    if len(chunks) != 1 or chunks[0][0] != sr["ssrc"] or \
            chunks[0][1] != [(1, want_cname.encode())]:
        errors.append("%s: SDES chunks %s, expected one for %08x with "
                      "CNAME %r only" % (label, [("%08x" % cs, items)
                                                 for cs, items in chunks],
                                         sr["ssrc"], want_cname))
    return sr


def rtcp_of(fd, port, who):
    p = mc.leg(mc.show(fd, ROOM), port)
    r = mc.rtp(p)
    c = r.get("rtcp")
    check(isinstance(c, dict), "conference.show: %s's rtp has no rtcp "
          "object: %r" % (who, r))
    return r, c


def wait_show(fd, port, who, pred, what):
    """Poll conference.show until pred(rtp, rtcp) holds (SHOW_WITHIN_S);
    returns (rtp, rtcp)."""
    seen = [None]

    def probe():
        r, c = rtcp_of(fd, port, who)
        seen[0] = (r.get("rx_foreign"), c)
        return (r, c) if pred(r, c) else None

    return harness.wait_for(probe, SHOW_WITHIN_S, interval=0.05,
                            what="%s: %s" % (who, what),
                            state=lambda: "rx_foreign %r, rtcp %r" % seen[0])


def expect_rtcp(who, c, want):
    """rtcp fields equal want {field: value}."""
    bad = {k: (c.get(k), v) for k, v in want.items() if c.get(k) != v}
    check(not bad, "conference.show: %s's rtcp %s (seen, expected); whole "
          "rtcp %r" % (who, ", ".join("%s %r vs %r" % (k, s, w)
                                     for k, (s, w) in sorted(bad.items())),
                       c))


# ---------------------------------------------------------------- main

def main():
    clock = mc.Clock()
    eps, runs, socks = {}, {}, []
    ports = {}
    with harness.Focusd(auto_create=True) as fd:
        try:
            for name in ("alice", "bob"):
                base = harness.free_media_base()   # even, base..base+3 ours
                ep = SendLogEndpoint(clock, port=base, freq=TONES[name],
                                     name=name, max_duration=40).start()
                eps[name] = ep
                if name == "alice":
                    rtcp1 = RtcpSocket(clock, base + 1, "alice:P+1")
                    rtcp3 = RtcpSocket(clock, base + 3, "alice:P+3")
                    socks += [rtcp1, rtcp3]
                run, port = mc.join(fd, ROOM, ep, name, LINGER_MS[name])
                runs[name] = run
                ep.start_sending(("127.0.0.1", port))
                ports[name] = port
                if name == "alice":
                    t_join = clock.now()
                log("%s joined at %.2f s: RTP :%d -> focusd :%d"
                    % (name, clock.now(), ep.port, port))
            alice = eps["alice"]
            a_port, b_port = ports["alice"], ports["bob"]
            focus_rtcp = ("127.0.0.1", a_port + 1)
            errors = []

            # -- focusd's first report, on alice's RTP port + 1
            first = rtcp1.wait(1, t_join + FIRST_WITHIN_S,
                               "focusd's first RTCP to alice's port %d"
                               % (alice.port + 1))[0]
            log("first report %.3f s after alice's join"
                % (first[0] - t_join))
            sr1 = check_report("report 1", first, alice, a_port, None,
                               errors)
            check(not errors, "focusd's first RTCP report to alice:\n  " +
                  "\n  ".join(errors))
            focus_ssrc = sr1["ssrc"]
            r, c = rtcp_of(fd, a_port, "alice")
            log("alice before her RTCP: rx_foreign %r rtcp %r"
                % (r.get("rx_foreign"), c))
            expect_rtcp("alice", c, {"rx_sr": 0, "rx_rr": 0,
                                     "rx_malformed": 0, "rtt_ms": None,
                                     "peer": None})
            check(isinstance(c.get("tx"), int) and c["tx"] >= 1,
                  "conference.show: alice's rtcp.tx %r after focusd's first "
                  "report reached her, expected >= 1" % c.get("tx"))
            foreign0 = r.get("rx_foreign")
            check(isinstance(foreign0, int), "conference.show: alice's "
                  "rtp.rx_foreign is %r, expected an integer" % foreign0)

            # -- alice's SR, then her RR on focusd's stream (from P+3)
            clock.sleep_until(first[0] + REPLY_AFTER_S)
            cname = b"alice@focusd-test"
            k = alice.last_frame_before(clock.now()) or 0
            sr_wall = time.time()
            sr_ntp = ntp_of(sr_wall)
            alice_sr = sr_bytes(alice.ssrc, sr_ntp,
                                alice.ts0 + k * rtpep.FRAME_SAMPLES,
                                alice.sent, alice.sent * 160) + \
                sdes_bytes(alice.ssrc, cname.decode())
            rtcp3.send(focus_rtcp, alice_sr)
            last_seq = alice.packets()[-1].seq
            held = time.time() - first[1]
            dlsr = int(round((held - FAKE_DELAY_S) * 65536))
            alice_rr = rr_bytes(alice.ssrc, [block_bytes(
                focus_ssrc, BLOCK_FRACTION, BLOCK_LOST, last_seq,
                BLOCK_JITTER, mid32(sr1["ntp"]), dlsr)]) + \
                sdes_bytes(alice.ssrc, cname.decode())
            rtcp3.send(focus_rtcp, alice_rr)
            t_rr = clock.now()
            log("alice sent SR (ntp %016x, lsr-to-be %08x) and RR (lsr "
                "%08x, dlsr %d = %.3f s held - %.3f s) from :%d at %.3f s"
                % (sr_ntp, mid32(sr_ntp), mid32(sr1["ntp"]), dlsr, held,
                   FAKE_DELAY_S, rtcp3.port, t_rr))
            r, c = wait_show(fd, a_port, "alice",
                             lambda r, c: c.get("rtt_ms") is not None and
                             c.get("peer") is not None and
                             c.get("rx_sr", 0) >= 1 and
                             c.get("rx_rr", 0) >= 1,
                             "rtcp rx_sr/rx_rr >= 1, rtt_ms and peer set "
                             "after her SR and RR")
            log("alice after her SR and RR (%.2f s later): rtcp %r"
                % (clock.now() - t_rr, c))
            expect_rtcp("alice", c, {"rx_sr": 1, "rx_rr": 1,
                                     "rx_malformed": 0, "peer": PEER_WANT})
            rtt = c["rtt_ms"]
            check(isinstance(rtt, int) and RTT_MS[0] <= rtt <= RTT_MS[1],
                  "conference.show: alice's rtcp.rtt_ms %r, expected %d..%d "
                  "(her DLSR hid %.0f ms)" % (rtt, RTT_MS[0], RTT_MS[1],
                                             1000 * FAKE_DELAY_S))
            # what the foreign RTCP below must leave as it is
            kept = {k: c[k] for k in ("rx_sr", "rx_rr", "rx_malformed",
                                      "rtt_ms", "peer")}

            def expect_foreign(foreign0, what):
                """After one RR from `what`: alice's rtp.rx_foreign +1 and
                her rtcp as it was; returns the new count."""
                r, c = wait_show(fd, a_port, "alice",
                                 lambda r, c: r.get("rx_foreign") !=
                                 foreign0, "rtp.rx_foreign %d -> %d after "
                                 "an RR from %s" % (foreign0, foreign0 + 1,
                                                    what))
                check(r["rx_foreign"] == foreign0 + 1, "conference.show: "
                      "alice's rtp.rx_foreign %d -> %d after one RR from "
                      "%s, expected +1" % (foreign0, r["rx_foreign"], what))
                expect_rtcp("alice (after RTCP from %s)" % what, c, kept)
                log("RR from %s: rx_foreign %d, rtcp unchanged"
                    % (what, foreign0 + 1))
                return foreign0 + 1

            # -- an RR from another address: rx_foreign, rtcp untouched
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.2", 0))
            except OSError as e:
                s = None
                log("note: cannot bind 127.0.0.2 (%s); foreign RTCP not "
                    "tried" % e)
            if s is not None:
                try:
                    s.sendto(rr_bytes(0x0BADBAD0, [block_bytes(
                        focus_ssrc, 128, 99, last_seq, 800, 0, 0)]),
                        focus_rtcp)
                finally:
                    s.close()
                foreign0 = expect_foreign(foreign0, "127.0.0.2")

            # -- an RR from her address but not her RTCP's port: foreign
            rtcp1.send(focus_rtcp, rr_bytes(0x0BADBAD1, [block_bytes(
                focus_ssrc, 128, 99, last_seq, 800, 0, 0)]))
            foreign0 = expect_foreign(foreign0, "P+1 (her RTCP latched onto "
                                      "P+3)")

            # -- garbage to focusd's RTCP port from P+3
            rtp_pkt = struct.pack("!BBHII", 0x80, 0, 1234, 5678,
                                  alice.ssrc) + b"\xff" * 160
            trunc_sr = sr_bytes(alice.ssrc, ntp_of(time.time()), 0, 1,
                                160)[:20]
            junks = (rtp_pkt, trunc_sr, b"\x80\xc9\x00", b"\x00" * 8)
            for junk in junks:
                rtcp3.send(focus_rtcp, junk)
            r, c = wait_show(fd, a_port, "alice",
                             lambda r, c: c.get("rx_malformed", 0) >=
                             len(junks),
                             "rtcp.rx_malformed %d after an RTP packet, a "
                             "truncated SR, 3 bytes and version 0"
                             % len(junks))
            log("alice after the garbage: rx_foreign %r rtcp %r"
                % (r.get("rx_foreign"), c))
            expect_rtcp("alice (after the garbage)", c,
                        dict(kept, rx_malformed=len(junks)))
            check(r.get("rx_foreign") == foreign0, "conference.show: "
                  "alice's rtp.rx_foreign %r after the garbage, expected "
                  "%d" % (r.get("rx_foreign"), foreign0))

            # -- bob sends no RTCP; his first report is due a second
            # after his join, which may be later than this on a busy
            # machine
            r, c = wait_show(fd, b_port, "bob",
                             lambda r, c: isinstance(c.get("tx"), int) and
                             c["tx"] >= 1,
                             "rtcp.tx an integer >= 1 (a report a second "
                             "after the join)")
            log("bob: rtcp %r" % c)
            expect_rtcp("bob", c, {"rx_sr": 0, "rx_rr": 0,
                                   "rx_malformed": 0, "rtt_ms": None,
                                   "peer": None})

            # -- focusd's second report: to P+3, where alice's RTCP came
            # from, 2.5-7.5 s after the first
            lo = first[0] + INTERVAL_S[0] - INTERVAL_SLACK_S[0]
            hi = first[0] + INTERVAL_S[1] + INTERVAL_SLACK_S[1]
            second = rtcp3.wait(1, hi, "focusd's second RTCP report to "
                                "alice, on :%d (where hers came from)"
                                % rtcp3.port)[0]
            gap = second[0] - first[0]
            log("second report %.3f s after the first" % gap)
            if second[0] < lo:
                errors.append("the second report came %.3f s after the "
                              "first, expected %.1f..%.1f s"
                              % (gap, INTERVAL_S[0], INTERVAL_S[1]))
            sr2 = check_report("report 2", second, alice, a_port,
                               (mid32(sr_ntp), sr_wall), errors)
            if sr2["packets"] <= sr1["packets"]:
                errors.append("report 2: packet count %d, not more than "
                              "report 1's %d" % (sr2["packets"],
                                                 sr1["packets"]))
            more = rtcp1.received()[1:]
            if more:
                errors.append("%d more datagrams on alice's :%d after "
                              "focusd learnt her RTCP comes from :%d, "
                              "first at %.3f s: %s"
                              % (len(more), rtcp1.port, rtcp3.port,
                                 more[0][0], hexdump(more[0][3])))
            check(not errors, "focusd's RTCP to alice:\n  " +
                  "\n  ".join(errors))

            # -- the calls end; then focusd must exit 0 (the with block)
            order = ["alice", "bob"]
            mc.finish_calls([runs[n] for n in order],
                            [eps[n] for n in order], clock)
            log("alice's RTCP sockets: :%d got %d, :%d got %d datagrams"
                % (rtcp1.port, len(rtcp1.received()), rtcp3.port,
                   len(rtcp3.received())))
        finally:
            for s in socks:
                s.stop()
            for ep in eps.values():
                ep.stop()
            for run in runs.values():
                run.kill()


if __name__ == "__main__":
    harness.run_main(main)
