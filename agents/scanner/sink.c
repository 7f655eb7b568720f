/* sink.c - findings to the output file and to spooled batches. */
#include "sink.h"

#include <stdlib.h>
#include <string.h>

#include "vigil/buf.h"
#include "vigil/json.h"
#include "vigil/log.h"

int sink_init(struct sink *s, const struct sink_config *cfg,
	      struct vg_err *err)
{
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->batch = json_array();
	if (!s->batch)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	pthread_mutex_init(&s->mu, NULL);
	return VG_OK;
}

void sink_cleanup(struct sink *s)
{
	if (!s->batch)
		return;
	json_decref(s->batch);
	pthread_mutex_destroy(&s->mu);
	memset(s, 0, sizeof(*s));
}

char *sink_batch_body(const struct sink_config *cfg, const char *batch_id,
		      int final, json_t *findings)
{
	struct counters *c = cfg->counters;
	struct vg_buf b;
	json_t *body;

	body = json_pack(
		"{s:s, s:{s:s, s:s, s:s}, s:s, s:i, s:i, s:s, s:b, s:O, "
		"s:{s:I, s:I, s:I}}",
		"job_name", cfg->job_name ? cfg->job_name : "", "policy",
		"namespace", cfg->policy_namespace ? cfg->policy_namespace : "",
		"name", cfg->policy_name ? cfg->policy_name : "", "uid",
		cfg->policy_uid ? cfg->policy_uid : "", "trigger",
		cfg->trigger ? cfg->trigger : "schedule", "shards", cfg->shards,
		"shard", cfg->shard, "batch_id", batch_id, "final", final,
		"findings", findings, "stats", "targets",
		(json_int_t)(c ? atomic_load(&c->targets) : 0), "probes",
		(json_int_t)(c ? atomic_load(&c->probes) : 0), "open_ports",
		(json_int_t)(c ? atomic_load(&c->open_ports) : 0));
	if (!body)
		return NULL;
	vg_buf_init(&b, 0);
	if (vg_json_dumps(body, JSON_COMPACT, &b)) {
		vg_buf_cleanup(&b);
		json_decref(body);
		return NULL;
	}
	json_decref(body);
	return vg_buf_take(&b);
}

/* Spool the open batch (mutex held). */
static int close_batch(struct sink *s, int final, struct vg_err *err)
{
	char id[160], *body = NULL;
	uint64_t seq;
	int rc;

	if (!s->cfg.spool)
		return VG_OK;
	if ((rc = spool_take_seq(s->cfg.spool, &seq, err)))
		goto fail;
	spool_batch_id(s->cfg.spool, seq, id, sizeof(id));
	body = sink_batch_body(&s->cfg, id, final, s->batch);
	if (!body) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
		goto fail;
	}
	if ((rc = spool_put(s->cfg.spool, seq, body, strlen(body), err)))
		goto fail;
	free(body);
	json_array_clear(s->batch);
	s->bytes = 0;
	s->batches++;
	if (s->cfg.kick)
		s->cfg.kick(s->cfg.kick_ctx);
	return VG_OK;
fail:
	free(body);
	s->failed = 1;
	vg_error("cannot spool a batch", "err", err ? err->msg : "");
	return rc;
}

void sink_add(struct sink *s, json_t *f)
{
	struct vg_buf line;
	struct vg_err err = {0};

	vg_buf_init(&line, 0);
	if (vg_json_dumps(f, JSON_COMPACT, &line) ||
	    vg_buf_append_byte(&line, '\n')) {
		vg_buf_cleanup(&line);
		json_decref(f);
		s->failed = 1;
		return;
	}
	pthread_mutex_lock(&s->mu);
	if (s->finished) {
		pthread_mutex_unlock(&s->mu);
		vg_buf_cleanup(&line);
		json_decref(f);
		return;
	}
	/* stdio buffers the lines; sink_flush() and sink_finish() push them
	 * out */
	if (s->cfg.out &&
	    fwrite(line.data, 1, line.len, s->cfg.out) != line.len)
		s->failed = 1;
	atomic_fetch_add(&s->cfg.counters->findings, 1);
	if (s->cfg.spool) {
		if (json_array_size(s->batch) &&
		    s->bytes + line.len > s->cfg.max_bytes)
			close_batch(s, 0, &err);
		json_array_append(s->batch, f);
		s->bytes += line.len;
		if (json_array_size(s->batch) >= (size_t)s->cfg.batch_size)
			close_batch(s, 0, &err);
	}
	pthread_mutex_unlock(&s->mu);
	vg_buf_cleanup(&line);
	json_decref(f);
}

int sink_finish(struct sink *s, struct vg_err *err)
{
	int rc = VG_OK;

	pthread_mutex_lock(&s->mu);
	if (!s->finished) {
		s->finished = 1;
		rc = close_batch(s, 1, err);
		if (s->cfg.out && fflush(s->cfg.out))
			s->failed = 1;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void sink_flush(struct sink *s)
{
	pthread_mutex_lock(&s->mu);
	if (s->cfg.out && fflush(s->cfg.out))
		s->failed = 1;
	pthread_mutex_unlock(&s->mu);
}
