# e2e/lib/services.sh - real PostgreSQL and Redis servers for end-to-end
# tests, on free loopback ports in temporary directories, stopped by PID.
# Source after e2e/lib/operator.sh (uses free_port, fail).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

# pg_start: sets PG_DIR, PG_PORT, PG_PID, PG_URL (superuser postgres)
pg_start() {
	local as=()
	PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/vigil-e2e-pg-XXXXXX")
	PG_PORT=$(free_port)
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$PG_DIR"
		# setpriv execs in place (no forking wrapper), so PG_PID is postgres
		as=(setpriv --reuid=postgres --regid=postgres --init-groups)
	fi
	"${as[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 \
		--no-sync --locale=C >"$PG_DIR.log" 2>&1 || { cat "$PG_DIR.log"; fail "initdb failed"; }
	"${as[@]}" "$PG_BIN/postgres" -D "$PG_DIR/data" -p "$PG_PORT" \
		-c listen_addresses=127.0.0.1 -c unix_socket_directories="$PG_DIR" \
		-c fsync=off -c synchronous_commit=off >>"$PG_DIR.log" 2>&1 &
	PG_PID=$!
	PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
	for _ in $(seq 1 100); do
		"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && return 0
		sleep 0.1
	done
	cat "$PG_DIR.log"
	fail "PostgreSQL did not start"
}

pg_stop() {
	[ -n "${PG_PID:-}" ] || return 0
	kill -INT "$PG_PID" 2>/dev/null || true
	wait "$PG_PID" 2>/dev/null || true
	PG_PID=
	rm -rf "$PG_DIR" "$PG_DIR.log"
}

# psql_q SQL: one value, unaligned
psql_q() {
	psql -XAtq "$PG_URL" -c "$1"
}

# redis_start: sets REDIS_DIR, REDIS_PORT, REDIS_PID
redis_start() {
	REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/vigil-e2e-redis-XXXXXX")
	REDIS_PORT=$(free_port)
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
		--save '' --appendonly yes >"$REDIS_DIR.log" 2>&1 &
	REDIS_PID=$!
	for _ in $(seq 1 100); do
		redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
		sleep 0.1
	done
	cat "$REDIS_DIR.log"
	fail "Redis did not start"
}

redis_stop() {
	[ -n "${REDIS_PID:-}" ] || return 0
	kill -TERM "$REDIS_PID" 2>/dev/null || true
	wait "$REDIS_PID" 2>/dev/null || true
	REDIS_PID=
	rm -rf "$REDIS_DIR" "$REDIS_DIR.log"
}
