# The two commands a newcomer needs: `make demo` runs the demo, `make test`
# installs and starts what the tests need, then runs every test (CI runs it
# through .ci/run, with `make lint` and `make web-check`).
.PHONY: demo test setup lint web web-check build bench fuzz

GO ?= go
SHELL := bash

# The demo page's client files are committed (web/static/vendor): no Node needed.
demo:
	$(GO) run ./cmd/sessiongate serve --demo

build:
	$(GO) build -o bin/sessiongate ./cmd/sessiongate

# Starts PostgreSQL and Redis if down, installs Chromium and the npm packages
# of every Node folder if missing or stale; fails naming what it cannot get.
setup:
	bash scripts/test-setup.sh

# Runs every test; lists any skipped test with its reason (scripts/testreport).
test: setup
	GO=$(GO) npm test --prefix client
	$(GO) vet ./...
	set -o pipefail; $(GO) test -race -count=1 -timeout 20m -json ./... 2>&1 | $(GO) run ./scripts/testreport

lint:
	bash scripts/lint.sh

# Regenerates web/static/vendor from client/ (commit the result).
web:
	bash web/build.sh

# Fails when the committed vendor files differ from a fresh build.
web-check: web
	@git diff --exit-code --stat -- web/static/vendor || { echo "web/static/vendor is stale: run make web and commit it" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- web/static/vendor)" || { git status --short -- web/static/vendor; echo "web/static/vendor has files not committed: run make web and commit them" >&2; exit 1; }

bench:
	bash bench/run.sh

fuzz:
	bash scripts/fuzz.sh
