#!/usr/bin/env bash
# The lint checks CI runs (`make lint`): gofmt, go vet, staticcheck,
# go mod tidy, and for the TypeScript client tsc and prettier. Each prints
# what it found; the script fails if any found something.
set -uo pipefail
cd "$(dirname "$0")/.."

# Pinned here so every machine runs the same checks.
staticcheck="honnef.co/go/tools/cmd/staticcheck@v0.8.2"

failed=()
check() {
  local name="$1"
  shift
  printf '== %s\n' "$name"
  if ! "$@"; then
    failed+=("$name")
  fi
}

gofmt_clean() {
  local out
  out="$(git ls-files --cached --others --exclude-standard -z '*.go' | xargs -0 gofmt -l)" || return 1
  [ -z "$out" ] && return 0
  printf 'not gofmt-ed (run gofmt -w):\n%s\n' "$out"
  return 1
}

bash scripts/npm-deps.sh client || exit 1

check "gofmt -l" gofmt_clean
check "go vet" go vet ./...
check "staticcheck" go run "$staticcheck" ./...
check "go mod tidy -diff" go mod tidy -diff
check "tsc --noEmit (client)" npm run --silent --prefix client typecheck
check "prettier --check (client)" npm run --silent --prefix client format:check

if [ ${#failed[@]} -gt 0 ]; then
  printf 'lint: failed: %s\n' "${failed[*]}" >&2
  exit 1
fi
echo "lint: clean"
