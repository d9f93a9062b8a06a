#!/usr/bin/env bash
# Forwarding benchmark: what [forward.clickhouse] costs webhook ingest, and how fast the
# outbox drains into a real ClickHouse (Debian's clickhouse-server, a throwaway server
# started here). Two `roster serve` on one cluster, each with its own database: one
# without forwarding, one forwarding to ClickHouse. Rounds alternate the two on emptied
# tables, so both see the same machine noise. For the forwarding one, "drained" is the
# time from the first request until the outbox is empty, and the events ClickHouse
# holds (FINAL) are checked against those stored.
# Usage: bench/forward.sh [requests] [concurrency] [rounds]   (20000 32 3)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/roster.sh
. scripts/clickhouse.sh

requests=${1:-20000}
concurrency=${2:-32}
rounds=${3:-3}
roster_workdir roster-bench-forward
work=$ROSTER_WORK

export SQLX_OFFLINE=true
cargo build --release --quiet --bin roster --example webhook_load

pg_start "$work" max_connections=200 shared_buffers=256MB
ch_start "$work/clickhouse"
ch_query "$(cat analytics/clickhouse/clerk_events.sql)"
secret=$(webhook_secret)
cat >"$work/forward.toml" <<TOML
[forward.clickhouse]
url = "$CH_URL"
table = "clerk_events"
user = "roster"
password = "roster"
TOML
declare -A url
for kind in off on; do
  pg_createdb "roster_$kind"
  config=/dev/null
  [ "$kind" = on ] && config="$work/forward.toml"
  roster_serve ./target/release/roster "$work/roster-$kind.log" \
    DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/roster_$kind" \
    CLERK_WEBHOOK_SECRET="$secret" ROSTER_CONFIG="$config"
  url[$kind]=$ROSTER_URL
done
db() { echo "postgres://postgres@127.0.0.1:$PG_PORT/roster_$1"; }
load() {
  ./target/release/examples/webhook_load "${url[$1]}/webhooks/clerk" "$secret" \
    --requests "$2" --concurrency "$concurrency"
}
empty() {
  psql_db "$(db "$1")" -c "truncate clerk_events, clerk_event_firsts, clerk_event_counts, contacts cascade"
}
pending() { psql_db "$(db on)" -tAc "select count(*) from forward_outbox"; }
now_ms() { date +%s%3N; }
for kind in off on; do load "$kind" 2000 >/dev/null; done # warm-up
until [ "$(pending)" = 0 ]; do sleep 0.1; done

printf "| round | ingest req/s, off | on | on / off | p99 ms, off | on | drained events/s | in ClickHouse |\n|---|---|---|---|---|---|---|---|\n"
results=()
for round in $(seq 1 "$rounds"); do
  empty off
  off=$(load off "$requests")
  empty on
  ch_query "TRUNCATE TABLE clerk_events"
  started=$(now_ms)
  on=$(load on "$requests")
  until [ "$(pending)" = 0 ]; do sleep 0.05; done
  drained_ms=$(($(now_ms) - started))
  stored=$(psql_db "$(db on)" -tAc "select count(*) from clerk_events")
  held=$(ch_query "SELECT count() FROM clerk_events FINAL")
  row=$(awk -v r="$round" -v off="$(json_field requests_per_second <<<"$off")" \
    -v on="$(json_field requests_per_second <<<"$on")" -v p99off="$(json_field p99_ms <<<"$off")" \
    -v p99on="$(json_field p99_ms <<<"$on")" -v n="$stored" -v ms="$drained_ms" -v held="$held" \
    'BEGIN { printf "%s %.0f %.0f %.2f %.2f %.2f %.0f %d/%d", r, off, on, on / off, p99off, p99on, 1000 * n / ms, held, n }')
  results+=("$row")
  echo "$row" | awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
done
median() { printf '%s\n' "${results[@]}" | awk -v c="$1" '{print $c}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
printf "| median | %s | %s | %s | %s | %s | %s | |\n" "$(median 2)" "$(median 3)" "$(median 4)" \
  "$(median 5)" "$(median 6)" "$(median 7)"
echo
echo "requests per round: $requests, concurrency: $concurrency"
echo "forward: ingest_ratio=$(median 4) drained_per_s=$(median 7)"
