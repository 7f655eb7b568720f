/* tcpscan.c - non-blocking connect scan on epoll (see tcpscan.h).
 *
 * Slots hold the sockets in flight; each slot is on one of two FIFO lists
 * (connecting, reading a banner) whose members share one timeout, so the
 * oldest is always at the head and expiry is O(1). Per-address pacing is
 * GCRA: a table maps each recently probed address to its theoretical
 * arrival time; a probe reserves the next interval of its address and
 * waits in the heap until then. */
#include "tcpscan.h"

#include "vigil/ratelimit.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define MAX_WAIT_MS 100 /* the stop flag is seen at least this often */
#define LAUNCH_BATCH 512 /* connects started between two event polls */

struct probe {
	struct vg_addr addr;
	int32_t name;
	uint16_t port;
	uint8_t attempt;
};

struct held {
	uint64_t due;
	struct probe p;
};

enum { SLOT_FREE, SLOT_CONNECT, SLOT_BANNER };

struct slot {
	int fd;
	int state;
	struct probe p;
	uint64_t start;
	int prev, next; /* list links, -1 at the ends */
	size_t blen;
};

struct list {
	int head, tail;
};

/* per-address GCRA: theoretical arrival time of the next probe */
struct pt_entry {
	struct vg_addr a;
	uint64_t tat;
	int used;
};

struct eng {
	const struct tcp_config *cfg;
	const struct tcp_source *src;
	struct tcp_stats *st;
	int ep;
	struct slot *slots;
	int *free_slots, nfree;
	struct list connecting, reading;
	unsigned char *bbuf; /* banner_max bytes per slot */
	struct held *heap;
	size_t nheap, heap_cap;
	struct pt_entry *pt;
	size_t pt_cap, pt_used;
	uint64_t pt_interval;
	struct vg_ratelimit *global;
	/* generator: port-major */
	size_t port_i, extra_i;
	int phase, gen_done;
	uint64_t starved_until; /* out of sockets or ports: pause launches */
	int launch_more;	/* fill() stopped at LAUNCH_BATCH */
};

static uint64_t now_ns(void)
{
	return vg_clock_now(vg_clock_monotonic());
}

/* --- lists ------------------------------------------------------------- */

static void list_push(struct eng *e, struct list *l, int i)
{
	e->slots[i].prev = l->tail;
	e->slots[i].next = -1;
	if (l->tail >= 0)
		e->slots[l->tail].next = i;
	else
		l->head = i;
	l->tail = i;
}

static void list_del(struct eng *e, struct list *l, int i)
{
	struct slot *s = &e->slots[i];

	if (s->prev >= 0)
		e->slots[s->prev].next = s->next;
	else
		l->head = s->next;
	if (s->next >= 0)
		e->slots[s->next].prev = s->prev;
	else
		l->tail = s->prev;
	s->prev = s->next = -1;
}

/* --- heap of held probes ----------------------------------------------- */

static void heap_push(struct eng *e, uint64_t due, const struct probe *p)
{
	size_t i = e->nheap++;

	while (i > 0) {
		size_t up = (i - 1) / 2;

		if (e->heap[up].due <= due)
			break;
		e->heap[i] = e->heap[up];
		i = up;
	}
	e->heap[i].due = due;
	e->heap[i].p = *p;
}

static void heap_pop(struct eng *e, struct probe *p)
{
	struct held last = e->heap[--e->nheap];
	size_t i = 0;

	*p = e->heap[0].p;
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= e->nheap)
			break;
		if (c + 1 < e->nheap && e->heap[c + 1].due < e->heap[c].due)
			c++;
		if (last.due <= e->heap[c].due)
			break;
		e->heap[i] = e->heap[c];
		i = c;
	}
	if (e->nheap)
		e->heap[i] = last;
}

/* --- per-address pacing ------------------------------------------------ */

static uint64_t addr_hash(const struct vg_addr *a)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)a->family;

	for (int i = 0; i < 16; i++)
		h = (h ^ a->b[i]) * 1099511628211ull;
	return h;
}

static int same_addr(const struct vg_addr *a, const struct vg_addr *b)
{
	return a->family == b->family && memcmp(a->b, b->b, 16) == 0;
}

/* Rebuild into a table of `cap` entries, dropping entries whose time has
 * passed (they mean the same as absent ones). */
static int pt_rehash(struct eng *e, size_t cap, uint64_t now)
{
	struct pt_entry *old = e->pt, *nt = calloc(cap, sizeof(*nt));
	size_t oldcap = e->pt_cap;

	if (!nt)
		return -1;
	e->pt = nt;
	e->pt_cap = cap;
	e->pt_used = 0;
	for (size_t i = 0; i < oldcap; i++) {
		size_t k;

		if (!old[i].used || old[i].tat <= now)
			continue;
		k = addr_hash(&old[i].a) & (cap - 1);
		while (nt[k].used)
			k = (k + 1) & (cap - 1);
		nt[k] = old[i];
		e->pt_used++;
	}
	free(old);
	return 0;
}

/* Reserve the next probe interval of `a`: when the probe may go. */
static uint64_t pt_reserve(struct eng *e, const struct vg_addr *a,
			   uint64_t now)
{
	size_t k = addr_hash(a) & (e->pt_cap - 1), reuse = (size_t)-1;
	struct pt_entry *p;
	uint64_t due;

	while (e->pt[k].used) {
		if (same_addr(&e->pt[k].a, a))
			break;
		if (reuse == (size_t)-1 && e->pt[k].tat <= now)
			reuse = k;
		k = (k + 1) & (e->pt_cap - 1);
	}
	if (!e->pt[k].used && reuse != (size_t)-1)
		k = reuse;
	p = &e->pt[k];
	if (!p->used) {
		p->used = 1;
		p->a = *a;
		p->tat = 0;
		e->pt_used++;
	} else if (!same_addr(&p->a, a)) {
		p->a = *a; /* an expired entry of another address */
		p->tat = 0;
	}
	due = p->tat > now ? p->tat : now;
	p->tat = due + e->pt_interval;
	if (e->pt_used * 2 > e->pt_cap) {
		size_t cap = e->pt_cap;

		/* grow only when most entries are live */
		if (pt_rehash(e, cap, now) == 0 && e->pt_used * 4 > cap)
			pt_rehash(e, cap * 2, now);
	}
	return due;
}

/* --- probes ------------------------------------------------------------ */

static int gen_next(struct eng *e, struct probe *p)
{
	const struct tcp_source *src = e->src;

	while (!e->gen_done && e->port_i < src->ports->n) {
		memset(p, 0, sizeof(*p));
		p->port = src->ports->port[e->port_i];
		if (e->phase == 0) {
			if (src->it && vg_scope_iter_next(src->it, &p->addr)) {
				p->name = -1;
				return 1;
			}
			e->phase = 1;
			e->extra_i = 0;
		}
		if (e->extra_i < src->nextra) {
			p->addr = src->extra[e->extra_i].addr;
			p->name = src->extra[e->extra_i].name;
			e->extra_i++;
			return 1;
		}
		e->port_i++;
		e->phase = 0;
		if (src->it)
			vg_scope_iter_reset(src->it);
	}
	e->gen_done = 1;
	return 0;
}

static socklen_t to_sockaddr(const struct probe *p,
			     struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (p->addr.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(p->port);
		memcpy(&sin->sin_addr, p->addr.b, 4);
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(p->port);
	memcpy(&sin6->sin6_addr, p->addr.b, 16);
	return sizeof(*sin6);
}

static void slot_close(struct eng *e, int i)
{
	struct slot *s = &e->slots[i];

	if (s->state == SLOT_CONNECT)
		list_del(e, &e->connecting, i);
	else if (s->state == SLOT_BANNER)
		list_del(e, &e->reading, i);
	if (s->fd >= 0)
		close(s->fd); /* also leaves the epoll set */
	s->fd = -1;
	s->state = SLOT_FREE;
	e->free_slots[e->nfree++] = i;
	e->st->in_flight--;
}

static void opened(struct eng *e, int i)
{
	const struct tcp_config *cfg = e->cfg;
	struct slot *s = &e->slots[i];
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
				 .data.u32 = (uint32_t)i};

	e->st->open++;
	if (cfg->on_open)
		cfg->on_open(cfg->ctx, &s->p.addr, s->p.name, s->p.port);
	if (!cfg->banner || epoll_ctl(e->ep, EPOLL_CTL_MOD, s->fd, &ev)) {
		slot_close(e, i);
		return;
	}
	list_del(e, &e->connecting, i);
	s->state = SLOT_BANNER;
	s->start = now_ns();
	s->blen = 0;
	list_push(e, &e->reading, i);
}

static void banner_done(struct eng *e, int i)
{
	const struct tcp_config *cfg = e->cfg;
	struct slot *s = &e->slots[i];

	if (s->blen) {
		e->st->banners++;
		if (cfg->on_banner)
			cfg->on_banner(cfg->ctx, &s->p.addr, s->p.name,
				       s->p.port,
				       e->bbuf + (size_t)i * cfg->banner_max,
				       s->blen);
	}
	slot_close(e, i);
}

/* Retry a timed-out probe later, or give it up as filtered. */
static void timed_out(struct eng *e, const struct probe *p, uint64_t now)
{
	struct probe r = *p;

	if (r.attempt < e->cfg->retries && e->nheap < e->heap_cap) {
		r.attempt++;
		e->st->retried++;
		heap_push(e, pt_reserve(e, &r.addr, now), &r);
		return;
	}
	e->st->filtered++;
}

/* Classify a finished connect by its error. */
static void connect_result(struct eng *e, int i, int so_error, uint64_t now)
{
	struct probe p = e->slots[i].p;

	if (so_error == 0) {
		opened(e, i);
		return;
	}
	slot_close(e, i);
	if (so_error == ECONNREFUSED)
		e->st->closed++;
	else if (so_error == ETIMEDOUT)
		timed_out(e, &p, now);
	else
		e->st->filtered++; /* unreachable, prohibited, reset */
}

/* Start probe `p`. 1 launched (or finished at once), 0 out of local
 * resources (the probe is held back briefly). */
static int launch(struct eng *e, const struct probe *p, uint64_t now)
{
	struct sockaddr_storage ss;
	socklen_t len = to_sockaddr(p, &ss);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct epoll_event ev = {.events = EPOLLOUT};
	struct slot *s;
	int fd, i, rc;

	fd = socket(p->addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0) {
		if (errno == EAFNOSUPPORT) {
			e->st->filtered++; /* no IPv6 here */
			return 1;
		}
		heap_push(e, now + 10 * NS_PER_MS, p);
		return 0;
	}
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	vg_ratelimit_try(e->global);
	e->st->probes++;
	rc = connect(fd, (struct sockaddr *)&ss, len);
	if (rc < 0 && errno != EINPROGRESS) {
		int er = errno;

		close(fd);
		if (er == EAGAIN || er == EADDRNOTAVAIL || er == ENOBUFS) {
			/* no local port or buffer: not the target's answer */
			e->st->probes--;
			heap_push(e, now + 10 * NS_PER_MS, p);
			return 0;
		}
		if (er == ECONNREFUSED)
			e->st->closed++;
		else if (er == ETIMEDOUT)
			timed_out(e, p, now);
		else
			e->st->filtered++;
		return 1;
	}
	i = e->free_slots[--e->nfree];
	s = &e->slots[i];
	s->fd = fd;
	s->p = *p;
	s->start = now;
	s->state = SLOT_CONNECT;
	s->blen = 0;
	list_push(e, &e->connecting, i);
	if (++e->st->in_flight > e->st->peak_in_flight)
		e->st->peak_in_flight = e->st->in_flight;
	ev.data.u32 = (uint32_t)i;
	if (epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev)) {
		slot_close(e, i);
		e->st->probes--;
		heap_push(e, now + 10 * NS_PER_MS, p);
		return 0;
	}
	if (rc == 0) /* loopback often connects at once */
		connect_result(e, i, 0, now);
	return 1;
}

/* Start what the limits allow now. */
static void fill(struct eng *e, uint64_t now)
{
	struct probe p;
	int budget = LAUNCH_BATCH;

	e->launch_more = 0;
	if (now < e->starved_until)
		return;
	while (e->nfree > 0) {
		if (budget-- == 0) {
			e->launch_more = 1;
			return;
		}
		if (vg_ratelimit_delay(e->global) > 0)
			return;
		if (e->nheap && e->heap[0].due <= now) {
			heap_pop(e, &p);
		} else if (!e->gen_done && e->nheap < e->heap_cap) {
			uint64_t due;

			if (!gen_next(e, &p))
				continue;
			due = pt_reserve(e, &p.addr, now);
			if (due > now) {
				heap_push(e, due, &p);
				continue;
			}
		} else {
			return;
		}
		if (!launch(e, &p, now)) {
			e->starved_until = now + 10 * NS_PER_MS;
			return;
		}
	}
}

static void expire(struct eng *e, uint64_t now)
{
	uint64_t ct = (uint64_t)e->cfg->connect_timeout_ms * NS_PER_MS;
	uint64_t bt = (uint64_t)e->cfg->banner_timeout_ms * NS_PER_MS;

	while (e->connecting.head >= 0 &&
	       e->slots[e->connecting.head].start + ct <= now) {
		int i = e->connecting.head;
		struct probe p = e->slots[i].p;

		slot_close(e, i);
		timed_out(e, &p, now);
	}
	while (e->reading.head >= 0 &&
	       e->slots[e->reading.head].start + bt <= now)
		banner_done(e, e->reading.head);
}

static void handle(struct eng *e, const struct epoll_event *ev, uint64_t now)
{
	int i = (int)ev->data.u32, soerr = 0;
	struct slot *s = &e->slots[i];
	socklen_t sl = sizeof(soerr);

	if (s->state == SLOT_CONNECT) {
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
			soerr = errno;
		connect_result(e, i, soerr, now);
	} else if (s->state == SLOT_BANNER) {
		size_t max = e->cfg->banner_max;
		ssize_t n = recv(s->fd, e->bbuf + (size_t)i * max + s->blen,
				 max - s->blen, MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n > 0)
			s->blen += (size_t)n;
		/* the first segment is the banner: enough evidence */
		banner_done(e, i);
	}
}

static int eng_init(struct eng *e, const struct tcp_config *cfg,
		    const struct tcp_source *src, struct tcp_stats *st,
		    struct vg_err *err)
{
	int n = cfg->max_in_flight;
	double burst = cfg->rate / 100.0;

	memset(e, 0, sizeof(*e));
	e->cfg = cfg;
	e->src = src;
	e->st = st;
	e->ep = epoll_create1(EPOLL_CLOEXEC);
	if (e->ep < 0)
		return vg_err_sys(err, VG_IO, "epoll_create1");
	e->slots = calloc((size_t)n, sizeof(*e->slots));
	e->free_slots = calloc((size_t)n, sizeof(int));
	e->heap_cap = (size_t)n * 2 + 1024;
	e->heap = calloc(e->heap_cap, sizeof(*e->heap));
	e->pt_cap = 1024;
	e->pt = calloc(e->pt_cap, sizeof(*e->pt));
	if (cfg->banner)
		e->bbuf = malloc((size_t)n * cfg->banner_max);
	e->global = vg_ratelimit_new(cfg->rate, burst < 1 ? 1 : (int)burst,
				     NULL);
	if (!e->slots || !e->free_slots || !e->heap || !e->pt || !e->global ||
	    (cfg->banner && !e->bbuf))
		return vg_err_set(err, VG_NOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		e->slots[i].fd = -1;
		e->slots[i].prev = e->slots[i].next = -1;
		e->free_slots[e->nfree++] = n - 1 - i;
	}
	e->connecting.head = e->connecting.tail = -1;
	e->reading.head = e->reading.tail = -1;
	e->pt_interval = (uint64_t)((double)NS_PER_S / cfg->per_target_rate);
	return VG_OK;
}

static void eng_cleanup(struct eng *e)
{
	if (e->slots)
		for (int i = 0; i < e->cfg->max_in_flight; i++)
			if (e->slots[i].state != SLOT_FREE)
				slot_close(e, i);
	if (e->ep >= 0)
		close(e->ep);
	free(e->slots);
	free(e->free_slots);
	free(e->heap);
	free(e->pt);
	free(e->bbuf);
	vg_ratelimit_free(e->global);
}

/* Milliseconds until something is due, at most MAX_WAIT_MS. */
static int next_wait(struct eng *e, uint64_t now)
{
	uint64_t wait = (uint64_t)MAX_WAIT_MS * NS_PER_MS, t;

	if (e->connecting.head >= 0) {
		t = e->slots[e->connecting.head].start +
		    (uint64_t)e->cfg->connect_timeout_ms * NS_PER_MS;
		wait = t <= now ? 0 : (t - now < wait ? t - now : wait);
	}
	if (e->reading.head >= 0) {
		t = e->slots[e->reading.head].start +
		    (uint64_t)e->cfg->banner_timeout_ms * NS_PER_MS;
		wait = t <= now ? 0 : (t - now < wait ? t - now : wait);
	}
	if (e->nfree > 0 && (e->nheap || !e->gen_done)) {
		int can_gen = !e->gen_done && e->nheap < e->heap_cap;

		t = vg_ratelimit_delay(e->global);
		if (!can_gen && e->nheap && e->heap[0].due > now &&
		    e->heap[0].due - now > t)
			t = e->heap[0].due - now;
		if (e->starved_until > now && e->starved_until - now > t)
			t = e->starved_until - now;
		if (t < wait)
			wait = t;
	}
	if (e->launch_more)
		wait = 0;
	/* round up so a due event has passed when epoll returns */
	return (int)((wait + NS_PER_MS - 1) / NS_PER_MS);
}

int tcp_scan(const struct tcp_config *cfg, const struct tcp_source *src,
	     struct tcp_stats *st, struct vg_err *err)
{
	struct epoll_event evs[512];
	struct eng e;
	uint64_t now, last_tick;
	int rc;

	memset(st, 0, sizeof(*st));
	if ((rc = eng_init(&e, cfg, src, st, err)))
		goto out;
	last_tick = now_ns();
	for (;;) {
		int n;

		if (cfg->stop && atomic_load(cfg->stop)) {
			rc = vg_err_set(err, VG_CANCELED, "scan stopped");
			break;
		}
		now = now_ns();
		expire(&e, now);
		fill(&e, now);
		st->waiting = e.nheap;
		if (e.gen_done && e.nheap == 0 && st->in_flight == 0)
			break;
		if (now - last_tick >= NS_PER_S) {
			last_tick = now;
			if (cfg->on_tick)
				cfg->on_tick(cfg->ctx, st);
		}
		n = epoll_wait(e.ep, evs, 512, next_wait(&e, now));
		if (n < 0 && errno != EINTR) {
			rc = vg_err_sys(err, VG_IO, "epoll_wait");
			break;
		}
		now = now_ns();
		for (int k = 0; k < n; k++)
			handle(&e, &evs[k], now);
	}
out:
	eng_cleanup(&e);
	st->waiting = 0;
	return rc;
}
