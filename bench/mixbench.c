/*
 * mixbench.c - how many G.711 participants one mixer core sustains.
 *
 * Drives one worker's poll function directly on the main lcore, with no
 * network: the dataplane is the null port, so transmitted packets are
 * freed and nothing else is in the way. Every tick, each participant's
 * RTP packet (20 ms of speech-like audio, PCMU) is put on the worker's
 * ring; the worker decodes it into the leg's FIFO, mixes every room
 * (every participant talks: the worst case for mix-minus), encodes and
 * packetizes one frame per participant. Only the time inside
 * mix_worker_poll is measured; building the input packets is not.
 *
 * Prints, for each room size, the µs per participant per tick and the
 * participants one core sustains in real time (20 ms / that), and the
 * G.711 codec-only cost measured in the same run for comparison; writes
 * the same figures as JSON to the path given (default
 * bench/results/mixbench.json).
 *
 * usage: mixbench [--participants N] [--ticks T] [--json PATH]
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dataplane/dataplane.h"
#include "mixer/mixer.h"

#define WARMUP_TICKS 10
#define INJECT_BATCH 256

struct scenario {
	unsigned room;
	double us_per_part;
	double parts_per_core;
	unsigned participants;
};

static void
speechlike(uint8_t *out, unsigned n, unsigned seed)
{
	static int16_t pcm[MIX_FRAME * 50];

	/* Three drifting partials with a syllable-rate envelope. */
	for (unsigned i = 0; i < n; i++) {
		double t = (double)(i + seed * 997) / MIX_RATE;
		double env = 0.55 + 0.45 * sin(2 * M_PI * 4.0 * t);
		double v = sin(2 * M_PI * (180 + seed % 60) * t) +
			   0.5 * sin(2 * M_PI * 730 * t) +
			   0.25 * sin(2 * M_PI * 1650 * t);

		pcm[i] = (int16_t)(6000 * env * v);
	}
	mix_g711_encode(MIX_PCMU, out, pcm, n);
}

static double
now_us(void)
{
	return (double)fc_now_ns() / 1e3;
}

static int
run_room(struct dp *dp, unsigned room, unsigned total, unsigned ticks,
	 struct scenario *sc)
{
	unsigned n_rooms = total / room, n = n_rooms * room;
	struct mix_worker *w;
	struct mix_conf **confs = calloc(n_rooms, sizeof(*confs));
	struct mix_leg **legs = calloc(n, sizeof(*legs));
	struct dp_ep *eps = calloc(n, sizeof(*eps));
	uint8_t(*audio)[MIX_FRAME * 50] = calloc(n, sizeof(*audio));
	struct rte_ring *ring = dp_worker_ring(dp, 0);
	struct rte_mempool *pool = dp_pool(dp);
	double busy = 0;
	uint64_t t = 0;
	int err;

	if (!confs || !legs || !eps || !audio)
		return ENOMEM;
	err = mix_worker_alloc(&w, dp, 0, -1);
	if (err)
		return err;

	for (unsigned r = 0; r < n_rooms; r++) {
		mix_conf_alloc(&confs[r], MIX_RATE);
		mix_conf_attach(w, confs[r], NULL, NULL);
	}
	for (unsigned i = 0; i < n; i++) {
		struct mix_leg_params p = {
			.codec = MIX_PCMU,
			.rate = MIX_RATE,
			.pt = 0,
			.ssrc = i,
			.remote_ip = htonl(0x7f000001),
			.remote_port = htons((uint16_t)(40000 + i % 20000)),
			.mix_in = true,
			.mix_out = true,
		};

		dp_ep_open(dp, &eps[i]);
		p.ep = eps[i];
		mix_leg_alloc(&legs[i], &p);
		mix_leg_attach(w, confs[i / room], legs[i], NULL, NULL);
		speechlike(audio[i], MIX_FRAME * 50, i);
		/* Commands are taken 16 a pass: drain as we go. */
		if (i % 512 == 511) {
			for (int k = 0; k < 40; k++)
				mix_worker_poll(w, 1);
			mix_collect(w);
		}
	}
	for (int k = 0; k < 400; k++)
		mix_worker_poll(w, 1);
	mix_collect(w);

	t = 1;
	for (unsigned tick = 0; tick < WARMUP_TICKS + ticks; tick++) {
		for (unsigned i = 0; i < n;) {
			struct rte_mbuf *m[INJECT_BATCH];
			unsigned k = RTE_MIN((unsigned)INJECT_BATCH, n - i);
			double t0;

			if (rte_pktmbuf_alloc_bulk(pool, m, k) != 0) {
				fprintf(stderr, "mixbench: mbuf pool empty\n");
				return ENOMEM;
			}
			for (unsigned j = 0; j < k; j++, i++) {
				uint8_t *b = (uint8_t *)rte_pktmbuf_append(
					m[j], DP_RTP_HDR_MIN + MIX_FRAME);
				struct dp_pkt_meta *pm = dp_pkt_meta(m[j]);

				dp_rtp_build(b, DP_RTP_HDR_MIN, 0, false,
					     (uint16_t)tick, tick * MIX_FRAME,
					     1000 + i);
				memcpy(b + DP_RTP_HDR_MIN,
				       audio[i] + (tick % 50) * MIX_FRAME,
				       MIX_FRAME);
				pm->slot = eps[i].slot;
				pm->rx_ns = fc_now_ns();
				pm->remote_ip = htonl(0x7f000001);
				pm->remote_port =
					htons((uint16_t)(40000 + i % 20000));
			}
			rte_ring_enqueue_bulk(ring, (void **)m, k, NULL);
			t0 = now_us();
			mix_worker_poll(w, t); /* receive only: no tick due */
			if (tick >= WARMUP_TICKS)
				busy += now_us() - t0;
		}
		/* The tick itself. */
		t = (uint64_t)(tick + 1) * MIX_TICK_NS + 1;
		{
			double t0 = now_us();

			mix_worker_poll(w, t);
			if (tick >= WARMUP_TICKS)
				busy += now_us() - t0;
		}
	}

	sc->room = room;
	sc->participants = n;
	sc->us_per_part = busy / ticks / n;
	sc->parts_per_core = (MIX_TICK_NS / 1e3) / sc->us_per_part;

	for (unsigned i = 0; i < n; i++)
		mix_leg_detach(w, legs[i], NULL, NULL);
	for (unsigned r = 0; r < n_rooms; r++)
		mix_conf_detach(w, confs[r], NULL, NULL);
	for (int k = 0; k < 2000 && mix_in_flight(w); k++) {
		mix_worker_poll(w, t);
		mix_collect(w);
	}
	for (unsigned i = 0; i < n; i++) {
		mix_leg_free(legs[i]);
		dp_ep_close(dp, &eps[i]);
	}
	for (unsigned r = 0; r < n_rooms; r++)
		mix_conf_free(confs[r]);
	mix_worker_free(w);
	free(confs);
	free(legs);
	free(eps);
	free(audio);
	return 0;
}

/* G.711 decode + encode of one frame, alone: the codec-only floor. */
static double
codec_only_us(void)
{
	uint8_t in[MIX_FRAME], out[MIX_FRAME];
	int16_t pcm[MIX_FRAME];
	unsigned reps = 200000;
	double t0;

	speechlike(in, MIX_FRAME, 7);
	t0 = now_us();
	for (unsigned i = 0; i < reps; i++) {
		mix_g711_decode(MIX_PCMU, pcm, in, MIX_FRAME);
		pcm[i % MIX_FRAME] ^= 1;
		mix_g711_encode(MIX_PCMU, out, pcm, MIX_FRAME);
		in[i % MIX_FRAME] ^= out[(i + 1) % MIX_FRAME] & 1;
	}
	return (now_us() - t0) / reps;
}

int
main(int argc, char **argv)
{
	static const unsigned rooms[] = {3, 5, 10, 20};
	char *eal[] = {"mixbench",
		       "--no-huge",
		       "--no-pci",
		       "--no-shconf",
		       "--no-telemetry",
		       "-m",
		       "512",
		       "-l",
		       "0",
		       "--log-level=lib.eal:error"};
	struct scenario sc[FC_ARRAY_SIZE(rooms)];
	const char *json = "bench/results/mixbench.json";
	unsigned total = 3000, ticks = 100;
	struct dp_conf dc = {0};
	struct dp *dp;
	double codec;
	FILE *f;
	int ch, err;

	static const struct option opts[] = {
		{"participants", required_argument, NULL, 'n'},
		{"ticks", required_argument, NULL, 't'},
		{"json", required_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'n')
			total = (unsigned)atoi(optarg);
		else if (ch == 't')
			ticks = (unsigned)atoi(optarg);
		else if (ch == 'j')
			json = optarg;
		else {
			fprintf(stderr, "usage: mixbench [--participants N] "
					"[--ticks T] [--json PATH]\n");
			return 64;
		}
	}
	if (total < 20 || total > 20000 || ticks == 0) {
		fprintf(stderr, "mixbench: 20 <= participants <= 20000\n");
		return 64;
	}
	if (rte_eal_init((int)FC_ARRAY_SIZE(eal), eal) < 0) {
		fprintf(stderr, "mixbench: EAL did not start\n");
		return 1;
	}
	dc.kind = DP_NULL;
	dc.port_lo = 10000;
	dc.port_hi = (uint16_t)(10000 + 2 * total + 2);
	dc.n_workers = 1;
	dc.n_mbufs = 4 * total + 4096;
	dc.efd = -1;
	err = dp_alloc(&dp, &dc);
	if (err) {
		fprintf(stderr, "mixbench: dataplane: %s\n", strerror(err));
		return 1;
	}

	codec = codec_only_us();
	printf("G.711 codec only (decode + encode of 20 ms): %.3f us, "
	       "%.0f participants per core\n",
	       codec, (MIX_TICK_NS / 1e3) / codec);
	printf("%-6s %-12s %-22s %-20s %s\n", "room", "participants",
	       "us/participant/tick", "participants/core", "vs codec-only");
	for (size_t i = 0; i < FC_ARRAY_SIZE(rooms); i++) {
		err = run_room(dp, rooms[i], total, ticks, &sc[i]);
		if (err) {
			fprintf(stderr, "mixbench: %s\n", strerror(err));
			return 1;
		}
		printf("%-6u %-12u %-22.3f %-20.0f %.2f\n", sc[i].room,
		       sc[i].participants, sc[i].us_per_part,
		       sc[i].parts_per_core, codec / sc[i].us_per_part);
	}

	f = fopen(json, "w");
	if (f == NULL) {
		fprintf(stderr, "mixbench: cannot write %s: %s\n", json,
			strerror(errno));
	} else {
		fprintf(f,
			"{\"codec\":\"PCMU\",\"ticks\":%u,"
			"\"codec_only_us\":%.4f,\"scenarios\":[",
			ticks, codec);
		for (size_t i = 0; i < FC_ARRAY_SIZE(rooms); i++)
			fprintf(f,
				"%s{\"room\":%u,\"participants\":%u,"
				"\"us_per_participant_tick\":%.4f,"
				"\"participants_per_core\":%.0f}",
				i ? "," : "", sc[i].room, sc[i].participants,
				sc[i].us_per_part, sc[i].parts_per_core);
		fprintf(f, "]}\n");
		fclose(f);
		printf("wrote %s\n", json);
	}
	dp_free(dp);
	rte_eal_cleanup();
	return 0;
}
