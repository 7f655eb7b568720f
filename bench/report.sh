#!/usr/bin/env bash
# bench/report.sh - vigil-brain's run report against a real PostgreSQL 15
# started here in a temporary directory, in two scenarios:
#
#   tenant   a tenant holding FINDINGS findings (default 100,000) in three
#            runs of one policy: the goal's case (report under 0.5 s)
#   run      the run being reported alone holds FINDINGS findings, and
#            each of the two runs before it as many (3 x FINDINGS in the
#            tenant): the stress case
#
# In both, the reported run (run 3) has 2% of its findings regressed
# (seen in run 1, gone in run 2), 2% new and the rest persisting; run 2
# loses 4% to resolved. Reports of runs 1 and 2 are generated first (the
# steady state: the trend reads their numbers), then run 3's report is
# generated BENCH_REPEAT times with `vigil-brain generate` (forced, so each
# one loads, analyses, renders and stores everything again).
#
# Prints per repetition the brain's own phases (load: queries and
# analysis; render: JSON and HTML; store) and the process's wall time,
# then per scenario the median next to:
#   - the goal, 0.5 s (ratio median / 0.5 s);
#   - a reference measured in the same run: PostgreSQL alone reading the
#     rows the report reads (every finding of the policy's runs) with
#     COPY through psql (ratio median / reference).
#
# Not a test; never part of `make test`. The machine's other load shows
# in the numbers: compare the ratios.
#
#   bench/report.sh [FINDINGS]          (default 100000)
#   BUILD=build/asan bench/report.sh    (another build directory)
#   BENCH_REPEAT=5                      repetitions (default 5)
#   BENCH_SCENARIOS="tenant run"        which scenarios (default both)
#   BENCH_KEEP=1                        leave PostgreSQL running (its PID,
#                                       port and directory are printed)
set -euo pipefail
{
cd "$(dirname "$0")/.."
n=${1:-${BENCH_FINDINGS:-100000}}
build=${BUILD:-build}
repeat=${BENCH_REPEAT:-5}
scenarios=${BENCH_SCENARIOS:-tenant run}
pgbin=/usr/lib/postgresql/15/bin
goal=0.5

if ((n < 3000)); then
	echo "bench/report.sh: at least 3000 findings" >&2
	exit 2
fi
make --no-print-directory -j2 "$build/bin/vigil-brain" >/dev/null
brain=$(pwd)/$build/bin/vigil-brain

tmp=$(mktemp -d /tmp/vigil-bench-report-XXXXXX)
chmod 755 "$tmp"
as_pg=()
if [ "$(id -u)" = 0 ]; then
	chown postgres "$tmp"
	as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pg_pid=
cleanup() {
	if [ -n "${BENCH_KEEP:-}" ]; then
		echo "kept: PostgreSQL pid $pg_pid port $port dir $tmp"
		return
	fi
	if [ -n "$pg_pid" ]; then
		kill -TERM "$pg_pid" 2>/dev/null || true
		wait "$pg_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

"${as_pg[@]}" "$pgbin/initdb" -D "$tmp/data" -U postgres -A trust -E UTF8 \
	--no-sync --locale=C >"$tmp/initdb.log" 2>&1
"${as_pg[@]}" "$pgbin/postgres" -D "$tmp/data" -p "$port" \
	-c listen_addresses=127.0.0.1 -c unix_socket_directories="$tmp" \
	-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
	-c shared_buffers=256MB >"$tmp/pg.log" 2>&1 &
pg_pid=$!
for _ in $(seq 100); do
	"$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
	sleep 0.1
done

psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" "$@"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

# scenario NAME PER_RUN: a database of its own, three runs of PER_RUN
scenario() {
	local name=$1 m=$2 db=vigil_$1 tenant run r lo hi extra t0
	local runs=() totals=()

	psql -U postgres -d postgres -c "CREATE DATABASE $db" >/dev/null
	# the schema, as lib/db_migrate.c applies it: each file in a
	# transaction
	psql -U postgres -d "$db" -c "CREATE TABLE public.schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL,
		checksum text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())"
	for f in lib/db/migrations/*.sql; do
		psql -U postgres -d "$db" -1 -f "$f" >/dev/null
	done
	t0=$(now)
	tenant=$(psql -U postgres -d "$db" -At -c \
		"SELECT vigil.tenant_upsert(gen_random_uuid(), 'bench', '', '')")
	# run r holds fingerprints [lo, hi), run 3 also [0, 2%): regressed;
	# run 2 drops [0, 4%), run 3 drops [4%, 8%) and adds [104%, 106%)
	for r in 1 2 3; do
		case $r in
		1) lo=0 hi=$m extra=0 ;;
		2) lo=$((m / 25)) hi=$((m + m / 25)) extra=0 ;;
		3) lo=$((m * 8 / 100)) hi=$((m * 106 / 100)) extra=$((m / 50)) ;;
		esac
		run=$(psql -U postgres -d "$db" -At -c "
		INSERT INTO vigil.scan_runs (tenant_id, policy_uid,
			policy_namespace, policy_name, state, created_at,
			started_at, finished_at, shards_done)
		VALUES ('$tenant', 'bench-policy', 'tenant-bench', 'nightly',
			'succeeded', now() - interval '$((4 - r)) days',
			now() - interval '$((4 - r)) days',
			now() - interval '$((4 - r)) days' + interval '1 hour', 1)
		RETURNING id")
		runs+=("$run")
		psql -U postgres -d "$db" -c "
		INSERT INTO vigil.findings (tenant_id, run_id, batch_id, host,
			port, scanner, severity, fingerprint, title, evidence,
			first_seen, last_seen)
		SELECT '$tenant', '$run', 'b' || (i / 1000),
			CASE WHEN i % 10 = 0 THEN '203.0.113.' || (i % 250)
			     ELSE '10.' || (i / 62500 % 250) || '.'
				  || (i / 250 % 250) || '.' || (i % 250) END,
			(ARRAY[22, 80, 443, 3389, 5432, 6379, 8080,
			       9200])[i % 8 + 1],
			'tcp',
			(ARRAY['info', 'low', 'medium', 'high',
			       'critical'])[i % 5 + 1]::vigil.severity,
			'fp-' || i, 'check ' || (i % 97) || ' on port',
			'{\"banner\": \"x\"}',
			now() - interval '$((4 - r)) days'
				- (i % 60) * interval '1 day',
			now() - interval '$((4 - r)) days'
		FROM (SELECT generate_series($lo, $hi - 1) AS i
		      UNION ALL SELECT generate_series(0, $extra - 1)) s"
		psql -U postgres -d "$db" -c "
		UPDATE vigil.scan_runs r SET finding_counts = c.counts
		FROM (SELECT jsonb_build_object(
			'critical', count(*) FILTER (WHERE severity = 'critical'),
			'high', count(*) FILTER (WHERE severity = 'high'),
			'medium', count(*) FILTER (WHERE severity = 'medium'),
			'low', count(*) FILTER (WHERE severity = 'low'),
			'info', count(*) FILTER (WHERE severity = 'info'),
			'total', count(*)) AS counts
		      FROM vigil.findings WHERE run_id = '$run') c
		WHERE r.id = '$run'"
	done
	psql -U postgres -d "$db" -c "VACUUM ANALYZE" >/dev/null
	echo
	printf '== %s: %s findings in the tenant, %s in the reported run (loaded in %.1f s)\n' \
		"$name" \
		"$(psql -U postgres -d "$db" -At -c 'SELECT count(*) FROM vigil.findings')" \
		"$(psql -U postgres -d "$db" -At -c "SELECT count(*) FROM vigil.findings WHERE run_id = '${runs[2]}'")" \
		"$(since "$t0")"

	export VIGIL_DB_HOST=127.0.0.1 VIGIL_DB_PORT=$port VIGIL_DB_NAME=$db \
		VIGIL_DB_USER=vigil_app VIGIL_DB_SSLMODE=disable \
		VIGIL_LOG_LEVEL=warn
	# the steady state: the earlier runs have their reports
	"$brain" generate "$tenant" "${runs[0]}" >/dev/null
	"$brain" generate "$tenant" "${runs[1]}" >/dev/null

	printf '%4s %9s %9s %9s %9s %9s %9s %9s\n' "#" "load_s" "render_s" \
		"store_s" "brain_s" "wall_s" "json_KB" "html_KB"
	local out load render store total jb hb wall
	for i in $(seq "$repeat"); do
		t0=$(now)
		out=$("$brain" generate "$tenant" "${runs[2]}")
		wall=$(since "$t0")
		read -r load render store total jb hb < <(echo "$out" | python3 -c '
import json, sys
o = json.load(sys.stdin)
print(o["load_s"], o["render_s"], o["store_s"], o["total_s"],
      o["json_bytes"] // 1024, o["html_bytes"] // 1024)')
		printf '%4d %9.3f %9.3f %9.3f %9.3f %9.3f %9d %9d\n' "$i" \
			"$load" "$render" "$store" "$total" "$wall" "$jb" "$hb"
		totals+=("$total")
	done
	echo "$out" | python3 -c '
import json, sys
o = json.load(sys.stdin)
print("classification: new %d, persisting %d, resolved %d, regressed %d" %
      (o["new"], o["persisting"], o["resolved"], o["regressed"]))'
	local median ref
	median=$(printf '%s\n' "${totals[@]}" | sort -g |
		awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')

	# the reference: PostgreSQL alone reading the rows the report reads
	t0=$(now)
	psql -U postgres -d "$db" -c "
	COPY (SELECT run_id, fingerprint, host, port, severity, first_seen
	      FROM vigil.findings WHERE tenant_id = '$tenant'
	      AND run_id IN ('${runs[0]}', '${runs[1]}', '${runs[2]}'))
	TO STDOUT" >/dev/null
	ref=$(since "$t0")

	printf 'median %.3f s (load + render + store); goal %.1f s: ratio %.2f, %s\n' \
		"$median" "$goal" "$(echo "$median / $goal" | bc -l)" \
		"$(echo "$median < $goal" | bc -l | sed 's/1/met/;s/0/NOT met/')"
	printf 'reference, PostgreSQL reading the same rows (COPY): %.3f s; ratio %.2f\n' \
		"$ref" "$(echo "$median / $ref" | bc -l)"
}

for s in $scenarios; do
	case $s in
	tenant) scenario tenant $((n / 3)) ;;
	run) scenario run "$n" ;;
	*) echo "bench/report.sh: unknown scenario $s" >&2; exit 2 ;;
	esac
done
exit 0
}
