#!/usr/bin/env bash
# A throwaway PostgreSQL for the ledger tests.
#
#   eval "$(scripts/ci/postgres.sh start)"   # prints export lines: the URL and the data dir
#   scripts/ci/postgres.sh stop              # stops it and removes the data dir
#
# Installs Debian's postgresql when no server binaries are found (needs root and apt-get),
# then runs a private cluster on 127.0.0.1, on a free port, in a temporary directory, with
# trust authentication, and creates the database `inferplane_test`. Nothing else is touched:
# no system cluster is started or changed.
set -euo pipefail

DB_NAME=inferplane_test

find_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
    echo "$dir"
  elif command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
  fi
}

install_postgres() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "postgres.sh: PostgreSQL is not installed; install it (apt-get install postgresql)" >&2
    exit 1
  fi
  echo "postgres.sh: installing Debian's postgresql" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# initdb and postgres refuse to run as root: run them as the postgres user when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local bindir datadir port
  bindir=$(find_bindir)
  if [ -z "$bindir" ]; then
    install_postgres
    bindir=$(find_bindir)
  fi
  datadir=$(mktemp -d "${TMPDIR:-/tmp}/inferplane-pg.XXXXXX")
  chmod 755 "$datadir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$datadir"
  port=$(free_port)
  as_owner "$bindir/initdb" -D "$datadir/data" -U postgres --auth=trust -E UTF8 >"$datadir/initdb.log"
  as_owner "$bindir/pg_ctl" -D "$datadir/data" -l "$datadir/server.log" -w start \
    -o "-h 127.0.0.1 -p $port -k $datadir -c fsync=off" >/dev/null
  as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB_NAME"
  echo "export INFERPLANE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/$DB_NAME"
  echo "export INFERPLANE_TEST_POSTGRES_DIR=$datadir"
}

stop() {
  local datadir="${1:-${INFERPLANE_TEST_POSTGRES_DIR:-}}" bindir
  if [ -z "$datadir" ] || [ ! -d "$datadir/data" ]; then
    echo "postgres.sh: no cluster to stop (give its directory or set INFERPLANE_TEST_POSTGRES_DIR)" >&2
    exit 1
  fi
  bindir=$(find_bindir)
  as_owner "$bindir/pg_ctl" -D "$datadir/data" -m fast -w stop >/dev/null
  rm -rf "$datadir"
}

case "${1:-start}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 [start | stop [DIR]]" >&2; exit 2 ;;
esac
