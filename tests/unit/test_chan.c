/*
 * test_chan.c - message channels between the control thread and an lcore
 * (common/chan.c).
 *
 * Checks the protocol of common.h with a real second lcore: a message sent
 * by the control thread is taken by the lcore, answered and handed back;
 * done() then runs on the control thread once per message, in send order,
 * with the lcore's result and the sender's arg; the eventfd becomes
 * readable after the lcore kicks and stays quiet when there was nothing to
 * kick for; no more messages than the reply ring holds are ever in flight
 * (fc_chan_send says -EBUSY until replies are collected); and
 * fc_chan_alloc accepts only power-of-two sizes.
 *
 * DPDK's EAL runs once for the whole group, without hugepages, PCI or
 * shared config, on lcores 0 (this thread) and 1 (the worker).
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "common/common.h"

#define WAIT_MS 5000 /* the longest any step may take before we fail */

/* The worker lcore: answers every request with -type. */
struct worker {
	struct fc_chan *ch;
	unsigned lcore;
	int stop;	  /* atomic: set by the control thread */
	unsigned replied; /* atomic: replies handed back so far */
	unsigned kicks;	  /* atomic: calls to fc_chan_kick */
	bool running;	  /* control thread: launched, not waited for */
};

static struct worker wk;

static int
worker_main(void *arg)
{
	struct worker *w = arg;
	struct fc_msg *msgs[8];

	while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
		unsigned n = fc_chan_take(w->ch, msgs, FC_ARRAY_SIZE(msgs));

		for (unsigned i = 0; i < n; i++) {
			msgs[i]->result = -msgs[i]->type;
			fc_chan_reply(w->ch, msgs[i]);
		}
		__atomic_add_fetch(&w->replied, n, __ATOMIC_RELEASE);
		fc_chan_kick(w->ch);
		__atomic_add_fetch(&w->kicks, 1, __ATOMIC_RELEASE);
	}
	return 0;
}

static void
worker_start(struct fc_chan *ch)
{
	wk.ch = ch;
	wk.stop = 0;
	wk.replied = 0;
	wk.kicks = 0;
	assert_int_equal(rte_eal_remote_launch(worker_main, &wk, wk.lcore), 0);
	wk.running = true;
}

static void
worker_stop(void)
{
	__atomic_store_n(&wk.stop, 1, __ATOMIC_RELEASE);
	wk.running = false;
	assert_int_equal(rte_eal_wait_lcore(wk.lcore), 0);
}

/* Spin until the worker has replied to n messages in all. */
static void
worker_wait_replied(unsigned n)
{
	uint64_t deadline = fc_now_ns() + WAIT_MS * 1000000ull;

	while (__atomic_load_n(&wk.replied, __ATOMIC_ACQUIRE) < n)
		assert_true(fc_now_ns() < deadline);
}

/* What done() saw, in the order it ran. */
#define LOG_MAX 256

static struct {
	unsigned n;
	int type[LOG_MAX];
	int result[LOG_MAX];
	void *arg[LOG_MAX];
} done_log;

static void
msg_done(struct fc_msg *msg)
{
	if (done_log.n < LOG_MAX) {
		done_log.type[done_log.n] = msg->type;
		done_log.result[done_log.n] = msg->result;
		done_log.arg[done_log.n] = msg->arg;
	}
	done_log.n++;
}

static struct fc_msg *
msg_new(int type, void *arg)
{
	struct fc_msg *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->done = msg_done;
	m->arg = arg;
	m->type = type;
	m->result = 1; /* neither 0 nor an errno: the lcore must set it */
	return m;
}

/* A channel with a name no earlier test used. */
static int
chan_new(struct fc_chan **chp, unsigned size, int efd)
{
	static unsigned seq;
	char name[16];

	snprintf(name, sizeof(name), "ut%u", seq++);
	return fc_chan_alloc(chp, name, size, efd);
}

static bool
efd_readable(int efd, int timeout_ms)
{
	struct pollfd p = {.fd = efd, .events = POLLIN};

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* Wait on the eventfd only, and collect until `want` replies ran. */
static unsigned
collect_on_kick(struct fc_chan *ch, int efd, unsigned want)
{
	unsigned total = 0;

	while (total < want) {
		uint64_t v;

		assert_true(efd_readable(efd, WAIT_MS));
		assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
		assert_true(v >= 1);
		total += fc_chan_collect(ch);
	}
	return total;
}

struct fixture {
	int efd;
};

static int
setup(void **state)
{
	static struct fixture fx;

	memset(&done_log, 0, sizeof(done_log));
	fx.efd = eventfd(0, EFD_NONBLOCK);
	if (fx.efd < 0)
		return -1;
	*state = &fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	/* A test that failed half-way leaves the next a free lcore. */
	if (wk.running) {
		__atomic_store_n(&wk.stop, 1, __ATOMIC_RELEASE);
		rte_eal_wait_lcore(wk.lcore);
		wk.running = false;
	}
	close(fx->efd);
	return 0;
}

static void
test_round_trip(void **state)
{
	struct fixture *fx = *state;
	static char ctx[10]; /* a distinct arg per message */
	struct fc_chan *ch = NULL;

	assert_int_equal(chan_new(&ch, 16, fx->efd), 0);
	assert_non_null(ch);
	worker_start(ch);
	for (int i = 0; i < 10; i++)
		assert_int_equal(fc_chan_send(ch, msg_new(i + 1, &ctx[i])), 0);
	assert_int_equal(collect_on_kick(ch, fx->efd, 10), 10);
	worker_stop();

	assert_int_equal(done_log.n, 10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(done_log.type[i], i + 1);
		assert_int_equal(done_log.result[i], -(i + 1));
		assert_ptr_equal(done_log.arg[i], &ctx[i]);
	}
	assert_int_equal(fc_chan_in_flight(ch), 0);
	/* Nothing more to collect: done() does not run twice. */
	assert_int_equal(fc_chan_collect(ch), 0);
	assert_int_equal(done_log.n, 10);
	fc_chan_free(ch);
}

static void
test_many_in_order(void **state)
{
	struct fixture *fx = *state;
	struct fc_chan *ch = NULL;

	/* 200 messages at once through a ring that holds 7: the rest wait
	 * in the backlog and go out, in order, as replies are collected. */
	assert_int_equal(chan_new(&ch, 8, fx->efd), 0);
	for (unsigned i = 0; i < 200; i++)
		assert_int_equal(fc_chan_send(ch, msg_new((int)i + 1, NULL)),
				 0);
	assert_int_equal(fc_chan_in_flight(ch), 200);
	worker_start(ch);
	while (done_log.n < 200)
		collect_on_kick(ch, fx->efd, 1);
	worker_stop();

	assert_int_equal(done_log.n, 200);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(done_log.type[i], i + 1);
		assert_int_equal(done_log.result[i], -(i + 1));
	}
	assert_int_equal(fc_chan_in_flight(ch), 0);
	fc_chan_free(ch);
}

static void
test_eventfd_kick(void **state)
{
	struct fixture *fx = *state;
	struct fc_chan *ch = NULL;
	uint64_t v;
	unsigned kicks;

	assert_int_equal(chan_new(&ch, 4, fx->efd), 0);
	worker_start(ch);
	/* The worker spins and kicks with nothing replied: no wake-up. */
	kicks = __atomic_load_n(&wk.kicks, __ATOMIC_ACQUIRE);
	assert_false(efd_readable(fx->efd, 100));
	assert_true(__atomic_load_n(&wk.kicks, __ATOMIC_ACQUIRE) > kicks);
	assert_int_equal(read(fx->efd, &v, sizeof(v)), -1);
	assert_int_equal(errno, EAGAIN);

	/* One reply: readable, then quiet again once read. */
	assert_int_equal(fc_chan_send(ch, msg_new(7, NULL)), 0);
	assert_true(efd_readable(fx->efd, WAIT_MS));
	assert_int_equal(read(fx->efd, &v, sizeof(v)), sizeof(v));
	assert_int_equal(v, 1);
	assert_int_equal(fc_chan_collect(ch), 1);
	assert_int_equal(done_log.n, 1);
	assert_int_equal(done_log.result[0], -7);
	assert_false(efd_readable(fx->efd, 100));
	worker_stop();
	fc_chan_free(ch);
}

static void
test_in_flight_cap(void **state)
{
	struct fixture *fx = *state;
	struct fc_chan *ch = NULL;

	/* A ring of 8 holds 7: seven go out, the eighth waits. */
	assert_int_equal(chan_new(&ch, 8, fx->efd), 0);
	assert_int_equal(fc_chan_in_flight(ch), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(fc_chan_send(ch, msg_new(i + 1, NULL)), 0);
		assert_int_equal(fc_chan_in_flight(ch), (unsigned)i + 1);
	}

	/* The lcore sees only seven: the eighth is held back, since an
	 * answered but uncollected reply still holds its slot. */
	worker_start(ch);
	worker_wait_replied(7);
	usleep(50 * 1000);
	assert_int_equal(__atomic_load_n(&wk.replied, __ATOMIC_ACQUIRE), 7);
	assert_int_equal(fc_chan_in_flight(ch), 8);
	assert_int_equal(done_log.n, 0);

	/* Collecting makes room: the eighth goes out and comes back. */
	assert_int_equal(fc_chan_collect(ch), 7);
	assert_int_equal(done_log.n, 7);
	assert_int_equal(fc_chan_in_flight(ch), 1);
	worker_wait_replied(8);
	assert_int_equal(fc_chan_collect(ch), 1);
	assert_int_equal(done_log.n, 8);
	assert_int_equal(done_log.type[7], 8);
	assert_int_equal(done_log.result[7], -8);
	assert_int_equal(fc_chan_in_flight(ch), 0);
	worker_stop();
	fc_chan_free(ch);
}

static void
test_smallest_ring(void **state)
{
	struct fixture *fx = *state;
	struct fc_chan *ch = NULL;

	/* Size 2 carries one message at a time; the second waits, and
	 * fc_chan_free releases it unsent. */
	assert_int_equal(chan_new(&ch, 2, fx->efd), 0);
	assert_int_equal(fc_chan_send(ch, msg_new(1, NULL)), 0);
	assert_int_equal(fc_chan_send(ch, msg_new(2, NULL)), 0);
	assert_int_equal(fc_chan_in_flight(ch), 2);
	fc_chan_free(ch);
}

static void
test_collect_many_replies(void **state)
{
	struct fixture *fx = *state;
	struct fc_chan *ch = NULL;

	/* 100 replies waiting: one collect drains them all, in order. */
	assert_int_equal(chan_new(&ch, 128, fx->efd), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(fc_chan_send(ch, msg_new(i + 1, NULL)), 0);
	worker_start(ch);
	worker_wait_replied(100);
	worker_stop();
	assert_int_equal(fc_chan_collect(ch), 100);
	assert_int_equal(done_log.n, 100);
	for (int i = 0; i < 100; i++)
		assert_int_equal(done_log.type[i], i + 1);
	assert_int_equal(fc_chan_in_flight(ch), 0);
	fc_chan_free(ch);
}

static void
test_done_null(void **state)
{
	struct fixture *fx = *state;
	struct fc_chan *ch = NULL;
	struct fc_msg *m;

	/* A message without done() is still collected and freed. */
	assert_int_equal(chan_new(&ch, 4, fx->efd), 0);
	m = msg_new(3, NULL);
	m->done = NULL;
	assert_int_equal(fc_chan_send(ch, m), 0);
	worker_start(ch);
	worker_wait_replied(1);
	worker_stop();
	assert_int_equal(fc_chan_collect(ch), 1);
	assert_int_equal(done_log.n, 0);
	assert_int_equal(fc_chan_in_flight(ch), 0);
	fc_chan_free(ch);
}

static void
test_free_with_queued(void **state)
{
	struct fixture *fx = *state;
	struct fc_chan *ch = NULL;

	/*
	 * Requests never taken and replies never collected are freed with
	 * the channel, without running done() (a leak shows under ASan).
	 */
	assert_int_equal(chan_new(&ch, 8, fx->efd), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(fc_chan_send(ch, msg_new(i + 1, NULL)), 0);
	worker_start(ch);
	worker_wait_replied(3);
	worker_stop();
	for (int i = 0; i < 2; i++)
		assert_int_equal(fc_chan_send(ch, msg_new(i + 4, NULL)), 0);
	fc_chan_free(ch);
	assert_int_equal(done_log.n, 0);
	fc_chan_free(NULL);
}

static void
test_alloc_rejects(void **state)
{
	/* Not powers of two, the largest just past 2^31. */
	static const unsigned bad[] = {
		0, 1, 3, 5, 6, 7, 12, 100, 1000, 0x80000001u,
	};
	struct fixture *fx = *state;
	struct fc_chan *ch = NULL;

	for (size_t i = 0; i < FC_ARRAY_SIZE(bad); i++) {
		assert_int_equal(chan_new(&ch, bad[i], fx->efd), EINVAL);
		assert_null(ch);
	}
	assert_int_equal(fc_chan_alloc(NULL, "utnull", 8, fx->efd), EINVAL);
	assert_int_equal(fc_chan_alloc(&ch, NULL, 8, fx->efd), EINVAL);
	assert_null(ch);
	/* Powers of two are fine. */
	for (unsigned size = 2; size <= 1024; size *= 2) {
		assert_int_equal(chan_new(&ch, size, fx->efd), 0);
		assert_non_null(ch);
		assert_int_equal(fc_chan_in_flight(ch), 0);
		fc_chan_free(ch);
		ch = NULL;
	}
}

static void
test_alloc_duplicate_name(void **state)
{
	struct fixture *fx = *state;
	struct fc_chan *a = NULL, *b = NULL;

	/* Ring names are global to the process: a second one fails. */
	assert_int_equal(fc_chan_alloc(&a, "utdup", 4, fx->efd), 0);
	assert_int_equal(fc_chan_alloc(&b, "utdup", 4, fx->efd), EEXIST);
	assert_null(b);
	/* The first is untouched and the name is free again after it. */
	assert_int_equal(fc_chan_send(a, msg_new(1, NULL)), 0);
	fc_chan_free(a);
	assert_int_equal(fc_chan_alloc(&b, "utdup", 4, fx->efd), 0);
	fc_chan_free(b);
}

/* EAL arguments, writable because rte_eal_init may reorder them. */
static char eal_lcores[32];
/* clang-format off */
static char *eal_argv[] = {
	"test", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
	"-m", "64", "--log-level=lib.eal:error", "--lcores", eal_lcores,
};
/* clang-format on */

static int
group_setup(void **state)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int argc = (int)FC_ARRAY_SIZE(eal_argv);

	(void)state;
	if (ncpu < 1)
		ncpu = 1;
	snprintf(eal_lcores, sizeof(eal_lcores), "(0-1)@(0-%ld)", ncpu - 1);
	if (rte_eal_init(argc, eal_argv) < 0) {
		fprintf(stderr, "rte_eal_init failed: %s\n",
			rte_strerror(rte_errno));
		return -1;
	}
	if (rte_lcore_count() != 2) {
		fprintf(stderr, "expected 2 lcores, got %u\n",
			rte_lcore_count());
		return -1;
	}
	wk.lcore = rte_get_next_lcore(rte_get_main_lcore(), 1, 0);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	return rte_eal_cleanup();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_in_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_eventfd_kick, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_in_flight_cap, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_smallest_ring, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_collect_many_replies,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_done_null, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_free_with_queued, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_alloc_rejects, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_alloc_duplicate_name,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("chan", tests, group_setup,
					   group_teardown);
}
