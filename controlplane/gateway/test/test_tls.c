/* test_tls.c - the API over TLS (VIGIL_GATEWAY_TLS with the certificate
 * and key the operator mounts): requests, keep-alive on one connection,
 * a body spanning many TLS records, and plain HTTP refused; the probe
 * port stays plain HTTP. */
#include "harness.h"

#include <sys/stat.h>

static char dir[] = "/tmp/gw-tls-XXXXXX";

static int make_cert(void)
{
	char cmd[1024], cert[300], key[300];

	if (!mkdtemp(dir))
		return -1;
	snprintf(cert, sizeof(cert), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	snprintf(cmd, sizeof(cmd),
	         "openssl req -x509 -newkey ec -pkeyopt "
	         "ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s "
	         "-days 2 -subj /CN=127.0.0.1 -addext "
	         "subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
	         key, cert);
	if (system(cmd) != 0)
		return -1;
	setenv("VIGIL_GATEWAY_TLS", "true", 1);
	setenv("VIGIL_TLS_CERT_FILE", cert, 1);
	setenv("VIGIL_TLS_KEY_FILE", key, 1);
	H.tls = 1;
	snprintf(H.cafile, sizeof(H.cafile), "%s", cert);
	return 0;
}

static int setup(void **state)
{
	if (make_cert())
		return -1;
	return h_setup_all(state);
}

static int teardown(void **state)
{
	char cmd[128];

	h_teardown_all(state);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_requests_over_tls(void **state)
{
	struct h_resp r;
	char tid[37], key[80];

	(void)state;
	h_expect(200, "GET", "/v1/whoami", BOOTSTRAP_KEY, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "kind", ""), "bootstrap");
	h_resp_free(&r);
	h_tenant("tls", tid);
	h_key(tid, "viewer", NULL, key, NULL);
	h_expect(200, "GET", "/v1/whoami", key, NULL, &r);
	h_resp_free(&r);
	h_expect(401, "GET", "/v1/whoami", NULL, NULL, &r);
	assert_string_equal(h_err_code(&r), "unauthenticated");
	h_resp_free(&r);
	/* the probe port is plain HTTP */
	h_req_ex(H.hport, "GET", "/readyz", NULL, NULL, 0, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
}

static void test_keep_alive_and_large_body(void **state)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	struct vg_buf sink;
	char url[128], tid[37], auth[128];
	size_t n = 60000;
	char *big = malloc(n + 1);
	long code = 0, connects = 0, total = 0;

	(void)state;
	vg_buf_init(&sink, 0);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", BOOTSTRAP_KEY);
	hl = curl_slist_append(hl, auth);
	curl_easy_setopt(c, CURLOPT_CAINFO, H.cafile);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/whoami", H.port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(curl_easy_perform(c), CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		assert_int_equal(code, 200);
		curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
		total += connects;
	}
	/* one TLS connection served all twenty */
	assert_int_equal(total, 1);

	/* a 60 KB body arrives in several TLS records */
	h_tenant("tls-body", tid);
	memset(big, ' ', n);
	big[n] = '\0';
	memcpy(big, "{\"name\":\"big\",\"role\":\"viewer\"", 29);
	big[n - 1] = '}';
	snprintf(url, sizeof(url),
	         "https://127.0.0.1:%d/v1/tenants/%s/api-keys", H.port, tid);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, big);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)n);
	vg_buf_reset(&sink);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (code != 201)
		fail_msg("large body: %ld %s", code, vg_buf_str(&sink));
	assert_non_null(strstr(vg_buf_str(&sink), "\"key\":\"vgk_"));
	free(big);
	vg_buf_cleanup(&sink);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
}

static void test_plain_http_refused(void **state)
{
	const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	char *out;

	(void)state;
	out = h_raw(H.port, req, strlen(req), 3000);
	assert_null(strstr(out, "HTTP/1.1 200"));
	free(out);
	/* and the server still serves TLS afterwards */
	assert_int_equal(h_ready_status(), 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests_over_tls),
		cmocka_unit_test(test_keep_alive_and_large_body),
		cmocka_unit_test(test_plain_http_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
