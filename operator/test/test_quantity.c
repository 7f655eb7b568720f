/*
 * test_quantity.c - quantity parsing and canonical form against the
 * outputs of the API server (k8s.io/apimachinery resource.Quantity).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "quantity.h"

struct canon_case {
	const char *in;
	const char *want;
};

/* What the API server stores and prints for each input. */
static const struct canon_case canon[] = {
	/* the cases the operator's defaults and users write */
	{"1000m", "1"},
	{"0.5", "500m"},
	{"1024Mi", "1Gi"},
	{"1.5Gi", "1536Mi"},
	{"100m", "100m"},
	{"250m", "250m"},
	{"500m", "500m"},
	{"1", "1"},
	{"2", "2"},
	{"256Mi", "256Mi"},
	{"512Mi", "512Mi"},
	{"2Gi", "2Gi"},
	{"20Gi", "20Gi"},
	{"2048Mi", "2Gi"},
	{"1.5", "1500m"},
	{"0.1", "100m"},
	{".5", "500m"},
	{"1.", "1"},
	{"1.G", "1G"},
	{"2000", "2k"},
	{"1.5k", "1500"},
	{"1500", "1500"},
	{"1073741824", "1073741824"},
	{"1000000000", "1G"},
	{"0", "0"},
	{"00", "0"},
	{"0Gi", "0"},
	{"0.000m", "0"},
	{"-0", "0"},
	{"+1", "1"},
	{"-1", "-1"},
	{"-1.5Gi", "-1536Mi"},
	{"-100m", "-100m"},
	/* resource.TestQuantityParseEmit */
	{"1Ki", "1Ki"},
	{"1Mi", "1Mi"},
	{"1Gi", "1Gi"},
	{"1000M", "1G"},
	{".001Ki", "1024m"},
	{".000001Ki", "1024u"},
	{".000000001Ki", "1024n"},
	{".000000000001Ki", "2n"},
	/* resource.TestQuantityString: alternate spellings */
	{"307200Ki", "300Mi"},
	{"1025024Mi", "1001Gi"},
	{"1024Gi", "1Ti"},
	{"5000m", "5"},
	{"0.001T", "1G"},
	{"1000u", "1m"},
	{"1.08", "1080m"},
	{"1080000000n", "1080m"},
	{"1025", "1025"},
	{"1000E", "1e21"},
	{"5000E", "5e21"},
	{".001e12", "1e9"},
	{"0.001e0", "1e-3"},
	{"1000e-12", "1e-9"},
	/* decimal suffixes and exponents */
	{"5n", "5n"},
	{"4u", "4u"},
	{"50k", "50k"},
	{"40T", "40T"},
	{"300T", "300T"},
	{"2P", "2P"},
	{"1E", "1E"},
	{"12E", "12E"}, /* the int64 fast path does not cap */
	{"1e3", "1e3"},
	{"1E6", "1e6"},
	{"1E-3", "1e-3"},
	{"1e14", "100e12"},
	{"1.2e3", "1200"},
	{"1.3E+6", "1300e3"},
	{"1.40e9", "1400e6"},
	{"0.5e0", "500e-3"},
	{"100.035k", "100035"},
	{"10.035M", "10035k"},
	{"8.1k", "8100"},
	{"7.123456M", "7123456"},
	{"1.01E", "1010P"},
	{"9.01", "9010m"},
	/* rounding up to 1n and capping at 2^63-1 */
	{"3.001n", "4n"},
	{"1.1E-9", "2e-9"},
	{"0.0000000001", "1n"},
	{"0.00000000050", "1n"},
	{"0.9n", "1n"},
	{"0.00000012345", "124n"},
	{"0.000000000000000000001", "1n"},
	{"9Ei", "9223372036854775807"},
	{"9223372036854775807Ki", "9223372036854775807"},
	{"12345678901234567890", "9223372036854775807"},
	/* fractional binary values */
	{"0.5Mi", "512Ki"},
	{"0.5Ki", "512"},
	{"100.035Ki", "102435840m"},
	{"0.05Gi", "53687091200m"},
	{"0.025Ti", "27487790694400m"},
	{"1.0001Ki", "1024102400u"},
	{"4Ei", "4Ei"},
	{"4096Pi", "4Ei"},
};

static void test_canonical_table(void **state)
{
	(void)state;
	char out[QUANTITY_STR_MAX];
	struct vg_err err;

	for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
		vg_err_clear(&err);
		int rc = quantity_canonical(canon[i].in, out, sizeof(out),
					    &err);
		if (rc != VG_OK)
			fail_msg("\"%s\": %s", canon[i].in, err.msg);
		if (strcmp(out, canon[i].want) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"", canon[i].in,
				 out, canon[i].want);
	}
}

/* A canonical form parses back to itself (the server caches it as is). */
static void test_canonical_is_fixed_point(void **state)
{
	(void)state;
	char once[QUANTITY_STR_MAX], twice[QUANTITY_STR_MAX];

	for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
		assert_int_equal(quantity_canonical(canon[i].in, once,
						    sizeof(once), NULL),
				 VG_OK);
		assert_int_equal(
			quantity_canonical(once, twice, sizeof(twice), NULL),
			VG_OK);
		assert_string_equal(once, twice);
	}
}

static void test_invalid(void **state)
{
	(void)state;
	static const char *bad[] = {
		"",	 " 1",	   "1 ",      "1.1.M", "1+1.0M", "0.1mi",
		"0.1am", "aoeu",   ".5i",     "1i",    "-3.01i", "-3.01e-",
		"1e",	 "1K",	   "-",	      ".",     "1e1.5",	 "1Kib",
		"Gi",	 "1 Gi",   "0x10",    "1e+",   "--1",	 "1.5.5",
	};
	char out[QUANTITY_STR_MAX];
	struct vg_err err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vg_err_clear(&err);
		if (quantity_canonical(bad[i], out, sizeof(out), &err) !=
		    VG_INVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_true(strlen(err.msg) > 0);
	}
	vg_err_clear(&err);
	assert_int_equal(quantity_canonical("1e99999999", out, sizeof(out),
					    &err),
			 VG_RANGE);
	assert_non_null(strstr(err.msg, "exponent"));
	assert_int_equal(quantity_canonical(NULL, out, sizeof(out), NULL),
			 VG_INVAL);
}

static void test_long_input_and_small_buffer(void **state)
{
	(void)state;
	char in[QUANTITY_INPUT_MAX + 2];
	char out[QUANTITY_STR_MAX], tiny[3];

	memset(in, '1', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	assert_int_equal(quantity_canonical(in, out, sizeof(out), NULL),
			 VG_INVAL);
	/* 256 digits: accepted, capped */
	in[QUANTITY_INPUT_MAX] = '\0';
	assert_int_equal(quantity_canonical(in, out, sizeof(out), NULL),
			 VG_OK);
	assert_string_equal(out, "9223372036854775807");
	/* 0.000...01 with 255 zeros rounds up to 1n */
	memset(in, '0', QUANTITY_INPUT_MAX);
	in[1] = '.';
	in[QUANTITY_INPUT_MAX - 1] = '1';
	assert_int_equal(quantity_canonical(in, out, sizeof(out), NULL),
			 VG_OK);
	assert_string_equal(out, "1n");
	assert_int_equal(quantity_canonical("1536Mi", tiny, sizeof(tiny),
					    NULL),
			 VG_TOOLARGE);
}

static int cmp_str(const char *a, const char *b)
{
	struct quantity qa, qb;

	assert_int_equal(quantity_parse(&qa, a, NULL), VG_OK);
	assert_int_equal(quantity_parse(&qb, b, NULL), VG_OK);
	return quantity_cmp(&qa, &qb);
}

static void test_compare(void **state)
{
	(void)state;
	assert_int_equal(cmp_str("0", "0"), 0);
	assert_true(cmp_str("100m", "50m") > 0);
	assert_true(cmp_str("50m", "100m") < 0);
	assert_true(cmp_str("10000T", "100Gi") > 0);
	assert_int_equal(cmp_str("1Gi", "1024Mi"), 0);
	assert_int_equal(cmp_str("1", "1000m"), 0);
	assert_true(cmp_str("1G", "1Gi") < 0);
	assert_true(cmp_str("20Gi", "21Gi") < 0);
	assert_true(cmp_str("21Gi", "20Gi") > 0);
	assert_true(cmp_str("-1", "0") < 0);
	assert_true(cmp_str("-2", "-1") < 0);
	assert_true(cmp_str("0", "-0.5") > 0);
	assert_true(cmp_str("1n", "0") > 0);
	assert_true(cmp_str("1.5Gi", "1536Mi") == 0);
	assert_true(cmp_str("1e3", "1k") == 0);
	assert_true(cmp_str("999", "1k") < 0);
}

static void test_json_forms(void **state)
{
	(void)state;
	char out[QUANTITY_STR_MAX];
	struct vg_err err;
	json_t *v;

	v = json_integer(2);
	assert_int_equal(quantity_canonical_json(v, out, sizeof(out), NULL),
			 VG_OK);
	assert_string_equal(out, "2");
	json_decref(v);
	v = json_integer(2000);
	assert_int_equal(quantity_canonical_json(v, out, sizeof(out), NULL),
			 VG_OK);
	assert_string_equal(out, "2k");
	json_decref(v);
	v = json_integer(21474836480);
	assert_int_equal(quantity_canonical_json(v, out, sizeof(out), NULL),
			 VG_OK);
	assert_string_equal(out, "21474836480");
	json_decref(v);
	v = json_string("1.5Gi");
	assert_int_equal(quantity_canonical_json(v, out, sizeof(out), NULL),
			 VG_OK);
	assert_string_equal(out, "1536Mi");
	json_decref(v);
	v = json_real(0.5);
	vg_err_clear(&err);
	assert_int_equal(quantity_canonical_json(v, out, sizeof(out), &err),
			 VG_INVAL);
	assert_non_null(strstr(err.msg, "string or an integer"));
	json_decref(v);
	assert_int_equal(quantity_canonical_json(NULL, out, sizeof(out), NULL),
			 VG_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical_table),
		cmocka_unit_test(test_canonical_is_fixed_point),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_long_input_and_small_buffer),
		cmocka_unit_test(test_compare),
		cmocka_unit_test(test_json_forms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
