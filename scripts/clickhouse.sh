# shellcheck shell=bash
# ch_find_server: sets CLICKHOUSE_SERVER to Debian's clickhouse-server, installing the
# package when it is missing. The tests that forward to ClickHouse start their own
# throwaway server with it (tests/api/clickhouse.rs), on free ports and a temporary
# folder, and stop it when they end. Sourced by scripts/test.

# shellcheck source-path=SCRIPTDIR source=os.sh
. "$(dirname "${BASH_SOURCE[0]}")/os.sh"

ch_find_server() {
  local path
  for path in "${CLICKHOUSE_SERVER:-}" /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
    if [ -n "$path" ] && [ -x "$path" ]; then
      export CLICKHOUSE_SERVER=$path
      return 0
    fi
  done
  os_install clickhouse-server || return 1
  # The package may start a system-wide server; the tests need none, so it is stopped
  # and kept from starting at boot (the tests start their own).
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet clickhouse-server 2>/dev/null; then
    $sudo systemctl disable --now clickhouse-server >&2 || true
  elif command -v service >/dev/null 2>&1; then
    $sudo service clickhouse-server stop >/dev/null 2>&1 || true
  fi
  [ -x /usr/sbin/clickhouse-server ] || { echo "could not find or install clickhouse-server" >&2; return 1; }
  export CLICKHOUSE_SERVER=/usr/sbin/clickhouse-server
}

# ch_start DIR: starts a throwaway ClickHouse server (ch_find_server's) with its data
# in DIR, on free loopback ports, with a user `roster` whose password is `roster`, and
# waits until it answers. Sets CH_URL (its HTTP interface) and CH_PID; it is killed at
# exit (roster_at_exit, from scripts/roster.sh). As the tests' (tests/api/clickhouse.rs).
ch_start() {
  local dir=$1 http tcp
  ch_find_server || return 1
  http=$(pg_free_port)
  tcp=$(pg_free_port)
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas}
  cat >"$dir/config.xml" <<XML
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <http_port>$http</http_port><tcp_port>$tcp</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$dir/data/</path><tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>134217728</uncompressed_cache_size>
  <timezone>UTC</timezone>
</yandex>
XML
  cat >"$dir/users.xml" <<XML
<yandex><profiles><default></default></profiles><users>
  <roster><password>roster</password><networks><ip>127.0.0.1</ip></networks>
  <profile>default</profile><quota>default</quota></roster>
</users><quotas><default></default></quotas></yandex>
XML
  "$CLICKHOUSE_SERVER" --config-file="$dir/config.xml" >"$dir/server.log" 2>&1 &
  CH_PID=$!
  CH_URL="http://127.0.0.1:$http"
  roster_at_exit roster_stop "$CH_PID" KILL
  local deadline=$((SECONDS + 20))
  until curl -fsS "$CH_URL/ping" >/dev/null 2>&1; do
    if ! kill -0 "$CH_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "clickhouse-server did not start; its log:" >&2
      cat "$dir/server.log" >&2
      return 1
    fi
    sleep 0.1
  done
}

# ch_query SQL: runs SQL on ch_start's server as `roster` and prints the answer.
ch_query() {
  curl -fsS -u roster:roster --data-binary "$1" "$CH_URL/"
}
