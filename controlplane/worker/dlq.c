/* dlq.c - the dead-letter subcommands: a table of name, handler, usage. */
#include "dlq.h"

#include "vigil/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct dlq_args {
	const char *type;
	long limit;
	int all;
	char **ids;
	int nids;
};

struct dlq_cmd {
	const char *name;
	int (*run)(struct vg_queue *q, const struct dlq_args *a, FILE *out,
	           FILE *errf);
	const char *usage;
};

/* --- list ------------------------------------------------------------- */

static json_t *dead_json(const struct vg_dead *d)
{
	const struct vg_task *t = d->task;

	if (!t)
		return json_pack("{s:s,s:s,s:I,s:s%}", "id", d->id, "error",
		                 d->error, "dead_at", (json_int_t)d->dead_ms,
		                 "raw", d->raw, d->raw_len);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:I,s:I,s:s,s:O}",
	                 "id", d->id, "task_id", t->id, "type", t->type,
	                 "tenant", t->tenant, "request_id", t->request_id,
	                 "attempts", t->attempts, "enqueued_at",
	                 (json_int_t)t->enqueued_ms, "first_attempt_at",
	                 (json_int_t)t->first_attempt_ms, "last_attempt_at",
	                 (json_int_t)t->last_attempt_ms, "dead_at",
	                 (json_int_t)d->dead_ms, "error", d->error, "payload",
	                 (json_t *)t->payload);
}

static int print_dead(const struct vg_dead *d, void *arg)
{
	json_t *j = dead_json(d);
	struct vg_buf b;

	vg_buf_init(&b, 0);
	if (j && vg_json_dumps(j, JSON_COMPACT, &b) == VG_OK)
		fprintf(arg, "%s\n", b.data);
	vg_buf_cleanup(&b);
	json_decref(j);
	return 0;
}

static int cmd_list(struct vg_queue *q, const struct dlq_args *a, FILE *out,
                    FILE *errf)
{
	struct vg_err err = {0};

	if (a->nids || a->all) {
		fprintf(errf, "dlq list takes no ids and no --all\n");
		return 2;
	}
	if (vg_queue_dlq_list(q, a->type, (size_t)a->limit, print_dead, out,
	                      &err) != VG_OK) {
		fprintf(errf, "dlq list: %s\n", err.msg);
		return 1;
	}
	return 0;
}

/* --- replay and purge ------------------------------------------------- */

struct idlist {
	char **ids;
	size_t n, cap;
	int nomem;
};

static int collect_id(const struct vg_dead *d, void *arg)
{
	struct idlist *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **p = realloc(l->ids, cap * sizeof(*p));

		if (!p) {
			l->nomem = 1;
			return 1;
		}
		l->ids = p;
		l->cap = cap;
	}
	if (!(l->ids[l->n] = strdup(d->id))) {
		l->nomem = 1;
		return 1;
	}
	l->n++;
	return 0;
}

typedef int (*id_fn)(struct vg_queue *q, const char *id, struct vg_err *err);

/* Apply `fn` to the named ids, or to every (matching) dead letter. */
static int each(struct vg_queue *q, const struct dlq_args *a, id_fn fn,
                const char *verb, FILE *out, FILE *errf)
{
	struct idlist l = {0};
	struct vg_err err = {0};
	size_t done = 0, failed = 0;

	if (a->all == (a->nids > 0)) {
		fprintf(errf, "dlq %s: give dead-letter ids or --all\n", verb);
		return 2;
	}
	if (a->all) {
		if (vg_queue_dlq_list(q, a->type, 0, collect_id, &l, &err) !=
		            VG_OK ||
		    l.nomem) {
			fprintf(errf, "dlq %s: %s\n", verb,
			        l.nomem ? "out of memory" : err.msg);
			failed = 1;
		}
	}
	for (size_t i = 0; !failed && i < (a->all ? l.n : (size_t)a->nids);
	     i++) {
		const char *id = a->all ? l.ids[i] : a->ids[i];

		if (fn(q, id, &err) == VG_OK)
			done++;
		else {
			fprintf(errf, "dlq %s %s: %s\n", verb, id, err.msg);
			failed++;
		}
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.ids[i]);
	free(l.ids);
	fprintf(out, "%s %zu dead letter(s)\n",
	        strcmp(verb, "replay") == 0 ? "replayed" : "purged", done);
	return failed ? 1 : 0;
}

static int cmd_replay(struct vg_queue *q, const struct dlq_args *a, FILE *out,
                      FILE *errf)
{
	return each(q, a, vg_queue_dlq_replay, "replay", out, errf);
}

static int cmd_purge(struct vg_queue *q, const struct dlq_args *a, FILE *out,
                     FILE *errf)
{
	struct vg_err err = {0};
	long long n = 0;

	if (a->all && !a->type && !a->nids) {
		/* everything: one command */
		if (vg_queue_dlq_purge(q, &n, &err) != VG_OK) {
			fprintf(errf, "dlq purge: %s\n", err.msg);
			return 1;
		}
		fprintf(out, "purged %lld dead letter(s)\n", n);
		return 0;
	}
	return each(q, a, vg_queue_dlq_delete, "purge", out, errf);
}

static const struct dlq_cmd cmds[] = {
	{"list", cmd_list, "dlq list [--type T] [--limit N]"},
	{"replay", cmd_replay, "dlq replay (ID... | --all [--type T])"},
	{"purge", cmd_purge, "dlq purge (ID... | --all [--type T])"},
};

static int usage(FILE *errf)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(errf, "usage: vigil-worker %s\n", cmds[i].usage);
	return 2;
}

int dlq_main(struct vg_queue *q, int argc, char **argv, FILE *out, FILE *errf)
{
	struct dlq_args a = {0};
	const struct dlq_cmd *cmd = NULL;
	int rc;

	if (argc < 1)
		return usage(errf);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[0], cmds[i].name) == 0)
			cmd = &cmds[i];
	if (!cmd)
		return usage(errf);
	a.ids = calloc((size_t)argc, sizeof(*a.ids));
	if (!a.ids)
		return 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0) {
			a.all = 1;
		} else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
			a.type = argv[++i];
		} else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
			char *end;

			errno = 0;
			a.limit = strtol(argv[++i], &end, 10);
			if (errno || *end || a.limit < 0) {
				free(a.ids);
				return usage(errf);
			}
		} else if (strncmp(argv[i], "--", 2) == 0) {
			fprintf(errf, "dlq %s: unknown flag %s\n", cmd->name,
			        argv[i]);
			free(a.ids);
			return 2;
		} else {
			a.ids[a.nids++] = argv[i];
		}
	}
	rc = cmd->run(q, &a, out, errf);
	free(a.ids);
	return rc;
}
