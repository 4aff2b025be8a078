// SPDX-License-Identifier: MIT
/*
 * The transmission phase of one NBD connection, driven entirely by its
 * worker's event loop (one io_uring per worker thread):
 *
 *   transport --recv--> staging buffer --parse+validate (request.c)-->
 *        request slot; WRITE payload: copied from staging if already
 *        there, the rest received straight into the slot's arena buffer
 *   slot --aiol_submit--> engine queue of (worker, export) --done()-->
 *   reply encoded in the slot (reply.c), data referenced in place
 *   --> per-connection send queue --writev (many replies at once)--> transport
 *
 * The transport (transport.h) is plain or TLS; this file never asks which.
 * Requests complete and are answered out of order.  Only one recv and one
 * writev are in flight per connection; short sends are resumed.  Memory is
 * bounded: NBD_SLOTS preallocated slots, one fixed staging buffer, and data
 * buffers from the worker's arena (aiol_loop_buf_alloc), which keeps
 * NBD_ENGINE_RESERVE free for the engine's bounce buffers.  When there is no
 * free slot or no arena space, the connection stops reading its socket
 * until there is (backpressure); rejected WRITE payloads are drained through
 * the staging buffer.  Its life is one enum conn_state.
 *
 * Thread model: everything here runs on the worker's loop thread, except
 * nbd_conn_start(), which runs on the handshake thread and only posts.
 * A connection is freed from a deferred work item once nothing of it is in
 * flight (conn_idle(): no recv, no send, no engine request, no queued
 * reply, no queued work) and its transport has closed.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "aioloop/log.h"
#include "internal.h"
#include "reply.h"

#define NBD_SLOTS 128				/* requests in flight per connection */
#define RXBUF_SIZE (64u << 10)			/* staging buffer for headers */
#define RX_EXACT_MIN (32u << 10)		/* writes this long: payload in place */
#define NBD_BS_EXT 64				/* extents per BLOCK_STATUS reply */
#define NBD_SPARSE_EXT NBD_REPLY_SPARSE_MAX	/* extents looked up for a sparse read */
#define NBD_SPARSE_MIN (64u << 10)		/* reads this long are checked for holes */
#define NBD_ENGINE_RESERVE ((size_t)(4u << 20)) /* arena left for bounces */
#define TX_IOV_MAX 256
#define TX_FIRST 4				/* replies in a send that starts the queue */

_Static_assert(NBD_WORKER_ARENA_MIN >= NBD_MAX_PAYLOAD + NBD_ENGINE_RESERVE,
	       "a worker's arena must fit one maximal request besides the reserve");

/*
 * A connection's life, in the only order it moves in:
 *
 *   SERVING --server shutdown, requests in flight--> STOPPING
 *   SERVING, STOPPING --DISC, end of stream, shutdown with nothing in
 *                       flight--> DRAINING
 *   any of the above --protocol violation, send error, grace over--> DEAD
 *   DRAINING, DEAD --nothing in flight--> CLOSING --transport closed--> CLOSED
 *
 * and then freed.  Below DRAINING requests are read; from DEAD on replies
 * are dropped.
 */
enum conn_state {
	CONN_SERVING = 0,
	CONN_STOPPING, /* server shutdown: new requests get ESHUTDOWN */
	CONN_DRAINING, /* no more requests read; in-flight ones finish, replies go out */
	CONN_DEAD,     /* hard disconnect: replies dropped, I/O in flight ends */
	CONN_CLOSING,  /* the transport is closing (TLS: close_notify) */
	CONN_CLOSED,   /* the transport is closed: free */
};

enum rx_state {
	RX_HDR = 0, /* waiting for a request header in staging */
	RX_PAYLOAD, /* receiving a WRITE payload into rx_slot's buffer */
	RX_DRAIN,   /* discarding a rejected request's payload */
};

struct nbd_slot {
	struct aiol_req req;
	struct nbd_conn *conn;
	struct nbd_slot *next; /* free list or send queue */
	struct nbd_req_hdr hdr;
	void *buf; /* arena buffer (READ/WRITE data) */
	size_t buflen;
	uint64_t t0;	   /* stats: when its header was received (ns) */
	bool sparse_phase; /* req is the hole lookup before a READ */
	uint32_t nsparse;  /* extents the lookup found */
	struct nbd_reply reply; /* into iov and hdrs: reply.iov[0..reply.niov) */
	struct iovec iov[NBD_REPLY_IOV_MAX];
	struct aiol_extent ext[NBD_BS_EXT];
	uint8_t hdrs[NBD_REPLY_HDR_MAX];
};

struct nbd_conn {
	struct nbd_worker *w;
	struct nbd_conn *next, *prev; /* worker's list */
	struct aiol_queue *q;
	struct nbd_transport *t; /* plain or TLS: never asked which */
	enum conn_state state;
	uint32_t caps;	   /* AIOL_CAP_* of the export */
	struct nbd_conn_params params;
	struct aiol_work start_work;
	struct aiol_work resume_work; /* rx_process again */
	struct aiol_work tx_work;     /* start a send */
	struct aiol_work close_work;

	/* receive side */
	uint8_t *rxbuf;
	size_t rx_start, rx_end;
	enum rx_state rx_state;
	struct nbd_slot *rx_slot;
	uint8_t *rx_dst;
	uint64_t rx_left;
	uint64_t drain_left;
	bool rx_busy;
	bool rx_exact; /* receive only up to the end of the next header */
	bool rx_cancelled;
	bool wait_slot;
	bool buf_waiting;
	bool lenient_logged; /* a WRITE without PAYLOAD_LEN was said once */

	unsigned int inflight; /* engine requests */

	/* slots */
	struct nbd_slot *slots;
	struct nbd_slot *free_slots;

	/* send side */
	struct nbd_slot *txq_head, *txq_tail;
	unsigned int tx_nslots; /* slots at the head covered by the send in flight */
	unsigned int tx_niov, tx_pos;
	bool tx_busy;
	struct iovec txiov[TX_IOV_MAX];

	size_t buf_bytes;	     /* arena bytes held by this connection's slots */
	int64_t payload_deadline_ms; /* a WRITE payload must have arrived by then */

	struct stats_export *sx; /* the export's statistics; stats is our shard */
	struct stats_shard stats;
	uint64_t rx_ns; /* when the last receive completed: the start of the
			   requests it brought (one clock read for them all) */
};

static void rx_process(struct nbd_conn *c);
static void conn_maybe_close(struct nbd_conn *c);

/* ---- slots ---- */

static struct nbd_slot *slot_get(struct nbd_conn *c)
{
	struct nbd_slot *s = c->free_slots;

	if (s) {
		c->free_slots = s->next;
		s->next = NULL;
		s->reply.niov = 0;
		s->buf = NULL;
		s->buflen = 0;
		s->sparse_phase = false;
	}
	return s;
}

static void slot_put(struct nbd_slot *s)
{
	struct nbd_conn *c = s->conn;

	if (s->buf) {
		aiol_loop_buf_free(c->w->loop, s->buf, s->buflen);
		c->buf_bytes -= s->buflen;
	}
	s->buf = NULL;
	s->next = c->free_slots;
	c->free_slots = s;
	if (c->wait_slot) {
		c->wait_slot = false;
		aiol_loop_defer(c->w->loop, &c->resume_work);
	}
}

static void *conn_buf_alloc(struct nbd_conn *c, size_t len)
{
	struct aiol_loop *loop = c->w->loop;
	size_t need = (len + 4095) & ~(size_t)4095;

	void *buf;

	if (aiol_loop_buf_used(loop) + need + NBD_ENGINE_RESERVE > aiol_loop_buf_max(loop))
		return NULL;
	/* Per-connection cap: one client cannot take the whole arena (a
	 * request alone always fits, so nothing waits forever). */
	if (c->buf_bytes && c->buf_bytes + len > c->w->srv->max_conn_inflight)
		return NULL;
	buf = aiol_loop_buf_alloc(loop, len);
	if (buf)
		c->buf_bytes += len;
	return buf;
}

/* ---- replies (encoded by reply.c into the slot) ---- */

static void reply_error(struct nbd_slot *s, uint32_t error)
{
	nbd_reply_error(&s->reply, &s->conn->params, &s->hdr, error);
}

static void reply_ok(struct nbd_slot *s)
{
	nbd_reply_ok(&s->reply, &s->conn->params, &s->hdr);
}

static void reply_read(struct nbd_slot *s)
{
	nbd_reply_read(&s->reply, &s->conn->params, &s->hdr, s->buf, s->ext, s->nsparse);
}

static void reply_block_status(struct nbd_slot *s)
{
	uint32_t n = s->req.ext_count < NBD_BS_EXT ? s->req.ext_count : NBD_BS_EXT;

	nbd_reply_block_status(&s->reply, &s->conn->params, &s->hdr, s->ext, n);
}

/* ---- send side ---- */

static void tx_schedule(struct nbd_conn *c)
{
	if (!c->tx_busy && c->txq_head)
		aiol_loop_defer(c->w->loop, &c->tx_work);
}

static void tx_enqueue(struct nbd_slot *s)
{
	struct nbd_conn *c = s->conn;

	if (c->state >= CONN_DEAD) {
		slot_put(s);
		conn_maybe_close(c);
		return;
	}
	s->next = NULL;
	if (c->txq_tail)
		c->txq_tail->next = s;
	else
		c->txq_head = s;
	c->txq_tail = s;
	tx_schedule(c);
}

static void tx_post(struct nbd_conn *c)
{
	c->tx_busy = true;
	c->t->ops->writev(c->t, c->txiov + c->tx_pos, (int)(c->tx_niov - c->tx_pos));
}

/*
 * Send what is queued, in one sendmsg.  A send that starts an idle queue
 * carries at most TX_FIRST replies: completions come in bursts (a disk
 * often completes a whole batch at once), and the client can start reading,
 * and sending its next requests, while the rest of the burst is copied into
 * the socket by the send that follows.  A send that follows another takes
 * everything queued.
 */
static void tx_send(struct nbd_conn *c, unsigned int max_slots)
{
	unsigned int n = 0, ns = 0;

	if (c->tx_busy || !c->txq_head || c->state >= CONN_DEAD)
		return;
	for (struct nbd_slot *s = c->txq_head;
	     s && n + s->reply.niov <= TX_IOV_MAX && ns < max_slots; s = s->next) {
		memcpy(c->txiov + n, s->iov, s->reply.niov * sizeof(struct iovec));
		n += s->reply.niov;
		ns++;
	}
	c->tx_nslots = ns;
	c->tx_niov = n;
	c->tx_pos = 0;
	tx_post(c);
}

static void tx_start(struct aiol_work *wk)
{
	tx_send(aiol_container_of(wk, struct nbd_conn, tx_work), TX_FIRST);
}

static void tx_release(struct nbd_conn *c, unsigned int n)
{
	while (n-- && c->txq_head) {
		struct nbd_slot *s = c->txq_head;

		c->txq_head = s->next;
		if (!c->txq_head)
			c->txq_tail = NULL;
		slot_put(s);
	}
}

static void conn_fail(struct nbd_conn *c, const char *why);

/* The transport's send_done. */
static void tx_done(void *arg, int res)
{
	struct nbd_conn *c = arg;
	size_t left = res > 0 ? (size_t)res : 0;
	bool dead = c->state >= CONN_DEAD;

	c->tx_busy = false;
	if (res == -EINTR || res == -EAGAIN) {
		if (!dead) {
			tx_post(c);
			return;
		}
	}
	if (res <= 0 || dead) {
		tx_release(c, c->tx_nslots);
		c->tx_nslots = 0;
		if (!dead)
			conn_fail(c, res < 0 ? strerror(-res) : "send returned 0");
		conn_maybe_close(c);
		return;
	}
	while (left && c->tx_pos < c->tx_niov) {
		struct iovec *v = &c->txiov[c->tx_pos];

		if (v->iov_len <= left) {
			left -= v->iov_len;
			c->tx_pos++;
		} else {
			v->iov_base = (uint8_t *)v->iov_base + left;
			v->iov_len -= left;
			left = 0;
		}
	}
	if (c->tx_pos < c->tx_niov) {
		tx_post(c); /* short send: the rest */
		return;
	}
	tx_release(c, c->tx_nslots);
	c->tx_nslots = 0;
	if (c->txq_head)
		tx_send(c, UINT_MAX);
	else
		conn_maybe_close(c);
}

/* ---- statistics: the connection's own shard (stats/stats.h) ---- */

static const int8_t cmd_stats_op[] = {
    [NBD_CMD_READ] = STATS_READ,	 [NBD_CMD_WRITE] = STATS_WRITE,
    [NBD_CMD_DISC] = -1,		 [NBD_CMD_FLUSH] = STATS_FLUSH,
    [NBD_CMD_TRIM] = STATS_TRIM,	 [NBD_CMD_CACHE] = STATS_CACHE,
    [NBD_CMD_WRITE_ZEROES] = STATS_ZEROES, [NBD_CMD_BLOCK_STATUS] = STATS_BLOCK_STATUS,
};

static int slot_stats_op(const struct nbd_slot *s)
{
	return s->hdr.type < sizeof(cmd_stats_op) ? cmd_stats_op[s->hdr.type] : -1;
}

/* A request starts; its latency counts from s->t0, its header's arrival. */
static void slot_stats_start(struct nbd_slot *s)
{
	int op = slot_stats_op(s);

	if (op >= 0)
		stats_start(&s->conn->stats, (enum stats_op)op);
}

/* res: >= 0, or -errno (a rejection's NBD error is an errno value). */
static void slot_stats_done(struct nbd_slot *s, int res)
{
	int op = slot_stats_op(s);

	if (op >= 0)
		stats_done(&s->conn->stats, (enum stats_op)op, res, s->hdr.len,
			   stats_now_ns() - s->t0);
}

/* ---- engine side ---- */

static void slot_done(struct aiol_req *req, int res);

static void slot_engine(struct nbd_slot *s, uint8_t op, uint32_t flags)
{
	struct nbd_conn *c = s->conn;
	struct aiol_req *r = &s->req;

	r->op = op;
	r->flags = flags;
	r->off = s->hdr.offset;
	r->len = s->hdr.len;
	r->buf = s->buf;
	r->ext = NULL;
	r->ext_max = 0;
	r->ext_count = 0;
	r->done = slot_done;
	r->user = s;
	if (op == AIOL_OP_BLOCK_STATUS) {
		r->ext = s->ext;
		r->ext_max = s->sparse_phase ? NBD_SPARSE_EXT : NBD_BS_EXT;
	} else if (op == AIOL_OP_FLUSH) {
		r->off = 0;
		r->len = 0;
	}
	aiol_submit(c->q, r);
}

/* Start a validated request. */
static void slot_submit(struct nbd_slot *s)
{
	struct nbd_conn *c = s->conn;
	const struct nbd_req_hdr *h = &s->hdr;
	uint32_t fua = h->flags & NBD_CMD_FLAG_FUA ? AIOL_F_FUA : 0;
	uint32_t f;

	AIOL_DEBUG_DATA("nbd: %s off=%llu len=%llu flags=0x%x", nbd_cmd_name(h->type),
			(unsigned long long)h->offset, (unsigned long long)h->len, h->flags);
	slot_stats_start(s);
	if (h->len == 0 && h->type != NBD_CMD_FLUSH) {
		/* Nothing to do (BLOCK_STATUS of 0 bytes was rejected). */
		if (h->type == NBD_CMD_READ)
			reply_read(s);
		else
			reply_ok(s);
		slot_stats_done(s, 0);
		tx_enqueue(s);
		return;
	}
	c->inflight++;
	switch (h->type) {
	case NBD_CMD_READ:
		s->nsparse = 0;
		if (c->params.structured && !(h->flags & NBD_CMD_FLAG_DF) &&
		    h->len >= NBD_SPARSE_MIN && (c->caps & AIOL_CAP_BLOCK_STATUS)) {
			s->sparse_phase = true;
			slot_engine(s, AIOL_OP_BLOCK_STATUS, 0);
		} else {
			slot_engine(s, AIOL_OP_READ, 0);
		}
		break;
	case NBD_CMD_WRITE:
		slot_engine(s, AIOL_OP_WRITE, fua);
		break;
	case NBD_CMD_FLUSH:
		slot_engine(s, AIOL_OP_FLUSH, 0);
		break;
	case NBD_CMD_TRIM:
		slot_engine(s, AIOL_OP_DISCARD, fua);
		break;
	case NBD_CMD_CACHE:
		slot_engine(s, AIOL_OP_CACHE, 0);
		break;
	case NBD_CMD_WRITE_ZEROES:
		f = fua;
		if (h->flags & NBD_CMD_FLAG_NO_HOLE)
			f |= AIOL_F_NO_UNMAP;
		if (h->flags & NBD_CMD_FLAG_FAST_ZERO)
			f |= AIOL_F_FAST_ONLY;
		slot_engine(s, AIOL_OP_WRITE_ZEROES, f);
		break;
	case NBD_CMD_BLOCK_STATUS:
		slot_engine(s, AIOL_OP_BLOCK_STATUS, 0);
		break;
	default:
		/* The validator let through an unknown command: a bug. */
		abort();
	}
}

static void conn_stop_rx(struct nbd_conn *c);

static void slot_done(struct aiol_req *req, int res)
{
	struct nbd_slot *s = req->user;
	struct nbd_conn *c = s->conn;

	if (s->sparse_phase) {
		s->sparse_phase = false;
		if (res == 0) {
			s->nsparse =
			    req->ext_count < NBD_SPARSE_EXT ? req->ext_count : NBD_SPARSE_EXT;
			if (!nbd_read_has_data(s->hdr.len, s->ext, s->nsparse))
				goto reply; /* all holes: no read at all */
		}
		/* Data somewhere (or the lookup failed): read everything. */
		if (res != 0)
			s->nsparse = 0;
		slot_engine(s, AIOL_OP_READ, 0);
		return;
	}
reply:
	c->inflight--;
	/* TRIM and CACHE are hints: a backing that turned out unable to do
	 * them (the engine drops the capability) has still done its duty. */
	if (res == -EOPNOTSUPP && (s->hdr.type == NBD_CMD_TRIM || s->hdr.type == NBD_CMD_CACHE))
		res = 0;
	slot_stats_done(s, res);
	if (res < 0) {
		AIOL_DEBUG_DATA("nbd: %s failed: %s", nbd_cmd_name(s->hdr.type), strerror(-res));
		reply_error(s, nbd_errno(res, s->hdr.flags));
	} else if (s->hdr.type == NBD_CMD_READ) {
		reply_read(s);
	} else if (s->hdr.type == NBD_CMD_BLOCK_STATUS) {
		reply_block_status(s);
	} else {
		reply_ok(s);
	}
	tx_enqueue(s);
	if (c->state == CONN_STOPPING && c->inflight == 0)
		conn_stop_rx(c);
	else if (c->inflight == 0)
		conn_maybe_close(c);
}

/* ---- receive side ---- */

static void rx_post(struct nbd_conn *c, void *buf, size_t len)
{
	/* A client stalling mid-payload holds an arena buffer: bound it. */
	int64_t deadline = c->rx_state == RX_PAYLOAD && c->w->srv->payload_timeout_ms
				   ? c->payload_deadline_ms
				   : 0;

	if (len > (1u << 30))
		len = 1u << 30;
	c->rx_busy = true;
	c->t->ops->recv(c->t, buf, len, deadline);
}

/* Handle the header at the start of staging.  Returns true to go on
 * parsing, false when blocked (slot, buffer) or stopped. */
static bool rx_request(struct nbd_conn *c, size_t hlen)
{
	struct nbd_req_hdr h;
	struct nbd_verdict v;
	struct nbd_slot *s;
	void *buf = NULL;
	size_t avail, n;

	if (nbd_parse_request(c->rxbuf + c->rx_start, c->params.extended, &h) < 0) {
		conn_fail(c, "bad request magic");
		return false;
	}
	nbd_validate(&c->params, &h, &v);
	if (v.disconnect) {
		conn_fail(c, "request payload over the limit");
		return false;
	}
	if (v.lenient && !c->lenient_logged) {
		c->lenient_logged = true;
		aiol_debug("nbd: client sends extended-header WRITEs without PAYLOAD_LEN "
			   "(as qemu >= 8.2 does): taking the length as the payload's");
	}
	if (v.disc) {
		aiol_debug("nbd: client sent DISC");
		c->rx_start += hlen;
		conn_stop_rx(c);
		return false;
	}
	if (!v.error && c->state == CONN_STOPPING)
		v.error = NBD_ESHUTDOWN;
	if (!c->free_slots) {
		c->wait_slot = true;
		return false;
	}
	if (!v.error && (h.type == NBD_CMD_READ || h.type == NBD_CMD_WRITE) && h.len) {
		buf = conn_buf_alloc(c, h.len);
		if (!buf) {
			c->buf_waiting = true;
			aiol_loop_buf_wait(c->w->loop, &c->w->buf_waiter);
			return false;
		}
	}
	s = slot_get(c);
	s->hdr = h;
	s->t0 = c->rx_ns;
	s->buf = buf;
	s->buflen = buf ? h.len : 0;
	c->rx_start += hlen;

	if (v.error) {
		AIOL_DEBUG_DATA("nbd: %s off=%llu len=%llu flags=0x%x rejected: error %u",
				nbd_cmd_name(h.type), (unsigned long long)h.offset,
				(unsigned long long)h.len, h.flags, v.error);
		slot_stats_start(s);
		slot_stats_done(s, -(int)v.error);
		reply_error(s, v.error);
		tx_enqueue(s);
		if (v.payload) {
			c->rx_state = RX_DRAIN;
			c->drain_left = v.payload;
		}
		return true;
	}
	/*
	 * Payload bytes that came in the staging receive with their header are
	 * copied once; for small writes that is cheaper than a second trip
	 * through the ring.  After a large write the next header is received
	 * on its own (rx_exact), so a stream of large writes is received
	 * straight into the buffers the disk writes use, with no copy.
	 */
	c->rx_exact = h.type == NBD_CMD_WRITE && h.len >= RX_EXACT_MIN;
	if (h.type == NBD_CMD_WRITE && h.len) {
		avail = c->rx_end - c->rx_start;
		n = avail < h.len ? avail : h.len;
		memcpy(buf, c->rxbuf + c->rx_start, n);
		c->rx_start += n;
		if (n < h.len) {
			c->rx_state = RX_PAYLOAD;
			c->payload_deadline_ms = nbd_now_ms() + c->w->srv->payload_timeout_ms;
			c->rx_slot = s;
			c->rx_dst = (uint8_t *)buf + n;
			c->rx_left = h.len - n;
			return true;
		}
	}
	slot_submit(s);
	return true;
}

static void rx_process(struct nbd_conn *c)
{
	size_t hlen = nbd_req_hdr_size(c->params.extended);

	while (c->state < CONN_DRAINING && !c->rx_busy) {
		size_t avail = c->rx_end - c->rx_start;

		switch (c->rx_state) {
		case RX_PAYLOAD:
			rx_post(c, c->rx_dst, c->rx_left);
			return;
		case RX_DRAIN: {
			size_t n = avail < c->drain_left ? avail : c->drain_left;

			c->rx_start += n;
			c->drain_left -= n;
			if (c->drain_left == 0) {
				c->rx_state = RX_HDR;
				continue;
			}
			c->rx_start = c->rx_end = 0;
			rx_post(c, c->rxbuf, RXBUF_SIZE);
			return;
		}
		case RX_HDR:
			if (avail < hlen) {
				if (c->rx_start) {
					memmove(c->rxbuf, c->rxbuf + c->rx_start, avail);
					c->rx_start = 0;
					c->rx_end = avail;
				}
				rx_post(c, c->rxbuf + c->rx_end,
					c->rx_exact ? hlen - avail : RXBUF_SIZE - c->rx_end);
				return;
			}
			if (!rx_request(c, hlen))
				return;
			break;
		}
	}
}

/* The transport's recv_done. */
static void rx_done(void *arg, int res)
{
	struct nbd_conn *c = arg;

	c->rx_busy = false;
	if (c->state >= CONN_DRAINING) {
		conn_maybe_close(c);
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		rx_process(c);
		return;
	}
	if (res == -ECANCELED && c->rx_state == RX_PAYLOAD)
		aiol_info("nbd: a WRITE payload did not arrive within %d s: disconnecting",
			  c->w->srv->payload_timeout_ms / 1000);
	if (res <= 0) {
		if (res < 0 && res != -ECONNRESET)
			aiol_debug("nbd: receive: %s", strerror(-res));
		if (c->rx_state == RX_PAYLOAD || c->rx_end != c->rx_start)
			aiol_debug("nbd: client went away in the middle of a request");
		conn_stop_rx(c);
		return;
	}
	c->rx_ns = stats_now_ns();
	if (c->rx_state == RX_PAYLOAD) {
		c->rx_dst += res;
		c->rx_left -= (uint64_t)res;
		if (c->rx_left == 0) {
			struct nbd_slot *s = c->rx_slot;

			c->rx_slot = NULL;
			c->rx_state = RX_HDR;
			slot_submit(s);
		}
	} else {
		c->rx_end += (size_t)res;
	}
	rx_process(c);
}

static void rx_resume(struct aiol_work *wk)
{
	struct nbd_conn *c = aiol_container_of(wk, struct nbd_conn, resume_work);

	rx_process(c);
}

/* No more reading: drop what a read was waiting for and a half-received
 * WRITE, cancel the pending receive; the connection closes once its work
 * is done.  Idempotent. */
static void rx_quiesce(struct nbd_conn *c)
{
	c->wait_slot = false;
	c->buf_waiting = false;
	if (c->rx_slot) {
		slot_put(c->rx_slot);
		c->rx_slot = NULL;
	}
	if (c->rx_busy && !c->rx_cancelled) {
		c->t->ops->cancel_recv(c->t);
		c->rx_cancelled = true;
	}
	conn_maybe_close(c);
}

/* Stop reading requests (DISC, end of stream, shutdown). */
static void conn_stop_rx(struct nbd_conn *c)
{
	if (c->state < CONN_DRAINING)
		c->state = CONN_DRAINING;
	rx_quiesce(c);
}

/* Hard disconnect: stop everything, drop queued replies.  A connection
 * already closing needs none: its transport cancels what it has in flight. */
static void conn_fail(struct nbd_conn *c, const char *why)
{
	if (c->state >= CONN_DEAD)
		return;
	aiol_info("nbd: disconnecting a client: %s", why);
	c->state = CONN_DEAD;
	/* Replies not yet handed to the kernel are dropped. */
	{
		unsigned int keep = c->tx_busy ? c->tx_nslots : 0, i = 0;
		struct nbd_slot *s = c->txq_head, *prev = NULL, *n;

		while (s && i < keep) {
			prev = s;
			s = s->next;
			i++;
		}
		if (prev) {
			prev->next = NULL;
			c->txq_tail = prev;
		} else {
			c->txq_head = c->txq_tail = NULL;
		}
		for (; s; s = n) {
			n = s->next;
			slot_put(s);
		}
	}
	c->t->ops->abort(c->t);
	rx_quiesce(c);
}

/* ---- life cycle ---- */

static void conn_free(struct nbd_conn *c)
{
	struct nbd_worker *w = c->w;

	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	c->t->ops->free(c->t);
	stats_shard_detach(c->sx, &c->stats);
	free(c->rxbuf);
	free(c->slots);
	free(c);
	w->conn_gone(w);
}

/* Nothing of the connection in flight: no receive, no send, no engine
 * request, no reply waiting to be sent. */
static bool conn_idle(const struct nbd_conn *c)
{
	return !c->rx_busy && !c->tx_busy && !c->inflight && !c->txq_head;
}

/* The transport's closed. */
static void transport_closed(void *arg)
{
	struct nbd_conn *c = arg;

	c->state = CONN_CLOSED;
	aiol_loop_defer(c->w->loop, &c->close_work);
}

static void conn_close_work(struct aiol_work *wk)
{
	struct nbd_conn *c = aiol_container_of(wk, struct nbd_conn, close_work);

	if (!conn_idle(c))
		return; /* a completion will call conn_maybe_close again */
	if (c->tx_work.queued || c->resume_work.queued) {
		aiol_loop_defer(c->w->loop, &c->close_work); /* after them */
		return;
	}
	switch (c->state) {
	case CONN_DRAINING:
	case CONN_DEAD:
		/* TLS: close_notify, then wait until no SQE is in flight. */
		c->state = CONN_CLOSING;
		c->t->ops->close(c->t);
		return;
	case CONN_CLOSED:
		aiol_debug("nbd: connection closed");
		conn_free(c);
		return;
	default:
		return; /* CLOSING: transport_closed() brings it back */
	}
}

static void conn_maybe_close(struct nbd_conn *c)
{
	if (c->state >= CONN_DRAINING && c->state < CONN_CLOSING && conn_idle(c))
		aiol_loop_defer(c->w->loop, &c->close_work);
}

static void conn_start_work(struct aiol_work *wk)
{
	struct nbd_conn *c = aiol_container_of(wk, struct nbd_conn, start_work);
	struct nbd_worker *w = c->w;

	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	if (w->stopping) {
		conn_stop_rx(c);
		return;
	}
	rx_process(c);
}

void nbd_conn_shutdown_all(struct nbd_worker *w)
{
	for (struct nbd_conn *c = w->conns, *n; c; c = n) {
		n = c->next;
		if (c->state < CONN_STOPPING)
			c->state = CONN_STOPPING;
		if (c->inflight == 0)
			conn_stop_rx(c);
	}
}

void nbd_conn_abort_all(struct nbd_worker *w)
{
	for (struct nbd_conn *c = w->conns, *n; c; c = n) {
		n = c->next;
		conn_fail(c, "still busy when the shutdown grace period ended");
	}
}

void nbd_worker_buf_ready(struct nbd_worker *w)
{
	for (struct nbd_conn *c = w->conns; c; c = c->next) {
		if (c->buf_waiting) {
			c->buf_waiting = false;
			aiol_loop_defer(w->loop, &c->resume_work);
		}
	}
}

int nbd_conn_start(struct nbd_worker *w, struct nbd_transport *t, const struct nbd_session *s)
{
	const struct nbd_export *e = &w->srv->exports[s->export_idx];
	struct nbd_conn *c;
	char label[80];

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->slots = calloc(NBD_SLOTS, sizeof(*c->slots));
	c->rxbuf = malloc(RXBUF_SIZE);
	if (!c->slots || !c->rxbuf) {
		free(c->slots);
		free(c->rxbuf);
		free(c);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < NBD_SLOTS; i++) {
		struct nbd_slot *sl = &c->slots[i];

		sl->conn = c;
		sl->next = i + 1 < NBD_SLOTS ? &c->slots[i + 1] : NULL;
		sl->reply = (struct nbd_reply){.iov = sl->iov,
					       .iov_max = NBD_REPLY_IOV_MAX,
					       .hdr = sl->hdrs,
					       .hdr_max = NBD_REPLY_HDR_MAX};
	}
	c->free_slots = &c->slots[0];
	c->w = w;
	c->q = w->queues[s->export_idx];
	c->t = t;
	t->recv_done = rx_done;
	t->send_done = tx_done;
	t->closed = transport_closed;
	t->arg = c;
	c->caps = e->info->caps;
	c->params = (struct nbd_conn_params){
	    .size = __atomic_load_n(&e->info->size, __ATOMIC_ACQUIRE),
	    .tflags = nbd_export_tflags(e, s->structured),
	    .structured = s->structured,
	    .extended = s->extended,
	    .meta = s->meta,
	    .max_payload = NBD_MAX_PAYLOAD,
	};
	c->start_work.fn = conn_start_work;
	c->resume_work.fn = rx_resume;
	c->tx_work.fn = tx_start;
	c->close_work.fn = conn_close_work;
	c->sx = e->stats;
	snprintf(label, sizeof(label), "#%u %s", atomic_fetch_add(&w->srv->conn_ids, 1) + 1,
		 s->peer);
	stats_shard_attach(c->sx, &c->stats, true, label);
	aiol_debug("nbd: client on export '%s'%s%s%s", e->name,
		   s->structured ? ", structured replies" : "",
		   s->extended ? ", extended headers" : "", s->meta ? ", base:allocation" : "");
	aiol_loop_post(w->loop, &c->start_work);
	return 0;
}
