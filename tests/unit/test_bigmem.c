/*
 * test_bigmem.c - per-leg state memory (common/bigmem.c): blocks are
 * zeroed and 64-byte aligned whether new or reused, never overlap, a
 * freed block serves the next of its size, and allocation goes on past
 * one region.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"

#define LEG 8768 /* sizes like a leg's, its buffer's, its codecs' */
#define JB  33120
#define CS  14000
/* 800 of each size: about 45 MB, more than one 32 MB region */
#define MANY 2400

static const size_t size_of[3] = {LEG, JB, CS};

static bool
zeroed(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i])
			return false;
	}
	return true;
}

static void
test_zeroed_aligned_reused(void **state)
{
	static const size_t sizes[] = {1, 63, 64, LEG, JB, CS};

	(void)state;
	for (size_t k = 0; k < FC_ARRAY_SIZE(sizes); k++) {
		uint8_t *a = fc_big_alloc(sizes[k]), *b;

		assert_non_null(a);
		assert_int_equal((uintptr_t)a % 64, 0);
		assert_true(zeroed(a, sizes[k]));
		memset(a, 0xa5, sizes[k]);
		fc_big_free(a, sizes[k]);
		b = fc_big_alloc(sizes[k]);
		assert_non_null(b);
#ifndef FC_BIG_PLAIN /* (the plain allocator reuses nothing) */
		assert_ptr_equal(b, a); /* the freed one serves the next */
#endif
		assert_int_equal((uintptr_t)b % 64, 0);
		/* Reused or not, it comes zeroed. */
		assert_true(zeroed(b, sizes[k]));
		fc_big_free(b, sizes[k]);
	}
	assert_null(fc_big_alloc((size_t)1 << 40));
}

struct block {
	const uint8_t *p;
	size_t n;
};

static int
by_address(const void *x, const void *y)
{
	uintptr_t a = (uintptr_t)((const struct block *)x)->p;
	uintptr_t b = (uintptr_t)((const struct block *)y)->p;

	return (a > b) - (a < b);
}

static void
test_many_apart(void **state)
{
	uint8_t **p = calloc(MANY, sizeof(*p));
	struct block *sorted = calloc(MANY, sizeof(*sorted));

	(void)state;
	assert_non_null(p);
	assert_non_null(sorted);
	for (unsigned i = 0; i < MANY; i++) {
		size_t n = size_of[i % 3];

		p[i] = fc_big_alloc(n);
		assert_non_null(p[i]);
		memset(p[i], (int)(i & 0xff), n);
		sorted[i].p = p[i];
		sorted[i].n = n;
	}
	/* In address order, each ends before the next begins... */
	qsort(sorted, MANY, sizeof(*sorted), by_address);
	for (unsigned i = 0; i + 1 < MANY; i++)
		assert_true(sorted[i].p + sorted[i].n <= sorted[i + 1].p);
	/* ...and each still holds its own pattern. */
	for (unsigned i = 0; i < MANY; i++) {
		size_t n = size_of[i % 3];

		assert_int_equal(p[i][0], i & 0xff);
		assert_int_equal(p[i][n - 1], i & 0xff);
		for (size_t off = 0; off < n; off += 997)
			assert_int_equal(p[i][off], i & 0xff);
	}
	for (unsigned i = 0; i < MANY; i++)
		fc_big_free(p[i], size_of[i % 3]);
	free(sorted);
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zeroed_aligned_reused),
		cmocka_unit_test(test_many_apart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
