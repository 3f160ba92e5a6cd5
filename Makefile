# Two commands for a fresh clone: `make demo` (the main job) and `make test` (the whole suite).
# Each installs dependencies (npm ci) when needed and builds before running.

NODE_MODULES_STAMP := node_modules/.package-lock.json

.PHONY: all deps build demo sim test e2e-deps lint format bench bench-core bench-smoke bench-ha bench-scale clean

all: build

$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: $(NODE_MODULES_STAMP)

build: deps
	npx tsc -p tsconfig.json

# The main job: the netns lab (root) carries curl traffic through NAT, DR, TUN and FULLNAT.
demo: build e2e-deps
	bin/tsvs lab demo

# The same director on the in-memory network: no root needed, deterministic.
sim: build
	bin/tsvs sim --all examples/

e2e-deps:
	@scripts/e2e-deps.sh

test: build e2e-deps
	npx biome ci .
	node --test --test-reporter=spec dist/test/

lint: deps
	npx biome ci .

format: deps
	npx biome check --write .

bench-core: build
	node --expose-gc dist/bench/core.js

# Forwarding figures of the daemon on veth (root; docs/io.md "Figures"; TSVS_RING_BENCH_* knobs).
bench-ring: build e2e-deps
	node dist/bench/ring.js

# Failover and connection-sync figures of a tsvs director pair (root; docs/bench.md "HA"):
# writes bench/results/ha-<date>.json. Knobs: TSVS_HA_BENCH_ROUNDS (20), TSVS_HA_BENCH_* (bench/ha.ts).
bench-ha: build e2e-deps
	node dist/bench/ha.js

# Flows surviving a director's loss and addition behind an ECMP router, mh/rr x sync on/off, and
# plain vs resilient ECMP (root, BIRD; docs/scale-out.md): writes bench/results/scale-<date>.json.
bench-scale: build e2e-deps
	node dist/bench/scale.js

# tsvs against nft DNAT, haproxy and nginx stream on a namespace network (root; docs/bench.md):
# writes bench/results/<date>.json and .svg. The README section: bin/tsvs bench --update-readme FILE.json
bench: bench-core
	bin/tsvs bench

# The same harness, 1 s per cell and one repetition (what test/e2e/bench-smoke.test.ts runs).
bench-smoke: build
	bin/tsvs bench --smoke

clean:
	rm -rf dist
