/* test_scope.c - target lists, forbidden addresses, coverage, exclusion,
 * counting, sharded enumeration and port specs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vigil/scope.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Parse `list` with `flags`; returns the rc, leaves err in *err. */
static int parse(struct vg_scope *s, const char *list, unsigned flags,
		 struct vg_err *err)
{
	vg_scope_init(s);
	return vg_scope_parse(s, list, flags, err);
}

static void test_items(void **state)
{
	struct vg_scope s;
	struct vg_err err = {0};
	char a[VG_ADDR_STRLEN], b[VG_ADDR_STRLEN];

	(void)state;
	assert_int_equal(parse(&s,
			       " 10.0.0.0/8, 192.0.2.7 ,2001:db8::/120,"
			       "192.0.2.10-192.0.2.50,scan-me.example.com,"
			       "2001:db8::1-2001:db8::5",
			       0, &err),
			 VG_OK);
	assert_int_equal(s.n, 6);
	assert_int_equal(s.items[0].kind, VG_SCOPE_RANGE);
	assert_string_equal(vg_addr_str(&s.items[0].lo, a, sizeof(a)),
			    "10.0.0.0");
	assert_string_equal(vg_addr_str(&s.items[0].hi, b, sizeof(b)),
			    "10.255.255.255");
	assert_string_equal(s.items[1].text, "192.0.2.7");
	assert_string_equal(vg_addr_str(&s.items[2].hi, b, sizeof(b)),
			    "2001:db8::ff");
	assert_string_equal(vg_addr_str(&s.items[3].lo, a, sizeof(a)),
			    "192.0.2.10");
	assert_string_equal(vg_addr_str(&s.items[3].hi, b, sizeof(b)),
			    "192.0.2.50");
	assert_int_equal(s.items[4].kind, VG_SCOPE_HOST);
	assert_string_equal(s.items[4].name, "scan-me.example.com");
	assert_int_equal(s.items[5].lo.family, AF_INET6);
	assert_int_equal(vg_scope_nhosts(&s), 1);
	vg_scope_cleanup(&s);

	/* an empty list is empty, not an error */
	assert_int_equal(parse(&s, "  ", 0, &err), VG_OK);
	assert_int_equal(s.n, 0);
	vg_scope_cleanup(&s);
}

static void test_bad_items(void **state)
{
	static const struct {
		const char *list;
		int rc;
		const char *msg; /* substring of err.msg */
	} cases[] = {
		{"10.0.0.1/8", VG_PARSE, "\"10.0.0.1/8\": CIDR has host bits"},
		{"10.0.0.0/33", VG_PARSE, "prefix length 33 exceeds 32"},
		{"2001:db8::/129", VG_PARSE, "exceeds 128"},
		{"10.0.0.0/", VG_PARSE, "malformed prefix"},
		{"10.0.0.0/08", VG_PARSE, "malformed prefix"},
		{"10.0.0.0/8x", VG_PARSE, "malformed prefix"},
		{"10.0.0.256", VG_PARSE, "\"10.0.0.256\": not a valid IPv4"},
		{"010.0.0.1", VG_PARSE, "not a valid IPv4"},
		{"10.0.0.9-10.0.0.1", VG_PARSE, "range start is after"},
		{"10.0.0.1-2001:db8::1", VG_PARSE, "one address family"},
		{"10.0.0.1-10.0.0", VG_PARSE, "\"10.0.0\" is not an IP"},
		{"2001:db8::zz", VG_PARSE, "not a valid IPv6"},
		{"Example.com", VG_PARSE, "lower-case"},
		{"-bad.example.com", VG_PARSE, "may not start with '-'"},
		{"bad-.example.com", VG_PARSE, "may not end with '-'"},
		{"a..b", VG_PARSE, "empty label"},
		{"host_name", VG_PARSE, "\"host_name\": not an IP address"},
		{"*.example.com", VG_PARSE, "wildcards are allowed only"},
		{"10.0.0.1,,10.0.0.2", VG_PARSE, "empty target"},
		{"10.0.0.1,", VG_PARSE, "empty target"},
		{"169.254.169.254", VG_FORBIDDEN, "link-local 169.254.0.0/16"},
		{"169.254.0.0/16", VG_FORBIDDEN, "link-local"},
		{"169.0.0.0/8", VG_FORBIDDEN, "\"169.0.0.0/8\": overlaps"},
		{"169.254.169.250-169.254.169.255", VG_FORBIDDEN, "link-local"},
		{"::ffff:169.254.169.254", VG_FORBIDDEN, "IPv4-mapped link-local"},
		{"64:ff9b::a9fe:a9fe", VG_FORBIDDEN, "NAT64"},
		{"fe80::1", VG_FORBIDDEN, "fe80::/10"},
		{"fd00:ec2::254", VG_FORBIDDEN, "fd00:ec2::254"},
		{"127.0.0.1", VG_FORBIDDEN, "loopback 127.0.0.0/8"},
		{"::1", VG_FORBIDDEN, "loopback ::1"},
		{"::ffff:127.0.0.1", VG_FORBIDDEN, "IPv4-mapped loopback"},
		{"0.0.0.0", VG_FORBIDDEN, "this host"},
		{"localhost", VG_FORBIDDEN, "loopback host name"},
		{"db.localhost", VG_FORBIDDEN, "loopback host name"},
	};
	struct vg_scope s;
	struct vg_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		vg_scope_init(&s);
		/* a good item first: a failed list appends nothing */
		int rc = vg_scope_parse(&s, "192.0.2.1", 0, &err);

		assert_int_equal(rc, VG_OK);
		rc = vg_scope_parse(&s, cases[i].list, 0, &err);
		if (rc != cases[i].rc || !strstr(err.msg, cases[i].msg))
			fail_msg("%s: rc %d msg \"%s\", want %d \"%s\"",
				 cases[i].list, rc, err.msg, cases[i].rc,
				 cases[i].msg);
		assert_int_equal(s.n, 1);
		vg_scope_cleanup(&s);
	}
}

static void test_loopback_and_any(void **state)
{
	struct vg_scope s;
	struct vg_err err = {0};

	(void)state;
	assert_int_equal(parse(&s, "127.0.0.2,::1,localhost",
			       VG_SCOPE_ALLOW_LOOPBACK, &err),
			 VG_OK);
	vg_scope_cleanup(&s);
	/* allowing loopback does not allow link-local */
	assert_int_equal(parse(&s, "169.254.169.254", VG_SCOPE_ALLOW_LOOPBACK,
			       &err),
			 VG_FORBIDDEN);
	vg_scope_cleanup(&s);
	/* exclusions and authorised scopes may name anything */
	assert_int_equal(parse(&s, "169.254.0.0/16,*.example.com",
			       VG_SCOPE_ANY_ADDRESS | VG_SCOPE_WILDCARD, &err),
			 VG_OK);
	assert_int_equal(s.items[1].kind, VG_SCOPE_SUFFIX);
	assert_string_equal(s.items[1].name, ".example.com");
	vg_scope_cleanup(&s);
}

static void test_addr_forbidden(void **state)
{
	static const struct {
		const char *addr;
		unsigned flags;
		int want;
	} cases[] = {
		{"169.254.169.254", 0, 1},
		{"169.254.169.254", VG_SCOPE_ALLOW_LOOPBACK, 1},
		{"169.254.169.254", VG_SCOPE_ANY_ADDRESS, 0},
		{"::ffff:169.254.169.254", 0, 1},
		{"::ffff:a9fe:a9fe", 0, 1},
		{"fd00:ec2::254", 0, 1},
		{"fd00:ec2::253", 0, 0},
		{"fe80::1", 0, 1},
		{"febf::1", 0, 1},
		{"fec0::1", 0, 0},
		{"127.0.0.1", 0, 1},
		{"127.0.0.1", VG_SCOPE_ALLOW_LOOPBACK, 0},
		{"::ffff:127.0.0.1", VG_SCOPE_ALLOW_LOOPBACK, 0},
		{"::1", 0, 1},
		{"192.0.2.1", 0, 0},
		{"2001:db8::1", 0, 0},
		{"169.253.255.255", 0, 0},
		{"169.255.0.0", 0, 0},
	};
	struct vg_addr a;
	const char *why = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(vg_addr_parse(cases[i].addr, &a), VG_OK);
		if (vg_addr_forbidden(&a, cases[i].flags, &why) !=
		    cases[i].want)
			fail_msg("%s flags %u: want forbidden=%d",
				 cases[i].addr, cases[i].flags, cases[i].want);
	}
	assert_int_equal(vg_addr_parse("169.254.169.254", &a), VG_OK);
	assert_int_equal(vg_addr_forbidden(&a, 0, &why), 1);
	assert_non_null(strstr(why, "cloud metadata"));
}

static void test_contains(void **state)
{
	struct vg_scope s;
	struct vg_err err = {0};
	struct vg_addr a;

	(void)state;
	assert_int_equal(parse(&s,
			       "10.0.0.0/24,192.0.2.10-192.0.2.20,2001:db8::/"
			       "64,*.example.com,www.example.org",
			       VG_SCOPE_WILDCARD, &err),
			 VG_OK);
	static const struct {
		const char *addr;
		int want;
	} cases[] = {
		{"10.0.0.0", 1},	{"10.0.0.255", 1},
		{"10.0.1.0", 0},	{"192.0.2.9", 0},
		{"192.0.2.10", 1},	{"192.0.2.20", 1},
		{"192.0.2.21", 0},	{"2001:db8::ffff", 1},
		{"2001:db9::", 0},	{"::ffff:10.0.0.7", 1},
		{"::ffff:10.0.1.7", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(vg_addr_parse(cases[i].addr, &a), VG_OK);
		if (vg_scope_contains(&s, &a) != cases[i].want)
			fail_msg("%s: want %d", cases[i].addr, cases[i].want);
	}
	assert_true(vg_scope_contains_host(&s, "a.example.com"));
	assert_true(vg_scope_contains_host(&s, "a.b.example.com"));
	assert_false(vg_scope_contains_host(&s, "example.com"));
	assert_false(vg_scope_contains_host(&s, "badexample.com"));
	assert_true(vg_scope_contains_host(&s, "www.example.org"));
	assert_false(vg_scope_contains_host(&s, "a.www.example.org"));
	vg_scope_cleanup(&s);
}

static void test_covers(void **state)
{
	static const struct {
		const char *inner;
		const char *uncovered; /* NULL: covered */
	} cases[] = {
		{"10.0.0.0/24", NULL},
		/* the union of two adjacent outer CIDRs covers a range
		 * across their border */
		{"10.0.0.250-10.0.1.5", NULL},
		{"10.0.0.0/23", NULL},
		{"10.0.0.0/22", "10.0.0.0/22"},
		{"10.0.1.255-10.0.2.0", "10.0.1.255-10.0.2.0"},
		{"192.0.2.5,10.0.0.1", "192.0.2.5"},
		{"2001:db8::/120", NULL},
		{"2001:db9::1", "2001:db9::1"},
		{"www.example.com", NULL},
		{"a.b.example.com", NULL},
		{"example.com", "example.com"},
		{"www.example.org", NULL},
		{"api.example.org", "api.example.org"},
		{"10.0.0.1,ftp.example.net", "ftp.example.net"},
	};
	struct vg_scope outer, inner;
	struct vg_err err = {0};
	const struct vg_scope_item *bad;

	(void)state;
	assert_int_equal(parse(&outer,
			       "10.0.1.0/24,10.0.0.0/24,2001:db8::/64,"
			       "*.example.com,www.example.org",
			       VG_SCOPE_WILDCARD | VG_SCOPE_ANY_ADDRESS, &err),
			 VG_OK);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ok;

		assert_int_equal(parse(&inner, cases[i].inner, 0, &err), VG_OK);
		bad = NULL;
		ok = vg_scope_covers(&outer, &inner, &bad);
		if (cases[i].uncovered == NULL) {
			if (!ok)
				fail_msg("%s: %s not covered", cases[i].inner,
					 bad ? bad->text : "?");
		} else {
			if (ok || !bad)
				fail_msg("%s: covered, want %s uncovered",
					 cases[i].inner, cases[i].uncovered);
			assert_string_equal(bad->text, cases[i].uncovered);
		}
		vg_scope_cleanup(&inner);
	}
	/* a wildcard inside a wider wildcard */
	assert_int_equal(parse(&inner, "*.a.example.com", VG_SCOPE_WILDCARD,
			       &err),
			 VG_OK);
	assert_true(vg_scope_covers(&outer, &inner, NULL));
	vg_scope_cleanup(&inner);
	assert_int_equal(parse(&inner, "*.example.org", VG_SCOPE_WILDCARD,
			       &err),
			 VG_OK);
	assert_false(vg_scope_covers(&outer, &inner, NULL));
	vg_scope_cleanup(&inner);
	vg_scope_cleanup(&outer);
}

/* Join the items' texts with commas into buf. */
static const char *texts(const struct vg_scope *s, char *buf, size_t n)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < s->n; i++)
		len += (size_t)snprintf(buf + len, n - len, "%s%s",
					i ? "," : "", s->items[i].text);
	return buf;
}

static void test_subtract(void **state)
{
	struct vg_scope t, x, out;
	struct vg_err err = {0};
	char buf[512];

	(void)state;
	assert_int_equal(parse(&t,
			       "10.0.0.0/24,192.0.2.1,a.example.com,"
			       "b.example.com,2001:db8::/126",
			       0, &err),
			 VG_OK);
	assert_int_equal(parse(&x,
			       "10.0.0.5,10.0.0.100-10.0.0.200,10.0.0.255,"
			       "b.example.com,2001:db8::,198.51.100.0/24",
			       VG_SCOPE_ANY_ADDRESS, &err),
			 VG_OK);
	vg_scope_init(&out);
	assert_int_equal(vg_scope_subtract(&t, &x, &out, &err), VG_OK);
	assert_string_equal(texts(&out, buf, sizeof(buf)),
			    "10.0.0.0-10.0.0.4,10.0.0.6-10.0.0.99,"
			    "10.0.0.201-10.0.0.254,192.0.2.1,a.example.com,"
			    "2001:db8::1-2001:db8::3");
	assert_int_equal(vg_scope_count(&out), 5 + 94 + 54 + 1 + 3);
	vg_scope_cleanup(&out);
	vg_scope_cleanup(&x);

	/* excluding everything leaves nothing */
	assert_int_equal(parse(&x, "0.0.0.0/0,::/0,*.example.com",
			       VG_SCOPE_ANY_ADDRESS | VG_SCOPE_WILDCARD, &err),
			 VG_OK);
	vg_scope_init(&out);
	assert_int_equal(vg_scope_subtract(&t, &x, &out, &err), VG_OK);
	assert_int_equal(out.n, 0);
	vg_scope_cleanup(&out);
	vg_scope_cleanup(&x);
	vg_scope_cleanup(&t);
}

static void test_count(void **state)
{
	struct vg_scope s;
	struct vg_err err = {0};

	(void)state;
	/* overlaps count once */
	assert_int_equal(parse(&s, "10.0.0.0/24,10.0.0.128/25,10.0.0.7", 0,
			       &err),
			 VG_OK);
	assert_int_equal(vg_scope_count(&s), 256);
	vg_scope_cleanup(&s);
	assert_int_equal(parse(&s, "2001:db8::/64", 0, &err), VG_OK);
	assert_int_equal(vg_scope_count(&s), UINT64_MAX);
	vg_scope_cleanup(&s);
	assert_int_equal(parse(&s, "::/0", VG_SCOPE_ANY_ADDRESS, &err), VG_OK);
	assert_int_equal(vg_scope_count(&s), UINT64_MAX);
	vg_scope_cleanup(&s);
	assert_int_equal(parse(&s, "0.0.0.0/0", VG_SCOPE_ANY_ADDRESS, &err),
			 VG_OK);
	assert_int_equal(vg_scope_count(&s), (uint64_t)1 << 32);
	vg_scope_cleanup(&s);
}

static void test_shards(void **state)
{
	struct vg_scope s;
	struct vg_scope_iter it;
	struct vg_err err = {0};
	struct vg_addr a, prev;
	char buf[VG_ADDR_STRLEN];
	uint64_t total = 0;
	int have_prev = 0;

	(void)state;
	/* 10 + 1 + 4 = 15 addresses, IPv6 after IPv4, dedup of 10.0.0.3 */
	assert_int_equal(parse(&s,
			       "2001:db8::/126,10.0.0.0-10.0.0.9,10.0.0.3,"
			       "192.0.2.1,h.example.com",
			       0, &err),
			 VG_OK);
	for (unsigned sh = 0; sh < 4; sh++) {
		assert_int_equal(vg_scope_iter_init(&it, &s, sh, 4, 0, &err),
				 VG_OK);
		uint64_t n = 0;

		while (vg_scope_iter_next(&it, &a)) {
			/* strictly ascending across shards: each address
			 * once, shards contiguous */
			if (have_prev)
				assert_int_equal(vg_addr_cmp(&prev, &a), -1);
			prev = a;
			have_prev = 1;
			n++;
		}
		assert_int_equal(n, vg_scope_iter_count(&it));
		assert_true(n == 3 || n == 4);
		total += n;
		if (sh == 3)
			assert_string_equal(vg_addr_str(&a, buf, sizeof(buf)),
					    "2001:db8::3");
		/* reset replays the same shard */
		vg_scope_iter_reset(&it);
		assert_int_equal(vg_scope_iter_next(&it, &a), n > 0);
		vg_scope_iter_cleanup(&it);
	}
	assert_int_equal(total, 15);

	/* shard 0 of 1 starts at the lowest address */
	assert_int_equal(vg_scope_iter_init(&it, &s, 0, 1, 0, &err), VG_OK);
	assert_int_equal(vg_scope_iter_next(&it, &a), 1);
	assert_string_equal(vg_addr_str(&a, buf, sizeof(buf)), "10.0.0.0");
	vg_scope_iter_cleanup(&it);

	assert_int_equal(vg_scope_iter_init(&it, &s, 4, 4, 0, &err), VG_INVAL);
	assert_int_equal(vg_scope_iter_init(&it, &s, 0, 0, 0, &err), VG_INVAL);
	/* more shards than addresses: some are empty, none fails */
	for (unsigned sh = 0; sh < 20; sh++) {
		assert_int_equal(vg_scope_iter_init(&it, &s, sh, 20, 0, &err),
				 VG_OK);
		assert_true(vg_scope_iter_count(&it) <= 1);
		vg_scope_iter_cleanup(&it);
	}
	vg_scope_cleanup(&s);

	assert_int_equal(vg_scope_host_shard(0, 3), 0);
	assert_int_equal(vg_scope_host_shard(4, 3), 1);
}

static void test_enum_cap(void **state)
{
	struct vg_scope s;
	struct vg_scope_iter it;
	struct vg_err err = {0};
	struct vg_addr a;
	char buf[VG_ADDR_STRLEN];

	(void)state;
	/* 2^24 exactly is fine; one more address is refused */
	assert_int_equal(parse(&s, "10.0.0.0/8", 0, &err), VG_OK);
	assert_int_equal(vg_scope_iter_init(&it, &s, 1, 2, 0, &err), VG_OK);
	assert_int_equal(vg_scope_iter_count(&it), 1u << 23);
	assert_int_equal(vg_scope_iter_next(&it, &a), 1);
	assert_string_equal(vg_addr_str(&a, buf, sizeof(buf)), "10.128.0.0");
	vg_scope_iter_cleanup(&it);
	assert_int_equal(vg_scope_parse(&s, "192.0.2.1", 0, &err), VG_OK);
	assert_int_equal(vg_scope_iter_init(&it, &s, 0, 1, 0, &err),
			 VG_TOOLARGE);
	assert_non_null(strstr(err.msg, "16777217 addresses"));
	vg_scope_cleanup(&s);

	assert_int_equal(parse(&s, "2001:db8::/32", 0, &err), VG_OK);
	assert_int_equal(vg_scope_iter_init(&it, &s, 0, 1, 0, &err),
			 VG_TOOLARGE);
	assert_non_null(strstr(err.msg, "more than 2^64"));
	/* an explicit cap */
	vg_scope_cleanup(&s);
	assert_int_equal(parse(&s, "2001:db8::/120", 0, &err), VG_OK);
	assert_int_equal(vg_scope_iter_init(&it, &s, 0, 1, 100, &err),
			 VG_TOOLARGE);
	assert_int_equal(vg_scope_iter_init(&it, &s, 0, 1, 256, &err), VG_OK);
	vg_scope_iter_cleanup(&it);
	vg_scope_cleanup(&s);
}

static void test_ports(void **state)
{
	struct vg_ports p = {0};
	struct vg_err err = {0};

	(void)state;
	assert_int_equal(vg_ports_parse(&p, "443,22,80,8000-8002,80,21-23",
					&err),
			 VG_OK);
	static const uint16_t want[] = {21, 22, 23, 80, 443, 8000, 8001, 8002};
	assert_int_equal(p.n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < p.n; i++)
		assert_int_equal(p.port[i], want[i]);
	assert_int_equal(vg_ports_parse(&p, "1-65535", &err), VG_OK);
	assert_int_equal(p.n, 65535);
	assert_int_equal(p.port[65534], 65535);

	static const struct {
		const char *spec;
		int rc;
		const char *msg;
	} bad[] = {
		{"", VG_PARSE, "empty"},
		{"0", VG_RANGE, "\"0\": ports are 1 to 65535"},
		{"65536", VG_RANGE, "\"65536\""},
		{"99999999999", VG_RANGE, "1 to 65535"},
		{"80,100-90", VG_RANGE, "\"100-90\": range start is after"},
		{"80,", VG_PARSE, "trailing comma"},
		{",80", VG_PARSE, "not a port"},
		{"80 ,443", VG_PARSE, "unexpected character ' '"},
		{"http", VG_PARSE, "\"http\": not a port"},
		{"22-", VG_PARSE, "malformed range"},
		{"080", VG_PARSE, "not a port"},
		{"-5", VG_PARSE, "not a port"},
		{"1-2-3", VG_PARSE, "unexpected character '-'"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = vg_ports_parse(&p, bad[i].spec, &err);

		if (rc != bad[i].rc || !strstr(err.msg, bad[i].msg))
			fail_msg("\"%s\": rc %d \"%s\", want %d \"%s\"",
				 bad[i].spec, rc, err.msg, bad[i].rc,
				 bad[i].msg);
		assert_int_equal(p.n, 0);
	}
	vg_ports_cleanup(&p);
}

static void test_parse_array(void **state)
{
	const char *items[] = {"10.0.0.0/24", "192.0.2.1,192.0.2.2",
			       "www.example.com"};
	const char *bad[] = {"10.0.0.0/24", "10.0.0.1/24"};
	struct vg_scope s;
	struct vg_err err = {0};

	(void)state;
	vg_scope_init(&s);
	assert_int_equal(vg_scope_parse_array(&s, items, 3, 0, &err), VG_OK);
	assert_int_equal(s.n, 4);
	assert_int_equal(vg_scope_parse_array(&s, bad, 2, 0, &err), VG_PARSE);
	assert_int_equal(s.n, 4);
	assert_non_null(strstr(err.msg, "10.0.0.1/24"));
	vg_scope_cleanup(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_items),
		cmocka_unit_test(test_bad_items),
		cmocka_unit_test(test_loopback_and_any),
		cmocka_unit_test(test_addr_forbidden),
		cmocka_unit_test(test_contains),
		cmocka_unit_test(test_covers),
		cmocka_unit_test(test_subtract),
		cmocka_unit_test(test_count),
		cmocka_unit_test(test_shards),
		cmocka_unit_test(test_enum_cap),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_parse_array),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
