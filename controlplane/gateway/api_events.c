/*
 * api_events.c - GET /v1/events: the WebSocket handshake (RFC 6455
 * section 4.2). The request took the pipeline of every route first
 * (authentication, tenant, events:subscribe, access log); here the
 * upgrade itself is checked and answered 101, and the server turns the
 * connection into a WebSocket subscribed to the tenant's events
 * (eventsub.c feeds it).
 *
 * Refusals: 426 with "Upgrade: websocket" to a request that asks for no
 * WebSocket, or for another version than 13 (with
 * "Sec-WebSocket-Version: 13"); 400 for a handshake that is malformed
 * (HTTP/1.0, a body, "Connection" without "upgrade", a missing or bad
 * Sec-WebSocket-Key); 404 for a tenant that is gone.
 */
#include "gateway.h"

#include "ws.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* 1 when the comma-separated header value holds `token` (any case). */
static int has_token(const char *value, const char *token)
{
	size_t tl = strlen(token);

	for (const char *p = value; *p;) {
		size_t n;

		p += strspn(p, " \t,");
		n = strcspn(p, ",");
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == tl && strncasecmp(p, token, tl) == 0)
			return 1;
		p += strcspn(p, ",");
	}
	return 0;
}

static void upgrade_required(struct gw_rctx *rc, const char *msg)
{
	srv_resp_header(rc->resp, "Upgrade", "websocket");
	srv_resp_header(rc->resp, "Sec-WebSocket-Version", "13");
	gw_reply_error(rc, 426, "upgrade_required", "%s", msg);
}

static int tenant_live(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	(void)c;
	(void)arg;
	(void)err;
	return VG_OK; /* gw_tx checked it */
}

void api_events(struct gw_rctx *rc)
{
	char v[256], key[64], accept[WS_ACCEPT_LEN + 1];
	struct vg_err err = {0};
	int r;

	if (!srv_req_header(rc->req, "upgrade", v, sizeof(v)) ||
	    !has_token(v, "websocket")) {
		upgrade_required(rc, "this endpoint is a WebSocket: send "
		                     "Upgrade: websocket");
		return;
	}
	if (!srv_req_header(rc->req, "sec-websocket-version", v, sizeof(v)) ||
	    strcmp(v, "13") != 0) {
		upgrade_required(rc, "Sec-WebSocket-Version: only 13");
		return;
	}
	if (rc->req->head->minor < 1 || rc->req->body_len > 0 ||
	    strcmp(rc->req->method, "GET") != 0) {
		gw_reply_error(rc, 400, "bad_request",
		               "a WebSocket handshake is an HTTP/1.1 GET "
		               "without a body");
		return;
	}
	if (!srv_req_header(rc->req, "connection", v, sizeof(v)) ||
	    !has_token(v, "upgrade")) {
		gw_reply_error(rc, 400, "bad_request",
		               "Connection: must include upgrade");
		return;
	}
	if (!srv_req_header(rc->req, "sec-websocket-key", key, sizeof(key)) ||
	    !ws_key_valid(key)) {
		gw_reply_error(rc, 400, "bad_request",
		               "Sec-WebSocket-Key: want the base64 of 16 "
		               "bytes");
		return;
	}
	/* a long-lived subscription: only to a tenant that is active now */
	if ((r = gw_tx(rc, VG_DB_TX_READ_ONLY, tenant_live, NULL, &err)) !=
	    VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	if (ws_accept(key, accept)) {
		gw_reply_error(rc, 500, "internal", "internal error");
		return;
	}
	srv_resp_upgrade(rc->resp, rc->tenant, accept);
	gw_rlog(rc, VG_LOG_INFO, "events client subscribed", "role",
	        gw_role_name(rc->role), "client", rc->client, NULL);
}
