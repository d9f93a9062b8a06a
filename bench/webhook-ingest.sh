#!/usr/bin/env bash
# Load benchmark of POST /webhooks/clerk against PostgreSQL with fsync on, next to
# pgbench running the bare SQL of one ingest on the same cluster in the same run.
# Usage: bench/webhook-ingest.sh [requests] [concurrency]     (defaults: 20000 32)
# Prints a Markdown table row set for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh

requests=${1:-20000}
concurrency=${2:-32}
work=$(mktemp -d /tmp/roster-bench.XXXXXX)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  pg_stop "$work"
  rm -rf "$work"
}
trap cleanup EXIT

export SQLX_OFFLINE=true
cargo build --release --quiet --bin roster --example webhook_load

# Durable settings: fsync and synchronous_commit stay at their defaults (on).
pg_start "$work" max_connections=200 shared_buffers=256MB
pg_createdb roster_bench
db="postgres://postgres@127.0.0.1:$PG_PORT/roster_bench"
psql_bench() { "$PG_BINDIR/psql" -q -X -v ON_ERROR_STOP=1 "$db" "$@"; }
echo "fsync=$(psql_bench -tAc 'show fsync') synchronous_commit=$(psql_bench -tAc 'show synchronous_commit')" >&2

secret="whsec_$(head -c 24 /dev/urandom | base64)"
port=$(pg_free_port)
DATABASE_URL="$db" ROSTER_ADDR="127.0.0.1:$port" CLERK_WEBHOOK_SECRET="$secret" \
  ROSTER_CONFIG=/dev/null RUST_LOG=warn ./target/release/roster serve &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

# Warm-up, then the measured run.
./target/release/examples/webhook_load "http://127.0.0.1:$port/webhooks/clerk" "$secret" \
  --requests 2000 --concurrency "$concurrency" >/dev/null
roster=$(./target/release/examples/webhook_load "http://127.0.0.1:$port/webhooks/clerk" "$secret" \
  --requests "$requests" --concurrency "$concurrency")
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

# The same statements straight from pgbench, with the same payload and concurrency.
psql_bench -c "truncate clerk_events, contacts" \
  -c "create table bench_payload as select payload from (values (\$json\$$(cat tests/fixtures/clerk/user.created.json)\$json\$::jsonb)) as v(payload)"
duration=$(awk -v r="$roster" 'BEGIN { match(r, /"seconds":[0-9.]+/); s = substr(r, RSTART + 10, RLENGTH - 10); d = int(s + 0.5); print (d < 10 ? 10 : d) }')
pgbench_out=$("$PG_BINDIR/pgbench" -n -M prepared -c "$concurrency" -j 2 -T "$duration" \
  -f bench/ingest.pgbench.sql -h 127.0.0.1 -p "$PG_PORT" -U postgres roster_bench 2>&1)
pgbench_tps=$(echo "$pgbench_out" | awk '/^tps = / {print $3}')
pgbench_lat=$(echo "$pgbench_out" | awk '/^latency average/ {print $4}')

field() { echo "$roster" | sed -E "s/.*\"$1\":([0-9.]+).*/\1/"; }
rps=$(field requests_per_second)
awk -v rps="$rps" -v tps="$pgbench_tps" -v p50="$(field p50_ms)" -v p99="$(field p99_ms)" \
  -v fail="$(field failures)" -v rss="$rss_kb" -v c="$concurrency" -v n="$requests" -v lat="$pgbench_lat" 'BEGIN {
  printf "| requests | concurrency | roster req/s | p50 ms | p99 ms | failures | peak RSS MB | pgbench tps | pgbench avg latency ms | roster / pgbench |\n"
  printf "|---|---|---|---|---|---|---|---|---|---|\n"
  printf "| %d | %d | %.0f | %.2f | %.2f | %d | %.1f | %.0f | %.2f | %.0f%% |\n", n, c, rps, p50, p99, fail, rss / 1024, tps, lat, 100 * rps / tps
}'
