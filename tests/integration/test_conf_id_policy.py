#!/usr/bin/env python3
"""--conf-id-pattern limits which conference IDs auto-create may make
(RFC 4579 4.4), and every conference records its owner.

The README: with auto-create on, an INVITE to an unknown ID that the
pattern (POSIX extended regex) does not allow gets 403, one it allows
creates the conference; OPTIONS to an ID that may not be created gets 404
(OPTIONS to any other user); conference.list/show carry "owner", the From
AOR (sip:user@host, no parameters) of the INVITE that made the
conference; an invalid pattern is a start-up failure: exit status 1, and
the error names --conf-id-pattern.

focusd runs with --auto-create --conf-id-pattern '^room[0-9]+$':
  1. uac_join.xml from "dave" to sip:room42@ -> 200 with Contact exactly
     <sip:room42@127.0.0.1:PORT;gr=TOKEN>;isfocus (TOKEN l and 16 hex
     digits, naming dave's leg); conference.show room42 and
     conference.list: owner sip:dave@127.0.0.1 (no port, no tag), 1
     participant.
  2. While dave is in, uac_invite_expect.xml (a good PCMU offer) to
     sip:lobby@ and to sip:room7b@ (the pattern is anchored at both ends)
     -> 403 whose reason phrase contains "Not Allowed", exactly one final
     response each, ACKed in the INVITE's transaction (branch, To tag)
     and not sent again after the ACK (1 s of lingering: the first
     retransmission would come after 500 ms); neither conference appears.
  3. uac_options.xml: OPTIONS sip:room7@ -> 200 with Contact exactly
     <sip:room7@127.0.0.1:PORT>;isfocus (a conference the caller could
     make; no gr: OPTIONS names no leg), and it did not create room7;
     OPTIONS sip:lobby@ -> 404, OPTIONS sip:room7b@ -> 404.
  4. The factory still works: uac_join.xml from "erin" to sip:conf@ ->
     200, Contact exactly <sip:ID@127.0.0.1:PORT;gr=TOKEN>;isfocus, TOKEN
     not dave's, with an opaque ID that the pattern does not allow (it is
     the focus's, not a caller's);
     conference.list: ID, 1 participant, owner sip:erin@127.0.0.1.
  5. After the BYEs: no conferences, stats rejected == 2 (the two 403s).
Then a second focusd with --conf-id-pattern '(' (an unmatched
parenthesis) must exit with status 1 within 5 s, without a "ready" line,
and its stderr must name conf-id-pattern.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_conf_id_policy.py (exit status 0 on pass).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import rtpep  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, log  # noqa: E402

PATTERN = "^room[0-9]+$"
FACTORY = "conf"
ID_RE = re.compile(r"^[A-Za-z0-9\-_.!~+]{12,}$")
LINGER_MS = 1000          # after each 403's ACK: a retransmission at 500
ACK_GRACE_S = 0.1         # a response this soon after the ACK crossed it
STAY_MS = 4000            # dave stays in room42 while the rest happens
BAD_EXIT_WITHIN_S = 5.0   # "quickly", for the bad pattern
RUN_TIMEOUT_S = 10.0      # then it is killed and the test fails
FORBIDDEN = ["lobby", "room7b"]


def aor(user):
    return "sip:%s@%s" % (user, harness.LOOPBACK)


def check_isfocus_contact(resp, conf_id, fd, what):
    """The Contact of an OPTIONS answer: the conference, no leg."""
    contact = sc.header1(resp, "Contact")
    want = "<sip:%s@%s>;isfocus" % (conf_id, fd.sip_target)
    check(contact.replace(" ", "") == want, "%s: Contact %r, expected "
          "exactly %s" % (what, contact, want))


def check_leg_contact(resp, conf_id, fd, what):
    """The Contact of a 200 to an INVITE: the leg's <sip:ID@HOST;gr=TOKEN>
    ;isfocus. Returns TOKEN."""
    return sc.check_focus_contact(sc.header1(resp, "Contact"), "sip:%s@%s"
                                  % (conf_id, fd.sip_target), what)


def contact_id(resp, fd, what):
    """(ID, TOKEN) of a 200's <sip:ID@HOST;gr=TOKEN>;isfocus."""
    contact = sc.header1(resp, "Contact")
    uri, _ = sc.name_addr(contact)
    m = re.match(r"^sip:([^@;>]+)@", uri)
    check(m is not None, "%s: Contact %r is not <sip:ID@HOST;gr=TOKEN>"
          % (what, contact))
    return m.group(1), check_leg_contact(resp, m.group(1), fd, what)


def check_forbidden(name, msgs):
    """One 403 'Not Allowed', ACKed in its transaction, not repeated."""
    invites = sc.requests(msgs, "INVITE", "sent")
    check(invites, "%s: no INVITE in the trace" % name)
    final = sc.responses(msgs, cseq="INVITE", final=True)
    check(final and sc.status(final[0]) == 403, "%s: final responses %r, "
          "expected 403" % (name, [m.start for m in final]))
    phrase = final[0].start.split(" ", 2)[2] if \
        len(final[0].start.split(" ", 2)) == 3 else ""
    check("Not Allowed" in phrase, "%s: 403 reason phrase %r does not "
          "contain 'Not Allowed' (expected 'Forbidden - Conference ID Not "
          "Allowed')" % (name, phrase))
    acks = sc.requests(msgs, "ACK", "sent")
    check(len(acks) == 1, "%s: %d ACKs sent, expected 1 (scenario bug)"
          % (name, len(acks)))
    ack = acks[0]
    late = [m for m in final if m.when > ack.when + ACK_GRACE_S]
    check(not late, "%s: focusd sent the 403 again %.2f s after our ACK "
          "(%d final responses in all): it did not take the ACK as the "
          "end of the transaction"
          % (name, late[0].when - ack.when if late else 0, len(final)))
    check(len(final) == 1, "%s: %d final responses, expected one 403: %r"
          % (name, len(final), [m.start for m in final]))
    check(sc.via_branch(ack) == sc.via_branch(invites[0]),
          "%s: ACK branch %s differs from the INVITE's %s (scenario bug)"
          % (name, sc.via_branch(ack), sc.via_branch(invites[0])))
    to_tag = sc.tag_of(sc.header1(final[0], "To"))
    check(to_tag and sc.tag_of(sc.header1(ack, "To")) == to_tag,
          "%s: ACK To %r does not carry the 403's tag %r"
          % (name, sc.header1(ack, "To"), to_tag))
    log("%s -> %s (ACKed, no retransmission in %d ms)"
        % (name, final[0].start, LINGER_MS))


def options(fd, user, expect):
    name = "options-%s" % user
    msgs = sc.sipp_ok(sc.run_sipp(fd, "uac_options.xml", name,
                                  service=user, keys={"expect": expect},
                                  timeout=10),
                      "OPTIONS sip:%s@ (expecting %d)" % (user, expect))
    final = sc.responses(msgs, cseq="OPTIONS", final=True)
    got = [sc.status(m) for m in final]
    check(got == [expect], "OPTIONS sip:%s@: final responses %r, expected "
          "one %d" % (user, got, expect))
    log("OPTIONS sip:%s@ -> %s" % (user, final[0].start))
    return final[0]


def bad_pattern():
    """focusd with an unparsable pattern: exit 1, quickly, saying so."""
    tmpdir = tempfile.mkdtemp(prefix="focusd-it-badre-")
    block = harness.reserve_port_block(harness.RTP_RANGE_SIZE)
    ok = False
    try:
        mgmt = os.path.join(tmpdir, "mgmt.sock")
        argv = [harness.focusd_path(),
                "--sip-listen", "127.0.0.1:%d"
                % harness.free_port(("udp", "tcp")),
                "--rtp-addr", "127.0.0.1",
                "--rtp-ports", "%d-%d" % (block.lo, block.hi),
                "--mgmt", mgmt, "--log-level", "debug", "--auto-create",
                "--conf-id-pattern", "("]
        log("bad pattern: %s" % " ".join(argv))
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=tmpdir)
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate(timeout=5)
            harness.fail("focusd --conf-id-pattern '(' still running after "
                         "%.0f s (it should refuse to start); killed. "
                         "stderr:\n%s" % (RUN_TIMEOUT_S, err.decode(
                             "utf-8", "replace")[-2000:]))
        took = time.monotonic() - t0
        out = out.decode("utf-8", "replace")
        err = err.decode("utf-8", "replace")
        rc = proc.returncode
        check(rc == 1, "focusd --conf-id-pattern '(': ended with %s, "
              "expected exit status 1\nstdout:\n%s\nstderr:\n%s"
              % ("signal %d" % -rc if rc < 0 else "exit status %d" % rc,
                 out[-2000:], err[-2000:]))
        check(took < BAD_EXIT_WITHIN_S, "focusd --conf-id-pattern '(': "
              "took %.1f s to exit, expected under %.0f s"
              % (took, BAD_EXIT_WITHIN_S))
        check("conf-id-pattern" in err, "focusd --conf-id-pattern '(': "
              "stderr does not name conf-id-pattern:\n%s\nstdout:\n%s"
              % (err[-2000:], out[-2000:]))
        check(not any(re.search(r"\bready\b", l, re.I)
                      for l in (out + err).splitlines()),
              "focusd --conf-id-pattern '(': said it was ready before "
              "exiting:\n%s" % err[-2000:])
        said = [l for l in err.splitlines() if "conf-id-pattern" in l]
        log("bad pattern -> exit 1 in %.2f s: %s" % (took, said[0].strip()))
        ok = True
    finally:
        block.release()
        if ok and not os.environ.get("FOCUSD_IT_KEEP"):
            shutil.rmtree(tmpdir, ignore_errors=True)
        else:
            log("keeping %s" % tmpdir)


def main():
    with harness.Focusd(auto_create=True,
                        extra_args=["--conf-id-pattern", PATTERN]) as fd:
        sink = rtpep.RtpEndpoint(name="sink", max_duration=30).start()
        runs = []
        try:
            check(sc.list_ids(fd) == [], "conferences before any call: %r"
                  % sc.list_ids(fd))

            # -- 1. an allowed ID
            dave = sc.run_sipp(fd, "uac_join.xml", "join-room42",
                               service="room42", background=True,
                               sets={"from_user": "dave"},
                               keys={"rtp_port": sink.port,
                                     "pause_ms": STAY_MS,
                                     "port_file": "/dev/null"})
            runs.append(dave)
            ok = sc.wait_response(dave, "INVITE", 5,
                                  "dave's INVITE to sip:room42@")
            check(sc.status(ok) == 200, "INVITE sip:room42@ (allowed by %r)"
                  ": answered %r, expected 200\n%s"
                  % (PATTERN, ok.start, ok.raw))
            dave_token = check_leg_contact(ok, "room42", fd,
                                           "200 to sip:room42@")
            log("INVITE sip:room42@ -> %s" % ok.start)
            show = fd.mgmt_result("conference.show", {"id": "room42"})
            check(show.get("owner") == aor("dave"), "conference.show room42"
                  ": owner %r, expected %r (the From AOR, without port or "
                  "tag)" % (show.get("owner"), aor("dave")))
            check(len(show.get("participants") or []) == 1,
                  "conference.show room42: %r, expected 1 participant"
                  % show)
            conf = sc.find_conf(fd, "room42")
            check(conf is not None and conf.get("owner") == aor("dave") and
                  conf.get("participants") == 1, "conference.list room42: "
                  "%r, expected owner %r and 1 participant"
                  % (conf, aor("dave")))

            # -- 2. IDs the pattern does not allow
            rejected = []
            for user in FORBIDDEN:
                rejected.append((user, sc.run_sipp(
                    fd, "uac_invite_expect.xml", "invite-%s" % user,
                    service=user, background=True, timeout=10,
                    keys={"offer": "pcmu", "expect": 403,
                          "rtp_port": sink.port, "linger_ms": LINGER_MS})))
            runs += [r for _, r in rejected]
            for user, run in rejected:
                check_forbidden("INVITE sip:%s@" % user, sc.sipp_ok(
                    run, "INVITE sip:%s@ (not allowed by %r, expecting 403)"
                    % (user, PATTERN)))
            ids = sc.list_ids(fd)
            check(not set(FORBIDDEN) & set(ids), "conference.list after "
                  "the 403s: %r; %s must not exist" % (ids, FORBIDDEN))

            # -- 3. OPTIONS answers what an INVITE could make
            resp = options(fd, "room7", 200)
            check_isfocus_contact(resp, "room7", fd, "200 to OPTIONS "
                                  "sip:room7@")
            for user in FORBIDDEN:
                options(fd, user, 404)
            check(sc.find_conf(fd, "room7") is None, "OPTIONS sip:room7@ "
                  "created room7: %r" % sc.list_ids(fd))

            # -- 4. the factory's own IDs need not match
            erin = sc.run_sipp(fd, "uac_join.xml", "factory-erin",
                               service=FACTORY, background=True,
                               sets={"from_user": "erin"},
                               keys={"rtp_port": sink.port,
                                     "pause_ms": 1000,
                                     "port_file": "/dev/null"})
            runs.append(erin)
            what = "erin's INVITE to the factory sip:%s@" % FACTORY
            ok = sc.wait_response(erin, "INVITE", 5, what)
            check(sc.status(ok) == 200, "%s: answered %r, expected 200 "
                  "(the pattern is for auto-created IDs, not the "
                  "factory's)\n%s" % (what, ok.start, ok.raw))
            fid, erin_token = contact_id(ok, fd, what)
            sc.check_legs_differ({"dave": dave_token, "erin": erin_token},
                                 "the 200s to dave and erin")
            check(fid != FACTORY and ID_RE.match(fid) and
                  not re.search(PATTERN, fid), "%s: ID %r, expected an "
                  "opaque ID of at least 12 user characters (that %r does "
                  "not allow)" % (what, fid, PATTERN))
            log("%s -> 200, conference %s" % (what, fid))
            conf = sc.find_conf(fd, fid)
            check(conf is not None and conf.get("participants") == 1 and
                  conf.get("owner") == aor("erin"), "conference.list %s: "
                  "%r, expected 1 participant and owner %r"
                  % (fid, conf, aor("erin")))

            # -- 5. the end
            sc.sipp_ok(erin, "erin's factory call")
            sc.sipp_ok(dave, "dave's call to room42")
            sc.wait_until(lambda: sc.list_ids(fd) == [], 2.0,
                          "all conferences gone after the BYEs",
                          lambda: "conference.list %r" % sc.list_ids(fd))
            st = fd.mgmt_result("stats")
            check(st.get("rejected") == len(FORBIDDEN), "stats: rejected=%r"
                  ", expected %d (the 403s)" % (st.get("rejected"),
                                                len(FORBIDDEN)))
            check(st.get("conferences") == 0 and st.get("legs") == 0,
                  "stats at the end: conferences=%r legs=%r, expected 0 "
                  "and 0" % (st.get("conferences"), st.get("legs")))
        finally:
            failed = sys.exc_info()[0] is not None
            for run in runs:
                if failed or run.poll() is None:
                    run.kill()
                    sys.stderr.write(run.report(lines=30) + "\n")
            sink.stop()

    bad_pattern()


if __name__ == "__main__":
    harness.run_main(main)
