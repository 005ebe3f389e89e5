# The two commands a newcomer needs: `make demo` runs the demo, `make test`
# runs every test (what CI runs, through .ci/run).
.PHONY: demo test web build bench fuzz

GO ?= go

demo: web
	$(GO) run ./cmd/sessiongate serve --demo

build: web
	$(GO) build -o bin/sessiongate ./cmd/sessiongate

web:
	bash web/build.sh

test: web
	npm test --prefix client
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

bench:
	bash bench/run.sh

fuzz:
	bash scripts/fuzz.sh
