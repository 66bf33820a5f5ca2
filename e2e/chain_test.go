package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// chainLib is sourced by every boot script: kx_snap lists the system files an install touches, with type,
// mode, link target and a hash of the contents, so that two snapshots show
// whether uninstall restored them byte for byte.
const chainLib = `# kx_reset: a firmware reset at once, after a sync. The chain boot does not
# care how the last boot ended, and a clean shutdown under TCG costs most of
# a minute per boot.
kx_reset() { say end reset; sync; sleep 1; echo b >/proc/sysrq-trigger; sleep 60; }

# kx_confirmed waits until the init system's kxboot-confirm service has
# confirmed this hop (kxboot mark-good at the end of the boot).
kx_confirmed() {
	i=0
	while [ $i -lt 60 ]; do
		kxboot status | grep -q "^tries:      0 unconfirmed" && return 0
		sleep 2
		i=$((i + 1))
	done
	kxboot status
	return 1
}

kx_snap() {
	for d in /sbin/ /etc/systemd/system /etc/init.d /etc/rcS.d /etc/rc0.d /etc/rc2.d /etc/rc6.d /etc/runlevels /etc/default /var/lib/kxboot /var/lib/dpkg/diversions /etc/insserv.conf.d; do
		[ -e "$d" ] || continue
		find "$d" -xdev -printf '%p %y %m %l\n'
		find "$d" -xdev -type f -exec sha256sum {} +
	done | sort
}`

// chainCase is one way of installing the chain boot, on one image.
type chainCase struct {
	name, flavour, mode string
	initPkg             string // the package that owns /sbin/init, for the wrapper's reinstall check
}

var chainCases = []chainCase{
	{"wrapper-systemd", harness.Systemd, "wrapper", "systemd-sysv"},
	{"wrapper-sysvinit", harness.Sysvinit, "wrapper", "sysvinit-core"},
	{"systemd", harness.Systemd, "systemd", ""},
	{"sysvinit", harness.Sysvinit, "sysvinit", ""},
	{"openrc", harness.OpenRC, "openrc", ""},
}

// TestChain installs the chain boot in each mode inside a Debian guest and
// follows it over six boots of the provider's kernel A:
//
//	1 (A)  snapshot the system files, kxboot install chain, reboot
//	2 (B)  kxboot hopped exactly once: B with the marker; the init system's
//	       kxboot-confirm service confirms it; (wrapper: reinstall
//	       the init package, the wrapper stays); point KERNEL at nothing, reboot
//	3 (A)  booted on: missing kernel, reason in status; break the config, reboot
//	4 (A)  booted on: malformed config, reason in status; restore it, reboot
//	   (A)  the abort window: the test sends a key
//	5 (A)  booted on: key, reason in status; kxboot uninstall; snapshot = boot 1's
//	6 (A)  a reboot after uninstall: A, nothing installed; poweroff
func TestChain(t *testing.T) {
	t.Parallel()
	for _, c := range chainCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			chainCaseRun(t, c)
		})
	}
}

func chainCaseRun(t *testing.T, c chainCase) {
	a, b := kernels(t)
	img := image(t, c.flavour)
	kB := "/boot/vmlinuz-" + b.Release
	iB := "/boot/initrd.img-" + b.Release
	reinstall := ""
	var extra []harness.GuestFile
	if c.initPkg != "" {
		// The package as debootstrap fetched it for the image: the guest
		// has no network, so it gets the .deb itself.
		debs, _ := filepath.Glob(filepath.Join(harness.CacheDir(), "images", "debs-"+c.flavour, c.initPkg+"_*.deb"))
		if len(debs) != 1 {
			t.Fatalf("no single %s .deb in the image build cache: %v", c.initPkg, debs)
		}
		extra = append(extra, harness.GuestFile{Path: "/var/cache/kxtest/" + c.initPkg + ".deb", HostPath: debs[0]})
		reinstall = `step reinstall dpkg -i /var/cache/kxtest/` + c.initPkg + `.deb
step initlink readlink /sbin/init
step orig ls -l /sbin/init.kxboot-orig
step divert dpkg-divert --list /sbin/init
`
	}
	files := append(extra,
		harness.GuestFile{Path: "/usr/local/sbin/kxboot", Mode: 0o755, HostPath: kxboot(t)},
		harness.GuestFile{Path: "/usr/local/lib/kxtest/chain.sh", Mode: 0o644, Data: []byte(chainLib)},
		harness.BootScript(1, `. /usr/local/lib/kxtest/chain.sh
kx_snap >/root/before
step install kxboot install chain --mode `+c.mode+` --kernel `+kB+` --initrd `+iB+`
cp /etc/default/kxboot /root/kxboot.installed
step dryrun kxboot chain --dry-run
kx_reset`),
		harness.BootScript(2, `. /usr/local/lib/kxtest/chain.sh
step confirmed kx_confirmed
step status kxboot status
`+reinstall+`sed -i 's|^KERNEL=.*|KERNEL="/boot/vmlinuz-gone"|' /etc/default/kxboot
kx_reset`),
		harness.BootScript(3, `. /usr/local/lib/kxtest/chain.sh
step status kxboot status
echo 'this is not a setting' >>/etc/default/kxboot
kx_reset`),
		harness.BootScript(4, `. /usr/local/lib/kxtest/chain.sh
step status kxboot status
cp /root/kxboot.installed /etc/default/kxboot
kx_reset`),
		harness.BootScript(5, `. /usr/local/lib/kxtest/chain.sh
step status kxboot status
step uninstall kxboot uninstall
step uninstall2 kxboot uninstall
kx_snap >/root/after
step diff diff /root/before /root/after
kx_reset`),
		harness.BootScript(6, `step status kxboot status
kx_poweroff`),
	)
	dg := startDisk(t, img, func(o *harness.Options) { o.MaxKernels = 9; o.Timeout = 20 * time.Minute }, files...)
	check := dg.at
	status := func(s *harness.Report, n int, want string) {
		t.Helper()
		st := dg.step(fmt.Sprint(n), "status")
		if !strings.Contains(st.Stdout(), want) {
			dg.errorf("boot %d: kxboot status lacks %q:\n%s", n, want, st.Stdout())
		}
	}

	s := check(1, a.Release)
	dg.ok("1", "install")
	if st := dg.ok("1", "dryrun"); !strings.HasPrefix(st.Stdout(), "kxboot chain: would hop: booting "+kB) || len(st.Out) != 1 {
		dg.errorf("kxboot chain --dry-run: %q; want one line that it would hop into %s", st.Stdout(), kB)
	}

	s = check(2, b.Release)
	cmd, _ := s.Get("cmdline")
	if !strings.Contains(cmd, "kxboot.chained=1") || !strings.Contains(cmd, "kxtest.provider=1") {
		dg.errorf("kernel B's command line %q lacks the marker or the provider's parameters", cmd)
	}
	dg.ok("2", "confirmed")
	status(s, 2, "via kxboot: yes")
	status(s, 2, "tries:      0 unconfirmed; "+kB+" confirmed healthy")
	status(s, 2, "installed:  chain "+c.mode)
	if c.initPkg != "" {
		dg.ok("2", "reinstall")
		if got := dg.ok("2", "initlink").Stdout(); got != "/usr/local/sbin/kxboot" {
			dg.errorf("after reinstalling %s, /sbin/init leads to %q; want the wrapper", c.initPkg, got)
		}
		dg.ok("2", "orig")
		if got := dg.ok("2", "divert").Stdout(); !strings.Contains(got, "/sbin/init.kxboot-orig") {
			dg.errorf("the diversion is gone after the reinstall: %q", got)
		}
	}

	s = check(3, a.Release)
	status(s, 3, "this boot:  boot on: kernel /boot/vmlinuz-gone does not exist")
	s = check(4, a.Release)
	status(s, 4, "this boot:  boot on: the config cannot be used: /etc/default/kxboot:")

	// Boot 4 ends with a reboot: the window of the next boot gets a key.
	sent := dg.g.SendWhen("press any key", "x")
	s = check(5, a.Release)
	select {
	case <-sent:
	default:
		dg.errorf("the abort window never showed on the serial console")
	}
	status(s, 5, "this boot:  boot on: a key was pressed on ttyS0")
	dg.ok("5", "uninstall")
	if st := dg.ok("5", "uninstall2"); !strings.Contains(st.Stdout(), "not installed; nothing to undo") {
		dg.errorf("a second uninstall said %q", st.Stdout())
	}
	if st := dg.step("5", "diff"); st.RC != 0 {
		dg.errorf("the system files differ from before the install:\n%s", st.Stdout())
	}

	s = check(6, a.Release)
	status(s, 6, "installed:  nothing")
	if err := dg.g.Wait(); err != nil {
		dg.fatalf("qemu did not end after the poweroff: %v", err)
	}
	// Exactly one hop in seven kernel starts: A, then B once, then A.
	ks := dg.g.Kernels()
	want := []string{a.Release, a.Release, b.Release, a.Release, a.Release, a.Release, a.Release}
	if strings.Join(ks, " ") != strings.Join(want, " ") {
		dg.errorf("kernels started: %v; want %v", ks, want)
	}
}

// TestChainDeadline: the systemd service mode on a kernel that never
// passes its health check. The deadline watcher, started by the chain unit
// on the owner's kernel, outlives that unit, fails the try at
// HEALTH_DEADLINE and reboots through systemd and the firmware; with
// MAX_TRIES=1 the provider's kernel then stays, and says why.
func TestChainDeadline(t *testing.T) {
	t.Parallel()
	a, b := kernels(t)
	img := image(t, harness.Systemd)
	kB := "/boot/vmlinuz-" + b.Release
	conf := fmt.Sprintf("KERNEL=%s\nINITRD=/boot/initrd.img-%s\nABORT_SECONDS=0\nMAX_TRIES=1\nHEALTH_DEADLINE=150\nHEALTH_CMD=\"false\"\n", kB, b.Release)
	dg := startDisk(t, img, func(o *harness.Options) { o.MaxKernels = 4; o.Timeout = 12 * time.Minute },
		harness.GuestFile{Path: "/usr/local/sbin/kxboot", Mode: 0o755, HostPath: kxboot(t)},
		harness.GuestFile{Path: "/etc/default/kxboot", Data: []byte(conf)},
		harness.BootScript(1, "step install kxboot install chain --mode systemd\nkx_reboot"),
		harness.BootScript(2, "step status kxboot status\nstep watch sh -c 'ps -eo args | grep \"[k]xboot watch\"'\nkx_idle"),
		harness.BootScript(3, "step status kxboot status\nstep history kxboot history\nkx_poweroff"),
	)
	check := dg.at
	check(1, a.Release)
	dg.ok("1", "install")
	check(2, b.Release)
	if st := dg.ok("2", "status"); !strings.Contains(st.Stdout(), "tries:      this boot is try 1 of 1 of "+kB+", waiting for kxboot mark-good") {
		dg.errorf("boot 2: status:\n%s", st.Stdout())
	}
	dg.ok("2", "watch")
	check(3, a.Release)
	st := dg.ok("3", "status")
	if first := st.Out[0]; !strings.HasPrefix(first, "FALLBACK:") || !strings.Contains(first, "no confirmation within HEALTH_DEADLINE (150 s after the hop); the last health check said: HEALTH_CMD \"false\" failed: exit status 1") {
		dg.errorf("boot 3: status begins %q", first)
	}
	if h := dg.ok("3", "history").Stdout(); !strings.Contains(h, "failed try 1/1") || !strings.Contains(h, "fallback") {
		dg.errorf("boot 3: history:\n%s", h)
	}
	if err := dg.g.Wait(); err != nil {
		dg.fatalf("qemu did not end after the poweroff: %v", err)
	}
	if ks := dg.g.Kernels(); strings.Join(ks, " ") != strings.Join([]string{a.Release, a.Release, b.Release, a.Release}, " ") {
		dg.errorf("kernels started: %v", ks)
	}
}
