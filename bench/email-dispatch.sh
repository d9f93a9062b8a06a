#!/usr/bin/env bash
# Email dispatch benchmark. N due sends queued (contacts, workflow runs at a send step
# and their jobs, seeded in SQL) and drained by `roster serve`'s worker:
#   (a) into the quick sink (TCP_NODELAY, ACKs at once), beside the sink's own rate
#       from the best plain SMTP client in the same run;
#   (b) into a realistic sink (the kernel's default TCP: delayed ACKs, Nagle) behind a
#       proxy adding a 20 ms round trip, beside the plain client through the same path
#       and the physical bound: connections / (round trip x round trips per message);
#   (c) from outside: signed `user.created` to welcome accepted by the realistic sink
#       on loopback, one event after another (p50, p99);
# then the worker's idle cost with 1,000,000 timers that are not due. PostgreSQL keeps
# fsync and synchronous_commit on. The last line: `dispatch: quick=N/s realistic_ratio=R`.
# Usage: bench/email-dispatch.sh [sends=100000] [timers=1000000] [realistic_sends=4000] [events=200]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/roster.sh

sends=${1:-100000}
timers=${2:-1000000}
realistic_sends=${3:-4000}
events=${4:-200}
connections=16
rtt_ms=20
# A pooled send is MAIL, RCPT, DATA, then the message and its final "."; lettre waits
# for each answer.
round_trips=4
roster_workdir roster-dispatch
work=$ROSTER_WORK

export SQLX_OFFLINE=true
cargo build --release --quiet --bin roster --example smtp_bench
bench=./target/release/examples/smtp_bench

pg_start "$work" max_connections=200 shared_buffers=512MB

cat >"$work/roster.toml" <<'TOML'
[[workflows]]
name = "bench"
trigger = "bench.seed"
steps = [{ send = "welcome" }]

[[workflows]]
name = "welcome"
trigger = "user.created"
steps = [{ send = "welcome" }]
TOML
secret=$(webhook_secret)
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
seconds_since() { awk -v now="$(date +%s.%N)" -v t0="$1" 'BEGIN { print now - t0 }'; }

# serve DATABASE SMTP_URL: a fresh database, migrated, and `roster serve` on it
# (ROSTER_PID, ROSTER_URL, DATABASE_URL set).
serve() {
  pg_createdb "$1"
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$1"
  ./target/release/roster migrate 2>/dev/null
  [ -z "${3:-}" ] || psql_db "$DATABASE_URL" -v sends="$3" -f bench/seed-sends.sql
  started=$(date +%s.%N)
  roster_serve ./target/release/roster - DATABASE_URL="$DATABASE_URL" ROSTER_CONFIG="$work/roster.toml" \
    SMTP_URL="$2" SMTP_CONNECTIONS="$connections" MAIL_FROM="Acme <hello@acme.test>" \
    CLERK_WEBHOOK_SECRET="$secret" ROSTER_UNSUBSCRIBE_SECRET="bench-unsubscribe-secret-0123" RUST_LOG=warn
}

# drained N: waits until N deliveries are sent; sets elapsed (from `serve`'s start).
drained() {
  local sent
  while :; do
    sent=$(psql_db "$DATABASE_URL" -tAc "select count(*) from email_deliveries where state = 'sent'")
    [ "$sent" -ge "$1" ] && break
    sleep 0.2
    if awk -v s="$(seconds_since "$started")" 'BEGIN { exit !(s > 900) }'; then
      echo "timed out at $sent sent" >&2; exit 1
    fi
  done
  elapsed=$(seconds_since "$started")
}

# (a) The quick sink.
quick_port=$(pg_free_port)
$bench sink "$quick_port" &
roster_at_exit roster_stop "$!"
sleep 0.5
sink_rate=$(json_field messages_per_second <<<"$($bench load "smtp://127.0.0.1:$quick_port" 20000 "$connections")")
# The clock starts with the process, as the worker does not wait for /readyz.
serve roster_dispatch "smtp://127.0.0.1:$quick_port" "$sends"
quick_pid=$ROSTER_PID
drained "$sends"
quick_elapsed=$elapsed
roster_cpu=$(awk -v t="$(cpu_ticks "$quick_pid")" -v hz="$ticks" 'BEGIN { print t / hz }')
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$quick_pid/status")
lag=$(psql_db "$DATABASE_URL" -tAc "select round(extract(epoch from percentile_disc(0.5) within group (order by d.sent_at - j.run_at))::numeric, 2) || ' / ' ||
                          round(extract(epoch from max(d.sent_at - j.run_at))::numeric, 2)
                   from email_deliveries d join jobs j on j.key = d.run_id || ':0'")

# Idle cost: CPU over 20 s with nothing pending, then with $timers timers not yet due.
idle_cpu() {
  local before after
  before=$(cpu_ticks "$quick_pid"); sleep 20; after=$(cpu_ticks "$quick_pid")
  awk -v a="$after" -v b="$before" -v hz="$ticks" 'BEGIN { print (a - b) / hz }'
}
idle_empty=$(idle_cpu)
psql_db "$DATABASE_URL" -c "insert into jobs (kind, key, payload, run_at) select 'workflow.step', 'timer:' || g, '{}', now() + interval '30 days' + g * interval '1 second' from generate_series(1, $timers) g" -c "analyze jobs"
idle_timers=$(idle_cpu)
claim_plan=$(psql_db "$DATABASE_URL" -tAc "explain (analyze, buffers, costs off, timing off, summary on) with due as (select id from jobs where state = 'scheduled' and run_at <= now() order by run_at limit 32 for update skip locked), expired as (select id from jobs where state = 'running' and locked_until <= now() order by locked_until limit 32 for update skip locked) select id from (select id from expired union all select id from due) c limit 32" | grep -E "Execution Time|Buffers: shared" | head -2 | tr -s ' ' | paste -sd ';')
roster_stop "$quick_pid"

# (b) The realistic sink behind a 20 ms round trip.
real_port=$(pg_free_port)
$bench sink "$real_port" 0 realistic &
roster_at_exit roster_stop "$!"
proxy_port=$(pg_free_port)
$bench proxy "$proxy_port" "$real_port" "$rtt_ms" &
roster_at_exit roster_stop "$!"
sleep 0.5
plain_rate=$(json_field messages_per_second <<<"$($bench load "smtp://127.0.0.1:$proxy_port" "$realistic_sends" "$connections")")
serve roster_realistic "smtp://127.0.0.1:$proxy_port" "$realistic_sends"
drained "$realistic_sends"
realistic_rate=$(awk -v n="$realistic_sends" -v e="$elapsed" 'BEGIN { print n / e }')
roster_stop "$ROSTER_PID"
bound=$(awk -v c="$connections" -v r="$rtt_ms" -v k="$round_trips" 'BEGIN { print c / (r / 1000 * k) }')

# (c) Event to email, from outside, against the realistic sink on loopback.
latency_port=$(pg_free_port)
serve roster_latency "smtp://127.0.0.1:$latency_port"
latency=$($bench latency "$ROSTER_URL" "$secret" "$latency_port" "$events")
latency_rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$ROSTER_PID/status")
roster_stop "$ROSTER_PID"

echo "(a) quick sink"
printf "| sends | roster emails/s | sink alone msgs/s | roster / sink | queue lag p50 / max s | roster CPU s (of %.0f s wall) | peak RSS MB |\n" "$quick_elapsed"
printf "|---|---|---|---|---|---|---|\n"
awk -v n="$sends" -v e="$quick_elapsed" -v s="$sink_rate" -v lag="$lag" -v cpu="$roster_cpu" -v rss="$rss_kb" 'BEGIN {
  printf "| %d | %.0f | %.0f | %.0f%% | %s | %.1f | %.1f |\n", n, n / e, s, 100 * (n / e) / s, lag, cpu, rss / 1024 }'
echo
echo "(b) realistic sink: default TCP behind a ${rtt_ms} ms round trip, $connections connections"
printf "| sends | roster emails/s | plain client msgs/s | roster / plain | bound msgs/s (%d / (%d ms x %d)) |\n|---|---|---|---|---|\n" "$connections" "$rtt_ms" "$round_trips"
awk -v n="$realistic_sends" -v r="$realistic_rate" -v p="$plain_rate" -v b="$bound" 'BEGIN {
  printf "| %d | %.0f | %.0f | %.2f | %.0f |\n", n, r, p, r / p, b }'
echo
echo "(c) event to email accepted, from outside, $events events one after another"
printf "| p50 ms | p99 ms | max ms | peak RSS MB |\n|---|---|---|---|\n"
printf "| %s | %s | %s | %.1f |\n" "$(json_field p50_ms <<<"$latency")" "$(json_field p99_ms <<<"$latency")" \
  "$(json_field max_ms <<<"$latency")" "$(awk -v k="$latency_rss_kb" 'BEGIN { print k / 1024 }')"
echo
printf "| pending timers | worker CPU over 20 s idle |\n|---|---|\n| 0 | %.2f s |\n| %d | %.2f s |\n" "$idle_empty" "$timers" "$idle_timers"
echo
echo "claim query with $timers timers pending: $claim_plan"
awk -v n="$sends" -v e="$quick_elapsed" -v r="$realistic_rate" -v p="$plain_rate" 'BEGIN {
  printf "dispatch: quick=%.0f/s realistic_ratio=%.2f\n", n / e, r / p }'
