/* finding.c - findings, their stable fingerprints, printable evidence. */
#include "finding.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sev_names[] = {"info", "low", "medium", "high",
					"critical"};

const char *severity_name(enum severity s)
{
	return s <= SEV_CRITICAL ? sev_names[s] : "info";
}

void finding_fingerprint(const char *scanner, const char *host, int port,
			 const char *check, char out[FINGERPRINT_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char key[512];
	int n = snprintf(key, sizeof(key), "%s|%s|%d|%s", scanner, host, port,
			 check);

	if (n < 0 || (size_t)n >= sizeof(key))
		n = (int)sizeof(key) - 1;
	if (!EVP_Digest(key, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
		mdlen = 0;
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[2 * (mdlen < 32 ? mdlen : 32)] = '\0';
}

json_t *finding_new(const char *scanner, const char *check, const char *host,
		    int port, enum severity sev, const char *title,
		    json_t *evidence)
{
	char fp[FINGERPRINT_LEN + 1], t[TITLE_MAX + 1];
	json_t *f;

	if (!evidence)
		evidence = json_object();
	if (!evidence || json_object_set_new(evidence, "check",
					     json_string(check))) {
		json_decref(evidence);
		return NULL;
	}
	finding_fingerprint(scanner, host, port, check, fp);
	snprintf(t, sizeof(t), "%s", title);
	f = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:o}", "host", host,
		      "port", port, "protocol", "tcp", "scanner", scanner,
		      "severity", severity_name(sev), "fingerprint", fp,
		      "title", t, "evidence", evidence);
	return f;
}

char *printable(const unsigned char *p, size_t n)
{
	char *out = malloc(n * 4 + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (c == '\n' || c == '\r' || c == '\t' || c == '\\') {
			*o++ = '\\';
			*o++ = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\';
		} else if (c >= 0x20 && c < 0x7f) {
			*o++ = (char)c;
		} else {
			snprintf(o, 5, "\\x%02x", c);
			o += 4;
		}
	}
	*o = '\0';
	return out;
}
