#!/usr/bin/env python3
"""The focus calls a participant in: conference.dialout (RFC 4579 4.2).

focusd runs with auto-create on. alice dials in to room1 (uac_join, an
RTP endpoint playing 500 Hz). Then, through the management socket:
- errors first: conference.dialout to a conference that does not exist
  gets -32001; a "tel:+1234" URI gets -32602 and adds no participant;
  params without "uri", without "id", or no params at all get -32602;
- bob: a SIPp UAS (uas_answer.xml) that rings at once (180) and answers
  200 after ANSWER_MS, its SDP pointing at an RTP endpoint that plays
  1100 Hz. conference.dialout {"id": "room1", "uri": "sip:bob@127.0.0.1:
  PORT"} answers {"id", "uri", "state": "dialing-out"}. bob's trace must
  show the INVITE: Request-URI and To the URI dialed, From
  <sip:room1@DOMAIN> with a tag, Contact exactly
  <sip:room1@DOMAIN;gr=TOKEN>;isfocus (TOKEN l and 16 hex digits, naming
  the leg; not alice's, whose 200 carries her own), application/sdp
  offering, in this order, PT 111 (opus/48000/2), 9 (G722/8000), 0
  (PCMU/8000), 8 (PCMA/8000), then 101 (telephone-event/8000) and 100
  (telephone-event/48000), sendrecv, on 127.0.0.1
  and a port in --rtp-ports; then an ACK to the
  200 from the focus (to our Contact, the INVITE's CSeq number, a new
  branch). conference.show, polled, shows the participant with bob's URI
  first "dialing-out" or "alerting", then "alerting" while it rings,
  then "connected" with direction sendrecv, codec PCMU, local_rtp the
  offer's port and remote_rtp bob's endpoint;
- audio flows both ways: bob's endpoint sends to the port from the offer
  (symmetric RTP: the same socket as in the SDP answer); bob hears
  alice's tone and alice hears bob's, each at least MIN_TONE_DBFS and
  MIN_SNR_DB over the noise probes;
- carol: a UAS that rings and then answers 486 Busy Here: the dial-out
  is accepted ("dialing-out"), her INVITE's Contact is room1's with a
  TOKEN of its own (neither alice's nor bob's), the participant shows up,
  and is gone from conference.show within GONE_S of the 486; the UAS gets
  its ACK;
- bob hangs up after HOLD_MS, alice after ALICE_MS; room1 then ends
  within GONE_S; every SIPp run exits 0 and focusd exits 0 on SIGTERM;
- last, after focusd's clean exit (so that everything above is checked
  first): conference.show said "joining": "dialed-out" for bob (RFC 4575
  joining-method), as the conference event package does.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_dialout.py (exit status 0 on pass).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
FREQ = {"alice": 500, "bob": 1100}
ANSWER_MS = 1500          # bob rings this long
HOLD_MS = 6000            # bob stays this long after his 200
ALICE_MS = 10500          # alice stays this long (outlasts bob)
BUSY_ANSWER_MS = 800      # carol rings this long before her 486
SETTLE_S = 0.4            # skip this much audio after bob's answer
WINDOW_S = 2.0            # then measure this long
MIN_AUDIO_S = 1.0         # audio that must arrive in the window
MIN_TONE_DBFS = -30.0     # sent at -12 dBFS
MIN_SNR_DB = 20.0
GONE_S = 2.0
STATE_TIMEOUT_S = 5.0

ERR_INVALID_PARAMS = -32602
ERR_NO_SUCH_CONF = -32001


def start_uas(fd, name, rtp_port, status, answer_ms, hold_ms, ring=1):
    """A uas_answer.xml UAS as user `name`; returns (SippRun, its URI)
    once it listens."""
    return sc.start_uas(fd, name, "uas_answer.xml",
                        {"rtp_port": rtp_port, "ring": ring,
                         "answer_ms": answer_ms, "status": status,
                         "hold_ms": hold_ms})


def expect_error(fd, params, code, what):
    resp = fd.mgmt("conference.dialout", params)
    err = resp.get("error")
    check(isinstance(err, dict) and err.get("code") == code,
          "conference.dialout %s (%s): answered %r, expected error %d"
          % (what, params, resp, code))
    log("conference.dialout %s -> error %d %r"
        % (what, code, err.get("message")))


def participants(fd):
    return mc.show(fd, ROOM)["participants"]


def by_uri(parts, uri):
    found = [p for p in parts if p.get("uri") == uri]
    check(len(found) <= 1, "conference.show %s lists %s %d times: %r"
          % (ROOM, uri, len(found), parts))
    return found[0] if found else None


def received(run, method):
    return sc.requests(sc.trace_of(run), method, "received")


def check_invite(fd, inv, uri):
    """The dial-out INVITE as bob received it; returns the offer's port
    and the gr of its Contact."""
    domain = fd.sip_target
    want_conf = "sip:%s@%s" % (ROOM, domain)
    what = "the focus's INVITE to %s" % uri
    check(inv.start == "INVITE %s SIP/2.0" % uri, "%s: Request-URI line %r"
          % (what, inv.start))
    frm = sc.header1(inv, "From")
    furi, fparams = sc.name_addr(frm)
    check(furi == want_conf and fparams.get("tag"), "%s: From %r, expected "
          "<%s> with a tag" % (what, frm, want_conf))
    to = sc.header1(inv, "To")
    turi, tparams = sc.name_addr(to)
    check(turi == uri and "tag" not in tparams, "%s: To %r, expected <%s> "
          "without a tag" % (what, to, uri))
    contact = sc.header1(inv, "Contact")
    token = sc.check_focus_contact(contact, want_conf, what)
    ctype = sc.header1(inv, "Content-Type").split(";")[0].strip().lower()
    check(ctype == "application/sdp", "%s: Content-Type %r" % (what, ctype))
    sdp = sc.parse_sdp(inv.body)
    audio = [m for m in sdp["media"] if m["type"] == "audio"]
    check(len(sdp["media"]) == 1 and audio, "%s: expected one m=audio "
          "line, SDP is:\n%s" % (what, inv.body))
    m = audio[0]
    check(m["proto"] == "RTP/AVP" and
          m["fmts"] == ["111", "9", "0", "8", "101", "100"],
          "%s: m-line %r, expected RTP/AVP offering payload types 111 9 "
          "0 8 101 100 (wideband first: the conference mixes at 16 kHz; "
          "telephone-event at both clocks)" % (what, m["line"]))
    maps = set(a.split()[0] + " " + a.split()[1].upper()
               for a in sc.sdp_attrs(sdp, m, "rtpmap") if len(a.split()) > 1)
    want = {"111 OPUS/48000/2", "9 G722/8000", "0 PCMU/8000", "8 PCMA/8000",
            "101 TELEPHONE-EVENT/8000", "100 TELEPHONE-EVENT/48000"}
    check(want <= maps, "%s: rtpmap %r, expected %s"
          % (what, sorted(maps), " and ".join(sorted(want))))
    check(sc.sdp_direction(sdp, m) == "sendrecv", "%s: direction %r, "
          "expected sendrecv" % (what, sc.sdp_direction(sdp, m)))
    conn = sc.sdp_connection(sdp, m)
    check(conn == "IN IP4 127.0.0.1", "%s: c=%r, expected IN IP4 127.0.0.1"
          % (what, conn))
    check(fd.rtp.lo <= m["port"] <= fd.rtp.hi, "%s: offered RTP port %d "
          "outside --rtp-ports %d-%d" % (what, m["port"], fd.rtp.lo,
                                         fd.rtp.hi))
    log("%s: From %s, Contact %s, %s" % (what, frm, contact, m["line"]))
    return m["port"], token


def check_ack(run, inv, name):
    """The ACK to the UAS's 200: to its Contact, same CSeq number, a new
    transaction."""
    msgs = sc.trace_of(run)
    acks = sc.requests(msgs, "ACK", "received")
    check(len(acks) == 1, "UAS %s: %d ACKs received, expected 1:\n  %s"
          % (name, len(acks), "\n  ".join(m.start for m in msgs)))
    ok = [m for m in msgs if m.direction == "sent" and sc.status(m) == 200
          and sc.cseq_method(m) == "INVITE"]
    check(ok, "UAS %s: no 200 to the INVITE in its trace" % name)
    target, _ = sc.name_addr(sc.header1(ok[0], "Contact"))
    ack = acks[0]
    check(ack.start == "ACK %s SIP/2.0" % target, "UAS %s: ACK %r, "
          "expected to our Contact %s" % (name, ack.start, target))
    n_inv = sc.header1(inv, "CSeq").split()[0]
    check(sc.header1(ack, "CSeq").split() == [n_inv, "ACK"],
          "UAS %s: ACK CSeq %r, the INVITE's is %r"
          % (name, sc.header1(ack, "CSeq"), sc.header1(inv, "CSeq")))
    check(sc.via_branch(ack) != sc.via_branch(inv), "UAS %s: the ACK to "
          "the 200 reuses the INVITE's branch %s (it is a new transaction)"
          % (name, sc.via_branch(ack)))
    check(sc.tag_of(sc.header1(ack, "To")) ==
          sc.tag_of(sc.header1(ok[0], "To")), "UAS %s: ACK To %r lacks "
          "our tag from the 200 (%r)" % (name, sc.header1(ack, "To"),
                                        sc.header1(ok[0], "To")))


def follow_states(fd, uri, until, timeout, what):
    """Poll conference.show; returns the list of distinct states seen
    for uri (in order) up to and including `until`, and the last entry."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        p = by_uri(participants(fd), uri)
        st = p.get("state") if p else None
        if not seen or seen[-1] != st:
            seen.append(st)
            log("%s: conference.show says %r" % (what, st))
        if st == until:
            return seen, p
        if time.monotonic() > deadline:
            fail("%s: state %r not reached within %.1f s; states seen: %r"
                 % (what, until, timeout, seen))
        time.sleep(0.02)


def main():
    clock = mc.Clock()
    eps = {}
    runs = []
    failed = True
    joining = bob_uri = None
    with harness.Focusd(auto_create=True) as fd:
        try:
            for name, f in FREQ.items():
                eps[name] = mc.TimedEndpoint(clock, freq=f, name=name,
                                             max_duration=40).start()

            # -- errors that need no conference
            expect_error(fd, {"id": "nosuch", "uri": "sip:x@127.0.0.1:9"},
                         ERR_NO_SUCH_CONF, "to an unknown conference")
            check(sc.find_conf(fd, "nosuch") is None, "conference.dialout "
                  "to an unknown conference created it: %r"
                  % sc.list_ids(fd))
            expect_error(fd, {"id": ROOM}, ERR_INVALID_PARAMS,
                         "without uri")
            expect_error(fd, {"uri": "sip:x@127.0.0.1:9"},
                         ERR_INVALID_PARAMS, "without id")
            expect_error(fd, None, ERR_INVALID_PARAMS, "without params")

            # -- alice dials in
            run, alice_port = mc.join(fd, ROOM, eps["alice"], "alice",
                                      ALICE_MS)
            runs.append(run)
            eps["alice"].start_sending(("127.0.0.1", alice_port))
            ok = [m for m in sc.responses(sc.trace_of(run), cseq="INVITE",
                                          final=True) if sc.status(m) == 200]
            check(ok, "alice: no 200 to her INVITE in the trace")
            tokens = {"alice": sc.check_focus_contact(
                sc.header1(ok[0], "Contact"), "sip:%s@%s"
                % (ROOM, fd.sip_target), "the 200 to alice's INVITE")}
            log("alice in %s: %d Hz to focusd :%d"
                % (ROOM, FREQ["alice"], alice_port))

            expect_error(fd, {"id": ROOM, "uri": "tel:+1234"},
                         ERR_INVALID_PARAMS, "to a tel: URI")
            parts = participants(fd)
            check(len(parts) == 1, "conference.show %s after the refused "
                  "tel: dial-out: %d participants, expected only alice: %r"
                  % (ROOM, len(parts), parts))

            # -- bob: rings, answers, audio both ways
            bob, bob_uri = start_uas(fd, "bob", eps["bob"].port, 200,
                                     ANSWER_MS, HOLD_MS)
            runs.append(bob)
            res = fd.mgmt_result("conference.dialout",
                                 {"id": ROOM, "uri": bob_uri})
            check(res == {"id": ROOM, "uri": bob_uri,
                          "state": "dialing-out"},
                  "conference.dialout %s: result %r, expected {id, uri, "
                  "state: dialing-out}" % (bob_uri, res))
            seen, bob_leg = follow_states(
                fd, bob_uri, "connected", ANSWER_MS / 1000.0 +
                STATE_TIMEOUT_S, "dial-out to bob")
            t_connected = clock.now()
            check(seen[0] in ("dialing-out", "alerting"),
                  "bob: first state in conference.show right after the "
                  "dial-out %r, expected dialing-out or alerting (states "
                  "seen: %r)" % (seen[0], seen))
            check("alerting" in seen and seen[-2] == "alerting",
                  "bob rang for %d ms, yet conference.show went %r, "
                  "expected alerting before connected" % (ANSWER_MS, seen))
            check(set(seen) <= {"dialing-out", "alerting", "connected"},
                  "bob: unexpected states %r" % seen)

            invs = received(bob, "INVITE")
            check(len(invs) >= 1, "UAS bob has no INVITE in its trace\n%s"
                  % bob.report())
            offer_port, tokens["bob"] = check_invite(fd, invs[0], bob_uri)
            for inv in invs[1:]:      # retransmissions: the same Contact
                sc.check_focus_contact(
                    sc.header1(inv, "Contact"), "sip:%s@%s"
                    % (ROOM, fd.sip_target), "the focus's INVITE to %s, "
                    "again" % bob_uri, tokens["bob"])
            sc.check_legs_differ(tokens, "alice's 200, bob's INVITE")
            check(bob_leg.get("direction") == "sendrecv" and
                  bob_leg.get("codec") == "PCMU" and
                  mc.port_of(bob_leg.get("local_rtp")) == offer_port and
                  bob_leg.get("remote_rtp") == "127.0.0.1:%d"
                  % eps["bob"].port,
                  "conference.show: bob connected as %r; expected "
                  "direction sendrecv, codec PCMU, local_rtp port %d (the "
                  "offer's), remote_rtp 127.0.0.1:%d (the answer's)"
                  % (bob_leg, offer_port, eps["bob"].port))
            eps["bob"].start_sending(("127.0.0.1", offer_port))
            log("bob connected at %.2f s: %d Hz to focusd :%d"
                % (t_connected, FREQ["bob"], offer_port))
            sc.wait_until(lambda: received(bob, "ACK"), 2.0,
                          "the focus's ACK to bob's 200",
                          lambda: [m.start for m in sc.trace_of(bob)])
            check_ack(bob, invs[0], "bob")
            joining = bob_leg.get("joining")

            w0 = t_connected + SETTLE_S
            clock.sleep_until(w0 + WINDOW_S)
            w1 = clock.now()
            errors = []
            for name, other in (("bob", "alice"), ("alice", "bob")):
                lv, noise, fill = mc.levels(eps[name], list(FREQ.values()),
                                            w0, w1)
                log("%s hears, %.2f-%.2f s: %s" % (
                    name, w0, w1, mc.describe(name, lv, noise, fill)))
                f = FREQ[other]
                if fill * (w1 - w0) < MIN_AUDIO_S:
                    errors.append("%s: only %.2f s of audio arrived in "
                                  "%.2f-%.2f s, expected >= %.1f s"
                                  % (name, fill * (w1 - w0), w0, w1,
                                     MIN_AUDIO_S))
                if lv[f] < MIN_TONE_DBFS or lv[f] - noise < MIN_SNR_DB:
                    errors.append("%s hears %s (%d Hz) at %.1f dBFS, noise "
                                  "%.1f dBFS; expected >= %.0f dBFS and "
                                  ">= %.0f dB over the noise"
                                  % (name, other, f, lv[f], noise,
                                     MIN_TONE_DBFS, MIN_SNR_DB))
            if errors:
                fail("audio between the dialed-in alice and the dialed-out "
                     "bob:\n  " + "\n  ".join(errors))

            # -- carol: rings, then 486
            carol, carol_uri = start_uas(fd, "carol", eps["bob"].port, 486,
                                         BUSY_ANSWER_MS, 0)
            runs.append(carol)
            res = fd.mgmt_result("conference.dialout",
                                 {"id": ROOM, "uri": carol_uri})
            check(res == {"id": ROOM, "uri": carol_uri,
                          "state": "dialing-out"},
                  "conference.dialout %s: result %r" % (carol_uri, res))
            p = by_uri(participants(fd), carol_uri)
            check(p is not None and p.get("state") in ("dialing-out",
                                                       "alerting"),
                  "carol right after her dial-out: %r, expected her "
                  "dialing-out or alerting" % p)

            def busy_sent():
                for m in sc.trace_of(carol):
                    if m.direction == "sent" and sc.status(m) == 486:
                        return m
                if carol.poll() is not None:
                    fail("UAS carol exited (%s) before her 486\n%s"
                         % (carol.poll(), carol.report()))
                return None
            sc.wait_until(busy_sent, BUSY_ANSWER_MS / 1000.0 + 5.0,
                          "carol's 486", lambda: by_uri(participants(fd),
                                                        carol_uri))
            invs = received(carol, "INVITE")
            check(invs, "UAS carol has no INVITE in her trace\n%s"
                  % carol.report())
            tokens["carol"] = sc.check_focus_contact(
                sc.header1(invs[0], "Contact"), "sip:%s@%s"
                % (ROOM, fd.sip_target), "the focus's INVITE to %s"
                % carol_uri)
            sc.check_legs_differ(tokens, "alice's 200, bob's and carol's "
                                 "INVITEs")
            t_busy = time.monotonic()
            sc.wait_until(lambda: by_uri(participants(fd), carol_uri)
                          is None, GONE_S,
                          "carol's leg gone after her 486",
                          lambda: by_uri(participants(fd), carol_uri))
            log("carol's leg gone %.2f s after her 486"
                % (time.monotonic() - t_busy))
            check(by_uri(participants(fd), bob_uri) is not None,
                  "carol's 486 took bob out as well: %r" % participants(fd))
            sc.sipp_ok(carol, "UAS carol (486, then the ACK)")
            runs.remove(carol)

            # -- everyone leaves
            mc.finish_calls(runs, [eps["alice"], eps["bob"]], clock)
            sc.wait_until(lambda: ROOM not in sc.list_ids(fd), GONE_S,
                          "room1 ended after everyone left",
                          lambda: sc.list_ids(fd))
            st = fd.mgmt_result("stats")
            check(st.get("legs") == 0, "stats after the calls: legs=%r"
                  % st.get("legs"))

            failed = False
        finally:
            for ep in eps.values():
                ep.stop()
            for run in runs:
                if failed and run.poll() is None:
                    sys.stderr.write(run.report(lines=40) + "\n")
                run.kill()
    # checked after focusd's clean exit, so that everything else is
    # checked first
    check(joining == "dialed-out", "conference.show: the participant the "
          "focus dialed out to (%s) has joining %r, expected "
          "\"dialed-out\" (RFC 4575 joining-method; the conference event "
          "package says dialed-out)" % (bob_uri, joining))


if __name__ == "__main__":
    harness.run_main(main)
