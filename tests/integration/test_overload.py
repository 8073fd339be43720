#!/usr/bin/env python3
"""Admission control: with every mixer above --max-load, a new INVITE gets
503 with Retry-After while the calls already up keep their audio; once
the load falls, calls are answered again; --max-load 0 never refuses.

Two focusd runs, each with --auto-create --workers 1 --mix-rate 48000,
and four Opus talkers (rtpcodecs.CodecEndpoint, Opus from 48 kHz PCM,
kernel arrival stamps) in room1: alice 400 Hz, bob 700 Hz, carol
1000 Hz, dave 1600 Hz, each at -18 dBFS. Their INVITEs (SDP offer
RTP/AVP 111, a=rtpmap:111 opus/48000/2, fmtp useinbandfec=1, from
uac_invite_sdp_file.xml) go out together (within about 20 ms) and
nobody sends RTP until all four are answered: an answered Opus leg
loads the worker even while silent (one alone reads 1 % about 200 ms
after its 200), so the talkers must all be admitted before that.
Decoding four Opus streams and encoding four mix-minus mixes at 48 kHz
takes the worker well over 1 % of the 20 ms tick.

"The load" is the one worker's `load_pct` in the management `stats`
(its smoothed tick time against 20 ms). "Stably >= 1" / "stably < 1":
every reading, polled every 50 ms, for at least HOLD_S (0.4 s, longer
than the control thread's 250 ms sampling period) in a row.

Asserted, run 1 (--max-load 1):
- The four talkers get 200 with the SDP answer sdpcall.check_answer()
  checks (application/sdp, one m=audio on a port in --rtp-ports, RTP/AVP
  111 only, a=rtpmap:111 opus/48000/2, any a=fmtp only for 111,
  a=ptime:20, sendrecv, c=IN IP4 127.0.0.1); `stats` has
  exactly one worker with integer load_pct, headroom_pct, tick_us_avg.
- Once they talk, the load is stably >= 1 within LOAD_TIMEOUT_S.
- A new caller (uac_invite_expect.xml, a PCMU offer to room1) sent right
  after that gets exactly one final response: 503 with the reason phrase
  "Service Unavailable - Mixers Overloaded" and exactly one Retry-After
  header whose delta-seconds is 5; SIPp ACKs it and exits 0. The load
  read right after the 503 is still >= 1 (so the refusal happened under
  load; a 200 after a stable >= 1 is reported as a focusd bug, and a 200
  with a dip under 1 right after as inconclusive - both fail).
- `stats`: `rejected` up by exactly 1 and `invites` by at least 1 across
  the refused call; `legs` still 4; conference.show room1 still lists
  the four talkers (codec opus).
- The calls already up keep their audio: in the AUDIO_WINDOW_S (1 s)
  window starting at the 503, each talker hears each of the other three
  tones (decoded with libopus: >= -30 dBFS and >= 20 dB over the loudest
  noise probe, odd multiples of 50 Hz) and gets >= 80 % of the window's
  samples.
- The talkers' calls end normally (SIPp exit 0, BYE answered 200); the
  load is then stably < 1 within RECOVER_TIMEOUT_S, and a new caller
  (uac_invite_expect.xml, PCMU) gets 200 and hangs up normally (exit 0).
Asserted, run 2 (--max-load 0, the control): the same four talkers make
the load stably >= 1 within LOAD_TIMEOUT_S, and a new caller gets 200
(exit 0) while the load reads >= 1 before and after it.
Both runs: focusd exits 0 on SIGTERM.

Bounded: each wait has its deadline (the 200s 5 s, the load 5 s, the
503 5 s, the recovery 5 s, SIPp its own -timeout); the talkers stay
TALK_MS after their 200 (run 1), so a load wait that would run past
their hang-up fails first. The test takes about 11 s.

Run by hand: FOCUSD=build/daemon/focusd SIPP_SCENARIOS=$PWD/tests/sipp \
python3 tests/integration/test_overload.py (exit status 0 on pass).
"""

import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import mediacheck as mc  # noqa: E402
import rtpcodecs as rc  # noqa: E402
import sdpcall  # noqa: E402
import sipcheck as sc  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
MIX_RATE = 48000
OPUS_PT = 111
TONE_DBFS = -18.0
TALKERS = [("alice", 400), ("bob", 700), ("carol", 1000), ("dave", 1600)]
OPUS_OFFER = [(OPUS_PT, "opus/48000/2", "useinbandfec=1")]
REFUSED_PHRASE = "Service Unavailable - Mixers Overloaded"
RETRY_AFTER_S = 5

TALK_MS = 4500               # run 1: the talkers' time in the call
CONTROL_TALK_MS = 2500       # run 2
LOAD_TIMEOUT_S = 5.0
RECOVER_TIMEOUT_S = 5.0
RESPONSE_TIMEOUT_S = 5.0
HOLD_S = 0.4                 # a load reading must hold this long
POLL_S = 0.05
AUDIO_WINDOW_S = 1.0
PROBE_LINGER_MS = 600        # the refused caller's stay after its ACK
NEW_CALL_LINGER_MS = 300


# ---------------------------------------------------------------- stats

def worker(fd):
    """(stats result, its one worker) with the load fields checked."""
    st = fd.mgmt_result("stats")
    ws = st.get("workers")
    check(isinstance(ws, list) and len(ws) == 1, "stats: workers %r, "
          "expected exactly one (--workers 1)" % (ws,))
    w = ws[0]
    for k in ("load_pct", "headroom_pct", "tick_us_avg"):
        check(isinstance(w.get(k), int) and not isinstance(w.get(k), bool),
              "stats: worker %s is not an integer: %r" % (k, w))
    for k in ("legs", "invites", "rejected"):
        check(isinstance(st.get(k), int), "stats: %s is not an integer: %r"
              % (k, st))
    return st, w


def fmt_readings(readings, last=12):
    return ", ".join("%.2fs %d%% (%dus)" % r for r in readings[-last:])


def wait_load(fd, clock, above, timeout, what):
    """Poll the load until it has been >= 1 (above) or < 1 (not above)
    in every reading for HOLD_S; returns the readings [(t, load_pct,
    tick_us_avg)]. Fails after timeout with the readings."""
    readings = []
    since = None
    deadline = time.monotonic() + timeout
    while True:
        _, w = worker(fd)
        t = time.monotonic()
        readings.append((clock.now(), w["load_pct"], w["tick_us_avg"]))
        if (w["load_pct"] >= 1) == above:
            if since is None:
                since = t
            if t - since >= HOLD_S:
                log("%s after %.2f s: %s" % (what, t - deadline + timeout,
                                             fmt_readings(readings, 6)))
                return readings
        else:
            since = None
        if t >= deadline:
            fail("%s: not within %.1f s; load_pct readings: %s"
                 % (what, timeout, fmt_readings(readings, 40)))
        time.sleep(POLL_S)


# ---------------------------------------------------------------- calls

def join_talkers(fd, clock, talk_ms):
    """The four Opus talkers' INVITEs at once; once every one has its 200
    (checked), they start sending. Returns ({name: endpoint}, [SippRun],
    the time they started talking)."""
    eps, runs, ports = {}, [], {}
    try:
        # endpoints and offers first (the tone tables take a while), then
        # the four SIPps in a row: their INVITEs arrive close together
        offers = {}
        for name, freq in TALKERS:
            ep = rc.CodecEndpoint(clock, rc.OPUS(OPUS_PT, 48000),
                                  [(freq, TONE_DBFS)], name=name,
                                  max_duration=30).start()
            eps[name] = ep
            offers[name] = sdpcall.offer(name, ep.port, OPUS_OFFER,
                                         "overload")
        for name, _ in TALKERS:
            runs.append(sdpcall.start_call(fd, name, offers[name], ROOM,
                                           talk_ms))
        resps = []
        for (name, _), run in zip(TALKERS, runs):
            resp = sc.wait_response(run, "INVITE", sdpcall.JOIN_TIMEOUT_S,
                                    name)
            if sc.status(resp) != 200:
                _, w = worker(fd)
                fail("talker %s: %r to its INVITE, expected 200; load_pct "
                     "now %d (tick_us_avg %d). Nobody sends RTP before all "
                     "four are answered, but an answered Opus leg loads "
                     "the worker even silent: the talkers' INVITEs must "
                     "all arrive within about 150 ms, and did not on this "
                     "machine\n%s" % (name, resp.start, w["load_pct"],
                                      w["tick_us_avg"], resp.raw))
            ports[name] = sdpcall.check_answer(fd, name, resp,
                                                eps[name].codec)
            resps.append(resp)
        sent = [sc.requests(sc.trace_of(run), "INVITE", "sent")[0].when
                for run in runs]
        got = [r.when for r in resps]
        log("talkers' INVITEs sent within %.0f ms, their 200s within %.0f "
            "ms" % (1000 * (max(sent) - min(sent)),
                    1000 * (max(got) - min(got))))
        check(len(set(ports.values())) == len(TALKERS), "the talkers got "
              "RTP ports %r, expected different ones" % ports)
        for name, _ in TALKERS:
            eps[name].start_sending(("127.0.0.1", ports[name]))
        t = clock.now()
        log("talkers answered, sending Opus from %.2f s" % t)
        return eps, runs, t
    except BaseException:
        for ep in eps.values():
            ep.stop()
        for run in runs:
            run.kill()
        raise


class Sink:
    """A UDP socket for a probe call's SDP, so focusd's RTP to it lands
    somewhere (no ICMP port unreachable)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((harness.LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def new_caller(fd, name, expect, linger_ms, port):
    """uac_invite_expect.xml (PCMU offer) to room1 in the background,
    insisting on final status expect."""
    return sc.run_sipp(fd, "uac_invite_expect.xml", name, service=ROOM,
                       keys={"offer": "pcmu", "expect": expect,
                             "rtp_port": port, "linger_ms": linger_ms},
                       background=True, timeout=15)


def final_statuses(msgs):
    """The distinct final responses to the INVITE in a trace (by status
    and To tag: retransmissions counted once)."""
    out, seen = [], set()
    for m in sc.responses(msgs, cseq="INVITE", final=True):
        key = (sc.status(m), sc.tag_of(sc.header1(m, "To")))
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def check_refused(resp, who):
    """503, the phrase naming the mixers, Retry-After: 5."""
    m = re.match(r"SIP/2\.0 (\d{3}) (.*)$", resp.start)
    check(m is not None, "%s: malformed status line %r" % (who, resp.start))
    check(int(m.group(1)) == 503 and m.group(2).strip() == REFUSED_PHRASE,
          "%s: %r, expected 'SIP/2.0 503 %s'\n%s"
          % (who, resp.start, REFUSED_PHRASE, resp.raw))
    ra = sc.header(resp, "Retry-After")
    check(len(ra) == 1, "%s: the 503 has %d Retry-After headers, expected "
          "one\n%s" % (who, len(ra), resp.raw))
    d = re.match(r"^\s*(\d+)\s*(?:\(.*\))?\s*(?:;.*)?$", ra[0])
    check(d is not None, "%s: Retry-After %r is not delta-seconds "
          "(RFC 3261 20.33)" % (who, ra[0]))
    check(int(d.group(1)) == RETRY_AFTER_S, "%s: Retry-After %r, expected "
          "%d" % (who, ra[0], RETRY_AFTER_S))
    log("%s: %s, Retry-After: %s" % (who, resp.start, ra[0]))


def answered_ok(run, who):
    """A new caller that must be answered 200 and hang up normally."""
    rc_, msgs, _ = run.wait()
    trace = sc.parse_trace(msgs)
    finals = final_statuses(trace)
    check(finals, "%s: no final response to the INVITE (SIPp exit %d)\n%s"
          % (who, rc_, run.report()))
    check(sc.status(finals[0]) == 200, "%s: %r, expected 200\n%s"
          % (who, finals[0].start, finals[0].raw))
    check(rc_ == 0, "%s: SIPp exited with %d after the 200, expected 0\n%s"
          % (who, rc_, run.report()))
    log("%s: %s, hung up normally" % (who, finals[0].start))


# ---------------------------------------------------------------- audio

def check_talkers_hear(eps, w0, w1):
    """Each talker hears each other's tone in [w0, w1), with >= MIN_FILL
    of the samples; returns the problems."""
    errors = []
    freq = dict(TALKERS)
    freqs = sorted(freq.values())
    for name, _ in TALKERS:
        ep = eps[name]
        lv, noise, fill = rc.levels(ep, freqs, mc.NOISE_PROBES_HZ, w0, w1)
        log("after the 503 [%.2f, %.2f) %s"
            % (w0, w1, rc.describe(name, lv, noise, fill)))
        if fill < mc.MIN_FILL:
            errors.append("%s got only %.0f%% of the window's samples"
                          % (name, 100 * fill))
        for other, f in TALKERS:
            if other != name and not mc.heard(lv, noise, f):
                errors.append("%s does not hear %s's %d Hz: %.1f dBFS, "
                              "noise %.1f (needs >= %.0f and %.0f dB over "
                              "the noise)" % (name, other, f, lv[f], noise,
                                              mc.MIN_TONE_DBFS,
                                              mc.MIN_SNR_DB))
    return errors


# ---------------------------------------------------------------- runs

def focusd(max_load, name):
    return harness.Focusd(auto_create=True, workers=1, name=name,
                          extra_args=["--max-load", str(max_load),
                                      "--mix-rate", str(MIX_RATE)])


def run_overloaded():
    """--max-load 1: 503 under load, audio kept, 200 after."""
    clock = mc.Clock()
    eps, runs, sink = {}, [], Sink()
    with focusd(1, "focusd-max-load-1") as fd:
        try:
            _, w = worker(fd)
            log("idle: load_pct %d, headroom_pct %d, tick_us_avg %d"
                % (w["load_pct"], w["headroom_pct"], w["tick_us_avg"]))
            eps, runs, t_talk = join_talkers(fd, clock, TALK_MS)
            t_bye = t_talk + TALK_MS / 1000.0     # at the earliest: later
            budget = t_bye - AUDIO_WINDOW_S - 1.0 - clock.now()
            readings = wait_load(fd, clock, True,
                                 min(LOAD_TIMEOUT_S, budget),
                                 "load stably >= 1 with four Opus talkers")
            st0, _ = worker(fd)

            # the refused caller
            probe = new_caller(fd, "refused", 503, PROBE_LINGER_MS,
                               sink.port)
            resp = sc.wait_response(probe, "INVITE", RESPONSE_TIMEOUT_S,
                                    "refused")
            t_503 = clock.now()
            st1, w1 = worker(fd)
            readings.append((t_503, w1["load_pct"], w1["tick_us_avg"]))
            if sc.status(resp) != 503:
                if w1["load_pct"] >= 1:
                    fail("refused: %r to a new INVITE while the load was "
                         ">= 1 (--max-load 1) for %.1f s before it and "
                         "right after it: expected 503 (load_pct "
                         "readings: %s)\n%s"
                         % (resp.start, HOLD_S, fmt_readings(readings),
                            resp.raw))
                fail("refused: %r to a new INVITE; the load was stably >= 1"
                     " before it but %d right after: inconclusive "
                     "(readings: %s)" % (resp.start, w1["load_pct"],
                                         fmt_readings(readings)))
            check_refused(resp, "refused")
            check(w1["load_pct"] >= 1, "refused: load_pct %d right after "
                  "the 503, expected it still >= 1 (readings: %s)"
                  % (w1["load_pct"], fmt_readings(readings)))
            rc_, msgs, _ = probe.wait()
            finals = final_statuses(sc.parse_trace(msgs))
            check([sc.status(m) for m in finals] == [503], "refused: final "
                  "responses %r, expected exactly one 503"
                  % [m.start for m in finals])
            check(rc_ == 0, "refused: SIPp exited with %d, expected 0 "
                  "(503 ACKed, no retransmission after)\n%s"
                  % (rc_, probe.report()))
            check(st1["rejected"] - st0["rejected"] == 1 and
                  st1["invites"] > st0["invites"], "stats across the "
                  "refused INVITE: invites %d -> %d, rejected %d -> %d; "
                  "expected invites up and rejected up by exactly 1"
                  % (st0["invites"], st1["invites"], st0["rejected"],
                     st1["rejected"]))
            check(st1["legs"] == len(TALKERS), "stats after the 503: legs "
                  "%d, expected the %d talkers" % (st1["legs"],
                                                   len(TALKERS)))
            parts = mc.show(fd, ROOM)["participants"]
            check(len(parts) == len(TALKERS) and
                  all(p.get("codec") == "opus" for p in parts),
                  "conference.show %s after the 503: %r, expected the %d "
                  "Opus talkers" % (ROOM, [(p.get("uri"), p.get("codec"))
                                           for p in parts], len(TALKERS)))
            w0, w1_ = t_503, t_503 + AUDIO_WINDOW_S
            check(w1_ < t_bye - 0.2, "the audio window [%.2f, %.2f) runs "
                  "into the talkers' hang-up at %.2f s: setup too slow"
                  % (w0, w1_, t_bye))

            # the talkers hang up; the load falls; calls are answered
            mc.finish_calls(runs, [eps[n] for n, _ in TALKERS], clock)
            wait_load(fd, clock, False, RECOVER_TIMEOUT_S,
                      "load stably < 1 after the talkers hung up")
            answered_ok(new_caller(fd, "after", 200, NEW_CALL_LINGER_MS,
                                   sink.port), "after")

            t_an = time.monotonic()
            errors = check_talkers_hear(eps, w0, w1_)
            log("audio analysis took %.2f s" % (time.monotonic() - t_an))
            check(not errors, "the calls already up, after the 503:\n  "
                  + "\n  ".join(errors))
        finally:
            for ep in eps.values():
                ep.stop()
            for run in runs:
                run.kill()
            sink.close()


def run_control():
    """--max-load 0: the same load, and a new caller is answered."""
    clock = mc.Clock()
    eps, runs, sink = {}, [], Sink()
    with focusd(0, "focusd-max-load-0") as fd:
        try:
            eps, runs, t_talk = join_talkers(fd, clock, CONTROL_TALK_MS)
            budget = t_talk + CONTROL_TALK_MS / 1000.0 - 1.0 - clock.now()
            readings = wait_load(fd, clock, True,
                                 min(LOAD_TIMEOUT_S, budget),
                                 "--max-load 0: load stably >= 1")
            probe = new_caller(fd, "control", 200, NEW_CALL_LINGER_MS,
                               sink.port)
            resp = sc.wait_response(probe, "INVITE", RESPONSE_TIMEOUT_S,
                                    "control")
            _, w = worker(fd)
            readings.append((clock.now(), w["load_pct"], w["tick_us_avg"]))
            check(sc.status(resp) == 200, "control: %r with --max-load 0, "
                  "expected 200 (load_pct readings: %s)\n%s"
                  % (resp.start, fmt_readings(readings), resp.raw))
            check(w["load_pct"] >= 1, "control: load_pct %d right after "
                  "the 200, expected still >= 1 (readings: %s)"
                  % (w["load_pct"], fmt_readings(readings)))
            log("control: %s at load_pct %d" % (resp.start, w["load_pct"]))
            answered_ok(probe, "control")
            mc.finish_calls(runs, [eps[n] for n, _ in TALKERS], clock)
        finally:
            for ep in eps.values():
                ep.stop()
            for run in runs:
                run.kill()
            sink.close()


def main():
    run_overloaded()
    run_control()


if __name__ == "__main__":
    harness.run_main(main)
