#!/usr/bin/env python3
"""The factory URI makes a new conference with an opaque ID, and its URI
comes back in the 200's Contact (RFC 4579 4.5).

focusd runs with auto-create off, so only the factory can make
conferences. Three SIPp calls (uac_join.xml), overlapping:
  1. INVITE sip:conf@127.0.0.1:PORT -> 200 with Contact exactly
     <sip:ID@127.0.0.1:PORT;gr=TOKEN>;isfocus (the leg's own URI: the
     conference URI plus gr, TOKEN l and 16 hex digits), ID opaque: not
     "conf", at least 12 characters, RFC 3261 user characters only.
     conference.list then shows ID, with uri sip:ID@127.0.0.1:PORT and 1
     participant.
  2. INVITE sip:ID@127.0.0.1:PORT (the conference URI from that Contact)
     -> 200 with a Contact naming the same conference, with a TOKEN of
     its own; ID now has 2 participants (list and show).
  3. INVITE sip:conf@ again -> 200 with another ID2 != ID, a conference of
     its own with 1 participant; ID keeps 2.
The three calls are three legs: their TOKENs differ.
After the BYEs both conferences are gone from conference.list within 2 s,
and stats shows 0 conferences and 0 legs.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_factory.py (exit status 0 on pass).
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
ID_RE = re.compile(r"^[A-Za-z0-9\-_.!~+]{12,}$")
# call, target (None: the first factory conference), time in the call (ms)
CALLS = [("first", FACTORY, 4000), ("joiner", None, 2500),
         ("second", FACTORY, 1500)]


def contact_id(resp, fd, what):
    """(ID, TOKEN) of a 200's Contact <sip:ID@DOMAIN;gr=TOKEN>;isfocus,
    checked exactly."""
    contact = sc.header1(resp, "Contact")
    uri, _ = sc.name_addr(contact)
    m = re.match(r"^sip:([^@;>]+)@", uri)
    check(m is not None, "%s: Contact %r is not <sip:ID@DOMAIN;gr=TOKEN>"
          % (what, contact))
    conf_id = m.group(1)
    token = sc.check_focus_contact(contact, "sip:%s@%s"
                                   % (conf_id, fd.sip_target), what)
    return conf_id, token


def participants(fd, conf_id):
    conf = sc.find_conf(fd, conf_id)
    return None if conf is None else conf.get("participants")


def main():
    with harness.Focusd(auto_create=False) as fd:
        sink = rtpep.RtpEndpoint(name="sink", max_duration=30).start()
        runs = []
        try:
            check(sc.list_ids(fd) == [], "conferences before any call: %r"
                  % sc.list_ids(fd))
            ids, tokens = {}, {}
            for name, target, stay in CALLS:
                target = target or ids["first"]
                run = sc.run_sipp(fd, "uac_join.xml", name, service=target,
                                  background=True,
                                  keys={"rtp_port": sink.port,
                                        "pause_ms": stay,
                                        "port_file": "/dev/null"})
                runs.append(run)
                what = "%s call to sip:%s@" % (name, target)
                resp = sc.wait_response(run, "INVITE", 5, what)
                check(sc.status(resp) == 200, "%s: answered %r"
                      % (what, resp.start))
                ids[name], tokens[name] = contact_id(resp, fd, what)
                log("%s -> 200, Contact %s" % (what,
                                               sc.header1(resp, "Contact")))

                if name == "first":
                    cid = ids[name]
                    check(cid != FACTORY and ID_RE.match(cid),
                          "factory conference ID %r: expected an opaque ID "
                          "of at least 12 user characters, not %r"
                          % (cid, FACTORY))
                    conf = sc.find_conf(fd, cid)
                    check(conf is not None, "conference.list does not show "
                          "%s after its 200: %r" % (cid, sc.list_ids(fd)))
                    check(conf.get("uri") == "sip:%s@%s"
                          % (cid, fd.sip_target), "conference.list: %s has "
                          "uri %r, expected sip:%s@%s"
                          % (cid, conf.get("uri"), cid, fd.sip_target))
                    check(conf.get("participants") == 1, "conference.list: "
                          "%s has %r participants, expected 1"
                          % (cid, conf.get("participants")))
                    check(sc.list_ids(fd) == [cid], "conference.list %r, "
                          "expected only %s (not %r)"
                          % (sc.list_ids(fd), cid, FACTORY))
                elif name == "joiner":
                    check(ids[name] == ids["first"], "the 200 to sip:%s@ "
                          "names conference %r in its Contact"
                          % (ids["first"], ids[name]))
                    n = participants(fd, ids["first"])
                    check(n == 2, "conference.list: %s has %r participants "
                          "after a second INVITE to it, expected 2"
                          % (ids["first"], n))
                    show = fd.mgmt_result("conference.show",
                                          {"id": ids["first"]})
                    check(len(show.get("participants", [])) == 2,
                          "conference.show %s: %r, expected 2 participants"
                          % (ids["first"], show))
                    check(len(sc.list_ids(fd)) == 1, "conference.list %r, "
                          "expected one conference" % sc.list_ids(fd))
                else:
                    check(ids[name] != ids["first"] and
                          ID_RE.match(ids[name]),
                          "second factory INVITE: ID %r (first was %r), "
                          "expected a new opaque ID" % (ids[name],
                                                        ids["first"]))
                    check(sorted(sc.list_ids(fd)) ==
                          sorted([ids["first"], ids[name]]),
                          "conference.list %r, expected %s and %s"
                          % (sc.list_ids(fd), ids["first"], ids[name]))
                    check(participants(fd, ids[name]) == 1,
                          "conference.list: %s has %r participants, "
                          "expected 1" % (ids[name],
                                          participants(fd, ids[name])))
                    check(participants(fd, ids["first"]) == 2,
                          "conference.list: %s has %r participants, "
                          "expected still 2" % (
                              ids["first"],
                              participants(fd, ids["first"])))

            sc.check_legs_differ(tokens, "the 200s to the three calls")
            for run in runs:
                sc.sipp_ok(run, "call %s" % run.name)
            t_bye = time.monotonic()
            sc.wait_until(lambda: sc.list_ids(fd) == [], 2.0,
                          "both conferences gone after the BYEs",
                          lambda: "conference.list %r" % sc.list_ids(fd))
            log("conferences gone %.2f s after the last call ended"
                % (time.monotonic() - t_bye))
            st = fd.mgmt_result("stats")
            check(st.get("conferences") == 0 and st.get("legs") == 0,
                  "stats after the BYEs: conferences=%r legs=%r, expected "
                  "0 and 0" % (st.get("conferences"), st.get("legs")))
            check(st.get("invites") == len(CALLS), "stats: invites=%r, "
                  "expected %d" % (st.get("invites"), len(CALLS)))
            check(st.get("rejected") == 0, "stats: rejected=%r, expected 0"
                  % st.get("rejected"))
        finally:
            failed = sys.exc_info()[0] is not None
            for run in runs:
                if failed or run.poll() is None:
                    run.kill()
                    sys.stderr.write(run.report(lines=30) + "\n")
            sink.stop()


if __name__ == "__main__":
    harness.run_main(main)
