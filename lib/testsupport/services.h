/*
 * services.h - real PostgreSQL and Redis servers for tests.
 *
 * Each server runs as a child process on a free 127.0.0.1 port with its data
 * in a fresh temporary directory, and is stopped by PID. Linked into every
 * test binary (not into libvigil). PostgreSQL refuses to run as root, so
 * when the tests run as root the server runs as the `postgres` account.
 */
#ifndef VG_TS_SERVICES_H
#define VG_TS_SERVICES_H

#include <limits.h>
#include <sys/types.h>

enum vg_ts_kind {
	VG_TS_POSTGRES,
	VG_TS_REDIS,
};

struct vg_ts_service {
	enum vg_ts_kind kind;
	char dir[PATH_MAX]; /* data directory (temporary, removed at cleanup) */
	char log[PATH_MAX]; /* server log file */
	int port;
	pid_t pid;	  /* 0 while stopped */
	int redis_aof;	  /* Redis: appendonly yes, appendfsync always */
};

/* A TCP port on 127.0.0.1 nobody listens on right now, or -1. */
int vg_ts_free_port(void);

/* initdb into a temporary directory and start PostgreSQL 15 (trust auth for
 * the superuser `postgres`). Returns 0 once it accepts connections. */
int vg_ts_pg_start(struct vg_ts_service *s);
/* libpq connection string for database `db` as user `user` (borrowed
 * buffer of the caller). */
const char *vg_ts_pg_conninfo(const struct vg_ts_service *s, const char *user,
			      const char *db, char *out, size_t n);

/* Start redis-server in a temporary directory; `aof` turns on appendonly
 * with fsync on every write. Returns 0 once it answers PING. */
int vg_ts_redis_start(struct vg_ts_service *s, int aof);

/* Stop with SIGTERM (SIGKILL after 10 s), keeping the data directory. */
int vg_ts_stop(struct vg_ts_service *s);
/* SIGKILL at once, keeping the data directory (crash tests). */
int vg_ts_kill9(struct vg_ts_service *s);
/* Start again on the same port and data directory after a stop or kill. */
int vg_ts_restart(struct vg_ts_service *s);
/* Stop if running and remove the data directory. */
void vg_ts_cleanup(struct vg_ts_service *s);

/* Wait until the server answers (PostgreSQL: PQping; Redis: PING). */
int vg_ts_wait_ready(const struct vg_ts_service *s, int timeout_ms);

#endif
