/*
 * main.c - vigil-gateway: configuration, wiring, and waiting for SIGTERM.
 */
#include "gateway.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "dev"
#endif

int main(int argc, char **argv)
{
	struct gw_config cfg;
	struct gw_app *app = NULL;
	struct vg_err err = {0};
	enum vg_log_level level;
	sigset_t sigs;
	int sig = 0;

	vg_log_init("gateway");
	if (gw_config_load(&cfg, argc, argv, &err) != VG_OK) {
		vg_error("bad configuration", "err", err.msg);
		gw_config_cleanup(&cfg);
		return 2;
	}
	if (cfg.show_version || cfg.show_help) {
		if (cfg.show_version)
			printf("vigil-gateway %s\n", VIGIL_VERSION);
		else
			gw_config_usage();
		gw_config_cleanup(&cfg);
		return 0;
	}
	if (cfg.show_openapi) {
		gw_config_cleanup(&cfg);
		return gw_openapi_print(stdout) == VG_OK ? 0 : 1;
	}
	if (vg_log_parse_level(cfg.log_level, &level) == VG_OK)
		vg_log_set_level(level);
	/* every thread inherits the mask: only sigwait below sees these */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (gw_app_start(&cfg, &app, &err) != VG_OK) {
		vg_error("gateway failed to start", "err", err.msg);
		gw_config_cleanup(&cfg);
		return 1;
	}
	sigwait(&sigs, &sig);
	vg_info("signal received", "signal", strsignal(sig));
	gw_app_stop(app);
	gw_config_cleanup(&cfg);
	vg_info("gateway stopped");
	return 0;
}
