/* tlscheck.c - the TLS scanner: which protocol versions a service accepts,
 * the cipher it negotiates, and its certificate: chain validity against
 * the system's CAs, expiry, self-signature, host-name match.
 *
 * Handshakes run on non-blocking sockets driven by poll in short slices,
 * so the stop flag and the timeout are honoured mid-handshake. The probes
 * of old protocols run at OpenSSL security level 0: Debian's default
 * level forbids SSLv3, TLS 1.0 and 1.1 on the client side, and a scanner
 * must be able to ask for them. */
#include "service.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vigil/timeutil.h"

#define EXPIRY_WARN_DAYS 30

struct tls_result {
	SSL *ssl;
	int fd;
};

/* Drive SSL_connect until done, failed, timed out or stopped. */
static int drive(SSL *ssl, int fd, const struct svc_ctx *c)
{
	int64_t deadline = vg_mono_ms() + c->timeout_ms;

	for (;;) {
		int r = SSL_connect(ssl), e;
		struct pollfd p = {.fd = fd};
		int64_t left;

		if (r == 1)
			return 0;
		e = SSL_get_error(ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			p.events = POLLIN;
		else if (e == SSL_ERROR_WANT_WRITE)
			p.events = POLLOUT;
		else
			return -1;
		do {
			left = deadline - vg_mono_ms();
			if (left <= 0 || svc_stopped(c))
				return -1;
			r = poll(&p, 1, left < 100 ? (int)left : 100);
		} while (r == 0);
		if (r < 0)
			return -1;
	}
}

/* A handshake with `ctx`: 0 and res filled, or -1. */
static int handshake(SSL_CTX *ctx, const struct svc_target *t,
		     const struct svc_ctx *c, struct tls_result *res)
{
	SSL *ssl = NULL;
	int fd = svc_connect(t, c);

	res->ssl = NULL;
	res->fd = -1;
	if (fd < 0)
		return -1;
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd))
		goto fail;
	if (t->hostname)
		SSL_set_tlsext_host_name(ssl, t->hostname);
	if (drive(ssl, fd, c))
		goto fail;
	res->ssl = ssl;
	res->fd = fd;
	return 0;
fail:
	SSL_free(ssl);
	close(fd);
	ERR_clear_error();
	return -1;
}

static void finish(struct tls_result *res)
{
	if (res->ssl) {
		SSL_set_quiet_shutdown(res->ssl, 1);
		SSL_free(res->ssl);
	}
	if (res->fd >= 0)
		close(res->fd);
	res->ssl = NULL;
	res->fd = -1;
	ERR_clear_error();
}

/* A client context that allows protocols [min, max] (0: library limits)
 * at security level `level`; NULL when the library refuses. */
static SSL_CTX *client_ctx(int min, int max, int level)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_security_level(ctx, level);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (!SSL_CTX_set_min_proto_version(ctx, min) ||
	    !SSL_CTX_set_max_proto_version(ctx, max) ||
	    (level == 0 &&
	     !SSL_CTX_set_cipher_list(ctx, "ALL:COMPLEMENTOFALL:@SECLEVEL=0"))) {
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	SSL_CTX_set_default_verify_paths(ctx);
	return ctx;
}

static void time_str(const ASN1_TIME *t, char *buf, size_t n)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm) ||
	    !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, n, "unknown");
}

static void name_str(const X509_NAME *nm, char *buf, size_t n)
{
	if (!nm || !X509_NAME_oneline(nm, buf, (int)n))
		snprintf(buf, n, "unknown");
}

/* The certificate's DNS and IP subject alternative names. */
static json_t *alt_names(X509 *cert)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name,
					       NULL, NULL);
	json_t *a = json_array();

	for (int i = 0; a && gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type == GEN_DNS) {
			const unsigned char *s =
				ASN1_STRING_get0_data(g->d.dNSName);
			char *p = printable(s, (size_t)ASN1_STRING_length(
						       g->d.dNSName));

			if (p)
				json_array_append_new(a, json_string(p));
			free(p);
		} else if (g->type == GEN_IPADD) {
			const unsigned char *s =
				ASN1_STRING_get0_data(g->d.iPAddress);
			int len = ASN1_STRING_length(g->d.iPAddress);
			struct vg_addr ad = {.family = len == 4 ? AF_INET
								: AF_INET6};
			char buf[VG_ADDR_STRLEN];

			if (len == 4 || len == 16) {
				memcpy(ad.b, s, (size_t)len);
				json_array_append_new(
					a, json_string(vg_addr_str(
						   &ad, buf, sizeof(buf))));
			}
		}
	}
	GENERAL_NAMES_free(gens);
	return a;
}

static void cert_checks(const struct svc_target *t, const struct svc_ctx *c,
			SSL *ssl)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	long verify = SSL_get_verify_result(ssl);
	char subj[256], iss[256], nb[32], na[32], title[512], ip[VG_ADDR_STRLEN];
	int days = 0, secs = 0;
	const char *expect;
	int match;

	if (!cert)
		return;
	name_str(X509_get_subject_name(cert), subj, sizeof(subj));
	name_str(X509_get_issuer_name(cert), iss, sizeof(iss));
	time_str(X509_get0_notBefore(cert), nb, sizeof(nb));
	time_str(X509_get0_notAfter(cert), na, sizeof(na));

	if (verify != X509_V_OK) {
		snprintf(title, sizeof(title),
			 "TLS certificate chain does not verify: %s",
			 X509_verify_cert_error_string(verify));
		svc_emit(c, t, "tls", "tls-cert-untrusted", SEV_MEDIUM, title,
			 json_pack("{s:s, s:s, s:i, s:s}", "subject", subj,
				   "issuer", iss, "verify_code", (int)verify,
				   "verify_error",
				   X509_verify_cert_error_string(verify)));
	}
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert))) {
		if (days < 0 || (days == 0 && secs < 0)) {
			snprintf(title, sizeof(title),
				 "TLS certificate expired on %s", na);
			svc_emit(c, t, "tls", "tls-cert-expired", SEV_HIGH,
				 title,
				 json_pack("{s:s, s:s, s:s, s:i}", "subject",
					   subj, "not_before", nb, "not_after",
					   na, "days_ago", -days));
		} else if (days < EXPIRY_WARN_DAYS) {
			snprintf(title, sizeof(title),
				 "TLS certificate expires in %d days (%s)",
				 days, na);
			svc_emit(c, t, "tls", "tls-cert-expiring", SEV_MEDIUM,
				 title,
				 json_pack("{s:s, s:s, s:i}", "subject", subj,
					   "not_after", na, "days_left", days));
		}
	}
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notBefore(cert)) &&
	    (days > 0 || secs > 0)) {
		snprintf(title, sizeof(title),
			 "TLS certificate is not valid before %s", nb);
		svc_emit(c, t, "tls", "tls-cert-not-yet-valid", SEV_MEDIUM,
			 title,
			 json_pack("{s:s, s:s}", "subject", subj, "not_before",
				   nb));
	}
	if (X509_self_signed(cert, 0) == 1)
		svc_emit(c, t, "tls", "tls-cert-self-signed", SEV_MEDIUM,
			 "TLS certificate is self-signed",
			 json_pack("{s:s, s:s}", "subject", subj, "issuer",
				   iss));
	vg_addr_str(&t->addr, ip, sizeof(ip));
	if (t->hostname) {
		expect = t->hostname;
		match = X509_check_host(cert, expect, 0, 0, NULL) == 1;
	} else {
		expect = ip;
		match = X509_check_ip_asc(cert, ip, 0) == 1;
	}
	if (!match) {
		snprintf(title, sizeof(title),
			 "TLS certificate does not match %s", expect);
		svc_emit(c, t, "tls", "tls-hostname-mismatch", SEV_MEDIUM,
			 title,
			 json_pack("{s:s, s:s, s:o}", "expected", expect,
				   "subject", subj, "alt_names",
				   alt_names(cert)));
	}
	X509_free(cert);
}

static int weak_cipher(const SSL_CIPHER *ci, int bits)
{
	static const char *const weak[] = {"NULL", "RC4", "DES", "EXP",
					   "anon", "ADH", "AECDH", "MD5"};
	const char *name = SSL_CIPHER_get_name(ci);

	if (bits < 128)
		return 1;
	for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++)
		if (strstr(name, weak[i]))
			return 1;
	return 0;
}

static const struct old_proto {
	int version;
	const char *name, *check;
	enum severity sev;
} old_protos[] = {
	{SSL3_VERSION, "SSLv3", "tls-protocol-sslv3", SEV_HIGH},
	{TLS1_VERSION, "TLSv1.0", "tls-protocol-tls1.0", SEV_MEDIUM},
	{TLS1_1_VERSION, "TLSv1.1", "tls-protocol-tls1.1", SEV_LOW},
};

int tls_check(const struct svc_target *t, const struct svc_ctx *c)
{
	struct tls_result res;
	SSL_CTX *ctx = client_ctx(0, 0, 0);
	const SSL_CIPHER *ci;
	char title[256];
	int bits;

	if (!ctx)
		return 0;
	if (handshake(ctx, t, c, &res)) {
		SSL_CTX_free(ctx);
		return 0;
	}
	ci = SSL_get_current_cipher(res.ssl);
	bits = SSL_CIPHER_get_bits(ci, NULL);
	snprintf(title, sizeof(title), "TLS service: %s, %s",
		 SSL_get_version(res.ssl), SSL_CIPHER_get_name(ci));
	svc_emit(c, t, "tls", "tls-service", SEV_INFO, title,
		 json_pack("{s:s, s:s, s:i}", "version",
			   SSL_get_version(res.ssl), "cipher",
			   SSL_CIPHER_get_name(ci), "bits", bits));
	if (weak_cipher(ci, bits)) {
		snprintf(title, sizeof(title), "TLS negotiates weak cipher %s",
			 SSL_CIPHER_get_name(ci));
		svc_emit(c, t, "tls", "tls-weak-cipher", SEV_MEDIUM, title,
			 json_pack("{s:s, s:i}", "cipher",
				   SSL_CIPHER_get_name(ci), "bits", bits));
	}
	cert_checks(t, c, res.ssl);
	finish(&res);
	SSL_CTX_free(ctx);

	for (size_t i = 0; i < sizeof(old_protos) / sizeof(old_protos[0]) &&
			   !svc_stopped(c);
	     i++) {
		const struct old_proto *op = &old_protos[i];
		SSL_CTX *old = client_ctx(op->version, op->version, 0);

		if (!old)
			continue; /* this OpenSSL cannot speak it */
		if (handshake(old, t, c, &res) == 0) {
			snprintf(title, sizeof(title),
				 "TLS service accepts obsolete %s", op->name);
			svc_emit(c, t, "tls", op->check, op->sev, title,
				 json_pack("{s:s, s:s}", "protocol", op->name,
					   "cipher",
					   SSL_CIPHER_get_name(
						   SSL_get_current_cipher(
							   res.ssl))));
			finish(&res);
		}
		SSL_CTX_free(old);
	}
	return 1;
}
