# edgeacs build, run and test targets. Only Go, make and git are needed.
GO        ?= go
BIN       := bin/edgeacs
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# Every package runs under the race detector except the end-to-end tests,
# which build and drive the whole binary (-race would triple their time),
# and PLAIN_TESTS, whole systems in one process that skip themselves under
# -race for the same reason.
PLAIN_PKGS := ./test/...
PLAIN_TESTS := '^TestRollouts$$'

RACE_PKGS  = $(shell $(GO) list ./... | grep -v '/test/')
TEST_TIMEOUT ?= 12m
FUZZTIME  ?= 30s

.PHONY: all build run test bench fuzz lint clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/edgeacs

# The whole system in one process: a one-node core, an edge linked to it
# over QUIC, 200 simulated CPEs; data in ./data, the CLI's config in
# ./data/cli.yaml. Ctrl-C stops it; running it again reuses ./data.
run: build
	./$(BIN) dev --data ./data --sim 200 --model mixed

test:
	$(GO) test -race -timeout $(TEST_TIMEOUT) $(RACE_PKGS)
	$(GO) test -timeout $(TEST_TIMEOUT) $(PLAIN_PKGS)
	$(GO) test -timeout $(TEST_TIMEOUT) -run $(PLAIN_TESTS) ./cmd/edgeacs
	@[ -n "$$EDGEACS_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	command -v google-chrome >/dev/null 2>&1 || command -v google-chrome-stable >/dev/null 2>&1 || \
	echo "NOTICE: no Chromium found: the web console's browser tests (test/e2e TestConsoleInBrowser) were SKIPPED. Install it (apt-get install chromium) or set EDGEACS_CHROMIUM to run them."

bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

fuzz:
	$(GO) test -run '^$$' -fuzz 'FuzzDecode$$' -fuzztime $(FUZZTIME) ./cwmp
	$(GO) test -run '^$$' -fuzz FuzzDecodeHeader -fuzztime $(FUZZTIME) ./cwmp
	$(GO) test -run '^$$' -fuzz FuzzParseDigestAuthorization -fuzztime $(FUZZTIME) ./cwmp
	$(GO) test -run '^$$' -fuzz FuzzDecodeFrame -fuzztime $(FUZZTIME) ./sync
	$(GO) test -run '^$$' -fuzz FuzzParseAuthorization -fuzztime $(FUZZTIME) ./apiauth
	$(GO) test -run '^$$' -fuzz FuzzParseQuery -fuzztime $(FUZZTIME) ./nbi
	$(GO) test -run '^$$' -fuzz FuzzParseExpr -fuzztime $(FUZZTIME) ./provision/expr
	$(GO) test -run '^$$' -fuzz FuzzCompilePreset -fuzztime $(FUZZTIME) ./provision/preset
	$(GO) test -run '^$$' -fuzz FuzzParsePath -fuzztime $(FUZZTIME) ./provision

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@sc=$$(command -v staticcheck || echo "$$($(GO) env GOPATH)/bin/staticcheck"); \
	if [ -x "$$sc" ]; then "$$sc" ./...; else echo "staticcheck not installed (go install honnef.co/go/tools/cmd/staticcheck@latest); skipped"; fi

clean:
	rm -rf bin

# The bootstrap-storm benchmark (issue 15): the real binary as an edge and
# as simulators in child processes, STORM devices (comma-separated sizes);
# see cmd/edgeacs/storm_bench_test.go for the EDGEACS_BENCH_* knobs.
STORM ?= 10000
.PHONY: bench-storm
bench-storm:
	EDGEACS_BENCH_STORM=$(STORM) $(GO) test -run '^$$' -bench BootstrapStorm -benchtime 1x -timeout 60m ./cmd/edgeacs
