package e2e

import (
	"fmt"
	"os"
	"path/filepath"
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

// image returns the disk image of flavour with kernels A and B installed,
// building it once per run if the cache has none.
func image(t *testing.T, flavour string) *harness.DiskImage {
	t.Helper()
	a, b := kernels(t)
	imagesMu.Lock()
	o := images[flavour]
	if o == nil {
		o = &imageOnce{}
		images[flavour] = o
	}
	imagesMu.Unlock()
	o.once.Do(func() {
		o.img, o.err = harness.Image(flavour, a, b, func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
		})
	})
	if o.err != nil {
		t.Fatalf("disk image %s: %v", flavour, o.err)
	}
	if o.img.BuildTime > 0 {
		t.Logf("built the %s image in %v: %v", flavour, o.img.BuildTime.Round(time.Second), o.img.Steps)
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
// provider's kernel A, holding a guest slot until the test ends. The whole
// console is logged if the test fails.
func startDisk(t *testing.T, img *harness.DiskImage, opts func(*harness.Options), files ...harness.GuestFile) *diskGuest {
	t.Helper()
	dir := t.TempDir()
	disk, err := harness.NewDisk(img, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := harness.Inject(disk, files...); err != nil {
		t.Fatal(err)
	}
	o := img.Boot(disk)
	o.Append += " kxtest.provider=1"
	o.ConsoleLog = filepath.Join(dir, "console.log")
	if opts != nil {
		opts(&o)
	}
	guests <- struct{}{}
	t.Cleanup(func() { <-guests })
	g, err := harness.Start(o)
	if err != nil {
		t.Fatal(err)
	}
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

// boot waits for the runner's report of boot n and checks what every boot
// reports the same way.
func (dg *diskGuest) boot(n int, release string) *harness.Report {
	dg.t.Helper()
	r, err := dg.g.WaitBoot(n, 5*time.Minute)
	if err != nil {
		dg.fatalf("%v", err)
	}
	get := func(k string) string {
		v, ok := r.Get(k)
		if !ok {
			dg.fatalf("boot %d reported no %q", n, k)
		}
		return v
	}
	dg.t.Logf("boot %d at %v: %s on %s, pid 1 %s, / %s (early: %s), uptime %ss, loader %s",
		n, dg.g.Elapsed().Round(100*time.Millisecond), get("init"), get("release"), get("pid1"),
		get("root"), get("early"), get("uptime"), get("loader"))
	if got := get("release"); got != release {
		dg.errorf("boot %d ran on %q; want %q", n, got, release)
	}
	if got := get("init"); got != dg.img.Flavour {
		dg.errorf("boot %d: the image says init %q; want %q", n, got, dg.img.Flavour)
	}
	if got := get("counted"); got != "yes" {
		dg.errorf("boot %d: the runner could not write its counter", n)
	}
	if got := get("root"); got != "rw" {
		dg.errorf("boot %d: / is %s when the runner runs; want rw", n, got)
	}
	if got := get("early"); got != "ro" {
		dg.errorf("boot %d: the early probe saw / %q; want ro", n, got)
	}
	if got, want := get("cmdline"), harness.DiskAppend+" kxtest.provider=1"; got != want {
		dg.errorf("boot %d: /proc/cmdline %q; want %q", n, got, want)
	}
	return r
}

// end waits for the end of boot n and checks its action.
func (dg *diskGuest) end(n int, action string) *harness.Report {
	dg.t.Helper()
	r, err := dg.g.WaitEnd(n, 5*time.Minute)
	if err != nil {
		dg.fatalf("%v", err)
	}
	if got, _ := r.Get("end"); got != action {
		dg.fatalf("boot %d ended with %q; want %q", n, got, action)
	}
	dg.t.Logf("boot %d ended (%s) at %v", n, action, dg.g.Elapsed().Round(100*time.Millisecond))
	return r
}

// TestDiskBoot proves the disk images without kxboot: each init system
// comes up on the provider's kernel A, the runner counts and reports the
// boot and runs its script; a clean reboot goes through the firmware and
// gives kernel A again with the counter kept; a poweroff ends qemu.
func TestDiskBoot(t *testing.T) {
	t.Parallel()
	start := time.Now()
	for _, flavour := range harness.Flavours {
		t.Run(flavour, func(t *testing.T) {
			t.Parallel()
			a, _ := kernels(t)
			img := image(t, flavour)
			dg := startDisk(t, img, func(o *harness.Options) { o.MaxKernels = 2 },
				harness.BootScript(1, `say hello "from boot $KX_BOOT on $KX_FLAVOUR"
step count cat /var/lib/kxtest/count
kx_reboot
say after "kx_reboot returned"`),
				harness.BootScript(2, `say hello "from boot $KX_BOOT"
step count cat /var/lib/kxtest/count
kx_poweroff`),
			)
			dg.boot(1, a.Release)
			r := dg.end(1, "reboot")
			if got, _ := r.Get("hello"); got != "from boot 1 on "+flavour {
				dg.errorf("boot 1 said %q", got)
			}
			if _, ok := r.Get("after"); ok {
				dg.errorf("boot 1 went on after kx_reboot")
			}
			if s := r.Step("count"); s.RC != 0 || s.Stdout() != "1" {
				dg.errorf("boot 1: the counter read %q (exit status %d); want 1", s.Stdout(), s.RC)
			}

			r = dg.boot(2, a.Release)
			r = dg.end(2, "poweroff")
			if s := r.Step("count"); s.RC != 0 || s.Stdout() != "2" {
				dg.errorf("boot 2: the counter read %q (exit status %d); want 2", s.Stdout(), s.RC)
			}
			if err := dg.g.Wait(); err != nil {
				dg.fatalf("qemu did not end cleanly after the poweroff: %v", err)
			}
			if k := dg.g.Kernels(); len(k) != 2 || k[0] != a.Release || k[1] != a.Release {
				dg.errorf("kernels started: %v; want kernel A twice (%s)", k, a.Release)
			}
			if n := dg.g.Resets(); n != 1 {
				dg.errorf("the machine went through its firmware %d times after the first boot; want once (the reboot)", n)
			}
			if all := harness.Parse(dg.g.Lines()).All("boot"); len(all) != 2 {
				dg.errorf("the runner reported boots %v; want 1 and 2", all)
			}
			t.Logf("%s: two boots and a poweroff in %v", flavour, dg.g.Elapsed().Round(100*time.Millisecond))
		})
	}
	t.Cleanup(func() { t.Logf("all flavours: %v", time.Since(start).Round(time.Second)) })
}
