/* test_batch.c - findings and fingerprints, the spool (atomic files,
 * order, sequence numbers across restarts, rejects), batching in the sink,
 * retry policy, and the scope plan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "finding.h"
#include "gateway.h"
#include "plan.h"
#include "sink.h"
#include "spool.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vigil/json.h"

static int rm_one(const char *p, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_fingerprint(void **state)
{
	char a[FINGERPRINT_LEN + 1], b[FINGERPRINT_LEN + 1];
	json_t *f;

	(void)state;
	/* sha256("tcp|192.0.2.7|22|open"), computed independently */
	finding_fingerprint("tcp", "192.0.2.7", 22, "open", a);
	assert_string_equal(a, "1307b4c3a5ffbd078684d5353576ddf7"
			       "92805a68d7f806cd2151b4d25eb189fa");
	finding_fingerprint("tcp", "192.0.2.7", 23, "open", b);
	assert_string_not_equal(a, b);
	finding_fingerprint("tls", "192.0.2.7", 22, "open", b);
	assert_string_not_equal(a, b);

	f = finding_new("tcp", "open", "192.0.2.7", 22, SEV_INFO,
			"open TCP port 22", json_pack("{s:s}", "k", "v"));
	assert_non_null(f);
	assert_string_equal(vg_json_get_str(f, "fingerprint", ""), a);
	assert_string_equal(vg_json_get_str(f, "severity", ""), "info");
	assert_string_equal(vg_json_get_str(f, "protocol", ""), "tcp");
	assert_string_equal(vg_json_get_str(f, "scanner", ""), "tcp");
	assert_int_equal(vg_json_get_int(f, "port", 0), 22);
	assert_string_equal(vg_json_get_str(f, "evidence.check", ""), "open");
	assert_string_equal(vg_json_get_str(f, "evidence.k", ""), "v");
	json_decref(f);

	assert_string_equal(severity_name(SEV_CRITICAL), "critical");
	assert_string_equal(severity_name(SEV_MEDIUM), "medium");
}

static void test_printable(void **state)
{
	const unsigned char in[] = "SSH-2.0\r\n\x01\xff\\ok";
	char *p = printable(in, sizeof(in) - 1);

	(void)state;
	assert_string_equal(p, "SSH-2.0\\r\\n\\x01\\xff\\\\ok");
	free(p);
}

static void test_spool(void **state)
{
	char dir[] = "/tmp/vigil-spool-test-XXXXXX", sub[256], id[160];
	struct spool sp;
	struct vg_err err = {0};
	struct vg_buf b;
	uint64_t seq, *seqs = NULL;
	size_t n = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/a/b", dir);
	assert_int_equal(spool_open(&sp, sub, "job-1", 2, &err), VG_OK);
	for (int i = 0; i < 12; i++) {
		char body[32];

		assert_int_equal(spool_take_seq(&sp, &seq, &err), VG_OK);
		assert_int_equal(seq, (uint64_t)i);
		snprintf(body, sizeof(body), "{\"n\":%d}", i);
		assert_int_equal(spool_put(&sp, seq, body, strlen(body), &err),
				 VG_OK);
	}
	assert_string_equal(spool_batch_id(&sp, 7, id, sizeof(id)), "job-1-2-7");
	/* numeric order, not file-name order (10 after 9) */
	assert_int_equal(spool_pending(&sp, &seqs, &n, &err), VG_OK);
	assert_int_equal(n, 12);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(seqs[i], i);
	free(seqs);
	vg_buf_init(&b, 0);
	assert_int_equal(spool_load(&sp, 10, &b, &err), VG_OK);
	assert_string_equal(vg_buf_str(&b), "{\"n\":10}");
	vg_buf_cleanup(&b);
	assert_int_equal(spool_done(&sp, 0, &err), VG_OK);
	assert_int_equal(spool_reject(&sp, 1, &err), VG_OK);
	assert_int_equal(spool_rejected(&sp), 1);
	for (uint64_t s = 2; s < 12; s++)
		assert_int_equal(spool_done(&sp, s, &err), VG_OK);
	spool_close(&sp);

	/* a restart continues after every earlier batch, even delivered ones
	 * (the .seq file), and other jobs' or shards' files are not ours */
	assert_int_equal(spool_open(&sp, sub, "job-1", 3, &err), VG_OK);
	assert_int_equal(spool_take_seq(&sp, &seq, &err), VG_OK);
	assert_int_equal(seq, 0);
	assert_int_equal(spool_put(&sp, seq, "x", 1, &err), VG_OK);
	spool_close(&sp);
	assert_int_equal(spool_open(&sp, sub, "job-1", 2, &err), VG_OK);
	assert_int_equal(spool_pending(&sp, &seqs, &n, &err), VG_OK);
	assert_int_equal(n, 0);
	free(seqs);
	assert_int_equal(spool_take_seq(&sp, &seq, &err), VG_OK);
	assert_int_equal(seq, 12);
	spool_close(&sp);

	/* without the .seq file the highest file name counts */
	snprintf(sub, sizeof(sub), "%s/a/b/job-1-3.seq", dir);
	assert_int_equal(unlink(sub), 0);
	snprintf(sub, sizeof(sub), "%s/a/b", dir);
	assert_int_equal(spool_open(&sp, sub, "job-1", 3, &err), VG_OK);
	assert_int_equal(sp.next, 1);
	spool_close(&sp);

	/* no temporary files are left */
	DIR *d = opendir(sub);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)))
		assert_null(strstr(e->d_name, ".tmp"));
	closedir(d);
	rm_rf(dir);
}

static void kick(void *ctx)
{
	(*(int *)ctx)++;
}

static void test_sink_batches(void **state)
{
	char dir[] = "/tmp/vigil-sink-test-XXXXXX";
	struct counters c = {0};
	struct spool sp;
	struct sink s;
	struct vg_err err = {0};
	int kicks = 0;
	uint64_t *seqs = NULL;
	size_t n = 0;
	char *outbuf = NULL;
	size_t outlen = 0;
	FILE *out = open_memstream(&outbuf, &outlen);

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(spool_open(&sp, dir, "scan-7", 0, &err), VG_OK);
	struct sink_config cfg = {.out = out,
				  .spool = &sp,
				  .kick = kick,
				  .kick_ctx = &kicks,
				  .batch_size = 3,
				  .max_bytes = 1 << 20,
				  .job_name = "scan-7",
				  .policy_namespace = "tenant-acme",
				  .policy_name = "web",
				  .policy_uid = "u-1",
				  .trigger = "manual",
				  .shards = 2,
				  .shard = 0,
				  .counters = &c};
	assert_int_equal(sink_init(&s, &cfg, &err), VG_OK);
	atomic_store(&c.targets, 4);
	atomic_store(&c.probes, 40);
	atomic_store(&c.open_ports, 7);
	for (int i = 0; i < 7; i++)
		sink_add(&s, finding_new("tcp", "open", "192.0.2.1", 1000 + i,
					 SEV_INFO, "open", NULL));
	assert_int_equal(kicks, 2);
	assert_int_equal(sink_finish(&s, &err), VG_OK);
	assert_int_equal(sink_finish(&s, &err), VG_OK); /* once only */
	assert_int_equal(kicks, 3);
	fclose(out);
	/* 7 JSON lines */
	int lines = 0;

	for (size_t i = 0; i < outlen; i++)
		lines += outbuf[i] == '\n';
	assert_int_equal(lines, 7);
	free(outbuf);

	assert_int_equal(spool_pending(&sp, &seqs, &n, &err), VG_OK);
	assert_int_equal(n, 3);
	static const int sizes[] = {3, 3, 1};
	for (size_t i = 0; i < n; i++) {
		struct vg_buf b;
		json_t *j = NULL;
		char want[64];

		vg_buf_init(&b, 0);
		assert_int_equal(spool_load(&sp, seqs[i], &b, &err), VG_OK);
		assert_int_equal(vg_json_loadb(b.data, b.len, 0, &j, &err),
				 VG_OK);
		snprintf(want, sizeof(want), "scan-7-0-%zu", i);
		assert_string_equal(vg_json_get_str(j, "batch_id", ""), want);
		assert_string_equal(vg_json_get_str(j, "job_name", ""),
				    "scan-7");
		assert_string_equal(vg_json_get_str(j, "policy.namespace", ""),
				    "tenant-acme");
		assert_string_equal(vg_json_get_str(j, "policy.name", ""),
				    "web");
		assert_string_equal(vg_json_get_str(j, "policy.uid", ""),
				    "u-1");
		assert_string_equal(vg_json_get_str(j, "trigger", ""),
				    "manual");
		assert_int_equal(vg_json_get_int(j, "shards", 0), 2);
		assert_int_equal(vg_json_get_int(j, "shard", 9), 0);
		assert_int_equal(vg_json_get_bool(j, "final", -1), i == 2);
		assert_int_equal(json_array_size(vg_json_get(j, "findings")),
				 sizes[i]);
		assert_int_equal(vg_json_get_int(j, "stats.targets", 0), 4);
		assert_int_equal(vg_json_get_int(j, "stats.probes", 0), 40);
		assert_int_equal(vg_json_get_int(j, "stats.open_ports", 0), 7);
		json_decref(j);
		vg_buf_cleanup(&b);
	}
	free(seqs);
	sink_cleanup(&s);
	spool_close(&sp);
	rm_rf(dir);
}

static void test_sink_empty_final_and_bytes(void **state)
{
	char dir[] = "/tmp/vigil-sink-test-XXXXXX";
	struct counters c = {0};
	struct spool sp;
	struct sink s;
	struct vg_err err = {0};
	uint64_t *seqs = NULL;
	size_t n = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(spool_open(&sp, dir, "j", 0, &err), VG_OK);
	struct sink_config cfg = {.spool = &sp,
				  .batch_size = 500,
				  .max_bytes = 600, /* about two findings */
				  .job_name = "j",
				  .shards = 1,
				  .counters = &c};
	assert_int_equal(sink_init(&s, &cfg, &err), VG_OK);
	assert_int_equal(sink_finish(&s, &err), VG_OK);
	assert_int_equal(spool_pending(&sp, &seqs, &n, &err), VG_OK);
	assert_int_equal(n, 1); /* an empty final batch */
	free(seqs);
	sink_cleanup(&s);

	assert_int_equal(sink_init(&s, &cfg, &err), VG_OK);
	for (int i = 0; i < 5; i++)
		sink_add(&s, finding_new("tcp", "open", "192.0.2.1", 1 + i,
					 SEV_INFO, "open", NULL));
	sink_finish(&s, &err);
	assert_int_equal(spool_pending(&sp, &seqs, &n, &err), VG_OK);
	/* the byte bound split five findings into batches of two or fewer */
	assert_true(n >= 1 + 3);
	free(seqs);
	sink_cleanup(&s);
	spool_close(&sp);
	rm_rf(dir);
}

static void test_retry_policy(void **state)
{
	(void)state;
	assert_true(gw_retryable(0));
	assert_true(gw_retryable(408));
	assert_true(gw_retryable(429));
	assert_true(gw_retryable(500));
	assert_true(gw_retryable(503));
	assert_false(gw_retryable(400));
	assert_false(gw_retryable(401));
	assert_false(gw_retryable(403));
	assert_false(gw_retryable(422));
	for (int a = 0; a < 12; a++) {
		long d = gw_backoff_ms(a, 250, 10000);
		long cap = 250L << (a < 6 ? a : 6);

		if (cap > 10000)
			cap = 10000;
		/* jitter takes off at most half */
		assert_true(d <= cap);
		assert_true(d >= cap / 2);
	}
}

static void test_plan(void **state)
{
	struct plan p;
	struct vg_err err = {0};
	struct plan_input in = {.allowed = "192.0.2.0/24,*.example.com",
				.targets = "192.0.2.0/30,a.example.com,"
					   "b.example.com,c.example.com",
				.exclude = "192.0.2.1,c.example.com",
				.ports = "22,80",
				.scanners = "tls,banner",
				.shard = 1,
				.shards = 2};
	struct vg_addr a;
	const char *why;
	unsigned bits;

	(void)state;
	assert_int_equal(plan_build(&p, &in, &err), VG_OK);
	assert_int_equal(p.scanners, SCAN_TCP | SCAN_TLS | SCAN_BANNER);
	assert_int_equal(p.ports.n, 2);
	/* 3 addresses left (.0 .2 .3), shard 1 of 2 holds the upper 2 */
	assert_int_equal(vg_scope_iter_count(&p.iter), 2);
	/* host names a, b remain; shard 1 takes b (k = 1) */
	assert_int_equal(p.nnames, 1);
	assert_string_equal(p.names[0], "b.example.com");
	/* a resolved address: allowed, excluded, outside, forbidden */
	assert_int_equal(vg_addr_parse("192.0.2.9", &a), VG_OK);
	assert_int_equal(plan_admits(&p, &a, &why), 1);
	assert_int_equal(vg_addr_parse("192.0.2.1", &a), VG_OK);
	assert_int_equal(plan_admits(&p, &a, &why), 0);
	assert_string_equal(why, "excluded");
	assert_int_equal(vg_addr_parse("198.51.100.1", &a), VG_OK);
	assert_int_equal(plan_admits(&p, &a, &why), 0);
	assert_string_equal(why, "outside the allowed scope");
	assert_int_equal(vg_addr_parse("127.0.0.1", &a), VG_OK);
	assert_int_equal(plan_admits(&p, &a, &why), 0);
	assert_non_null(strstr(why, "loopback"));
	plan_cleanup(&p);

	static const struct {
		const char *allowed, *targets, *ports, *scanners, *msg;
	} bad[] = {
		{"10.0.0.0/8", "10.0.0.0/8,192.0.2.1", "22", "tcp",
		 "target \"192.0.2.1\" is outside the allowed scope"},
		{"10.0.0.0/8", "10.1.0.0/15", "22", "tcp", "CIDR has host bits"},
		{"10.0.0.0/8", "10.0.0.1", "22,70000", "tcp", "--ports"},
		{"10.0.0.0/8", "10.0.0.1", "22", "tcp,udp",
		 "unknown scanner \"udp\""},
		{"0.0.0.0/0", "169.254.169.254", "22", "tcp", "cloud metadata"},
		{"::/0", "::ffff:169.254.169.254", "22", "tcp", "cloud metadata"},
		{"2001:db8::/32", "2001:db8::/64", "22", "tcp", "more than 2^64"},
		{"10.0.0.0/8", "", "22", "tcp", "--targets is empty"},
		{"", "10.0.0.1", "22", "tcp", "authorises nothing"},
		{"example.com", "www.example.com", "22", "tcp", "outside"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct plan_input b = {.allowed = bad[i].allowed,
				       .targets = bad[i].targets,
				       .ports = bad[i].ports,
				       .scanners = bad[i].scanners,
				       .shards = 1};
		int rc = plan_build(&p, &b, &err);

		if (rc == VG_OK || !strstr(err.msg, bad[i].msg))
			fail_msg("case %zu: rc %d \"%s\", want \"%s\"", i, rc,
				 err.msg, bad[i].msg);
		plan_cleanup(&p);
	}
	assert_int_equal(plan_scanners("http", &bits, &err), VG_OK);
	assert_int_equal(bits, SCAN_TCP | SCAN_HTTP);
	assert_int_equal(plan_scanners("tcp,", &bits, &err), VG_PARSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_spool),
		cmocka_unit_test(test_sink_batches),
		cmocka_unit_test(test_sink_empty_final_and_bytes),
		cmocka_unit_test(test_retry_policy),
		cmocka_unit_test(test_plan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
