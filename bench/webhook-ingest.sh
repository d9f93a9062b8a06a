#!/usr/bin/env bash
# Load benchmark of POST /webhooks/clerk against PostgreSQL with fsync on, next to
# pgbench running the bare SQL of one ingest (bench/ingest.pgbench.sql) on the same
# cluster in the same run. Rounds alternate roster and pgbench on emptied tables, so
# both see the same machine noise; the table has every round and the medians.
# Usage: bench/webhook-ingest.sh [requests] [concurrency] [rounds]   (20000 32 3)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh

requests=${1:-20000}
concurrency=${2:-32}
rounds=${3:-3}
work=$(mktemp -d /tmp/roster-bench.XXXXXX)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
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
psql_bench() { PGOPTIONS="-c client_min_messages=warning" "$PG_BINDIR/psql" -q -X -v ON_ERROR_STOP=1 "$db" "$@"; }
echo "fsync=$(psql_bench -tAc 'show fsync'), synchronous_commit=$(psql_bench -tAc 'show synchronous_commit')" >&2

secret="whsec_$(head -c 24 /dev/urandom | base64)"
port=$(pg_free_port)
# Default logging (info: one line per webhook), written to a file as a service's would be.
DATABASE_URL="$db" ROSTER_ADDR="127.0.0.1:$port" CLERK_WEBHOOK_SECRET="$secret" \
  ROSTER_CONFIG=/dev/null ./target/release/roster serve 2>"$work/roster.log" &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
psql_bench -c "create table bench_payload as select payload from (values (\$json\$$(cat tests/fixtures/clerk/user.created.json)\$json\$::jsonb)) as v(payload)"

load() {
  ./target/release/examples/webhook_load "http://127.0.0.1:$port/webhooks/clerk" "$secret" \
    --requests "$1" --concurrency "$concurrency"
}
field() { echo "$1" | sed -E "s/.*\"$2\":([0-9.]+).*/\1/"; }
load 2000 >/dev/null # warm-up: connections, prepared statements

printf "| round | roster req/s | p50 ms | p99 ms | failures | pgbench tps | roster / pgbench |\n|---|---|---|---|---|---|---|\n"
results=()
for round in $(seq 1 "$rounds"); do
  psql_bench -c "truncate clerk_events, clerk_event_firsts, clerk_event_counts, contacts cascade"
  roster=$(load "$requests")
  seconds=$(field "$roster" seconds)
  psql_bench -c "truncate clerk_events, clerk_event_firsts, clerk_event_counts, contacts cascade"
  pgbench_tps=$("$PG_BINDIR/pgbench" -n -M prepared -c "$concurrency" -j 2 \
    -T "$(awk -v s="$seconds" 'BEGIN { d = int(s + 0.5); print (d < 5 ? 5 : d) }')" \
    -f bench/ingest.pgbench.sql -h 127.0.0.1 -p "$PG_PORT" -U postgres roster_bench 2>&1 \
    | awk '/^tps = / {print $3}')
  rps=$(field "$roster" requests_per_second)
  row=$(awk -v r="$round" -v rps="$rps" -v p50="$(field "$roster" p50_ms)" \
    -v p99="$(field "$roster" p99_ms)" -v f="$(field "$roster" failures)" -v tps="$pgbench_tps" \
    'BEGIN { printf "%s %.0f %.2f %.2f %d %.0f %.0f", r, rps, p50, p99, f, tps, 100 * rps / tps }')
  results+=("$row")
  echo "$row" | awk '{ printf "| %s | %s | %s | %s | %s | %s | %s%% |\n", $1, $2, $3, $4, $5, $6, $7 }'
done
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
median() { printf '%s\n' "${results[@]}" | awk -v c="$1" '{print $c}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
printf "| median | %s | %s | %s | %s | %s | %s%% |\n" "$(median 2)" "$(median 3)" "$(median 4)" \
  "$(median 5)" "$(median 6)" "$(median 7)"
echo
echo "requests per round: $requests, concurrency: $concurrency, roster peak RSS: $(awk -v k="$rss_kb" 'BEGIN { printf "%.1f MB", k / 1024 }')"
