package e2e

import (
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// TestFastRebootLayouts installs the fast reboot on OpenRC machines laid
// out as Alpine (busybox init), Gentoo (sysvinit with Gentoo's inittab)
// and openrc-init lay them out (harness.OpenRCLayouts: the OpenRC image
// with a shutdown runlevel of killprocs, savecache and mount-ro, and no
// Debian off runlevel), and follows three boots:
//
//	1 (A)  the layout's PID 1; kxboot install reboot says how this machine
//	       tells a reboot from a poweroff; reboot: a plain reboot, or on
//	       busybox (upstream: no ::reboot: action) kxboot reboot, which
//	       records its intent
//	2 (B)  through kexec (no reset): the jump came in the shutdown
//	       runlevel after mount-ro had left / read-only, the root is clean;
//	       then kxboot reboot --firmware, or on busybox a plain reboot,
//	       which the shutdown cannot tell from a poweroff, after adding
//	       Alpine's ::reboot: line, which upstream busybox rejects
//	3 (A)  through the firmware (one reset); uninstall restores every
//	       file the install touched byte for byte; install again and
//	       power off: the shutdown says "not a reboot", loads nothing,
//	       jumps nowhere, and qemu ends with no further reset, the disk
//	       clean
//
// Gentoo's case does boot 3's work in boot 2 and has no firmware reboot:
// its PID 1 and reboot command are sysvinit's, whose --firmware reboot
// TestFastReboot/sysvinit shows, and the decision is kxboot's.
//
// Every shutdown's console is checked for the order of the shutdown
// runlevel and the RC_REBOOT it saw (YES on a reboot under openrc-init and
// Gentoo's inittab, empty on a poweroff, empty on both under busybox).
// Patched busybox (Alpine's ::reboot:) is covered by unit tests
// (internal/install, internal/initsys): no Debian package has it.
func TestFastRebootLayouts(t *testing.T) {
	t.Parallel()
	layouts, err := harness.OpenRCLayouts(harness.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layouts {
		t.Run(l.Name, func(t *testing.T) {
			t.Parallel()
			layoutRebootRun(t, l)
		})
	}
}

// initsysRebootLine is the line kxboot adds for a busybox init that knows
// ::reboot: (initsys.RebootLine).
const initsysRebootLine = "::reboot:/sbin/openrc reboot"

// layoutLine matches a shutdown service's marker line.
var layoutLine = regexp.MustCompile(regexp.QuoteMeta(harness.LayoutMarker) + `(\S+) runlevel=(\S*) RC_REBOOT=(\S*) root=(\S*)`)

// inBackground runs a kxboot reboot command after the runner has reported
// the end of the boot (the shutdown would cut the report short).
func inBackground(cmd string) string {
	return "(sh -c 'sleep 3; " + cmd + " >/dev/console 2>&1' &)\nkx_idle"
}

func layoutRebootRun(t *testing.T, l harness.Layout) {
	a, b := kernels(t)
	img := image(t, harness.OpenRC)
	kB := "/boot/vmlinuz-" + b.Release
	upstream := l.Name == harness.LayoutBusybox // no ::reboot: action
	probe := "step pid1 readlink /proc/1/exe\n"
	first, second := "kx_reboot", inBackground("kxboot reboot --firmware")
	if upstream {
		// Boot 2's plain reboot also meets Alpine's ::reboot: line, which
		// an upstream busybox rejects as a bad entry (and goes on with
		// ::shutdown:), as on a machine moved from Alpine's busybox.
		first, second = inBackground("kxboot reboot"), `sed -i 's|^::shutdown:|`+initsysRebootLine+`\n&|' /etc/inittab
kill -HUP 1
sleep 1
kx_reboot`
	}
	files := append([]harness.GuestFile(nil), l.Files...)
	// Gentoo's PID 1 is sysvinit's, whose reboot command kxboot reboot
	// --firmware runs as on Debian's sysvinit (TestFastReboot/sysvinit):
	// its case ends at boot 2, which uninstalls and powers off.
	firmware := l.Name != harness.LayoutGentoo
	last := `step history kxboot history
step uninstall kxboot uninstall
kx_snap >/root/after
step diff diff /root/before /root/after
step reinstall kxboot install reboot
kx_poweroff`
	files = append(files, harness.GuestFile{Path: "/usr/local/sbin/kxboot", Mode: 0o755, HostPath: kxboot(t)},
		harness.BootScript(1, chainLib+"\n"+probe+`kx_snap >/root/before
step install kxboot install reboot
step dry kxboot reboot --dry-run
`+first))
	if firmware {
		files = append(files,
			harness.BootScript(2, clean+probe+"step status kxboot status\n"+second),
			harness.BootScript(3, chainLib+"\n"+clean+probe+last))
	} else {
		files = append(files, harness.BootScript(2, chainLib+"\n"+clean+probe+"step status kxboot status\n"+last))
	}
	var mu sync.Mutex
	var lines []string
	dg := startDisk(t, img, func(o *harness.Options) {
		o.MaxKernels = 4
		o.Timeout = 12 * time.Minute
		o.OnLine = func(line string) {
			mu.Lock()
			lines = append(lines, line)
			mu.Unlock()
		}
	}, files...)
	pid1 := func(n int) {
		t.Helper()
		if got := dg.ok(fmt.Sprint(n), "pid1").Stdout(); got != l.PID1Exe {
			dg.errorf("boot %d: PID 1 is %q; want %q", n, got, l.PID1Exe)
		}
	}
	resets, isClean := dg.resetsWere, dg.wasClean

	dg.at(1, a.Release)
	pid1(1)
	says := "init runs \"openrc reboot\" (RC_REBOOT=YES) for a reboot"
	switch {
	case upstream:
		says = "only kxboot reboot (which records its intent in /run/kxboot/reboot-intent) goes through kexec; a plain reboot goes through the firmware"
	case l.Name == harness.LayoutOpenRCInit:
		says = "openrc-init runs \"openrc reboot\" (RC_REBOOT=YES) for a reboot"
	}
	if got := dg.ok("1", "install").Stdout(); !strings.Contains(got, "How this machine tells a reboot from a poweroff: ") || !strings.Contains(got, says) {
		dg.errorf("boot 1: install reboot said:\n%s\nwant %q in it", got, says)
	}
	if got := dg.ok("1", "dry").Stdout(); !strings.Contains(got, "the next reboot goes through kexec, booting "+kB) {
		dg.errorf("boot 1: reboot --dry-run said %q", got)
	}

	s := dg.at(2, b.Release)
	resets(2, 0)
	if got, _ := s.Get("loader"); got != "d0" {
		dg.errorf("boot 2: type_of_loader %q; want d0, a kexec loader", got)
	}
	pid1(2)
	isClean(2)
	if got := dg.ok("2", "status").Stdout(); !strings.Contains(got, "came by:    fast-reboot") {
		dg.errorf("boot 2: status does not say the fast reboot brought it:\n%s", got)
	}

	n, wantH, kernels := "2", "fast reboot: booting "+kB, []string{a.Release, b.Release}
	if firmware {
		s = dg.at(3, a.Release)
		resets(3, 1)
		pid1(3)
		isClean(3)
		n, kernels = "3", append(kernels, a.Release)
		if !upstream {
			wantH = "firmware-reboot" // --firmware's line at the shutdown
		} // busybox: boot 1's load; boot 2's plain reboot loaded nothing
	}
	if h := dg.ok(n, "history").Stdout(); !strings.Contains(h, wantH) {
		dg.errorf("boot %s: the history lacks %q:\n%s", n, wantH, h)
	}
	dg.ok(n, "uninstall")
	if st := dg.step(n, "diff"); st.RC != 0 {
		dg.errorf("boot %s: the system files differ from before the install:\n%s", n, st.Stdout())
	}
	dg.ok(n, "reinstall")
	if err := dg.g.Wait(); err != nil {
		dg.fatalf("qemu did not end after the poweroff: %v", err)
	}
	resets(len(kernels)+1, len(kernels)-2)
	if ks := dg.g.Kernels(); strings.Join(ks, " ") != strings.Join(kernels, " ") {
		dg.errorf("kernels started: %v; want %v", ks, kernels)
	}

	mu.Lock()
	all := append([]string(nil), lines...)
	mu.Unlock()
	shutdowns := cutShutdowns(all)
	if len(shutdowns) != len(kernels) {
		dg.fatalf("the console shows %d shutdowns; want %d (the kexec reboot, the firmware reboot if any, the poweroff)", len(shutdowns), len(kernels))
	}
	rebootRC := ""
	if l.RebootSetsRCReboot {
		rebootRC = "YES"
	}
	// 1: kxboot kept at the shutdown the kernel the install preloaded,
	// and jumped after mount-ro.
	dg.checkShutdown("the kexec reboot", shutdowns[0], rebootRC, []string{"kxboot: reboot: kept " + kB}, []string{"kxboot: reboot: jumping into the loaded kernel"}, nil)
	// 2: through the firmware: asked for, or (busybox) not a reboot.
	switch {
	case !firmware:
	case upstream:
		if !slices.ContainsFunc(all, func(l string) bool { return strings.Contains(l, "Bad inittab entry at line") }) {
			dg.errorf("busybox init did not reject the ::reboot: line as a bad entry when it read its table again")
		}
		dg.checkShutdown("the plain reboot", shutdowns[1], "", []string{"not a reboot (poweroff or halt): nothing loaded"}, []string{"not a reboot (poweroff or halt): no jump"}, []string{"jumping into"})
	default:
		dg.checkShutdown("the firmware reboot", shutdowns[1], rebootRC, []string{"one reboot through the firmware was asked for"}, []string{"through the firmware, as asked"}, []string{"jumping into"})
	}
	// Last: the poweroff with the fast reboot installed.
	dg.checkShutdown("the poweroff", shutdowns[len(shutdowns)-1], "", []string{"not a reboot (poweroff or halt): nothing loaded"}, []string{"not a reboot (poweroff or halt): no jump"}, []string{"jumping into", "kxboot: reboot: loaded"})
	dg.diskClean()
}

// cutShutdowns splits a console into the shutdowns it shows: from each
// runner's end to the next kernel banner (or the end of the console).
func cutShutdowns(all []string) [][]string {
	var out [][]string
	for i := 0; i < len(all); i++ {
		if !strings.Contains(all[i], harness.Tag+"end: ") {
			continue
		}
		j := i + 1
		for j < len(all) && !strings.Contains(all[j], "Linux version ") {
			j++
		}
		out = append(out, all[i:j])
		i = j - 1
	}
	return out
}

// checkShutdown checks one shutdown's console: the shutdown runlevel ran
// killprocs and savecache, then mount-ro to its end, each seeing rcReboot
// and / still writable. before are lines (substrings) that must come, in
// order, before the shutdown runlevel (the load service's stop, as the
// default runlevel is left); after must come, in order, once mount-ro is
// done (the jump service); never must not come at all.
func (dg *diskGuest) checkShutdown(what string, lines []string, rcReboot string, before, after, never []string) {
	dg.t.Helper()
	var order []string
	nb, na := 0, 0
	for _, line := range lines {
		for _, n := range never {
			if strings.Contains(line, n) {
				dg.errorf("%s: the console says %q", what, line)
			}
		}
		switch {
		case len(order) == 0 && nb < len(before) && strings.Contains(line, before[nb]):
			nb++
		case len(order) == 4 && na < len(after) && strings.Contains(line, after[na]):
			na++
		}
		if !strings.Contains(line, harness.LayoutMarker) {
			continue
		}
		if strings.Contains(line, harness.LayoutMarker+"mount-ro done: ") {
			order = append(order, "done")
			if !strings.HasSuffix(line, "done: / ro") {
				dg.errorf("%s: mount-ro left / writable: %q", what, line)
			}
			continue
		}
		m := layoutLine.FindStringSubmatch(line)
		if m == nil {
			dg.errorf("%s: a marker line that does not parse: %q", what, line)
			continue
		}
		order = append(order, m[1])
		if m[2] != "shutdown" || m[3] != rcReboot || m[4] != "rw" {
			dg.errorf("%s: %q; want the shutdown runlevel, RC_REBOOT=%q, / writable until mount-ro", what, line, rcReboot)
		}
	}
	if strings.Join(order, " ") != "killprocs savecache mount-ro done" {
		dg.errorf("%s: the shutdown runlevel ran %v; want killprocs savecache mount-ro done", what, order)
	}
	if nb < len(before) {
		dg.errorf("%s: before the shutdown runlevel the console lacks %q (in order); the shutdown:\n%s", what, before[nb], indent(strings.Join(lines, "\n")))
	}
	if na < len(after) {
		dg.errorf("%s: after mount-ro the console lacks %q (in order); the shutdown:\n%s", what, after[na], indent(strings.Join(lines, "\n")))
	}
}

// diskClean checks the disk's ext4 superblock after the guest ended: a
// poweroff has no next boot to show an unclean root.
func (dg *diskGuest) diskClean() {
	dg.t.Helper()
	dumpe2fs := "/sbin/dumpe2fs"
	if p, err := exec.LookPath("dumpe2fs"); err == nil {
		dumpe2fs = p
	}
	out, err := exec.Command(dumpe2fs, "-h", dg.disk).CombinedOutput()
	if err != nil {
		dg.fatalf("dumpe2fs -h %s: %v\n%s", dg.disk, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Filesystem features:") && strings.Contains(line, "needs_recovery") {
			dg.errorf("after the poweroff the root needs recovery: %s", line)
		}
		if f := strings.Fields(line); strings.HasPrefix(line, "Filesystem state:") && (len(f) < 3 || f[2] != "clean") {
			dg.errorf("after the poweroff: %s", line)
		}
	}
}
