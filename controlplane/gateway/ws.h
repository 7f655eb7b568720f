/*
 * ws.h - the WebSocket protocol (RFC 6455) pieces the server needs: the
 * handshake's accept key, and frames. The server only sends (text, ping,
 * pong, close, never masked, never fragmented); from clients it reads
 * control frames and ignores data. Pure functions, no I/O.
 */
#ifndef GW_WS_H
#define GW_WS_H

#include <stddef.h>
#include <stdint.h>

enum {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA,
};

/* close codes (RFC 6455 section 7.4.1) */
enum {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_NO_STATUS = 1005,
	WS_CLOSE_ABNORMAL = 1006,
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_TRY_AGAIN = 1013,
};

#define WS_ACCEPT_LEN  28 /* base64 of a SHA-1 */
#define WS_HEADER_MAX  14 /* 2 + 8 (length) + 4 (mask) */
#define WS_CONTROL_MAX 125

/* 1 when `key` (Sec-WebSocket-Key) is the base64 of 16 bytes. */
int ws_key_valid(const char *key);
/* Sec-WebSocket-Accept of `key`: base64(SHA-1(key + the RFC's GUID)),
 * NUL-terminated into `out`. 0, or -1 when hashing failed. */
int ws_accept(const char *key, char out[WS_ACCEPT_LEN + 1]);

/* A client frame's header. */
struct ws_frame {
	int fin;
	int opcode;
	size_t head; /* header bytes, mask included */
	uint64_t len;
	unsigned char mask[4];
};

/*
 * Parse the header of a client frame from `n` bytes. Returns 1 with `f`
 * filled, 0 when more bytes are needed, or the close code to fail the
 * connection with: WS_CLOSE_PROTOCOL (reserved bits, unknown opcode, an
 * unmasked frame, a long or fragmented control frame, a length that is
 * not minimal-encoded is allowed), WS_CLOSE_TOO_BIG past `max_payload`.
 */
int ws_parse(const unsigned char *p, size_t n, uint64_t max_payload,
             struct ws_frame *f);
/* Unmask `n` payload bytes that start `offset` bytes into the payload. */
void ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4],
               size_t offset);
/* The header of an unmasked, final server frame of `len` bytes into
 * `out`; its length. */
size_t ws_header(unsigned char out[WS_HEADER_MAX], int opcode, uint64_t len);
/* A whole close frame with `code` and `reason` (truncated to fit a
 * control frame) into `out` (WS_CONTROL_MAX + 2 bytes); its length. */
size_t ws_close_frame(unsigned char *out, int code, const char *reason);

#endif
