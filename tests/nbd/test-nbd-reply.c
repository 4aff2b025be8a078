// SPDX-License-Identifier: MIT
/*
 * Unit tests of the NBD reply encoder (nbd/reply.h), in-process: each reply
 * is built into iovecs, flattened as the socket would see it and read back
 * field by field (simple replies, ERROR / NONE / OFFSET_DATA / OFFSET_HOLE
 * chunks in compact and extended form, sparse READs, BLOCK_STATUS with
 * clipping, REQ_ONE and the fallback extent).
 */
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "nbd/reply.h"

#define COOKIE 0x1122334455667788ull
#define OFF 0x10000ull

struct built {
	struct iovec iov[NBD_REPLY_IOV_MAX];
	uint8_t hdr[NBD_REPLY_HDR_MAX];
	struct nbd_reply r;
	uint8_t wire[1 << 16];
	size_t len; /* bytes in wire */
	size_t pos; /* read position */
};

static void init(struct built *b)
{
	memset(b, 0, sizeof(*b));
	b->r = (struct nbd_reply){.iov = b->iov,
				  .iov_max = NBD_REPLY_IOV_MAX,
				  .hdr = b->hdr,
				  .hdr_max = NBD_REPLY_HDR_MAX};
}

/* Concatenate the reply's iovecs as the socket would send them. */
static void flatten(struct built *b)
{
	b->len = b->pos = 0;
	for (unsigned int i = 0; i < b->r.niov; i++) {
		assert_true(b->len + b->iov[i].iov_len <= sizeof(b->wire));
		memcpy(b->wire + b->len, b->iov[i].iov_base, b->iov[i].iov_len);
		b->len += b->iov[i].iov_len;
	}
}

static const void *take(struct built *b, size_t n)
{
	const void *p = b->wire + b->pos;

	assert_true(b->pos + n <= b->len);
	b->pos += n;
	return p;
}

static uint32_t take32(struct built *b)
{
	uint32_t v;

	memcpy(&v, take(b, sizeof(v)), sizeof(v));
	return be32toh(v);
}

static uint64_t take64(struct built *b)
{
	uint64_t v;

	memcpy(&v, take(b, sizeof(v)), sizeof(v));
	return be64toh(v);
}

static struct nbd_conn_params params(bool structured, bool extended)
{
	return (struct nbd_conn_params){
	    .size = 1ull << 30,
	    .structured = structured || extended,
	    .extended = extended,
	    .meta = true,
	    .max_payload = NBD_MAX_PAYLOAD,
	};
}

static struct nbd_req_hdr req(uint16_t type, uint16_t flags, uint64_t len)
{
	return (struct nbd_req_hdr){
	    .type = type, .flags = flags, .cookie = COOKIE, .offset = OFF, .len = len};
}

/* Read one chunk header; returns its payload length. */
static uint64_t chunk(struct built *b, bool extended, uint16_t flags, uint16_t type)
{
	struct nbd_ext_reply e;
	struct nbd_structured_reply s;

	if (extended) {
		memcpy(&e, take(b, sizeof(e)), sizeof(e));
		assert_int_equal(be32toh(e.magic), NBD_EXT_REPLY_MAGIC);
		assert_int_equal(be16toh(e.flags), flags);
		assert_int_equal(be16toh(e.type), type);
		assert_true(be64toh(e.cookie) == COOKIE);
		assert_true(be64toh(e.offset) == OFF);
		return be64toh(e.len);
	}
	memcpy(&s, take(b, sizeof(s)), sizeof(s));
	assert_int_equal(be32toh(s.magic), NBD_STRUCTURED_REPLY_MAGIC);
	assert_int_equal(be16toh(s.flags), flags);
	assert_int_equal(be16toh(s.type), type);
	assert_true(be64toh(s.cookie) == COOKIE);
	return be32toh(s.len);
}

static void simple(struct built *b, uint32_t error)
{
	assert_int_equal(take32(b), NBD_SIMPLE_REPLY_MAGIC);
	assert_int_equal(take32(b), error);
	assert_true(take64(b) == COOKIE);
}

static void test_error(void **state)
{
	struct nbd_req_hdr h = req(NBD_CMD_WRITE, 0, 512);
	struct built b;

	(void)state;
	for (int mode = 0; mode < 3; mode++) {
		struct nbd_conn_params p = params(mode >= 1, mode == 2);

		init(&b);
		nbd_reply_error(&b.r, &p, &h, NBD_ENOSPC);
		flatten(&b);
		if (mode == 0) {
			simple(&b, NBD_ENOSPC);
		} else {
			assert_true(chunk(&b, mode == 2, NBD_REPLY_FLAG_DONE,
					  NBD_REPLY_TYPE_ERROR) == sizeof(struct nbd_chunk_error));
			assert_int_equal(take32(&b), NBD_ENOSPC);
			assert_int_equal(*(const uint16_t *)take(&b, 2), 0); /* no message */
		}
		assert_int_equal(b.pos, b.len);
		assert_int_equal(b.r.niov, 1); /* header and payload head merged */
	}
}

static void test_ok(void **state)
{
	struct nbd_req_hdr w = req(NBD_CMD_WRITE, 0, 512), r0 = req(NBD_CMD_READ, 0, 0);
	struct nbd_conn_params p;
	struct built b;

	(void)state;
	/* Structured replies: a WRITE still gets a simple reply... */
	p = params(true, false);
	init(&b);
	nbd_reply_ok(&b.r, &p, &w);
	flatten(&b);
	simple(&b, 0);
	assert_int_equal(b.pos, b.len);
	/* ... an empty READ a NONE chunk; */
	init(&b);
	nbd_reply_read(&b.r, &p, &r0, NULL, NULL, 0);
	flatten(&b);
	assert_true(chunk(&b, false, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE) == 0);
	assert_int_equal(b.pos, b.len);
	/* extended headers: everything is a chunk. */
	p = params(true, true);
	init(&b);
	nbd_reply_ok(&b.r, &p, &w);
	flatten(&b);
	assert_true(chunk(&b, true, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE) == 0);
	assert_int_equal(b.pos, b.len);
}

static void test_read_plain(void **state)
{
	static uint8_t data[4096];
	struct nbd_req_hdr h = req(NBD_CMD_READ, 0, sizeof(data));
	struct nbd_conn_params p = params(false, false);
	struct built b;

	(void)state;
	memset(data, 0x5a, sizeof(data));
	init(&b);
	nbd_reply_read(&b.r, &p, &h, data, NULL, 0);
	/* The data is referenced, not copied. */
	assert_int_equal(b.r.niov, 2);
	assert_ptr_equal(b.iov[1].iov_base, data);
	flatten(&b);
	simple(&b, 0);
	assert_memory_equal(take(&b, sizeof(data)), data, sizeof(data));
	assert_int_equal(b.pos, b.len);

	for (int ext = 0; ext < 2; ext++) {
		p = params(true, ext);
		init(&b);
		nbd_reply_read(&b.r, &p, &h, data, NULL, 0);
		flatten(&b);
		assert_true(chunk(&b, ext, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA) ==
			    8 + sizeof(data));
		assert_true(take64(&b) == OFF);
		assert_memory_equal(take(&b, sizeof(data)), data, sizeof(data));
		assert_int_equal(b.pos, b.len);
	}
}

static void test_read_sparse(void **state)
{
	static uint8_t data[16384];
	/* hole, data, data (merged), hole, then the lookup stops short: the
	 * rest is data. */
	const struct aiol_extent ext[] = {
	    {.len = 4096, .flags = AIOL_EXT_HOLE | AIOL_EXT_ZERO},
	    {.len = 2048, .flags = 0},
	    {.len = 2048, .flags = 0},
	    {.len = 4096, .flags = AIOL_EXT_ZERO},
	};
	struct nbd_req_hdr h = req(NBD_CMD_READ, 0, sizeof(data));
	struct built b;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	assert_true(nbd_read_has_data(sizeof(data), ext, 4));
	assert_false(nbd_read_has_data(4096, ext, 1));
	assert_true(nbd_read_has_data(8192, ext, 1)); /* past the lookup: data */
	for (int e = 0; e < 2; e++) {
		struct nbd_conn_params p = params(true, e);

		init(&b);
		nbd_reply_read(&b.r, &p, &h, data, ext, 4);
		flatten(&b);
		assert_true(chunk(&b, e, 0, NBD_REPLY_TYPE_OFFSET_HOLE) == 12);
		assert_true(take64(&b) == OFF);
		assert_int_equal(take32(&b), 4096);
		assert_true(chunk(&b, e, 0, NBD_REPLY_TYPE_OFFSET_DATA) == 8 + 4096);
		assert_true(take64(&b) == OFF + 4096);
		assert_memory_equal(take(&b, 4096), data + 4096, 4096);
		assert_true(chunk(&b, e, 0, NBD_REPLY_TYPE_OFFSET_HOLE) == 12);
		assert_true(take64(&b) == OFF + 8192);
		assert_int_equal(take32(&b), 4096);
		assert_true(chunk(&b, e, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA) ==
			    8 + 4096);
		assert_true(take64(&b) == OFF + 12288);
		assert_memory_equal(take(&b, 4096), data + 12288, 4096);
		assert_int_equal(b.pos, b.len);
	}
}

static void test_read_sparse_worst(void **state)
{
	/* NBD_REPLY_SPARSE_MAX alternating extents ending in a hole, and a data
	 * tail past the lookup: the most chunks a READ can take fit the
	 * declared room. */
	static uint8_t data[(NBD_REPLY_SPARSE_MAX + 1) * 512];
	struct aiol_extent ext[NBD_REPLY_SPARSE_MAX];
	struct nbd_req_hdr h = req(NBD_CMD_READ, 0, sizeof(data));
	struct nbd_conn_params p = params(true, true);
	struct built b;
	unsigned int chunks = 0;

	(void)state;
	for (unsigned int i = 0; i < NBD_REPLY_SPARSE_MAX; i++)
		ext[i] = (struct aiol_extent){.len = 512, .flags = i % 2 ? AIOL_EXT_ZERO : 0};
	init(&b);
	nbd_reply_read(&b.r, &p, &h, data, ext, NBD_REPLY_SPARSE_MAX);
	flatten(&b);
	while (b.pos < b.len) {
		struct nbd_ext_reply e;

		memcpy(&e, take(&b, sizeof(e)), sizeof(e));
		take(&b, be64toh(e.len));
		chunks++;
		assert_int_equal(!!(be16toh(e.flags) & NBD_REPLY_FLAG_DONE),
				 chunks == NBD_REPLY_SPARSE_MAX + 1);
	}
	assert_int_equal(chunks, NBD_REPLY_SPARSE_MAX + 1);
}

static void test_block_status(void **state)
{
	struct aiol_extent ext[4];
	struct nbd_req_hdr h = req(NBD_CMD_BLOCK_STATUS, 0, 12288);
	struct built b;

	(void)state;
	for (int e = 0; e < 2; e++) {
		struct nbd_conn_params p = params(true, e);
		uint64_t plen;

		/* Clipped to the request: 4096 hole+zero, then 8192 of the 1 MiB data. */
		ext[0] = (struct aiol_extent){.len = 4096, .flags = AIOL_EXT_HOLE | AIOL_EXT_ZERO};
		ext[1] = (struct aiol_extent){.len = 1 << 20, .flags = 0};
		init(&b);
		nbd_reply_block_status(&b.r, &p, &h, ext, 2);
		flatten(&b);
		plen = chunk(&b, e, NBD_REPLY_FLAG_DONE,
			     e ? NBD_REPLY_TYPE_BLOCK_STATUS_EXT : NBD_REPLY_TYPE_BLOCK_STATUS);
		assert_true(plen == (e ? 8u + 2 * 16 : 4u + 2 * 8));
		assert_int_equal(take32(&b), NBD_CONTEXT_BASE_ALLOCATION);
		if (e) {
			assert_int_equal(take32(&b), 2);
			assert_true(take64(&b) == 4096);
			assert_true(take64(&b) == (NBD_STATE_HOLE | NBD_STATE_ZERO));
			assert_true(take64(&b) == 8192);
			assert_true(take64(&b) == 0);
		} else {
			assert_int_equal(take32(&b), 4096);
			assert_int_equal(take32(&b), NBD_STATE_HOLE | NBD_STATE_ZERO);
			assert_int_equal(take32(&b), 8192);
			assert_int_equal(take32(&b), 0);
		}
		assert_int_equal(b.pos, b.len);

		/* REQ_ONE: the first extent only. */
		h.flags = NBD_CMD_FLAG_REQ_ONE;
		ext[0] = (struct aiol_extent){.len = 4096, .flags = AIOL_EXT_ZERO};
		ext[1] = (struct aiol_extent){.len = 1 << 20, .flags = 0};
		init(&b);
		nbd_reply_block_status(&b.r, &p, &h, ext, 2);
		flatten(&b);
		chunk(&b, e, NBD_REPLY_FLAG_DONE,
		      e ? NBD_REPLY_TYPE_BLOCK_STATUS_EXT : NBD_REPLY_TYPE_BLOCK_STATUS);
		take32(&b);
		if (e)
			assert_int_equal(take32(&b), 1);
		assert_true((e ? take64(&b) : take32(&b)) == 4096);
		assert_true((e ? take64(&b) : take32(&b)) == NBD_STATE_ZERO);
		assert_int_equal(b.pos, b.len);
		h.flags = 0;

		/* Nothing usable: one extent of data over the whole request. */
		ext[0] = (struct aiol_extent){.len = 0};
		init(&b);
		nbd_reply_block_status(&b.r, &p, &h, ext, 1);
		flatten(&b);
		chunk(&b, e, NBD_REPLY_FLAG_DONE,
		      e ? NBD_REPLY_TYPE_BLOCK_STATUS_EXT : NBD_REPLY_TYPE_BLOCK_STATUS);
		take32(&b);
		if (e)
			assert_int_equal(take32(&b), 1);
		assert_true((e ? take64(&b) : take32(&b)) == 12288);
		assert_true((e ? take64(&b) : take32(&b)) == 0);
		assert_int_equal(b.pos, b.len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_error),
	    cmocka_unit_test(test_ok),
	    cmocka_unit_test(test_read_plain),
	    cmocka_unit_test(test_read_sparse),
	    cmocka_unit_test(test_read_sparse_worst),
	    cmocka_unit_test(test_block_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
