/* spool.c - batches on disk, written atomically, resent in order. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p */
static int make_dirs(const char *dir, struct vg_err *err)
{
	char path[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path))
		return vg_err_set(err, VG_INVAL, "spool directory \"%s\" is "
				  "not a usable path", dir);
	memcpy(path, dir, n + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) && errno != EEXIST)
			return vg_err_sys(err, VG_IO, "mkdir %s", path);
		*p = '/';
	}
	if (mkdir(path, 0700) && errno != EEXIST)
		return vg_err_sys(err, VG_IO, "mkdir %s", path);
	return VG_OK;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Write `path` atomically through "<path>.tmp". */
static int write_atomic(const char *dir, const char *path, const char *data,
			size_t len, struct vg_err *err)
{
	char tmp[PATH_MAX];
	size_t off = 0;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return vg_err_set(err, VG_INVAL, "path too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return vg_err_sys(err, VG_IO, "create %s", tmp);
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			vg_err_sys(err, VG_IO, "write %s", tmp);
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd)) {
		vg_err_sys(err, VG_IO, "fsync %s", tmp);
		goto fail;
	}
	close(fd);
	if (rename(tmp, path)) {
		vg_err_sys(err, VG_IO, "rename %s", tmp);
		unlink(tmp);
		return err ? err->code : VG_IO;
	}
	if (fsync_dir(dir))
		return vg_err_sys(err, VG_IO, "fsync %s", dir);
	return VG_OK;
fail:
	close(fd);
	unlink(tmp);
	return err ? err->code : VG_IO;
}

/* The sequence number of file `name` with `suffix`, or -1. */
static int64_t seq_of(const struct spool *sp, const char *name,
		      const char *suffix)
{
	size_t pl = strlen(sp->prefix), n = strlen(name), sl = strlen(suffix);
	const char *d;
	char *end;
	unsigned long long v;

	if (n <= pl + sl || strncmp(name, sp->prefix, pl) != 0 ||
	    strcmp(name + n - sl, suffix) != 0)
		return -1;
	d = name + pl;
	if (*d < '0' || *d > '9' || (*d == '0' && d + 1 != name + n - sl))
		return -1;
	errno = 0;
	v = strtoull(d, &end, 10);
	if (errno || end != name + n - sl || v > INT64_MAX)
		return -1;
	return (int64_t)v;
}

/* Call fn for every file of ours with `suffix`. */
static int scan_dir(const struct spool *sp, const char *suffix,
		    void (*fn)(void *ctx, uint64_t seq), void *ctx,
		    struct vg_err *err)
{
	DIR *d = opendir(sp->dir);
	struct dirent *e;

	if (!d)
		return vg_err_sys(err, VG_IO, "open %s", sp->dir);
	while ((e = readdir(d))) {
		int64_t s = seq_of(sp, e->d_name, suffix);

		if (s >= 0)
			fn(ctx, (uint64_t)s);
	}
	closedir(d);
	return VG_OK;
}

static void track_max(void *ctx, uint64_t seq)
{
	uint64_t *next = ctx;

	if (seq + 1 > *next)
		*next = seq + 1;
}

int spool_open(struct spool *sp, const char *dir, const char *job,
	       unsigned shard, struct vg_err *err)
{
	char buf[64];
	FILE *f;
	int rc;

	memset(sp, 0, sizeof(*sp));
	if ((rc = make_dirs(dir, err)))
		return rc;
	sp->dir = strdup(dir);
	if (asprintf(&sp->prefix, "%s-%u-", job, shard) < 0)
		sp->prefix = NULL;
	if (asprintf(&sp->seqfile, "%s/%s-%u.seq", dir, job, shard) < 0)
		sp->seqfile = NULL;
	if (!sp->dir || !sp->prefix || !sp->seqfile) {
		spool_close(sp);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	f = fopen(sp->seqfile, "re");
	if (f) {
		if (fgets(buf, sizeof(buf), f)) {
			char *end;
			unsigned long long v = strtoull(buf, &end, 10);

			if (end != buf && v < INT64_MAX)
				sp->next = v;
		}
		fclose(f);
	}
	if ((rc = scan_dir(sp, ".json", track_max, &sp->next, err)) ||
	    (rc = scan_dir(sp, ".rejected", track_max, &sp->next, err))) {
		spool_close(sp);
		return rc;
	}
	return VG_OK;
}

void spool_close(struct spool *sp)
{
	free(sp->dir);
	free(sp->prefix);
	free(sp->seqfile);
	memset(sp, 0, sizeof(*sp));
}

const char *spool_batch_id(const struct spool *sp, uint64_t seq, char *buf,
			   size_t n)
{
	snprintf(buf, n, "%s%" PRIu64, sp->prefix, seq);
	return buf;
}

int spool_take_seq(struct spool *sp, uint64_t *seq, struct vg_err *err)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", sp->next + 1);
	int rc = write_atomic(sp->dir, sp->seqfile, buf, (size_t)n, err);

	if (rc)
		return rc;
	*seq = sp->next++;
	return VG_OK;
}

static int path_of(const struct spool *sp, uint64_t seq, const char *suffix,
		   char *buf, size_t n)
{
	int k = snprintf(buf, n, "%s/%s%" PRIu64 "%s", sp->dir, sp->prefix, seq,
			 suffix);

	return k < 0 || (size_t)k >= n ? -1 : 0;
}

int spool_put(struct spool *sp, uint64_t seq, const char *data, size_t len,
	      struct vg_err *err)
{
	char path[PATH_MAX];

	if (path_of(sp, seq, ".json", path, sizeof(path)))
		return vg_err_set(err, VG_INVAL, "spool path too long");
	return write_atomic(sp->dir, path, data, len, err);
}

struct seqlist {
	uint64_t *v;
	size_t n, cap;
	int nomem;
};

static void collect(void *ctx, uint64_t seq)
{
	struct seqlist *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		uint64_t *p = realloc(l->v, cap * sizeof(*p));

		if (!p) {
			l->nomem = 1;
			return;
		}
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = seq;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int spool_pending(const struct spool *sp, uint64_t **seqs, size_t *n,
		  struct vg_err *err)
{
	struct seqlist l = {0};
	int rc = scan_dir(sp, ".json", collect, &l, err);

	if (!rc && l.nomem)
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	if (rc) {
		free(l.v);
		return rc;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), u64_cmp);
	*seqs = l.v;
	*n = l.n;
	return VG_OK;
}

size_t spool_rejected(const struct spool *sp)
{
	struct seqlist l = {0};

	scan_dir(sp, ".rejected", collect, &l, NULL);
	free(l.v);
	return l.n;
}

int spool_load(const struct spool *sp, uint64_t seq, struct vg_buf *out,
	       struct vg_err *err)
{
	char path[PATH_MAX], chunk[65536];
	int fd, rc = VG_OK;
	ssize_t r;

	if (path_of(sp, seq, ".json", path, sizeof(path)))
		return vg_err_set(err, VG_INVAL, "spool path too long");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vg_err_sys(err, errno == ENOENT ? VG_NOTFOUND : VG_IO,
				  "open %s", path);
	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = vg_err_sys(err, VG_IO, "read %s", path);
			break;
		}
		if ((rc = vg_buf_append(out, chunk, (size_t)r))) {
			vg_err_set(err, rc, "read %s: %s", path,
				   vg_strerror(rc));
			break;
		}
	}
	close(fd);
	return rc;
}

int spool_done(const struct spool *sp, uint64_t seq, struct vg_err *err)
{
	char path[PATH_MAX];

	if (path_of(sp, seq, ".json", path, sizeof(path)))
		return vg_err_set(err, VG_INVAL, "spool path too long");
	if (unlink(path) && errno != ENOENT)
		return vg_err_sys(err, VG_IO, "unlink %s", path);
	return VG_OK;
}

int spool_reject(const struct spool *sp, uint64_t seq, struct vg_err *err)
{
	char from[PATH_MAX], to[PATH_MAX];

	if (path_of(sp, seq, ".json", from, sizeof(from)) ||
	    path_of(sp, seq, ".rejected", to, sizeof(to)))
		return vg_err_set(err, VG_INVAL, "spool path too long");
	if (rename(from, to))
		return vg_err_sys(err, VG_IO, "rename %s", from);
	fsync_dir(sp->dir);
	return VG_OK;
}
