#!/usr/bin/env bash
# Email dispatch benchmark: N due sends queued (contacts, workflow runs at a send step
# and their jobs, seeded in SQL), drained by `roster serve`'s worker through lettre's
# SMTP pool into a local sink; beside it, the sink's own acceptance rate from a plain
# SMTP client in the same run. Then the worker's idle cost with 1,000,000 timers that
# are not due. PostgreSQL keeps fsync and synchronous_commit on.
# Usage: bench/email-dispatch.sh [sends=100000] [timers=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/roster.sh

sends=${1:-100000}
timers=${2:-1000000}
roster_workdir roster-dispatch
work=$ROSTER_WORK

export SQLX_OFFLINE=true
cargo build --release --quiet --bin roster --example smtp_bench

pg_start "$work" max_connections=200 shared_buffers=512MB
pg_createdb roster_dispatch
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/roster_dispatch"
./target/release/roster migrate 2>/dev/null

sink_port=$(pg_free_port)
./target/release/examples/smtp_bench sink "$sink_port" &
roster_at_exit roster_stop "$!"
sleep 0.5
sink=$(./target/release/examples/smtp_bench load "smtp://127.0.0.1:$sink_port" 20000 16)
sink_rate=$(json_field messages_per_second <<<"$sink")

cat >"$work/roster.toml" <<'TOML'
[[workflows]]
name = "bench"
trigger = "bench.seed"
steps = [{ send = "welcome" }]
TOML
psql_db "$DATABASE_URL" -v sends="$sends" -f bench/seed-sends.sql

# The clock starts with the process, as the worker does not wait for /readyz. Its log
# stays on the terminal.
started=$(date +%s.%N)
roster_serve ./target/release/roster - DATABASE_URL="$DATABASE_URL" ROSTER_CONFIG="$work/roster.toml" \
  SMTP_URL="smtp://127.0.0.1:$sink_port" MAIL_FROM="Acme <hello@acme.test>" \
  ROSTER_UNSUBSCRIBE_SECRET="bench-unsubscribe-secret-0123" RUST_LOG=warn
roster_pid=$ROSTER_PID
while :; do
  sent=$(psql_db "$DATABASE_URL" -tAc "select count(*) from email_deliveries where state = 'sent'")
  [ "$sent" -ge "$sends" ] && break
  sleep 0.5
  if awk -v now="$(date +%s.%N)" -v t0="$started" 'BEGIN { exit !(now - t0 > 900) }'; then
    echo "timed out at $sent sent" >&2; exit 1
  fi
done
elapsed=$(awk -v now="$(date +%s.%N)" -v t0="$started" 'BEGIN { print now - t0 }')
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$roster_pid/stat"; }
roster_cpu=$(awk -v t="$(cpu_ticks)" -v hz="$ticks" 'BEGIN { print t / hz }')
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$roster_pid/status")
lag=$(psql_db "$DATABASE_URL" -tAc "select round(extract(epoch from percentile_disc(0.5) within group (order by d.sent_at - j.run_at))::numeric, 2) || ' / ' ||
                          round(extract(epoch from max(d.sent_at - j.run_at))::numeric, 2)
                   from email_deliveries d join jobs j on j.key = d.run_id || ':0'")

# Idle cost: CPU over 20 s with nothing pending, then with $timers timers not yet due.
idle_cpu() {
  local before after
  before=$(cpu_ticks); sleep 20; after=$(cpu_ticks)
  awk -v a="$after" -v b="$before" -v hz="$ticks" 'BEGIN { print (a - b) / hz }'
}
idle_empty=$(idle_cpu)
psql_db "$DATABASE_URL" -c "insert into jobs (kind, key, payload, run_at) select 'workflow.step', 'timer:' || g, '{}', now() + interval '30 days' + g * interval '1 second' from generate_series(1, $timers) g" -c "analyze jobs"
idle_timers=$(idle_cpu)
claim_plan=$(psql_db "$DATABASE_URL" -tAc "explain (analyze, buffers, costs off, timing off, summary on) with due as (select id from jobs where state = 'scheduled' and run_at <= now() order by run_at limit 32 for update skip locked), expired as (select id from jobs where state = 'running' and locked_until <= now() order by locked_until limit 32 for update skip locked) select id from (select id from expired union all select id from due) c limit 32" | grep -E "Execution Time|Buffers: shared" | head -2 | tr -s ' ' | paste -sd ';')

printf "| sends | roster emails/s | sink alone msgs/s | roster / sink | queue lag p50 / max s | roster CPU s (of %.0f s wall) | peak RSS MB |\n" "$elapsed"
printf "|---|---|---|---|---|---|---|\n"
awk -v n="$sends" -v e="$elapsed" -v s="$sink_rate" -v lag="$lag" -v cpu="$roster_cpu" -v rss="$rss_kb" 'BEGIN {
  printf "| %d | %.0f | %.0f | %.0f%% | %s | %.1f | %.1f |\n", n, n / e, s, 100 * (n / e) / s, lag, cpu, rss / 1024 }'
echo
printf "| pending timers | worker CPU over 20 s idle |\n|---|---|\n| 0 | %.2f s |\n| %d | %.2f s |\n" "$idle_empty" "$timers" "$idle_timers"
echo
echo "claim query with $timers timers pending: $claim_plan"
