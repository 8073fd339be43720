#!/usr/bin/env python3
"""Three parties in one conference hear each other, never themselves.

Acceptance test for issue 2. It starts focusd with --auto-create; three
RTP endpoints (alice, bob, carol) each play their own tone (500, 1100,
1900 Hz at -12 dBFS); three SIPp uac_join calls to sip:room1@focusd
overlap so all three are in room1 together for several seconds; each
endpoint starts sending as soon as its call has the RTP port from the SDP
answer.

While all three are in, it checks what a NOC tool reads on the management
socket (conference.list: room1 with 3 participants; conference.show: 3
participants, PCMU, connected, sendrecv, RTP counters growing) and what
each participant hears over a 2 s window: the other two tones, loud and
well above the noise, and not its own (mix-minus: at least 20 dB below
each of the others). Over the whole call every packet from focusd must
come from the port in the SDP answer, be PCMU with 160-byte payloads, in
one SSRC with seq +1 and timestamp +160 per packet. After the BYEs room1
must go away within 2 s, every SIPp call must have succeeded and focusd
must stop on SIGTERM with exit status 0.

Why these tones: they are far apart and not harmonics of each other; with
a 2 s window the Goertzel bins are 0.5 Hz wide. All three repeat every 80
samples, so mu-law distortion of any mix lands on multiples of 100 Hz; the
noise probes sit at odd multiples of 50 Hz, away from those lines.

Run by hand: FOCUSD=build/daemon/focusd python3 \
tests/integration/test_three_party_mix.py (exit status 0 on pass).
"""

import os
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import rtpep  # noqa: E402
from harness import check, fail, log  # noqa: E402

ROOM = "room1"
# name, tone (Hz), time in the call after the 200 OK (ms). Earlier joiners
# stay longer so that all three are in together for >= 3 s.
PARTIES = [("alice", 500, 7500), ("bob", 1100, 6500), ("carol", 1900, 5500)]
NOISE_PROBES_HZ = (1250, 2050, 2850, 3450)
MIN_OVERLAP_S = 3.0
# Audio window, relative to the moment the last party got its answer.
WINDOW_S = (0.5, 2.5)
MGMT_FIRST_S = 0.4
MGMT_SECOND_S = 2.6
MIN_TONE_DBFS = -30.0        # sent at -12 dBFS; a sum must not lose 18 dB
MIN_SNR_DB = 20.0            # other tones over the loudest noise probe
OWN_REJECT_DB = 20.0         # own tone under each other tone
MIN_FILL = 0.8               # share of the window's samples that arrived
JOIN_TIMEOUT_S = 5.0
GONE_TIMEOUT_S = 2.0


def db(x):
    return "%7.1f dB" % x


def find_conf(listing, room):
    confs = listing.get("conferences")
    check(isinstance(confs, list), "conference.list: no 'conferences' "
          "array in %r" % listing)
    for c in confs:
        if isinstance(c, dict) and c.get("id") == room:
            return c
    return None


def port_of(hostport):
    try:
        return int(str(hostport).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def check_show(show, answer_ports, ep_ports, when):
    """conference.show of room1 while all three are in."""
    parts = show.get("participants")
    check(isinstance(parts, list), "conference.show %s (%s): no "
          "'participants' array in %r" % (ROOM, when, show))
    check(len(parts) == 3, "conference.show %s (%s): %d participants, "
          "expected 3: %r" % (ROOM, when, len(parts), parts))
    for p in parts:
        for field, want in (("codec", "PCMU"), ("state", "connected"),
                            ("direction", "sendrecv")):
            check(p.get(field) == want, "conference.show %s (%s): "
                  "participant %s has %s=%r, expected %r"
                  % (ROOM, when, p.get("uri"), field, p.get(field), want))
        rtp = p.get("rtp")
        check(isinstance(rtp, dict) and
              isinstance(rtp.get("rx_packets"), int) and
              isinstance(rtp.get("tx_packets"), int),
              "conference.show %s (%s): participant %s has no integer "
              "rtp.rx_packets/tx_packets: %r"
              % (ROOM, when, p.get("uri"), rtp))
    local = sorted(port_of(p.get("local_rtp")) for p in parts)
    check(local == sorted(answer_ports), "conference.show %s (%s): "
          "local_rtp ports %r, the SDP answers gave %r"
          % (ROOM, when, [p.get("local_rtp") for p in parts],
             sorted(answer_ports)))
    remote = sorted(port_of(p.get("remote_rtp")) for p in parts)
    check(remote == sorted(ep_ports), "conference.show %s (%s): "
          "remote_rtp %r, the participants send from ports %r"
          % (ROOM, when, [p.get("remote_rtp") for p in parts],
             sorted(ep_ports)))
    return {port_of(p["local_rtp"]): p for p in parts}


def check_stream(ep, focus_port):
    """Every packet focusd sent this endpoint, over the whole call."""
    errors = []
    pk = ep.packets()
    bad = ep.bad_datagrams()
    if bad:
        errors.append("%s got %d datagrams that are not RTP, first from "
                      "%s: %r" % (ep.name, len(bad), bad[0][1],
                                  bad[0][2][:32]))
    if len(pk) < 100:
        errors.append("%s got only %d RTP packets from focusd during the "
                      "call" % (ep.name, len(pk)))
        return errors
    wrong_src = [p for p in pk if p.addr != ("127.0.0.1", focus_port)]
    if wrong_src:
        errors.append("%s: %d of %d packets not from 127.0.0.1:%d (the "
                      "port in the SDP answer), e.g. from %s:%d"
                      % (ep.name, len(wrong_src), len(pk), focus_port,
                         wrong_src[0].addr[0], wrong_src[0].addr[1]))
    wrong_fmt = [p for p in pk if p.version != 2 or p.pt != rtpep.PT_PCMU
                 or len(p.payload) != rtpep.FRAME_SAMPLES]
    if wrong_fmt:
        p = wrong_fmt[0]
        errors.append("%s: %d packets are not V=2 PT=0 with 160-byte "
                      "payload, e.g. V=%d PT=%d payload %d bytes"
                      % (ep.name, len(wrong_fmt), p.version, p.pt,
                         len(p.payload)))
    ssrcs = sorted({p.ssrc for p in pk})
    if len(ssrcs) != 1:
        errors.append("%s: %d SSRCs from focusd, expected one: %s"
                      % (ep.name, len(ssrcs),
                         ", ".join("%08x" % s for s in ssrcs[:5])))
    jumps = []
    for a, b in zip(pk, pk[1:]):
        dseq = (b.seq - a.seq) & 0xFFFF
        dts = (b.ts - a.ts) & 0xFFFFFFFF
        if dseq != 1 or dts != rtpep.FRAME_SAMPLES:
            jumps.append("seq %d->%d ts %d->%d at %.3f s"
                         % (a.seq, b.seq, a.ts, b.ts, b.t))
    if jumps:
        errors.append("%s: %d of %d steps are not seq+1/ts+160: %s"
                      % (ep.name, len(jumps), len(pk) - 1,
                         "; ".join(jumps[:5])))
    return errors


def main():
    scenario = harness.scenario_path("uac_join.xml")
    check(os.path.exists(scenario), "missing SIPp scenario %s" % scenario)
    eps = []
    runs = []
    failed = True
    with harness.Focusd(auto_create=True) as fd:
        try:
            epoch = time.monotonic()

            def now():
                return time.monotonic() - epoch

            answer = []      # focusd's RTP port per party
            t_join = []      # when each party had its answer
            for name, freq, stay_ms in PARTIES:
                ep = rtpep.RtpEndpoint(freq=freq, epoch=epoch, name=name,
                                       max_duration=40).start()
                eps.append(ep)
                port_file = os.path.join(fd.tmpdir, name + ".port")
                run = harness.sipp(
                    scenario, fd.sip_target, service=ROOM,
                    keys={"rtp_port": ep.port, "pause_ms": stay_ms,
                          "port_file": port_file},
                    sets={"from_user": name}, background=True,
                    workdir=os.path.join(fd.tmpdir, "sipp-" + name),
                    name=name)
                runs.append(run)

                def answered(run=run, port_file=port_file):
                    try:
                        with open(port_file) as f:
                            text = f.read()
                        if text.endswith("\n"):
                            return text.strip()
                    except OSError:
                        pass
                    if run.poll() is not None:
                        fail("sipp %s exited with %d before the 200 OK "
                             "was in\n%s" % (run.name, run.poll(),
                                             run.report()))
                    return None

                text = harness.wait_for(answered, JOIN_TIMEOUT_S,
                                        what="SDP answer for %s" % name)
                check(text.isdigit() and 0 < int(text) < 65536,
                      "%s: m=audio port in the answer is %r" % (name, text))
                port = int(text)
                check(fd.rtp.lo <= port <= fd.rtp.hi,
                      "%s: answered RTP port %d is outside --rtp-ports "
                      "%d-%d" % (name, port, fd.rtp.lo, fd.rtp.hi))
                ep.start_sending(("127.0.0.1", port))
                answer.append(port)
                t_join.append(now())
                log("%s joined %s at %.2f s: sends %d Hz from :%d to "
                    "focusd :%d" % (name, ROOM, t_join[-1], freq, ep.port,
                                    port))
            check(len(set(answer)) == 3, "the three legs got RTP ports %r, "
                  "expected three different ports" % answer)

            t_all = t_join[-1]
            t_end = min(t + stay / 1000.0
                        for t, (_, _, stay) in zip(t_join, PARTIES))
            log("all three in from %.2f s until about %.2f s"
                % (t_all, t_end))
            check(t_end - t_all >= MIN_OVERLAP_S,
                  "the three calls overlap only %.2f s (joins at %s); "
                  "call setup too slow" % (t_end - t_all, t_join))

            def sleep_until(t):
                d = epoch + t - time.monotonic()
                if d > 0:
                    time.sleep(d)

            # -- management view while all three are in
            ep_ports = [ep.port for ep in eps]
            sleep_until(t_all + MGMT_FIRST_S)
            listing = fd.mgmt_result("conference.list")
            conf = find_conf(listing, ROOM)
            check(conf is not None, "conference.list has no %s while three "
                  "calls are up: %r" % (ROOM, listing))
            check(conf.get("participants") == 3, "conference.list: %s has "
                  "participants=%r, expected 3: %r"
                  % (ROOM, conf.get("participants"), conf))
            check(str(conf.get("uri", "")).startswith("sip:%s@" % ROOM),
                  "conference.list: %s has uri %r, expected sip:%s@..."
                  % (ROOM, conf.get("uri"), ROOM))
            t1 = now()
            show1 = check_show(fd.mgmt_result("conference.show",
                                              {"id": ROOM}),
                               answer, ep_ports, "first")

            sleep_until(t_all + MGMT_SECOND_S)
            t2 = now()
            show2 = check_show(fd.mgmt_result("conference.show",
                                              {"id": ROOM}),
                               answer, ep_ports, "second")
            check(t2 < t_end - 0.2, "second look at %.2f s is too close "
                  "to the first BYE at %.2f s" % (t2, t_end))
            frames = (t2 - t1) / rtpep.PTIME_S
            for port in answer:
                a, b = show1[port]["rtp"], show2[port]["rtp"]
                for k in ("rx_packets", "tx_packets"):
                    grew = b[k] - a[k]
                    log("leg :%d %s %d -> %d (+%d in %.2f s)"
                        % (port, k, a[k], b[k], grew, t2 - t1))
                    check(grew >= 0.5 * frames, "conference.show: leg :%d "
                          "%s went %d -> %d in %.2f s, expected about +%d"
                          % (port, k, a[k], b[k], t2 - t1, frames))

            # -- what each participant hears while all three are in
            w0, w1 = t_all + WINDOW_S[0], t_all + WINDOW_S[1]
            errors = []
            log("levels heard in %.2f-%.2f s (dBFS):" % (w0, w1))
            for i, ep in enumerate(eps):
                samples = ep.audio(w0, w1)
                want = (w1 - w0) * rtpep.RATE
                fill = len(samples) / want
                levels = {f: rtpep.goertzel_dbfs(samples, f)
                          for _, f, _ in PARTIES}
                noise = max(rtpep.goertzel_dbfs(samples, f)
                            for f in NOISE_PROBES_HZ)
                own = PARTIES[i][1]
                others = [f for _, f, _ in PARTIES if f != own]
                log("  %-5s own %4d Hz %s | %s | noise %s | %d samples "
                    "(%.0f%%)" % (
                        ep.name, own, db(levels[own]),
                        " ".join("%4d Hz %s" % (f, db(levels[f]))
                                 for f in others),
                        db(noise), len(samples), 100 * fill))
                if fill < MIN_FILL:
                    errors.append("%s received %d samples in the %.1f s "
                                  "window, expected %d" % (
                                      ep.name, len(samples), w1 - w0, want))
                for f in others:
                    if levels[f] < MIN_TONE_DBFS:
                        errors.append("%s hears %d Hz at %.1f dBFS, "
                                      "expected >= %.0f" % (
                                          ep.name, f, levels[f],
                                          MIN_TONE_DBFS))
                    if levels[f] - noise < MIN_SNR_DB:
                        errors.append("%s hears %d Hz only %.1f dB above "
                                      "the noise (%.1f dBFS), expected "
                                      ">= %.0f" % (ep.name, f,
                                                   levels[f] - noise,
                                                   noise, MIN_SNR_DB))
                    if levels[f] - levels[own] < OWN_REJECT_DB:
                        errors.append("%s hears its own %d Hz at %.1f "
                                      "dBFS, only %.1f dB under %d Hz "
                                      "(mix-minus needs >= %.0f)" % (
                                          ep.name, own, levels[own],
                                          levels[f] - levels[own], f,
                                          OWN_REJECT_DB))
            if errors:
                fail("audio while all three are in:\n  " +
                     "\n  ".join(errors))

            # -- the calls end; each endpoint stops sending at its BYE
            rcs = [None] * 3
            deadline = time.monotonic() + 40
            while None in rcs and time.monotonic() < deadline:
                for i, run in enumerate(runs):
                    if rcs[i] is None and run.poll() is not None:
                        rcs[i] = run.wait()[0]
                        eps[i].stop_sending()
                        log("sipp %s exited with %d at %.2f s"
                            % (run.name, rcs[i], now()))
                time.sleep(0.02)
            for i, run in enumerate(runs):
                if rcs[i] is None:
                    rcs[i] = run.wait()[0]
            for i, run in enumerate(runs):
                check(rcs[i] == 0, "sipp %s exited with %d, expected 0\n%s"
                      % (run.name, rcs[i], run.report()))

            t_bye = now()
            deadline = time.monotonic() + GONE_TIMEOUT_S
            while True:
                conf = find_conf(fd.mgmt_result("conference.list"), ROOM)
                if conf is None or conf.get("participants") == 0:
                    break
                check(time.monotonic() < deadline, "conference.list still "
                      "shows %s %.1f s after the last BYE: %r"
                      % (ROOM, now() - t_bye, conf))
                time.sleep(0.05)
            if conf is not None:
                log("note: %s still listed with 0 participants after the "
                    "last BYE (the contract says it disappears)" % ROOM)
            log("%s gone from conference.list %.2f s after the last BYE"
                % (ROOM, now() - t_bye))

            # -- the RTP streams focusd sent, over the whole call
            for ep in eps:
                ep.stop()
            errors = []
            for ep, port in zip(eps, answer):
                errors += check_stream(ep, port)
                log("%s: %d packets from focusd, sent %d (%d late), "
                    "SSRC %s" % (ep.name, len(ep.packets()), ep.sent,
                                 ep.late_frames,
                                 ",".join("%08x" % s for s in
                                          sorted({p.ssrc
                                                  for p in ep.packets()}))))
            if errors:
                fail("RTP from focusd:\n  " + "\n  ".join(errors))
            failed = False
        finally:
            for ep in eps:
                ep.stop()
            for run in runs:
                if failed:
                    if run.poll() is None:
                        log("sipp %s still running; killing it" % run.name)
                    run.kill()
                    sys.stderr.write(run.report(lines=30) + "\n")
                else:
                    run.kill()
    # leaving the with block stopped focusd and checked its exit status


if __name__ == "__main__":
    harness.run_main(main)
