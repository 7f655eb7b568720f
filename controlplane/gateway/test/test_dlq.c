/* test_dlq.c - the worker's dead letters over the API: list (with the
 * task and its error), replay one (back on the stream, once), delete one,
 * purge all, 404 for unknown ids, platform admins only, audited. */
#include "harness.h"

#include "vigil/queue.h"

/* The worker's task types, minus "bogus": a consumer dead-letters it. */
static const struct vg_queue_type types[] = {
	{"ingest", 8, 1000, 300000},
};

static struct vg_queue *queue(void)
{
	struct vg_queue_opts o = {.host = "127.0.0.1",
	                          .port = H.redis.port,
	                          .consumer = "test-dlq",
	                          .types = types,
	                          .ntypes = 1};
	struct vg_queue *q = NULL;
	struct vg_err err = {0};

	if (vg_queue_new(&o, &q, &err) != VG_OK)
		fail_msg("queue: %s", err.msg);
	return q;
}

/* Enqueue `n` tasks of an unknown type and claim them: dead letters. */
static void make_dead(int n)
{
	struct vg_queue *q = queue();
	struct vg_err err = {0};
	struct vg_task *t[8] = {NULL};
	int got = 0;

	for (int i = 0; i < n; i++) {
		json_t *p = json_pack("{s:i}", "i", i);
		struct vg_queue_msg m = {.type = "bogus",
		                         .payload = p,
		                         .request_id = "req-dlq",
		                         .tenant = ""};

		if (vg_queue_enqueue(q, &m, &err) != VG_OK)
			fail_msg("enqueue: %s", err.msg);
		json_decref(p);
	}
	if (vg_queue_claim(q, t, 8, 100, &got, &err) != VG_OK)
		fail_msg("claim: %s", err.msg);
	assert_int_equal(got, 0); /* all dead-lettered, none handed out */
	vg_queue_free(q);
}

static long long stream_len(void)
{
	char *v = h_redis("XLEN {vigil}:tasks");
	long long n = v ? strtoll(v, NULL, 10) : -1;

	free(v);
	return n;
}

static void test_list_replay_delete_purge(void **state)
{
	struct h_resp r;
	char path[160], id[64];
	json_t *it;

	(void)state;
	h_expect(200, "DELETE", "/v1/admin/dead-letters", BOOTSTRAP_KEY, NULL,
	         &r);
	h_resp_free(&r);
	make_dead(3);
	h_expect(200, "GET", "/v1/admin/dead-letters?limit=2", BOOTSTRAP_KEY,
	         NULL, &r);
	assert_int_equal(json_array_size(json_object_get(r.json, "items")), 2);
	h_resp_free(&r);
	h_expect(200, "GET", "/v1/admin/dead-letters?type=bogus", BOOTSTRAP_KEY,
	         NULL, &r);
	assert_int_equal(json_array_size(json_object_get(r.json, "items")), 3);
	it = json_array_get(json_object_get(r.json, "items"), 0);
	assert_string_equal(vg_json_get_str(it, "task.type", ""), "bogus");
	assert_string_equal(vg_json_get_str(it, "task.request_id", ""),
	                    "req-dlq");
	assert_non_null(strstr(vg_json_get_str(it, "error", ""), "bogus"));
	snprintf(id, sizeof(id), "%s", vg_json_get_str(it, "id", ""));
	h_resp_free(&r);

	/* replay: back on the stream once, gone from the dead letters */
	long long before = stream_len();
	snprintf(path, sizeof(path), "/v1/admin/dead-letters/%s/replay", id);
	h_expect(204, "POST", path, BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	assert_int_equal(stream_len(), before + 1);
	h_expect(404, "POST", path, BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);

	/* delete one, then purge the rest */
	h_expect(200, "GET", "/v1/admin/dead-letters", BOOTSTRAP_KEY, NULL, &r);
	assert_int_equal(json_array_size(json_object_get(r.json, "items")), 2);
	snprintf(path, sizeof(path), "/v1/admin/dead-letters/%s",
	         vg_json_get_str(json_array_get(json_object_get(r.json,
	                                                        "items"),
	                                        0),
	                         "id", ""));
	h_resp_free(&r);
	h_expect(204, "DELETE", path, BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	h_expect(200, "DELETE", "/v1/admin/dead-letters", BOOTSTRAP_KEY, NULL,
	         &r);
	assert_int_equal(vg_json_get_int(r.json, "purged", -1), 1);
	h_resp_free(&r);
	h_expect(200, "GET", "/v1/admin/dead-letters", BOOTSTRAP_KEY, NULL, &r);
	assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
	h_resp_free(&r);

	/* each change is in the platform's audit chain */
	h_expect(200, "GET", "/v1/audit?limit=50", BOOTSTRAP_KEY, NULL, &r);
	assert_non_null(strstr(vg_buf_str(&r.body), "dead_letter.replay"));
	assert_non_null(strstr(vg_buf_str(&r.body), "dead_letter.delete"));
	assert_non_null(strstr(vg_buf_str(&r.body), "dead_letter.purge"));
	h_resp_free(&r);
}

static void test_bad_requests(void **state)
{
	struct h_resp r;

	(void)state;
	h_expect(404, "POST", "/v1/admin/dead-letters/not-an-id/replay",
	         BOOTSTRAP_KEY, NULL, &r);
	assert_string_equal(h_err_code(&r), "not_found");
	h_resp_free(&r);
	h_expect(404, "DELETE", "/v1/admin/dead-letters/1-1", BOOTSTRAP_KEY,
	         NULL, &r);
	h_resp_free(&r);
	h_expect(400, "GET", "/v1/admin/dead-letters?limit=0", BOOTSTRAP_KEY,
	         NULL, &r);
	h_resp_free(&r);
	h_expect(400, "GET", "/v1/admin/dead-letters?limit=501", BOOTSTRAP_KEY,
	         NULL, &r);
	h_resp_free(&r);
	h_expect(401, "GET", "/v1/admin/dead-letters", NULL, NULL, &r);
	h_resp_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_replay_delete_purge),
		cmocka_unit_test(test_bad_requests),
	};

	return cmocka_run_group_tests(tests, h_setup_all, h_teardown_all);
}
