/*
 * ws.c - WebSocket handshake key and frames (ws.h).
 */
#include "ws.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ws_key_valid(const char *key)
{
	unsigned char raw[24];
	size_t n = key ? strlen(key) : 0;

	/* 16 bytes: 22 characters and "==" */
	if (n != 24 || key[22] != '=' || key[23] != '=')
		return 0;
	for (size_t i = 0; i < 22; i++) {
		char c = key[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return 0;
	}
	return EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18;
}

int ws_accept(const char *key, char out[WS_ACCEPT_LEN + 1])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	char in[128];
	size_t kl = strlen(key);

	if (kl + sizeof(guid) > sizeof(in))
		return -1;
	memcpy(in, key, kl);
	memcpy(in + kl, guid, sizeof(guid) - 1);
	if (!SHA1((const unsigned char *)in, kl + sizeof(guid) - 1, md))
		return -1;
	return EVP_EncodeBlock((unsigned char *)out, md, sizeof(md)) ==
	                       WS_ACCEPT_LEN
	               ? 0
	               : -1;
}

int ws_parse(const unsigned char *p, size_t n, uint64_t max_payload,
             struct ws_frame *f)
{
	size_t head = 2;
	uint64_t len;

	if (n < 2)
		return 0;
	f->fin = p[0] >> 7;
	f->opcode = p[0] & 0x0f;
	if (p[0] & 0x70) /* no extension was negotiated */
		return WS_CLOSE_PROTOCOL;
	switch (f->opcode) {
	case WS_OP_CONT:
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		break;
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		if (!f->fin || (p[1] & 0x7f) > WS_CONTROL_MAX)
			return WS_CLOSE_PROTOCOL;
		break;
	default:
		return WS_CLOSE_PROTOCOL;
	}
	if (!(p[1] & 0x80)) /* clients must mask */
		return WS_CLOSE_PROTOCOL;
	len = p[1] & 0x7f;
	if (len == 126) {
		if (n < 4)
			return 0;
		len = (uint64_t)p[2] << 8 | p[3];
		head = 4;
	} else if (len == 127) {
		if (n < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
		if (len >> 63)
			return WS_CLOSE_PROTOCOL;
		head = 10;
	}
	if (len > max_payload)
		return WS_CLOSE_TOO_BIG;
	if (n < head + 4)
		return 0;
	memcpy(f->mask, p + head, 4);
	f->head = head + 4;
	f->len = len;
	return 1;
}

void ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4],
               size_t offset)
{
	for (size_t i = 0; i < n; i++)
		p[i] ^= mask[(i + offset) & 3];
}

size_t ws_header(unsigned char out[WS_HEADER_MAX], int opcode, uint64_t len)
{
	out[0] = (unsigned char)(0x80 | (opcode & 0x0f));
	if (len < 126) {
		out[1] = (unsigned char)len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (unsigned char)(len >> 8);
		out[3] = (unsigned char)len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
	return 10;
}

size_t ws_close_frame(unsigned char *out, int code, const char *reason)
{
	size_t rl = reason ? strlen(reason) : 0;

	if (rl > WS_CONTROL_MAX - 2)
		rl = WS_CONTROL_MAX - 2;
	out[0] = 0x80 | WS_OP_CLOSE;
	out[1] = (unsigned char)(2 + rl);
	out[2] = (unsigned char)(code >> 8);
	out[3] = (unsigned char)code;
	memcpy(out + 4, reason, rl);
	return 4 + rl;
}
