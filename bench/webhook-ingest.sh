#!/usr/bin/env bash
# Load benchmark of POST /webhooks/clerk against PostgreSQL with fsync on, next to
# pgbench running the bare SQL of one ingest (bench/ingest.pgbench.sql) on the same
# cluster in the same run. Rounds alternate roster and pgbench on emptied tables, so
# both see the same machine noise; the table has every round and the medians.
# Usage: bench/webhook-ingest.sh [requests] [concurrency] [rounds]   (20000 32 3)
# COMMIT_DELAY_US=N runs the cluster with PostgreSQL's own group commit: a commit waits
# up to N µs for others to share its WAL flush, when 5 or more transactions are open
# (commit_delay, commit_siblings = 5). Unset: 0, PostgreSQL's default.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/roster.sh

requests=${1:-20000}
concurrency=${2:-32}
rounds=${3:-3}
roster_workdir roster-bench
work=$ROSTER_WORK

export SQLX_OFFLINE=true
cargo build --release --quiet --bin roster --example webhook_load

# Durable settings: fsync and synchronous_commit stay at their defaults (on).
commit_delay=${COMMIT_DELAY_US:-0}
pg_start "$work" max_connections=200 shared_buffers=256MB commit_delay="$commit_delay" commit_siblings=5
pg_createdb roster_bench
db="postgres://postgres@127.0.0.1:$PG_PORT/roster_bench"
echo "fsync=$(psql_db "$db" -tAc 'show fsync'), synchronous_commit=$(psql_db "$db" -tAc 'show synchronous_commit'), commit_delay=$(psql_db "$db" -tAc 'show commit_delay')" >&2

secret=$(webhook_secret)
# Default logging (info: one line per webhook), written to a file as a service's would be.
roster_serve ./target/release/roster "$work/roster.log" DATABASE_URL="$db" CLERK_WEBHOOK_SECRET="$secret" \
  ROSTER_CONFIG=/dev/null
psql_db "$db" -c "create table bench_payload as select payload from (values (\$json\$$(cat src/clerk/samples/user.created.json)\$json\$::jsonb)) as v(payload)"

load() {
  ./target/release/examples/webhook_load "$ROSTER_URL/webhooks/clerk" "$secret" \
    --requests "$1" --concurrency "$concurrency"
}
load 2000 >/dev/null # warm-up: connections, prepared statements

printf "| round | roster req/s | p50 ms | p99 ms | failures | pgbench tps | roster / pgbench |\n|---|---|---|---|---|---|---|\n"
results=()
for round in $(seq 1 "$rounds"); do
  psql_db "$db" -c "truncate clerk_events, clerk_event_firsts, clerk_event_counts, contacts cascade"
  roster=$(load "$requests")
  seconds=$(json_field seconds <<<"$roster")
  psql_db "$db" -c "truncate clerk_events, clerk_event_firsts, clerk_event_counts, contacts cascade"
  pgbench_tps=$("$PG_BINDIR/pgbench" -n -M prepared -c "$concurrency" -j 2 \
    -T "$(awk -v s="$seconds" 'BEGIN { d = int(s + 0.5); print (d < 5 ? 5 : d) }')" \
    -f bench/ingest.pgbench.sql -h 127.0.0.1 -p "$PG_PORT" -U postgres roster_bench 2>&1 \
    | awk '/^tps = / {print $3}')
  rps=$(json_field requests_per_second <<<"$roster")
  row=$(awk -v r="$round" -v rps="$rps" -v p50="$(json_field p50_ms <<<"$roster")" \
    -v p99="$(json_field p99_ms <<<"$roster")" -v f="$(json_field failures <<<"$roster")" -v tps="$pgbench_tps" \
    'BEGIN { printf "%s %.0f %.2f %.2f %d %.0f %.0f", r, rps, p50, p99, f, tps, 100 * rps / tps }')
  results+=("$row")
  echo "$row" | awk '{ printf "| %s | %s | %s | %s | %s | %s | %s%% |\n", $1, $2, $3, $4, $5, $6, $7 }'
done
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$ROSTER_PID/status")
median() { printf '%s\n' "${results[@]}" | awk -v c="$1" '{print $c}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
printf "| median | %s | %s | %s | %s | %s | %s%% |\n" "$(median 2)" "$(median 3)" "$(median 4)" \
  "$(median 5)" "$(median 6)" "$(median 7)"
echo
echo "requests per round: $requests, concurrency: $concurrency, roster peak RSS: $(awk -v k="$rss_kb" 'BEGIN { printf "%.1f MB", k / 1024 }')"
