// SPDX-License-Identifier: MIT
/*
 * Unit tests of negotiation option parsing (nbd/option.h), in-process: the
 * data of INFO/GO (a name and info requests) and of LIST/SET_META_CONTEXT
 * (a name and queries), well-formed, cut short, padded, with lengths that
 * point past the end or wrap, and the base:allocation matching rules.
 */
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "nbd/option.h"

struct buf {
	uint8_t b[256];
	uint32_t n;
};

static void put32(struct buf *b, uint32_t v)
{
	v = htobe32(v);
	memcpy(b->b + b->n, &v, sizeof(v));
	b->n += sizeof(v);
}

static void put16(struct buf *b, uint16_t v)
{
	v = htobe16(v);
	memcpy(b->b + b->n, &v, sizeof(v));
	b->n += sizeof(v);
}

static void puts_(struct buf *b, const char *s)
{
	memcpy(b->b + b->n, s, strlen(s));
	b->n += (uint32_t)strlen(s);
}

/* INFO/GO data: name, then the info requests. */
static struct buf info(const char *name, unsigned int n, const uint16_t *req)
{
	struct buf b = {.n = 0};

	put32(&b, (uint32_t)strlen(name));
	puts_(&b, name);
	put16(&b, (uint16_t)n);
	for (unsigned int i = 0; i < n; i++)
		put16(&b, req[i]);
	return b;
}

/* Meta-context data: name, then the queries. */
static struct buf meta(const char *name, unsigned int n, const char *const *q)
{
	struct buf b = {.n = 0};

	put32(&b, (uint32_t)strlen(name));
	puts_(&b, name);
	put32(&b, n);
	for (unsigned int i = 0; i < n; i++) {
		put32(&b, (uint32_t)strlen(q[i]));
		puts_(&b, q[i]);
	}
	return b;
}

static void test_info_ok(void **state)
{
	const uint16_t req[] = {NBD_INFO_NAME, NBD_INFO_BLOCK_SIZE, 0x7777, NBD_INFO_DESCRIPTION};
	struct buf b = info("disk", 4, req);
	struct nbd_opt_info oi;

	(void)state;
	assert_int_equal(nbd_opt_parse_info(b.b, b.n, &oi), 0);
	assert_int_equal(oi.namelen, 4);
	assert_memory_equal(oi.name, "disk", 4);
	assert_ptr_equal(oi.name, (const char *)b.b + 4); /* points into the data */
	assert_true(oi.want_name);
	assert_true(oi.want_desc);

	b = info("", 0, NULL);
	assert_int_equal(nbd_opt_parse_info(b.b, b.n, &oi), 0);
	assert_int_equal(oi.namelen, 0);
	assert_false(oi.want_name);
	assert_false(oi.want_desc);
}

static void test_info_malformed(void **state)
{
	const uint16_t req[] = {NBD_INFO_NAME};
	struct buf b = info("disk", 1, req);
	struct nbd_opt_info oi;

	(void)state;
	/* Too short for the two length fields. */
	assert_int_equal(nbd_opt_parse_info(b.b, 5, &oi), NBD_REP_ERR_INVALID);
	/* Cut short, or a byte too many. */
	assert_int_equal(nbd_opt_parse_info(b.b, b.n - 1, &oi), NBD_REP_ERR_INVALID);
	assert_int_equal(nbd_opt_parse_info(b.b, b.n + 1, &oi), NBD_REP_ERR_INVALID);
	/* A name length past the end, and one that would wrap. */
	b = info("disk", 1, req);
	b.b[3] = 200;
	assert_int_equal(nbd_opt_parse_info(b.b, b.n, &oi), NBD_REP_ERR_INVALID);
	memset(b.b, 0xff, 4);
	assert_int_equal(nbd_opt_parse_info(b.b, b.n, &oi), NBD_REP_ERR_INVALID);
	/* A request count that does not match the data. */
	b = info("disk", 1, req);
	b.b[4 + 4 + 1] = 2;
	assert_int_equal(nbd_opt_parse_info(b.b, b.n, &oi), NBD_REP_ERR_INVALID);
}

static void test_meta_match(void **state)
{
	const char *const ba[] = {"base:allocation"};
	const char *const ns[] = {"base:"};
	const char *const other[] = {"qemu:dirty-bitmap:x", "base:allocationX"};
	const char *const mixed[] = {"qemu:x", "base:allocation"};
	struct nbd_opt_meta om;
	struct buf b;

	(void)state;
	b = meta("disk", 1, ba);
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n, true, &om), 0);
	assert_true(om.match);
	assert_int_equal(om.namelen, 4);
	assert_memory_equal(om.name, "disk", 4);
	b = meta("", 2, mixed);
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n, true, &om), 0);
	assert_true(om.match);
	b = meta("", 2, other);
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n, true, &om), 0);
	assert_false(om.match);
	/* The namespace wildcard and an empty query list: LIST only. */
	b = meta("", 1, ns);
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n, false, &om), 0);
	assert_true(om.match);
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n, true, &om), 0);
	assert_false(om.match);
	b = meta("", 0, NULL);
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n, false, &om), 0);
	assert_true(om.match);
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n, true, &om), 0);
	assert_false(om.match);
}

static void test_meta_malformed(void **state)
{
	const char *const ba[] = {"base:allocation"};
	struct nbd_opt_meta om;
	struct buf b = meta("disk", 1, ba);

	(void)state;
	assert_int_equal(nbd_opt_parse_meta(b.b, 7, true, &om), NBD_REP_ERR_INVALID);
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n - 1, true, &om), NBD_REP_ERR_INVALID);
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n + 1, false, &om), NBD_REP_ERR_INVALID);
	/* More queries announced than present. */
	b = meta("disk", 1, ba);
	b.b[4 + 4 + 3] = 2;
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n, true, &om), NBD_REP_ERR_INVALID);
	/* A query length past the end, and one that would wrap. */
	b = meta("disk", 1, ba);
	b.b[4 + 4 + 4 + 3] = 100;
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n, true, &om), NBD_REP_ERR_INVALID);
	memset(b.b + 4 + 4 + 4, 0xff, 4);
	assert_int_equal(nbd_opt_parse_meta(b.b, b.n, true, &om), NBD_REP_ERR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_info_ok),
	    cmocka_unit_test(test_info_malformed),
	    cmocka_unit_test(test_meta_match),
	    cmocka_unit_test(test_meta_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
