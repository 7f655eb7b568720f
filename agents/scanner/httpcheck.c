/* httpcheck.c - the HTTP scanner (libcurl): missing security headers,
 * version disclosure in Server / X-Powered-By, plain HTTP that does not
 * redirect to HTTPS.
 *
 * curl is pinned to the scanned address (CURLOPT_RESOLVE for names, the
 * address literal otherwise), follows no redirect and uses no proxy, so
 * the request goes nowhere the scope check did not approve. Certificates
 * are not verified here: the TLS scanner reports on them. */
#include "service.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define BODY_MAX (256 * 1024) /* read this much of a page, then hang up */

struct xfer {
	const struct svc_ctx *c;
	size_t body;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;

	(void)p;
	x->body += size * n;
	return x->body > BODY_MAX ? 0 : size * n;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn,
		       curl_off_t ut, curl_off_t un)
{
	struct xfer *x = arg;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return svc_stopped(x->c);
}

/* Value of response header `name` of the last response, or NULL. */
static const char *header(CURL *h, const char *name)
{
	struct curl_header *hd = NULL;

	if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hd) != CURLHE_OK)
		return NULL;
	return hd->value;
}

static int has_digit(const char *s)
{
	return strpbrk(s, "0123456789") != NULL;
}

static const struct sec_header {
	const char *name, *check, *why;
	int https_only;
} sec_headers[] = {
	{"Strict-Transport-Security", "http-missing-hsts",
	 "browsers may be downgraded to plain HTTP", 1},
	{"Content-Security-Policy", "http-missing-csp",
	 "no policy restricts scripts and other content", 0},
	{"X-Content-Type-Options", "http-missing-x-content-type-options",
	 "browsers may MIME-sniff responses", 0},
	{"X-Frame-Options", "http-missing-x-frame-options",
	 "pages may be framed (clickjacking)", 0},
};

static void checks(CURL *h, const struct svc_target *t,
		   const struct svc_ctx *c, int https, const char *url,
		   long status)
{
	const char *server = header(h, "Server");
	const char *powered = header(h, "X-Powered-By");
	char *location = NULL;
	char title[512];
	int to_https = 0;

	curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &location);
	if (status >= 300 && status < 400 && location &&
	    strncasecmp(location, "https://", 8) == 0)
		to_https = 1;
	snprintf(title, sizeof(title), "%s service: status %ld%s%s",
		 https ? "HTTPS" : "HTTP", status, server ? ", Server: " : "",
		 server ? server : "");
	svc_emit(c, t, "http", https ? "https-service" : "http-service",
		 SEV_INFO, title,
		 json_pack("{s:s, s:i, s:s?, s:s?}", "url", url, "status",
			   (int)status, "server", server, "location",
			   location));
	if (!https && !to_https)
		svc_emit(c, t, "http", "http-no-https-redirect", SEV_MEDIUM,
			 "plain HTTP does not redirect to HTTPS",
			 json_pack("{s:s, s:i, s:s?}", "url", url, "status",
				   (int)status, "location", location));
	if (server && has_digit(server)) {
		snprintf(title, sizeof(title),
			 "HTTP Server header discloses a version: %.200s",
			 server);
		svc_emit(c, t, "http",
			 https ? "https-server-version" : "http-server-version",
			 SEV_LOW, title,
			 json_pack("{s:s, s:s}", "url", url, "server", server));
	}
	if (powered) {
		snprintf(title, sizeof(title),
			 "HTTP X-Powered-By header discloses %.200s", powered);
		svc_emit(c, t, "http",
			 https ? "https-powered-by" : "http-powered-by", SEV_LOW,
			 title,
			 json_pack("{s:s, s:s}", "url", url, "x_powered_by",
				   powered));
	}
	if (to_https)
		return; /* a redirect's own headers matter little */
	for (size_t i = 0; i < sizeof(sec_headers) / sizeof(sec_headers[0]);
	     i++) {
		const struct sec_header *sh = &sec_headers[i];
		char check[80];

		if ((sh->https_only && !https) || header(h, sh->name))
			continue;
		/* the same header missing over HTTP and HTTPS on one port
		 * are two findings */
		snprintf(check, sizeof(check), "%s%s", sh->check,
			 https ? "-https" : "");
		snprintf(title, sizeof(title), "missing %s header: %s",
			 sh->name, sh->why);
		svc_emit(c, t, "http", check, SEV_LOW, title,
			 json_pack("{s:s, s:s, s:i}", "url", url, "header",
				   sh->name, "status", (int)status));
	}
}

int http_check(const struct svc_target *t, const struct svc_ctx *c,
	       int https)
{
	struct xfer x = {.c = c};
	struct curl_slist *resolve = NULL;
	char addr[VG_ADDR_STRLEN], url[512], pin[600];
	long status = 0;
	CURLcode rc;
	CURL *h;

	vg_addr_str(&t->addr, addr, sizeof(addr));
	if (t->hostname) {
		snprintf(url, sizeof(url), "%s://%s:%d/",
			 https ? "https" : "http", t->hostname, t->port);
		snprintf(pin, sizeof(pin), "%s:%d:%s%s%s", t->hostname, t->port,
			 t->addr.family == AF_INET6 ? "[" : "", addr,
			 t->addr.family == AF_INET6 ? "]" : "");
		resolve = curl_slist_append(NULL, pin);
		if (!resolve)
			return 0;
	} else {
		snprintf(url, sizeof(url), "%s://%s%s%s:%d/",
			 https ? "https" : "http",
			 t->addr.family == AF_INET6 ? "[" : "", addr,
			 t->addr.family == AF_INET6 ? "]" : "", t->port);
	}
	h = curl_easy_init();
	if (!h) {
		curl_slist_free_all(resolve);
		return 0;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "vigil-agent");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	/* a page cut short after its headers still counts */
	if ((rc == CURLE_OK || rc == CURLE_WRITE_ERROR) && status >= 100 &&
	    !svc_stopped(c))
		checks(h, t, c, https, url, status);
	curl_easy_cleanup(h);
	curl_slist_free_all(resolve);
	return (rc == CURLE_OK || rc == CURLE_WRITE_ERROR) && status >= 100;
}
