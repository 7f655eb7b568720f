/*
 * events_lws.c - the other design bench/events.sh measures: the same
 * fan-out of Redis pub/sub to WebSockets, served by libwebsockets
 * (Debian's libwebsockets-dev) on its own port and service thread.
 *
 *   events_lws PORT REDIS_PORT
 *
 * A subscriber thread (hiredis, PSUBSCRIBE "{vigil}:events:*") puts each
 * message in a ring and wakes the service thread (lws_cancel_service);
 * every connection then writes what it has not sent yet, one frame per
 * writable callback as lws requires. A connection that falls a whole ring
 * behind is closed, as the gateway closes a slow consumer. No
 * authentication and no tenant lookup: this is the transport alone, the
 * most favourable case for it.
 */
#include <hiredis/hiredis.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING    8192
#define MSG_MAX 2048

struct msg {
	size_t len;
	unsigned char data[LWS_PRE + MSG_MAX];
};

static struct msg ring[RING];
static unsigned long long head; /* messages ever put in the ring */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct lws_context *ctx;
static volatile sig_atomic_t stop;
static int redis_port;

struct pss {
	unsigned long long next;
};

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
	struct pss *p = user;
	unsigned char buf[LWS_PRE + MSG_MAX];
	size_t n;

	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		pthread_mutex_lock(&mu);
		p->next = head;
		pthread_mutex_unlock(&mu);
		break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		lws_callback_on_writable_all_protocol(
			ctx,
			lws_get_protocol(wsi)
				? lws_get_protocol(wsi)
				: lws_vhost_name_to_protocol(
					  lws_get_vhost_by_name(ctx, "default"),
					  "events"));
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		pthread_mutex_lock(&mu);
		if (p->next == head) {
			pthread_mutex_unlock(&mu);
			break;
		}
		if (head - p->next > RING) {
			pthread_mutex_unlock(&mu);
			return -1; /* too slow: closed */
		}
		n = ring[p->next % RING].len;
		memcpy(buf + LWS_PRE, ring[p->next % RING].data + LWS_PRE, n);
		p->next++;
		pthread_mutex_unlock(&mu);
		if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
			return -1;
		lws_callback_on_writable(wsi);
		break;
	default:
		break;
	}
	return 0;
}

static struct lws_protocols protocols[] = {
	{"events", callback, sizeof(struct pss), MSG_MAX, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *subscriber(void *arg)
{
	redisContext *c = redisConnect("127.0.0.1", redis_port);
	redisReply *r;

	(void)arg;
	if (!c || c->err) {
		fprintf(stderr, "events_lws: redis\n");
		exit(1);
	}
	freeReplyObject(redisCommand(c, "PSUBSCRIBE {vigil}:events:*"));
	while (!stop && redisGetReply(c, (void **)&r) == REDIS_OK) {
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
		    r->element[3]->len <= MSG_MAX) {
			pthread_mutex_lock(&mu);
			ring[head % RING].len = r->element[3]->len;
			memcpy(ring[head % RING].data + LWS_PRE,
			       r->element[3]->str, r->element[3]->len);
			head++;
			pthread_mutex_unlock(&mu);
			lws_cancel_service(ctx);
		}
		freeReplyObject(r);
	}
	redisFree(c);
	return NULL;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
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
	struct lws_context_creation_info info;
	pthread_t th;

	if (argc < 3) {
		fprintf(stderr, "usage: %s PORT REDIS_PORT\n", argv[0]);
		return 2;
	}
	redis_port = arg_num(argv[2], 1, 65535);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = arg_num(argv[1], 1, 65535);
	info.iface = "127.0.0.1";
	info.protocols = protocols;
	ctx = lws_create_context(&info);
	if (!ctx)
		return 1;
	pthread_create(&th, NULL, subscriber, NULL);
	while (!stop)
		lws_service(ctx, 0);
	lws_context_destroy(ctx);
	return 0;
}
