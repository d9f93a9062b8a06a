# shellcheck shell=bash
# Helpers to run a private PostgreSQL cluster for Roster: never the system's default
# cluster, always on a port of our own. Sourced by scripts/run, scripts/test and the
# benchmarks. Works as root (through the postgres user) and as a normal user.

# The newest folder with PostgreSQL server binaries (the client package alone has none).
pg_server_bindir() {
  local ctl
  ctl=$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$ctl" ]; then ctl=$(command -v pg_ctl 2>/dev/null || true); fi
  [ -n "$ctl" ] && dirname "$ctl"
}

. "$(dirname "${BASH_SOURCE[0]}")/os.sh"

# Finds pg_ctl, installing Debian's postgresql package when no server binaries exist.
pg_find_bindir() {
  local dir
  dir=$(pg_server_bindir || true)
  if [ -z "$dir" ]; then
    echo "PostgreSQL server binaries not found" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Ask Debian's packaging not to create (and start) a default cluster: we never use
    # it. Only on a machine that never had PostgreSQL (no createcluster.conf yet); the
    # file stays, as the package would have kept it.
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
      $sudo mkdir -p /etc/postgresql-common
      echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    os_install postgresql || return 1
    dir=$(pg_server_bindir || true)
  fi
  [ -n "$dir" ] || { echo "could not find or install PostgreSQL" >&2; return 1; }
  PG_BINDIR="$dir"
}

# Runs a PostgreSQL binary as the cluster's owner: `postgres` when we are root.
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Prints a TCP port on 127.0.0.1 that nothing listens on right now, below the range
# the kernel hands out to outgoing connections (so that none of the many loopback
# connections a test run opens holds it by the time something listens on it).
pg_free_port() {
  local port low=32768
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  [ "$low" -gt 12000 ] 2>/dev/null || low=32768
  for _ in $(seq 1 50); do
    port=$(( (RANDOM << 1 | RANDOM & 1) % (low - 10000) + 10000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# pg_start DIR [extra postgres -c options...]: creates the cluster in DIR/data when
# missing, then starts it on a free port (or finds it still running from an earlier
# run that did not stop it). Sets PG_PORT and PG_DATA. TCP on 127.0.0.1 only.
pg_start() {
  local dir=$1; shift
  pg_find_bindir || return 1
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
  PG_DATA="$dir/data"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    pg_as_owner "$PG_BINDIR/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 \
      --locale=C.UTF-8 --no-instructions >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; return 1; }
  fi
  if [ -f "$dir/port" ] && pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    PG_PORT=$(cat "$dir/port")
    return 0
  fi
  local opts="-c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
  local extra
  for extra in "$@"; do opts="$opts -c $extra"; done
  for _ in 1 2 3 4 5; do
    PG_PORT=$(pg_free_port) || return 1
    if pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -l "$dir/postgres.log" -w -t 30 \
      -o "-p $PG_PORT $opts" start >/dev/null; then
      echo "$PG_PORT" >"$dir/port"
      return 0
    fi
  done
  cat "$dir/postgres.log" >&2
  return 1
}

# pg_stop DIR: stops the cluster started by pg_start, if it runs.
pg_stop() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] || return 0
  local bindir=${PG_BINDIR:-$(pg_server_bindir || true)}
  [ -n "$bindir" ] || return 0
  pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# pg_createdb NAME: creates database NAME on the running cluster unless it exists.
pg_createdb() {
  local name=$1
  if ! pg_as_owner "$PG_BINDIR/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
    "select 1 from pg_database where datname = '$name'" postgres | grep -q 1; then
    pg_as_owner "$PG_BINDIR/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$name"
  fi
}
