#!/usr/bin/env python3
"""A redirecting factory (RFC 4579 4.5) answers 302 to a new conference,
which waits --conf-empty-timeout seconds for its first participant.

The README: with --factory-mode redirect, an INVITE to the factory URI
sip:conf@HOST creates a conference with an opaque ID, owned by the caller
(the From AOR), and is answered `302 Moved Temporarily` with Contact
<sip:ID@HOST>;isfocus; conference.list shows it with 0 participants and
its owner; nobody joining within --conf-empty-timeout releases it.

focusd runs with --factory-mode redirect --conf-empty-timeout 2 and
auto-create off, so only the factory makes conferences.
  1. uac_redirect.xml from "alice": INVITE sip:conf@ -> 302 Moved
     Temporarily, Contact exactly <sip:ID@127.0.0.1:PORT>;isfocus, ID
     opaque (not "conf", at least 12 RFC 3261 user characters); the
     scenario ACKs it in the INVITE's transaction and writes the Contact
     URI to a file. conference.list: only ID, uri sip:ID@127.0.0.1:PORT,
     0 participants, owner sip:alice@127.0.0.1.
  2. At once uac_join.xml from "bob" to sip:ID@ -> 200 with the Contact
     exactly <sip:ID@127.0.0.1:PORT;gr=TOKEN>;isfocus (the 302's URI plus
     gr: bob's leg, TOKEN l and 16 hex digits; the 302 itself has no gr,
     as it names no leg); ID has 1 participant (list and show), owner still
     alice. Bob stays past the empty timeout (checked at 3.3 s after the
     302, when an unjoined conference would be gone): ID is still there
     with 1 participant. After his BYE, ID is gone within 2 s.
  3. The traces: one 302, ACKed with the INVITE's branch and Request-URI
     and the 302's To tag, and not sent again after the ACK (1.2 s of
     lingering: the first retransmission would come after 500 ms); one
     200 to bob's INVITE and one to his BYE.
  4. uac_redirect.xml from "carol", sent late in a wall-clock second
     (where a timeout counted in whole seconds of time() fires up to 1 s
     early): 302 to ID2 != ID; conference.list shows ID2 with 0
     participants, owner sip:carol@127.0.0.1. Nobody joins: ID2 stays
     listed for 2 s after the 302 and is gone by 4 s (polled every 50 ms).
     Then an INVITE to sip:ID2@ gets 404 (uac_invite_expect.xml).
  5. stats: 0 conferences, 0 legs.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_factory_redirect.py (exit status 0 on pass).
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import rtpep  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, log  # noqa: E402

FACTORY = "conf"
EMPTY_TIMEOUT_S = 2
ID_RE = re.compile(r"^[A-Za-z0-9\-_.!~+]{12,}$")
LINGER_MS = 1200          # after the 302's ACK: a retransmission at 500
ACK_GRACE_S = 0.1         # a 302 this soon after the ACK crossed it
JOIN_STAY_MS = 4000       # bob stays past the empty timeout
STILL_THERE_AT_S = 3.3    # after the 302: an unjoined one would be gone
POLL_S = 0.05
EARLY_SLACK_S = 0.05      # measuring slack on the lower bound
SECOND_PHASE = 0.96       # carol's 302 comes at about this fraction of
                          # a wall-clock second


def owner_of(fd, user):
    return "sip:%s@%s" % (user, harness.LOOPBACK)


def redirect(fd, user, sink, name):
    """Start uac_redirect.xml from user; wait for the 302 and check its
    Contact. Returns (run, conf_id, the 302, contact file path, seconds
    from SIPp's start to the 302)."""
    cfile = os.path.join(fd.tmpdir, "contact-%s.txt" % name)
    t_launch = time.time()
    run = sc.run_sipp(fd, "uac_redirect.xml", name, service=FACTORY,
                      background=True,
                      keys={"from_user": user, "rtp_port": sink.port,
                            "linger_ms": LINGER_MS, "contact_file": cfile})
    what = "%s: INVITE sip:%s@ from %s" % (name, FACTORY, user)
    resp = sc.wait_response(run, "INVITE", 5, what)
    check(sc.status(resp) == 302, "%s: answered %r, expected 302 Moved "
          "Temporarily (--factory-mode redirect)\n%s"
          % (what, resp.start, resp.raw))
    check(resp.start == "SIP/2.0 302 Moved Temporarily",
          "%s: status line %r, expected 'SIP/2.0 302 Moved Temporarily'"
          % (what, resp.start))
    contacts = sc.header(resp, "Contact")
    check(len(contacts) == 1, "%s: the 302 has %d Contact headers, "
          "expected one: %r\n%s" % (what, len(contacts), contacts,
                                    resp.raw))
    contact = contacts[0]
    uri, params = sc.name_addr(contact)
    m = re.match(r"^sip:([^@;>]+)@(.+)$", uri)
    check(m is not None, "%s: 302 Contact %r is not <sip:ID@HOST>"
          % (what, contact))
    conf_id = m.group(1)
    check(contact.replace(" ", "") == "<sip:%s@%s>;isfocus"
          % (conf_id, fd.sip_target), "%s: 302 Contact %r, expected "
          "exactly <sip:%s@%s>;isfocus" % (what, contact, conf_id,
                                           fd.sip_target))
    check(conf_id != FACTORY and ID_RE.match(conf_id),
          "%s: 302 Contact names ID %r: expected an opaque ID of at "
          "least 12 user characters, not %r" % (what, conf_id, FACTORY))
    log("%s -> %s, Contact %s (%.3f s after SIPp started)"
        % (what, resp.start, contact, resp.when - t_launch))
    return run, conf_id, resp, cfile, resp.when - t_launch


def check_conf(fd, conf_id, participants, owner, what):
    conf = sc.find_conf(fd, conf_id)
    check(conf is not None, "%s: conference.list does not show %s: %r"
          % (what, conf_id, sc.list_ids(fd)))
    check(conf.get("uri") == "sip:%s@%s" % (conf_id, fd.sip_target),
          "%s: conference.list: %s has uri %r, expected sip:%s@%s"
          % (what, conf_id, conf.get("uri"), conf_id, fd.sip_target))
    check(conf.get("participants") == participants, "%s: conference.list"
          ": %s has %r participants, expected %d"
          % (what, conf_id, conf.get("participants"), participants))
    check(conf.get("owner") == owner, "%s: conference.list: %s has owner "
          "%r, expected %r (the From AOR of the factory INVITE)"
          % (what, conf_id, conf.get("owner"), owner))
    return conf


def check_redirect_trace(msgs, name):
    """One 302, ACKed in its transaction, not retransmitted."""
    invites = sc.requests(msgs, "INVITE", "sent")
    check(len(invites) >= 1, "%s: no INVITE in the trace" % name)
    final = sc.responses(msgs, cseq="INVITE", final=True)
    check(final and sc.status(final[0]) == 302, "%s: final responses %r, "
          "expected 302" % (name, [m.start for m in final]))
    acks = sc.requests(msgs, "ACK", "sent")
    check(len(acks) == 1, "%s: %d ACKs sent, expected 1 (scenario bug)"
          % (name, len(acks)))
    ack = acks[0]
    late = [m for m in final if m.when > ack.when + ACK_GRACE_S]
    check(not late, "%s: focusd sent the 302 again %.2f s after our ACK "
          "(%d final responses in all): it did not take the ACK as the "
          "end of the transaction\n%s"
          % (name, late[0].when - ack.when if late else 0, len(final),
             "\n".join(m.raw for m in final)))
    check(len(final) == 1, "%s: %d final responses to one INVITE, "
          "expected one 302: %r" % (name, len(final),
                                    [m.start for m in final]))
    check(sc.via_branch(ack) == sc.via_branch(invites[0]),
          "%s: ACK branch %s differs from the INVITE's %s (scenario bug)"
          % (name, sc.via_branch(ack), sc.via_branch(invites[0])))
    check(ack.start.split()[1] == invites[0].start.split()[1],
          "%s: ACK Request-URI %r, INVITE's %r (scenario bug)"
          % (name, ack.start, invites[0].start))
    to_tag = sc.tag_of(sc.header1(final[0], "To"))
    check(to_tag and sc.tag_of(sc.header1(ack, "To")) == to_tag,
          "%s: ACK To %r does not carry the 302's tag %r"
          % (name, sc.header1(ack, "To"), to_tag))
    stray = [m for m in msgs if m.direction == "received" and
             sc.status(m) is None]
    check(not stray, "%s: focusd sent requests on a redirected call: %r"
          % (name, [m.start for m in stray]))
    log("%s: one 302, ACKed, not retransmitted in %d ms"
        % (name, LINGER_MS))


def check_contact_file(cfile, conf_id, fd, name):
    want = "sip:%s@%s" % (conf_id, fd.sip_target)

    def read():
        try:
            with open(cfile) as f:
                return f.read().strip()
        except OSError:
            return None
    sc.wait_until(lambda: read() == want, 2.0,
                  "%s: uac_redirect.xml writing %s to its contact_file"
                  % (name, want), lambda: "file has %r" % read())


def main():
    # info: the 50 ms conference.list polls would fill a debug log's tail
    with harness.Focusd(auto_create=False, log_level="info", extra_args=[
            "--factory-mode", "redirect",
            "--conf-empty-timeout", str(EMPTY_TIMEOUT_S)]) as fd:
        sink = rtpep.RtpEndpoint(name="sink", max_duration=30).start()
        runs = []
        try:
            check(sc.list_ids(fd) == [], "conferences before any call: %r"
                  % sc.list_ids(fd))

            # -- 1. redirect, the conference waits with 0 participants
            run1, cid, r302, cfile1, lag = redirect(fd, "alice", sink,
                                                    "redirect-alice")
            runs.append(run1)
            check_conf(fd, cid, 0, owner_of(fd, "alice"),
                       "right after the 302")
            check(sc.list_ids(fd) == [cid], "conference.list %r, expected "
                  "only %s" % (sc.list_ids(fd), cid))

            # -- 2. bob follows the redirect at once
            join = sc.run_sipp(fd, "uac_join.xml", "join-bob", service=cid,
                               background=True, sets={"from_user": "bob"},
                               keys={"rtp_port": sink.port,
                                     "pause_ms": JOIN_STAY_MS,
                                     "port_file": "/dev/null"})
            runs.append(join)
            what = "bob's INVITE to sip:%s@" % cid
            ok = sc.wait_response(join, "INVITE", 5, what)
            check(sc.status(ok) == 200, "%s: answered %r, expected 200 "
                  "(the conference the 302 named)\n%s"
                  % (what, ok.start, ok.raw))
            contact = sc.header1(ok, "Contact")
            sc.check_focus_contact(contact, "sip:%s@%s"
                                   % (cid, fd.sip_target),
                                   "%s: the 200" % what)
            log("%s -> 200, Contact %s" % (what, contact))
            check_conf(fd, cid, 1, owner_of(fd, "alice"),
                       "after bob joined")
            show = fd.mgmt_result("conference.show", {"id": cid})
            parts = show.get("participants")
            check(isinstance(parts, list) and len(parts) == 1,
                  "conference.show %s after bob joined: %r, expected 1 "
                  "participant" % (cid, show))
            check(show.get("owner") == owner_of(fd, "alice"),
                  "conference.show %s: owner %r, expected %r (the creator, "
                  "not whoever joined)" % (cid, show.get("owner"),
                                           owner_of(fd, "alice")))
            check("bob" in str(parts[0].get("uri")),
                  "conference.show %s: participant uri %r, expected bob's"
                  % (cid, parts[0].get("uri")))
            check_contact_file(cfile1, cid, fd, "redirect-alice")

            # joined: the empty timeout no longer applies
            delay = r302.when + STILL_THERE_AT_S - time.time()
            if delay > 0:
                time.sleep(delay)
            check(join.poll() is None, "bob's call ended before the check "
                  "at %.1f s\n%s" % (STILL_THERE_AT_S, join.report()))
            check_conf(fd, cid, 1, owner_of(fd, "alice"),
                       "%.1f s after the 302, bob still in the call"
                       % STILL_THERE_AT_S)

            msgs = sc.sipp_ok(join, "bob's call to sip:%s@" % cid)
            t_bye = time.monotonic()
            finals = [m.start for m in sc.responses(msgs, cseq="INVITE",
                                                    final=True)]
            check(finals == ["SIP/2.0 200 OK"], "bob's call: final "
                  "responses to the INVITE %r, expected one 200 (a second "
                  "is focusd retransmitting: the ACK did not match)"
                  % finals)
            byes = [sc.status(m) for m in sc.responses(msgs, cseq="BYE",
                                                       final=True)]
            check(byes == [200], "bob's call: responses to the BYE %r, "
                  "expected one 200" % byes)
            sc.wait_until(lambda: sc.find_conf(fd, cid) is None, 2.0,
                          "%s gone after bob's BYE" % cid,
                          lambda: "conference.list %r" % sc.list_ids(fd))
            log("%s gone %.2f s after bob's BYE"
                % (cid, time.monotonic() - t_bye))

            # -- 3. alice's transaction
            check_redirect_trace(sc.sipp_ok(run1, "redirect-alice"),
                                 "redirect-alice")

            # -- 4. a redirect nobody follows
            # aim the 302 at SECOND_PHASE, allowing for SIPp's start-up
            # as alice's call measured it
            frac = time.time() % 1.0
            time.sleep((SECOND_PHASE - min(lag, 0.5) - frac) % 1.0)
            run2, cid2, r302b, _, _ = redirect(fd, "carol", sink,
                                               "redirect-carol")
            runs.append(run2)
            check(cid2 != cid, "the second redirect names %s again" % cid)
            check_conf(fd, cid2, 0, owner_of(fd, "carol"),
                       "right after carol's 302")
            t0 = r302b.when
            log("carol's 302 at %.3f s into its wall-clock second"
                % (t0 % 1.0))
            last_seen = time.time()
            while True:
                now = time.time()
                if sc.find_conf(fd, cid2) is None:
                    gone = now
                    break
                last_seen = now
                if now - t0 > EMPTY_TIMEOUT_S + 2.0:
                    harness.fail("%s still listed %.2f s after its 302 "
                                 "with nobody in it (--conf-empty-timeout "
                                 "%d): %r" % (cid2, now - t0,
                                              EMPTY_TIMEOUT_S,
                                              sc.find_conf(fd, cid2)))
                time.sleep(POLL_S)
            log("%s: last listed %.2f s, gone at %.2f s after its 302"
                % (cid2, last_seen - t0, gone - t0))
            check(gone - t0 >= EMPTY_TIMEOUT_S - EARLY_SLACK_S,
                  "%s was released %.2f s after its 302 (last listed at "
                  "%.2f s), before --conf-empty-timeout %d s had passed "
                  "(the 302 came %.3f s into its wall-clock second: a "
                  "deadline kept in whole seconds fires up to 1 s early "
                  "there)" % (cid2, gone - t0, last_seen - t0,
                              EMPTY_TIMEOUT_S, t0 % 1.0))
            check_redirect_trace(sc.sipp_ok(run2, "redirect-carol"),
                                 "redirect-carol")

            # released means gone for SIP too (auto-create is off)
            sc.sipp_ok(sc.run_sipp(fd, "uac_invite_expect.xml",
                                   "late-join", service=cid2, timeout=10,
                                   keys={"offer": "pcmu", "expect": 404,
                                         "rtp_port": sink.port,
                                         "linger_ms": 600}),
                       "INVITE to the released %s (expecting 404)" % cid2)
            log("INVITE to the released %s -> 404" % cid2)

            # -- 5. nothing left
            st = fd.mgmt_result("stats")
            check(st.get("conferences") == 0 and st.get("legs") == 0,
                  "stats at the end: conferences=%r legs=%r, expected 0 "
                  "and 0" % (st.get("conferences"), st.get("legs")))
            check(sc.list_ids(fd) == [], "conference.list at the end: %r"
                  % sc.list_ids(fd))
        finally:
            failed = sys.exc_info()[0] is not None
            for run in runs:
                if failed or run.poll() is None:
                    run.kill()
                    sys.stderr.write(run.report(lines=30) + "\n")
            sink.stop()


if __name__ == "__main__":
    harness.run_main(main)
