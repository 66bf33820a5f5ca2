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
// system and follows two to four boots; a firmware reset starts qemu
// again and is counted (Guest.Resets), a kexec is not. Every reboot here
// is a clean one through the init system, since that is where the fast
// reboot acts.
//
// sysvinit and OpenRC (fastRebootRun):
//
//	1 (A)  kxboot install reboot (which preloads B); reboot
//	2 (B)  through kexec into the newest kernel, which the shutdown kept
//	       loaded from the install, file systems clean;
//	       kxboot reboot --firmware (OpenRC, Debian's layout: the history
//	       has the fast reboot; uninstall; poweroff powers off)
//	3 (A)  through the firmware, once: reboot --dry-run already says the
//	       next reboot goes through kexec again (the flag is one boot's);
//	       the history has the firmware reboot; uninstall; poweroff
//	       powers off (no kexec)
//
// systemd: TestFleetAnsible (fleet_test.go), whose guests Ansible
// reboots through the fast reboot, also shows a one-shot kernel (kxboot
// reboot --once) and the safety net: a kernel that panics after a fast
// reboot is recorded as failed, and the next reboot goes to the last
// known-good kernel.
//
// A kernel the fast reboot's decision declines (a missing KERNEL=, a
// damaged record) is fastreboot.Decide's, the same code under every init
// and covered by its unit tests; what each init system must do when kxboot
// declines to jump, go on to a firmware reboot, sysvinit shows with
// --firmware.
//
// The kexec'd kernel of an OpenRC guest used to show nothing for minutes
// after "kexec_core: Starting new kernel": QEMU's TCG spent 0.2 s on each
// store of the kernel's relocate_kernel copy into pages that still had
// stale translations (see harness.DiskAppend, norandmaps). That was the
// emulator, not kxboot; with norandmaps the jump takes about 3 s.
func TestFastReboot(t *testing.T) {
	t.Parallel()
	for _, flavour := range []string{harness.Sysvinit, harness.OpenRC} {
		t.Run(flavour, func(t *testing.T) {
			t.Parallel()
			fastRebootRun(t, flavour, flavour != harness.OpenRC)
		})
	}
}

// resetsWere checks that the guest has seen want firmware resets before
// boot n (a kexec is none).
func (dg *diskGuest) resetsWere(n, want int) {
	dg.t.Helper()
	if got := dg.g.Resets(); got != want {
		dg.errorf("before boot %d: %d firmware resets; want %d", n, got, want)
	}
}

// wasClean checks, by boot n's "recovery" step (clean), that the shutdown
// before it left the file systems clean: ext4 replayed no journal.
func (dg *diskGuest) wasClean(n int) {
	dg.t.Helper()
	if got := dg.step(fmt.Sprint(n), "recovery").Stdout(); got != "0" {
		dg.errorf("boot %d: ext4 replayed its journal (%s times): the file systems were not unmounted cleanly", n, got)
	}
}

// fastRebootRun follows the boots of TestFastReboot; without firmware,
// boot 2 uninstalls and powers off. Debian's OpenRC
// boots slowest of the three (about a minute a boot and its shutdown
// under TCG) and its --firmware boot is the one TestFastRebootLayouts
// shows on OpenRC's other layouts: the decision and the flag are kxboot's,
// and the jump service that declines is the same script in both layouts.
func fastRebootRun(t *testing.T, flavour string, firmware bool) {
	a, b := kernels(t)
	img := image(t, flavour)
	kB := "/boot/vmlinuz-" + b.Release
	// The end of boot 3, or of boot 4 if there is one.
	last := `step history kxboot history
step uninstall kxboot uninstall
kx_poweroff`
	third := clean + "step dry kxboot reboot --dry-run\n" + last
	boots := 3
	files := []harness.GuestFile{
		{Path: "/usr/local/sbin/kxboot", Mode: 0o755, HostPath: kxboot(t)},
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
		harness.BootScript(3, third),
	}
	if !firmware {
		boots = 2
		files[2] = harness.BootScript(2, clean+"step status kxboot status\n"+last)
		files = files[:3]
	}
	dg := startDisk(t, img, func(o *harness.Options) { o.MaxKernels = boots + 1; o.Timeout = 15 * time.Minute }, files...)
	resets, isClean := dg.resetsWere, dg.wasClean
	loader := func(s *harness.Report, n int, want string) {
		t.Helper()
		if got, _ := s.Get("loader"); got != want {
			dg.errorf("boot %d: type_of_loader %q; want %q (d0: a kexec loader, b0: qemu -kernel, the firmware path)", n, got, want)
		}
	}

	dg.at(1, a.Release)
	// The install preloads B (REBOOT_PRELOAD=auto: 27 MB, less than 1/32
	// of the guest's RAM), and the shutdown keeps it.
	if got := dg.ok("1", "install").Stdout(); !strings.Contains(got, "kxboot: reboot: preloaded "+kB+" with kexec_file_load in ") {
		dg.errorf("boot 1: install reboot did not preload B:\n%s", got)
	}
	if got := dg.ok("1", "dry").Stdout(); !strings.Contains(got, "the next reboot goes through kexec, booting "+kB) {
		dg.errorf("boot 1: reboot --dry-run said %q", got)
	}
	s := dg.at(2, b.Release)
	resets(2, 0)
	loader(s, 2, "d0")
	if con := dg.g.Console(); !strings.Contains(con, "kxboot: reboot: kept "+kB+", preloaded at ") {
		dg.errorf("boot 2: the shutdown did not keep the preloaded kernel:\n%s", tail(con, 60))
	}
	isClean(2)
	if got := dg.ok("2", "status").Stdout(); !strings.Contains(got, "via kxboot: yes") {
		dg.errorf("boot 2: status:\n%s", got)
	}
	if !firmware {
		if h := dg.ok("2", "history").Stdout(); !strings.Contains(h, "hop try 1/1  "+kB+": fast reboot: booting "+kB) {
			dg.errorf("boot 2: the history lacks the fast reboot:\n%s", h)
		}
		dg.ok("2", "uninstall")
		if err := dg.g.Wait(); err != nil {
			dg.fatalf("qemu did not end after the poweroff: %v", err)
		}
		resets(3, 0)
		if ks := dg.g.Kernels(); strings.Join(ks, " ") != a.Release+" "+b.Release {
			dg.errorf("kernels started: %v; want A, B", ks)
		}
		return
	}
	if got := dg.ok("2", "fwdry").Stdout(); !strings.Contains(got, "would reboot once through the firmware; after it, the next reboot goes through kexec, booting "+kB) {
		dg.errorf("boot 2: reboot --firmware --dry-run said %q", got)
	}
	s = dg.at(3, a.Release)
	resets(3, 1)
	loader(s, 3, "b0")
	isClean(3)
	if got := dg.ok("3", "dry").Stdout(); !strings.Contains(got, "the next reboot goes through kexec, booting "+kB) {
		dg.errorf("boot 3: reboot --dry-run said %q", got)
	}
	wantHistory := []string{"one reboot through the firmware was asked for (kxboot reboot --firmware)"}
	n := fmt.Sprint(boots)
	h := dg.ok(n, "history").Stdout()
	for _, want := range wantHistory {
		if !strings.Contains(h, want) {
			dg.errorf("boot %s: the history lacks %q:\n%s", n, want, h)
		}
	}
	dg.ok(n, "uninstall")
	if err := dg.g.Wait(); err != nil {
		dg.fatalf("qemu did not end after the poweroff: %v", err)
	}
	resets(boots+1, boots-2)
	want := []string{a.Release, b.Release, a.Release}
	if ks := dg.g.Kernels(); strings.Join(ks, " ") != strings.Join(want, " ") {
		dg.errorf("kernels started: %v; want %v", ks, want)
	}
}
