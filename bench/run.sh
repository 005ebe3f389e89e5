#!/usr/bin/env bash
# Runs sessiongate's benchmarks on this machine and writes docs/benchmarks.md.
#
#   bench/run.sh                    everything (about 8 minutes)
#   bench/run.sh memory handshake   a subset of: memory broadcast handshake statements revocation attack slowread storm fanout-2000 cluster subscribe events presence codec ratelimit recovery recovery-cluster
#   bench/run.sh --quick            small sizes: a smoke test of the whole pipeline (writes to $TMPDIR)
#   bench/run.sh -db URL ...        another PostgreSQL test database (loopback only)
#
# Builds the Go programs into a temporary directory, installs the Node
# baseline's packages if missing, and runs bench/compare, which starts each
# server and the load tool as separate processes and cleans up after them.
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
for a in "$@"; do
	case "$a" in
	--quick) args+=(-quick) ;;
	*) args+=("$a") ;;
	esac
done

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bin="$(mktemp -d "${TMPDIR:-/tmp}/sessiongate-bench-bin.XXXXXX")"
trap 'rm -rf "$bin"' EXIT

go build -o "$bin/" ./bench/loadtool ./bench/echoserver ./bench/wsbaseline ./bench/compare ./bench/appserver ./bench/ratelimit ./bench/recovery ./cmd/sessiongate
bash scripts/npm-deps.sh bench/node-baseline test/interop
"$bin/compare" -bin "$bin" "${args[@]}"
