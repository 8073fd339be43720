#!/usr/bin/env python3
"""An INVITE with Replaces (RFC 3891) naming a participant's dialog puts
the new UA in that participant's place, quietly (RFC 4579 4.9).

It starts focusd with --auto-create. quinn (1100 Hz) joins room1 with
uac_join; pete (500 Hz) joins with uac_join_until_bye (he stays until
focusd hangs up on him); once both ACKs are in (conference.show:
connected), a watcher subscribes to room1's conference events
(confwatch.py) and gets its first, full NOTIFY. Over a 1.5 s
window quinn hears pete: the tone the test later wants gone is audible
before.

Refused, each with uac_join_header.xml and ACKed in its transaction (no
retransmission of the response): Replaces naming a Call-ID nobody has
(481), pete's Call-ID with a wrong from-tag (481), pete's dialog with
`;early-only` (486: his dialog is confirmed), and pete's exact dialog
from mallory, a stranger (403: RFC 3891 7; without --users only the
participant's own AOR may replace it). After them pete is still
connected, got no BYE, and the watcher got no NOTIFY.

Then rita (1900 Hz), pete's other phone (From pete), sends INVITE
sip:room1@focusd with
`Replaces: CALLID;to-tag=FOCUS;from-tag=PETE` (RFC 3891's order: to-tag is
the focus's, from-tag pete's) and must get 200 with Contact exactly
`<room1's URI;gr=TOKEN>;isfocus` (TOKEN l and 16 hex digits): a new
dialog, a new leg, so TOKEN is neither pete's nor quinn's (from their own
200s). Then:
  - pete gets a BYE from focusd (his SIPp call ends with success);
  - conference.show room1 lists two participants: quinn, and exactly one
    entry with pete's URI (the roster identity is kept; no entry under
    rita's own URI), connected, whose local_rtp is the port of rita's
    answer, remote_rtp rita's port and call_id rita's Call-ID;
    conference.list says 2 participants;
  - over a 1.5 s window quinn hears rita (1900 Hz) and not pete (500 Hz),
    although pete's endpoint keeps sending to his old port; rita hears
    quinn and not herself; pete's endpoint receives no RTP from focusd
    once his BYE is answered;
  - the watcher got no NOTIFY for any of it (neither a join nor a
    departure), checked 2 s after the replacement;
  - when rita hangs up, the watcher's next NOTIFY reports the departure
    of one user, pete's URI (the roster entry rita took over; the
    endpoint inside may be rita's device), which also shows that the
    subscription was alive all along; the watcher then un-subscribes
    (200 and a terminated NOTIFY).
quinn leaves last, room1 goes away and focusd stops with status 0.

About 11 s. Run by hand: FOCUSD=build/daemon/focusd \
SIPP_SCENARIOS=$PWD/tests/sipp python3 tests/integration/test_replaces.py
(exit 0 on pass).
"""

import os
import random
import re
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confwatch  # noqa: E402
import dialoghdr  # noqa: E402
import harness  # noqa: E402
import mediacheck  # noqa: E402
import sipcheck  # noqa: E402
from harness import check, log  # noqa: E402

ROOM = "room1"
PETE_HZ, QUINN_HZ, RITA_HZ = 500, 1100, 1900
QUINN_MS = 9500           # quinn's stay after his 200: he leaves last
RITA_MS = 4500            # rita's stay after her ACK
REJECT_LINGER_MS = 700    # past T1: a retransmission would be seen
WINDOW_S = 1.5
QUIET_S = 2.0             # no NOTIFY this long after the replacement
MIN_TONE_DBFS = -30.0
MIN_SNR_DB = 20.0
MAX_GONE_DBFS = -50.0     # a tone that must not be in the mix
OWN_REJECT_DB = 20.0


def levels(ep, w0, w1, who):
    freqs = (PETE_HZ, QUINN_HZ, RITA_HZ)
    lv, noise, fill = mediacheck.levels(ep, freqs, w0, w1)
    log(mediacheck.describe(who, lv, noise, fill))
    check(fill >= 0.8, "%s received only %.0f%% of the samples in "
          "[%.2f, %.2f) s" % (who, 100 * fill, w0, w1))
    return lv, noise


def hears(lv, noise, f, who, whom):
    check(lv[f] >= MIN_TONE_DBFS and lv[f] - noise >= MIN_SNR_DB,
          "%s does not hear %s (%d Hz): %.1f dBFS, noise %.1f dBFS (want "
          ">= %.0f dBFS and %.0f dB over the noise)"
          % (who, whom, f, lv[f], noise, MIN_TONE_DBFS, MIN_SNR_DB))


def main():
    clock = mediacheck.Clock()
    eps = []
    runs = []
    watcher = None
    with harness.Focusd(auto_create=True) as fd:
        try:
            # -- quinn and pete in room1, both ACKs processed
            quinn_ep = mediacheck.TimedEndpoint(clock, freq=QUINN_HZ,
                                                name="quinn",
                                                max_duration=40).start()
            pete_ep = mediacheck.TimedEndpoint(clock, freq=PETE_HZ,
                                               name="pete",
                                               max_duration=40).start()
            rita_ep = mediacheck.TimedEndpoint(clock, freq=RITA_HZ,
                                               name="rita",
                                               max_duration=40).start()
            eps += [quinn_ep, pete_ep, rita_ep]
            quinn, quinn_port = dialoghdr.join(fd, ROOM, quinn_ep, "quinn",
                                               QUINN_MS)
            runs.append(quinn)
            quinn_ep.start_sending(("127.0.0.1", quinn_port))
            pete_pf = os.path.join(fd.tmpdir, "pete.port")
            pete = dialoghdr.sipp(
                fd, "uac_join_until_bye.xml", "pete", service=ROOM,
                keys={"rtp_port": pete_ep.port, "port_file": pete_pf},
                sets={"from_user": "pete"}, background=True, timeout=20)
            runs.append(pete)
            pete_port = dialoghdr.answered_port(fd, pete, pete_pf)
            pete_ep.start_sending(("127.0.0.1", pete_port))
            for who in ("quinn", "pete"):
                dialoghdr.wait_state(fd, ROOM, who, "connected")
            cid, pete_tag, focus_tag = dialoghdr.dialog_of(pete, "pete")
            room_uri = dialoghdr.conf_uri(fd, ROOM)
            tokens = {who: sipcheck.check_focus_contact(
                dialoghdr.contact_of_200(run, who), room_uri,
                "%s: the 200" % who)
                for run, who in ((quinn, "quinn"), (pete, "pete"))}
            pete_uri = dialoghdr.by_user(mediacheck.legs(fd, ROOM),
                                         "pete")[0].get("uri")
            log("pete (%s): Call-ID %s, his tag %s, focusd's %s; room1 is "
                "%s" % (pete_uri, cid, pete_tag, focus_tag, room_uri))

            # -- the watcher, and its first NOTIFY
            watcher = confwatch.ConfWatcher(fd, ROOM).start()
            watcher.wait_notifies(1, 5.0, "the full state")
            time.sleep(0.3)           # a straggler would count as before
            n0 = len(watcher.notifies())
            log("watcher has %d NOTIFY(s) before the replacement" % n0)

            # -- what must be refused, during the first audio window
            w0 = clock.now() + 0.2
            nosuch = "nosuch-%016x@127.0.0.1" % random.getrandbits(64)
            bad = [
                ("unknown", "Replaces: %s;to-tag=%s;from-tag=%s"
                 % (nosuch, focus_tag, pete_tag), 481),
                ("wrongtag", "Replaces: %s;to-tag=%s;from-tag=x%s"
                 % (cid, focus_tag, pete_tag), 481),
                ("earlyonly", "Replaces: %s;to-tag=%s;from-tag=%s;"
                 "early-only" % (cid, focus_tag, pete_tag), 486),
                # RFC 3891 7: a stranger who learnt pete's dialog (the
                # conference documents publish it) may not take his seat.
                ("mallory", "Replaces: %s;to-tag=%s;from-tag=%s"
                 % (cid, focus_tag, pete_tag), 403),
            ]
            started = [(name, want) + dialoghdr.header_call(
                fd, name, ROOM, hdr, expect=want,
                linger_ms=REJECT_LINGER_MS) for name, hdr, want in bad]
            for name, want, run, _ in started:
                dialoghdr.expect_final(run, want, name)
                log("%s: %d as expected" % (name, want))
            clock.sleep_until(w0 + WINDOW_S + 0.1)
            lv, noise = levels(quinn_ep, w0, w0 + WINDOW_S,
                               "quinn (before)")
            hears(lv, noise, PETE_HZ, "quinn", "pete, before the "
                  "replacement,")
            state = dialoghdr.leg_state(fd, ROOM, "pete")
            check(state == "connected", "after the refused Replaces pete "
                  "is %r in conference.show, expected connected" % state)
            check(not sipcheck.requests(sipcheck.trace_of(pete), "BYE",
                                        "received"),
                  "pete got a BYE from focusd after the refused Replaces")
            ns = watcher.notifies()
            check(len(ns) == n0, "the watcher got %d NOTIFY(s) for the "
                  "refused Replaces, expected none:\n%s"
                  % (len(ns) - n0, confwatch.describe(ns[n0:])))

            # -- rita replaces pete
            # rita is pete's other phone: same AOR (without --users that
            # is what allows a Replaces).
            rita, rita_pf = dialoghdr.header_call(
                fd, "rita", ROOM, "Replaces: %s;to-tag=%s;from-tag=%s"
                % (cid, focus_tag, pete_tag), rtp_port=rita_ep.port,
                linger_ms=RITA_MS, from_user="pete")
            runs.append(rita)
            rita_port = dialoghdr.answered_port(fd, rita, rita_pf)
            rita_ep.start_sending(("127.0.0.1", rita_port))
            t_replaced = clock.now()
            # room1: the conference of the dialog replaced
            tokens["rita"] = sipcheck.check_focus_contact(
                dialoghdr.contact_of_200(rita, "rita"), room_uri,
                "rita: the 200")
            sipcheck.check_legs_differ(tokens, "the 200s to quinn, pete and "
                                       "rita")
            rita_cid = sipcheck.header1(sipcheck.requests(
                sipcheck.trace_of(rita), "INVITE", "sent")[0], "Call-ID")

            # -- pete is hung up on
            dialoghdr.wait_gone(pete, 3.0, "pete, replaced, must get BYE "
                                "from focusd")
            pete_msgs = sipcheck.trace_of(pete)
            byes = sipcheck.requests(pete_msgs, "BYE", "received")
            check(len(byes) >= 1, "pete's call ended without a BYE")
            t_pete_bye = clock.from_wall(byes[0].when)
            log("rita answered at %.2f s, pete got BYE at %.2f s"
                % (t_replaced, t_pete_bye))

            # -- the roster: pete's entry, rita's dialog and media
            sipcheck.wait_until(
                lambda: len(mediacheck.legs(fd, ROOM)) == 2, 2.0,
                "room1 down to two participants once pete's BYE is done",
                lambda: [(p.get("uri"), p.get("state"), p.get("local_rtp"))
                         for p in mediacheck.legs(fd, ROOM)])
            parts = mediacheck.legs(fd, ROOM)
            check(not dialoghdr.by_user(parts, "rita"), "conference.show "
                  "lists rita under her own URI: %r; she took pete's "
                  "place" % [p.get("uri") for p in parts])
            mine = [p for p in parts if p.get("uri") == pete_uri]
            check(len(mine) == 1, "conference.show lists %d entries with "
                  "pete's URI %s, expected 1: %r"
                  % (len(mine), pete_uri, parts))
            p = mine[0]
            for field, want in (
                    ("local_rtp", "127.0.0.1:%d" % rita_port),
                    ("remote_rtp", "127.0.0.1:%d" % rita_ep.port),
                    ("state", "connected"), ("call_id", rita_cid)):
                check(p.get(field) == want, "conference.show: pete's entry "
                      "has %s=%r, expected %r (rita's)"
                      % (field, p.get(field), want))
            check(len(dialoghdr.by_user(parts, "quinn")) == 1,
                  "conference.show: quinn is gone: %r" % parts)
            c = sipcheck.find_conf(fd, ROOM)
            check(c is not None and c.get("participants") == 2,
                  "conference.list: room1 is %r, expected 2 participants"
                  % c)

            # -- the mix: rita instead of pete
            w1 = max(clock.now(), t_pete_bye) + 0.3
            clock.sleep_until(w1 + WINDOW_S + 0.1)
            lv, noise = levels(quinn_ep, w1, w1 + WINDOW_S,
                               "quinn (after)")
            hears(lv, noise, RITA_HZ, "quinn", "rita")
            check(lv[PETE_HZ] <= MAX_GONE_DBFS, "quinn still hears pete "
                  "(%d Hz) at %.1f dBFS after rita replaced him (want <= "
                  "%.0f dBFS); pete's endpoint keeps sending to his old "
                  "port %d" % (PETE_HZ, lv[PETE_HZ], MAX_GONE_DBFS,
                               pete_port))
            lv, noise = levels(rita_ep, w1, w1 + WINDOW_S, "rita")
            hears(lv, noise, QUINN_HZ, "rita", "quinn")
            check(lv[RITA_HZ] <= lv[QUINN_HZ] - OWN_REJECT_DB,
                  "rita hears herself: %d Hz at %.1f dBFS, quinn at %.1f"
                  % (RITA_HZ, lv[RITA_HZ], lv[QUINN_HZ]))
            late = pete_ep.packets(t_pete_bye + 0.3, None)
            check(not late, "pete's endpoint got %d RTP packets from "
                  "focusd more than 0.3 s after focusd's BYE (first at "
                  "%.2f s, BYE at %.2f s)"
                  % (len(late), late[0].t if late else 0, t_pete_bye))

            # -- no NOTIFY for the replacement
            clock.sleep_until(t_replaced + QUIET_S)
            ns = watcher.notifies()
            check(len(ns) == n0, "the watcher got %d NOTIFY(s) for rita "
                  "replacing pete, expected none (RFC 4579 4.9):\n%s"
                  % (len(ns) - n0, confwatch.describe(ns[n0:])))

            # -- rita leaves: the departure is pete's roster entry
            dialoghdr.expect_final(rita, 200, "rita", room_uri,
                                   tokens["rita"])
            ns = watcher.wait_notifies(n0 + 1, 3.0, "rita's departure")
            ns = ns[n0:]
            users = re.findall(r'<user\s+entity="([^"]*)"\s+'
                               r'state="([^"]*)"', ns[0].body)
            check(users == [(pete_uri, "deleted")], "the NOTIFY after "
                  "rita's BYE reports users %r, expected pete's entry (%s) "
                  "deleted and no other:\n%s"
                  % (users, pete_uri, confwatch.describe(ns[:1])))
            watcher.unsubscribe()

            # -- quinn leaves last
            mediacheck.finish_calls([quinn], [quinn_ep], clock, timeout=15)
            sipcheck.wait_until(lambda: ROOM not in sipcheck.list_ids(fd),
                                3.0, "room1 gone after the last BYE",
                                lambda: sipcheck.list_ids(fd))
        finally:
            if watcher is not None:
                watcher.stop()
            for run in runs:
                run.kill()
            for ep in eps:
                ep.stop()


if __name__ == "__main__":
    harness.run_main(main)
