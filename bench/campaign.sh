#!/usr/bin/env bash
# Campaign benchmark: a campaign to a saved segment of N contacts (of 1.25 N), sent by
# `roster serve` into the dispatch bench's quick sink while signed `user.created`
# webhooks arrive, one every 250 ms, each starting a welcome email. In the same run,
# first, N workflow sends drained by the same process: the dispatch bench's rate, to
# compare the campaign's against. Then a second campaign, to a list of N / 10, under
# `[sending] rate`. PostgreSQL keeps fsync and synchronous_commit on.
# Measures: the time to fix the audience (the start job, due to done), the send rate
# (from the deliveries' sent_at), peak RSS, and each welcome's latency from the webhook's
# commit to SMTP's acceptance, counting only welcomes that arrived while the campaign
# was sending.
# Usage: bench/campaign.sh [recipients=100000] [throttled_rate=500]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/roster.sh

recipients=${1:-100000}
rate=${2:-500}
roster_workdir roster-campaign
work=$ROSTER_WORK

export SQLX_OFFLINE=true
cargo build --release --quiet --bin roster --example smtp_bench --example webhook_load

pg_start "$work" max_connections=200 shared_buffers=512MB
pg_createdb roster_campaign
db="postgres://postgres@127.0.0.1:$PG_PORT/roster_campaign"
DATABASE_URL="$db" ./target/release/roster migrate 2>/dev/null
sql() { psql_db "$db" -tAc "$1"; }

sink_port=$(pg_free_port)
./target/release/examples/smtp_bench sink "$sink_port" &
roster_at_exit roster_stop "$!"
sleep 0.5

cat >"$work/roster.toml" <<'TOML'
[[lists]]
id = "news"
name = "Newsletter"

[[workflows]]
name = "bench"
trigger = "bench.seed"
steps = [{ send = "welcome" }]

[[workflows]]
name = "welcome"
trigger = "user.created"
steps = [{ send = "welcome" }]
TOML
# The audience: N in group beta, a quarter more outside it; a tenth on the list.
psql_db "$db" -c "insert into contacts (id, email, first_name, source, user_group, mailing_lists)
  select gen_random_uuid(), 'member' || g || '@bench.test', 'Grace', 'Bench',
         case when g <= $recipients then 'beta' else 'staff' end,
         case when g % 10 = 0 then '{\"news\": true}' else '{}' end::jsonb
  from generate_series(1, $recipients * 5 / 4) g"

key="bench-api-key-0123456789-abcdefghijklmnop"
secret=$(webhook_secret)
serve() {
  roster_serve ./target/release/roster "$work/roster.log" DATABASE_URL="$db" ROSTER_CONFIG="$1" \
    ROSTER_API_KEY="$key" CLERK_WEBHOOK_SECRET="$secret" SMTP_URL="smtp://127.0.0.1:$sink_port" \
    MAIL_FROM="Acme <hello@acme.test>" ROSTER_UNSUBSCRIBE_SECRET="bench-unsubscribe-secret-0123" RUST_LOG=warn
}
api() {
  curl -fs -H "Authorization: Bearer $key" -H 'content-type: application/json' "$ROSTER_URL/api/v1/$1" "${@:2}"
}
# The span of a set of deliveries' sent_at, and their rate.
send_rate() {
  sql "select count(*) || ' ' || round((count(*) / greatest(extract(epoch from max(d.sent_at) - min(d.sent_at)), 0.001))::numeric)
       from email_deliveries d join workflow_runs r on r.id = d.run_id where $1 and d.state = 'sent'"
}
# Welcomes while $1 was sending: count, p50, p99 and max latency in ms.
welcome_latency() {
  sql "with c as (select started_at, finished_at from campaigns where id = '$1')
       select count(*) || ' ' || round(1000 * extract(epoch from percentile_disc(0.5) within group (order by d.sent_at - e.received_at))::numeric)
              || ' ' || round(1000 * extract(epoch from percentile_disc(0.99) within group (order by d.sent_at - e.received_at))::numeric)
              || ' ' || round(1000 * extract(epoch from max(d.sent_at - e.received_at))::numeric)
       from email_deliveries d join workflow_runs r on r.id = d.run_id
       join clerk_events e on e.svix_id = r.trigger_key, c
       where r.workflow = 'welcome' and e.received_at between c.started_at and c.finished_at"
}
# Runs campaign $1 (JSON body) while welcomes arrive; prints its ID once it is Sent.
run_campaign() {
  local id
  id=$(api campaigns -d "$1" | json_field id)
  (
    while :; do
      ./target/release/examples/webhook_load "$ROSTER_URL/webhooks/clerk" "$secret" --requests 1 --concurrency 1 >/dev/null
      sleep 0.25
    done
  ) &
  local welcomes=$!
  until api "campaigns/$id" | grep -q '"status":"Sent"'; do sleep 0.5; done
  kill "$welcomes"; wait "$welcomes" 2>/dev/null || true
  sleep 1 # the last welcomes
  echo "$id"
}

serve "$work/roster.toml"
roster_pid=$ROSTER_PID

# 1. The dispatch bench's workload, in this process: N due workflow sends.
psql_db "$db" -c "insert into workflow_runs (id, workflow, entry_key, contact_id, contact, trigger_event)
  select gen_random_uuid(), 'bench', c.id::text, c.id, jsonb_build_object('email', c.email), 'bench.seed'
  from contacts c where c.user_group = 'beta'" \
  -c "insert into jobs (kind, key, payload, run_at, max_attempts)
  select 'workflow.step', r.id || ':0', jsonb_build_object('run', r.id, 'step', 0), now(), 10
  from workflow_runs r where r.workflow = 'bench'"
until [ "$(sql "select count(*) from jobs where kind = 'workflow.step' and state <> 'done'")" = 0 ]; do sleep 0.5; done
read -r _ dispatch_rate <<<"$(send_rate "r.workflow = 'bench'")"

# 2. The campaign to the segment, unthrottled.
segment=$(api audience-segments -d '{"name": "beta", "filter": {"match": "all", "conditions": [{"property": "userGroup", "operator": "equals", "value": "beta"}]}}' | json_field id)
campaign=$(run_campaign "{\"name\": \"Launch\", \"template\": \"tips\", \"audienceSegmentId\": \"$segment\", \"scheduling\": {\"method\": \"now\"}}")
fix_s=$(sql "select round(extract(epoch from finished_at - run_at)::numeric, 2) from jobs where kind = 'campaign.start' and payload->>'campaign' = '$campaign'")
read -r sent campaign_rate <<<"$(send_rate "r.trigger_key = '$campaign'")"
read -r welcomes w50 w99 wmax <<<"$(welcome_latency "$campaign")"
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$roster_pid/status")

# 3. A campaign to the list under [sending] rate, in a restarted process.
roster_stop "$roster_pid"
{ cat "$work/roster.toml"; printf '\n[sending]\nrate = "%s/s"\n' "$rate"; } >"$work/throttled.toml"
serve "$work/throttled.toml"
throttled=$(run_campaign '{"name": "News", "template": "tips", "mailingListId": "news", "scheduling": {"method": "now"}}')
read -r t_sent t_rate <<<"$(send_rate "r.trigger_key = '$throttled'")"
t_busiest=$(sql "select max(n) from (select count(*) over (order by d.sent_at range between current row and interval '999 milliseconds' following) as n
                 from email_deliveries d join workflow_runs r on r.id = d.run_id where r.trigger_key = '$throttled') w")
read -r t_welcomes t50 t99 tmax <<<"$(welcome_latency "$throttled")"
t_deferred=$(curl -fs "$ROSTER_URL/metrics" | awk '/^roster_jobs_deferred_total/ { n += $2 } END { print n + 0 }')

printf "| campaign | recipients | audience fixed in | emails/s | dispatch bench emails/s (same run) | campaign / dispatch | peak RSS MB | welcomes during it | welcome p50 / p99 / max ms | sends put back for the rate |\n"
printf "|---|---|---|---|---|---|---|---|---|---|\n"
awk -v n="$sent" -v fix="$fix_s" -v r="$campaign_rate" -v d="$dispatch_rate" -v rss="$rss_kb" \
  -v w="$welcomes" -v l="$w50 / $w99 / $wmax" 'BEGIN {
  printf "| segment, unthrottled | %d | %.2f s | %d | %d | %.0f%% | %.1f | %d | %s | |\n", n, fix, r, d, 100 * r / d, rss / 1024, w, l }'
awk -v n="$t_sent" -v r="$t_rate" -v rate="$rate" -v b="$t_busiest" -v w="$t_welcomes" -v l="$t50 / $t99 / $tmax" -v d="$t_deferred" 'BEGIN {
  printf "| list, rate = \"%d/s\" | %d | | %d (busiest second: %d) | | | | %d | %s | %d |\n", rate, n, r, b, w, l, d }'
