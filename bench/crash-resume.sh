#!/usr/bin/env bash
# Crash recovery: N sends queued and drained by `roster serve` into a slow SMTP sink
# (each message answered after DELAY ms, so sends are in flight), `kill -9` once a
# quarter are sent, a new `roster serve` started at once. Measures how long after the
# kill the jobs the dead worker held are taken again and the queue is drained, and
# checks that nothing was sent twice (each delivery row is unique per run and step;
# those in flight at the kill end `unknown`, never sent again).
# Usage: bench/crash-resume.sh [sends=200] [delay_ms=200]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/roster.sh

sends=${1:-200}
delay=${2:-200}
roster_workdir roster-crash
work=$ROSTER_WORK

export SQLX_OFFLINE=true
cargo build --release --quiet --bin roster --example smtp_bench

pg_start "$work" max_connections=200
pg_createdb roster_crash
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/roster_crash"
./target/release/roster migrate 2>/dev/null

sink_port=$(pg_free_port)
./target/release/examples/smtp_bench sink "$sink_port" "$delay" &
roster_at_exit roster_stop "$!" KILL

cat >"$work/roster.toml" <<'TOML'
[[workflows]]
name = "bench"
trigger = "bench.seed"
steps = [{ send = "welcome" }]
TOML
psql_db "$DATABASE_URL" -v sends="$sends" -f bench/seed-sends.sql

# Each on a port of its own, its log on the terminal, killed (-9) at exit.
serve() {
  roster_serve -s KILL ./target/release/roster - DATABASE_URL="$DATABASE_URL" ROSTER_CONFIG="$work/roster.toml" \
    SMTP_URL="smtp://127.0.0.1:$sink_port" MAIL_FROM="Acme <hello@acme.test>" \
    ROSTER_UNSUBSCRIBE_SECRET="bench-unsubscribe-secret-0123" RUST_LOG=error
}
now() { date +%s.%N; }
since() { awk -v now="$(now)" -v t0="$1" 'BEGIN { printf "%.1f", now - t0 }'; }

serve
until [ "$(psql_db "$DATABASE_URL" -tAc "select count(*) from email_deliveries where state = 'sent'")" -ge $((sends / 4)) ]; do sleep 0.05; done
kill -9 "$ROSTER_PID"
killed=$(now)
in_flight=$(psql_db "$DATABASE_URL" -tAc "select count(*) from jobs where state = 'running'")
serve
taken_again=""
while :; do
  held=$(psql_db "$DATABASE_URL" -tAc "select count(*) from jobs where state = 'running' and locked_until > now() - interval '1 hour' and attempts = 1")
  [ -z "$taken_again" ] && [ "$held" -eq 0 ] && taken_again=$(since "$killed")
  [ "$(psql_db "$DATABASE_URL" -tAc "select count(*) from jobs where state not in ('done', 'dead')")" -eq 0 ] && break
  sleep 0.1
  if awk -v s="$(since "$killed")" 'BEGIN { exit !(s > 900) }'; then echo "timed out" >&2; exit 1; fi
done
drained=$(since "$killed")
states=$(psql_db "$DATABASE_URL" -tAc "select string_agg(state || ' ' || n, ', ' order by state) from (select state, count(*) n from email_deliveries group by state) s")
rows=$(psql_db "$DATABASE_URL" -tAc "select count(*) from email_deliveries")

echo "| sends | in flight at kill -9 | their jobs taken again after | queue drained after | deliveries (one per run) |"
echo "|---|---|---|---|---|"
echo "| $sends | $in_flight | ${taken_again} s | ${drained} s | $rows: $states |"
