# certhosting: `make run` starts the service pair on its embedded defaults; `make test` is what CI
# runs. Every tool comes from a pinned Go module: buf, grpcurl and Pebble from tools/go.mod (built
# into bin/), protoc-gen-go and protoc-gen-go-grpc from the main go.mod's tool block.
SHELL := bash
GO    ?= go
BIN   := $(CURDIR)/bin
TOOLS := $(BIN)/buf $(BIN)/grpcurl $(BIN)/pebble $(BIN)/pebble-challtestsrv
CMDS  := $(BIN)/certhosting-order $(BIN)/certhosting-lifecycle

.PHONY: all build tools generate lint check-generated vet test test-short run bench clean

all: build

# The tools build once (buf takes a few minutes the first time) and again only when tools/go.mod
# or tools/go.sum change.
$(TOOLS) &: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BIN)/ github.com/bufbuild/buf/cmd/buf github.com/fullstorydev/grpcurl/cmd/grpcurl \
		github.com/letsencrypt/pebble/v2/cmd/pebble github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv
	@touch $(TOOLS)

tools: $(TOOLS)

build:
	$(GO) build -o $(BIN)/ ./services/order/cmd/certhosting-order ./services/lifecycle/cmd/certhosting-lifecycle

generate: $(BIN)/buf
	$(BIN)/buf generate

lint: $(BIN)/buf
	$(BIN)/buf lint

# gen/ must be exactly what buf generates from proto/: generate into a scratch directory and compare.
check-generated: $(BIN)/buf
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(BIN)/buf generate -o $$tmp && \
	diff -r $$tmp/gen gen > $$tmp/diff || { cat $$tmp/diff; echo "gen/ is stale: run 'make generate' and commit"; exit 1; }
	@echo "gen/ matches proto/"

vet:
	$(GO) vet ./...

test: lint check-generated vet tools
	$(GO) test -race -count=1 -timeout 20m ./...

test-short: vet
	$(GO) test -race -short ./...

# make run: both services on SQLite under var/, local defaults. Ctrl-C stops both.
run: build
	@mkdir -p var
	@$(BIN)/certhosting-order admin bootstrap -dir var > /dev/null
	@echo "demo API key (also in var/demo-api-key): $$(cat var/demo-api-key)"
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' EXIT; \
	$(BIN)/certhosting-lifecycle & \
	$(BIN)/certhosting-order & \
	wait -n

# make bench: paid purchases/s end to end against no-op gRPC calls/s, measured in one run on this
# machine (docs/performance.md). The command builds its own service binaries (without -race).
# Flags through BENCHFLAGS, e.g. make bench BENCHFLAGS="-runs 3 -duration 20s".
bench:
	$(GO) run ./cmd/certhosting-bench $(BENCHFLAGS)

clean:
	rm -rf $(BIN) var
