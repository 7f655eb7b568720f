/* fuzz_cron.c - libFuzzer target for schedules users write: cron
 * expressions, POSIX TZ rules, and TZif bytes (a zone file is outside input
 * too when a container image brings its own). Checks that a parsed
 * schedule's next firing time is later, on a whole minute, and matches. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[300];
	struct vg_cron c;
	struct vg_tz *tz = NULL;
	struct vg_err err;
	int64_t t, next;

	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		if (size - 1 >= sizeof(s))
			return 0;
		memcpy(s, data + 1, size - 1);
		s[size - 1] = '\0';
		if (vg_cron_parse(s, &c, &err) != VG_OK)
			return 0;
		t = 1800000000;
		if (vg_cron_next(&c, NULL, t, &next) == VG_OK &&
		    (next <= t || next % 60 != 0))
			abort();
		break;
	case 1:
		if (size - 1 >= sizeof(s))
			return 0;
		memcpy(s, data + 1, size - 1);
		s[size - 1] = '\0';
		if (vg_tz_parse_rule(s, &tz, &err) != VG_OK)
			return 0;
		for (t = 1700000000; t < 1900000000; t += 86400 * 17) {
			int32_t off = vg_tz_offset(tz, t, &next);

			if (next <= t || off < -200 * 3600 || off > 200 * 3600)
				abort();
		}
		vg_tz_free(tz);
		break;
	default:
		if (vg_tz_parse(data + 1, size - 1, &tz, &err) != VG_OK)
			return 0;
		if (vg_cron_parse("*/7 3 * * *", &c, &err) != VG_OK ||
		    (vg_cron_next(&c, tz, 1800000000, &next) == VG_OK &&
		     next <= 1800000000))
			abort();
		vg_tz_free(tz);
		break;
	}
	return 0;
}
