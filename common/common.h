/*
 * common.h - the few helpers every part of focusd uses.
 *
 * Logging: one line an event to stderr, filtered by a global level that the
 * daemon sets once at start-up. fc_log() formats, so it must never be called
 * per packet or per audio frame; the fast path counts instead.
 *
 * Channels: a control thread talks to each lcore (the io lcore, every mixer
 * worker) through one struct fc_chan, a pair of single-producer /
 * single-consumer rte_rings carrying pointers to messages:
 *
 *   control --fc_chan_send()--> req ring --fc_chan_take()--> lcore
 *   control <-fc_chan_collect()- rep ring <-fc_chan_reply()-- lcore
 *
 * Every message starts with a struct fc_msg. The control thread allocates
 * it, fills in what the lcore needs and sends it: ownership passes to the
 * lcore. The lcore acts on it and hands the same message back with a result;
 * the control thread runs msg->done() and frees it. So the lcore never
 * allocates or frees, and every reply has a slot waiting for it: the control
 * thread never has more messages in flight on a channel than the reply ring
 * holds. Past that, fc_chan_send() keeps the message in a backlog on the
 * control side, in order, and fc_chan_collect() sends it as replies free
 * room; so a burst (every leg hung up at once) is never refused.
 *
 * After each batch of replies the lcore writes the channel's eventfd, which
 * the control thread watches in its event loop; the write is one
 * non-blocking syscall per batch of commands, never per packet.
 *
 * Threads: fc_chan_alloc/free/send/collect on the control thread only;
 * fc_chan_take/reply on the channel's lcore only. fc_chan_free frees the
 * messages still queued, so it runs only once the lcore has stopped.
 */
#ifndef FOCUSD_COMMON_H
#define FOCUSD_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Logging. */
enum fc_log_level {
	FC_LOG_ERR = 0,
	FC_LOG_WARN,
	FC_LOG_INFO,
	FC_LOG_DEBUG,
};

void fc_log_level_set(enum fc_log_level level);
enum fc_log_level fc_log_level_get(void);
/* Parse "error", "warning", "info" or "debug"; -EINVAL otherwise. */
int fc_log_level_parse(const char *name);
void fc_log(enum fc_log_level level, const char *part, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define FC_ERR(part, ...)  fc_log(FC_LOG_ERR, part, __VA_ARGS__)
#define FC_WARN(part, ...) fc_log(FC_LOG_WARN, part, __VA_ARGS__)
#define FC_INFO(part, ...) fc_log(FC_LOG_INFO, part, __VA_ARGS__)
#define FC_DEBUG(part, ...)                                      \
	do {                                                     \
		if (fc_log_level_get() >= FC_LOG_DEBUG)          \
			fc_log(FC_LOG_DEBUG, part, __VA_ARGS__); \
	} while (0)

/* Monotonic clock in nanoseconds (vDSO, no syscall). */
uint64_t fc_now_ns(void);

/*
 * Memory for per-leg media state (bigmem.c): zeroed, 64-byte aligned,
 * on transparent huge pages where the kernel gives them, so that a tick
 * over tens of thousands of legs does not miss the TLB on each. Freed
 * with the size it was allocated with. Not for the fast path: it takes
 * a lock.
 */
void *fc_big_alloc(size_t size);
void fc_big_free(void *p, size_t size);
/* Under AddressSanitizer they are aligned_alloc and free, so that
 * overflows are caught: no regions, no reuse. */
#if defined(__SANITIZE_ADDRESS__)
#define FC_BIG_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FC_BIG_PLAIN 1
#endif
#endif

/* Messages between the control thread and an lcore. */
struct fc_msg;
typedef void(fc_msg_done_h)(struct fc_msg *msg);

struct fc_msg {
	fc_msg_done_h *done; /* run on the control thread, then it frees */
	void *arg;	     /* borrowed: the sender's context for done() */
	int type;	     /* the receiving part's command number */
	int result;	     /* 0 or a negative errno, set by the lcore */
	struct fc_msg *next; /* the channel's backlog; control side only */
};

struct fc_chan;

/*
 * Create a channel whose rings hold `size` messages (a power of two).
 * `name` is at most RTE_RING_NAMESIZE - 5 characters (ENAMETOOLONG).
 * `efd` is the eventfd the lcore kicks after replies (borrowed).
 */
int fc_chan_alloc(struct fc_chan **chp, const char *name, unsigned size,
		  int efd);
void fc_chan_free(struct fc_chan *ch);
/* Control side: 0; the message goes out now or from the backlog. */
int fc_chan_send(struct fc_chan *ch, struct fc_msg *msg);
/* Control side: run done() and free() for every reply waiting. */
unsigned fc_chan_collect(struct fc_chan *ch);
/* Control side: messages sent (or in the backlog) not collected yet. */
unsigned fc_chan_in_flight(const struct fc_chan *ch);
/* Lcore side: take up to n requests. */
unsigned fc_chan_take(struct fc_chan *ch, struct fc_msg **msgs, unsigned n);
/* Lcore side: hand one message back. */
void fc_chan_reply(struct fc_chan *ch, struct fc_msg *msg);
/* Lcore side: wake the control thread if replies were queued. */
void fc_chan_kick(struct fc_chan *ch);

#define FC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
