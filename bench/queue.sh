#!/usr/bin/env bash
# End-to-end throughput of the task queue: no-op tasks enqueued (pipelined
# batches of 100), processed and acknowledged by 1 and then 2 vigil-worker
# processes, next to redis-benchmark's unpipelined LPUSH rate measured in
# the same run against the same Redis. Prints; never gates anything.
#
#   bench/queue.sh [TASKS]          (default 200000)
#   BUILD=build/asan bench/queue.sh (another build directory)
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${1:-200000}
build=${BUILD:-build}
concurrency=${CONCURRENCY:-2}
prefetch=${PREFETCH:-64}

make --no-print-directory "$build/lib/libvigil.a" "$build/bin/vigil-worker" >/dev/null
tmp=$(mktemp -d /tmp/vigil-bench-queue-XXXXXX)
load=$tmp/queue_load
# shellcheck disable=SC2046
gcc -std=c11 -O2 -D_GNU_SOURCE -Ilib $(pkg-config --cflags jansson hiredis) \
	-o "$load" bench/queue_load.c "$build/lib/libvigil.a" \
	$(pkg-config --libs jansson hiredis libpq) -lpthread -lm

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --save "" \
	--appendonly no --protected-mode no >"$tmp/redis.log" 2>&1 &
redis_pid=$!
workers=()
cleanup() {
	for p in "${workers[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${workers[@]}"; do wait "$p" 2>/dev/null || true; done
	kill -TERM "$redis_pid" 2>/dev/null || true
	wait "$redis_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 50); do
	redis-cli -p "$port" ping >/dev/null 2>&1 && break
	sleep 0.1
done

echo "== redis $(redis-server --version | awk '{print $3}'), $(nproc) cores, $tasks no-op tasks, $concurrency threads and prefetch $prefetch per worker"
lpush=$(redis-benchmark -p "$port" -t lpush -P 1 -n 200000 -q 2>/dev/null |
	tr '\r' '\n' | awk '/^LPUSH:/ {print $2}' | tail -n 1)
redis-cli -p "$port" flushall >/dev/null
printf '%-36s %12.0f ops/s\n' "redis-benchmark -t lpush -P 1" "$lpush"

for n in 1 2; do
	workers=()
	for _ in $(seq "$n"); do
		VIGIL_REDIS_PORT=$port VIGIL_DB_PORT=1 VIGIL_LOG_LEVEL=warn \
			"$build/bin/vigil-worker" --health-addr 127.0.0.1:0 \
			--concurrency "$concurrency" --prefetch "$prefetch" \
			2>>"$tmp/worker.log" &
		workers+=($!)
	done
	sleep 0.5
	out=$("$load" --port "$port" --tasks "$tasks")
	rate=$(sed -E 's/.*end_to_end_per_s=([0-9]+).*/\1/' <<<"$out")
	enq=$(sed -E 's/.*enqueue_per_s=([0-9]+) .*/\1/' <<<"$out")
	printf '%-36s %12.0f tasks/s  (%.2fx lpush; enqueue alone %s/s)\n' \
		"vigil-worker x$n end to end" "$rate" \
		"$(awk -v a="$rate" -v b="$lpush" 'BEGIN {print a / b}')" "$enq"
	for p in "${workers[@]}"; do kill -TERM "$p"; done
	for p in "${workers[@]}"; do wait "$p" || echo "worker exited $?"; done
	workers=()
	redis-cli -p "$port" flushall >/dev/null
done

# The consumers alone: the queue filled first, then drained.
for n in 1 2; do
	"$load" --port "$port" --tasks "$tasks" --fill 1 >/dev/null
	"$load" --port "$port" --tasks "$tasks" --drain 1 >"$tmp/drain.out" &
	waiter=$!
	workers=()
	for _ in $(seq "$n"); do
		VIGIL_REDIS_PORT=$port VIGIL_DB_PORT=1 VIGIL_LOG_LEVEL=warn \
			"$build/bin/vigil-worker" --health-addr 127.0.0.1:0 \
			--concurrency "$concurrency" --prefetch "$prefetch" \
			2>>"$tmp/worker.log" &
		workers+=($!)
	done
	wait "$waiter"
	rate=$(sed -E 's/.*end_to_end_per_s=([0-9]+).*/\1/' "$tmp/drain.out")
	printf '%-36s %12.0f tasks/s  (%.2fx lpush)\n' \
		"vigil-worker x$n draining a full queue" "$rate" \
		"$(awk -v a="$rate" -v b="$lpush" 'BEGIN {print a / b}')"
	for p in "${workers[@]}"; do kill -TERM "$p"; done
	for p in "${workers[@]}"; do wait "$p" || echo "worker exited $?"; done
	workers=()
	redis-cli -p "$port" flushall >/dev/null
done
