# shellcheck shell=bash
# os_install PACKAGE...: installs Debian packages, through sudo unless root. Sourced by
# scripts/postgres.sh (PostgreSQL) and scripts/e2e-test (Node.js, Chromium).
os_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing $* from the OS packages" >&2
  $sudo apt-get update -qq >&2 && $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq -o Dpkg::Options::=--force-confold "$@" >&2
}
