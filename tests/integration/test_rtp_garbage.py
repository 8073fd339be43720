#!/usr/bin/env python3
"""Junk on the RTP ports is counted and dropped, never mixed.

It starts focusd with --auto-create; alice (500 Hz) and bob (1100 Hz)
join junk1 with uac_join and send their tones. Once alice's leg has
latched onto her address (conference.show: rtp.latched, remote_rtp is
her socket), it attacks alice's focusd RTP port:

(a) GARBAGE_N datagrams of random bytes that are not RTP version 2 (the
    version bits are forced to 0, 1 or 3; sizes from 1 to 300 bytes) from
    another socket: the io lcore drops them before any worker sees them,
    so stats io.rx_malformed grows by exactly GARBAGE_N, while alice's leg
    counters rx_foreign and rx_malformed do not move. Then V2_BAD_N
    datagrams that do say version 2 but do not parse (CSRC count 15 in 12
    bytes) from alice's own, latched socket: they pass the io lcore's
    two-byte check and the worker counts them on alice's leg
    (rtp.rx_malformed), io.rx_malformed does not move.
(b) valid PCMU RTP with a loud 2700 Hz tone (-3 dBFS) for FOREIGN_S from
    another socket: alice's rtp.rx_foreign grows by at least the number
    sent, her remote_rtp stays her own socket, and bob does not hear 2700
    Hz (>= FOREIGN_REJECT_DB under alice's tone, which he still hears).
(c) RTP to an even port in focusd's range that no participant has:
    README says such packets are dropped and the io lcore counts them
    (io.rx_no_flow). RTP to the odd port above alice's, her RTCP port, is
    not RTCP: alice's rtp.rtcp.rx_malformed grows by the count and
    nothing else breaks. With the socket dataplane no
    socket is bound there, so the kernel refuses them (ICMP port
    unreachable, seen here as ECONNREFUSED) and focusd never receives
    them. The test accepts either: io.rx_no_flow grew by the count, or
    the kernel refused every packet and rx_no_flow did not move; a port
    that accepted packets without rx_no_flow growing fails.
(d) afterwards focusd is alive, alice and bob still hear each other, both
    calls end with 200 OK to BYE and focusd exits 0 on SIGTERM.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_rtp_garbage.py (exit status 0 on pass).
"""

import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpep  # noqa: E402
from harness import check, log  # noqa: E402

ROOM = "junk1"
FREQ = {"alice": 500, "bob": 1100}
STAY_MS = 12000
FOREIGN_HZ = 2700        # not a harmonic of 500 Hz (what bob hears)
FOREIGN_DBFS = -3.0
FOREIGN_S = 2.0
GARBAGE_N = 50
V2_BAD_N = 20
NO_FLOW_N = 30
MIN_TONE_DBFS = -30.0
MIN_SNR_DB = 20.0
FOREIGN_REJECT_DB = 30.0
MIN_AUDIO_S = 0.5        # audio that must have arrived in a window
COUNTER_WAIT_S = 2.0


def garbage(rng):
    """Random bytes whose first byte does not say RTP version 2."""
    n = rng.randint(1, 300)
    b = bytearray(rng.getrandbits(8) for _ in range(n))
    b[0] = (rng.choice((0, 1, 3)) << 6) | (b[0] & 0x3F)
    return bytes(b)


def v2_unparseable(rng):
    """12 bytes, version 2, CSRC count 15: the header claims 72 bytes."""
    return struct.pack("!BBHII", 0x80 | 0x0F, 0, rng.getrandbits(16),
                       rng.getrandbits(32), rng.getrandbits(32))


def rtp_packet(seq):
    hdr = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, 0x1234)
    return hdr + bytes([rtpep.MULAW_SILENCE]) * 160


def wait_counter(get, want, what):
    """Poll get() until it is >= want or COUNTER_WAIT_S passes; returns
    the last value."""
    deadline = time.monotonic() + COUNTER_WAIT_S
    while True:
        v = get()
        if v >= want or time.monotonic() >= deadline:
            log("%s: %d (want >= %d)" % (what, v, want))
            return v
        time.sleep(0.05)


def send_refused(port, count):
    """Send count RTP packets to 127.0.0.1:port from a connected socket;
    returns how many the kernel refused (ECONNREFUSED from ICMP port
    unreachable, reported on the next call on the socket)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    refused = 0
    try:
        s.bind(("127.0.0.1", 0))
        s.connect(("127.0.0.1", port))
        s.settimeout(0.02)
        for i in range(count):
            try:
                s.send(rtp_packet(i))
            except ConnectionRefusedError:
                refused += 1
                continue
            try:
                s.recv(2048)
            except ConnectionRefusedError:
                refused += 1
            except socket.timeout:
                pass
    finally:
        s.close()
    return refused


def main():
    clock = mc.Clock()
    rng = random.Random(0x5eed)
    eps = {}
    runs = []
    failed = True
    foreign = None
    with harness.Focusd(auto_create=True) as fd:
        try:
            ports = {}
            for name, f in FREQ.items():
                eps[name] = mc.TimedEndpoint(clock, freq=f, name=name,
                                             max_duration=40).start()
                run, port = mc.join(fd, ROOM, eps[name], name, STAY_MS)
                runs.append(run)
                ports[name] = port
                eps[name].start_sending(("127.0.0.1", port))
                log("%s in %s at %.2f s: %d Hz from :%d to focusd :%d"
                    % (name, ROOM, clock.now(), f, eps[name].port, port))
            target = ("127.0.0.1", ports["alice"])
            alice_addr = "127.0.0.1:%d" % eps["alice"].port

            def alice_leg():
                return mc.leg(mc.show(fd, ROOM), ports["alice"])

            def latched():
                p = alice_leg()
                r = p.get("rtp") or {}
                return p if r.get("latched") and r.get("rx_packets", 0) > 5 \
                    else None

            p0 = harness.wait_for(latched, 3.0, interval=0.05,
                                  what="alice's leg latched")
            check(p0.get("remote_rtp") == alice_addr, "alice's leg latched "
                  "to %r, she sends from %s" % (p0.get("remote_rtp"),
                                                alice_addr))

            # -- (a) not RTP v2, from elsewhere: the io lcore drops it
            io0 = mc.io_stats(fd)
            r0 = mc.rtp(alice_leg())
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", 0))
                junk_src = s.getsockname()
                for _ in range(GARBAGE_N):
                    s.sendto(garbage(rng), target)
            finally:
                s.close()
            log("(a) sent %d non-RTPv2 datagrams from %s:%d to alice's "
                "focusd port %d" % (GARBAGE_N, junk_src[0], junk_src[1],
                                    ports["alice"]))
            wait_counter(lambda: mc.io_stats(fd)["rx_malformed"]
                         - io0["rx_malformed"], GARBAGE_N,
                         "io.rx_malformed growth")
            time.sleep(0.2)       # let anything misrouted reach the worker
            io1 = mc.io_stats(fd)
            r1 = mc.rtp(alice_leg())
            d_io = io1["rx_malformed"] - io0["rx_malformed"]
            d_nf = io1["rx_no_flow"] - io0["rx_no_flow"]
            d_for = r1["rx_foreign"] - r0["rx_foreign"]
            d_mal = r1["rx_malformed"] - r0["rx_malformed"]
            log("(a) io.rx_malformed +%d, io.rx_no_flow +%d; alice's leg "
                "rx_foreign +%d, rx_malformed +%d" % (d_io, d_nf, d_for,
                                                       d_mal))
            check(d_io == GARBAGE_N, "(a) %d non-RTPv2 datagrams to a "
                  "participant's port: stats io.rx_malformed grew by %d "
                  "(%d -> %d), expected exactly %d"
                  % (GARBAGE_N, d_io, io0["rx_malformed"],
                     io1["rx_malformed"], GARBAGE_N))
            check(d_for == 0 and d_mal == 0, "(a) non-RTPv2 datagrams must "
                  "stop at the io lcore, but alice's leg counted "
                  "rx_foreign +%d, rx_malformed +%d" % (d_for, d_mal))
            check(d_nf == 0, "(a) io.rx_no_flow grew by %d for datagrams "
                  "to a port that has a participant" % d_nf)

            # version 2 but unparseable, from alice's own socket
            for _ in range(V2_BAD_N):
                eps["alice"].send_raw(target, v2_unparseable(rng))
            wait_counter(lambda: mc.rtp(alice_leg())["rx_malformed"]
                         - r1["rx_malformed"], V2_BAD_N,
                         "alice's rtp.rx_malformed growth")
            io2 = mc.io_stats(fd)
            r2 = mc.rtp(alice_leg())
            d_io = io2["rx_malformed"] - io1["rx_malformed"]
            d_mal = r2["rx_malformed"] - r1["rx_malformed"]
            d_for = r2["rx_foreign"] - r1["rx_foreign"]
            log("(a) %d unparseable v2 packets from alice's own socket: "
                "alice's leg rx_malformed +%d, rx_foreign +%d; "
                "io.rx_malformed +%d" % (V2_BAD_N, d_mal, d_for, d_io))
            check(d_mal == V2_BAD_N and d_io == 0 and d_for == 0,
                  "(a) %d version-2 packets that do not parse, from the "
                  "latched address: expected alice's rtp.rx_malformed +%d "
                  "and nothing else; got rx_malformed +%d, rx_foreign +%d, "
                  "io.rx_malformed +%d" % (V2_BAD_N, V2_BAD_N, d_mal, d_for,
                                           d_io))

            # -- (b) valid RTP from a foreign address after the latch
            foreign = mc.TimedEndpoint(clock, freq=FOREIGN_HZ,
                                       amplitude_dbfs=FOREIGN_DBFS,
                                       name="mallory",
                                       max_duration=20).start()
            t_f0 = clock.now()
            foreign.start_sending(target)
            time.sleep(FOREIGN_S)
            foreign.stop_sending()
            t_f1 = clock.now()
            n_foreign = foreign.sent
            log("(b) mallory sent %d RTP packets of %d Hz at %.0f dBFS from "
                ":%d to alice's focusd port %d, %.2f-%.2f s"
                % (n_foreign, FOREIGN_HZ, FOREIGN_DBFS, foreign.port,
                   ports["alice"], t_f0, t_f1))
            check(n_foreign >= 0.8 * FOREIGN_S / rtpep.PTIME_S,
                  "(b) the foreign sender got out only %d packets in %.1f s"
                  % (n_foreign, FOREIGN_S))
            wait_counter(lambda: mc.rtp(alice_leg())["rx_foreign"]
                         - r2["rx_foreign"], n_foreign,
                         "alice's rtp.rx_foreign growth")
            p3 = alice_leg()
            r3 = mc.rtp(p3)
            d_for = r3["rx_foreign"] - r2["rx_foreign"]
            check(d_for >= n_foreign, "(b) %d RTP packets from %s:%d (not "
                  "alice's latched %s): alice's rtp.rx_foreign grew by %d "
                  "(%d -> %d), expected >= %d"
                  % (n_foreign, "127.0.0.1", foreign.port, alice_addr,
                     d_for, r2["rx_foreign"], r3["rx_foreign"], n_foreign))
            check(p3.get("remote_rtp") == alice_addr, "(b) after foreign "
                  "RTP alice's remote_rtp is %r, expected her own %s (the "
                  "latch must not move)" % (p3.get("remote_rtp"),
                                            alice_addr))
            check(mc.rtp(p3)["latched"] is True, "(b) alice's leg is no "
                  "longer latched: %r" % r3)

            lv, noise, fill = mc.levels(eps["bob"], [FREQ["alice"],
                                                     FOREIGN_HZ],
                                        t_f0 + 0.2, t_f1)
            log("(b) bob hears, %.2f-%.2f s: %s"
                % (t_f0 + 0.2, t_f1, mc.describe("bob", lv, noise, fill)))
            a, x = lv[FREQ["alice"]], lv[FOREIGN_HZ]
            problems = []
            if a - x < FOREIGN_REJECT_DB:
                problems.append("the foreign %d Hz is only %.1f dB under "
                                "alice's 500 Hz (expected >= %.0f dB under)"
                                % (FOREIGN_HZ, a - x, FOREIGN_REJECT_DB))
            if fill * (t_f1 - t_f0 - 0.2) < MIN_AUDIO_S or a < MIN_TONE_DBFS:
                problems.append("alice's 500 Hz is below %.0f dBFS or "
                                "less than %.1f s of audio arrived"
                                % (MIN_TONE_DBFS, MIN_AUDIO_S))
            check(not problems, "(b) while foreign RTP hits alice's port, "
                  "bob hears 500 Hz (alice) at %.1f dBFS and %d Hz "
                  "(foreign) at %.1f dBFS, %.0f%% of samples: %s"
                  % (a, FOREIGN_HZ, x, 100 * fill, "; ".join(problems)))

            # -- (c) ports nobody has
            used = set(ports.values())
            empty = next(p for p in range(fd.rtp.lo + 100, fd.rtp.hi, 2)
                         if p not in used)
            odd = ports["alice"] + 1
            bad0 = alice_leg()["rtp"]["rtcp"]["rx_malformed"]
            refused = send_refused(odd, NO_FLOW_N)
            bad = wait_counter(
                lambda: alice_leg()["rtp"]["rtcp"]["rx_malformed"] - bad0,
                NO_FLOW_N, "alice's rtcp.rx_malformed growth")
            log("(c) %d RTP packets to alice's RTCP port %d: kernel "
                "refused %d, rtcp.rx_malformed +%d" % (NO_FLOW_N, odd,
                                                       refused, bad))
            check(refused == 0 and bad == NO_FLOW_N, "(c) %d RTP packets "
                  "to alice's RTCP port %d: the kernel refused %d and "
                  "rtcp.rx_malformed grew by %d; expected 0 refused (the "
                  "port is bound) and +%d (RTP is not RTCP)"
                  % (NO_FLOW_N, odd, refused, bad, NO_FLOW_N))
            for port, what in ((empty, "even port with no participant"),):
                io_a = mc.io_stats(fd)
                refused = send_refused(port, NO_FLOW_N)
                time.sleep(0.3)
                got = mc.io_stats(fd)["rx_no_flow"] - io_a["rx_no_flow"]
                if got < NO_FLOW_N and refused < NO_FLOW_N - 1:
                    got = wait_counter(
                        lambda: mc.io_stats(fd)["rx_no_flow"]
                        - io_a["rx_no_flow"], NO_FLOW_N,
                        "io.rx_no_flow growth for %d" % port)
                log("(c) %d RTP packets to %s %d: kernel refused %d, "
                    "io.rx_no_flow +%d" % (NO_FLOW_N, what, port, refused,
                                           got))
                if got >= NO_FLOW_N:
                    continue
                check(got == 0 and refused >= NO_FLOW_N - 1,
                      "(c) %d RTP packets to the %s %d (in --rtp-ports "
                      "%d-%d): io.rx_no_flow grew by %d and the kernel "
                      "refused %d; expected rx_no_flow +%d, or (socket "
                      "dataplane: nothing bound there) every packet refused"
                      % (NO_FLOW_N, what, port, fd.rtp.lo, fd.rtp.hi, got,
                         refused, NO_FLOW_N))
                log("(c) NOTE: io.rx_no_flow did not count these: with the "
                    "socket dataplane no socket is bound on port %d, the "
                    "kernel answers ICMP port unreachable and focusd never "
                    "sees the packets" % port)

            # -- (d) still alive, still mixing
            check(fd.alive(), "(d) focusd died")
            t_d0 = clock.now()
            time.sleep(1.7)
            t_d1 = clock.now()
            for name, other in (("alice", "bob"), ("bob", "alice")):
                lv, noise, fill = mc.levels(eps[name], list(FREQ.values())
                                            + [FOREIGN_HZ], t_d0 + 0.2, t_d1)
                log("(d) %s" % mc.describe(name, lv, noise, fill))
                f = FREQ[other]
                check(fill * (t_d1 - t_d0 - 0.2) >= MIN_AUDIO_S and
                      lv[f] >= MIN_TONE_DBFS and
                      lv[f] - noise >= MIN_SNR_DB,
                      "(d) after the junk %s hears %s (%d Hz) at %.1f dBFS "
                      "(noise %.1f dBFS, %.0f%% of samples); expected >= "
                      "%.0f dBFS, >= %.0f dB over the noise, >= %.1f s of "
                      "audio" % (name, other, f, lv[f], noise, 100 * fill,
                                 MIN_TONE_DBFS, MIN_SNR_DB, MIN_AUDIO_S))
            check(t_d1 < STAY_MS / 1000.0, "the test ran past the calls "
                  "(%.2f s); machine too slow" % t_d1)
            mc.finish_calls(runs, [eps["alice"], eps["bob"]], clock)
            failed = False
        finally:
            if foreign is not None:
                foreign.stop()
            for ep in eps.values():
                ep.stop()
            for run in runs:
                if failed:
                    run.kill()
                    sys.stderr.write(run.report(lines=30) + "\n")
                else:
                    run.kill()


if __name__ == "__main__":
    harness.run_main(main)
