#!/usr/bin/env bash
# Latency of the analytics routes, the contacts search and the dashboard's pages over
# 200,000 contacts and 1,000,000 raw events (bench/api-dataset.sql), each API query with
# the plan PostgreSQL ran it with (auto_explain: EXPLAIN ANALYZE of the very statement
# Roster sent), and the throughput of the Loops `find` route.
# Usage: bench/api-queries.sh [requests per route] [find requests] [find concurrency]
#        [extra session events] (200 50000 32 0). Plans go to bench/results/api-plans.txt.
# 9000000 extra session events make the log 10,000,000 events.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/roster.sh

per_route=${1:-200}
find_requests=${2:-50000}
find_concurrency=${3:-32}
extra_sessions=${4:-0}
roster_workdir roster-bench
work=$ROSTER_WORK

export SQLX_OFFLINE=true
cargo build --release --quiet --bin roster --example api_load

pg_start "$work" max_connections=200 shared_buffers=512MB shared_preload_libraries=auto_explain \
  auto_explain.log_analyze=on auto_explain.log_buffers=on \
  auto_explain.log_timing=on auto_explain.log_nested_statements=on
pg_createdb roster_bench
db="postgres://postgres@127.0.0.1:$PG_PORT/roster_bench"

DATABASE_URL="$db" ./target/release/roster migrate >/dev/null
started=$(date +%s)
psql_db "$db" -v user_fixture="$(cat src/clerk/samples/user.created.json)" -v extra_sessions="$extra_sessions" \
  -f bench/api-dataset.sql
echo "dataset: $(psql_db "$db" -tAc 'select count(*) from contacts') contacts, $(psql_db "$db" -tAc 'select count(*) from clerk_events') events, loaded in $(( $(date +%s) - started )) s" >&2
echo "database size: $(psql_db "$db" -tAc "select pg_size_pretty(pg_database_size(current_database()))"), of which the event log and its indexes $(psql_db "$db" -tAc "select pg_size_pretty(pg_total_relation_size('clerk_events'))")" >&2

key="bench-key-$(head -c 32 /dev/urandom | base64 | tr -dc a-zA-Z0-9)"
roster_serve ./target/release/roster "$work/roster.log" DATABASE_URL="$db" ROSTER_API_KEY="$key" \
  ROSTER_CONFIG=roster.example.toml MAIL_FROM="Bench <bench@example.com>" \
  ROSTER_UNSUBSCRIBE_SECRET=bench-unsubscribe-secret RUST_LOG=warn
base=$ROSTER_URL

# Saved segments over the 200,000 contacts: their count (GET /{id}) and first page.
segment() {
  curl -fs -H "Authorization: Bearer $key" -H 'content-type: application/json' \
    -d "{\"name\": \"bench\", \"filter\": $1}" "$base/api/v1/audience-segments" | json_field id
}
seg_group=$(segment '{"match": "all", "conditions": [{"property": "userGroup", "operator": "equals", "value": "Waitlist"}, {"property": "subscribed", "operator": "equals", "value": true}]}')
seg_nested=$(segment '{"match": "any", "conditions": [{"property": "waitlistStatus", "operator": "equals", "value": "invited"}, {"match": "all", "conditions": [{"property": "isClerkUser", "operator": "equals", "value": true}, {"property": "email", "operator": "contains", "value": "lov"}, {"property": "createdAt", "operator": "withinLastDays", "value": 3650}]}]}')
seg_activity=$(segment '{"match": "all", "conditions": [{"mailingList": "news", "negate": true}, {"activity": "received", "template": "welcome", "negate": true}]}')

range="from=2026-08-03T00:00:00Z&to=2026-11-01T00:00:00Z&interval=day"
declare -A routes=(
  [growth]="/api/v1/analytics/growth?$range"
  [churn]="/api/v1/analytics/churn?$range"
  [waitlist]="/api/v1/analytics/waitlist?$range"
  [events]="/api/v1/analytics/events?$range"
  [active-users]="/api/v1/analytics/active-users?$range"
  [auth]="/api/v1/analytics/auth?$range"
  [search-email]="/api/v1/contacts?email=ada.lov&limit=50"
  [search-name]="/api/v1/contacts?name=grace%20hop&limit=50"
  [search-rare-name]="/api/v1/contacts?name=zelda&limit=50"
  [search-common-name]="/api/v1/contacts?name=a&limit=50"
  [filter-rare-group]="/api/v1/contacts?userGroup=Founders&limit=50"
  [filter-group]="/api/v1/contacts?userGroup=Waitlist&subscribed=false&limit=50"
  [filter-waitlist]="/api/v1/contacts?waitlistStatus=invited&source=Clerk&limit=50"
  [list-page]="/api/v1/contacts?limit=50"
  [segment-count-group]="/api/v1/audience-segments/$seg_group"
  [segment-count-nested]="/api/v1/audience-segments/$seg_nested"
  [segment-count-activity]="/api/v1/audience-segments/$seg_activity"
  [segment-contacts-nested]="/api/v1/audience-segments/$seg_nested/contacts?limit=50"
)
order=(growth churn waitlist events active-users auth search-email search-name search-rare-name search-common-name filter-group filter-rare-group filter-waitlist list-page
  segment-count-group segment-count-nested segment-count-activity segment-contacts-nested)

echo "| query | p50 ms | p95 ms | p99 ms | max ms | failures |"
echo "|---|---|---|---|---|---|"
for name in "${order[@]}"; do
  echo "${routes[$name]}" >"$work/paths"
  ./target/release/examples/api_load "$base" "$key" "$work/paths" --requests 20 >/dev/null # warm-up
  result=$(./target/release/examples/api_load "$base" "$key" "$work/paths" --requests "$per_route")
  printf "| %s | %.1f | %.1f | %.1f | %.1f | %s |\n" "$name" "$(json_field p50_ms <<<"$result")" \
    "$(json_field p95_ms <<<"$result")" "$(json_field p99_ms <<<"$result")" \
    "$(json_field max_ms <<<"$result")" "$(json_field failures <<<"$result")"
done

# The dashboard's pages, logged in as a browser is (the session cookie).
jar="$work/cookies"
form=$(curl -fs -c "$jar" "$base/login")
nonce=$(echo "$form" | sed -n 's/.*name="nonce" value="\([^"]*\)".*/\1/p')
token=$(echo "$form" | sed -n 's/.*name="token" value="\([^"]*\)".*/\1/p')
curl -fs -o /dev/null -b "$jar" -c "$jar" --data-urlencode "key=$key" --data-urlencode "nonce=$nonce" \
  --data-urlencode "token=$token" "$base/login"
session=$(awk '$6 == "roster_session" { print $7 }' "$jar")
[ -n "$session" ] || { echo "could not log in to the dashboard" >&2; exit 1; }
contact=$(psql_db "$db" -tAc "select id from contacts where user_id = 'user_4242'")
declare -A pages=(
  [audience]="/"
  [audience-search]="/?name=grace+hop"
  [audience-filter]="/?userGroup=Waitlist&subscribed=no"
  [contact]="/contacts/$contact"
  [events]="/events"
  [events-type]="/events?type=session.created"
  [workflows]="/workflows"
  [emails]="/emails"
  [analytics]="/analytics"
  [analytics-90d-week]="/analytics?from=2026-08-03&to=2026-11-01&interval=week"
  [preview]="/preview?template=welcome&contact=$contact"
)
page_order=(audience audience-search audience-filter contact events events-type workflows emails analytics analytics-90d-week preview)
echo
echo "| dashboard page | p50 ms | p95 ms | p99 ms | max ms | failures |"
echo "|---|---|---|---|---|---|"
for name in "${page_order[@]}"; do
  echo "${pages[$name]}" >"$work/paths"
  ROSTER_COOKIE="roster_session=$session" ./target/release/examples/api_load "$base" "$key" "$work/paths" --requests 20 >/dev/null
  result=$(ROSTER_COOKIE="roster_session=$session" ./target/release/examples/api_load "$base" "$key" "$work/paths" --requests "$per_route")
  printf "| %s | %.1f | %.1f | %.1f | %.1f | %s |\n" "$name" "$(json_field p50_ms <<<"$result")" \
    "$(json_field p95_ms <<<"$result")" "$(json_field p99_ms <<<"$result")" \
    "$(json_field max_ms <<<"$result")" "$(json_field failures <<<"$result")"
done

# find: random existing addresses, concurrency as a busy app's backend would use.
psql_db "$db" -tAc "select '/api/v1/contacts/find?email=' || replace(email, '@', '%40') from contacts order by random() limit 20000" >"$work/find"
# Each lookup finds its contact (a fast 200 with [] would measure nothing).
curl -fs -H "Authorization: Bearer $key" "$base$(head -1 "$work/find")" | grep -q '"email"' \
  || { echo "find answered no contact" >&2; exit 1; }
./target/release/examples/api_load "$base" "$key" "$work/find" --requests 5000 --concurrency "$find_concurrency" >/dev/null
echo
echo "| find round | req/s | p50 ms | p99 ms | failures |"
echo "|---|---|---|---|---|"
for round in 1 2 3; do
  result=$(./target/release/examples/api_load "$base" "$key" "$work/find" --requests "$find_requests" --concurrency "$find_concurrency")
  printf "| %s | %.0f | %.2f | %.2f | %s |\n" "$round" "$(json_field requests_per_second <<<"$result")" \
    "$(json_field p50_ms <<<"$result")" "$(json_field p99_ms <<<"$result")" "$(json_field failures <<<"$result")"
done
echo
echo "roster peak RSS: $(awk '/VmHWM/ { printf "%.1f MB", $2 / 1024 }' "/proc/$ROSTER_PID/status")"

# The plans: every statement of one request per route, as PostgreSQL ran it.
mkdir -p bench/results
psql_db "$db" -c "alter system set auto_explain.log_min_duration = 0" -c "select pg_reload_conf()" >/dev/null
sleep 1

lines_before=$(wc -l <"$work/postgres.log")
for name in "${order[@]}"; do
  curl -fs -H "Authorization: Bearer $key" "$base${routes[$name]}" >/dev/null
done
sleep 1
psql_db "$db" -c "alter system reset auto_explain.log_min_duration" -c "select pg_reload_conf()" >/dev/null
{
  echo "# Plans of bench/api-queries.sh (auto_explain, EXPLAIN ANALYZE BUFFERS), $(date -u +%Y-%m-%d)"
  echo "# Routes in this order: ${order[*]}"
  tail -n +"$((lines_before + 1))" "$work/postgres.log" | sed -E 's/^[0-9-]+ [0-9:.]+ [A-Z]+ \[[0-9]+\] //'
} >bench/results/api-plans.txt
echo "plans: bench/results/api-plans.txt ($(grep -c 'duration:' bench/results/api-plans.txt) statements)"
