package e2e

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

var (
	imagesMu sync.Mutex
	images   = map[string]*imageOnce{}
)

type imageOnce struct {
	once sync.Once
	img  *harness.DiskImage
	err  error
}

// image returns the amd64 disk image of flavour with kernels A and B
// installed, building it once per run if the cache has none.
func image(t *testing.T, flavour string) *harness.DiskImage {
	t.Helper()
	return imageOf(t, harness.AMD64, flavour)
}

// imageOf returns the disk image of flavour for guests of arch, with
// arch's kernels A and B installed, building it once per run if the cache
// has none.
func imageOf(t *testing.T, arch harness.Arch, flavour string) *harness.DiskImage {
	t.Helper()
	a, b := kernelsOf(t, arch)
	imagesMu.Lock()
	o := images[arch.GOARCH+"/"+flavour]
	if o == nil {
		o = &imageOnce{}
		images[arch.GOARCH+"/"+flavour] = o
	}
	imagesMu.Unlock()
	o.once.Do(func() {
		o.img, o.err = harness.Image(flavour, a, b, cacheLog)
	})
	if o.err != nil {
		t.Fatalf("%s disk image %s: %v", arch, flavour, o.err)
	}
	if o.img.BuildTime > 0 {
		t.Logf("built the %s %s image in %v: %v", arch, flavour, o.img.BuildTime.Round(time.Second), o.img.Steps)
	}
	return o.img
}

// diskGuest is a run of a disk image: several boots in one qemu process.
type diskGuest struct {
	*guest
	img  *harness.DiskImage
	disk string
}

// startDisk copies img, writes files into the copy and boots it on the
// provider's kernel A without an initramfs (BootDirect; opts may give it
// img.InitrdA), holding a guest slot until the test ends. The whole
// console is logged if the test fails.
func startDisk(t *testing.T, img *harness.DiskImage, opts func(*harness.Options), files ...harness.GuestFile) *diskGuest {
	t.Helper()
	return startDiskIn(t, nil, img, opts, files...)
}

// startDiskIn is startDisk in the guest slot sl, which a case with two
// guests at once shares; nil claims one.
func startDiskIn(t *testing.T, sl *slot, img *harness.DiskImage, opts func(*harness.Options), files ...harness.GuestFile) *diskGuest {
	t.Helper()
	dir := diskDir(t)
	disk, err := harness.NewDisk(img, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := harness.Inject(disk, files...); err != nil {
		t.Fatal(err)
	}
	o := img.BootDirect(disk)
	o.Append += " kxtest.provider=1"
	o.ConsoleLog = filepath.Join(dir, "console.log")
	if opts != nil {
		opts(&o)
	}
	if sl == nil {
		sl = claim(t)
	}
	g, err := harness.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	sl.add(g)
	t.Cleanup(func() {
		g.Kill()
		if t.Failed() {
			t.Logf("whole console (%s):\n%s", o.ConsoleLog, g.Console())
			if s := g.Stderr(); s != "" {
				t.Logf("qemu stderr:\n%s", s)
			}
		}
	})
	return &diskGuest{guest: &guest{t: t, g: g}, img: img, disk: disk}
}

// at waits for the end of boot n, checks that it ran on release, and
// checks what every boot of a disk image reports the same way: the
// image's init system came up with the root read-only early and
// read-write by the time the runner ran, the runner counted the boot, and
// the command line starts as the provider gave it.
func (dg *diskGuest) at(n int, release string) *harness.Report {
	dg.t.Helper()
	s := dg.guest.at(n, release)
	dg.checkBoot(s, n, dg.img)
	return s
}

// checkBoot checks the runner's report s of boot n of a guest of the disk
// image img.
func (gu *guest) checkBoot(s *harness.Report, n int, img *harness.DiskImage) {
	gu.t.Helper()
	get := func(k string) string {
		v, ok := s.Get(k)
		if !ok {
			gu.fatalf("boot %d reported no %q", n, k)
		}
		return v
	}
	gu.t.Logf("boot %d: %s, pid 1 %s, / %s (early: %s), uptime %ss, loader %s",
		n, get("init"), get("pid1"), get("root"), get("early"), get("uptime"), get("loader"))
	if got := get("init"); got != img.Flavour {
		gu.errorf("boot %d: the image says init %q; want %q", n, got, img.Flavour)
	}
	if got := get("counted"); got != "yes" {
		gu.errorf("boot %d: the runner could not write its counter", n)
	}
	if got := get("root"); got != "rw" {
		gu.errorf("boot %d: / is %s when the runner runs; want rw", n, got)
	}
	if got := get("early"); got != "ro" {
		gu.errorf("boot %d: the early probe saw / %q; want ro", n, got)
	}
	if got := get("cmdline"); !strings.HasPrefix(got, img.Append()+" ") {
		gu.errorf("boot %d: /proc/cmdline %q does not start with the provider's %q", n, got, img.Append())
	}
}
