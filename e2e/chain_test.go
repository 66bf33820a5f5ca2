package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
	"github.com/kxboot/kxboot/internal/testimg"
)

// chainLib is sourced by every boot script: kx_snap lists the system files an install touches, with type,
// mode, link target and a hash of the contents, so that two snapshots show
// whether uninstall restored them byte for byte.
const chainLib = `# kx_confirmed waits until the init system's kxboot-confirm service has
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
	// breakWith "kernel" adds a boot that must boot on because KERNEL
	// names a file that does not exist. Every reason to boot on takes the
	// same path in every mode (chain.Decide fails, the init goes on,
	// status reads the reason back from the kernel log), and the key's
	// boot shows in every mode that the init goes on after kxboot boots
	// on; so one service mode shows a broken config here, and
	// TestWrapperBootsOnWithReason shows a missing kernel and a malformed
	// config under PID 1, the wrapper's path. KNOWN_GOOD=no goes with it:
	// otherwise the confirmed hop before would be booted instead, as
	// TestKnownGood shows.
	breakWith string
	// initrd boots the provider's kernel with its Debian initramfs, which
	// hands the root and /dev, /proc, /sys, /run over to the wrapper;
	// the other cases boot without one (BootDirect), as the tiny guest
	// does, which is the other situation the wrapper meets.
	initrd bool
	// deadline adds two boots after the hop: kernel B again, on a config
	// whose HEALTH_CMD fails, until the deadline watcher fails the try
	// and reboots; then kernel A, which stays with the reason (FALLBACK)
	// until kxboot reset. The watcher and its reboot are the systemd
	// unit's (the tiny guest's TestTriesDeadline shows them under PID 1).
	deadline bool
	// layout turns the OpenRC image into a machine laid out like another
	// distribution's (harness.OpenRCLayouts): busybox init, Alpine's PID
	// 1, as the original init.
	layout string
	// after adds a boot after the uninstall, which must come up on the
	// original init with nothing installed. In the other cases the
	// snapshot shows that /sbin, the diversions and the services are byte
	// for byte those that the first boot booted with.
	after bool
	// deb installs kxboot from its .deb (make package) instead of copying
	// the binary, and takes it out with apt-get purge instead of kxboot
	// uninstall: the purge must leave no diversion, unit or file behind,
	// and the boot after comes up on the original init.
	deb bool
}

var chainCases = []chainCase{
	{name: "wrapper-systemd", flavour: harness.Systemd, mode: "wrapper", initPkg: "systemd-sysv", initrd: true},
	{name: "wrapper-sysvinit", flavour: harness.Sysvinit, mode: "wrapper", initPkg: "sysvinit-core", after: true, deb: true},
	{name: "systemd", flavour: harness.Systemd, mode: "systemd", deadline: true},
	{name: "sysvinit", flavour: harness.Sysvinit, mode: "sysvinit", breakWith: "kernel"},
	// OpenRC's chain service is the same on every layout; it runs here
	// under busybox init with an Alpine-style inittab, Alpine's way (no
	// dpkg there, so auto chooses the running init's service).
	{name: "openrc-busybox", flavour: harness.OpenRC, mode: "openrc", layout: harness.LayoutBusybox},
}

// TestChain installs the chain boot in each mode inside a Debian guest and
// follows it over three to five boots of the provider's kernel A. Boots
// end in a reset at once (kx_reset): the chain boot does not care how the
// last boot ended, and a clean shutdown under TCG costs most of a minute.
//
//	install (A)  snapshot the system files, kxboot install chain; the
//	             abort window of the next boot shortened from the
//	             installed 5 s to 1 s; reset
//	hop (B)      the window ran out, kxboot hopped exactly once: B with
//	             the marker; the init system's kxboot-confirm service
//	             confirms it; (wrapper: reinstall the init package, the
//	             wrapper stays); the installed config back; with
//	             breakWith, break it; reset
//	broken (A)   with breakWith: booted on, with the reason in status;
//	             restore the installed config; reset
//	dead (B)     with deadline: try 1 of 1, HEALTH_CMD fails; the deadline
//	             watcher runs; at HEALTH_DEADLINE it fails the try and
//	             reboots through systemd and the firmware
//	fallback (A) with deadline: FALLBACK with the reason in status and
//	             history; kxboot reset; the installed config back; reset
//	             (A) the abort window: the test sends a key
//	key (A)      booted on: key, reason in status; kxboot uninstall
//	             (twice); snapshot = the install boot's
//	after (A)    with after: the original init, nothing installed
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
		debs, _ := filepath.Glob(filepath.Join(img.DebsDir(), c.initPkg+"_*.deb"))
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
	if c.layout != "" {
		l, err := harness.LayoutOf(harness.AMD64, c.layout)
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, l.Files...)
	}
	breakConfig, reason := "", ""
	if c.breakWith == "kernel" {
		breakConfig, reason = `sed -i 's|^KERNEL=.*|KERNEL="/boot/vmlinuz-gone"|' /etc/default/kxboot
echo KNOWN_GOOD=no >>/etc/default/kxboot`, "boot on: kernel /boot/vmlinuz-gone does not exist"
	}

	if c.deadline {
		// The deadline leaves kernel B's boot nearly three times what it
		// needs to report (22 s after the hop under TCG on a quiet
		// machine); the default, for real machines, is 300 s.
		breakConfig = fmt.Sprintf(`printf 'KERNEL=%s\nINITRD=%s\nABORT_SECONDS=0\nMAX_TRIES=1\nHEALTH_DEADLINE=45\nHEALTH_CMD="false"\n' >/etc/default/kxboot`, kB, iB)
	}

	// The boots in order, numbered as the runner counts them.
	const install, hop = 1, 2
	n := hop
	next := func(on bool) int {
		if !on {
			return 0
		}
		n++
		return n
	}
	broken := next(c.breakWith != "")
	dead, fallback := next(c.deadline), next(c.deadline)
	key := next(true)
	after := next(c.after)
	last := "kx_off"
	if c.after {
		last = "kx_reset"
	}
	bin, getKxboot, takeOut := "/usr/local/sbin/kxboot", "", `step uninstall kxboot uninstall
step uninstall2 kxboot uninstall
`
	if c.deb {
		bin = "/usr/sbin/kxboot"
		extra = append(extra,
			harness.GuestFile{Path: "/var/cache/kxtest/kxboot.deb", HostPath: kxbootDeb(t)},
			harness.GuestFile{Path: "/var/cache/kxtest/hook-kernel.deb", HostPath: hookKernelDeb(t, t.TempDir())})
		// A kernel package runs the package's kernel hook, whose warning
		// shows in dpkg's output; the package goes again at once.
		getKxboot = `step dpkg dpkg -i /var/cache/kxtest/kxboot.deb
dpkg -L kxboot >/root/kxboot.files
step kernelhook dpkg -i /var/cache/kxtest/hook-kernel.deb
dpkg --purge kxtest-hook-kernel >/dev/null
`
		takeOut = `step uninstall env DEBIAN_FRONTEND=noninteractive apt-get purge -y kxboot
step gone sh -c '! command -v kxboot'
step divertlist sh -c 'dpkg-divert --list | grep kxboot; true'
step leftover sh -c 'while read -r f; do [ -d "$f" ] || [ ! -e "$f" ] || echo "$f"; done </root/kxboot.files'
`
	} else {
		extra = append(extra, harness.GuestFile{Path: bin, Mode: 0o755, HostPath: kxboot(t)})
	}
	files := append(extra,
		harness.GuestFile{Path: "/usr/local/lib/kxtest/chain.sh", Mode: 0o644, Data: []byte(chainLib)},
		harness.BootScript(install, `. /usr/local/lib/kxtest/chain.sh
kx_snap >/root/before
`+getKxboot+`step install kxboot install chain --mode `+c.mode+` --kernel `+kB+` --initrd `+iB+`
cp /etc/default/kxboot /root/kxboot.installed
step dryrun kxboot chain --dry-run
sed -i 's/^ABORT_SECONDS=.*/ABORT_SECONDS="1"/' /etc/default/kxboot
kx_reset`),
		harness.BootScript(hop, `. /usr/local/lib/kxtest/chain.sh
step confirmed kx_confirmed
step status kxboot status
`+reinstall+`cp /root/kxboot.installed /etc/default/kxboot
`+breakConfig+`
kx_reset`),
		harness.BootScript(key, `. /usr/local/lib/kxtest/chain.sh
step status kxboot status
`+takeOut+`kx_snap >/root/after
step diff diff /root/before /root/after
`+last),
	)
	if broken != 0 {
		files = append(files, harness.BootScript(broken, `step status kxboot status
cp /root/kxboot.installed /etc/default/kxboot
kx_reset`))
	}
	if dead != 0 {
		files = append(files,
			harness.BootScript(dead, `step status kxboot status
step watch sh -c 'ps -eo args | grep "[k]xboot watch"'
kx_idle`),
			harness.BootScript(fallback, `step status kxboot status
step history kxboot history
step reset kxboot reset
cp /root/kxboot.installed /etc/default/kxboot
kx_reset`))
	}
	if after != 0 {
		files = append(files, harness.BootScript(after, `step status kxboot status
step gone sh -c '! command -v kxboot'
kx_off`))
	}
	dg := startDisk(t, img, func(o *harness.Options) {
		o.MaxKernels = n + 1 // a kernel per boot, and B in each hop boot
		if c.deadline {
			o.MaxKernels++
		}
		o.Timeout = 15 * time.Minute
		if c.initrd {
			o.Initrd = img.InitrdA
		}
	}, files...)
	check := dg.at
	status := func(s *harness.Report, n int, want string) {
		t.Helper()
		st := dg.step(fmt.Sprint(n), "status")
		if !strings.Contains(st.Stdout(), want) {
			dg.errorf("boot %d: kxboot status lacks %q:\n%s", n, want, st.Stdout())
		}
	}

	s := check(install, a.Release)
	if c.deb {
		dg.ok("1", "dpkg")
		if st := dg.ok("1", "kernelhook"); !strings.Contains(st.Stderr(), "kxboot: "+hookRelease+": warn  next kernel's kexec "+hookRelease+" was built without kexec") {
			dg.errorf("installing a kernel package without kexec: dpkg said\n%s\n%s\nwant the kernel hook's warning", st.Stdout(), st.Stderr())
		}
	}
	dg.ok("1", "install")
	if st := dg.ok("1", "dryrun"); !strings.HasPrefix(st.Stdout(), "kxboot chain: would hop: booting "+kB) || len(st.Out) != 1 {
		dg.errorf("kxboot chain --dry-run: %q; want one line that it would hop into %s", st.Stdout(), kB)
	}

	s = check(hop, b.Release)
	cmd, _ := s.Get("cmdline")
	if !strings.Contains(cmd, "kxboot.chained=1") || !strings.Contains(cmd, "kxtest.provider=1") {
		dg.errorf("kernel B's command line %q lacks the marker or the provider's parameters", cmd)
	}
	if _, err := dg.g.WaitFor("kxboot: booting "+kB+" in 1 s; press any key", time.Second); err != nil {
		dg.errorf("the abort window of the hop never showed: %v", err)
	}
	dg.ok("2", "confirmed")
	status(s, hop, "via kxboot: yes")
	status(s, hop, "tries:      0 unconfirmed; "+kB+" confirmed healthy")
	status(s, hop, "installed:  chain "+c.mode)
	if c.initPkg != "" {
		dg.ok("2", "reinstall")
		if got := dg.ok("2", "initlink").Stdout(); got != bin {
			dg.errorf("after reinstalling %s, /sbin/init leads to %q; want the wrapper", c.initPkg, got)
		}
		dg.ok("2", "orig")
		if got := dg.ok("2", "divert").Stdout(); !strings.Contains(got, "/sbin/init.kxboot-orig") {
			dg.errorf("the diversion is gone after the reinstall: %q", got)
		}
	}

	if broken != 0 {
		s = check(broken, a.Release)
		status(s, broken, "this boot:  "+reason)
	}

	if dead != 0 {
		s = check(dead, b.Release)
		status(s, dead, "tries:      this boot is try 1 of 1 of "+kB+", waiting for kxboot mark-good")
		dg.ok(fmt.Sprint(dead), "watch")
		s = check(fallback, a.Release)
		f := fmt.Sprint(fallback)
		st := dg.ok(f, "status")
		if first := st.Out[0]; !strings.HasPrefix(first, "FALLBACK:") || !strings.Contains(first, "no confirmation within HEALTH_DEADLINE (45 s after the hop); the last health check said: HEALTH_CMD \"false\" failed: exit status 1") {
			dg.errorf("boot %d: status begins %q", fallback, first)
		}
		if h := dg.ok(f, "history").Stdout(); !strings.Contains(h, "failed try 1/1") || !strings.Contains(h, "fallback") {
			dg.errorf("boot %d: history:\n%s", fallback, h)
		}
		dg.ok(f, "reset")
	}

	// The boot before ends with a reset: the window of the next boot
	// gets a key.
	sent := dg.g.SendWhen("press any key", "x")
	s = check(key, a.Release)
	select {
	case <-sent:
	default:
		dg.errorf("the abort window never showed on the serial console")
	}
	status(s, key, "this boot:  boot on: a key was pressed on ttyS0")
	k := fmt.Sprint(key)
	dg.ok(k, "uninstall")
	if c.deb {
		// apt-get purge ran kxboot uninstall (prerm) and took the files.
		dg.ok(k, "gone")
		if st := dg.step(k, "divertlist"); st.Stdout() != "" {
			dg.errorf("after apt-get purge kxboot, dpkg-divert --list still has %q", st.Stdout())
		}
		if st := dg.step(k, "leftover"); st.Stdout() != "" {
			dg.errorf("after apt-get purge kxboot, files of the package remain: %q", st.Stdout())
		}
	} else if st := dg.ok(k, "uninstall2"); !strings.Contains(st.Stdout(), "not installed; nothing to undo") {
		dg.errorf("a second uninstall said %q", st.Stdout())
	}
	if st := dg.step(k, "diff"); st.RC != 0 {
		dg.errorf("the system files differ from before the install:\n%s", st.Stdout())
	}
	if after != 0 {
		s = check(after, a.Release)
		if c.deb {
			dg.ok(fmt.Sprint(after), "gone")
		} else {
			status(s, after, "installed:  nothing")
		}
		if pid1, _ := s.Get("pid1"); pid1 != map[string]string{harness.Systemd: "systemd", harness.Sysvinit: "init"}[c.flavour] {
			dg.errorf("boot %d: PID 1 is %q after the uninstall; want the original init", after, pid1)
		}
	}
	if err := dg.g.Wait(); err != nil {
		dg.fatalf("qemu did not end after the power off: %v", err)
	}
	// Exactly one hop per hop boot: A, then A and B, then A (with
	// deadline: A and B again, then A), then A.
	ks := dg.g.Kernels()
	want, hops := []string{a.Release}, 0
	for boot := hop; boot <= n; boot++ {
		if boot == hop || boot == dead {
			want, hops = append(want, a.Release, b.Release), hops+1
		} else {
			want = append(want, a.Release)
		}
	}
	if strings.Join(ks, " ") != strings.Join(want, " ") || dg.g.Hops() != hops {
		dg.errorf("kernels started: %v (%d hops); want %v, %d hops", ks, dg.g.Hops(), want, hops)
	}
}

// hookRelease is the kernel of hookKernelDeb.
const hookRelease = "6.1.0-99-nokexec"

// hookKernelDeb builds a kernel package whose kernel has no kexec (its
// /boot/config says so) and whose postinst runs the kernel hooks as
// Debian's linux-image packages do (run-parts with the version and the
// image), limited to kxboot's: the image's other hooks would build an
// initramfs for a kernel without modules.
func hookKernelDeb(t *testing.T, dir string) string {
	t.Helper()
	postinst := "#!/bin/sh\nset -e\n[ \"$1\" = configure ] || exit 0\nrun-parts --report --regex '^zz-kxboot$' --arg=" + hookRelease + " --arg=/boot/vmlinuz-" + hookRelease + " /etc/kernel/postinst.d\n"
	return fakeDeb(t, dir, "kxtest-hook-kernel", "a kernel without kexec (kxboot's kernel hook case)", map[string]debFile{
		"DEBIAN/postinst":             {[]byte(postinst), 0o755},
		"boot/vmlinuz-" + hookRelease: {testimg.BzImage(16384, hookRelease), 0o644},
		"boot/config-" + hookRelease:  {[]byte("# CONFIG_KEXEC is not set\n# CONFIG_KEXEC_FILE is not set\n"), 0o644},
	})
}

// debFile is one file of a package fakeDeb builds.
type debFile struct {
	data []byte
	mode os.FileMode
}

// fakeDeb builds the amd64 package pkg, version 1, with files (paths in the
// package's tree, DEBIAN/ for its control scripts) and returns its path.
func fakeDeb(t *testing.T, dir, pkg, description string, files map[string]debFile) string {
	t.Helper()
	tree := filepath.Join(dir, pkg)
	control := "Package: " + pkg + "\nVersion: 1\nArchitecture: amd64\nMaintainer: kxboot e2e <e2e@kxboot.invalid>\nDescription: " + description + "\n"
	files["DEBIAN/control"] = debFile{[]byte(control), 0o644}
	for p, f := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, p), f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(dir, pkg+"_1_amd64.deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	return deb
}
