#!/usr/bin/env python3
"""The DPDK port: four parties whose RTP crosses a real Ethernet edge.

It starts focusd with --dataplane dpdk on a net_tap vdev (EAL without
hugepages or PCI) owning 10.78.X.1 (X from the test's PID), moves the tap
interface into a network namespace of its own, gives it 10.78.X.2/24
and an Ethernet address of its own there (net_tap gives the kernel's side
the port's address; two hosts on a link have two), and then plays the
hosts on that link: all RTP and ICMP comes from sockets opened inside
the namespace (the test enters it with setns() just to open them), while
SIP stays on loopback in the root namespace, as focusd's does. The
namespace has a second address, 10.78.X.3, that nothing ever sends from:
focusd learns no Ethernet address for it unless it asks (ARP).

What it checks:
- focusd's log line for the port: "dataplane: port N (DRIVER), MAC, link
  up at S Mbit/s; Q TX queues; checksums on RX W, on TX W", each W one
  of software, IPv4 by the NIC, UDP by the NIC, IPv4 and UDP by the NIC;
  stats io.edge.csum_offload (rx_ipv4, rx_udp, tx_ipv4, tx_udp, all
  booleans) says the same as those words.
- ICMP echo from the namespace to 10.78.X.1 (raw socket; payloads of 56,
  0, 1, 999 and 1472 bytes, the last filling a 1500-byte MTU): every
  request is answered from 10.78.X.1 with type 0, the same identifier,
  sequence number and data, and a valid checksum; the namespace's ARP
  table then holds 10.78.X.1 at the port's Ethernet address (the one
  focusd logs as it starts the port), not the namespace's own.
- Three callers (alice 500 Hz, bob 1100 Hz, carol 1900 Hz, PCMU at -12
  dBFS) with SIPp offers that say c=IN IP4 10.78.X.2 and RTP endpoints
  bound to 10.78.X.2 in the namespace, then a fourth, dave, who sends
  no RTP at all: his endpoint only listens, on 10.78.X.3, and his offer
  says c=IN IP4 10.78.X.3. Each answer is c=IN IP4 10.78.X.1 with a port
  in --rtp-ports. Before dave calls, stats io.edge has tx_held and
  tx_unresolved 0 (the pings taught focusd 10.78.X.2).
- While all four are in, each of the three hears the other two tones (>=
  -30 dBFS, 20 dB over the noise probes) and not its own (20 dB under
  each of the others), and dave hears all three, over a 2 s window, each
  with 80% of its samples; conference.show lists four participants and
  gives each local_rtp 10.78.X.1:(its answered port) and remote_rtp
  (its endpoint's address and port); the three have rtp.latched true and
  rx/tx_packets over 100, dave rtp.latched false, rx_packets 0 and
  tx_packets over 100.
- Every packet focusd sent an endpoint (dave's included) came from
  10.78.X.1 and the answered port, PT 0 with 160 bytes, one SSRC, seq +1
  and timestamp +160, the marker bit on the first only (focusd marks the
  first packet of a stream: a first without it means the ones before it
  were lost); dave's first packet arrives within 0.5 s of his 200 OK
  (SIPp's trace time of the 200, the kernel's arrival time of the RTP).
- stats io.edge at the end: icmp_echo >= the echoes sent, arp_replies >=
  1, and no drops of what the namespace's kernel sent (rx_short,
  rx_bad_ip, rx_bad_csum, rx_fragments all 0); tx_held >= 1 and
  tx_unresolved 0: focusd had to ask for 10.78.X.3 before its first
  packets to dave could go, and held them until the answer instead of
  dropping them. Every SIPp call succeeds.
- Then, all gone: UDP from the namespace to the range's first port and
  to port 9 is refused: the sending socket gets ECONNREFUSED within 2 s
  (the namespace's kernel took focusd's ICMP port unreachable as valid
  and as quoting that datagram), and io.edge.icmp_unreach grew by 2 or
  more. focusd runs with --io-idle-us 100, and, idle, uses under half a
  core (its CPU time over 1 s; spinning, the io lcore alone takes most
  of one). focusd exits 0 on SIGTERM.

Skips (exit status 77, meson's "skipped") when the machine cannot host
the link: no `ip`, no /dev/net/tun or no right to make a tap
(CAP_NET_ADMIN), no network namespace, no setns(); or when focusd's EAL
or its vdev cannot start there (the reason quoted from focusd's log).
Any other failure of the DPDK port to start is a failure.

Cleanup, pass or fail (and on SIGTERM from meson): focusd is stopped (by
its PID), then a tap interface of ours still present in either namespace
is deleted and the namespace removed. Names carry the PID (tap fdtPID,
namespace focusd-dpt-PID), so parallel runs do not collide.

Run by hand (as root): FOCUSD=build/daemon/focusd \
SIPP_SCENARIOS=$PWD/tests/sipp FOCUSCTL=build/mgmt/focusctl python3 \
tests/integration/test_dpdk_port.py (exit status 0 pass, 77 skipped).
"""

import ctypes
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpep  # noqa: E402
import sdpcall  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, fail, log  # noqa: E402

SKIP_STATUS = 77                   # meson: the test was skipped
PID = os.getpid()
NET = "10.78.%d" % (PID % 250 + 1)
FOCUS_ADDR = NET + ".1"            # focusd's --rtp-addr on the port
PEER_ADDR = NET + ".2"             # the namespace's end of the link
QUIET_ADDR = NET + ".3"            # a second one there; nothing sends from it
PEER_MAC = "02:00:5e:4e:%02x:02" % (PID % 250 + 1)  # the namespace's end
TAP = "fdt%d" % PID                # <= 15 characters: PIDs < 10^12
NETNS = "focusd-dpt-%d" % PID
ROOM = "room1"
# name, tone (Hz), time in the call after the 200 OK (ms): earlier joiners
# stay longer so that all four are in together for >= 3 s.
PARTIES = [("alice", 500, 6500), ("bob", 1100, 5500), ("carol", 1900, 4500)]
# The fourth caller joins last and sends nothing; his endpoint on
# QUIET_ADDR only listens.
LISTENER, LISTENER_LINGER_MS = "dave", 4000
FIRST_RTP_S = 0.5                  # his first packet after his 200 OK
MIN_OVERLAP_S = 3.0
WINDOW_S = (0.5, 2.5)              # after the last answer
SHOW_AT_S = 2.9                    # conference.show, after the last answer
OWN_REJECT_DB = 20.0               # own tone under each other tone
MIN_RTP_PACKETS = 100              # conference.show rx/tx, per leg
# focusd's words for the checksums a port's NIC takes (bit 0: IPv4's,
# bit 1: UDP's), as its start-up line has them
CSUM_WORDS = ("software", "IPv4 by the NIC", "UDP by the NIC",
              "IPv4 and UDP by the NIC")
IO_IDLE_US = 100                   # the io lcore's nap when quiet
IDLE_CPU_S = 1.0                   # focusd's CPU use measured over this
MAX_IDLE_CPU = 0.5                 # of one core (spinning: about 0.85-1)
UNREACH_TIMEOUT_S = 2.0
PING_SIZES = (56, 0, 1, 999, 1472)  # 1472: 1500-byte IPv4 packets
PING_TIMEOUT_S = 2.0
IP_TIMEOUT_S = 5.0                 # each `ip` command
CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454ca
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


class Skip(Exception):
    """The machine cannot run this test; the message says why."""


class Terminated(BaseException):
    """SIGTERM (meson's timeout): unwind so that cleanup runs."""


def _on_sigterm(signum, frame):
    raise Terminated("SIGTERM")


# ---------------------------------------------------------------- the link

def ip(*args, ok=True):
    """`ip ARGS`; returns (status, stdout + stderr). ok: fail unless 0."""
    try:
        r = subprocess.run(["ip"] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=IP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        fail("`ip %s` did not finish within %.0f s"
             % (" ".join(args), IP_TIMEOUT_S))
    out = r.stdout.decode("utf-8", "replace").strip()
    if ok:
        check(r.returncode == 0, "`ip %s` exited with %d, expected 0: %s"
              % (" ".join(args), r.returncode, out))
    return r.returncode, out


def probe_tap():
    """Skip unless this process may make a tap interface (a throwaway
    one: it goes away when the descriptor closes)."""
    if not os.path.exists("/dev/net/tun"):
        raise Skip("no /dev/net/tun: net_tap cannot make its interface")
    try:
        fdn = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as e:
        raise Skip("cannot open /dev/net/tun: %s" % e)
    try:
        req = struct.pack("16sH22x", ("fdq%d" % PID).encode(),
                          IFF_TAP | IFF_NO_PI)
        fcntl.ioctl(fdn, TUNSETIFF, req)
    except OSError as e:
        raise Skip("cannot create a tap interface (TUNSETIFF: %s; needs "
                   "CAP_NET_ADMIN)" % e)
    finally:
        os.close(fdn)


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fdn):
    if _libc.setns(fdn, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Netns:
    """The namespace NETNS; sockets made inside with `with ns.inside():`
    stay in it whichever thread uses them."""

    def __init__(self, name):
        self.name = name
        self.created = False

    def create(self):
        if shutil.which("ip") is None:
            raise Skip("no `ip` command (iproute2)")
        rc, out = ip("netns", "add", self.name, ok=False)
        if rc != 0:
            raise Skip("cannot create a network namespace (`ip netns add "
                       "%s`: %s)" % (self.name, out))
        self.created = True
        try:
            with self.inside():
                pass
        except OSError as e:
            raise Skip("cannot enter the network namespace with setns(): "
                       "%s" % e)

    def inside(self):
        return _Inside(self.name)

    def run(self, *args, ok=True):
        return ip("-n", self.name, *args, ok=ok)

    def remove(self):
        if self.created:
            rc, out = ip("netns", "del", self.name, ok=False)
            if rc != 0:
                log("cleanup: `ip netns del %s`: %s" % (self.name, out))
            self.created = False


class _Inside:
    """The calling thread in the namespace for the with block, then back
    where it was (failing loudly if it cannot get back)."""

    def __init__(self, name):
        self.path = os.path.join("/run/netns", name)

    def __enter__(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(self.path, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
        except OSError:
            os.close(self.home)
            raise
        return self

    def __exit__(self, *exc):
        try:
            _setns(self.home)
        except OSError as e:
            # SIPp and `ip` started from here would be in the namespace
            sys.stderr.write("cannot return to the root network namespace: "
                             "%s\n" % e)
            os._exit(2)
        finally:
            os.close(self.home)
        return False


def remove_tap(ns):
    """Delete TAP wherever it still is (normally it went with focusd)."""
    places = [()] + ([("-n", ns.name)] if ns.created else [])
    for where in places:
        rc, _ = ip(*(where + ("link", "show", TAP)), ok=False)
        if rc == 0:
            rc, out = ip(*(where + ("link", "del", TAP)), ok=False)
            log("cleanup: deleted leftover %s%s: %s"
                % (TAP, " in " + ns.name if where else "", out or rc))


# ---------------------------------------------------------------- focusd

def eal_args():
    return ("--no-huge --no-pci --no-shconf --no-telemetry -m 256 "
            "--vdev=net_tap0,iface=%s %s --log-level=lib.eal:warning"
            % (TAP, harness.eal_lcores()))


# What focusd's log says when the machine, not focusd, is why the port
# did not come up: the EAL did not start (memory, lcores), or the vdev
# did not probe (the tap could not be made), so there is no port.
ENV_FAILURES = (("DPDK EAL did not start",),
                ("probe failed", "no Ethernet port"))


def start_focusd():
    fd = harness.Focusd(auto_create=True, extra_args=[
        "--dataplane", "dpdk", "--eal", eal_args(),
        "--rtp-addr", FOCUS_ADDR, "--rtp-prefix", "24",
        "--io-idle-us", str(IO_IDLE_US)])
    try:
        fd.start()
    except harness.TestFailure as e:
        text = fd.log_tail(40)
        env = any(all(s in text for s in says) for says in ENV_FAILURES)
        fd.failed = not env
        fd.dump_log()
        fd.cleanup()
        if env:
            raise Skip("focusd's DPDK port could not start here (%s); its "
                       "log says: %s" % (e, " | ".join(text.splitlines()
                                                       [-8:])))
        raise
    return fd


def port_mac(fd):
    """The Ethernet address focusd logged for its port, and its words for
    the checksums on RX and on TX (CSUM_WORDS)."""
    text = fd.log_tail(400)
    m = re.search(r"dataplane: port \d+ \(([^)]*)\), ([0-9a-f:]{17}), "
                  r"link up", text)
    check(m is not None, "focusd's log has no 'dataplane: port N (DRIVER), "
          "MAC, link up' line")
    line = text[m.start():].split("\n", 1)[0]
    c = re.search(r"; \d+ TX queues; checksums on RX (.*), on TX (.*)$",
                  line)
    check(c is not None and c.group(1) in CSUM_WORDS and
          c.group(2) in CSUM_WORDS, "focusd's port line %r does not end "
          "'; Q TX queues; checksums on RX W, on TX W' with each W one of "
          "%s" % (line, ", ".join(CSUM_WORDS)))
    log("focusd's port: %s, %s; checksums on RX %s, on TX %s"
        % (m.group(1), m.group(2), c.group(1), c.group(2)))
    return m.group(2), {"rx": c.group(1), "tx": c.group(2)}


def edge_stats(fd):
    io = mc.io_stats(fd)
    edge = io.get("edge")
    check(isinstance(edge, dict), "stats: no io.edge object in DPDK mode: "
          "%r" % io)
    for k in ("rx_short", "rx_bad_ip", "rx_bad_csum", "rx_fragments",
              "rx_not_ours", "rx_other", "arp_replies", "arp_ignored",
              "icmp_echo", "tx_unresolved", "tx_held"):
        check(isinstance(edge.get(k), int) and
              not isinstance(edge.get(k), bool), "stats: io.edge.%s is not "
              "an integer: %r" % (k, edge))
    cs = edge.get("csum_offload")
    keys = ("rx_ipv4", "rx_udp", "tx_ipv4", "tx_udp")
    check(isinstance(cs, dict) and sorted(cs) == sorted(keys) and
          all(isinstance(cs[k], bool) for k in keys),
          "stats: io.edge.csum_offload is %r, expected {%s} of booleans"
          % (cs, ", ".join(keys)))
    return io, edge


def check_csum(edge, words):
    """stats io.edge.csum_offload says what the start-up line said."""
    cs = edge["csum_offload"]
    got = {d: CSUM_WORDS[cs[d + "_ipv4"] + 2 * cs[d + "_udp"]]
           for d in ("rx", "tx")}
    log("stats io.edge.csum_offload: %r" % cs)
    check(got == words, "stats io.edge.csum_offload %r says checksums on "
          "RX %s, on TX %s; focusd's log said on RX %s, on TX %s"
          % (cs, got["rx"], got["tx"], words["rx"], words["tx"]))


# ---------------------------------------------------------------- ICMP

def inet_csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ping(sock, ident, seq, data):
    """One echo request to FOCUS_ADDR; problems with its reply (a list;
    empty: answered right)."""
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    cs = inet_csum(hdr + data)
    sock.sendto(struct.pack("!BBHHH", 8, 0, cs, ident, seq) + data,
                (FOCUS_ADDR, 0))
    what = "echo %d (%d bytes of data)" % (seq, len(data))
    deadline = time.monotonic() + PING_TIMEOUT_S
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return ["%s: no reply within %.1f s, expected one from %s"
                    % (what, PING_TIMEOUT_S, FOCUS_ADDR)]
        sock.settimeout(left)
        try:
            pkt, addr = sock.recvfrom(65536)
        except socket.timeout:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        icmp = pkt[ihl:]
        if len(icmp) < 8:
            continue
        typ, code, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
        if typ != 0 or rid != ident or rseq != seq:
            if typ == 0 and rid == ident:
                return ["%s: reply with seq %d, expected %d"
                        % (what, rseq, seq)]
            continue                      # not ours (or our request)
        errors = []
        src = socket.inet_ntoa(pkt[12:16])
        if src != FOCUS_ADDR or addr[0] != FOCUS_ADDR:
            errors.append("%s: reply from %s, expected %s"
                          % (what, src, FOCUS_ADDR))
        if code != 0:
            errors.append("%s: reply code %d, expected 0" % (what, code))
        if inet_csum(icmp) != 0:
            errors.append("%s: reply's ICMP checksum is wrong" % what)
        if icmp[8:] != data:
            errors.append("%s: reply carries %d bytes that differ from the "
                          "%d sent (first %r, expected %r)"
                          % (what, len(icmp) - 8, len(data), icmp[8:24],
                             data[:16]))
        return errors


def check_ping_and_arp(ns, mac):
    ident = PID & 0xFFFF
    with ns.inside():
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW,
                             socket.IPPROTO_ICMP)
    errors = []
    try:
        for seq, n in enumerate(PING_SIZES, 1):
            errors += ping(sock, ident, seq, os.urandom(n))
    finally:
        sock.close()
    if errors:
        fail("ICMP echo from %s to focusd's %s:\n  %s"
             % (NETNS, FOCUS_ADDR, "\n  ".join(errors)))
    log("%d echoes to %s answered with their id, seq and data"
        % (len(PING_SIZES), FOCUS_ADDR))
    _, neigh = ns.run("neigh", "show", FOCUS_ADDR, "dev", TAP)
    _, link = ns.run("link", "show", TAP)
    log("in %s: ip neigh: %s | tap %s" % (NETNS, neigh, link.split("\n")[-1]
                                          .strip()))
    m = re.search(r"lladdr ([0-9a-f:]{17})", neigh)
    check(m is not None and m.group(1) == mac and
          not re.search(r"\b(FAILED|INCOMPLETE)\b", neigh),
          "the ARP table in %s has %r for %s, expected lladdr %s (focusd's "
          "port, the tap's kernel side is %s)"
          % (NETNS, neigh, FOCUS_ADDR, mac,
             (re.findall(r"link/ether ([0-9a-f:]{17})", link) or ["?"])[0]))
    return len(PING_SIZES)


# ---------------------------------------------------------------- calls

def judge(fd, name):
    def j(resp):
        sdp, m = sdpcall.answer(fd, name, resp, [rtpep.PT_PCMU])
        conn = sc.sdp_connection(sdp, m)
        check(conn == "IN IP4 " + FOCUS_ADDR, "%s: the answer says c=%r, "
              "expected IN IP4 %s (--rtp-addr)\n%s"
              % (name, conn, FOCUS_ADDR, resp.body))
        return m["port"]
    return j


def check_show(show, eps, ports):
    """conference.show while all four are in: each leg on our link, the
    three talkers latched, the listener not (he never sent)."""
    errors = []
    parts = show["participants"]
    by_local = {p.get("local_rtp"): p for p in parts}
    for name, ep in eps.items():
        local = "%s:%d" % (FOCUS_ADDR, ports[name])
        p = by_local.get(local)
        if p is None:
            errors.append("%s: no participant with local_rtp %s; they have "
                          "%r" % (name, local, sorted(by_local, key=str)))
            continue
        talks = name != LISTENER
        remote = "%s:%d" % (ep.addr[0], ep.port)
        if p.get("remote_rtp") != remote:
            errors.append("%s: remote_rtp %r, expected %s (its endpoint in "
                          "%s)" % (name, p.get("remote_rtp"), remote, NETNS))
        rtp = p.get("rtp")
        if not isinstance(rtp, dict):
            errors.append("%s: rtp %r, expected counters" % (name, rtp))
            continue
        if rtp.get("latched") is not talks:
            errors.append("%s: rtp.latched %r, expected %s" % (
                name, rtp.get("latched"), "true" if talks else
                "false (it has sent nothing)"))
        if talks:
            want = {"rx_packets": MIN_RTP_PACKETS,
                    "tx_packets": MIN_RTP_PACKETS}
        else:
            want = {"tx_packets": MIN_RTP_PACKETS}
            if rtp.get("rx_packets") != 0:
                errors.append("%s: rtp.rx_packets %r, expected 0 (it has "
                              "sent nothing)" % (name,
                                                 rtp.get("rx_packets")))
        for k, least in want.items():
            v = rtp.get(k)
            if not isinstance(v, int) or v <= least:
                errors.append("%s: rtp.%s %r, expected > %d"
                              % (name, k, v, least))
        log("%s: local %s remote %s latched %s rx %s tx %s"
            % (name, p.get("local_rtp"), p.get("remote_rtp"),
               rtp.get("latched"), rtp.get("rx_packets"),
               rtp.get("tx_packets")))
    return errors


def check_tone_levels(name, lv, noise, fill, hears):
    """Problems with what name heard: each tone of hears (Hz) must be
    heard, and mc.MIN_FILL of the window's samples must have come."""
    errors = []
    if fill < mc.MIN_FILL:
        errors.append("%s received %.0f%% of the window's samples, "
                      "expected >= %.0f%%" % (name, 100 * fill,
                                              100 * mc.MIN_FILL))
    for f in hears:
        if lv[f] < mc.MIN_TONE_DBFS:
            errors.append("%s hears %d Hz at %.1f dBFS, expected >= %.0f"
                          % (name, f, lv[f], mc.MIN_TONE_DBFS))
        if lv[f] - noise < mc.MIN_SNR_DB:
            errors.append("%s hears %d Hz only %.1f dB over the noise "
                          "(%.1f dBFS), expected >= %.0f"
                          % (name, f, lv[f] - noise, noise, mc.MIN_SNR_DB))
    return errors


def check_audio(eps, w0, w1):
    errors = []
    freqs = [f for _, f, _ in PARTIES]
    for name, own, _ in PARTIES + [(LISTENER, None, None)]:
        ep = eps[name]
        lv, noise, fill = mc.levels(ep, freqs, w0, w1)
        log("heard [%.2f, %.2f) %s" % (w0, w1, mc.describe(name, lv, noise,
                                                             fill)))
        others = [f for f in freqs if f != own]
        errors += check_tone_levels(name, lv, noise, fill, others)
        if own is None:
            continue
        for f in others:
            if lv[f] - lv[own] < OWN_REJECT_DB:
                errors.append("%s hears its own %d Hz at %.1f dBFS, only "
                              "%.1f dB under %d Hz, expected >= %.0f dB "
                              "under (mix-minus)" % (name, own, lv[own],
                                                     lv[f] - lv[own], f,
                                                     OWN_REJECT_DB))
    return errors


def stream_errors(ep, port):
    """Every packet focusd sent ep over the whole call."""
    errors = []
    pk = ep.packets()
    bad = ep.bad_datagrams()
    if bad:
        errors.append("%s got %d datagrams that are not RTP, first from %s"
                      % (ep.name, len(bad), bad[0][1]))
    if len(pk) < MIN_RTP_PACKETS:
        return errors + ["%s got %d RTP packets from focusd, expected >= %d"
                         % (ep.name, len(pk), MIN_RTP_PACKETS)]
    src = (FOCUS_ADDR, port)
    wrong = [p for p in pk if p.addr != src]
    if wrong:
        errors.append("%s: %d of %d packets not from %s:%d, e.g. from %s:%d"
                      % (ep.name, len(wrong), len(pk), src[0], src[1],
                         wrong[0].addr[0], wrong[0].addr[1]))
    wrong = [p for p in pk if p.version != 2 or p.pt != rtpep.PT_PCMU or
             len(p.payload) != rtpep.FRAME_SAMPLES]
    if wrong:
        errors.append("%s: %d packets not V=2 PT=0 with 160 bytes, e.g. V=%d "
                      "PT=%d %d bytes" % (ep.name, len(wrong),
                                          wrong[0].version, wrong[0].pt,
                                          len(wrong[0].payload)))
    ssrcs = sorted({p.ssrc for p in pk})
    if len(ssrcs) != 1:
        errors.append("%s: %d SSRCs from focusd, expected one"
                      % (ep.name, len(ssrcs)))
    jumps = ["seq %d->%d ts +%d at %.3f s" % (a.seq, b.seq,
                                              (b.ts - a.ts) & 0xFFFFFFFF,
                                              b.t)
             for a, b in zip(pk, pk[1:])
             if (b.seq - a.seq) & 0xFFFF != 1 or
             (b.ts - a.ts) & 0xFFFFFFFF != rtpep.FRAME_SAMPLES]
    if jumps:
        errors.append("%s: %d of %d steps are not seq +1 / ts +160: %s"
                      % (ep.name, len(jumps), len(pk) - 1,
                         "; ".join(jumps[:5])))
    marked = [i for i, p in enumerate(pk) if p.marker and i > 0]
    if not pk[0].marker:
        errors.append("%s: the first packet that came (seq %d) has no "
                      "marker bit, expected it: focusd marks the first it "
                      "sends a leg, so the ones before it were lost"
                      % (ep.name, pk[0].seq))
    if marked:
        errors.append("%s: the marker bit on %d later packets too (of "
                      "%d: #%s), expected on the first only"
                      % (ep.name, len(marked), len(pk), ", #".join(
                          str(i + 1) for i in marked[:5])))
    return errors


def first_rtp_errors(ep, t_ok):
    """ep's first packet within FIRST_RTP_S of its 200 OK (at t_ok)."""
    pk = ep.packets()
    if not pk:
        return ["%s got no RTP from focusd" % ep.name]
    d = pk[0].t - t_ok
    log("%s: first packet from focusd %.3f s after the 200 OK (seq %d%s)"
        % (ep.name, d, pk[0].seq, ", marked" if pk[0].marker else ""))
    if d > FIRST_RTP_S:
        return ["%s: the first packet from focusd came %.3f s after the "
                "200 OK, expected within %.1f s" % (ep.name, d,
                                                     FIRST_RTP_S)]
    return []


def run_calls(fd, ns):
    clock = mc.Clock()
    eps, runs, ports, t_join, t_bye, t_ok = {}, [], {}, {}, {}, {}
    calls = [(name, freq, linger, PEER_ADDR) for name, freq, linger
             in PARTIES] + [(LISTENER, None, LISTENER_LINGER_MS, QUIET_ADDR)]
    try:
        for name, freq, _, addr in calls:
            with ns.inside():
                eps[name] = mc.TimedEndpoint(clock, freq=freq, name=name,
                                             addr=addr, max_duration=30)
            eps[name].start()
        for name, freq, linger, addr in calls:
            ep = eps[name]
            if name == LISTENER:
                _, edge = edge_stats(fd)
                check(edge["tx_held"] == 0 and edge["tx_unresolved"] == 0,
                      "stats io.edge before %s calls: tx_held %d, "
                      "tx_unresolved %d; expected 0 and 0 (focusd knows %s "
                      "from the pings): %r"
                      % (name, edge["tx_held"], edge["tx_unresolved"],
                         PEER_ADDR, edge))
            sdp = sdpcall.offer(name, ep.port,
                                [(rtpep.PT_PCMU, "PCMU/8000", None)],
                                "focusd-it dpdk").replace(
                                    "IN IP4 127.0.0.1", "IN IP4 " + addr)
            run = sdpcall.start_call(fd, name, sdp, ROOM, linger)
            runs.append(run)
            resp = sc.wait_response(run, "INVITE", sdpcall.JOIN_TIMEOUT_S,
                                    name)
            ports[name] = judge(fd, name)(resp)
            if freq is not None:
                ep.start_sending((FOCUS_ADDR, ports[name]))
            t_join[name] = clock.now()
            t_ok[name] = clock.from_wall(resp.when)
            t_bye[name] = t_join[name] + linger / 1000.0
            log("%s joined at %.2f s (200 OK at %.2f s): %s from %s:%d to "
                "%s:%d" % (name, t_join[name], t_ok[name],
                           "%d Hz" % freq if freq else "nothing", addr,
                           ep.port, FOCUS_ADDR, ports[name]))
        check(len(set(ports.values())) == len(calls), "the legs got RTP "
              "ports %r, expected %d different ones" % (ports, len(calls)))
        t_all, t_end = max(t_join.values()), min(t_bye.values())
        check(t_end - t_all >= MIN_OVERLAP_S, "the calls overlap only "
              "%.2f s (joins %r), expected >= %.1f: call setup too slow"
              % (t_end - t_all, t_join, MIN_OVERLAP_S))

        clock.sleep_until(t_all + SHOW_AT_S)
        show = mc.show(fd, ROOM)
        t_show = clock.now()
        check(t_show < t_end - 0.2, "conference.show at %.2f s, too close "
              "to the first BYE at %.2f s: this run was too slow"
              % (t_show, t_end))
        check(len(show["participants"]) == len(calls), "conference.show "
              "%s: %d participants, expected %d: %r"
              % (ROOM, len(show["participants"]), len(calls),
                 show["participants"]))
        errors = check_show(show, eps, ports)
        errors += check_audio(eps, t_all + WINDOW_S[0], t_all + WINDOW_S[1])
        if errors:
            fail("while all four are in:\n  " + "\n  ".join(errors))

        mc.finish_calls(runs, [eps[c[0]] for c in calls], clock)
        for ep in eps.values():
            ep.stop()
        errors = []
        for name, _, _, _ in calls:
            errors += stream_errors(eps[name], ports[name])
            log("%s: %d packets from focusd, sent %d"
                % (name, len(eps[name].packets()), eps[name].sent))
        errors += first_rtp_errors(eps[LISTENER], t_ok[LISTENER])
        if errors:
            fail("RTP from focusd:\n  " + "\n  ".join(errors))
    except BaseException:
        for run in runs:
            if run.poll() is None:
                log("sipp %s still running; killing it" % run.name)
            run.kill()
            sys.stderr.write(run.report(lines=30) + "\n")
        raise
    finally:
        for ep in eps.values():
            ep.stop()
        for run in runs:
            run.kill()


# ---------------------------------------------------------------- main

def check_port_unreachable(fd, ns):
    """UDP to ports no participant has (the range's first, now that all
    have left, and one outside it) is refused: the namespace's kernel
    takes focusd's ICMP port unreachable (valid, quoting the datagram)
    and says ECONNREFUSED on the sending socket."""
    _, edge0 = edge_stats(fd)
    ports = (fd.rtp.lo, 9)
    for port in ports:
        with ns.inside():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((PEER_ADDR, 0))
            s.connect((FOCUS_ADDR, port))
            s.send(b"\x80\x00" + b"\x00" * 170)
            s.settimeout(UNREACH_TIMEOUT_S)
            try:
                s.recv(2048)
                fail("UDP to %s:%d (no participant's port): a reply came, "
                     "expected ICMP port unreachable" % (FOCUS_ADDR, port))
            except ConnectionRefusedError:
                log("UDP to %s:%d: refused (ICMP port unreachable)"
                    % (FOCUS_ADDR, port))
            except socket.timeout:
                fail("UDP to %s:%d (no participant's port): no ICMP port "
                     "unreachable within %.1f s" % (FOCUS_ADDR, port,
                                                    UNREACH_TIMEOUT_S))
        finally:
            s.close()
    _, edge = edge_stats(fd)
    check(edge.get("icmp_unreach", 0) - edge0.get("icmp_unreach", 0) >=
          len(ports), "stats io.edge.icmp_unreach %r -> %r after %d "
          "datagrams to no participant's port, expected +%d or more"
          % (edge0.get("icmp_unreach"), edge.get("icmp_unreach"),
             len(ports), len(ports)))


def check_idle_cpu(fd):
    """With no call, focusd (its io lcore napping, --io-idle-us) uses
    well under a core."""
    def cpu_s():
        with open("/proc/%d/stat" % fd.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    time.sleep(0.2)
    c0, t0 = cpu_s(), time.monotonic()
    time.sleep(IDLE_CPU_S)
    used = (cpu_s() - c0) / (time.monotonic() - t0)
    log("idle focusd: %.0f%% of a core over %.1f s (--io-idle-us %d)"
        % (100 * used, IDLE_CPU_S, IO_IDLE_US))
    check(used < MAX_IDLE_CPU, "idle focusd used %.0f%% of a core with "
          "--io-idle-us %d, expected < %.0f%%: the io lcore spins"
          % (100 * used, IO_IDLE_US, 100 * MAX_IDLE_CPU))


def main():
    ns = Netns(NETNS)
    fd = None
    try:
        probe_tap()
        ns.create()
        fd = start_focusd()
        mac, csum_words = port_mac(fd)
        ip("link", "set", TAP, "netns", NETNS)
        # net_tap gives the kernel's side the port's address; another one
        # makes the two ends of the link tell apart, as two hosts would
        ns.run("link", "set", TAP, "address", PEER_MAC)
        ns.run("addr", "add", PEER_ADDR + "/24", "dev", TAP)
        ns.run("addr", "add", QUIET_ADDR + "/24", "dev", TAP)
        ns.run("link", "set", TAP, "up")
        ns.run("link", "set", "lo", "up")
        log("%s in %s with %s/24 and %s/24; focusd owns %s"
            % (TAP, NETNS, PEER_ADDR, QUIET_ADDR, FOCUS_ADDR))

        echoes = check_ping_and_arp(ns, mac)
        _, edge = edge_stats(fd)
        check(edge["icmp_echo"] >= echoes and edge["arp_replies"] >= 1,
              "stats io.edge after %d echoes: icmp_echo %d, arp_replies "
              "%d; expected >= %d and >= 1: %r"
              % (echoes, edge["icmp_echo"], edge["arp_replies"], echoes,
                 edge))
        check_csum(edge, csum_words)

        run_calls(fd, ns)

        io, edge = edge_stats(fd)
        log("stats io: %r" % io)
        bad = {k: edge[k] for k in ("rx_short", "rx_bad_ip", "rx_bad_csum",
                                    "rx_fragments") if edge[k] != 0}
        check(not bad, "stats io.edge: focusd dropped what %s's kernel "
              "sent: %r, expected 0 each (all of io.edge: %r)"
              % (NETNS, bad, edge))
        check(edge["icmp_echo"] >= echoes and edge["arp_replies"] >= 1,
              "stats io.edge at the end: icmp_echo %d, arp_replies %d; "
              "expected >= %d and >= 1" % (edge["icmp_echo"],
                                           edge["arp_replies"], echoes))
        check(edge["tx_held"] >= 1 and edge["tx_unresolved"] == 0,
              "stats io.edge at the end: tx_held %d, tx_unresolved %d; "
              "expected >= 1 and 0: %s" % (
                  edge["tx_held"], edge["tx_unresolved"],
                  "packets to %s at %s, whom focusd had to ask for by ARP, "
                  "were dropped instead of held until the answer"
                  % (LISTENER, QUIET_ADDR) if edge["tx_unresolved"] else
                  "no packet waited for ARP, yet nothing from %s reached "
                  "focusd before it sent to %s" % (QUIET_ADDR, LISTENER)))
        check_port_unreachable(fd, ns)
        check_idle_cpu(fd)
        f, fd = fd, None
        f.__exit__(None, None, None)     # SIGTERM, status 0, cleanup
    finally:
        if fd is not None:
            exc = sys.exc_info()
            fd.__exit__(exc[0] or harness.TestFailure, exc[1], exc[2])
        remove_tap(ns)
        ns.remove()


def entry():
    try:
        main()
    except Skip as e:
        sys.stderr.write("SKIP %s: %s\n" % (os.path.basename(sys.argv[0]),
                                            e))
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(SKIP_STATUS)            # everything is cleaned up by now


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_sigterm)
    harness.run_main(entry)
