#!/usr/bin/env python3
"""focusd refuses bad settings with a clear message and a proper exit
status, and starts from a config file.

The README's settings: every setting is a flag and a key of --config FILE
(`key = value` lines, `#` comments); --rtp-addr is the address peers send
RTP to (not 0.0.0.0); --domain is required when listening on a wildcard
address. Exit statuses: 64 (EX_USAGE) for bad usage, 1 for a start-up
failure, 0 for --help. Before this was fixed, a management socket that
could not be created made Sofia abort (SIGABRT, not exit 1), and
--rtp-addr 0.0.0.0 or a wildcard --sip-listen without --domain were
taken.

focusd is run directly (no SIPp, except for the config file's call),
each time on a free SIP port and a reserved RTP range, with its
management socket in a private directory, and bounded: a run that does
not exit within RUN_TIMEOUT_S is killed (by PID) and fails.
  --mgmt /nonexistent-dir/x.sock         exit 1 exactly; stderr names the
                                         path
  --rtp-addr 0.0.0.0                     exit 64; stderr names --rtp-addr
  --sip-listen 0.0.0.0:PORT, no --domain exit 64; stderr names --domain
  --workers 0                            exit 64; stderr names --workers
  --rtp-ports 3000-2000                  exit 64; stderr names --rtp-ports
  --bogus                                exit 64; stderr names --bogus
  --dataplane dpdk --rtp-addr 10.9.0.1 with --gateway off its /24, or
  its network, broadcast or own address; --neighbours with an entry off
  it                                     exit 1; stderr says which and
                                         that it is not a host on the
                                         prefix
  --eal naming an unknown vdev           exit 1; stderr says EAL did not
                                         start because a device --eal
                                         names is unknown
  --eal with an lcore list of CPUs the machine lacks
                                         exit 1; an argument is wrong
  --eal without --no-huge, on a machine with no free hugepages (else
  this one is skipped)                   exit 1; no hugepages, and how
                                         to get some or do without
  a second focusd with the --eal --file-prefix of one running (without
  --no-shconf)                           exit 1; the runtime configuration
                                         is locked by another process,
                                         and what to do
  --help                                 exit 0; the text lists --sip-listen
  --config FILE with an unknown key      exit 64; stderr names FILE:LINE
  --config FILE with sip-listen = 127.0.0.1:PORT, auto-create = yes, a
  comment line (and rtp-addr, rtp-ports, mgmt): focusd starts, listens
  on PORT, and an INVITE to a room that does not exist gets 200 (only
  auto-create from the file allows that; it is off by default); focusd
  then exits 0 on SIGTERM.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_startup_errors.py (exit status 0 on pass).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import rtpep  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, log  # noqa: E402

RUN_TIMEOUT_S = 10.0
EX_USAGE = 64


def run_focusd(args, tmpdir, name):
    """Run focusd with args to its end; (exit status, stdout, stderr).
    Kills it (by PID) and fails if it outlives RUN_TIMEOUT_S."""
    argv = [harness.focusd_path()] + args
    log("%s: %s" % (name, " ".join(argv)))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=tmpdir)
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate(timeout=5)
        harness.fail("%s: focusd still running after %.0f s (it should "
                     "have refused to start); killed. stderr:\n%s"
                     % (name, RUN_TIMEOUT_S,
                        err.decode("utf-8", "replace")[-2000:]))
    return (proc.returncode, out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"))


def describe_status(rc):
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit status %d" % rc


def expect_exit(name, args, tmpdir, status, must_say):
    rc, out, err = run_focusd(args, tmpdir, name)
    check(rc == status, "%s: focusd ended with %s, expected exit status "
          "%d. stderr:\n%s" % (name, describe_status(rc), status,
                               err[-2000:]))
    text = out + err
    for s in must_say:
        check(s in text, "%s: focusd's output does not name %r; stdout:\n"
              "%s\nstderr:\n%s" % (name, s, out[-2000:], err[-2000:]))
    said = [l for l in text.splitlines() if must_say and must_say[0] in l]
    log("%s -> %s: %s" % (name, describe_status(rc),
                          said[0].strip() if said else "(nothing)"))
    return out, err


def free_hugepages():
    """Free hugepages of any size on this machine."""
    root = "/sys/kernel/mm/hugepages"
    n = 0
    for d in os.listdir(root) if os.path.isdir(root) else ():
        try:
            with open(os.path.join(root, d, "free_hugepages")) as f:
                n += int(f.read())
        except (OSError, ValueError):
            pass
    return n


def main():
    tmpdir = tempfile.mkdtemp(prefix="focusd-it-startup-")
    block = harness.reserve_port_block(harness.RTP_RANGE_SIZE)
    ok = False
    try:
        rtp = "%d-%d" % (block.lo, block.hi)
        mgmt = os.path.join(tmpdir, "mgmt.sock")

        def base(port=None):
            return ["--sip-listen", "127.0.0.1:%d"
                    % (port or harness.free_port(("udp", "tcp"))),
                    "--rtp-addr", "127.0.0.1", "--rtp-ports", rtp,
                    "--mgmt", mgmt, "--log-level", "debug"]

        # -- a start-up failure: exit 1, not an abort
        expect_exit("mgmt in a missing directory",
                    base() + ["--mgmt", "/nonexistent-dir/x.sock"], tmpdir,
                    1, ["/nonexistent-dir/x.sock"])

        # -- usage errors: 64
        expect_exit("--rtp-addr 0.0.0.0", base() + ["--rtp-addr", "0.0.0.0"],
                    tmpdir, EX_USAGE, ["--rtp-addr"])
        port = harness.free_port(("udp", "tcp"))
        expect_exit("wildcard --sip-listen without --domain",
                    base() + ["--sip-listen", "0.0.0.0:%d" % port], tmpdir,
                    EX_USAGE, ["--domain"])
        expect_exit("--workers 0", base() + ["--workers", "0"], tmpdir,
                    EX_USAGE, ["workers"])
        expect_exit("--rtp-ports 3000-2000",
                    base() + ["--rtp-ports", "3000-2000"], tmpdir, EX_USAGE,
                    ["rtp-ports"])
        expect_exit("--bogus", base() + ["--bogus"], tmpdir, EX_USAGE,
                    ["--bogus"])

        # -- the DPDK port's next hops must be on --rtp-addr's prefix
        # (refused before EAL starts: no port or hugepages needed)
        dpdk = ["--dataplane", "dpdk", "--rtp-addr", "10.9.0.1",
                "--rtp-prefix", "24"]
        for gw, why in (("10.8.0.1", "not on the prefix"),
                        ("10.9.0.0", "network or broadcast"),
                        ("10.9.0.255", "network or broadcast"),
                        ("10.9.0.1", "--rtp-addr itself")):
            expect_exit("--gateway %s on 10.9.0.1/24" % gw,
                        base() + dpdk + ["--gateway", gw], tmpdir, 1,
                        ["--gateway %s is not a host on 10.9.0.1/24" % gw,
                         why])
        expect_exit("--neighbours off the prefix",
                    base() + dpdk + ["--neighbours",
                                     "10.9.0.7=02:00:00:00:00:07,"
                                     "10.10.0.7=02:00:00:00:00:08"],
                    tmpdir, 1, ["--neighbours: 10.10.0.7 is not a host"])

        # -- EAL's failures, told in words (and the cause, not EAL's errno)
        eal = "--no-pci --no-shconf --no-telemetry -m 128 " + \
            harness.eal_lcores()
        said = "DPDK EAL did not start: "
        expect_exit("--eal with an unknown vdev",
                    base() + ["--eal", "--no-huge --vdev=net_bogus0 " + eal],
                    tmpdir, 1, [said + "a device --eal names is unknown"])
        expect_exit("--eal with lcores this machine lacks",
                    base() + ["--eal", "--no-huge --no-pci --no-shconf "
                              "-l 0-%d" % (os.cpu_count() + 8)],
                    tmpdir, 1, [said + "an argument of --eal is wrong"])
        if free_hugepages() == 0:
            expect_exit("--eal without --no-huge, no hugepages",
                        base() + ["--eal", eal], tmpdir, 1,
                        [said + "no hugepages it can use", "--no-huge"])
        else:
            log("this machine has free hugepages: not checking focusd's "
                "words for their absence")

        expect_exit("--help", ["--help"], tmpdir, 0,
                    ["--sip-listen"])

        bad_conf = os.path.join(tmpdir, "bad.conf")
        with open(bad_conf, "w") as f:
            f.write("# focusd test config\n"
                    "sip-listen = 127.0.0.1:%d\n"
                    "no-such-setting = 1\n"
                    % harness.free_port(("udp", "tcp")))
        expect_exit("config with an unknown key",
                    ["--config", bad_conf, "--rtp-ports", rtp, "--mgmt",
                     mgmt], tmpdir, EX_USAGE, ["%s:3" % bad_conf])
        check(not os.path.exists(mgmt), "a focusd that refused to start "
              "left its management socket %s behind" % mgmt)
        ok = True
    finally:
        block.release()
        if ok:
            shutil.rmtree(tmpdir, ignore_errors=True)
        else:
            log("keeping %s" % tmpdir)

    # -- a good config file is honoured
    fd = harness.Focusd()
    conf = os.path.join(fd.tmpdir, "focusd.conf")
    with open(conf, "w") as f:
        f.write("# focusd started from a file by test_startup_errors\n"
                "sip-listen = 127.0.0.1:%d\n"
                "auto-create = yes\n"
                "\n"
                "  # an indented comment\n"
                "rtp-addr = 127.0.0.1\n"
                "rtp-ports = %d-%d\n"
                "mgmt = %s   # the management socket\n"
                "log-level = debug\n"
                % (fd.sip_port, fd.rtp.lo, fd.rtp.hi, fd.mgmt_path))
    fd.args = [fd.binary, "--config", conf]
    with fd:
        sink = rtpep.RtpEndpoint(name="sink", max_duration=20).start()
        try:
            msgs = sc.sipp_ok(sc.run_sipp(
                fd, "uac_invite_expect.xml", "new-room", service="fileroom",
                keys={"offer": "pcmu", "expect": 200, "rtp_port": sink.port,
                      "linger_ms": 300}),
                "INVITE to a new room with auto-create = yes from --config")
            final = sc.responses(msgs, cseq="INVITE", final=True)
            check([sc.status(m) for m in final] == [200], "INVITE to a new "
                  "room (auto-create from the config file): final "
                  "responses %r" % [m.start for m in final])
            log("config file: focusd on :%d, INVITE sip:fileroom@ -> %s"
                % (fd.sip_port, final[0].start))
        finally:
            sink.stop()

        # -- a second focusd on the same EAL runtime directory
        prefix = "focusd-st-%d" % os.getpid()
        eal = ("--no-huge --no-pci --no-telemetry -m 128 --file-prefix %s "
               "%s" % (prefix, harness.eal_lcores()))
        first = harness.Focusd(extra_args=["--eal", eal], name="first")
        tmpdir = tempfile.mkdtemp(prefix="focusd-it-startup-")
        try:
            with first:
                expect_exit("a second focusd with --file-prefix %s" % prefix,
                            ["--sip-listen", "127.0.0.1:%d"
                             % harness.free_port(("udp", "tcp")),
                             "--rtp-ports", "%d-%d" % (first.rtp.lo,
                                                       first.rtp.hi),
                             "--mgmt", os.path.join(tmpdir, "m.sock"),
                             "--eal", eal], tmpdir, 1,
                            ["DPDK EAL did not start: its runtime "
                             "configuration could not be set up, most "
                             "likely locked", "--file-prefix"])
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
            for run in ("/var/run/dpdk", os.path.join(
                    os.environ.get("XDG_RUNTIME_DIR", "/tmp"), "dpdk")):
                shutil.rmtree(os.path.join(run, prefix), ignore_errors=True)


if __name__ == "__main__":
    harness.run_main(main)
