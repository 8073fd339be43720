/*
 * bigmem.c - per-leg media state on transparent huge pages (see common.h).
 *
 * A worker's tick touches every leg's state, tens of kilobytes a leg
 * spread over its leg, jitter buffer and codecs: with 4 KB pages, tens of
 * thousands of legs miss the TLB on each. Blocks here come from regions
 * of REGION_SIZE bytes, 2 MB aligned and madvise(MADV_HUGEPAGE)d, so the
 * kernel backs them with 2 MB pages where it can (transparent_hugepage
 * "madvise" or "always"); where it cannot, they are ordinary memory.
 *
 * The sizes are few (a leg, its jitter buffer, its codecs): each size has
 * a free list, and a freed block serves the next block of its size.
 * Regions are never given back: they hold the next call's legs. Under
 * AddressSanitizer blocks are plain calloc()s, so that overflows are
 * still caught.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/common.h"

#define ALIGN	    64
#define HUGE_SIZE   (2u << 20)
#define REGION_SIZE (32u << 20)
#define MAX_CLASSES 16

static size_t
round_up(size_t n)
{
	return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

#ifdef FC_BIG_PLAIN
void *
fc_big_alloc(size_t size)
{
	void *p;

	if (size > REGION_SIZE)
		return NULL;
	size = round_up(size ? size : 1);
	p = aligned_alloc(ALIGN, size);
	if (p)
		memset(p, 0, size);
	return p;
}

void
fc_big_free(void *p, size_t size)
{
	(void)size;
	free(p);
}
#else
struct free_block {
	struct free_block *next;
};

static struct {
	pthread_mutex_t lock;
	uint8_t *cur; /* the region being carved */
	size_t left;
	struct {
		size_t size;
		struct free_block *free;
	} cls[MAX_CLASSES];
	unsigned n_cls;
} big = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int
region_new(void)
{
	size_t len = REGION_SIZE + HUGE_SIZE;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t a;
	size_t head;

	if (p == MAP_FAILED)
		return ENOMEM;
	/* Keep the 2 MB-aligned part only. */
	a = ((uintptr_t)p + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1);
	head = a - (uintptr_t)p;
	if (head)
		munmap(p, head);
	if (len - head > REGION_SIZE)
		munmap((uint8_t *)a + REGION_SIZE, len - head - REGION_SIZE);
	/* Advice only: without it the memory is still good. */
	(void)madvise((void *)a, REGION_SIZE, MADV_HUGEPAGE);
	big.cur = (uint8_t *)a;
	big.left = REGION_SIZE;
	return 0;
}

static int
class_of(size_t size)
{
	for (unsigned i = 0; i < big.n_cls; i++) {
		if (big.cls[i].size == size)
			return (int)i;
	}
	if (big.n_cls == MAX_CLASSES)
		return -1;
	big.cls[big.n_cls].size = size;
	big.cls[big.n_cls].free = NULL;
	return (int)big.n_cls++;
}

void *
fc_big_alloc(size_t size)
{
	void *p = NULL;
	int c;

	if (size > REGION_SIZE)
		return NULL;
	size = round_up(size ? size : 1);
	pthread_mutex_lock(&big.lock);
	c = class_of(size);
	if (c >= 0 && big.cls[c].free) {
		p = big.cls[c].free;
		big.cls[c].free = big.cls[c].free->next;
	} else if (c >= 0 && (big.left >= size || region_new() == 0)) {
		/* What was left of the last region stays unused: regions
		 * are large and the sizes few. */
		p = big.cur;
		big.cur += size;
		big.left -= size;
	}
	pthread_mutex_unlock(&big.lock);
	if (p)
		memset(p, 0, size);
	return p;
}

void
fc_big_free(void *p, size_t size)
{
	struct free_block *b = p;
	int c;

	if (p == NULL)
		return;
	pthread_mutex_lock(&big.lock);
	c = class_of(round_up(size ? size : 1));
	if (c >= 0) {
		b->next = big.cls[c].free;
		big.cls[c].free = b;
	}
	pthread_mutex_unlock(&big.lock);
}
#endif
