package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// These tests run kxboot as PID 1 of an initramfs: the kernel starts /init,
// a link to kxboot, which is what the wrapper mode does with /sbin/init on a
// disk. The init it hands over to (/sbin/init.kxboot-orig) is a script that
// reports; on kernel B the same wrapper runs again and must not hop twice.

// wrapperRoot is kernel A's initramfs with kxboot as /init and conf as
// /etc/default/kxboot.
func wrapperRoot(t *testing.T, conf string) *harness.Initramfs {
	t.Helper()
	return wrapperRootOf(t, harness.AMD64, conf, "")
}

// wrapperRootOf is wrapperRoot for arch's kernels; the original init runs
// more after its report, on either kernel.
func wrapperRootOf(t *testing.T, arch harness.Arch, conf, more string) *harness.Initramfs {
	t.Helper()
	_, b := kernelsOf(t, arch)
	kx, bb := kxbootOf(t, arch), busyboxOf(t, arch)
	orig := func(stage string) []byte {
		return harness.Script(stage, `
step status kxboot status
say pid "$$"
`+more)
	}
	stage2 := harness.NewInitramfs().Busybox(bb).HostFile("/bin/kxboot", 0o755, kx)
	stage2.Symlink("/init", "/bin/kxboot")
	stage2.File("/sbin/init.kxboot-orig", 0o755, orig("2"))
	s2, err := stage2.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	root := harness.NewInitramfs().Busybox(bb).HostFile("/bin/kxboot", 0o755, kx)
	root.Symlink("/init", "/bin/kxboot")
	root.File("/sbin/init.kxboot-orig", 0o755, orig("1"))
	root.HostFile("/boot/vmlinuz-"+b.Release, 0o644, b.Image)
	root.File("/boot/stage2.cpio", 0o644, s2)
	root.File("/etc/default/kxboot", 0o644, []byte(strings.ReplaceAll(conf, "{B}", b.Release)))
	return root
}

// kernelsStarted counts the kernels that booted on the console.
func kernelsStarted(gu *guest) int {
	n := 0
	for _, l := range gu.g.Lines() {
		if strings.Contains(l, "Linux version ") {
			n++
		}
	}
	return n
}

func TestWrapperHopsOnce(t *testing.T) {
	t.Parallel()
	a, b := kernels(t)
	gu := boot(t, wrapperRoot(t, "KERNEL=/boot/vmlinuz-{B}\nINITRD=/boot/stage2.cpio\nABORT_SECONDS=1\n"))
	if _, ok := gu.r.Stage("1").Get("stage"); ok {
		gu.fatalf("the original init ran on kernel A: kxboot did not hop")
	}
	if got := gu.value("2", "release"); got != b.Release {
		gu.errorf("userspace came up on %q; want kernel B %q", got, b.Release)
	}
	if got := gu.value("2", "pid"); got != "1" {
		gu.errorf("the original init runs as pid %s; want 1 (kxboot must exec it)", got)
	}
	if n := kernelsStarted(gu); n != 2 {
		gu.errorf("%d kernels started; want 2 (A, then B once)", n)
	}
	cmd := gu.value("2", "cmdline")
	if !strings.Contains(cmd, "kxboot.chained=1") || !strings.Contains(cmd, "kxtest.provider=1") {
		gu.errorf("kernel B's command line %q lacks the marker or the reused parameters", cmd)
	}
	st := gu.ok("2", "status")
	gu.field("kxboot status on B", st.Out, "via kxboot", "yes")
	gu.field("kxboot status on B", st.Out, "this boot", "boot")
	if !strings.Contains(st.Stdout(), "this boot already came through kexec") {
		gu.errorf("kxboot status on B does not give the loop guard's reason:\n%s", st.Stdout())
	}
	if !strings.Contains(gu.g.Console(), "kxboot: booting /boot/vmlinuz-"+b.Release+" in 1 s; press any key") {
		gu.errorf("the abort window did not show on the serial console")
	}
	// Each kxboot line reaches the console once: through the kernel log,
	// which prints it with its timestamp at this console log level.
	if n := strings.Count(gu.g.Console(), "kxboot: chain: jumping into /boot/vmlinuz-"+b.Release); n != 1 {
		gu.errorf("the jump's line appears %d times on the console; want once", n)
	}
	t.Logf("PID 1 wrapper: %s -> %s, one hop", a.Release, b.Release)
}

func TestWrapperKeyAborts(t *testing.T) {
	t.Parallel()
	a, _ := kernels(t)
	gu := start(t, wrapperRoot(t, "KERNEL=/boot/vmlinuz-{B}\nINITRD=/boot/stage2.cpio\nABORT_SECONDS=60\n"))
	if _, err := gu.g.WaitFor("press any key", time.Minute); err != nil {
		gu.fatalf("no abort window: %v", err)
	}
	// Ctrl+C: the key the DigitalOcean recipe's readers could not use.
	if err := gu.g.Send("\x03"); err != nil {
		t.Fatal(err)
	}
	gu.wait()
	if got := gu.value("1", "release"); got != a.Release {
		gu.errorf("after the key, userspace is on %q; want kernel A %q", got, a.Release)
	}
	if n := kernelsStarted(gu); n != 1 {
		gu.errorf("%d kernels started; want only A", n)
	}
	st := gu.ok("1", "status")
	if !strings.Contains(st.Stdout(), "this boot:  boot on: a key was pressed on ttyS0") {
		gu.errorf("kxboot status does not say why it booted on:\n%s", st.Stdout())
	}
}

func TestWrapperBootsOnWithReason(t *testing.T) {
	t.Parallel()
	a, _ := kernels(t)
	cases := []struct{ name, conf, want string }{
		{"missing kernel", "KERNEL=/boot/vmlinuz-gone\nABORT_SECONDS=0\n", "kernel /boot/vmlinuz-gone does not exist"},
		{"malformed config", "KERNEL=/boot/vmlinuz-{B}\nthis is not a setting\n", "the config cannot be used: /etc/default/kxboot:2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gu := boot(t, wrapperRoot(t, c.conf))
			if got := gu.value("1", "release"); got != a.Release {
				gu.errorf("userspace is on %q; want kernel A %q", got, a.Release)
			}
			if got := gu.value("1", "pid"); got != "1" {
				gu.errorf("the original init runs as pid %s; want 1", got)
			}
			st := gu.ok("1", "status")
			if !strings.Contains(st.Stdout(), c.want) {
				gu.errorf("kxboot status lacks %q:\n%s", c.want, st.Stdout())
			}
			if !strings.Contains(gu.g.Console(), "kxboot: chain: boot on: ") {
				gu.errorf("the reason never reached the console")
			}
		})
	}
}
