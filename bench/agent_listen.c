/* agent_listen.c - bench/agent.sh's target: listening sockets on `naddr`
 * loopback addresses (<prefix>1, <prefix>2, ...) times `nports` ports
 * from `base`. Mode "close" accepts and closes every connection; mode
 * "hold" never accepts (the connection stays established in the accept
 * queue, so a scanner waiting for a banner keeps it in flight).
 *
 *   agent_listen 127.0.1. 10 20001 1000 close
 *
 * Prints "ready <sockets>" once listening; runs until SIGTERM. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t done;

static void on_term(int sig)
{
	(void)sig;
	done = 1;
}

/* argv number in [lo, hi], or -1 */
static int number(const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	return errno || end == s || *end || v < lo || v > hi ? -1 : (int)v;
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	struct epoll_event evs[256];
	int naddr, base, nports, hold, ep, n = 0;

	if (argc != 6) {
		fprintf(stderr, "usage: %s PREFIX NADDR BASE NPORTS close|hold\n",
			argv[0]);
		return 2;
	}
	naddr = number(argv[2], 1, 250);
	base = number(argv[3], 1, 65535);
	nports = number(argv[4], 1, 65535);
	if (naddr < 0 || base < 0 || nports < 0 || base + nports - 1 > 65535) {
		fprintf(stderr, "%s: NADDR 1-250, BASE and NPORTS within "
				"1-65535\n",
			argv[0]);
		return 2;
	}
	hold = strcmp(argv[5], "hold") == 0;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	ep = epoll_create1(0);
	for (int a = 1; a <= naddr; a++) {
		char addr[64];

		snprintf(addr, sizeof(addr), "%s%d", argv[1], a);
		for (int p = base; p < base + nports; p++) {
			struct sockaddr_in sin = {.sin_family = AF_INET,
						  .sin_port = htons((uint16_t)p)};
			struct epoll_event ev = {.events = EPOLLIN};
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;

			inet_pton(AF_INET, addr, &sin.sin_addr);
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) ||
			    listen(fd, 64)) {
				fprintf(stderr, "listen %s:%d: %s\n", addr, p,
					strerror(errno));
				return 1;
			}
			ev.data.fd = fd;
			if (!hold)
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			n++;
		}
	}
	printf("ready %d\n", n);
	fflush(stdout);
	while (!done) {
		int k = epoll_wait(ep, evs, 256, 200);

		for (int i = 0; i < k; i++) {
			int c;

			while ((c = accept4(evs[i].data.fd, NULL, NULL, 0)) >= 0)
				close(c);
		}
	}
	return 0;
}
