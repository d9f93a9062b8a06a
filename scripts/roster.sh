# shellcheck shell=bash
# Helpers for the scripts that run Roster itself (scripts/run, scripts/e2e-test,
# scripts/sqlx-prepare and the benchmarks): one cleanup at exit for everything a script
# started, a work folder, `roster serve` started and waited for, psql on a database, a
# field of a JSON summary, a webhook secret. Sources scripts/postgres.sh (the
# PostgreSQL cluster helpers, and through it os.sh).

# shellcheck source-path=SCRIPTDIR source=postgres.sh
. "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"

# The commands roster_at_exit registered, oldest first, each quoted for eval.
roster_exit_commands=()

# roster_at_exit COMMAND [ARGS...]: runs COMMAND ARGS (the words as they are now) when
# the script exits, before the commands registered earlier. It owns the script's EXIT
# trap: a script that needs a cleanup of its own registers it here, never with `trap`.
roster_at_exit() {
  roster_exit_commands+=("$(printf '%q ' "$@")")
  trap roster_cleanup EXIT
}

# The EXIT trap: runs the registered commands, newest first; one that fails does not
# keep the others from running, nor changes the script's exit status.
roster_cleanup() {
  local status=$? i
  for ((i = ${#roster_exit_commands[@]} - 1; i >= 0; i--)); do
    eval "${roster_exit_commands[i]}" || true
  done
  roster_exit_commands=()
  return "$status"
}

# roster_workdir PREFIX: makes a new folder /tmp/PREFIX.XXXXXX and sets ROSTER_WORK to
# it. At exit, after what is registered later (servers), stops a cluster that pg_start
# started in it, then removes it.
roster_workdir() {
  ROSTER_WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  roster_at_exit rm -rf "$ROSTER_WORK"
  roster_at_exit pg_stop "$ROSTER_WORK"
}

# roster_stop PID [SIGNAL]: sends SIGNAL (TERM by default) to PID, a child of this
# shell, and waits for it to exit. Quiet when it has exited already.
roster_stop() {
  kill -s "${2:-TERM}" "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# roster_ready HOST:PORT: succeeds when Roster there answers GET /readyz with 200 (it
# reaches its database). Plain bash (/dev/tcp): no curl needed.
roster_ready() {
  local host=${1%:*} port=${1##*:}
  (
    exec 3<>"/dev/tcp/$host/$port" || exit 1
    printf 'GET /readyz HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" >&3
    IFS= read -r -t 5 status_line <&3 || exit 1
    [[ $status_line == "HTTP/1."[01]" 200"* ]]
  ) 2>/dev/null
}

# roster_serve [-C DIR] [-s SIGNAL] BINARY LOG [NAME=VALUE...]: starts `BINARY serve` in
# the background, in DIR (default: here), with nothing in its environment but PATH and
# the NAME=VALUE given (env -i; a .env in DIR still fills in the rest), its output to
# the file LOG, or left on this script's stdout and stderr when LOG is `-`. Without
# ROSTER_ADDR among them it listens on 127.0.0.1 on a free port. Waits until GET /readyz
# answers 200; fails, with LOG printed, when the process exits first or after 10 s.
# Sets ROSTER_PID and ROSTER_URL (http://HOST:PORT). At exit it is sent SIGNAL (TERM
# by default) and waited for. Can be called again for another server.
roster_serve() {
  local dir=. signal=TERM
  while [ $# -gt 0 ]; do
    case $1 in
      -C) dir=$2; shift 2 ;;
      -s) signal=$2; shift 2 ;;
      *) break ;;
    esac
  done
  local binary=$1 log=$2 addr="" var
  shift 2
  case $binary in /*) ;; *) binary="$PWD/$binary" ;; esac
  for var in "$@"; do
    case $var in
      ROSTER_ADDR=*) addr=${var#ROSTER_ADDR=} ;;
      [A-Za-z_]*=*) ;;
      *) echo "roster_serve: not NAME=VALUE: $var" >&2; return 1 ;;
    esac
  done
  if [ -z "$addr" ]; then
    addr="127.0.0.1:$(pg_free_port)"
    set -- "$@" "ROSTER_ADDR=$addr"
  fi
  if [ "$log" = - ]; then
    env -i -C "$dir" PATH="$PATH" "$@" "$binary" serve &
  else
    env -i -C "$dir" PATH="$PATH" "$@" "$binary" serve >"$log" 2>&1 &
  fi
  ROSTER_PID=$!
  # shellcheck disable=SC2034 # for the caller
  ROSTER_URL="http://$addr"
  roster_at_exit roster_stop "$ROSTER_PID" "$signal"
  local deadline=$((SECONDS + 10))
  until roster_ready "$addr"; do
    if ! kill -0 "$ROSTER_PID" 2>/dev/null; then
      echo "roster serve exited before it was ready on $addr" >&2
      [ "$log" = - ] || cat "$log" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "roster serve was not ready on $addr after 10 s" >&2
      [ "$log" = - ] || cat "$log" >&2
      return 1
    fi
    sleep 0.05
  done
}

# psql_db URL [ARGS...]: psql on the database at URL, as the scripts want it: quiet, no
# ~/.psqlrc, stopping at the first error, no NOTICEs. The server's psql when pg_start
# or pg_find_bindir found one.
psql_db() {
  local url=$1
  shift
  PGOPTIONS="-c client_min_messages=warning" "${PG_BINDIR:+$PG_BINDIR/}psql" -q -X \
    -v ON_ERROR_STOP=1 "$url" "$@"
}

# json_field NAME: reads JSON on stdin (the one-line summaries the benchmark tools print)
# and prints the value of the field NAME, a number or a string without escapes; fails
# when there is none. With sed, which every machine has (python3 and node may not be).
# It does not parse: the last "NAME": on a line wins, nested or not.
json_field() {
  local found
  found=$(sed -nE "s/.*\"$1\"[[:space:]]*:[[:space:]]*(\"([^\"\\\\]*)\"|(-?[0-9][-+.eE0-9]*)).*/=\2\3/p")
  [ -n "$found" ] || return 1
  found=${found%%$'\n'*}
  printf '%s\n' "${found#=}"
}

# Prints a new random webhook signing secret in Svix's form (whsec_ and 24 bytes in
# base64), as CLERK_WEBHOOK_SECRET takes it.
webhook_secret() {
  echo "whsec_$(head -c 24 /dev/urandom | base64)"
}
