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
  [ -x /usr/sbin/clickhouse-server ] || { echo "could not find or install clickhouse-server" >&2; return 1; }
  export CLICKHOUSE_SERVER=/usr/sbin/clickhouse-server
}
