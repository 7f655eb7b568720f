/* service.c - the pool that runs TLS and HTTP checks on open ports, and
 * what those checks share. */
#include "service.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vigil/timeutil.h"

#define SLICE_MS 100 /* the stop flag is checked this often */

int svc_stopped(const struct svc_ctx *c)
{
	return c->stop && atomic_load(c->stop);
}

void svc_emit(const struct svc_ctx *c, const struct svc_target *t,
	      const char *scanner, const char *check, enum severity sev,
	      const char *title, json_t *evidence)
{
	char host[VG_ADDR_STRLEN];
	json_t *f;

	if (!evidence)
		evidence = json_object();
	if (evidence && t->hostname)
		json_object_set_new(evidence, "hostname",
				    json_string(t->hostname));
	vg_addr_str(&t->addr, host, sizeof(host));
	f = finding_new(scanner, check, host, t->port, sev, title, evidence);
	if (f)
		c->emit(c->ctx, f);
}

int svc_connect(const struct svc_target *t, const struct svc_ctx *c)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int64_t deadline = vg_mono_ms() + c->timeout_ms;
	int fd, soerr = 0;
	socklen_t sl = sizeof(soerr);

	memset(&ss, 0, sizeof(ss));
	if (t->addr.family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)t->port);
		memcpy(&s4->sin_addr, t->addr.b, 4);
		len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)t->port);
		memcpy(&s6->sin6_addr, t->addr.b, 16);
		len = sizeof(*s6);
	}
	fd = socket(t->addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, len) == 0)
		return fd;
	if (errno != EINPROGRESS)
		goto fail;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int64_t left = deadline - vg_mono_ms();
		int r;

		if (left <= 0 || svc_stopped(c))
			goto fail;
		r = poll(&p, 1, left < SLICE_MS ? (int)left : SLICE_MS);
		if (r < 0 && errno != EINTR)
			goto fail;
		if (r > 0)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

struct pool {
	const struct svc_target *t;
	size_t n;
	unsigned which;
	const struct svc_ctx *c;
	atomic_size_t next;
};

static void check_one(const struct pool *p, const struct svc_target *t)
{
	int tls = 0;

	if (p->which & SVC_TLS)
		tls = tls_check(t, p->c);
	if (!(p->which & SVC_HTTP) || svc_stopped(p->c))
		return;
	if (tls) {
		http_check(t, p->c, 1);
		return;
	}
	/* not known to speak TLS: plain HTTP first, then HTTPS unless the
	 * TLS check already found no TLS there */
	if (!http_check(t, p->c, 0) && !(p->which & SVC_TLS) &&
	    !svc_stopped(p->c))
		http_check(t, p->c, 1);
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	size_t i;

	while (!svc_stopped(p->c) && (i = atomic_fetch_add(&p->next, 1)) < p->n)
		check_one(p, &p->t[i]);
	return NULL;
}

int svc_run(const struct svc_target *t, size_t n, unsigned which,
	    int workers, const struct svc_ctx *c)
{
	struct pool p = {.t = t, .n = n, .which = which, .c = c};
	pthread_t *th;
	int started = 0;

	atomic_init(&p.next, 0);
	if (n == 0 || !which)
		return VG_OK;
	if ((size_t)workers > n)
		workers = (int)n;
	th = calloc((size_t)workers, sizeof(*th));
	if (!th)
		return VG_NOMEM;
	for (int i = 0; i < workers; i++)
		if (pthread_create(&th[i], NULL, worker, &p) == 0)
			started++;
		else
			break;
	if (started == 0)
		worker(&p);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
	return svc_stopped(c) ? VG_CANCELED : VG_OK;
}
