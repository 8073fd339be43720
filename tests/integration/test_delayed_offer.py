#!/usr/bin/env python3
"""An INVITE without SDP gets focusd's offer in the 200 and is answered in
the ACK; an ACK with no answer, or one focusd cannot use, ends the call
with a BYE.

The README's table: "INVITE without SDP: 200 with our offer; the answer is
read from the ACK (none, or a bad one: BYE)".

focusd runs with auto-create on; everyone calls sip:room1@.
  alice  uac_join.xml, PCMU, plays 700 Hz (rtpep).
  bob    uac_delayed_offer.xml -key answer pcma. The 200 must carry an
         offer: c=IN IP4 127.0.0.1, one m=audio on a port in --rtp-ports,
         RTP/AVP with payload types 0 and 8 (PCMU/8000, PCMA/8000),
         sendrecv, and the Contact exactly
         <sip:room1@127.0.0.1:PORT;gr=TOKEN>;isfocus (TOKEN l and 16 hex
         digits, naming bob's leg). The ACK answers PCMA (PT 8) at bob's
         RTP endpoint, which then plays 1500 Hz in A-law from that port.
         conference.show must list bob (by Call-ID) with codec PCMA,
         state connected, direction sendrecv, local_rtp the offered port,
         remote_rtp bob's port.
         Over 1.5 s bob must receive RTP from the offered port, all PT 8
         with 160-byte payloads, whose A-law decoding has alice's 700 Hz;
         alice must hear bob's 1500 Hz (focusd decoded his A-law).
  carol  uac_delayed_offer.xml -key answer none: ACK without SDP.
  dave   uac_delayed_offer.xml -key answer g729: an answer with no codec
         focusd mixes.
         For both, focusd must send BYE within 2 s of the ACK (the scenario
         waits 2 s for it and answers 200); the trace gives the delay. Their
         legs must then vanish from conference.show (alice and bob stay).
After alice and bob hang up, room1 goes away within 2 s. The 200s to
alice, carol and dave carry such a Contact too, and the four legs' TOKENs
differ.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_delayed_offer.py (exit status 0 on pass).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import rtpep  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
ALICE_HZ, BOB_HZ = 700, 1500
NOISE_PROBES_HZ = (1250, 2050, 2850)
ALICE_MS, BOB_MS = 5500, 4500
WINDOW_S = (0.6, 2.1)        # after bob's ACK
MIN_TONE_DBFS = -30.0        # played at -12 dBFS
MIN_SNR_DB = 20.0
MIN_FILL = 0.8
BYE_WITHIN_S = 2.0
GONE_TIMEOUT_S = 2.0


def port_of(hostport):
    try:
        return int(str(hostport).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def read_port(run, path, what):
    def got():
        if run.poll() is not None:
            fail("%s: SIPp exited with %d before the 200 OK\n%s"
                 % (what, run.poll(), run.report()))
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            return None
        return text.strip() if text.endswith("\n") else None
    text = harness.wait_for(got, 5.0, what="%s: RTP port from the 200"
                            % what)
    check(text.isdigit(), "%s: port file holds %r" % (what, text))
    return int(text)


def room_uri(fd):
    return "sip:%s@%s" % (ROOM, fd.sip_target)


def check_contact(msgs, fd, who):
    """The focus's Contact in the 200 to who's INVITE; returns its gr."""
    ok = [m for m in sc.responses(msgs, cseq="INVITE", final=True)
          if sc.status(m) == 200]
    check(ok, "%s: no 200 to the INVITE in the trace" % who)
    return sc.check_focus_contact(sc.header1(ok[0], "Contact"),
                                  room_uri(fd), "200 to %s's INVITE" % who)


def check_offer(ok, fd):
    """The SDP offer in focusd's 200 to bob's INVITE without SDP; returns
    the offered port and the Contact's gr."""
    what = "200 to bob's INVITE without SDP"
    token = sc.check_focus_contact(sc.header1(ok, "Contact"), room_uri(fd),
                                   what)
    ctype = sc.header(ok, "Content-Type")
    check(ctype and ctype[0].split(";")[0].strip().lower() ==
          "application/sdp", "%s: Content-Type %r, expected "
          "application/sdp\n%s" % (what, ctype, ok.raw))
    sdp = sc.parse_sdp(ok.body)
    ms = sdp["media"]
    check(len(ms) == 1 and ms[0]["type"] == "audio", "%s: m-lines %r, "
          "expected one m=audio\n%s" % (what, [m["line"] for m in ms],
                                       ok.body))
    m = ms[0]
    check(m["proto"] == "RTP/AVP", "%s: %r is not RTP/AVP"
          % (what, m["line"]))
    check("0" in m["fmts"] and "8" in m["fmts"], "%s: %r does not offer "
          "both PCMU (0) and PCMA (8)" % (what, m["line"]))
    check(fd.rtp.lo <= m["port"] <= fd.rtp.hi, "%s: offered port %d "
          "outside --rtp-ports %d-%d" % (what, m["port"], fd.rtp.lo,
                                         fd.rtp.hi))
    rtpmaps = {}
    for v in sc.sdp_attrs(sdp, m, "rtpmap"):
        pt, _, enc = v.partition(" ")
        rtpmaps[pt] = enc
    for pt, enc in (("0", "PCMU/8000"), ("8", "PCMA/8000")):
        check(rtpmaps.get(pt, enc).upper() == enc, "%s: a=rtpmap:%s %s, "
              "expected %s" % (what, pt, rtpmaps.get(pt), enc))
    conn = sc.sdp_connection(sdp, m)
    check(conn == "IN IP4 127.0.0.1", "%s: c=%r, expected IN IP4 127.0.0.1"
          % (what, conn))
    direction = sc.sdp_direction(sdp, m)
    check(direction == "sendrecv", "%s: direction %s, expected sendrecv"
          % (what, direction))
    log("offer in the 200: %s (%s)" % (m["line"], direction))
    return m["port"], token


def leg_by_call_id(show, call_id):
    for p in show.get("participants", []):
        if p.get("call_id") == call_id:
            return p
    return None


def check_hangup(name, run, fd):
    """carol/dave: the scenario got focusd's BYE in time; the trace has
    the delay from our ACK to it. Returns the Call-ID and the gr of the
    200's Contact."""
    msgs = sc.sipp_ok(run, "%s (delayed offer, bad or no answer)" % name)
    token = check_contact(msgs, fd, name)
    acks = sc.requests(msgs, "ACK", "sent")
    byes = sc.requests(msgs, "BYE", "received")
    check(len(acks) >= 1 and len(byes) >= 1, "%s: trace has %d ACKs sent "
          "and %d BYEs received, expected a BYE from focusd"
          % (name, len(acks), len(byes)))
    delay = byes[0].when - acks[0].when
    check(delay <= BYE_WITHIN_S, "%s: focusd's BYE came %.2f s after our "
          "ACK, expected within %.1f s" % (name, delay, BYE_WITHIN_S))
    call_id = sc.header1(acks[0], "Call-ID")
    check(sc.header1(byes[0], "Call-ID") == call_id, "%s: BYE for Call-ID "
          "%r, our call is %r" % (name, sc.header1(byes[0], "Call-ID"),
                                  call_id))
    log("%s: focusd sent BYE %.3f s after the ACK" % (name, delay))
    return call_id, token


def main():
    epoch = time.monotonic()
    eps, runs, senders = [], {}, []
    with harness.Focusd(auto_create=True) as fd:
        try:
            def now():
                return time.monotonic() - epoch

            alice = rtpep.RtpEndpoint(freq=ALICE_HZ, epoch=epoch,
                                      name="alice", max_duration=30).start()
            bob = rtpep.RtpEndpoint(epoch=epoch, name="bob",
                                    max_duration=30).start()
            eps += [alice, bob]

            # -- alice, the tone everyone else hears
            path = os.path.join(fd.tmpdir, "alice.port")
            runs["alice"] = sc.run_sipp(
                fd, "uac_join.xml", "alice", service=ROOM, background=True,
                keys={"rtp_port": alice.port, "pause_ms": ALICE_MS,
                      "port_file": path}, sets={"from_user": "alice"})
            alice.start_sending(("127.0.0.1",
                                 read_port(runs["alice"], path, "alice")))

            # -- bob: delayed offer, PCMA answer in the ACK
            path = os.path.join(fd.tmpdir, "bob.port")
            runs["bob"] = sc.run_sipp(
                fd, "uac_delayed_offer.xml", "bob", service=ROOM,
                background=True,
                keys={"answer": "pcma", "rtp_port": bob.port,
                      "pause_ms": BOB_MS, "port_file": path})
            ok = sc.wait_response(runs["bob"], "INVITE", 5, "bob")
            check(sc.status(ok) == 200, "bob: INVITE without SDP answered "
                  "%r" % ok.start)
            offer_port, bob_token = check_offer(ok, fd)
            check(read_port(runs["bob"], path, "bob") == offer_port,
                  "bob: the scenario read another port than the offer's")

            def acked():
                acks = sc.requests(sc.trace_of(runs["bob"]), "ACK", "sent")
                return acks[0] if acks else None
            ack = harness.wait_for(acked, 3.0, what="bob's ACK")
            check(sc.parse_sdp(ack.body)["media"], "bob's ACK carries no "
                  "SDP (scenario bug)")
            bob_call_id = sc.header1(ack, "Call-ID")
            t_ack = now()
            sender = sc.AlawSender(bob, ("127.0.0.1", offer_port), BOB_HZ,
                                   max_duration=20).start()
            senders.append(sender)
            log("bob answered PCMA in the ACK at %.2f s; plays %d Hz A-law "
                "from :%d to focusd :%d" % (t_ack, BOB_HZ, bob.port,
                                            offer_port))

            # -- the management view of bob's leg
            time.sleep(WINDOW_S[0])
            show = fd.mgmt_result("conference.show", {"id": ROOM})
            leg = leg_by_call_id(show, bob_call_id)
            check(leg is not None, "conference.show %s has no leg with "
                  "bob's Call-ID %s: %r" % (ROOM, bob_call_id, show))
            for field, want in (("codec", "PCMA"), ("state", "connected"),
                                ("direction", "sendrecv")):
                check(leg.get(field) == want, "conference.show: bob's leg "
                      "has %s=%r, expected %r (leg %r)"
                      % (field, leg.get(field), want, leg))
            check(port_of(leg.get("local_rtp")) == offer_port,
                  "conference.show: bob's local_rtp %r, the offer said %d"
                  % (leg.get("local_rtp"), offer_port))
            check(port_of(leg.get("remote_rtp")) == bob.port,
                  "conference.show: bob's remote_rtp %r, bob is at :%d"
                  % (leg.get("remote_rtp"), bob.port))
            check(len(show.get("participants", [])) == 2, "conference.show "
                  "%s: %d participants, expected 2 (alice, bob)"
                  % (ROOM, len(show.get("participants", []))))

            # -- what bob and alice hear
            w0, w1 = t_ack + WINDOW_S[0], t_ack + WINDOW_S[1]
            time.sleep(max(0.0, epoch + w1 + 0.05 - time.monotonic()))
            pk = bob.packets(w0, w1)
            frames = (w1 - w0) / rtpep.PTIME_S
            check(len(pk) >= MIN_FILL * frames, "bob received %d RTP "
                  "packets in %.1f s, expected about %d"
                  % (len(pk), w1 - w0, frames))
            wrong = [p for p in bob.packets() if p.pt != sc.PT_PCMA or
                     len(p.payload) != 160 or
                     p.addr != ("127.0.0.1", offer_port)]
            if wrong:
                p = wrong[0]
                fail("bob (PCMA leg): %d of %d packets are not PT 8 with a "
                     "160-byte payload from focusd :%d, e.g. PT %d, %d "
                     "bytes, from %s:%d" % (len(wrong), len(bob.packets()),
                                           offer_port, p.pt,
                                           len(p.payload), p.addr[0],
                                           p.addr[1]))
            heard = sc.alaw_audio(bob, w0, w1)
            lvl = rtpep.goertzel_dbfs(heard, ALICE_HZ)
            noise = max(rtpep.goertzel_dbfs(heard, f)
                        for f in NOISE_PROBES_HZ)
            own = rtpep.goertzel_dbfs(heard, BOB_HZ)
            log("bob hears (A-law): %d Hz %.1f dBFS, own %d Hz %.1f dBFS, "
                "noise %.1f dBFS, %d packets" % (ALICE_HZ, lvl, BOB_HZ, own,
                                                 noise, len(pk)))
            check(lvl >= MIN_TONE_DBFS and lvl - noise >= MIN_SNR_DB,
                  "bob hears alice's %d Hz at %.1f dBFS (noise %.1f dBFS) "
                  "after A-law decoding, expected >= %.0f dBFS and %.0f dB "
                  "above the noise: focusd does not send him PCMA"
                  % (ALICE_HZ, lvl, noise, MIN_TONE_DBFS, MIN_SNR_DB))
            a_lvl = alice.tone_power(BOB_HZ, w0, w1)
            log("alice hears (mu-law): %d Hz %.1f dBFS" % (BOB_HZ, a_lvl))
            check(a_lvl >= MIN_TONE_DBFS, "alice hears bob's %d Hz at %.1f "
                  "dBFS, expected >= %.0f: focusd does not decode bob's "
                  "PCMA" % (BOB_HZ, a_lvl, MIN_TONE_DBFS))

            # -- carol (no answer) and dave (G.729 answer): BYE from focusd
            for name, answer in (("carol", "none"), ("dave", "g729")):
                runs[name] = sc.run_sipp(
                    fd, "uac_delayed_offer.xml", name, service=ROOM,
                    background=True,
                    keys={"answer": answer, "rtp_port": bob.port,
                          "pause_ms": 0, "port_file": "/dev/null"})
            tokens = {"bob": bob_token}
            gone = []
            for name in ("carol", "dave"):
                call_id, tokens[name] = check_hangup(name, runs.pop(name),
                                                    fd)
                gone.append(call_id)

            def legs_gone():
                show = fd.mgmt_result("conference.show", {"id": ROOM})
                return all(leg_by_call_id(show, c) is None for c in gone) \
                    and len(show.get("participants", [])) == 2
            sc.wait_until(legs_gone, 1.0, "carol's and dave's legs gone "
                          "from conference.show after focusd's BYE",
                          lambda: fd.mgmt_result("conference.show",
                                                 {"id": ROOM}))
            check(runs["alice"].poll() is None and
                  runs["bob"].poll() is None, "alice's or bob's call ended "
                  "before the checks were done (%.1f s): they are too slow"
                  % now())

            # -- the end
            for name in ("alice", "bob"):
                msgs = sc.sipp_ok(runs.pop(name), name)
                if name == "alice":
                    tokens[name] = check_contact(msgs, fd, name)
            sc.check_legs_differ(tokens, "the 200s to alice, bob, carol "
                                 "and dave")
            t_end = now()
            sc.wait_until(lambda: sc.find_conf(fd, ROOM) is None,
                          GONE_TIMEOUT_S, "%s gone after the BYEs" % ROOM,
                          lambda: "conference.list %r"
                          % fd.mgmt_result("conference.list"))
            log("%s gone %.2f s after the last BYE" % (ROOM, now() - t_end))
            st = fd.mgmt_result("stats")
            check(st.get("legs") == 0 and st.get("conferences") == 0,
                  "stats after all calls: legs=%r conferences=%r"
                  % (st.get("legs"), st.get("conferences")))
        finally:
            failed = sys.exc_info()[0] is not None
            for s in senders:
                s.stop()
            for ep in eps:
                ep.stop()
            for run in runs.values():
                run.kill()
                if failed:
                    sys.stderr.write(run.report(lines=30) + "\n")


if __name__ == "__main__":
    harness.run_main(main)
