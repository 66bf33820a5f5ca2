// Command prepare fills the end-to-end tests' cache before any guest
// runs: Debian's kernels A and B of each architecture, the generic kernels
// of the watchdog guests, and every disk image the cases boot.
//
//	go run ./e2e/prepare
//
// make test and make e2e run it first. Without it a fresh machine built
// the images inside the test run, beside running guests: building an
// image writes gigabytes, and while the host flushed them a guest's NVMe
// writes waited past the guest kernel's 30 s I/O timeout, minutes on end,
// and the case failed (seen twice, on two fresh machines). With a warm
// cache it only checks what is there (seconds). Two images are built at
// a time, as the machine has two cores.
package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// images are the disk images the cases boot, by architecture.
var images = []struct {
	arch    harness.Arch
	flavour string
}{
	// The arm64 image first: it takes the longest (its second stage
	// runs under qemu-user).
	{harness.ARM64, harness.Systemd},
	{harness.AMD64, harness.Systemd},
	{harness.AMD64, harness.Sysvinit},
	{harness.AMD64, harness.OpenRC},
}

func main() {
	start := time.Now()
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "prepare: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("prepare: the e2e cache (%s) is ready (%v)\n", harness.CacheDir(), time.Since(start).Round(time.Second))
}

func logf(format string, args ...any) { fmt.Printf("prepare: "+format+"\n", args...) }

func run() error {
	kernels := map[string][2]harness.Kernel{}
	for _, arch := range []harness.Arch{harness.AMD64, harness.ARM64} {
		a, b, err := harness.Kernels(arch, logf)
		if err != nil {
			return fmt.Errorf("%s kernels: %w", arch.GOARCH, err)
		}
		kernels[arch.GOARCH] = [2]harness.Kernel{a, b}
		for _, k := range []harness.Kernel{a, b} {
			if _, err := harness.GenericKernelOf(arch, k.Short(), logf); err != nil {
				return fmt.Errorf("the generic kernel of %s: %w", k.Release, err)
			}
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 2)
	)
	for _, im := range images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			k := kernels[im.arch.GOARCH]
			img, err := harness.Image(im.flavour, k[0], k[1], logf)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("the %s %s image: %w", im.arch.GOARCH, im.flavour, err))
				return
			}
			if img.BuildTime > 0 {
				logf("built the %s %s image in %v", im.arch.GOARCH, im.flavour, img.BuildTime.Round(time.Second))
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
