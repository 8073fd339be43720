#!/usr/bin/env python3
"""The conference application (RFC 4579 4.3): a call to sip:join@HOST
hears a prompt, keys a conference number ending with '#' (RFC 4733
telephone-events when its offer had them, in-band DTMF otherwise; '*'
starts over), and is moved by a re-INVITE into that conference - made if
needed, the caller its owner - whose participants it then hears.

The README's table: "INVITE to the application URI sip:join@HOST: 200
from the application (no isfocus); the caller hears a prompt (a beep
every 1.5 s) and keys a conference number ending with # ...; it is then
moved into that conference ... by a re-INVITE with the conference's
isfocus Contact", and --application USER (default join).

One focusd (defaults: --application join, auto-create on). Four callers,
each a SIPp uac_app_call.xml dialog whose RTP is a keypad.Phone (it
sends PCMU silence, a tone, RFC 4733 events or DTMF tones, and records
what it hears with the kernel's arrival times):
  alice  offers telephone-event PT 101, keys events 4 2 #
  bob    offers G.711 only, keys in-band DTMF 4 2 # (after alice's move)
  carol  offers telephone-event PT 96, keys events 7 * 9 #
  dave   offers telephone-event PT 101, keys only #

0. OPTIONS sip:join@ (a plain UDP request from here) -> 200 with Contact
   exactly <sip:join@127.0.0.1:SIP-PORT>, no isfocus; it makes nothing.
1. Each INVITE sip:join@ -> 200 with Contact exactly
   <sip:join@127.0.0.1:SIP-PORT> (no isfocus) and an SDP answer:
   "m=audio P RTP/AVP 0 TE", a=rtpmap:TE telephone-event/8000 and
   a=fmtp:TE 0-15 with the PT each offered (alice 101, carol 96,
   dave 101); bob's "m=audio P RTP/AVP 0" without telephone-event.
   conference.list shows four lobbies (app~...), one caller each, and no
   numbered conference. Before anyone keys (the first PROMPT_S after the
   answer) every caller hears the prompt: whole 200 ms bursts of 800 Hz
   (10 packets of 20 ms, each >= -25 dBFS at 800 Hz) with silence
   around them.
2. alice keys 4 2 #: she gets one re-INVITE in her dialog whose Contact
   is exactly <sip:42@127.0.0.1:SIP-PORT;gr=TOKEN>;isfocus, TOKEN (l and
   16 hex digits) naming her leg (the lobby's 200 had no gr: the
   application is no focus); after her 200 and the ACK, conference.show
   42 has owner sip:alice@127.0.0.1 (her AOR) and lists her (local_rtp =
   the port of her answer); her lobby is gone.
3. bob keys 4 2 # in-band: one re-INVITE with 42's Contact, with a
   TOKEN of his own; 42 lists alice and bob, its owner still alice.
   Then alice plays 500 Hz and bob 1100 Hz: in TALK_S from GRACE_S on,
   alice hears 1100 Hz and bob 500 Hz (>= -30 dBFS, 20 dB over the noise
   probes); neither hears itself nor the 800 Hz prompt (< -45 dBFS and
   25 dB under what it hears).
4. carol keys 7 * 9 #: one re-INVITE with Contact exactly
   <sip:9@127.0.0.1:SIP-PORT;gr=TOKEN>;isfocus, TOKEN neither alice's nor
   bob's; conference 9 has owner sip:carol@127.0.0.1 and lists her; there
   is no conference 7, 79 or 97. Alone there, she hears neither the
   prompt nor alice or bob.
5. dave keys # alone: no re-INVITE (his scenario fails on one); his lobby
   still lists him, conference.list shows exactly 42, 9 and that lobby,
   and from DAVE_AFTER_S after his '#' he still hears the prompt: two
   whole bursts 1.5 s apart (12000 RTP timestamp units).
6. Every call ends with its own BYE (alice's, bob's and carol's to the
   re-INVITE's Contact URI, gr included; dave's to the application's)
   and 200; no conference is left; focusd exits 0.

Audio is analysed at the end, on kernel arrival times, so Python's DSP
does not stall the 20 ms senders. A run too slow for the stays fails as
"too slow", not as a wrong result.

About 10 s. Run by hand: FOCUSD=build/daemon/focusd \
SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_conference_application.py (exit 0 on pass).
"""

import os
import random
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import keypad  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpep  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, fail, log  # noqa: E402

APP = "join"
SCENARIO = "uac_app_call.xml"
# name: (telephone-event PT or None, keys, room it ends in or None, how it
# keys, stay after the re-INVITE's ACK (or, dave, after his own ACK))
CALLERS = {
    "alice": (101, "42#", "42", "events", 5500),
    "bob": (None, "42#", "42", "tones", 4000),
    "carol": (96, "7*9#", "9", "events", 4500),
    "dave": (101, "#", None, "events", 8000),
}
TALK_FREQ = {"alice": 500, "bob": 1100}
PROMPT_HZ = 800
PROMPT_FRAMES = 10            # 200 ms of 20 ms packets
PROMPT_PERIOD_TS = 12000      # 1.5 s at 8 kHz
SIPP_TIMEOUT_S = 25
ANSWER_TIMEOUT_S = 5.0
MOVE_TIMEOUT_S = 4.0          # from the last key to the re-INVITE's ACK
PROMPT_S = 2.0                # listening before keying
GRACE_S = 0.5                 # after a move, before audio is measured
TALK_S = 2.0
CAROL_S = 1.5
DAVE_AFTER_S = 0.5
DAVE_S = 3.3                  # long enough for two whole bursts
BURST_DBFS = -25.0            # prompt is -15 dBFS
SILENT_DBFS = -45.0
MIN_TONE_DBFS = -30.0         # talk tones sent at -12 dBFS
MIN_SNR_DB = 20.0
ABSENT_DBFS = -45.0
ABSENT_UNDER_DB = 25.0
MIN_FILL = 0.8


def app_contact(fd):
    """The application's Contact: no isfocus, no gr (it is no focus)."""
    return "<sip:%s@%s>" % (APP, fd.sip_target)


def conf_uri(room, fd):
    return "sip:%s@%s" % (room, fd.sip_target)


def aor(name):
    return "sip:%s@127.0.0.1" % name


def conf_ids(fd):
    return sorted(c for c in sc.list_ids(fd))


def lobbies(fd):
    listing = fd.mgmt_result("conference.list")
    return {c["id"]: c for c in listing["conferences"]
            if str(c.get("id", "")).startswith("app~")}


# ---------------------------------------------------------------- OPTIONS

def options_join(fd):
    """OPTIONS sip:join@ from a plain UDP socket (retransmitted every
    500 ms, six tries); returns the final response."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        lport = s.getsockname()[1]
        tag = "%08x" % random.getrandbits(32)
        req = ("OPTIONS sip:%s@%s SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s;rport\r\n"
               "Max-Forwards: 70\r\n"
               "From: <sip:probe@127.0.0.1:%d>;tag=%s\r\n"
               "To: <sip:%s@%s>\r\n"
               "Call-ID: %s@127.0.0.1\r\n"
               "CSeq: 1 OPTIONS\r\n"
               "Contact: <sip:probe@127.0.0.1:%d>\r\n"
               "Accept: application/sdp\r\n"
               "Content-Length: 0\r\n\r\n"
               % (APP, fd.sip_target, lport, tag, lport, tag, APP,
                  fd.sip_target, tag, lport)).encode()
        seen = []
        for _ in range(6):
            s.sendto(req, ("127.0.0.1", fd.sip_port))
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                try:
                    data, _ = s.recvfrom(65536)
                except socket.timeout:
                    break
                msg = sc.parse_message(data.decode("utf-8", "replace"),
                                       time.time(), "received")
                seen.append(msg.start)
                st = sc.status(msg)
                if st is not None and st >= 200:
                    return msg
        fail("OPTIONS sip:%s@: no final response in 3 s (saw %r)"
             % (APP, seen))
    finally:
        s.close()


def check_options(fd):
    r = options_join(fd)
    check(sc.status(r) == 200, "OPTIONS sip:%s@: %r, expected 200\n%s"
          % (APP, r.start, r.raw))
    ct = sc.header1(r, "Contact")
    check(ct == app_contact(fd), "OPTIONS sip:%s@: Contact %r, "
          "expected exactly %r (the application is no focus: no isfocus)"
          % (APP, ct, app_contact(fd)))
    check(conf_ids(fd) == [], "OPTIONS sip:%s@ made conferences: %r"
          % (APP, conf_ids(fd)))
    log("OPTIONS sip:%s@ -> %s, Contact %s" % (APP, r.start, ct))


# ---------------------------------------------------------------- SIP

class Caller:
    def __init__(self, name, fd, clock):
        te, keys, room, how, stay = CALLERS[name]
        self.name, self.te, self.keys, self.room = name, te, keys, room
        self.how, self.stay = how, stay
        self.fd, self.clock = fd, clock
        self.phone = keypad.Phone(clock, te_pt=te, name=name,
                                  max_duration=SIPP_TIMEOUT_S + 5)
        self.phone.start()
        self.ev = os.path.join(fd.tmpdir, name + ".events")
        self.run = None
        self.port = None
        self.t_answer = None
        self.t_keyed = None       # the last key's last packet went
        self.t_moved = None       # the re-INVITE's ACK was in
        self.token = None         # the gr of the re-INVITE's Contact
        self.error = None

    def call(self):
        self.run = sc.run_sipp(
            self.fd, SCENARIO, self.name, service=APP,
            keys={"rtp_port": self.phone.port,
                  "te_pt": "none" if self.te is None else self.te,
                  "moved": "yes" if self.room else "no",
                  "event_file": self.ev, "stay_ms": self.stay},
            sets={"from_user": self.name}, background=True,
            timeout=SIPP_TIMEOUT_S)

    def answered(self):
        words = mc.wait_line(self.run, self.ev, "answer", ANSWER_TIMEOUT_S,
                             "%s: the 200 OK to INVITE sip:%s@"
                             % (self.name, APP))
        self.t_answer = self.clock.now()
        self.port = mc.answered_port(self.fd, words[0] if words else "",
                                     self.name)
        self.phone.start_sending(("127.0.0.1", self.port))

    def key(self):
        if self.how == "events":
            self.phone.key_events(self.keys)
        else:
            self.phone.key_tones(self.keys)
        self.t_keyed = self.clock.now()
        log("%s keyed %s (%s) by %.2f s" % (self.name, self.keys,
                                            self.how, self.t_keyed))

    def key_in_thread(self):
        def body():
            try:
                self.key()
            except BaseException as e:   # reported by the main thread
                self.error = e
        t = threading.Thread(target=body, name="key-" + self.name,
                             daemon=True)
        t.start()
        return t

    def wait_moved(self):
        mc.wait_line(self.run, self.ev, "reinvite", MOVE_TIMEOUT_S,
                     "%s: the re-INVITE after keying %s" % (self.name,
                                                            self.keys))
        mc.wait_line(self.run, self.ev, "ack", MOVE_TIMEOUT_S,
                     "%s: focusd's ACK to our 200 for its re-INVITE"
                     % self.name)
        self.t_moved = self.clock.now()
        log("%s moved by %.2f s (%.2f s after the last key)"
            % (self.name, self.t_moved, self.t_moved - self.t_keyed))

    def msgs(self):
        return sc.trace_of(self.run)


def check_answer(c):
    """The application's 200: Contact without isfocus, the SDP answer
    with telephone-event as offered."""
    ok = sc.invite_ok(c.msgs(), c.name)
    where = "%s: 200 to INVITE sip:%s@" % (c.name, APP)
    ct = sc.header1(ok, "Contact")
    want = app_contact(c.fd)
    check(ct == want, "%s: Contact %r, expected exactly %r (no isfocus: "
          "the application is no focus)\n%s" % (where, ct, want, ok.raw))
    sdp = sc.parse_sdp(ok.body)
    audio = [m for m in sdp["media"] if m["type"] == "audio"]
    check(len(audio) == 1, "%s: %d m=audio lines\n%s" % (where, len(audio),
                                                         ok.body))
    m = audio[0]
    te_maps = [a for a in sc.sdp_attrs(sdp, m, "rtpmap")
               if "telephone-event" in a.lower()]
    if c.te is None:
        want_m = "m=audio %d RTP/AVP 0" % c.port
        check(m["line"] == want_m and not te_maps,
              "%s: the offer had no telephone-event; answer %r with "
              "rtpmaps %r, expected %r and no telephone-event\n%s"
              % (where, m["line"], sc.sdp_attrs(sdp, m, "rtpmap"), want_m,
                 ok.body))
    else:
        te = str(c.te)
        want_m = "m=audio %d RTP/AVP 0 %s" % (c.port, te)
        check(m["line"] == want_m, "%s: m-line %r, expected %r (PCMU and "
              "telephone-event at the offered PT)\n%s"
              % (where, m["line"], want_m, ok.body))
        check(te_maps == ["%s telephone-event/8000" % te],
              "%s: telephone-event rtpmaps %r, expected exactly %r\n%s"
              % (where, te_maps, "%s telephone-event/8000" % te, ok.body))
        fmtp = [a for a in sc.sdp_attrs(sdp, m, "fmtp")
                if a.split()[0] == te]
        check(fmtp == ["%s 0-15" % te], "%s: fmtp for PT %s %r, expected "
              "%r\n%s" % (where, te, fmtp, "%s 0-15" % te, ok.body))
    log("%s: answered from port %d, Contact %s, %s" % (c.name, c.port, ct,
                                                       m["line"]))


def check_reinvite(c):
    """The one re-INVITE into c.room: c's leg's Contact there (its gr is
    kept in c.token), in the dialog, the SDP offer at c's port."""
    msgs = c.msgs()
    ri = sc.distinct_requests(msgs, "INVITE")
    check(len(ri) == 1, "%s: %d re-INVITEs received, expected 1:\n%s"
          % (c.name, len(ri), "\n".join(m.raw for m in ri)))
    r = ri[0]
    inv = sc.requests(msgs, "INVITE", "sent")[0]
    where = "%s's re-INVITE" % c.name
    ct = sc.header1(r, "Contact")
    c.token = sc.check_focus_contact(ct, conf_uri(c.room, c.fd), where)
    check(sc.header1(r, "Call-ID") == sc.header1(inv, "Call-ID"),
          "%s: Call-ID %r is not the dialog's %r" % (
              where, sc.header1(r, "Call-ID"), sc.header1(inv, "Call-ID")))
    our_tag = sc.tag_of(sc.header1(inv, "From"))
    focus_tag = sc.tag_of(sc.header1(sc.invite_ok(msgs, c.name), "To"))
    check(sc.tag_of(sc.header1(r, "From")) == focus_tag and
          sc.tag_of(sc.header1(r, "To")) == our_tag,
          "%s: tags %r/%r, the dialog's are %r/%r" % (
              where, sc.tag_of(sc.header1(r, "From")),
              sc.tag_of(sc.header1(r, "To")), focus_tag, our_tag))
    sdp = sc.parse_sdp(r.body)
    audio = [m for m in sdp["media"] if m["type"] == "audio"]
    check(len(audio) == 1 and audio[0]["port"] == c.port,
          "%s: SDP offer m-lines %r, expected one m=audio at port %d (the "
          "media endpoint stays)\n%s" % (where, [m["line"] for m in audio],
                                         c.port, r.body))
    log("%s: Contact %s, %s" % (where, ct, audio[0]["line"]))


def check_in_conf(fd, c, owner, members):
    """conference.show c.room: owner, and members (Callers) by local RTP
    port, nobody else."""
    res = mc.show(fd, c.room)
    check(res.get("owner") == owner, "conference.show %s: owner %r, "
          "expected %r (the AOR of the caller that keyed it first)"
          % (c.room, res.get("owner"), owner))
    ports = sorted(mc.port_of(p.get("local_rtp"))
                   for p in res["participants"])
    want = sorted(m.port for m in members)
    check(ports == want, "conference.show %s: participants at local RTP "
          "ports %r, expected %r (%s)\n%r"
          % (c.room, ports, want, ", ".join(m.name for m in members), res))
    for m in members:
        p = mc.leg(res, m.port)
        check(m.name in str(p.get("uri")), "conference.show %s: the "
              "participant at port %d is %r, expected %s"
              % (c.room, m.port, p.get("uri"), m.name))
    log("conference %s: owner %s, participants %s" % (
        c.room, res.get("owner"), [p.get("uri") for p in
                                   res["participants"]]))


def check_bye(c):
    msgs = c.msgs()
    byes = sc.requests(msgs, "BYE", "sent")
    check(byes, "%s: no BYE sent" % c.name)
    if c.room:      # the re-INVITE's Contact: the leg's URI in c.room
        want = "BYE %s;gr=%s SIP/2.0" % (conf_uri(c.room, c.fd), c.token)
    else:
        want = "BYE sip:%s@%s SIP/2.0" % (APP, c.fd.sip_target)
    check(byes[0].start == want, "%s: BYE line %r, expected %r"
          % (c.name, byes[0].start, want))
    oks = sc.responses(msgs, cseq="BYE", final=True)
    check(oks and sc.status(oks[0]) == 200, "%s: BYE answered %r, "
          "expected 200" % (c.name, [m.start for m in oks]))


def bye_time(c):
    byes = sc.requests(c.msgs(), "BYE", "sent")
    return c.clock.from_wall(byes[0].when) if byes else None


# ---------------------------------------------------------------- audio

def packet_levels(ep, w0, w1):
    """[(rtp ts, 800 Hz dBFS, rms dBFS)] of the PCMU packets ep got in
    [w0, w1), in RTP timestamp order (one SSRC: focusd's for this leg)."""
    out = []
    for p in ep.packets(w0, w1):
        if p.pt != rtpep.PT_PCMU or len(p.payload) != rtpep.FRAME_SAMPLES:
            continue
        s = rtpep.mulaw_decode_bytes(p.payload)
        out.append((p.ts, rtpep.goertzel_dbfs(s, PROMPT_HZ),
                    rtpep.rms_dbfs(s)))
    out.sort(key=lambda x: x[0])
    return out


def prompt_bursts(ep, w0, w1):
    """Whole bursts in [w0, w1): (first ts, packets) of each run of
    consecutive 800 Hz packets with a silent packet right before and
    after it. Also returns a one-line description for diagnostics."""
    lv = packet_levels(ep, w0, w1)
    marks = []
    for ts, tone, rms in lv:
        if tone >= BURST_DBFS:
            marks.append((ts, "T"))
        elif rms <= SILENT_DBFS:
            marks.append((ts, "."))
        else:
            marks.append((ts, "?"))
    bursts = []
    i = 0
    while i < len(marks):
        if marks[i][1] != "T":
            i += 1
            continue
        j = i
        while (j + 1 < len(marks) and marks[j + 1][1] == "T" and
               marks[j + 1][0] == marks[j][0] + rtpep.FRAME_SAMPLES):
            j += 1
        whole = (i > 0 and marks[i - 1][1] == "." and
                 marks[i - 1][0] == marks[i][0] - rtpep.FRAME_SAMPLES and
                 j + 1 < len(marks) and marks[j + 1][1] == "." and
                 marks[j + 1][0] == marks[j][0] + rtpep.FRAME_SAMPLES)
        if whole:
            bursts.append((marks[i][0], j - i + 1))
        i = j + 1
    desc = "%d packets: %s" % (len(marks), "".join(m[1] for m in marks))
    return bursts, desc


def check_prompt(c, w0, w1, min_bursts, what):
    bursts, desc = prompt_bursts(c.phone, w0, w1)
    log("%s %s [%.2f, %.2f): %d whole bursts %r; %s"
        % (c.name, what, w0, w1, len(bursts), [n for _, n in bursts],
           desc))
    check(len(bursts) >= min_bursts, "%s %s: %d whole 800 Hz bursts in "
          "[%.2f, %.2f), expected >= %d (T: 800 Hz >= %.0f dBFS, '.': "
          "silent <= %.0f dBFS RMS, '?': neither); %s"
          % (c.name, what, len(bursts), w0, w1, min_bursts, BURST_DBFS,
             SILENT_DBFS, desc))
    for ts, n in bursts:
        check(n == PROMPT_FRAMES, "%s %s: a prompt burst of %d packets, "
              "expected %d (200 ms); %s" % (c.name, what, n, PROMPT_FRAMES,
                                            desc))
    for (a, _), (b, _) in zip(bursts, bursts[1:]):
        check((b - a) & 0xFFFFFFFF == PROMPT_PERIOD_TS, "%s %s: bursts %d "
              "timestamp units apart, expected %d (1.5 s); %s"
              % (c.name, what, (b - a) & 0xFFFFFFFF, PROMPT_PERIOD_TS,
                 desc))


def check_heard(c, w0, w1, hear, absent, what):
    """c hears every freq in hear, none in absent, in [w0, w1)."""
    freqs = sorted(set(hear) | set(absent))
    lv, noise, fill = mc.levels(c.phone, freqs, w0, w1)
    log("%s [%.2f, %.2f) %s" % (what, w0, w1,
                               mc.describe(c.name, lv, noise, fill)))
    errs = []
    if fill < MIN_FILL:
        errs.append("got only %.0f%% of the window's samples" % (100 * fill))
    for f in hear:
        if lv[f] < MIN_TONE_DBFS or lv[f] - noise < MIN_SNR_DB:
            errs.append("does not hear %d Hz: %.1f dBFS (noise %.1f), "
                        "expected >= %.0f and %.0f dB over the noise"
                        % (f, lv[f], noise, MIN_TONE_DBFS, MIN_SNR_DB))
    # "under what it hears" only when it does hear it
    loud = min([lv[f] for f in hear] or [0.0])
    for f in absent:
        if lv[f] > ABSENT_DBFS or (loud >= MIN_TONE_DBFS and
                                   lv[f] > loud - ABSENT_UNDER_DB):
            errs.append("hears %d Hz at %.1f dBFS, expected under %.0f "
                        "and %.0f dB under what it should hear"
                        % (f, lv[f], ABSENT_DBFS, ABSENT_UNDER_DB))
    return ["%s: %s %s" % (what, c.name, e) for e in errs]


# ---------------------------------------------------------------- main

def main():
    clock = mc.Clock()
    with harness.Focusd() as fd:
        check_options(fd)
        cs = {n: Caller(n, fd, clock) for n in CALLERS}
        alice, bob, carol, dave = (cs[n] for n in ("alice", "bob", "carol",
                                                   "dave"))
        failed = True
        try:
            # -- 1: everyone calls the application
            for c in cs.values():
                c.call()
            for c in cs.values():
                c.answered()
            for c in cs.values():
                check_answer(c)
            lb = lobbies(fd)
            check(len(lb) == 4 and all(v.get("participants") == 1
                                       for v in lb.values()),
                  "conference.list: lobbies %r, expected four with one "
                  "caller each" % lb)
            check(sorted(conf_ids(fd)) == sorted(lb), "conference.list: %r"
                  ", expected only the four lobbies" % conf_ids(fd))
            lobby_of = {}
            for lid in lb:
                res = mc.show(fd, lid)
                for c in cs.values():
                    for p in res["participants"]:
                        if mc.port_of(p.get("local_rtp")) == c.port:
                            lobby_of[c.name] = lid
            check(sorted(lobby_of) == sorted(cs) and
                  len(set(lobby_of.values())) == 4,
                  "each caller should be alone in a lobby: %r" % lobby_of)
            log("lobbies: %r" % lobby_of)
            t_key = max(c.t_answer for c in cs.values()) + PROMPT_S
            clock.sleep_until(t_key)

            # -- 2: alice keys 4 2 # as events (carol and dave meanwhile)
            threads = [carol.key_in_thread(), dave.key_in_thread()]
            alice.key()
            alice.wait_moved()
            check_reinvite(alice)
            check_in_conf(fd, alice, aor("alice"), [alice])
            check(lobby_of["alice"] not in conf_ids(fd), "alice's lobby %s "
                  "is still listed after her move: %r"
                  % (lobby_of["alice"], conf_ids(fd)))

            # -- 3: bob keys 4 2 # in-band and joins alice
            bob.key()
            bob.wait_moved()
            check_reinvite(bob)
            check_in_conf(fd, bob, aor("alice"), [alice, bob])
            for n, f in TALK_FREQ.items():
                cs[n].phone.freq = f
            t_talk = clock.now()
            talk = (t_talk + GRACE_S, t_talk + GRACE_S + TALK_S)

            # -- 4, 5: carol and dave
            for t in threads:
                t.join(5.0)
                check(not t.is_alive(), "%s did not finish keying"
                      % t.name)
            for c in (carol, dave):
                if c.error is not None:
                    raise c.error
            carol.wait_moved()
            check_reinvite(carol)
            sc.check_legs_differ({c.name: c.token for c in (alice, bob,
                                                            carol)},
                                 "the re-INVITEs to alice, bob and carol")
            check_in_conf(fd, carol, aor("carol"), [carol])
            carol_w = (carol.t_moved + GRACE_S,
                       carol.t_moved + GRACE_S + CAROL_S)
            dave_w = (dave.t_keyed + DAVE_AFTER_S,
                      dave.t_keyed + DAVE_AFTER_S + DAVE_S)
            clock.sleep_until(max(dave.t_keyed + 1.0, clock.now()))
            res = mc.show(fd, lobby_of["dave"])
            mc.leg(res, dave.port)
            ids = conf_ids(fd)
            check(ids == sorted(["42", "9", lobby_of["dave"]]),
                  "conference.list %r, expected exactly 42, 9 and dave's "
                  "lobby %s ('*' clears what was keyed before it, '#' "
                  "alone does nothing)" % (ids, lobby_of["dave"]))
            ri = sc.distinct_requests(dave.msgs(), "INVITE")
            check(not ri, "dave keyed only '#' and got a re-INVITE:\n%s"
                  % "\n".join(m.raw for m in ri))

            clock.sleep_until(max(talk[1], carol_w[1], dave_w[1]) + 0.05)
            t_checked = clock.now()
            gone = [c.name for c in cs.values() if c.run.poll() is not None]
            check(not gone, "%s already hung up at %.2f s, before the last "
                  "audio window ended: this run was too slow for the stays"
                  % (gone, t_checked))

            # -- 6: the calls end
            mc.finish_calls([c.run for c in cs.values()],
                            [c.phone for c in cs.values()], clock,
                            timeout=SIPP_TIMEOUT_S)
            for c in cs.values():
                check_bye(c)
            sc.wait_until(lambda: not conf_ids(fd), 3.0,
                          "no conference left after the BYEs",
                          lambda: conf_ids(fd))
            check(not sc.distinct_requests(dave.msgs(), "INVITE"),
                  "dave got a re-INVITE")
            for c in (alice, bob, carol):
                n = len(sc.distinct_requests(c.msgs(), "INVITE"))
                check(n == 1, "%s got %d re-INVITEs" % (c.name, n))

            # -- audio, on the kernel's arrival times
            for c in cs.values():
                check_prompt(c, c.t_answer, t_key, 1, "before keying")
                bt = bye_time(c)
                check(bt is None or bt >= t_checked - 0.05, "%s hung up at "
                      "%.2f s, before the windows ended" % (c.name, bt))
            check_prompt(dave, dave_w[0], dave_w[1], 2,
                         "after keying '#' alone")
            errs = []
            errs += check_heard(alice, talk[0], talk[1], [1100],
                                [500, PROMPT_HZ], "in 42")
            errs += check_heard(bob, talk[0], talk[1], [500],
                                [1100, PROMPT_HZ], "in 42")
            errs += check_heard(carol, carol_w[0], carol_w[1], [],
                                [500, 1100, PROMPT_HZ], "alone in 9")
            if errs:
                fail("%d audio problems:\n- %s" % (len(errs),
                                                   "\n- ".join(errs)))
            for c in cs.values():
                log("%s sent %d packets (%d late frames), %d telephone-"
                    "event packets" % (c.name, c.phone.sent,
                                       c.phone.late_frames,
                                       len(c.phone.te_sent)))
            failed = False
        finally:
            for c in cs.values():
                c.phone.stop()
                if c.run is not None:
                    if failed:
                        sys.stderr.write(c.run.report(lines=60) + "\n")
                    c.run.kill()


if __name__ == "__main__":
    harness.run_main(main)
