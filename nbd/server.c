// SPDX-License-Identifier: MIT
/*
 * The NBD server object (server.h): exports, worker threads and the life
 * cycle of clients.
 *
 * Thread model:
 *   - N worker threads, each owning one event loop (io_uring + buffer
 *     arena of arena_bytes) and one engine queue per export.  Connections
 *     live on exactly one worker; nothing of a connection is touched by
 *     another thread once it is posted there.
 *   - One short-lived handshake thread per connecting client: blocking,
 *     poll-bounded negotiation (handshake.c), then the connection is posted
 *     to a worker (round-robin) with aiol_loop_post().
 *   - Callers (listeners, the kernel-NBD attach) call add_client from any
 *     thread.
 * Lock: srv->lock protects only the client counters and start-up status;
 * it is never held across I/O and nests inside nothing.
 *
 * Shutdown: set stopping and wake handshakes (stop_fd), wait for
 * handshakes to end, post a stop item to every worker (connections answer
 * ESHUTDOWN, finish in-flight work and close), join the workers, fdatasync
 * the writable exports.
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "internal.h"
#include "tls.h"

#define DEFAULT_QUEUE_DEPTH 128
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define SHUTDOWN_GRACE_S 10 /* then connections still busy are cut */

/* ---- workers ---- */

static void worker_stop(struct aiol_work *wk)
{
	struct nbd_worker *w = aiol_container_of(wk, struct nbd_worker, stop_work);
	struct io_uring_sqe *sqe;

	w->stopping = true;
	nbd_conn_shutdown_all(w);
	if (w->nconns) {
		w->grace_ts.tv_sec = SHUTDOWN_GRACE_S;
		w->grace_ts.tv_nsec = 0;
		sqe = aiol_loop_sqe(w->loop, &w->grace_ev);
		io_uring_prep_timeout(sqe, &w->grace_ts, 0, 0);
	}
}

static void worker_grace_over(struct aiol_event *ev, int res, unsigned int flags)
{
	struct nbd_worker *w = aiol_container_of(ev, struct nbd_worker, grace_ev);

	(void)res;
	(void)flags;
	if (w->nconns)
		aiol_warn("nbd: worker %u: %u connections still busy %d s after the shutdown "
			  "began: disconnecting them",
			  w->index, w->nconns, SHUTDOWN_GRACE_S);
	nbd_conn_abort_all(w);
}

static void worker_buf_waiter(struct aiol_work *wk)
{
	struct nbd_worker *w = aiol_container_of(wk, struct nbd_worker, buf_waiter);

	nbd_worker_buf_ready(w);
}

static void worker_ready(struct nbd_server *srv, int err)
{
	pthread_mutex_lock(&srv->lock);
	srv->ready++;
	if (err && !srv->start_err)
		srv->start_err = err;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
}

static void *worker_main(void *arg)
{
	struct nbd_worker *w = arg;
	struct nbd_server *srv = w->srv;
	struct aiol_loop_opts lo = {.arena_bytes = srv->arena_bytes, .poll_us = srv->poll_us};
	struct aiol_queue_opts qo = {.depth = srv->queue_depth};
	unsigned int nq = 0;
	int ret;

	ret = aiol_loop_create(&lo, &w->loop);
	if (ret < 0) {
		worker_ready(srv, ret);
		return NULL;
	}
	for (nq = 0; nq < srv->nexports; nq++) {
		ret = aiol_queue_create(srv->exports[nq].dev, w->loop, &qo, &w->queues[nq]);
		if (ret < 0) {
			aiol_err("nbd: worker %u: engine queue for '%s': %s", w->index,
				 srv->exports[nq].name, strerror(-ret));
			goto out;
		}
	}
	w->stop_work.fn = worker_stop;
	w->grace_ev.fn = worker_grace_over;
	w->buf_waiter.fn = worker_buf_waiter;
	worker_ready(srv, 0);

	while (!(w->stopping && w->nconns == 0)) {
		ret = aiol_loop_run_once(w->loop, true);
		if (ret < 0 && ret != -EINTR) {
			aiol_err("nbd: worker %u: event loop: %s", w->index, strerror(-ret));
			break; /* not expected; connections are abandoned */
		}
	}
	ret = 0;
out:
	if (ret < 0)
		worker_ready(srv, ret);
	while (nq-- > 0)
		aiol_queue_destroy(w->queues[nq]);
	/* The loop stays until destroy: handshake threads may still look at it. */
	return NULL;
}

/* ---- clients ---- */

struct hs_job {
	struct nbd_server *srv;
	int rfd, wfd;
};

/* Count a client in, as negotiating: refused once shutdown began (checked
 * under the lock that nbd_server_shutdown() sets it under, so that every
 * client counted in is waited for) or over max_connections. */
static int client_enter(struct nbd_server *srv)
{
	int ret = 0;

	pthread_mutex_lock(&srv->lock);
	if (atomic_load(&srv->stopping)) {
		ret = -ESHUTDOWN;
	} else if (srv->max_connections && srv->nclients >= srv->max_connections) {
		aiol_info("nbd: refusing a client: %u connections already", srv->max_connections);
		ret = -EBUSY;
	} else {
		srv->nclients++;
		srv->nhandshakes++;
	}
	pthread_mutex_unlock(&srv->lock);
	return ret;
}

static void client_done(struct nbd_server *srv, bool handshake, bool gone)
{
	pthread_mutex_lock(&srv->lock);
	if (handshake)
		srv->nhandshakes--;
	if (gone)
		srv->nclients--;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
}

/* A worker's connection has been freed (its loop thread). */
static void worker_conn_gone(struct nbd_worker *w)
{
	client_done(w->srv, false, true);
}

/*
 * Move a negotiated connection to the next worker (round-robin), on the
 * transport it continues on: TLS when it did STARTTLS, whose session it
 * takes, plain otherwise.  This is the one place that looks: from here on
 * the connection only sees a struct nbd_transport.  Takes the fds and the
 * session on every path (closed and freed on failure).  0 or -errno.
 */
static int start_conn(struct nbd_server *srv, int rfd, int wfd, const struct nbd_session *s)
{
	unsigned int i = atomic_fetch_add(&srv->next_worker, 1) % srv->nworkers;
	struct nbd_worker *w = &srv->workers[i];
	struct nbd_transport *t;
	int ret;

	if (s->tls)
		ret = nbd_transport_tls_new(w->loop, rfd, wfd, s->tls, &t);
	else
		ret = nbd_transport_plain_new(w->loop, rfd, wfd, &t);
	if (ret < 0) {
		nbd_tls_free(s->tls);
		close(rfd);
		if (wfd != rfd)
			close(wfd);
		return ret;
	}
	ret = nbd_conn_start(w, t, s);
	if (ret < 0)
		t->ops->free(t);
	return ret;
}

static void *hs_thread(void *arg)
{
	struct hs_job *job = arg;
	struct nbd_server *srv = job->srv;
	struct nbd_io io = {
	    .ops = &nbd_io_plain,
	    .rfd = job->rfd,
	    .wfd = job->wfd,
	    .stop_fd = srv->stop_fd,
	    .timeout_ms = srv->handshake_timeout_ms,
		.deadline_ms = nbd_now_ms() + srv->handshake_timeout_ms,
	};
	struct nbd_session s;
	int ret;

	ret = nbd_handshake(srv, &io, &s);
	if (ret == 0) {
		ret = start_conn(srv, job->rfd, job->wfd, &s);
		if (ret < 0)
			aiol_err("nbd: cannot start a connection: %s", strerror(-ret));
		client_done(srv, true, ret < 0);
		free(job);
		return NULL;
	} else if (ret < 0 && ret != -ECONNRESET && ret != -EPROTO && ret != -ENOENT) {
		aiol_debug("nbd: negotiation ended: %s", strerror(-ret));
	}
	close(job->rfd);
	if (job->wfd != job->rfd)
		close(job->wfd);
	client_done(srv, true, true);
	free(job);
	return NULL;
}

int nbd_server_add_client_fds(struct nbd_server *srv, int in_fd, int out_fd)
{
	struct hs_job *job;
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	ret = client_enter(srv);
	if (ret < 0)
		goto err_close;

	job = malloc(sizeof(*job));
	if (!job) {
		ret = -ENOMEM;
		goto err_count;
	}
	*job = (struct hs_job){.srv = srv, .rfd = in_fd, .wfd = out_fd};
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 << 10);
	ret = -pthread_create(&t, &attr, hs_thread, job);
	pthread_attr_destroy(&attr);
	if (ret < 0) {
		aiol_err("nbd: cannot start a handshake thread: %s", strerror(-ret));
		free(job);
		goto err_count;
	}
	return 0;

err_count:
	client_done(srv, true, true);
err_close:
	close(in_fd);
	if (out_fd != in_fd)
		close(out_fd);
	return ret;
}

int nbd_server_add_client(struct nbd_server *srv, int fd)
{
	int one = 1;

	/* Latency matters more than packet count; fails harmlessly on Unix sockets. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return nbd_server_add_client_fds(srv, fd, fd);
}

/* ---- connections configured out of band (kernel NBD client) ---- */

int nbd_server_add_client_transmission(struct nbd_server *srv, int fd, unsigned int export_index)
{
	struct nbd_session s = {.export_idx = export_index};
	int ret;

	if (export_index >= srv->nexports) {
		ret = -EINVAL;
		goto err_close;
	}
	/* Counted as negotiating until posted, so that a shutdown waits. */
	ret = client_enter(srv);
	if (ret < 0)
		goto err_close;
	ret = start_conn(srv, fd, fd, &s);
	client_done(srv, true, ret < 0);
	return ret;

err_close:
	close(fd);
	return ret;
}

int nbd_server_export_flags(struct nbd_server *srv, unsigned int export_index, uint16_t *tflags)
{
	if (export_index >= srv->nexports)
		return -EINVAL;
	*tflags = nbd_export_tflags(&srv->exports[export_index], false);
	return 0;
}

unsigned int nbd_server_connections(struct nbd_server *srv)
{
	unsigned int n;

	pthread_mutex_lock(&srv->lock);
	n = srv->nclients;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

void nbd_server_wait_idle(struct nbd_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	while (srv->nclients)
		pthread_cond_wait(&srv->cond, &srv->lock);
	pthread_mutex_unlock(&srv->lock);
}

/* ---- create / shutdown / destroy ---- */

int nbd_server_create(const struct nbd_export_opts *exports, unsigned int nexports,
		      const struct nbd_server_opts *opts, struct nbd_server **out)
{
	struct nbd_server_opts o = opts ? *opts : (struct nbd_server_opts){0};
	struct nbd_server *srv;
	unsigned int started = 0;
	long ncpu;
	int ret;

	if (!nexports) {
		aiol_err("nbd: no export");
		return -EINVAL;
	}
	if (!o.threads) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		o.threads = ncpu > 0 ? (unsigned int)ncpu : 1;
		if (o.max_inflight && o.max_inflight / NBD_WORKER_ARENA_MIN < o.threads)
			o.threads = (unsigned int)(o.max_inflight / NBD_WORKER_ARENA_MIN);
		if (!o.threads)
			o.threads = 1;
	}
	if (!o.max_inflight)
		o.max_inflight = (size_t)o.threads * NBD_WORKER_ARENA_MIN;
	if (o.max_inflight / o.threads < NBD_WORKER_ARENA_MIN) {
		aiol_err(
		    "nbd: in-flight cap of %zu MiB is too small for %u workers: each needs %zu MiB "
		    "(one 64 MiB request and its bounce buffer)",
		    o.max_inflight >> 20, o.threads, NBD_WORKER_ARENA_MIN >> 20);
		return -EINVAL;
	}

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->cond, NULL);
	srv->stop_fd = -1;
	srv->max_connections = o.max_connections;
	srv->queue_depth = o.queue_depth ? o.queue_depth : DEFAULT_QUEUE_DEPTH;
	srv->handshake_timeout_ms =
	    o.handshake_timeout_ms ? (int)o.handshake_timeout_ms : DEFAULT_HANDSHAKE_TIMEOUT_MS;
	srv->arena_bytes = (o.max_inflight / o.threads) & ~(size_t)4095;
	srv->tls = o.tls;
	srv->max_conn_inflight = o.max_conn_inflight ? o.max_conn_inflight : (size_t)128 << 20;
	srv->payload_timeout_ms = o.payload_timeout_ms ? (int)o.payload_timeout_ms : 60000;
	srv->poll_us = o.poll_us < 0 ? 0 : o.poll_us ? (unsigned int)o.poll_us : NBD_DEFAULT_POLL_US;
	ret = nbd_exports_setup(srv, exports, nexports);
	if (ret < 0)
		goto err;
	srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->stop_fd < 0) {
		ret = -errno;
		goto err;
	}
	srv->workers = calloc(o.threads, sizeof(*srv->workers));
	if (!srv->workers) {
		ret = -ENOMEM;
		goto err;
	}
	srv->nworkers = o.threads;
	for (unsigned int i = 0; i < o.threads; i++) {
		struct nbd_worker *w = &srv->workers[i];

		w->srv = srv;
		w->index = i;
		w->conn_gone = worker_conn_gone;
		w->queues = calloc(nexports, sizeof(*w->queues));
		if (!w->queues) {
			ret = -ENOMEM;
			goto err_stop;
		}
		ret = -pthread_create(&w->thread, NULL, worker_main, w);
		if (ret < 0) {
			aiol_err("nbd: cannot start worker thread: %s", strerror(-ret));
			goto err_stop;
		}
		started++;
	}
	pthread_mutex_lock(&srv->lock);
	while (srv->ready < started)
		pthread_cond_wait(&srv->cond, &srv->lock);
	ret = srv->start_err;
	pthread_mutex_unlock(&srv->lock);
	if (ret < 0)
		goto err_stop;
	aiol_debug("nbd: %u workers, %zu MiB arena each", srv->nworkers, srv->arena_bytes >> 20);
	*out = srv;
	return 0;

err_stop:
	srv->nworkers = started;
	for (unsigned int i = 0; i < started; i++) {
		struct nbd_worker *w = &srv->workers[i];

		if (w->loop && !w->stop_work.fn)
			continue; /* failed before its loop ran: already gone */
		if (w->loop)
			aiol_loop_post(w->loop, &w->stop_work);
	}
	for (unsigned int i = 0; i < started; i++)
		pthread_join(srv->workers[i].thread, NULL);
err:
	srv->shut_down = true;
	nbd_server_destroy(srv);
	return ret;
}

int nbd_server_shutdown(struct nbd_server *srv)
{
	uint64_t one = 1;
	int ret = 0;

	if (srv->shut_down)
		return srv->shutdown_ret;
	pthread_mutex_lock(&srv->lock);
	atomic_store(&srv->stopping, true);
	pthread_mutex_unlock(&srv->lock);
	if (write(srv->stop_fd, &one, sizeof(one)) < 0)
		aiol_err("nbd: eventfd write: %m");
	pthread_mutex_lock(&srv->lock);
	while (srv->nhandshakes)
		pthread_cond_wait(&srv->cond, &srv->lock);
	pthread_mutex_unlock(&srv->lock);
	for (unsigned int i = 0; i < srv->nworkers; i++)
		aiol_loop_post(srv->workers[i].loop, &srv->workers[i].stop_work);
	for (unsigned int i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i].thread, NULL);
	for (unsigned int i = 0; i < srv->nexports; i++) {
		int r;

		if (srv->exports[i].info->read_only)
			continue;
		r = aiol_dev_sync(srv->exports[i].dev);
		if (r < 0 && !ret) {
			aiol_err("nbd: fdatasync of '%s': %s", srv->exports[i].info->path,
				 strerror(-r));
			ret = r;
		}
	}
	srv->shut_down = true;
	srv->shutdown_ret = ret;
	return ret;
}

void nbd_server_destroy(struct nbd_server *srv)
{
	if (!srv)
		return;
	if (!srv->shut_down)
		nbd_server_shutdown(srv);
	for (unsigned int i = 0; srv->workers && i < srv->nworkers; i++) {
		aiol_loop_destroy(srv->workers[i].loop);
		free(srv->workers[i].queues);
	}
	free(srv->workers);
	nbd_exports_free(srv);
	if (srv->stop_fd >= 0)
		close(srv->stop_fd);
	pthread_cond_destroy(&srv->cond);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}
