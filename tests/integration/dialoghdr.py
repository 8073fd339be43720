"""Helpers for the tests of INVITEs that name another dialog: Join
(RFC 3911) and Replaces (RFC 3891), as a focus takes them (RFC 4579 4.8,
4.9). test_join.py and test_replaces.py use them.

What it does:
- dialog_of(): the dialog of a uac_join-style call, read from its SIPp
  message trace: the Call-ID, the caller's From tag and focusd's To tag
  (from the 200), i.e. what a third party would put in Join or Replaces;
- sipp(), join(): SIPp runs with media ports of their own (media_args()),
  so that parallel SIPp processes do not race for SIPp's default ones;
- header_call(): one uac_join_header.xml call (an INVITE carrying the
  given header lines, a G.711 offer, an expected final status) in the
  background, and answered_port() to wait for its SDP answer;
- expect_final(): the verdict on such a call from what is on the wire:
  SIPp's exit status, exactly one final response to the INVITE with the
  expected status, for a non-2xx an ACK with the INVITE's branch and no
  retransmission of the response (the ACK matched), for a 2xx the
  focus's Contact, <CONF-URI;gr=TOKEN>;isfocus, of the conference
  expected (sipcheck.check_focus_contact()), and of the leg seen before;
- contact_of_200(): the Contact of the 200 a running call got;
- conf_uri(), by_user(), leg_state(), wait_state(): conference.list and
  conference.show (mediacheck.legs()), by the user part of a
  participant's URI; wait_gone(): a background SIPp that must end 0.

Design notes: the SIPp message trace is the ground truth (it holds every
byte on the wire, retransmissions included); every wait has a deadline
and fails with what it saw. Only the Python standard library is used.
"""

import os
import socket
import time

import harness
import mediacheck
import sipcheck
from harness import check, fail, log


def media_args():
    """SIPp options that give it media ports of its own (SIPp 3.6.1 binds
    audio and video RTP sockets from -mp upwards; SIPps started at once
    would race for them): a base reserved by the harness."""
    return ["-mp", str(harness.free_media_base())]


def sipp(fd, scenario, name, **kw):
    """sipcheck.run_sipp() with media_args()."""
    kw["extra_args"] = list(kw.get("extra_args", ())) + media_args()
    return sipcheck.run_sipp(fd, scenario, name, **kw)


def join(fd, room, ep, name, pause_ms):
    """A uac_join.xml call for endpoint ep, staying pause_ms after its
    200; returns (SippRun, focusd's RTP port from the answer)."""
    port_file = os.path.join(fd.tmpdir, name + ".port")
    run = sipp(fd, "uac_join.xml", name, service=room,
               keys={"rtp_port": ep.port, "pause_ms": pause_ms,
                     "port_file": port_file},
               sets={"from_user": name}, background=True, timeout=25)
    return run, answered_port(fd, run, port_file)


def dialog_of(run, who):
    """(Call-ID, From tag, To tag) of the INVITE dialog in a uac_join or
    uac_join_until_bye trace: the caller's tag and focusd's."""
    msgs = sipcheck.trace_of(run)
    inv = sipcheck.requests(msgs, "INVITE", "sent")
    check(inv, "%s: no INVITE in the SIPp trace" % who)
    ok = sipcheck.invite_ok(msgs, who)
    call_id = sipcheck.header1(inv[0], "Call-ID")
    from_tag = sipcheck.tag_of(sipcheck.header1(inv[0], "From"))
    to_tag = sipcheck.tag_of(sipcheck.header1(ok, "To"))
    check(from_tag and to_tag, "%s: dialog without tags: From %r, To %r"
          % (who, sipcheck.header1(inv[0], "From"),
             sipcheck.header1(ok, "To")))
    return call_id, from_tag, to_tag


def header_call(fd, name, service, hdr, hdr2=None, expect=200,
                rtp_port=None, linger_ms=600, timeout=20, from_user=None):
    """Start uac_join_header.xml in the background: INVITE
    sip:service@focusd with the header line hdr (and hdr2), expecting
    final status expect, From user from_user (default: name).
    rtp_port: the port in the offer (a sink that
    nobody reads when None: a port of a socket we keep bound). Returns
    (SippRun, port_file)."""
    port_file = os.path.join(fd.tmpdir, name + ".port")
    sink = None
    if rtp_port is None:
        # a port nobody else takes while the call lasts: the run keeps it
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind((harness.LOOPBACK, 0))
        rtp_port = sink.getsockname()[1]
    run = sipp(
        fd, "uac_join_header.xml", name, service=service,
        keys={"hdr": hdr, "hdr2": hdr2 or "none", "expect": expect,
              "rtp_port": rtp_port, "linger_ms": linger_ms,
              "port_file": port_file if expect == 200 else "/dev/null"},
        sets={"from_user": from_user or name}, background=True,
        timeout=timeout)
    run.sink = sink
    log("%s: INVITE sip:%s@focusd with %r%s, expecting %d"
        % (name, service, hdr, "" if hdr2 is None else " and %r" % hdr2,
           expect))
    return run, port_file


def answered_port(fd, run, port_file, timeout=5.0):
    """Wait for the answered RTP port a header_call() with expect 200
    writes; fails if SIPp exits first."""
    return mediacheck.wait_answered_port(fd, run, port_file, timeout)


def _close_sink(run):
    sink = getattr(run, "sink", None)
    if sink is not None:
        sink.close()
        run.sink = None


def invite_final(msgs, who):
    """The one final response to the INVITE in a trace; fails on none or
    on a retransmission (two or more)."""
    finals = sipcheck.responses(msgs, cseq="INVITE", final=True)
    check(finals, "%s: no final response to the INVITE" % who)
    check(len(finals) == 1, "%s: %d final responses to the INVITE (%s): "
          "the response was retransmitted, so the ACK did not match its "
          "transaction" % (who, len(finals),
                           ", ".join(m.start for m in finals)))
    return finals[0]


def expect_final(run, expect, who, conf_uri=None, leg_token=None):
    """Wait for a header_call() run to end and check what happened on the
    wire (see the module comment). conf_uri: on a 2xx, the conference
    URI the isfocus Contact must carry (with the leg's gr); leg_token:
    the gr that leg showed before, if known. Returns the parsed trace."""
    rc, text, _ = run.wait()
    _close_sink(run)
    msgs = sipcheck.parse_trace(text)
    finals = sipcheck.responses(msgs, cseq="INVITE", final=True)
    got = sipcheck.status(finals[0]) if finals else None
    check(got == expect, "%s: final status %s (%s), expected %d\n%s"
          % (who, got, finals[0].start if finals else "none", expect,
             run.report()))
    final = invite_final(msgs, who)
    check(rc == 0, "%s: SIPp exited with %d, expected 0\n%s"
          % (who, rc, run.report()))
    inv = sipcheck.requests(msgs, "INVITE", "sent")
    acks = sipcheck.requests(msgs, "ACK", "sent")
    check(len(acks) == 1, "%s: %d ACKs sent, expected 1" % (who, len(acks)))
    if expect >= 300:
        check(sipcheck.via_branch(acks[0]) == sipcheck.via_branch(inv[0]),
              "%s: the ACK of the %d has branch %s, the INVITE %s"
              % (who, expect, sipcheck.via_branch(acks[0]),
                 sipcheck.via_branch(inv[0])))
    else:
        contact = sipcheck.header1(final, "Contact")
        if conf_uri is not None:
            sipcheck.check_focus_contact(contact, conf_uri,
                                         "%s: the 200" % who, leg_token)
        else:
            check("isfocus" in sipcheck.name_addr(contact)[1],
                  "%s: the 200's Contact %r has no ;isfocus"
                  % (who, contact))
    return msgs


def contact_of_200(run, who):
    """The Contact header value of the 200 a (running) call got."""
    return sipcheck.header1(sipcheck.invite_ok(sipcheck.trace_of(run), who),
                            "Contact")


# ---------------------------------------------------------------- mgmt

def conf_uri(fd, room):
    c = sipcheck.find_conf(fd, room)
    check(c is not None, "conference.list has no %s: %r"
          % (room, sipcheck.list_ids(fd)))
    return c.get("uri")


def user_of(uri):
    """'sip:alice@127.0.0.1:5070' -> 'alice'."""
    u = str(uri or "")
    if u.startswith("sip:"):
        u = u[4:]
    return u.split("@", 1)[0] if "@" in u else None


def by_user(parts, user):
    return [p for p in parts if user_of(p.get("uri")) == user]


def leg_state(fd, room, user):
    ls = by_user(mediacheck.legs(fd, room), user)
    return ls[0].get("state") if len(ls) == 1 else None


def wait_state(fd, room, user, state, timeout=5.0):
    """Wait until conference.show lists exactly one leg of user in state
    (the ACK has been processed once it is "connected")."""
    sipcheck.wait_until(
        lambda: leg_state(fd, room, user) == state, timeout,
        "%s %s in conference.show %s" % (user, state, room),
        lambda: [(p.get("uri"), p.get("state"))
                 for p in mediacheck.legs(fd, room)])


def wait_gone(run, timeout, what):
    """Wait for a background SippRun to exit 0."""
    deadline = time.monotonic() + timeout
    while run.poll() is None:
        if time.monotonic() >= deadline:
            fail("%s: sipp %s still running after %.1f s\n%s"
                 % (what, run.name, timeout, run.report()))
        time.sleep(0.02)
    rc = run.wait()[0]
    check(rc == 0, "%s: sipp %s exited with %d\n%s"
          % (what, run.name, rc, run.report()))
