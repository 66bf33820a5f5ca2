package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// clean reports how many times this boot's kernel log says ext4 replayed
// its journal (an unclean unmount before this boot): 0 after a clean one.
const clean = `step recovery sh -c 'dmesg | grep -c "recovery complete" || true'
`

// TestFastReboot installs the fast reboot in a Debian guest of each init
// system and follows five boots; a firmware reset starts qemu again and is
// counted (Guest.Resets), a kexec is not:
//
//	1 (A)  kxboot install reboot; reboot
//	2 (B)  through kexec into the newest kernel, file systems clean;
//	       kxboot reboot --firmware
//	3 (A)  through the firmware, once; KERNEL=B in the config; reboot
//	4 (B)  through kexec again; the kernel file is removed; reboot
//	5 (A)  through the firmware, with the reason in the history; poweroff
//	       powers off (no kexec)
//
// The kexec'd kernel of an OpenRC guest used to show nothing for minutes
// after "kexec_core: Starting new kernel": QEMU's TCG spent 0.2 s on each
// store of the kernel's relocate_kernel copy into pages that still had
// stale translations (see harness.DiskAppend, norandmaps). That was the
// emulator, not kxboot; with norandmaps the jump takes about 3 s.
func TestFastReboot(t *testing.T) {
	t.Parallel()
	for _, flavour := range []string{harness.Systemd, harness.Sysvinit, harness.OpenRC} {
		t.Run(flavour, func(t *testing.T) {
			t.Parallel()
			fastRebootRun(t, flavour)
		})
	}
}

func fastRebootRun(t *testing.T, flavour string) {
	a, b := kernels(t)
	img := image(t, flavour)
	kB := "/boot/vmlinuz-" + b.Release
	dg := startDisk(t, img, func(o *harness.Options) { o.MaxKernels = 6; o.Timeout = 25 * time.Minute },
		harness.GuestFile{Path: "/usr/local/sbin/kxboot", Mode: 0o755, HostPath: kxboot(t)},
		harness.BootScript(1, clean+`step install kxboot install reboot
step dry kxboot reboot --dry-run
kx_reboot`),
		// The reboot --firmware starts after the runner has reported the
		// end of this boot (the shutdown would cut the report short), in
		// a unit of its own on systemd, which ends the runner's leftovers.
		harness.BootScript(2, clean+`step status kxboot status
step fwdry kxboot reboot --firmware --dry-run
fw='sleep 3; kxboot reboot --firmware >/dev/console 2>&1'
if [ -d /run/systemd/system ]; then
	systemd-run --quiet --no-block sh -c "$fw"
else
	(sh -c "$fw" &)
fi
kx_idle`),
		harness.BootScript(3, clean+`printf 'KERNEL=`+kB+`\nINITRD=/boot/initrd.img-`+b.Release+`\n' >/etc/default/kxboot
step dry kxboot reboot --dry-run
kx_reboot`),
		harness.BootScript(4, clean+`mv `+kB+` /root/kernel-B
kx_reboot`),
		harness.BootScript(5, clean+`step history kxboot history
mv /root/kernel-B `+kB+`
step uninstall kxboot uninstall
kx_poweroff`),
	)
	resets := func(n, want int) {
		t.Helper()
		if got := dg.g.Resets(); got != want {
			dg.errorf("before boot %d: %d firmware resets; want %d", n, got, want)
		}
	}
	isClean := func(n int) {
		t.Helper()
		if got := dg.step(fmt.Sprint(n), "recovery").Stdout(); got != "0" {
			dg.errorf("boot %d: ext4 replayed its journal (%s times): the file systems were not unmounted cleanly", n, got)
		}
	}
	loader := func(s *harness.Report, n int, want string) {
		t.Helper()
		if got, _ := s.Get("loader"); got != want {
			dg.errorf("boot %d: type_of_loader %q; want %q (d0: a kexec loader, b0: qemu -kernel, the firmware path)", n, got, want)
		}
	}

	dg.at(1, a.Release)
	dg.ok("1", "install")
	if got := dg.ok("1", "dry").Stdout(); !strings.Contains(got, "the next reboot goes through kexec into "+kB) {
		dg.errorf("boot 1: reboot --dry-run said %q", got)
	}
	s := dg.at(2, b.Release)
	resets(2, 0)
	loader(s, 2, "d0")
	isClean(2)
	if got := dg.ok("2", "status").Stdout(); !strings.Contains(got, "via kxboot: yes") {
		dg.errorf("boot 2: status:\n%s", got)
	}
	if got := dg.ok("2", "fwdry").Stdout(); !strings.Contains(got, "would reboot once through the firmware; after it, the next reboot goes through kexec into "+kB) {
		dg.errorf("boot 2: reboot --firmware --dry-run said %q", got)
	}
	s = dg.at(3, a.Release)
	resets(3, 1)
	loader(s, 3, "b0")
	isClean(3)
	if got := dg.ok("3", "dry").Stdout(); !strings.Contains(got, "the next reboot goes through kexec into "+kB) {
		dg.errorf("boot 3: reboot --dry-run said %q", got)
	}
	s = dg.at(4, b.Release)
	resets(4, 1)
	loader(s, 4, "d0")
	isClean(4)
	s = dg.at(5, a.Release)
	resets(5, 2)
	isClean(5)
	if got := dg.ok("5", "history").Stdout(); !strings.Contains(got, "one reboot through the firmware was asked for (kxboot reboot --firmware)") || !strings.Contains(got, "kernel "+kB+" does not exist") {
		dg.errorf("boot 5: the history lacks the firmware reboot and its reason:\n%s", got)
	}
	dg.ok("5", "uninstall")
	if err := dg.g.Wait(); err != nil {
		dg.fatalf("qemu did not end after the poweroff: %v", err)
	}
	resets(6, 2)
	if ks := dg.g.Kernels(); strings.Join(ks, " ") != strings.Join([]string{a.Release, b.Release, a.Release, b.Release, a.Release}, " ") {
		dg.errorf("kernels started: %v", ks)
	}
}
