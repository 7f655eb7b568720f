/*
 * events_load.c - load client of bench/events.sh: N subscribers of one
 * tenant's live events, a publisher on Redis, and the delivery measured
 * from PUBLISH to receipt.
 *
 *   events_load ws    HOST PORT N EVENTS RATE REDIS_PORT TENANT TOKEN [PID]
 *   events_load redis HOST PORT N EVENTS RATE REDIS_PORT TENANT - [PID]
 *
 * "ws" opens N WebSockets on GET /v1/events of a gateway (HOST:PORT);
 * "redis" opens N subscribers straight on Redis (HOST:PORT), the
 * reference: the same events without the gateway's hop. EVENTS events
 * are published on "{vigil}:events:TENANT", RATE per second (0: as fast
 * as Redis takes them), each carrying its publish time. With PID, the
 * resident memory of that process is read before and after the
 * subscribers connect. Prints one line of key=value results.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKET_US 10
#define NBUCKETS  1000000 /* 10 s */

struct sub {
	int fd;
	char *buf;
	size_t len, cap;
	redisReader *rr; /* redis mode */
	long got;
};

static long long hist[NBUCKETS + 1];
static long long received, lat_max_us;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long rss_kb(const char *pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	if (!pid)
		return -1;
	snprintf(path, sizeof(path), "/proc/%s/status", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

static int dial(const char *host, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	inet_pton(AF_INET, host, &sa.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0) {
			perror("send");
			exit(1);
		}
		p += w;
		n -= (size_t)w;
	}
}

/* Read until the handshake's head is complete; leftover bytes stay. */
static void ws_handshake(struct sub *s, const char *host, const char *token)
{
	char req[1024];
	int n = snprintf(req, sizeof(req),
	                 "GET /v1/events HTTP/1.1\r\nHost: %s\r\n"
	                 "Authorization: Bearer %s\r\nUpgrade: websocket\r\n"
	                 "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
	                 host, token);

	send_all(s->fd, req, (size_t)n);
	for (;;) {
		char *end;
		ssize_t r;

		if (s->cap - s->len < 4096) {
			s->cap = s->cap ? s->cap * 2 : 65536;
			s->buf = realloc(s->buf, s->cap);
		}
		r = read(s->fd, s->buf + s->len, s->cap - s->len - 1);
		if (r <= 0) {
			fprintf(stderr, "handshake: connection closed\n");
			exit(1);
		}
		s->len += (size_t)r;
		s->buf[s->len] = '\0';
		if ((end = strstr(s->buf, "\r\n\r\n"))) {
			size_t hl = (size_t)(end - s->buf) + 4;

			if (strncmp(s->buf, "HTTP/1.1 101", 12) != 0) {
				fprintf(stderr, "handshake: %.*s\n", 40,
				        s->buf);
				exit(1);
			}
			memmove(s->buf, s->buf + hl, s->len - hl);
			s->len -= hl;
			return;
		}
	}
}

static void record(const char *msg, size_t n)
{
	const char *t = memmem(msg, n, "\"t\":", 4);
	int64_t us;

	if (!t)
		return;
	us = (now_ns() - strtoll(t + 4, NULL, 10)) / 1000;
	if (us < 0)
		us = 0;
	if (us > lat_max_us)
		lat_max_us = us;
	hist[us / BUCKET_US < NBUCKETS ? us / BUCKET_US : NBUCKETS]++;
	received++;
}

/* Whole text frames out of s->buf. */
static void ws_frames(struct sub *s)
{
	size_t off = 0;

	for (;;) {
		const unsigned char *p = (const unsigned char *)s->buf + off;
		size_t avail = s->len - off, hl = 2;
		uint64_t n;

		if (avail < 2)
			break;
		n = p[1] & 0x7f;
		if (n == 126) {
			if (avail < 4)
				break;
			n = (uint64_t)p[2] << 8 | p[3];
			hl = 4;
		} else if (n == 127) {
			if (avail < 10)
				break;
			n = 0;
			for (int i = 0; i < 8; i++)
				n = n << 8 | p[2 + i];
			hl = 10;
		}
		if (avail < hl + n)
			break;
		if ((p[0] & 0x0f) == 1) {
			record((const char *)p + hl, (size_t)n);
			s->got++;
		} else if ((p[0] & 0x0f) == 8) {
			fprintf(stderr, "closed by the server\n");
		}
		off += hl + (size_t)n;
	}
	memmove(s->buf, s->buf + off, s->len - off);
	s->len -= off;
}

static void redis_replies(struct sub *s, const char *data, size_t n)
{
	void *r = NULL;

	redisReaderFeed(s->rr, data, n);
	while (redisReaderGetReply(s->rr, &r) == REDIS_OK && r) {
		redisReply *rep = r;

		if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 4 &&
		    strcmp(rep->element[0]->str, "pmessage") == 0) {
			record(rep->element[3]->str, rep->element[3]->len);
			s->got++;
		}
		freeReplyObject(r);
		r = NULL;
	}
}

/* argv number in [lo, hi]; exits with a message otherwise */
static int arg_num(const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "bad number \"%s\" (want %ld..%ld)\n", s, lo,
		        hi);
		exit(2);
	}
	return (int)v;
}

int main(int argc, char **argv)
{
	const char *mode, *host, *tenant, *token, *pid;
	int port, n, events, rate, rport, ep;
	struct sub *subs;
	redisContext *pub;
	char chan[160], pattern[64], pad[161];
	long rss0, rss1, rss2;
	int64_t t0, t1, deadline;
	long long want, cum = 0, p50 = -1, p99 = -1;

	if (argc < 10) {
		fprintf(stderr,
		        "usage: %s ws|redis HOST PORT N EVENTS RATE "
		        "REDIS_PORT TENANT TOKEN|- [PID]\n",
		        argv[0]);
		return 2;
	}
	mode = argv[1];
	host = argv[2];
	port = arg_num(argv[3], 1, 65535);
	n = arg_num(argv[4], 1, 1000000000);
	events = arg_num(argv[5], 1, 1000000000);
	rate = arg_num(argv[6], 0, 1000000000);
	rport = arg_num(argv[7], 1, 65535);
	tenant = argv[8];
	token = argv[9];
	pid = argc > 10 ? argv[10] : NULL;
	subs = calloc((size_t)n, sizeof(*subs));
	ep = epoll_create1(0);
	snprintf(chan, sizeof(chan), "{vigil}:events:%s", tenant);
	snprintf(pattern, sizeof(pattern), "{vigil}:events:*");
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';

	rss0 = rss_kb(pid);
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN,
		                         .data.ptr = &subs[i]};

		subs[i].fd = dial(host, port);
		if (strcmp(mode, "ws") == 0) {
			ws_handshake(&subs[i], host, token);
		} else {
			char cmd[128];
			int m = snprintf(
				cmd, sizeof(cmd),
				"*2\r\n$10\r\nPSUBSCRIBE\r\n$%zu\r\n%s\r\n",
				strlen(pattern), pattern);

			subs[i].rr = redisReaderCreate();
			send_all(subs[i].fd, cmd, (size_t)m);
		}
		epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev);
	}
	usleep(500 * 1000); /* subscriptions in place, RSS settled */
	rss1 = rss_kb(pid);

	pub = redisConnect("127.0.0.1", rport);
	if (!pub || pub->err) {
		fprintf(stderr, "publisher: cannot connect\n");
		return 1;
	}
	{
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

		epoll_ctl(ep, EPOLL_CTL_ADD, pub->fd, &ev);
	}
	want = (long long)n * events;
	t0 = now_ns();
	deadline = 0;
	for (int sent = 0; received < want;) {
		struct epoll_event evs[256];
		int64_t now = now_ns();
		int k;

		/* publish what is due: paced, or in batches of 64 */
		while (sent < events &&
		       (rate <= 0 ? 1
		                  : now - t0 >= (int64_t)sent * 1000000000 /
		                                        rate)) {
			char msg[512];
			int m = snprintf(
				msg, sizeof(msg),
				"{\"type\":\"bench\",\"tenant_id\":\"%s\","
				"\"seq\":%d,\"t\":%lld,\"pad\":\"%s\"}",
				tenant, sent, (long long)now_ns(), pad);

			redisAppendCommand(pub, "PUBLISH %s %b", chan, msg,
			                   (size_t)m);
			sent++;
			if (rate <= 0 && sent % 64 == 0)
				break;
		}
		/* read the PUBLISH replies without waiting on them */
		{
			int done = 0;
			void *r = NULL;

			while (!done)
				if (redisBufferWrite(pub, &done) != REDIS_OK)
					return 1;
			(void)r;
		}
		if (sent == events && !deadline)
			deadline = now_ns() + 60LL * 1000000000;
		if (deadline && now_ns() > deadline)
			break;
		k = epoll_wait(ep, evs, 256,
		               rate > 0 || sent == events ? 1 : 0);
		for (int i = 0; i < k; i++) {
			struct sub *s = evs[i].data.ptr;
			char buf[65536];
			ssize_t r;

			if (!s) {
				/* the PUBLISH replies: read, so that Redis's
				 * output buffer for us stays small */
				void *rep = NULL;

				if (redisBufferRead(pub) != REDIS_OK)
					return 1;
				while (redisGetReplyFromReader(pub, &rep) ==
				               REDIS_OK &&
				       rep) {
					freeReplyObject(rep);
					rep = NULL;
				}
				continue;
			}
			r = read(s->fd, buf, sizeof(buf));

			if (r <= 0) {
				epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
				continue;
			}
			if (s->rr) {
				redis_replies(s, buf, (size_t)r);
				continue;
			}
			if (s->cap - s->len < (size_t)r + 1) {
				s->cap = s->len + (size_t)r + 65536;
				s->buf = realloc(s->buf, s->cap);
			}
			memcpy(s->buf + s->len, buf, (size_t)r);
			s->len += (size_t)r;
			ws_frames(s);
		}
	}
	t1 = now_ns();
	rss2 = rss_kb(pid);
	for (int i = 0; i <= NBUCKETS; i++) {
		cum += hist[i];
		if (p50 < 0 && cum * 2 >= received)
			p50 = i;
		if (p99 < 0 && cum * 100 >= received * 99)
			p99 = i;
	}
	printf("mode=%s conns=%d events=%d rate=%d delivered=%lld of %lld "
	       "secs=%.3f msgs_per_s=%.0f p50_ms=%.2f p99_ms=%.2f "
	       "max_ms=%.2f rss_kb_before=%ld rss_kb_connected=%ld "
	       "rss_kb_after=%ld\n",
	       mode, n, events, rate, received, want, (t1 - t0) / 1e9,
	       received / ((t1 - t0) / 1e9), p50 * BUCKET_US / 1000.0,
	       p99 * BUCKET_US / 1000.0, lat_max_us / 1000.0, rss0, rss1, rss2);
	for (int i = 0; i < n; i++) {
		close(subs[i].fd);
		free(subs[i].buf);
		if (subs[i].rr)
			redisReaderFree(subs[i].rr);
	}
	free(subs);
	redisFree(pub);
	return received == want ? 0 : 1;
}
