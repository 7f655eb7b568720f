/* api.h - the brain's HTTP API for the gateway and the worker:
 * POST /v1/reports {"tenant_id", "run_id"} returns the run's report,
 * generating it first (through the brain's queue) when it is not ready,
 * within a deadline; /healthz and /readyz as on the health port.
 * README.md, "The API". */
#ifndef BRAIN_API_H
#define BRAIN_API_H

#include "brain.h"
#include "server.h"
#include "vigil/db.h"
#include "vigil/metrics.h"

struct api_config {
	struct vg_db_pool *db; /* borrowed */
	struct brain *brain;   /* borrowed: queues the report tasks */
	/* the bearer token callers present (VIGIL_BRAIN_TOKEN); required */
	const char *token;
	int deadline_ms; /* longest wait for a report before 202; 0: none */
	struct vg_metrics *metrics; /* NULL: the default registry */
};

struct api;

/* VG_INVAL without a token or when it is shorter than 16 bytes. */
int api_new(const struct api_config *cfg, struct api **out, struct vg_err *err);
/* Requests waiting for a report stop waiting (and answer 202). */
void api_stop(struct api *a);
void api_free(struct api *a);

/* The server's handler; `data` is the struct api. */
void api_handle(const struct server_req *req, struct server_resp *resp,
                void *data);

#endif
