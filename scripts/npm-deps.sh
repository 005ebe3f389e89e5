#!/usr/bin/env bash
# Installs the npm packages of each Node folder named (relative to the
# repository root) with `npm ci`, only when its node_modules is missing or
# stale: the SHA-256 of the folder's package-lock.json is kept in
# node_modules/.sessiongate-lock.sha256 after a successful install, and an
# install whose stamp matches the lockfile is left alone.
#
# A node_modules that is a symbolic link belongs to another checkout (a git
# worktree sharing one install): it is never reinstalled, only reported when
# its stamp does not match.
#
# Usage: scripts/npm-deps.sh DIR...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

fail() { printf 'npm-deps: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || fail "Node.js is not on PATH: install Node 20 or later (node and npm)"
command -v npm >/dev/null 2>&1 || fail "npm is not on PATH: install Node 20 or later (node and npm)"
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || fail "Node.js $(node --version) is too old: install Node 20 or later"

for dir in "$@"; do
  abs="$root/$dir"
  lock="$abs/package-lock.json"
  [ -f "$lock" ] || fail "$dir/package-lock.json is missing"
  want="$(sha256sum "$lock" | cut -d' ' -f1)"
  stamp="$abs/node_modules/.sessiongate-lock.sha256"
  have=""
  [ -f "$stamp" ] && have="$(cat "$stamp")"
  if [ "$have" = "$want" ]; then
    continue
  fi
  if [ -L "$abs/node_modules" ]; then
    if [ -n "$have" ]; then
      printf 'npm-deps: %s/node_modules is a link to %s, installed from another package-lock.json; not reinstalling\n' \
        "$dir" "$(readlink "$abs/node_modules")" >&2
    fi
    continue
  fi
  if [ -z "$have" ] && [ -d "$abs/node_modules" ]; then
    echo "npm-deps: $dir: node_modules has no stamp; npm ci"
  elif [ -n "$have" ]; then
    echo "npm-deps: $dir: package-lock.json changed; npm ci"
  else
    echo "npm-deps: $dir: npm ci"
  fi
  npm ci --prefix "$abs" --no-audit --no-fund --loglevel=error ||
    fail "npm ci --prefix $dir failed (the npm registry must be reachable)"
  printf '%s\n' "$want" >"$stamp"
done
