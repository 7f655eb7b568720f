/* services.c - start and stop real PostgreSQL and Redis servers for tests. */
#include "testsupport/services.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG_BIN "/usr/lib/postgresql/15/bin"

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int vg_ts_free_port(void)
{
	struct sockaddr_in sa = { 0 };
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* The account PostgreSQL runs as when we are root; NULL otherwise. */
static const struct passwd *pg_account(void)
{
	return geteuid() == 0 ? getpwnam("postgres") : NULL;
}

/* fork+exec argv with stdout/stderr to `log`; `drop` switches user first.
 * Returns the child's PID or -1. */
static pid_t spawn(const char *const argv[], const char *log,
		   const struct passwd *drop)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0) {
		dup2(fd, 0);
		close(fd);
	}
	if (drop && (setgid(drop->pw_gid) != 0 || setuid(drop->pw_uid) != 0))
		_exit(126);
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

static int run_wait(const char *const argv[], const char *log,
		    const struct passwd *drop)
{
	int status;
	pid_t pid = spawn(argv, log, drop);

	if (pid < 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int make_tmpdir(struct vg_ts_service *s, const char *tag)
{
	const char *base = getenv("TMPDIR");

	int n = snprintf(s->dir, sizeof(s->dir), "%s/vigil-%s-XXXXXX",
			 base && *base ? base : "/tmp", tag);

	if (n < 0 || (size_t)n + 4 >= sizeof(s->log) || !mkdtemp(s->dir))
		return -1;
	memcpy(s->log, s->dir, (size_t)n);
	memcpy(s->log + n, ".log", 5);
	return 0;
}

static pid_t launch(struct vg_ts_service *s)
{
	char port[16], sock[PATH_MAX + 32], data[PATH_MAX + 8];

	snprintf(port, sizeof(port), "%d", s->port);
	if (s->kind == VG_TS_POSTGRES) {
		snprintf(data, sizeof(data), "%s/data", s->dir);
		snprintf(sock, sizeof(sock), "unix_socket_directories=%s",
			 s->dir);
		const char *argv[] = { PG_BIN "/postgres", "-D", data, "-p", port,
				 "-c", "listen_addresses=127.0.0.1",
				 "-c", sock,
				 "-c", "fsync=off",
				 "-c", "synchronous_commit=off",
				 "-c", "full_page_writes=off",
				 "-c", "max_connections=200",
				 NULL };
		return spawn(argv, s->log, pg_account());
	}
	const char *argv[] = { "/usr/bin/redis-server", "--port", port,
			 "--bind", "127.0.0.1", "--dir", s->dir,
			 "--save", "", "--protected-mode", "no",
			 "--appendonly", s->redis_aof ? "yes" : "no",
			 "--appendfsync", "always",
			 NULL };
	return spawn(argv, s->log, NULL);
}

int vg_ts_wait_ready(const struct vg_ts_service *s, int timeout_ms)
{
	char ci[256];

	for (int waited = 0; waited < timeout_ms; waited += 50) {
		if (s->pid > 0 && waitpid(s->pid, NULL, WNOHANG) == s->pid)
			return -1; /* exited during start-up: see the log */
		if (s->kind == VG_TS_POSTGRES) {
			vg_ts_pg_conninfo(s, "postgres", "postgres", ci,
					  sizeof(ci));
			if (PQping(ci) == PQPING_OK)
				return 0;
		} else {
			struct timeval tv = { 1, 0 };
			redisContext *c = redisConnectWithTimeout("127.0.0.1",
								   s->port, tv);
			int ok = 0;

			if (c && !c->err) {
				redisReply *r = redisCommand(c, "PING");

				/* still loading the AOF answers -LOADING */
				ok = r && r->type == REDIS_REPLY_STATUS;
				freeReplyObject(r);
			}
			redisFree(c);
			if (ok)
				return 0;
		}
		sleep_ms(50);
	}
	return -1;
}

const char *vg_ts_pg_conninfo(const struct vg_ts_service *s, const char *user,
			      const char *db, char *out, size_t n)
{
	snprintf(out, n,
		 "host=127.0.0.1 port=%d user=%s dbname=%s connect_timeout=5",
		 s->port, user, db);
	return out;
}

int vg_ts_pg_start(struct vg_ts_service *s)
{
	const struct passwd *pw = pg_account();
	char data[PATH_MAX + 8];

	memset(s, 0, sizeof(*s));
	s->kind = VG_TS_POSTGRES;
	if (make_tmpdir(s, "pg") < 0)
		return -1;
	if (pw && (chown(s->dir, pw->pw_uid, pw->pw_gid) != 0 ||
		   (close(open(s->log, O_WRONLY | O_CREAT, 0644)),
		    chown(s->log, pw->pw_uid, pw->pw_gid) != 0)))
		return -1;
	snprintf(data, sizeof(data), "%s/data", s->dir);
	const char *initdb[] = { PG_BIN "/initdb", "-D", data, "-U", "postgres",
			   "-A", "trust", "-E", "UTF8", "--no-sync",
			   "--locale=C", NULL };
	if (run_wait(initdb, s->log, pw) != 0)
		return -1;
	s->port = vg_ts_free_port();
	if (s->port < 0)
		return -1;
	s->pid = launch(s);
	if (s->pid < 0 || vg_ts_wait_ready(s, 30000) != 0) {
		vg_ts_stop(s);
		return -1;
	}
	return 0;
}

int vg_ts_redis_start(struct vg_ts_service *s, int aof)
{
	memset(s, 0, sizeof(*s));
	s->kind = VG_TS_REDIS;
	s->redis_aof = aof;
	if (make_tmpdir(s, "redis") < 0)
		return -1;
	s->port = vg_ts_free_port();
	if (s->port < 0)
		return -1;
	s->pid = launch(s);
	if (s->pid < 0 || vg_ts_wait_ready(s, 15000) != 0) {
		vg_ts_stop(s);
		return -1;
	}
	return 0;
}

static int stop_with(struct vg_ts_service *s, int sig, int grace_ms)
{
	if (s->pid <= 0)
		return 0;
	kill(s->pid, sig);
	for (int waited = 0;; waited += 20) {
		pid_t r = waitpid(s->pid, NULL, WNOHANG);

		if (r == s->pid || (r < 0 && errno == ECHILD))
			break;
		if (waited >= grace_ms) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, NULL, 0);
			break;
		}
		sleep_ms(20);
	}
	s->pid = 0;
	return 0;
}

int vg_ts_stop(struct vg_ts_service *s)
{
	/* PostgreSQL: SIGINT is the "fast" shutdown (no waiting for clients) */
	return stop_with(s, s->kind == VG_TS_POSTGRES ? SIGINT : SIGTERM,
			 10000);
}

int vg_ts_kill9(struct vg_ts_service *s)
{
	return stop_with(s, SIGKILL, 10000);
}

int vg_ts_restart(struct vg_ts_service *s)
{
	if (s->pid > 0)
		vg_ts_stop(s);
	s->pid = launch(s);
	if (s->pid < 0)
		return -1;
	return vg_ts_wait_ready(s, 30000);
}

static int rm_rf(const char *path)
{
	const char *argv[] = { "/bin/rm", "-rf", path, NULL };

	return run_wait(argv, "/dev/null", NULL);
}

void vg_ts_cleanup(struct vg_ts_service *s)
{
	vg_ts_stop(s);
	if (s->dir[0]) {
		rm_rf(s->dir);
		unlink(s->log);
		s->dir[0] = '\0';
	}
}
