"""Integration-test harness for focusd.

What it does: starts one focusd on free loopback ports with a private
temporary directory (management socket, log), talks JSON-RPC to its
management socket, stops it with SIGTERM and insists on exit status 0, and
runs SIPp scenarios against it (in the foreground or in the background so
several calls can overlap).

Design:
- Every test process gets its own ports and its own temp dir, so tests run
  in parallel safely. The SIP port and SIPp's local ports come from the
  kernel (bind to port 0, then release just before use). The RTP range is
  a block of 200 ports *below* the kernel's ephemeral range, so that no
  kernel-chosen port (ours, SIPp's, another test's) ever lands in it; the
  block is reserved across processes with an flock()ed lock file held for
  the life of the harness, and every port in it is checked by binding.
- Nothing waits without a deadline: readiness 10 s, management calls 5 s,
  stop 10 s (then kill -9 by PID and fail), SIPp its own -timeout plus a
  margin (then kill by PID and fail).
- Failures raise TestFailure; `run_main()` turns them into exit status 1
  with a clear message, and Focusd always dumps the tail of its log when a
  failure passes through it.

Environment: FOCUSD (path of the binary, default ../../build/daemon/focusd
relative to this file), SIPP (default `sipp`), SIPP_SCENARIOS (default
../sipp relative to this file), FOCUSD_IT_KEEP=1 keeps temp dirs.

Only the Python standard library is used.
"""

import errno
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
LOOPBACK = "127.0.0.1"

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
MGMT_TIMEOUT_S = 5.0
RTP_RANGE_SIZE = 200


class TestFailure(AssertionError):
    """A check failed: what a user of focusd would see is wrong."""


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def log(msg):
    """Diagnostics go to stderr with a timestamp; meson keeps them."""
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def focusd_path():
    p = os.environ.get("FOCUSD")
    if p:
        # absolute: focusd runs with its temp dir as working directory
        return os.path.abspath(p)
    return os.path.normpath(os.path.join(HERE, "..", "..", "build",
                                         "daemon", "focusd"))


def sipp_path():
    p = os.environ.get("SIPP") or "sipp"
    return os.path.abspath(p) if os.sep in p else p


def scenario_path(name):
    d = os.environ.get("SIPP_SCENARIOS") or os.path.join(HERE, "..", "sipp")
    # SIPp runs in its own work dir: the path must not be relative.
    return os.path.abspath(os.path.join(d, name))


# ---------------------------------------------------------------- ports

def _can_bind(port, kinds):
    socks = []
    try:
        for kind in kinds:
            st = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
            s = socket.socket(socket.AF_INET, st)
            socks.append(s)
            if kind == "tcp":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


_ports_given = set()  # free_port never hands this process a port twice


def eal_lcores(workers=1):
    """--eal's lcore map for focusd with `workers` mixers (control, io
    and each worker), floating over the CPUs this process may use."""
    return "--lcores (0-%d)@(%s)" % (workers + 1, ",".join(
        str(c) for c in sorted(os.sched_getaffinity(0))))


def free_port(kinds=("udp",)):
    """A kernel-chosen loopback port that is free for every kind in
    kinds ('udp', 'tcp') at the moment of the call, and not one this
    process was given before (the kernel may choose a port again once it
    is closed, before whoever was told of it binds it)."""
    for _ in range(100):
        st = socket.SOCK_DGRAM if kinds[0] == "udp" else socket.SOCK_STREAM
        s = socket.socket(socket.AF_INET, st)
        try:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _ports_given and _can_bind(port, kinds):
            _ports_given.add(port)
            return port
    fail("no free loopback port for %s after 100 tries" % (kinds,))


_media_blocks = []   # PortBlocks this process hands SIPp media ports from
_media_next = 0


def free_media_base():
    """An even base of 4 free UDP ports for SIPp's own media sockets (it
    binds base, base+2 and the RTCP ports above). Taken from blocks this
    process reserved like RTP ranges (lock files, outside the ephemeral
    range), so parallel tests and SIPps cannot race for the same ports."""
    global _media_next
    while True:
        if not _media_blocks or _media_next + 4 > RTP_RANGE_SIZE:
            _media_blocks.append(reserve_port_block(RTP_RANGE_SIZE))
            _media_next = 0
        blk = _media_blocks[-1]
        base = blk.lo + _media_next
        _media_next += 4
        if all(_can_bind(p, ("udp",)) for p in range(base, base + 4)):
            return base


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
            return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


class PortBlock:
    """A reserved block of consecutive UDP ports (lo..hi inclusive)."""

    def __init__(self, lo, hi, lockfd):
        self.lo, self.hi, self._lockfd = lo, hi, lockfd

    def release(self):
        if self._lockfd is not None:
            os.close(self._lockfd)
            self._lockfd = None


def reserve_port_block(n=RTP_RANGE_SIZE):
    """Reserve n consecutive UDP ports outside the ephemeral range.

    Blocks are aligned to n; each is claimed with an flock on a lock file
    in a shared directory (released when the holder exits, even by a
    crash), then every port in it is checked by binding."""
    eph_lo, eph_hi = _ephemeral_range()
    candidates = []
    for base in range(10000, 65536 - n, n):
        if base + n - 1 < eph_lo or base > eph_hi:
            candidates.append(base)
    if not candidates:
        fail("no port block outside the ephemeral range %d-%d"
             % (eph_lo, eph_hi))
    random.shuffle(candidates)
    lockdir = os.path.join(tempfile.gettempdir(),
                           "focusd-it-ports-%d" % os.getuid())
    os.makedirs(lockdir, exist_ok=True)
    for base in candidates[:200]:
        path = os.path.join(lockdir, "block-%d.lock" % base)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                continue
            raise
        if all(_can_bind(p, ("udp",)) for p in range(base, base + n)):
            return PortBlock(base, base + n - 1, fd)
        os.close(fd)
    fail("no free block of %d UDP ports found" % n)


# ---------------------------------------------------------------- focusd

def _tail(path, lines=80):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


class Focusd:
    """One focusd process on private ports.

    Use as a context manager; leaving the block by an exception dumps the
    log tail and kills the process (by PID) if it still runs; leaving it
    normally calls stop(), which checks the exit status."""

    def __init__(self, auto_create=True, workers=None, log_level="debug",
                 domain=None, factory=None, extra_args=(), name="focusd"):
        self.name = name
        self.binary = focusd_path()
        self.tmpdir = tempfile.mkdtemp(prefix="focusd-it-")
        self.mgmt_path = os.path.join(self.tmpdir, "mgmt.sock")
        self.log_path = os.path.join(self.tmpdir, "focusd.log")
        self.rtp = reserve_port_block(RTP_RANGE_SIZE)
        self.sip_port = free_port(("udp", "tcp"))
        self.args = [
            self.binary,
            "--sip-listen", "%s:%d" % (LOOPBACK, self.sip_port),
            "--rtp-addr", LOOPBACK,
            "--rtp-ports", "%d-%d" % (self.rtp.lo, self.rtp.hi),
            "--mgmt", self.mgmt_path,
            "--auto-create" if auto_create else "--no-auto-create",
            "--log-level", log_level,
        ]
        if workers is not None:
            self.args += ["--workers", str(workers)]
        if domain is not None:
            self.args += ["--domain", domain]
        if factory is not None:
            self.args += ["--factory", factory]
        self.args += list(extra_args)
        self.proc = None
        self._logf = None
        self._next_id = 1
        self.failed = False

    # -- life cycle

    @property
    def sip_target(self):
        return "%s:%d" % (LOOPBACK, self.sip_port)

    def start(self, timeout=READY_TIMEOUT_S):
        if not os.access(self.binary, os.X_OK):
            fail("focusd binary not found or not executable: %s (set FOCUSD)"
                 % self.binary)
        log("starting: %s" % " ".join(self.args))
        self._logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=self._logf,
                                     cwd=self.tmpdir)
        self.wait_ready(timeout)
        log("focusd pid %d ready: SIP %s, RTP %d-%d, mgmt %s"
            % (self.proc.pid, self.sip_target, self.rtp.lo, self.rtp.hi,
               self.mgmt_path))
        return self

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        ready_re = re.compile(r"\bready\b", re.IGNORECASE)
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                fail("focusd exited with status %d before it was ready" % rc)
            try:
                with open(self.log_path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                if any(ready_re.search(l) for l in text.splitlines()):
                    return
            except OSError:
                pass
            if os.path.exists(self.mgmt_path):
                try:
                    r = self.mgmt("conference.list", timeout=1.0)
                    if "result" in r:
                        return
                except (OSError, ValueError, TestFailure):
                    pass
            time.sleep(0.05)
        fail("focusd not ready within %.0f s (no 'ready' line on stderr and "
             "the management socket did not answer conference.list)"
             % timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, then require exit status 0 within timeout."""
        if self.proc is None:
            return
        rc = self.proc.poll()
        if rc is not None:
            fail("focusd had already exited with status %d before stop()"
                 % rc)
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            fail("focusd did not exit within %.0f s of SIGTERM; killed -9"
                 % timeout)
        log("focusd exited with status %d %.2f s after SIGTERM"
            % (rc, time.monotonic() - t0))
        check(rc == 0, "focusd exited with status %d after SIGTERM, "
              "expected 0" % rc)

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def log_tail(self, lines=80):
        return _tail(self.log_path, lines)

    def dump_log(self, lines=80):
        sys.stderr.write("----- focusd log tail (%s) -----\n%s\n"
                         "----- end of focusd log -----\n"
                         % (self.log_path, self.log_tail(lines)))
        sys.stderr.flush()

    def cleanup(self):
        self._kill()
        if self._logf is not None:
            self._logf.close()
            self._logf = None
        self.rtp.release()
        if self.failed or os.environ.get("FOCUSD_IT_KEEP"):
            log("keeping %s" % self.tmpdir)
        else:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.failed = True
            self.dump_log()
            self.cleanup()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                try:
                    self.stop()
                except BaseException:
                    self.failed = True
                    self.dump_log()
                    raise
            else:
                self.failed = True
                self.dump_log()
        finally:
            self.cleanup()
        return False

    # -- management socket

    def mgmt(self, method, params=None, timeout=MGMT_TIMEOUT_S):
        """One JSON-RPC 2.0 request on a fresh connection; returns the
        parsed response object (with either 'result' or 'error')."""
        req = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        self._next_id += 1
        if params is not None:
            req["params"] = params
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.mgmt_path)
            s.sendall((json.dumps(req) + "\n").encode())
            buf = b""
            deadline = time.monotonic() + timeout
            while b"\n" not in buf:
                if time.monotonic() > deadline:
                    fail("mgmt %s: no complete answer line within %.1f s "
                         "(got %r)" % (method, timeout, buf[:200]))
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except socket.timeout:
            fail("mgmt %s: timed out after %.1f s" % (method, timeout))
        finally:
            s.close()
        line = buf.split(b"\n", 1)[0].strip()
        if not line:
            fail("mgmt %s: connection closed without an answer" % method)
        try:
            resp = json.loads(line)
        except ValueError:
            fail("mgmt %s: answer is not JSON: %r" % (method, line[:300]))
        check(isinstance(resp, dict) and resp.get("jsonrpc") == "2.0",
              "mgmt %s: answer is not a JSON-RPC 2.0 object: %r"
              % (method, resp))
        check(resp.get("id") == req["id"],
              "mgmt %s: answer id %r, request id %r"
              % (method, resp.get("id"), req["id"]))
        check(("result" in resp) != ("error" in resp),
              "mgmt %s: answer must have exactly one of result/error: %r"
              % (method, resp))
        return resp

    def mgmt_result(self, method, params=None, timeout=MGMT_TIMEOUT_S):
        resp = self.mgmt(method, params, timeout)
        check("result" in resp, "mgmt %s %s: error %r"
              % (method, json.dumps(params), resp.get("error")))
        return resp["result"]


# ---------------------------------------------------------------- SIPp

class SippRun:
    """One SIPp process; wait() returns (exit status, messages, errors)."""

    def __init__(self, args, workdir, timeout, name):
        self.args = args
        self.name = name
        self.workdir = workdir
        self.timeout = timeout
        self.msg_path = os.path.join(workdir, "messages.log")
        self.err_path = os.path.join(workdir, "errors.log")
        self.screen_path = os.path.join(workdir, "screen.log")
        self.args += ["-message_file", self.msg_path,
                      "-error_file", self.err_path]
        for p in (self.msg_path, self.err_path):
            if os.path.exists(p):
                os.unlink(p)
        self._screen = open(self.screen_path, "wb")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=self._screen,
                                     stderr=subprocess.STDOUT, cwd=workdir)
        self.rc = None

    def poll(self):
        return self.proc.poll()

    def wait(self, timeout=None):
        """Exit status, message trace, error trace. Kills SIPp (by PID)
        and fails if it outlives its own -timeout plus a margin."""
        if self.rc is None:
            if timeout is None:
                timeout = max(1.0, self.t_start + self.timeout + 10
                              - time.monotonic())
            try:
                self.rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
                self._screen.close()
                fail("sipp %s still running after %.0f s; killed\n%s"
                     % (self.name, timeout, self.report()))
            self._screen.close()
        return self.rc, self.messages(), self.errors()

    def messages(self):
        return _read_text(self.msg_path)

    def errors(self):
        return _read_text(self.err_path)

    def report(self, lines=60):
        return ("----- sipp %s: %s\n----- errors:\n%s\n"
                "----- messages (tail):\n%s\n----- end sipp %s"
                % (self.name, " ".join(self.args), _tail(self.err_path, 30),
                   _tail(self.msg_path, lines), self.name))

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        if not self._screen.closed:
            self._screen.close()


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def sipp(scenario, target, service=None, keys=None, sets=None,
         transport="u1", background=False, timeout=30, workdir=None,
         name=None, extra_args=()):
    """Run SIPp once (-m 1) with the scenario against target "IP:PORT".

    keys: {name: value} passed as -key name value ([name] in the scenario);
    sets: {name: value} passed as -set name value ([$name]).
    Returns a SippRun (background=True) or the tuple
    (exit status, message trace text, error trace text)."""
    if not os.path.isabs(scenario) and not os.path.exists(scenario):
        scenario = scenario_path(scenario)
    check(os.path.exists(scenario), "no SIPp scenario %s" % scenario)
    name = name or os.path.splitext(os.path.basename(scenario))[0]
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="sipp-%s-" % name)
    os.makedirs(workdir, exist_ok=True)
    lport = free_port(("udp", "tcp") if transport.startswith("t")
                      else ("udp",))
    # SIPp binds media sockets of its own from 6000 up; SIPps started at
    # once race for them unless each is given a free base (-mp).
    args = [sipp_path(), target, "-sf", scenario, "-m", "1",
            "-i", LOOPBACK, "-p", str(lport), "-t", transport,
            "-mp", str(free_media_base()),
            "-timeout", "%ds" % timeout, "-timeout_error",
            "-trace_err", "-trace_msg", "-nostdin", "-aa"]
    if service is not None:
        args += ["-s", str(service)]
    for k, v in (keys or {}).items():
        args += ["-key", str(k), str(v)]
    for k, v in (sets or {}).items():
        args += ["-set", str(k), str(v)]
    args += list(extra_args)
    run = SippRun(args, workdir, timeout, name)
    log("sipp %s pid %d: %s" % (name, run.proc.pid, " ".join(run.args)))
    if background:
        return run
    return run.wait()


# ---------------------------------------------------------------- running

def wait_for(pred, timeout, interval=0.02, what="condition", state=None):
    """Poll pred() until it returns a true value (returned) or timeout;
    then fail naming what, and state() (the state at that time) if
    given."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            if state is not None:
                fail("%s not within %.1f s; now: %s"
                     % (what, timeout, state()))
            fail("%s not met within %.1f s" % (what, timeout))
        time.sleep(interval)


def run_main(main):
    """Run a test's main(); exit 0 on pass, 1 on failure, 2 on error."""
    name = os.path.basename(sys.argv[0])
    t0 = time.monotonic()
    try:
        main()
    except TestFailure as e:
        sys.stderr.write("FAIL %s (%.1f s): %s\n"
                         % (name, time.monotonic() - t0, e))
        sys.exit(1)
    except BaseException:
        traceback.print_exc()
        sys.stderr.write("ERROR %s (%.1f s)\n"
                         % (name, time.monotonic() - t0))
        sys.exit(2)
    sys.stderr.write("PASS %s (%.1f s)\n" % (name, time.monotonic() - t0))
    sys.exit(0)
