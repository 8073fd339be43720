#!/usr/bin/env python3
"""An INVITE with Join (RFC 3911) naming a participant's dialog joins that
participant's conference, whatever its Request-URI says (RFC 4579 4.8).

It starts focusd with --auto-create. pete joins room1 (uac_join) and plays
500 Hz; once his ACK is in (conference.show: connected; focusd learns its
own tag of the dialog from the ACK), the test reads his dialog from the
SIPp trace: his Call-ID, his From tag and focusd's To tag. Then, each with
uac_join_header.xml, INVITEs to the factory sip:conf@focusd carrying:
  - Join naming a Call-ID nobody has              -> 481
  - Join with pete's Call-ID and a wrong from-tag -> 481
  - Join without from-tag; Join without to-tag    -> 400
  - Join and Replaces, both naming pete's dialog  -> 400
Each non-2xx is ACKed in its transaction and must not be retransmitted;
afterwards room1 is still the only conference (a factory INVITE answered
200 would have made one), pete is still its only participant, connected,
and got no BYE.
Then:
  - jane, to the factory, with `Join: CALLID;to-tag=FOCUS;from-tag=PETE`
    (RFC 3911's order: to-tag is the focus's) -> 200 whose Contact is
    exactly `<room1's URI;gr=TOKEN>;isfocus` (TOKEN l and 16 hex digits,
    naming jane's leg);
  - josh, to sip:elsewhere@focusd (auto-create would make that room), with
    the tags the other way round -> 200, room1's Contact as well, and no
    conference "elsewhere" appears.
    pete's, jane's and josh's 200s carry three different TOKENs (three
    legs), and the final check of each joiner's trace finds the same.
conference.show room1 then lists pete, jane and josh, connected, with the
RTP ports of the answers; conference.list has room1 with 3 participants
and nothing else. Over a 1.5 s window jane hears pete (500 Hz) and josh
(1900 Hz), pete hears jane (1100 Hz): the joiners are in room1's mix. At
the end every call hangs up cleanly, room1 goes away and focusd stops
with status 0.

About 8 s. Run by hand: FOCUSD=build/daemon/focusd \
SIPP_SCENARIOS=$PWD/tests/sipp python3 tests/integration/test_join.py
(exit 0 on pass).
"""

import os
import random
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dialoghdr  # noqa: E402
import harness  # noqa: E402
import mediacheck  # noqa: E402
import sipcheck  # noqa: E402
from harness import check, log  # noqa: E402

ROOM = "room1"
FACTORY = "conf"          # focusd's default factory user
ELSEWHERE = "elsewhere"
PETE_HZ, JANE_HZ, JOSH_HZ = 500, 1100, 1900
PETE_MS = 7000            # pete's stay after his 200
JOINER_MS = 3500          # jane's and josh's stay after their ACK
REJECT_LINGER_MS = 700    # past T1: a retransmission would be seen
WINDOW_S = 1.5
MIN_TONE_DBFS = -30.0
MIN_SNR_DB = 20.0


def heard(ep, freqs, w0, w1, who, want):
    lv, noise, fill = mediacheck.levels(ep, freqs, w0, w1)
    log(mediacheck.describe(who, lv, noise, fill))
    check(fill >= 0.8, "%s received only %.0f%% of the samples in "
          "[%.2f, %.2f) s" % (who, 100 * fill, w0, w1))
    for f in want:
        check(lv[f] >= MIN_TONE_DBFS and lv[f] - noise >= MIN_SNR_DB,
              "%s does not hear %d Hz: %.1f dBFS, noise %.1f dBFS (want "
              ">= %.0f dBFS and %.0f dB over the noise)"
              % (who, f, lv[f], noise, MIN_TONE_DBFS, MIN_SNR_DB))


def main():
    clock = mediacheck.Clock()
    eps = []
    runs = []
    with harness.Focusd(auto_create=True) as fd:
        try:
            # -- pete in room1, his ACK processed
            pete_ep = mediacheck.TimedEndpoint(clock, freq=PETE_HZ,
                                               name="pete",
                                               max_duration=40).start()
            eps.append(pete_ep)
            pete, pete_port = dialoghdr.join(fd, ROOM, pete_ep, "pete",
                                             PETE_MS)
            runs.append(pete)
            pete_ep.start_sending(("127.0.0.1", pete_port))
            dialoghdr.wait_state(fd, ROOM, "pete", "connected")
            cid, pete_tag, focus_tag = dialoghdr.dialog_of(pete, "pete")
            room_uri = dialoghdr.conf_uri(fd, ROOM)
            tokens = {"pete": sipcheck.check_focus_contact(
                dialoghdr.contact_of_200(pete, "pete"), room_uri,
                "pete: the 200")}
            log("pete's dialog: Call-ID %s, his tag %s, focusd's %s; "
                "room1 is %s" % (cid, pete_tag, focus_tag, room_uri))

            # -- what must be refused, all at once
            nosuch = "nosuch-%016x@127.0.0.1" % random.getrandbits(64)
            bad = [
                ("unknown", "Join: %s;to-tag=%s;from-tag=%s"
                 % (nosuch, focus_tag, pete_tag), None, 481),
                ("wrongtag", "Join: %s;to-tag=%s;from-tag=x%s"
                 % (cid, focus_tag, pete_tag), None, 481),
                ("nofrom", "Join: %s;to-tag=%s" % (cid, focus_tag),
                 None, 400),
                ("noto", "Join: %s;from-tag=%s" % (cid, pete_tag),
                 None, 400),
                ("both", "Join: %s;to-tag=%s;from-tag=%s"
                 % (cid, focus_tag, pete_tag),
                 "Replaces: %s;to-tag=%s;from-tag=%s"
                 % (cid, focus_tag, pete_tag), 400),
            ]
            started = [(name, want) + dialoghdr.header_call(
                fd, name, FACTORY, hdr, hdr2, expect=want,
                linger_ms=REJECT_LINGER_MS)
                for name, hdr, hdr2, want in bad]
            for name, want, run, _ in started:
                dialoghdr.expect_final(run, want, name)
                log("%s: %d as expected" % (name, want))
            ids = sipcheck.list_ids(fd)
            check(ids == [ROOM], "after the refused Joins conference.list "
                  "has %r, expected only %s" % (ids, ROOM))
            parts = mediacheck.legs(fd, ROOM)
            check([(dialoghdr.user_of(p.get("uri")), p.get("state"))
                   for p in parts] == [("pete", "connected")],
                  "after the refused Joins room1 lists %r, expected pete "
                  "alone, connected"
                  % [(p.get("uri"), p.get("state")) for p in parts])
            check(not sipcheck.requests(sipcheck.trace_of(pete), "BYE",
                                        "received"),
                  "pete got a BYE from focusd after the refused Joins")

            # -- jane (factory, RFC order) and josh (elsewhere, swapped)
            jane_ep = mediacheck.TimedEndpoint(clock, freq=JANE_HZ,
                                               name="jane",
                                               max_duration=40).start()
            josh_ep = mediacheck.TimedEndpoint(clock, freq=JOSH_HZ,
                                               name="josh",
                                               max_duration=40).start()
            eps += [jane_ep, josh_ep]
            jane, jane_pf = dialoghdr.header_call(
                fd, "jane", FACTORY, "Join: %s;to-tag=%s;from-tag=%s"
                % (cid, focus_tag, pete_tag), rtp_port=jane_ep.port,
                linger_ms=JOINER_MS)
            runs.append(jane)
            jane_port = dialoghdr.answered_port(fd, jane, jane_pf)
            jane_ep.start_sending(("127.0.0.1", jane_port))
            josh, josh_pf = dialoghdr.header_call(
                fd, "josh", ELSEWHERE, "Join: %s;to-tag=%s;from-tag=%s"
                % (cid, pete_tag, focus_tag), rtp_port=josh_ep.port,
                linger_ms=JOINER_MS)
            runs.append(josh)
            josh_port = dialoghdr.answered_port(fd, josh, josh_pf)
            josh_ep.start_sending(("127.0.0.1", josh_port))
            for run, who in ((jane, "jane"), (josh, "josh")):
                # room1: the conference of the dialog Joined
                tokens[who] = sipcheck.check_focus_contact(
                    dialoghdr.contact_of_200(run, who), room_uri,
                    "%s: the 200" % who)
            sipcheck.check_legs_differ(tokens, "the 200s to pete, jane and "
                                       "josh")
            for who in ("jane", "josh"):
                dialoghdr.wait_state(fd, ROOM, who, "connected")
            t_in = clock.now()

            # -- the roster
            parts = mediacheck.legs(fd, ROOM)
            users = sorted(dialoghdr.user_of(p.get("uri")) for p in parts)
            check(users == ["jane", "josh", "pete"], "conference.show "
                  "room1 lists %r, expected jane, josh and pete"
                  % [p.get("uri") for p in parts])
            for who, port in (("pete", pete_port), ("jane", jane_port),
                              ("josh", josh_port)):
                p = dialoghdr.by_user(parts, who)[0]
                check(mediacheck.port_of(p.get("local_rtp")) == port,
                      "conference.show: %s has local_rtp %r, the SDP "
                      "answer gave port %d" % (who, p.get("local_rtp"),
                                               port))
            ids = sipcheck.list_ids(fd)
            check(ids == [ROOM], "conference.list has %r, expected only "
                  "%s (the Joins name room1's dialog; %s must not be "
                  "made)" % (ids, ROOM, ELSEWHERE))
            c = sipcheck.find_conf(fd, ROOM)
            check(c.get("participants") == 3, "conference.list: room1 has "
                  "participants=%r, expected 3" % c.get("participants"))

            # -- the mix
            w0 = max(t_in, clock.now()) + 0.3
            clock.sleep_until(w0 + WINDOW_S + 0.1)
            freqs = (PETE_HZ, JANE_HZ, JOSH_HZ)
            heard(jane_ep, freqs, w0, w0 + WINDOW_S, "jane",
                  (PETE_HZ, JOSH_HZ))
            heard(pete_ep, freqs, w0, w0 + WINDOW_S, "pete", (JANE_HZ,))

            # -- everyone hangs up
            dialoghdr.expect_final(jane, 200, "jane", room_uri,
                                   tokens["jane"])
            dialoghdr.expect_final(josh, 200, "josh", room_uri,
                                   tokens["josh"])
            mediacheck.finish_calls([pete], [pete_ep], clock, timeout=15)
            sipcheck.wait_until(lambda: ROOM not in sipcheck.list_ids(fd),
                                3.0, "room1 gone after the last BYE",
                                lambda: sipcheck.list_ids(fd))
        finally:
            for run in runs:
                run.kill()
            for ep in eps:
                ep.stop()


if __name__ == "__main__":
    harness.run_main(main)
