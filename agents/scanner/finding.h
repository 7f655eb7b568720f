/* finding.h - one result of a check, as the gateway's ingest takes it:
 *
 *   {"host":"192.0.2.7","port":443,"protocol":"tcp","scanner":"tls",
 *    "severity":"high","fingerprint":"<64 hex>","title":"...",
 *    "evidence":{"check":"tls-cert-expired",...}}
 *
 * The fingerprint is the hex SHA-256 of "scanner|host|port|check": the
 * same issue on the same service has the same fingerprint in every run, so
 * the brain can diff runs. */
#ifndef AGENT_FINDING_H
#define AGENT_FINDING_H

#include <jansson.h>
#include <stddef.h>

enum severity { SEV_INFO, SEV_LOW, SEV_MEDIUM, SEV_HIGH, SEV_CRITICAL };

#define FINGERPRINT_LEN 64
#define TITLE_MAX 1024

/* "info", "low", ... (static). */
const char *severity_name(enum severity s);

/* Hex SHA-256 of "scanner|host|port|check" into out (65 bytes). */
void finding_fingerprint(const char *scanner, const char *host, int port,
			 const char *check, char out[FINGERPRINT_LEN + 1]);

/*
 * A new finding object. `evidence` is stolen (NULL: an empty object) and
 * gets "check": check added; `title` is cut to TITLE_MAX bytes. NULL on
 * allocation failure.
 */
json_t *finding_new(const char *scanner, const char *check, const char *host,
		    int port, enum severity sev, const char *title,
		    json_t *evidence);

/* `p` (n bytes) as printable ASCII: \n, \r, \t, \\ and other bytes outside
 * 0x20-0x7e written as escapes ("\x00"). New string, NULL on failure. */
char *printable(const unsigned char *p, size_t n);

#endif
