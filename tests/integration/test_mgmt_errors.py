#!/usr/bin/env python3
"""The management socket answers bad requests with the documented
JSON-RPC errors, and focusctl reports them with the documented exit
statuses.

It starts focusd (--auto-create) and talks to its management socket
with raw lines, as a NOC script would:
- a line that is not JSON -> -32700, id null;
- a batch ([] and [request]) -> -32600, id null;
- "jsonrpc": "1.0" -> -32600; a request without "method" -> -32600;
- an unknown method -> -32601 with data.method naming it;
- conference.show with no params, {} or {"id": 5} -> -32602;
- conference.show of an unknown ID -> -32001 with data.id naming it;
- notifications (no "id" member), valid or not, get no reply: on one
  connection the next line is the reply to the next request, and nothing
  else arrives;
- several requests in one write are answered in order, one line each;
- a line of 60000 bytes is served; a line over 64 KiB gets -32600 and
  the connection is closed; the server still serves new connections.
Then focusctl: `list` prints a header with ID and PARTICIPANTS; `--json
list` prints JSON with a conferences array; `show nosuch` exits 1 with
"no such conference" on stderr; a socket path that does not exist exits 2
and names the path; an unknown command exits 64. With one participant in
the room (uac_join plus an RTP endpoint): `show ROOM` prints its URI and
PCMU, `--json show ROOM` has participants[0].rtp.tx_packets > 0 and
agrees with conference.show.

Run by hand: FOCUSD=build/daemon/focusd FOCUSCTL=build/mgmt/focusctl \
SIPP_SCENARIOS=$PWD/tests/sipp python3 tests/integration/test_mgmt_errors.py
(exit status 0 on pass).
"""

import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpep  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "noc1"
LINE_MAX = 64 * 1024
IO_TIMEOUT_S = 5.0
QUIET_S = 0.3


def focusctl_path():
    p = os.environ.get("FOCUSCTL")
    if p:
        return os.path.abspath(p)
    return os.path.normpath(os.path.join(harness.HERE, "..", "..", "build",
                                         "mgmt", "focusctl"))


class Conn:
    """One raw connection to the management socket, line by line."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(IO_TIMEOUT_S)
        self.s.connect(path)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def line(self, what):
        """The next reply line, parsed; fails on timeout or EOF."""
        deadline = time.monotonic() + IO_TIMEOUT_S
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                fail("%s: no reply line within %.0f s (have %r)"
                     % (what, IO_TIMEOUT_S, self.buf[:200]))
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                fail("%s: the server closed the connection without a "
                     "reply (have %r)" % (what, self.buf[:200]))
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        try:
            msg = json.loads(raw)
        except ValueError:
            fail("%s: reply is not JSON: %r" % (what, raw[:300]))
        check(isinstance(msg, dict) and msg.get("jsonrpc") == "2.0",
              "%s: reply is not a JSON-RPC 2.0 object: %r" % (what, msg))
        return msg

    def quiet(self, what, wait=QUIET_S):
        """Nothing more arrives within wait seconds."""
        if self.buf:
            fail("%s: unexpected extra data %r" % (what, self.buf[:300]))
        self.s.settimeout(wait)
        try:
            chunk = self.s.recv(65536)
        except socket.timeout:
            return
        fail("%s: unexpected %s" % (what, "EOF" if not chunk else
                                    "data %r" % chunk[:300]))

    def closed(self, what):
        """The server closes the connection within IO_TIMEOUT_S (EOF or
        reset) and sends nothing more first."""
        deadline = time.monotonic() + IO_TIMEOUT_S
        extra = self.buf
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail("%s: the connection is still open after %.0f s"
                     % (what, IO_TIMEOUT_S))
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                break
            if not chunk:
                break
            extra += chunk
        check(not extra, "%s: more data before the close: %r"
              % (what, extra[:300]))

    def close(self):
        self.s.close()


def expect_error(msg, code, rid, what):
    err = msg.get("error")
    check(isinstance(err, dict) and "result" not in msg,
          "%s: expected an error reply, got %r" % (what, msg))
    check(err.get("code") == code, "%s: error code %r, expected %d: %r"
          % (what, err.get("code"), code, msg))
    check(isinstance(err.get("message"), str) and err["message"],
          "%s: error has no message: %r" % (what, msg))
    check("id" in msg and msg["id"] == rid and
          type(msg["id"]) is type(rid), "%s: reply id %r, expected %r"
          % (what, msg.get("id", "(absent)"), rid))
    log("%-44s -> %d %s" % (what, err["code"], err["message"]))
    return err


def req(method, rid=None, params=None, **extra):
    r = {"jsonrpc": "2.0", "method": method}
    if rid is not None:
        r["id"] = rid
    if params is not None:
        r["params"] = params
    r.update(extra)
    return json.dumps(r) + "\n"


def raw_checks(fd):
    c = Conn(fd.mgmt_path)
    try:
        c.send("this is not json\n")
        expect_error(c.line("non-JSON line"), -32700, None, "non-JSON line")
        c.send('{"jsonrpc":"2.0","id":1,"method":\n')
        expect_error(c.line("truncated JSON"), -32700, None,
                     "truncated JSON object")
        c.send("[]\n")
        expect_error(c.line("empty batch"), -32600, None, "empty batch []")
        c.send("[" + req("conference.list", 2).strip() + "]\n")
        expect_error(c.line("batch of one"), -32600, None, "batch of one")
        c.send('{"jsonrpc":"1.0","id":3,"method":"conference.list"}\n')
        expect_error(c.line("jsonrpc 1.0"), -32600, 3, "\"jsonrpc\": \"1.0\"")
        c.send('{"id":4,"method":"conference.list"}\n')
        expect_error(c.line("no jsonrpc"), -32600, 4, "no \"jsonrpc\"")
        c.send('{"jsonrpc":"2.0","id":5}\n')
        expect_error(c.line("no method"), -32600, 5, "no \"method\"")
        c.send(req("no.such.method", "m1"))
        err = expect_error(c.line("unknown method"), -32601, "m1",
                           "unknown method no.such.method")
        check(isinstance(err.get("data"), dict) and
              err["data"].get("method") == "no.such.method",
              "unknown method: error data %r, expected {\"method\": "
              "\"no.such.method\"}" % err.get("data"))
        for rid, params, what in ((6, None, "conference.show, no params"),
                                  (7, {}, "conference.show {}"),
                                  (8, {"id": 5}, "conference.show id 5"),
                                  (9, {"room": ROOM},
                                   "conference.show {room: ..}")):
            c.send(req("conference.show", rid, params))
            expect_error(c.line(what), -32602, rid, what)
        c.send(req("conference.show", 10, {"id": "nosuch"}))
        err = expect_error(c.line("unknown conference"), -32001, 10,
                           "conference.show nosuch")
        check(isinstance(err.get("data"), dict) and
              err["data"].get("id") == "nosuch",
              "conference.show nosuch: error data %r, expected {\"id\": "
              "\"nosuch\"}" % err.get("data"))
        c.send(req("conference.list", 11, ["extra"]))
        expect_error(c.line("list with params"), -32602, 11,
                     "conference.list [\"extra\"]")

        # notifications: no reply, whatever they are
        c.send(req("conference.list"))
        c.send(req("no.such.method"))
        c.send(req("conference.show", params={"id": "nosuch"}))
        c.send(req("conference.show", params={}))
        c.send(req("conference.list", 12))
        m = c.line("request after four notifications")
        check(m.get("id") == 12 and isinstance(m.get("result"), dict),
              "after four notifications the next line must be the reply "
              "to request 12, got %r" % m)
        c.quiet("after the reply to request 12")
        log("%-44s -> no reply; next line answers id 12" %
            "4 notifications")

        # pipelined requests: in order, one line each
        c.send(req("conference.list", 13) + "\r\n  \n" +
               req("no.such", 14) + req("conference.show", 15,
                                        {"id": "nosuch"}))
        got = [c.line("pipelined %d" % i).get("id") for i in range(3)]
        check(got == [13, 14, 15], "three requests in one write were "
              "answered with ids %r, expected [13, 14, 15]" % got)
        c.quiet("after three pipelined replies")
        log("%-44s -> ids %r" % ("3 requests in one write", got))

        # a long line that fits is served
        big_id = "x" * 60000
        c.send(req("conference.show", 16, {"id": big_id}))
        err = expect_error(c.line("60000-byte request"), -32001, 16,
                           "60000-byte conference.show")
        check((err.get("data") or {}).get("id") == big_id,
              "60000-byte conference.show: data.id is not the ID sent")
    finally:
        c.close()

    # a line over the limit: -32600, then the server closes
    c = Conn(fd.mgmt_path)
    try:
        line = req("conference.show", 17, {"id": "y" * (LINE_MAX + 4096)})
        check(len(line) > LINE_MAX + 1, "test bug: line too short")
        try:
            c.send(line)
        except (BrokenPipeError, ConnectionResetError):
            pass      # it may close before reading all of it
        expect_error(c.line("line over 64 KiB"), -32600, None,
                     "line of %d bytes" % len(line))
        c.closed("after the reply to a line over 64 KiB")
        log("%-44s -> connection closed" % "line over 64 KiB")
    finally:
        c.close()

    # and it still serves
    res = fd.mgmt_result("conference.list")
    check(isinstance(res.get("conferences"), list), "conference.list after "
          "the errors: %r" % res)


def focusctl(args, what, rc_want):
    cmd = [focusctl_path()] + args
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
    except subprocess.TimeoutExpired:
        fail("%s: focusctl did not exit within 10 s: %s"
             % (what, " ".join(cmd)))
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode == rc_want, "%s: `%s` exited %d, expected %d\n"
          "stdout: %s\nstderr: %s" % (what, " ".join(cmd), p.returncode,
                                      rc_want, out[:2000], err[:2000]))
    log("%-44s -> exit %d" % (what, p.returncode))
    return out, err


def focusctl_checks(fd, sock):
    exe = focusctl_path()
    check(os.access(exe, os.X_OK), "focusctl not found or not executable: "
          "%s (set FOCUSCTL)" % exe)
    out, _ = focusctl(["--socket", sock, "list"], "focusctl list", 0)
    head = out.splitlines()[0].split() if out.strip() else []
    check("ID" in head and "PARTICIPANTS" in head, "focusctl list: first "
          "line %r has no ID and PARTICIPANTS header" % out[:200])

    out, _ = focusctl(["--socket", sock, "--json", "list"],
                      "focusctl --json list", 0)
    try:
        j = json.loads(out)
    except ValueError:
        fail("focusctl --json list: not JSON: %r" % out[:300])
    check(isinstance(j, dict) and isinstance(j.get("conferences"), list),
          "focusctl --json list: no conferences array: %r" % j)

    _, err = focusctl(["--socket", sock, "show", "nosuch"],
                      "focusctl show nosuch", 1)
    check("no such conference" in err, "focusctl show nosuch: stderr %r "
          "does not say 'no such conference'" % err)

    missing = "/nonexistent/focusd-%d.sock" % os.getpid()
    check(not os.path.exists(missing), "test bug: %s exists" % missing)
    _, err = focusctl(["--socket", missing, "list"],
                      "focusctl --socket /nonexistent/.. list", 2)
    check(missing in err, "focusctl with a missing socket: stderr %r does "
          "not name %s" % (err, missing))

    _, err = focusctl(["--socket", sock, "bogus"], "focusctl bogus", 64)
    check("bogus" in err or "usage" in err, "focusctl bogus: stderr %r "
          "says neither the command nor the usage" % err)


def participant_checks(fd, sock, clock):
    ep = rtpep.RtpEndpoint(freq=700, epoch=clock.epoch, name="alice",
                           max_duration=30).start()
    run = None
    ok = False
    try:
        run, port = mc.join(fd, ROOM, ep, "alice", 4000)
        ep.start_sending(("127.0.0.1", port))

        def sending():
            p = mc.leg(mc.show(fd, ROOM), port)
            return p if (p.get("rtp") or {}).get("tx_packets", 0) > 0 \
                else None

        p = harness.wait_for(sending, 3.0, interval=0.05,
                             what="focusd sending RTP to alice")
        uri = p.get("uri")
        check(isinstance(uri, str) and uri.startswith("sip:alice@"),
              "conference.show: alice's uri is %r" % uri)

        out, _ = focusctl(["--socket", sock, "show", ROOM],
                          "focusctl show " + ROOM, 0)
        lines = out.splitlines()
        check(len(lines) >= 3, "focusctl show %s: expected a title, a "
              "header and a row, got %r" % (ROOM, out))
        check(lines[0].split()[:1] == [ROOM], "focusctl show %s: first "
              "line %r does not start with the ID" % (ROOM, lines[0]))
        check("URI" in lines[1].split() and "CODEC" in lines[1].split(),
              "focusctl show %s: header %r lacks URI and CODEC"
              % (ROOM, lines[1]))
        rows = [l for l in lines[2:] if uri in l.split()]
        check(len(rows) == 1, "focusctl show %s: no single row with the "
              "participant's URI %s:\n%s" % (ROOM, uri, out))
        check("PCMU" in rows[0].split(), "focusctl show %s: alice's row "
              "%r does not say PCMU" % (ROOM, rows[0]))

        out, _ = focusctl(["--socket", sock, "--json", "show", ROOM],
                          "focusctl --json show " + ROOM, 0)
        try:
            j = json.loads(out)
        except ValueError:
            fail("focusctl --json show: not JSON: %r" % out[:300])
        parts = j.get("participants") if isinstance(j, dict) else None
        check(isinstance(parts, list) and len(parts) == 1,
              "focusctl --json show %s: participants %r, expected one"
              % (ROOM, parts))
        p0 = parts[0]
        tx = (p0.get("rtp") or {}).get("tx_packets")
        check(isinstance(tx, int) and tx > 0, "focusctl --json show %s: "
              "participants[0].rtp.tx_packets is %r, expected > 0"
              % (ROOM, tx))
        check(j.get("id") == ROOM and p0.get("uri") == uri and
              p0.get("codec") == "PCMU", "focusctl --json show %s: id %r, "
              "uri %r, codec %r; expected %s, %s, PCMU"
              % (ROOM, j.get("id"), p0.get("uri"), p0.get("codec"), ROOM,
                 uri))
        log("focusctl --json show: %s %s tx_packets %d" % (uri,
                                                           p0["codec"], tx))

        out, _ = focusctl(["--socket", sock, "list"],
                          "focusctl list (one room)", 0)
        rows = [l.split() for l in out.splitlines()[1:]]
        check(any(r[:2] == [ROOM, "1"] for r in rows), "focusctl list: no "
              "row '%s 1 ...' with the call up:\n%s" % (ROOM, out))
        mc.finish_calls([run], [ep], clock)
        ok = True
    finally:
        ep.stop()
        if run is not None:
            if not ok:
                sys.stderr.write(run.report(lines=30) + "\n")
            run.kill()


def stats_checks(fd):
    """stats carries the io lcore's and every worker's counters; the
    worker's tick count grows with time (20 ms ticks)."""
    a = fd.mgmt_result("stats")
    for key in ("conferences", "legs", "invites", "rejected", "io",
                "workers"):
        check(key in a, "stats: no %r in %r" % (key, a))
    check(isinstance(a["io"].get("rx_malformed"), int) and
          isinstance(a["io"].get("rx_no_flow"), int),
          "stats.io lacks its drop counters: %r" % a["io"])
    check(len(a["workers"]) == 1 and a["workers"][0]["worker"] == 0,
          "stats.workers: expected one worker 0, got %r" % a["workers"])
    time.sleep(0.5)
    b = fd.mgmt_result("stats")
    grew = b["workers"][0]["ticks"] - a["workers"][0]["ticks"]
    check(10 <= grew <= 40, "worker ticks grew by %d in 0.5 s; expected "
          "about 25 (20 ms ticks)" % grew)
    log("stats: io and worker counters present; %d ticks in 0.5 s" % grew)


def main():
    clock = mc.Clock()
    with harness.Focusd(auto_create=True) as fd:
        raw_checks(fd)
        stats_checks(fd)
        focusctl_checks(fd, fd.mgmt_path)
        participant_checks(fd, fd.mgmt_path, clock)
        check(fd.alive(), "focusd died")


if __name__ == "__main__":
    harness.run_main(main)
