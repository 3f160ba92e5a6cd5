# Two commands for a fresh clone: `make demo` (the main job) and `make test` (the whole suite).
# Each installs dependencies (npm ci) when needed and builds before running.

NODE_MODULES_STAMP := node_modules/.package-lock.json

.PHONY: all deps build demo test lint format bench bench-core clean

all: build

$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: $(NODE_MODULES_STAMP)

build: deps
	npx tsc -p tsconfig.json

demo: build
	bin/tsvs sim --all examples/

test: build
	npx biome ci .
	node --test --test-reporter=spec dist/test/

lint: deps
	npx biome ci .

format: deps
	npx biome check --write .

bench-core: build
	node --expose-gc dist/bench/core.js

bench: bench-core

clean:
	rm -rf dist
