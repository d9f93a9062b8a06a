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
