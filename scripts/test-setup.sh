#!/usr/bin/env bash
# Makes this machine ready for the whole test suite (`make test` runs it
# first): starts PostgreSQL and Redis when they are down, installs Chromium
# through apt when it is missing and this user can, and installs the npm
# packages of every Node folder when missing or stale (scripts/npm-deps.sh).
# What cannot be had is a failure that names it and the command that fixes it.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { printf 'test-setup: %s\n' "$*" >&2; exit 1; }
log() { printf '== %s\n' "$*"; }

command -v go >/dev/null 2>&1 || fail "go is not on PATH: install Go (see go.mod for the version)"

# PostgreSQL: the shared test server (internal/pgtest.Schema) and the server
# programs that start a test's own cluster (internal/pgtest.NewCluster).
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  command -v pg_isready >/dev/null 2>&1 ||
    fail "PostgreSQL is not installed (no pg_isready): run \`apt-get install -y postgresql\`, or set TEST_DATABASE_URL"
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL"
    command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] ||
      fail "PostgreSQL is not running on 127.0.0.1:5432 and pg_ctlcluster is not there to start it: start PostgreSQL, or set TEST_DATABASE_URL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -n | tail -1)" main start ||
      fail "could not start PostgreSQL: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -n | tail -1) main start"
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 -p 5432 || fail "PostgreSQL started but does not accept connections on 127.0.0.1:5432 within 30 s"
  fi
  if [ "$(psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null)" != 1 ]; then
    createdb -h 127.0.0.1 -p 5432 -U postgres test 2>/dev/null ||
      fail "no database \"test\" on 127.0.0.1:5432 for the user postgres: run \`createdb -h 127.0.0.1 -U postgres test\` (the tests connect as postgres without a password)"
  fi
fi
url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
if command -v psql >/dev/null 2>&1; then
  psql "$url" -tAc 'SELECT 1' >/dev/null ||
    fail "cannot connect to PostgreSQL at $url (the tests need it; set TEST_DATABASE_URL for another server)"
fi
pg_bin="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
[ -n "$pg_bin" ] && [ -x "$pg_bin/pg_ctl" ] && [ -x "$pg_bin/initdb" ] ||
  fail "PostgreSQL's server programs (initdb, pg_ctl) not found: run \`apt-get install -y postgresql\`, or set PG_BIN"

# Redis: the cluster bus of package redis and test/cluster (TEST_REDIS_URL
# for another server).
if [ -z "${TEST_REDIS_URL:-}" ]; then
  if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing Redis (apt-get install redis-server)"
      apt-get update -qq || fail "apt-get update failed; Redis is needed: apt-get update && apt-get install -y redis-server"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null ||
        fail "apt-get install -y redis-server failed; the cluster tests need Redis on 127.0.0.1:6379 (or set TEST_REDIS_URL)"
    else
      fail "Redis is not installed (no redis-server): run \`sudo apt-get install -y redis-server\`, or set TEST_REDIS_URL"
    fi
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || fail "Redis started but does not answer PING on 127.0.0.1:6379"
  fi
fi

# Chromium, driven by the browser end-to-end test (test/e2e).
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  [ -n "${CHROMIUM:-}" ] && fail "CHROMIUM=$CHROMIUM is not an executable"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Chromium (apt-get install chromium)"
    apt-get update -qq || fail "apt-get update failed; Chromium is needed: apt-get update && apt-get install -y chromium"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ||
      fail "apt-get install -y chromium failed; the browser test needs Chromium at /usr/bin/chromium (or set CHROMIUM)"
  else
    fail "Chromium is missing ($chromium): run \`sudo apt-get update && sudo apt-get install -y chromium\`, or set CHROMIUM to a Chromium binary"
  fi
  [ -x "$chromium" ] || fail "apt-get installed chromium but $chromium is not there: set CHROMIUM"
fi

# npm packages of every Node folder (keyed on each package-lock.json).
bash scripts/npm-deps.sh client test/interop testdata/express-app test/e2e bench/node-baseline test/cluster

go mod download
