# kxboot: make (build), make test (every test, installing what it needs),
# make e2e-quick (the quick end-to-end cases, for between changes),
# make demo (a throwaway QEMU guest hops from one kernel into another).
export PATH := $(PATH):/usr/local/go/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X github.com/kxboot/kxboot/internal/cli.Version=$(VERSION)

.PHONY: build test unit e2e e2e-quick demo deps prepare vet fuzz clean package

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o kxboot ./cmd/kxboot

deps:
	./scripts/install-test-deps

# The e2e cache (kernels, disk images) filled before any guest runs: on a
# fresh machine, image builds beside running guests stalled the guests'
# disks (e2e/prepare). Seconds when the cache is warm.
prepare: deps
	go run ./e2e/prepare

vet:
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# go test through e2e/report: a line per package and per end-to-end case,
# the output of failed tests, and at the end a table of the cases with
# their kernel starts and seconds (docs/testing.md keeps the last full
# one). A skipped test fails the run. -parallel 64 lets every case wait for
# a guest slot at once, so that the slots go to the longest cases first
# (e2e/slots_test.go); two guests run at a time.
GOTEST := go run ./e2e/report -- -count=1 -parallel 64

# The end-to-end cases that boot no whole init system: the initramfs
# guests (amd64 and arm64) and the tiny guest's boot counting (a few
# minutes).
E2E_QUICK := ^(TestConsole|TestBadInputs|TestHop.*|TestWrapper.*|TestTries.*|TestKnownGood|TestSlots|TestWatchdog.*|TestArm64.*)$$

# Every test: unit tests, fuzz seeds, build checks and the QEMU end-to-end cases.
test: deps vet prepare
	$(GOTEST) -timeout 60m ./...

# Unit tests only: no QEMU, no root needed.
unit:
	go test -count=1 ./internal/... ./cmd/... ./e2e/internal/... ./e2e/report/ ./e2e/bench/

# The end-to-end cases alone, and the quick ones.
e2e: deps prepare
	$(GOTEST) -timeout 60m ./e2e/

e2e-quick: deps prepare
	$(GOTEST) -timeout 30m -run '$(E2E_QUICK)' ./e2e/

fuzz:
	go test -run XXX -fuzz FuzzParse -fuzztime 30s ./internal/cmdline
	go test -run XXX -fuzz FuzzParse -fuzztime 30s ./internal/config

demo: deps
	go run ./e2e/demo

clean:
	rm -f kxboot
	rm -rf dist

# Packages: .deb, .rpm and .apk for amd64 and arm64 in $(DIST), with the
# static binary, kxboot(8), the bash, zsh and fish completions, the README
# and the kernel hook (packaging/). nfpm is a build tool, run with go run at
# a pinned version, never linked into kxboot. Needs Go and the module proxy
# only; packaging/packaging_test.go reads the packages back.
NFPM := go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DIST ?= dist
# A tag vX.Y.Z gives X.Y.Z; without one, 0.0.N with N the number of commits,
# a version that dpkg, rpm and apk all accept.
PKG_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' --abbrev=0 2>/dev/null); if [ -n "$$v" ]; then echo $${v#v}; else echo 0.0.$$(git rev-list --count HEAD 2>/dev/null || echo 0); fi)
# PKG_ARCHES and PKG_FORMATS narrow it (the e2e tests build the amd64 .deb alone).
PKG_ARCHES ?= amd64 arm64
PKG_FORMATS ?= deb rpm apk
package:
	rm -rf $(DIST) && mkdir -p $(DIST)/completions $(DIST)/amd64 $(DIST)/arm64
	for a in $(PKG_ARCHES); do CGO_ENABLED=0 GOOS=linux GOARCH=$$a go build -trimpath -ldflags "$(LDFLAGS)" -o $(DIST)/$$a/kxboot ./cmd/kxboot || exit 1; done
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(DIST)/kxboot-host ./cmd/kxboot
	$(DIST)/kxboot-host help --man | gzip -9n > $(DIST)/kxboot.8.gz
	$(DIST)/kxboot-host completion bash > $(DIST)/completions/kxboot.bash
	$(DIST)/kxboot-host completion zsh > $(DIST)/completions/_kxboot
	$(DIST)/kxboot-host completion fish > $(DIST)/completions/kxboot.fish
	rm $(DIST)/kxboot-host
	for a in $(PKG_ARCHES); do \
		sed -e "s|\$${ARCH}|$$a|g" -e "s|\$${DIST}|$(DIST)|g" -e "s|\$${VERSION}|$(PKG_VERSION)|g" packaging/nfpm.yaml > $(DIST)/nfpm-$$a.yaml; \
		for p in $(PKG_FORMATS); do $(NFPM) package --config $(DIST)/nfpm-$$a.yaml --packager $$p --target $(DIST)/ || exit 1; done; \
	done
	ls -l $(DIST)/kxboot[-_]*

# The fast reboot benchmark (not a test): a firmware reboot, kxboot's and
# the kexec-tools recipe, timed in Debian guests; a Markdown table on
# stdout. BENCH_FLAGS="-runs 5 -out docs/benchmarks.md" writes the doc too.
.PHONY: bench
bench: deps
	go run ./e2e/bench $(BENCH_FLAGS)

# The load benchmark (not a test): kxboot load against kexec-tools in one
# Debian guest, and the chain step of the PID 1 wrapper; about 8 minutes.
# BENCH_FLAGS="-out docs/benchmarks.md" writes the doc too.
.PHONY: bench-load
bench-load: deps
	go run ./e2e/bench -load $(BENCH_FLAGS)
