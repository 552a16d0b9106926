# mailnfs build and test entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
GO ?= go
BIN := bin
FUZZTIME ?= 10s
# Where `make run` keeps the demo export and the server's state.
VAR := $(CURDIR)/var
# Flags for `make run`, e.g. make run RUNFLAGS='-log-level debug'.
RUNFLAGS ?=
TESTFLAGS ?=

.PHONY: all build run test interop check fmt vet lint deps bench bench-go crashtest soak fuzz fuzz-long clean

all: build

# `make install` [PREFIX=/usr/local DESTDIR= SERVICE=auto]: dist/install.mk.
include dist/install.mk
install: build

## build: compile every command into bin/
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

## run: build, then serve the demo export on loopback (state under ./var/)
run: build
	@mkdir -p $(VAR)
	$(BIN)/mailnfsd -demo $(VAR) $(RUNFLAGS)

## deps: install the system tools tests talk to (libnfs-utils, rpcbind, ...)
deps:
	@scripts/deps.sh

## fmt: fail if any Go file needs gofmt
fmt:
	@scripts/gofmt-check.sh

## vet: go vet every package
vet:
	$(GO) vet ./...

## lint: staticcheck every package (pinned version, built into bin/)
lint:
	@scripts/staticcheck.sh

## check: fmt + vet + lint
check: fmt vet lint

## test: deps, fmt, vet, lint, then every test with the race detector
test: deps check
	$(GO) test -race -count=1 -timeout 12m $(TESTFLAGS) ./...

## interop: only the end-to-end tests against real peers (root)
interop: deps
	$(GO) test -race -count=1 -timeout 12m -v $(TESTFLAGS) ./interop

## bench: the standard comparison (root): mailnfsd vs stock go-nfs vs NFS-Ganesha,
## interleaved, 3 rounds; table in bench/out/latest.md (see bench/README.md)
BENCHFLAGS ?=
bench: build
	bench/run.sh $(BENCHFLAGS)

## bench-go: the Go micro-benchmarks (no tests)
bench-go:
	$(GO) test -run='^$$' -bench=. ./...

## crashtest: SIGKILL mailnfsd CRASH_KILLS times (default 200) under 4 delivering processes
crashtest:
	@scripts/crashtest.sh

## soak: mixed workload for SOAK_DURATION (default 30m); no errors, goroutines/fds/RSS flat
soak:
	@scripts/soak.sh

## fuzz: run every fuzz target for FUZZTIME (default 10s) each
fuzz:
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

## fuzz-long: every fuzz target for FUZZTIME each (default 30m here)
fuzz-long:
	@FUZZTIME=$(if $(filter command line,$(origin FUZZTIME)),$(FUZZTIME),30m) scripts/fuzz.sh

clean:
	rm -rf $(BIN)
