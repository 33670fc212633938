# certhosting: `make run` starts the service pair on its embedded defaults; `make test` is what CI
# runs. Every tool is pinned: buf, grpcurl and Pebble from tools/go.mod (built into bin/),
# protoc-gen-go and protoc-gen-go-grpc from the main go.mod's tool block, protoc-gen-es and the
# TypeScript example's packages by their package-lock.json (make npm-deps), protoc and the gRPC
# Python plugin and runtime by tools/debian-versions (Debian packages, tools/debian-deps).
SHELL := bash
GO    ?= go
BIN   := $(CURDIR)/bin
TOOLS := $(BIN)/buf $(BIN)/grpcurl $(BIN)/pebble $(BIN)/pebble-challtestsrv
CMDS  := $(BIN)/certhosting-order $(BIN)/certhosting-lifecycle $(BIN)/certhosting-devdns $(BIN)/certhosting-localca-plugin $(BIN)/certhosting-agent

# The npm installs: the TypeScript generator (tools/ts) and the TypeScript example with the SDK
# from gen/ts (examples/typescript). npm writes node_modules/.package-lock.json at each install.
NPM_GEN     := tools/ts/node_modules/.package-lock.json
NPM_EXAMPLE := examples/typescript/node_modules/.package-lock.json
TS_EXAMPLE  := examples/typescript/dist/walkthrough.js

.PHONY: all deps npm-deps sdk-examples test-alerts breaking build tools generate lint check-generated vet test test-short fuzz run run-pg bench bench-purchase bench-purchase-pg bench-sweep bench-sweep-pg bench-renew bench-renew-pg bench-reissue bench-sim bench-flat bench-streams clean

all: build

# The tools build once (buf takes a few minutes the first time) and again only when tools/go.mod
# or tools/go.sum change.
$(TOOLS) &: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BIN)/ github.com/bufbuild/buf/cmd/buf github.com/fullstorydev/grpcurl/cmd/grpcurl \
		github.com/letsencrypt/pebble/v2/cmd/pebble github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv
	@touch $(TOOLS)

tools: $(TOOLS)

# npm ci installs exactly what each package-lock.json pins, once and again when the lock changes
# (the example's also when gen/ts does: it installs the SDK as a copy of gen/ts).
$(NPM_GEN): tools/ts/package.json tools/ts/package-lock.json
	cd tools/ts && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(NPM_EXAMPLE): examples/typescript/package.json examples/typescript/package-lock.json $(shell find gen/ts -type f 2>/dev/null)
	cd examples/typescript && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

npm-deps: $(NPM_GEN) $(NPM_EXAMPLE)

# The SDK examples that need building: the TypeScript one, compiled by the pinned tsc. e2e's
# TestSDKWalkthroughs runs it and the Python one against a pair.
$(TS_EXAMPLE): $(NPM_EXAMPLE) examples/typescript/walkthrough.ts examples/typescript/tsconfig.json
	cd examples/typescript && node_modules/.bin/tsc -p .

sdk-examples: $(TS_EXAMPLE)

build:
	$(GO) build -o $(BIN)/ ./services/order/cmd/certhosting-order ./services/lifecycle/cmd/certhosting-lifecycle \
		./cmd/certhosting-devdns ./cmd/certhosting-localca-plugin ./cmd/certhosting-agent

# gen/ts and gen/python are made anew (buf does not remove what a deleted proto generated), from
# the Debian packages' pinned versions only.
generate: $(BIN)/buf $(NPM_GEN)
	./tools/debian-deps --strict
	rm -rf gen/ts gen/python
	$(BIN)/buf generate
	./tools/sdk-layout

lint: $(BIN)/buf
	$(BIN)/buf lint

# No change to proto/ may break a client: buf breaking against the previous version of the API in
# git history (tools/buf-breaking says which; BASE=<tag> make breaking checks against a release).
breaking: $(BIN)/buf
	BUF=$(BIN)/buf ./tools/buf-breaking

# gen/ must be exactly what buf generates from proto/: generate into a scratch directory and compare.
# What installing or running the SDKs leaves there (pip's build/ and egg-info, Python's caches) is
# not generated and not compared.
check-generated: $(BIN)/buf $(NPM_GEN)
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(BIN)/buf generate -o $$tmp && ./tools/sdk-layout $$tmp && \
	diff -r -x node_modules -x __pycache__ -x build -x '*.egg-info' $$tmp/gen gen > $$tmp/diff || { cat $$tmp/diff; echo "gen/ is stale: run 'make generate' and commit"; exit 1; }
	@echo "gen/ matches proto/"

vet:
	@unformatted=$$("$$($(GO) env GOROOT)/bin/gofmt" -l $$(find . -name '*.go' -not -path './bin/*' -not -path './var/*' -not -path './.git/*')) || exit 1; \
	if [ -n "$$unformatted" ]; then echo "not gofmt-formatted (run gofmt -w):"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# The second run repeats the services' tests (and the local CA's and ACME client's SQL through
# them) on PostgreSQL: each test creates and drops a database of its own on the local server
# (internal/dbtest; CERTHOSTING_TEST_POSTGRES names another). The store and pkg/db tests run on both
# dialects in the first run already. Without a reachable server these tests skip, or fail under CI.
# The last step restarts the PostgreSQL server under load (e2e TestPostgresRestart), alone, as it
# breaks every other test's connections.
# Debian's packages the tests use (promtool, protoc for the Python SDK, Python gRPC), installed if
# missing (tools/debian-deps).
deps:
	@./tools/debian-deps

# The alert rules (docs/alerts.yml) against their unit tests.
test-alerts: deps
	promtool check rules docs/alerts.yml
	cd docs && promtool test rules alerts_test.yml

# The simulation of 1,000 bundles over 3 years (internal/sim) takes 37 s without -race and 4 min
# with it: the -race run skips it and the line after runs it without (its small sibling,
# TestSimulationCountsSilentExpiries, runs under -race).
test: deps lint breaking check-generated vet tools test-alerts sdk-examples
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -timeout 15m -run '^TestSimulation$$' -v ./internal/sim/
	CERTHOSTING_TEST_DB=postgres $(GO) test -race -count=1 -timeout 20m ./services/... ./pkg/auth/...
	CERTHOSTING_E2E_PG_RESTART=1 $(GO) test -race -count=1 -timeout 5m -run TestPostgresRestart ./e2e/

# make fuzz: each native fuzz target for FUZZTIME (make test runs their seed corpora, and the
# crashers kept under testdata/fuzz/, as ordinary tests). A crasher found is written to the
# package's testdata/fuzz/<target>/: fix the cause and commit it as a regression case.
FUZZTIME ?= 1m
FUZZ := ./services/lifecycle:FuzzNormalizeDomain ./services/lifecycle:FuzzParseCustomerCSR ./services/lifecycle:FuzzImport \
	./pkg/ca/caconfig:FuzzParse ./pkg/dnsserver:FuzzZoneFile ./pkg/pagetoken:FuzzDecode
fuzz:
	@for t in $(FUZZ); do pkg=$${t%%:*}; name=$${t##*:}; echo "== $$name in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; done

test-short: vet
	$(GO) test -race -short ./...

# make run: both services on SQLite under var/, local defaults, and the development DNS server
# (127.0.0.1:5354, answering from var/dev.zone) that the local CA verifies domains against.
# Ctrl-C stops them all.
run: build
	@mkdir -p var
	@$(BIN)/certhosting-order admin bootstrap -dir var > /dev/null
	@test -s var/lifecycle-master.key || (umask 077; head -c 32 /dev/urandom | base64 > var/lifecycle-master.key)
	@echo "demo API key (also in var/demo-api-key): $$(cat var/demo-api-key)"
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' EXIT; \
	$(BIN)/certhosting-devdns & \
	$(BIN)/certhosting-lifecycle -metrics-addr 127.0.0.1:9152 & \
	$(BIN)/certhosting-order -metrics-addr 127.0.0.1:9151 & \
	wait -n

# make run-pg: 2 order and 2 lifecycle replicas on the local PostgreSQL (PGURL, no database name),
# on databases certhosting_{order,lifecycle,identity,localca}, created when missing (psql and
# createdb, Debian's postgresql-client), and the development DNS server. Key files under var/pg/.
# README "Running replicas on PostgreSQL".
PGURL ?= postgres://postgres@127.0.0.1:5432
PGDBS := order lifecycle identity localca
run-pg: build
	@for d in $(PGDBS); do \
	  psql "$(PGURL)/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = 'certhosting_$$d'" | grep -q 1 || \
	  createdb --maintenance-db="$(PGURL)/postgres" "certhosting_$$d" || exit 1; \
	done
	@mkdir -p var/pg
	@$(BIN)/certhosting-order admin bootstrap -dir var/pg -identity-db "$(PGURL)/certhosting_identity" > /dev/null
	@test -s var/pg/lifecycle-master.key || (umask 077; head -c 32 /dev/urandom | base64 > var/pg/lifecycle-master.key)
	@echo "order replicas:     127.0.0.1:50051 127.0.0.1:50053"
	@echo "lifecycle replicas: 127.0.0.1:50052 127.0.0.1:50054"
	@echo "demo API key (also in var/pg/demo-api-key): $$(cat var/pg/demo-api-key)"
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' EXIT; \
	lc="-identity-db $(PGURL)/certhosting_identity -db $(PGURL)/certhosting_lifecycle -localca-db $(PGURL)/certhosting_localca -master-key-file var/pg/lifecycle-master.key"; \
	od="-identity-db $(PGURL)/certhosting_identity -db $(PGURL)/certhosting_order -lifecycle-key-file var/pg/order-service-key -lifecycle-addr 127.0.0.1:50052,127.0.0.1:50054"; \
	$(BIN)/certhosting-devdns & \
	$(BIN)/certhosting-lifecycle $$lc -listen 127.0.0.1:50052 & \
	$(BIN)/certhosting-lifecycle $$lc -listen 127.0.0.1:50054 -crl-listen 127.0.0.1:50081 & \
	$(BIN)/certhosting-order $$od -listen 127.0.0.1:50051 & \
	$(BIN)/certhosting-order $$od -listen 127.0.0.1:50053 & \
	wait -n

# make bench: (1) paid purchases/s end to end against no-op gRPC calls/s, measured in one run on
# this machine (cmd/certhosting-bench); (2) the renewal sweep with 10,000 due certificates in stores
# of 10,000 and 1,000,000 (cmd/certhosting-sweepbench). Flags through BENCHFLAGS and SWEEPFLAGS,
# e.g. make bench BENCHFLAGS="-runs 3" SWEEPFLAGS="-stored 10000,100000"; (3) the mass re-issue
# drill: 100,000 hosted certificates replaced through OperationsService while CreateOrder calls go on
# (cmd/certhosting-reissuebench, REISSUEFLAGS, e.g. -n 10000). bench-purchase, bench-sweep and
# bench-reissue run one of them; (4) bench-renew: completed renewals/s, the sweep with every due
# bundle's validation record published, so one tick issues and stores every renewal; (5) bench-flat:
# the everyday costs (a sweep with nothing due, List* first and 100th page, GetBundle, WatchEvents
# delivery, the service's RSS) with 10,000 and 1,000,000 certificates stored, and their ratios
# (cmd/certhosting-flatbench, FLATFLAGS, e.g. -stored 10000,50000); (6) bench-streams: 10,000 open
# WatchEvents streams on one lifecycle process while 10,000 renewals run: memory per stream and
# commit → delivery latency beside one stream's (cmd/certhosting-streambench, STREAMFLAGS, e.g.
# -mode account -due 100).
bench: bench-purchase bench-purchase-pg bench-sweep bench-sweep-pg bench-renew bench-renew-pg bench-reissue bench-sim bench-flat bench-streams

# The proof of issue 13 (internal/sim) at 10,000 bundles over 3 simulated years, with a random
# seed (printed; SIMFLAGS="-seed N" repeats a run). make test runs it at 1,000 (TestSimulation).
bench-sim:
	$(GO) run ./cmd/certhosting-simbench $(SIMFLAGS)

bench-purchase:
	$(GO) run ./cmd/certhosting-bench $(BENCHFLAGS)

# The same purchases with both services on the local PostgreSQL (PGURL), each run on databases of
# its own: the no-op baseline is measured again in this run.
bench-purchase-pg:
	$(GO) run ./cmd/certhosting-bench -postgres $(PGURL)/postgres $(BENCHFLAGS)

bench-sweep:
	$(GO) run ./cmd/certhosting-sweepbench $(SWEEPFLAGS)

# The sweep on PostgreSQL: 10,000 due in a store of 10,000 swept by 1, 2 and 3 lifecycle
# processes together, and by 1 in a store of 1,000,000 (PGSWEEPFLAGS, e.g. -pg-runs 10000x1).
bench-sweep-pg:
	$(GO) run ./cmd/certhosting-sweepbench -postgres $(PGURL)/postgres $(PGSWEEPFLAGS)

bench-renew:
	$(GO) run ./cmd/certhosting-sweepbench -records $(RENEWFLAGS)

# Completed renewals on PostgreSQL: 10,000 due, swept by 1 and by 3 lifecycle processes.
bench-renew-pg:
	$(GO) run ./cmd/certhosting-sweepbench -records -postgres $(PGURL)/postgres -pg-runs 10000x1,10000x3 $(PGRENEWFLAGS)

bench-reissue:
	$(GO) run ./cmd/certhosting-reissuebench $(REISSUEFLAGS)

# Issue 14's target 3: each everyday cost with 1,000,000 stored within 1.2x of the same with
# 10,000, the lifecycle service under 150 MB; both stores' services run at once and every
# operation alternates between them (FLATFLAGS, e.g. -stored 10000,50000 -n 100).
bench-flat:
	$(GO) run ./cmd/certhosting-flatbench $(FLATFLAGS)

# Issue 14's target 4: many WatchEvents streams on one lifecycle process while renewals run.
bench-streams:
	$(GO) run ./cmd/certhosting-streambench $(STREAMFLAGS)

clean:
	rm -rf $(BIN) var tools/ts/node_modules examples/typescript/node_modules examples/typescript/dist
