/*
 * app.c - wiring: configuration to pools, listeners and threads, and the
 * order in which they start and stop.
 */
#include "gateway.h"

#include "vigil/httpd.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

struct gw_app {
	struct gw g;
	SSL_CTX *tls;
	struct srv *srv;
	struct vg_httpd *probes;
	struct vg_metrics *reg;
};

static int probes_ready(void *data, struct vg_buf *reason)
{
	char why[128];

	if (gw_ready(data, why, sizeof(why)))
		return 1;
	vg_buf_append_str(reason, why);
	return 0;
}

int gw_migrate(struct gw *g, struct vg_err *err)
{
	char *ci = gw_config_conninfo(g->cfg, 0);
	struct vg_db_opts o = {.conninfo = ci,
	                       .max_conns = 1,
	                       .connect_timeout_s = 5,
	                       .application_name = "vigil-gateway-migrate"};
	struct vg_db_pool *p = NULL;
	int applied = 0, rc;

	if (!ci)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	rc = vg_db_pool_new(&o, &p, err);
	OPENSSL_cleanse(ci, strlen(ci));
	free(ci);
	if (rc == VG_OK)
		rc = vg_db_migrate(p, NULL, &applied, err);
	vg_db_pool_free(p);
	if (rc == VG_OK) {
		char n[16];

		snprintf(n, sizeof(n), "%d", applied);
		vg_info("database schema up to date", "applied", n);
	}
	return rc;
}

static int set_keys(struct gw *g, const struct gw_config *cfg,
                    struct vg_err *err)
{
	if (gw_proxies_parse(cfg->trusted_proxies, g->proxies, GW_MAX_PROXIES,
	                     &g->nproxies, err) != VG_OK)
		return err ? err->code : VG_CONFIG;
	if (cfg->bootstrap_key) {
		gw_sha256(cfg->bootstrap_key, strlen(cfg->bootstrap_key),
		          g->bootstrap_hash);
		g->has_bootstrap = 1;
	}
	if (cfg->session_key && *cfg->session_key) {
		gw_sha256(cfg->session_key, strlen(cfg->session_key),
		          g->session_key);
	} else {
		/* sessions then live only as long as this process and are
		 * unknown to other replicas */
		vg_warn("VIGIL_SESSION_KEY not set: sessions are valid on this "
		        "replica only");
		if (RAND_bytes(g->session_key, sizeof(g->session_key)) != 1)
			return vg_err_set(err, VG_INTERNAL,
			                  "random session key");
	}
	return VG_OK;
}

/* The API's TLS context: TLS 1.2 and later, OpenSSL's default ciphers,
 * the certificate chain and key the operator mounts. */
static int tls_context(const struct gw_config *cfg, SSL_CTX **out,
                       struct vg_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	unsigned long e;
	char msg[256] = "";

	*out = NULL;
	if (!ctx)
		return vg_err_set(err, VG_TLS, "tls: out of memory");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                              SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) == 1 &&
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file,
	                                SSL_FILETYPE_PEM) == 1 &&
	    SSL_CTX_check_private_key(ctx) == 1) {
		*out = ctx;
		return VG_OK;
	}
	if ((e = ERR_get_error()))
		ERR_error_string_n(e, msg, sizeof(msg));
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return vg_err_set(err, VG_TLS, "tls: certificate %s, key %s: %s",
	                  cfg->tls_cert_file, cfg->tls_key_file, msg);
}

static int open_pools(struct gw *g, const struct gw_config *cfg,
                      struct vg_err *err)
{
	char *ci = gw_config_conninfo(cfg, 1);
	struct vg_db_opts o = {
		.conninfo = ci,
		.max_conns = cfg->db_pool_max,
		.connect_timeout_s = 3,
		.acquire_timeout_ms = 5000,
		.statement_timeout_ms = cfg->db_statement_timeout_ms,
		.application_name = "vigil-gateway",
	};
	int rc;

	if (!ci)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	rc = vg_db_pool_new(&o, &g->db, err);
	OPENSSL_cleanse(ci, strlen(ci));
	free(ci);
	if (rc == VG_OK)
		rc = gw_redis_new(cfg, &g->redis, err);
	if (rc == VG_OK)
		rc = gw_taskq_new(cfg, &g->taskq, err);
	if (rc == VG_OK &&
	    gw_authcache_new(cfg->auth_cache_ttl_ms, &g->authcache) != VG_OK)
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	return rc;
}

int gw_app_start(struct gw_config *cfg, struct gw_app **out, struct vg_err *err)
{
	struct gw_app *a = calloc(1, sizeof(*a));
	struct srv_config sc = {
		.addr = cfg->listen,
		.loops = cfg->loops,
		.workers = cfg->workers,
		.max_conns = cfg->max_conns,
		.max_header = (size_t)cfg->max_header,
		.max_body = (size_t)cfg->max_body,
		.request_timeout_ms = cfg->request_timeout_ms,
		.idle_timeout_ms = cfg->idle_timeout_ms,
		.drain_timeout_ms = cfg->drain_timeout_ms,
		.ws_max_queue = (size_t)cfg->events_max_queue,
		.ws_ping_ms = cfg->events_ping_ms,
	};
	struct srv_ops ops = {gw_handle,  gw_is_inline, gw_request_done,
	                      gw_ws_open, gw_ws_close,  gw_ws_sent};
	struct vg_httpd_config hc = {.addr = cfg->health_listen};
	int rc;

	*out = NULL;
	if (!a)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	a->g.cfg = cfg;
	a->reg = vg_metrics_new();
	if (!a->reg) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
		goto fail;
	}
	hc.metrics = a->reg;
	if (cfg->gateway_tls && (rc = tls_context(cfg, &a->tls, err)) != VG_OK)
		goto fail;
	sc.tls_ctx = a->tls;
	if ((rc = gw_metrics_init(&a->g, a->reg, err)) != VG_OK ||
	    (rc = vg_metrics_register_process(a->reg, err)) != VG_OK ||
	    (rc = set_keys(&a->g, cfg, err)) != VG_OK ||
	    (rc = open_pools(&a->g, cfg, err)) != VG_OK)
		goto fail;
	if (!cfg->migrate)
		atomic_store(&a->g.schema_ok, 1);
	if ((rc = vg_httpd_new(&hc, &a->probes, err)) != VG_OK)
		goto fail;
	vg_httpd_set_ready_fn(a->probes, probes_ready, &a->g);
	if ((rc = srv_new(&sc, &ops, &a->g, &a->srv, err)) != VG_OK ||
	    (rc = gw_health_start(&a->g, err)) != VG_OK ||
	    (rc = vg_httpd_start(a->probes, err)) != VG_OK ||
	    (rc = srv_start(a->srv, err)) != VG_OK)
		goto fail;
	a->g.srv = a->srv;
	if ((rc = gw_eventsub_start(&a->g, err)) != VG_OK)
		goto fail;
	{
		char port[16], hport[16];

		snprintf(port, sizeof(port), "%d", srv_port(a->srv));
		snprintf(hport, sizeof(hport), "%d", vg_httpd_port(a->probes));
		vg_info("gateway serving", "port", port, "health_port", hport,
		        "bootstrap_key", a->g.has_bootstrap ? "set" : "unset");
	}
	*out = a;
	return VG_OK;
fail:
	gw_app_stop(a);
	return rc;
}

int gw_app_port(const struct gw_app *a)
{
	return srv_port(a->srv);
}

int gw_app_health_port(const struct gw_app *a)
{
	return vg_httpd_port(a->probes);
}

struct gw *gw_app_gw(struct gw_app *a)
{
	return &a->g;
}

void gw_app_stop(struct gw_app *a)
{
	if (!a)
		return;
	atomic_store(&a->g.draining, 1);
	vg_info("gateway stopping: finishing requests in flight");
	/* no more events for the WebSockets, which get 1001 */
	gw_eventsub_stop(&a->g);
	srv_free(a->srv);
	gw_health_stop(&a->g);
	vg_httpd_free(a->probes);
	gw_taskq_free(a->g.taskq);
	gw_redis_free(a->g.redis);
	gw_authcache_free(a->g.authcache);
	vg_db_pool_free(a->g.db);
	vg_metrics_free(a->reg);
	SSL_CTX_free(a->tls);
	OPENSSL_cleanse(&a->g, sizeof(a->g));
	free(a);
}
