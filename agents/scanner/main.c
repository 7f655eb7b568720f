/* vigil-agent: the scanner of an agent pod. Reads its scan from flags and
 * the environment the operator renders (README.md), scans, and posts the
 * findings to the gateway. Configuration and wiring; the run is in
 * agent.c. */
#include "agent.h"
#include "options.h"

#include <curl/curl.h>
#include <stdio.h>

#include "vigil/log.h"

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "dev"
#endif

int main(int argc, char **argv)
{
	struct options o;
	struct vg_err err = {0};
	enum vg_log_level lvl;
	int rc = EXIT_BAD_INPUT;

	vg_log_init("agent");
	if (options_parse(&o, argc, argv, &err) != VG_OK) {
		vg_error("invalid input", "err", err.msg);
		goto out;
	}
	if (o.show_help || o.show_version) {
		if (o.show_help)
			options_usage(argv[0], stdout);
		else
			printf("vigil-agent %s\n", VIGIL_VERSION);
		rc = EXIT_DONE;
		goto out;
	}
	if (vg_log_parse_level(o.log_level, &lvl) == VG_OK)
		vg_log_set_level(lvl);
	if (options_check(&o, &err) != VG_OK) {
		vg_error("invalid input", "err", err.msg);
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		vg_error("cannot initialise libcurl");
		rc = EXIT_FAILURE_RUN;
		goto out;
	}
	rc = agent_run(&o, VIGIL_VERSION);
	curl_global_cleanup();
out:
	options_cleanup(&o);
	return rc;
}
