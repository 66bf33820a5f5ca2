# kxboot: make (build), make test (every test, installing what it needs),
# make demo (a throwaway QEMU guest hops from one kernel into another).
export PATH := $(PATH):/usr/local/go/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X github.com/kxboot/kxboot/internal/cli.Version=$(VERSION)

.PHONY: build test unit e2e demo deps vet fuzz clean

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o kxboot ./cmd/kxboot

deps:
	./scripts/install-test-deps

vet:
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# Every test: unit tests, fuzz seeds, build checks and the QEMU end-to-end cases.
test: deps vet
	go test -count=1 -timeout 80m ./...

# Unit tests only: no QEMU, no root needed.
unit:
	go test -count=1 ./internal/... ./cmd/...

e2e: deps
	go test -count=1 -timeout 80m -v ./e2e/

fuzz:
	go test -run XXX -fuzz FuzzParse -fuzztime 30s ./internal/cmdline
	go test -run XXX -fuzz FuzzParse -fuzztime 30s ./internal/config

demo: deps
	go run ./e2e/demo

clean:
	rm -f kxboot

# The fast reboot benchmark (not a test): a firmware reboot, kxboot's and
# the kexec-tools recipe, timed in Debian guests; a Markdown table on
# stdout. BENCH_FLAGS="-runs 5 -out docs/benchmarks.md" writes the doc too.
.PHONY: bench
bench: deps
	go run ./e2e/bench $(BENCH_FLAGS)
