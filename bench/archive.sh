#!/usr/bin/env bash
# bench/archive.sh - vigil-worker's archive of one scan run of FINDINGS
# findings (default 100,000) into a zstd object, and its restore, against
# a real PostgreSQL 15 started here in a temporary directory.
#
# Each repetition archives the run with `vigil-worker archive run` (rows
# read, compressed, fsynced, read back, index row and deletion committed)
# and restores it with `vigil-worker archive restore` (object checked,
# decompressed, rows inserted again). Prints per repetition the wall times,
# the raw and compressed sizes, the compression ratio and the archive's
# throughput in MB/s of raw JSON Lines, then the medians next to a
# reference measured in the same run: the same rows exported by
# PostgreSQL alone (COPY of the same JSON through psql) piped into the
# zstd program at the same level (ratio archive median / reference).
#
# Not a test; never part of `make test`. The machine's other load shows
# in the numbers: compare the ratios.
#
#   bench/archive.sh [FINDINGS]          (default 100000)
#   BUILD=build/asan bench/archive.sh    (another build directory)
#   BENCH_REPEAT=5                       repetitions (default 5)
#   BENCH_LEVEL=3                        zstd level (default 3)
set -euo pipefail
{
cd "$(dirname "$0")/.."
n=${1:-${BENCH_FINDINGS:-100000}}
build=${BUILD:-build}
repeat=${BENCH_REPEAT:-5}
level=${BENCH_LEVEL:-3}
pgbin=/usr/lib/postgresql/15/bin

make --no-print-directory -j2 "$build/bin/vigil-worker" >/dev/null
worker=$(pwd)/$build/bin/vigil-worker

tmp=$(mktemp -d /tmp/vigil-bench-archive-XXXXXX)
chmod 755 "$tmp"
mkdir "$tmp/cold"
as_pg=()
if [ "$(id -u)" = 0 ]; then
	chown postgres "$tmp"
	as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pg_pid=
cleanup() {
	if [ -n "$pg_pid" ]; then
		kill -TERM "$pg_pid" 2>/dev/null || true
		wait "$pg_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

"${as_pg[@]}" "$pgbin/initdb" -D "$tmp/data" -U postgres -A trust -E UTF8 \
	--locale=C >"$tmp/initdb.log" 2>&1
"${as_pg[@]}" "$pgbin/postgres" -D "$tmp/data" -p "$port" \
	-c listen_addresses=127.0.0.1 -c unix_socket_directories="$tmp" \
	-c shared_buffers=256MB >"$tmp/pg.log" 2>&1 &
pg_pid=$!
for _ in $(seq 100); do
	"$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
	sleep 0.1
done

psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d vigil "$@"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

"$pgbin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
	-c "CREATE DATABASE vigil"
# the schema, as lib/db_migrate.c applies it: each file in a transaction
psql -c "CREATE TABLE public.schema_migrations (version integer PRIMARY KEY,
	name text NOT NULL, checksum text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now())"
for f in lib/db/migrations/*.sql; do
	psql -1 -f "$f" >/dev/null
done
tenant=$(psql -At -c "SELECT vigil.tenant_upsert(gen_random_uuid(), 'bench', '', '')")
run=$(psql -At -c "INSERT INTO vigil.scan_runs (tenant_id, state, created_at,
	finished_at, shards_done) VALUES ('$tenant', 'succeeded',
	now() - interval '100 days', now() - interval '100 days', 1)
	RETURNING id")
# what the agent's scanners report: hosts, ports, TLS and HTTP evidence
psql -c "INSERT INTO vigil.ingest_batches (tenant_id, run_id, batch_id,
	shard, findings) SELECT '$tenant', '$run', 'b' || b, b % 8, 1000
	FROM generate_series(0, ($n - 1) / 1000) b"
psql -c "INSERT INTO vigil.findings (tenant_id, run_id, batch_id, host, port,
	scanner, severity, fingerprint, title, evidence, first_seen, last_seen)
	SELECT '$tenant', '$run', 'b' || (i / 1000),
		'10.' || (i / 62500 % 250) || '.' || (i / 250 % 250) || '.' || (i % 250),
		(ARRAY[22, 80, 443, 3389, 5432, 6379, 8080, 9200])[i % 8 + 1],
		(ARRAY['tcp', 'banner', 'tls', 'http'])[i % 4 + 1],
		(ARRAY['info', 'low', 'medium', 'high', 'critical'])[i % 5 + 1]::vigil.severity,
		md5('fp' || i), 'check ' || (i % 97) || ' on port',
		jsonb_build_object('check', (ARRAY['open', 'banner', 'cert', 'header'])[i % 4 + 1],
			'banner', 'SSH-2.0-OpenSSH_9.' || (i % 9) || 'p1 Debian-' || (i % 13),
			'not_after', (now() + (i % 400) * interval '1 day')::date,
			'rtt_ms', round((random() * 50)::numeric, 3)),
		now() - interval '100 days' - (i % 60) * interval '1 hour',
		now() - interval '100 days' + random() * interval '1 hour'
	FROM generate_series(0, $n - 1) i"
psql -c "VACUUM ANALYZE" >/dev/null

export VIGIL_DB_HOST=127.0.0.1 VIGIL_DB_PORT=$port VIGIL_DB_NAME=vigil \
	VIGIL_DB_USER=vigil_app VIGIL_DB_SSLMODE=disable VIGIL_LOG_LEVEL=warn \
	VIGIL_COLD_STORAGE_DIR=$tmp/cold VIGIL_ARCHIVE_ZSTD_LEVEL=$level \
	VIGIL_REDIS_PORT=1

echo
echo "== $n findings in one run, zstd level $level"
printf '%4s %10s %10s %12s %12s %7s %9s\n' "#" "archive_s" "restore_s" \
	"raw_bytes" "zst_bytes" "ratio" "MB/s"
arch=() rest=() ratio=
for i in $(seq "$repeat"); do
	t0=$(now)
	out=$("$worker" archive run "$tenant" "$run")
	a=$(since "$t0")
	read -r raw comp < <(echo "$out" | python3 -c '
import json, sys
o = json.load(sys.stdin)
assert o["skipped"] is None, o
print(o["raw_bytes"], o["compressed_bytes"])')
	t0=$(now)
	"$worker" archive restore "$run" >/dev/null
	r=$(since "$t0")
	# a restored run stays for a retention period; the bench goes again
	psql -c "UPDATE vigil.scan_runs SET restored_at = NULL WHERE id = '$run'"
	ratio=$(echo "scale=2; $raw / $comp" | bc)
	printf '%4d %10.3f %10.3f %12d %12d %7.2f %9.1f\n' "$i" "$a" "$r" \
		"$raw" "$comp" "$ratio" "$(echo "$raw / 1000000 / $a" | bc -l)"
	arch+=("$a")
	rest+=("$r")
done
am=$(printf '%s\n' "${arch[@]}" | median)
rm_=$(printf '%s\n' "${rest[@]}" | median)

# the reference: PostgreSQL's export of the same lines into zstd
refs=()
for i in $(seq "$repeat"); do
	t0=$(now)
	psql -At -c "COPY (SELECT row_to_json(l)::text FROM (SELECT 'findings'
		AS \"table\", x AS \"row\" FROM (SELECT f.id, f.tenant_id,
		f.run_id, f.batch_id, f.host, f.port, f.protocol, f.scanner,
		f.severity, f.fingerprint, f.title, f.evidence, f.state,
		f.first_seen, f.last_seen FROM vigil.findings f
		WHERE f.run_id = '$run' ORDER BY f.id) x) l) TO STDOUT" |
		zstd -q -"$level" -o "$tmp/ref.zst" -f
	refs+=("$(since "$t0")")
done
refm=$(printf '%s\n' "${refs[@]}" | median)
refsize=$(stat -c %s "$tmp/ref.zst")
echo
printf 'archive median %.3f s (%.1f MB/s raw), restore median %.3f s\n' \
	"$am" "$(echo "$raw / 1000000 / $am" | bc -l)" "$rm_"
printf 'compression ratio %s (%d -> %d bytes); zstd program on the COPY: %d bytes\n' \
	"$ratio" "$raw" "$comp" "$refsize"
printf 'reference (COPY | zstd -%s) median %.3f s; archive / reference = %.2f\n' \
	"$level" "$refm" "$(echo "$am / $refm" | bc -l)"
exit 0
}
