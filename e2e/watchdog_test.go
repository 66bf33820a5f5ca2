package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// The watchdog cases: a kernel that hangs before its userspace starts is
// brought back only by a hardware watchdog armed before the hop, and only
// if the provider's kernel lets it run through the kexec
// (watchdog.stop_on_reboot=0). They run the tiny guest (tiny_test.go)
// with QEMU's i6300esb PCI watchdog, whose timeout resets the machine in
// place (harness.Options.Watchdog). Debian's cloud kernels have no driver
// for it, so both kernels here are Debian's generic amd64 kernels of the
// same ABIs as A and B (harness.GenericKernelOf), whose drivers are
// modules: each boots with a small initramfs (wdInit) that loads the
// watchdog driver, NVMe and ext4 and mounts the root, as a Debian
// initramfs with the watchdog driver added would; then kxboot's wrapper
// runs as PID 1 on the real root, as in every tiny guest.
//
// i6300esb's driver stops the chip when it probes, and it reads (and
// clears) the chip's "the watchdog reset the machine" bit, which QEMU
// keeps over an in-place reset, as the chip does: kxboot reads it as
// watchdog0's bootstatus and says so in the failed try's reason.

// wdInit is /init of the watchdog guests' initramfs. It loads the modules
// in the order the harness found (dependencies first), giving the
// watchdog core the watchdog.* options of the command line as modprobe
// would, waits for the root device, mounts it read-only and hands over to
// its /sbin/init with the devtmpfs a kernel without initramfs would have
// mounted. With kxtest.hang on the command line it hangs first, before
// any userspace of the owner's: a kernel that never reaches its init.
const wdInit = `#!/bin/sh
PATH=/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
root=
opts=
for w in $(cat /proc/cmdline); do
	case $w in
	root=*) root=${w#root=} ;;
	watchdog.*) opts="$opts ${w#watchdog.}" ;;
	kxtest.hang)
		echo "kxtest-init: hanging before userspace (kxtest.hang)"
		while :; do sleep 3600; done ;;
	esac
done
rel=$(uname -r)
for m in $(cat /etc/kxtest-modules); do
	case $m in
	*/watchdog.ko) busybox insmod /lib/modules/$rel/$m $opts ;;
	*) busybox insmod /lib/modules/$rel/$m ;;
	esac || echo "kxtest-init: insmod $m failed"
done
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if ! mount -t ext4 -o ro "$root" /newroot; then
	echo "kxtest-init: cannot mount $root"
	while :; do sleep 3600; done
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec busybox switch_root /newroot /sbin/init
`

// wdSet is an architecture's generic kernels of A's and B's ABIs, with
// their initramfs, made once per run.
type wdSet struct {
	once  sync.Once
	p, g  harness.GenericKernel
	pInit string // the provider's initramfs (host path)
	gInit string // the owner's, installed as /boot/initrd.img-RELEASE
	err   error
}

var (
	wdMu   sync.Mutex
	wdSets = map[string]*wdSet{} // by GOARCH
)

// wdKernelsOf returns arch's provider's generic kernel P (A's ABI) and the
// owner's G (B's), with their initramfs.
func wdKernelsOf(t *testing.T, arch harness.Arch) (p, g harness.GenericKernel, pInit, gInit string) {
	t.Helper()
	a, b := kernelsOf(t, arch)
	bb := busyboxOf(t, arch)
	wdMu.Lock()
	w := wdSets[arch.GOARCH]
	if w == nil {
		w = &wdSet{}
		wdSets[arch.GOARCH] = w
	}
	wdMu.Unlock()
	w.once.Do(func() {
		if w.p, w.err = harness.GenericKernelOf(arch, a.Short(), cacheLog); w.err != nil {
			return
		}
		if w.g, w.err = harness.GenericKernelOf(arch, b.Short(), cacheLog); w.err != nil {
			return
		}
		dir := filepath.Join(buildDir, "watchdog-"+arch.GOARCH)
		if w.err = os.MkdirAll(dir, 0o755); w.err != nil {
			return
		}
		for _, k := range []struct {
			k    harness.GenericKernel
			into *string
		}{{w.p, &w.pInit}, {w.g, &w.gInit}} {
			r := harness.NewInitramfs().Busybox(bb).Dir("/newroot", 0o755).
				File("/init", 0o755, []byte(wdInit)).
				File("/etc/kxtest-modules", 0o644, []byte(strings.Join(k.k.Load, "\n")+"\n"))
			*k.into = filepath.Join(dir, "initrd.img-"+k.k.Release)
			if w.err = k.k.AddModules(r).Write(*k.into); w.err != nil {
				return
			}
		}
	})
	if w.err != nil {
		t.Fatalf("the watchdog guests' kernels (%s): %v", arch.GOARCH, w.err)
	}
	return w.p, w.g, w.pInit, w.gInit
}

// startWatchdog makes a tiny guest whose kernels are P and G, with conf as
// /etc/default/kxboot (KERNEL= G), G and its initramfs on the disk, the
// i6300esb watchdog, and extra on the provider's command line, and starts
// it.
func startWatchdog(t *testing.T, arch harness.Arch, conf, extra string, files ...harness.GuestFile) (*tinyGuest, harness.GenericKernel, harness.GenericKernel) {
	t.Helper()
	p, g, pInit, gInit := wdKernelsOf(t, arch)
	files = append(files, g.GuestFiles()...)
	files = append(files,
		harness.GuestFile{Path: "/boot/initrd.img-" + g.Release, HostPath: gInit},
		harness.GuestFile{Path: "/etc/default/kxboot", Data: []byte("KERNEL=/boot/vmlinuz-" + g.Release + "\nABORT_SECONDS=0\n" + conf)})
	tg := newTinyOf(t, arch, "", extra, files...)
	tg.boot = func(o *harness.Options) {
		o.Kernel, o.Initrd = p.Image, pInit
		o.Watchdog, o.InPlaceReset = true, true
	}
	tg.launch()
	return tg, p, g
}

// TestWatchdogRecovers: with watchdog.stop_on_reboot=0 on the provider's
// command line, the watchdog armed before each hop runs through the kexec.
// A good kernel loads its driver (which stops it) and confirms, and the
// guest runs on past two timeouts. Then the owner's kernel, with
// kxtest.hang added to its command line, hangs before its userspace: the
// watchdog resets the machine, the provider's kernel comes back and
// records the try as failed because the watchdog fired; with MAX_TRIES=1
// the last known-good entry (the same kernel with the command line that
// confirmed) boots next, armed again, and confirms, and runs past one
// timeout.
func TestWatchdogRecovers(t *testing.T) {
	t.Parallel()
	// The good kernel's driver stops the watchdog about 3 s after the
	// kexec under TCG; 12 s was once not enough on a busy machine (the
	// known-good kernel stalled 10 s in its early boot and was reset), so
	// the deadline leaves it 20.
	watchdogRecovers(t, harness.AMD64, 20, 2)
}

// TestArm64WatchdogRecovers is TestWatchdogRecovers on arm64: QEMU's virt
// machine has no watchdog of its own, but takes the same i6300esb on its
// PCIe bus, and Debian's generic arm64 kernel has its driver as a module.
// The guest boots through qemu's own loader (a device tree); arm64
// servers' own watchdogs (SBSA's, on sbsa-ref) are not shown. Its
// first good boot outlives one timeout, not two: the amd64 case shows
// that.
func TestArm64WatchdogRecovers(t *testing.T) {
	t.Parallel()
	watchdogRecovers(t, harness.ARM64, 20, 1)
}

// watchdogRecovers is TestWatchdogRecovers on arch with a HEALTH_DEADLINE
// of deadline seconds, the first good boot outliving the given number of
// timeouts and the known-good one one timeout.
func watchdogRecovers(t *testing.T, arch harness.Arch, deadline, timeouts int) {
	t.Helper()
	// The guest's uptime counts from about the arming (the hop): a good
	// boot sleeps until it has outlived n timeouts by 2 s.
	outlive := func(n int) string {
		return fmt.Sprintf(`up=$(cut -d. -f1 /proc/uptime)
if [ "$up" -lt %[1]d ]; then sleep $((%[1]d - up)); fi
step after cat /proc/uptime
`, deadline*n+2)
	}
	outlived := []int{1: timeouts, 2: 1} // by boot
	tg, p, g := startWatchdog(t, arch, fmt.Sprintf("MAX_TRIES=1\nHEALTH_DEADLINE=%d\n", deadline), " watchdog.stop_on_reboot=0",
		harness.BootScript(1, `step markgood kxboot mark-good
step state cat /sys/class/watchdog/watchdog0/state
`+outlive(outlived[1])+`echo APPEND=kxtest.hang >>/etc/default/kxboot
kx_reboot`),
		harness.BootScript(2, "step markgood kxboot mark-good\n"+outlive(outlived[2])+report+"step doctor kxboot doctor\nkx_off"))
	for n := 1; n <= 2; n++ {
		tg.at(n, g.Release)
		tg.has(n, "markgood", "stopped /dev/watchdog (i6300ESB timer) with the magic close")
		if n == 1 {
			tg.has(1, "state", "inactive")
		}
		out := tg.ok(fmt.Sprint(n), "after").Stdout()
		var up float64
		if _, err := fmt.Sscan(out, &up); err != nil || up < float64(deadline*outlived[n]) {
			tg.errorf("boot %d: /proc/uptime %q after mark-good; want past %d s (%d timeouts)", n, out, deadline*outlived[n], outlived[n])
		}
	}
	if err := tg.g.Wait(); err != nil {
		tg.errorf("the guest did not end cleanly: %v", err)
	}
	if w := tg.g.Watchdogs(); w != 1 {
		tg.errorf("the watchdog fired %d times; want 1 (the hang, not the good boots)", w)
	}
	tg.kernelsWere(p.Release, g.Release, p.Release, g.Release, p.Release, g.Release)
	console := tg.g.Console()
	if n := strings.Count(console, "kxtest-init: hanging before userspace"); n != 1 {
		tg.errorf("the owner's kernel hung %d times; want 1", n)
	}
	armed := fmt.Sprintf("kxboot: chain: watchdog: armed /dev/watchdog (i6300ESB timer) with a %d s timeout", deadline)
	// Counted in the kernel's log, which the console shows beside
	// kxboot's own stderr.
	if n := strings.Count(console, "] "+armed); n != 3 {
		tg.errorf("%q appears %d times in the kernel's log; want 3 (every hop)", armed, n)
	}
	fired := "the kernel never confirmed: the hardware watchdog armed before the hop reset the machine (/sys/class/watchdog/watchdog0/bootstatus says so), so the kernel hung before kxboot mark-good ran"
	if h := tg.step("2", "history").Stdout(); !strings.Contains(h, fired) {
		tg.errorf("the history does not give the watchdog as the cause of the failed try:\n%s", h)
	}
	if ev := tg.events(2, "history"); ev != "hop/1 confirmed/1 hop/1 failed/1 hop/1 confirmed/1" {
		tg.errorf("history: %s; want a confirmed hop, the failed one, the known-good hop confirmed", ev)
	}
	tg.has(2, "status", "entry:      the last known-good kernel: 1 unconfirmed hop into /boot/vmlinuz-"+g.Release+" (last: "+fired)
	tg.has(2, "doctor", "the kernel leaves the watchdog running through the kexec, so it guards the custom kernel while it boots")
	tg.has(2, "doctor", fmt.Sprintf("armed for HEALTH_DEADLINE=%d s before a hop, within the 1-2046 s", deadline))
	tg.has(2, "doctor", ") armed the watchdog") // watchdog at the hop
}

// TestWatchdogStopped: without watchdog.stop_on_reboot=0 the kernel stops
// the watchdog at the kexec. doctor says so beforehand; the hop still arms
// it, the owner's kernel hangs before its userspace, and nothing resets
// the machine: it stays hung past two timeouts, as a real one would
// until someone power-cycles it. The power cycle brings the provider's
// kernel back, which records the try as failed (without a cause: nothing
// says what happened) and, after MAX_TRIES=1, stays.
func TestWatchdogStopped(t *testing.T) {
	t.Parallel()
	const deadline = 10
	tg, p, g := startWatchdog(t, harness.AMD64, fmt.Sprintf("ENABLED=no\nMAX_TRIES=1\nHEALTH_DEADLINE=%d\nAPPEND=kxtest.hang\n", deadline), "",
		harness.BootScript(1, "step doctor kxboot doctor\nsed -i 's/^ENABLED=no$/ENABLED=yes/' /etc/default/kxboot\nkx_reboot"),
		harness.BootScript(2, report+"kx_off"))
	tg.at(1, p.Release)
	tg.has(1, "doctor", "so the watchdog kxboot arms before the hop would not guard the custom kernel")
	tg.has(1, "doctor", "add watchdog.stop_on_reboot=0 to the provider kernel's command line")
	if _, err := tg.g.WaitFor("kxtest-init: hanging before userspace", 3*time.Minute); err != nil {
		tg.fatalf("the owner's kernel did not reach its hang: %v", err)
	}
	hung := tg.g.Elapsed()
	time.Sleep(2 * deadline * time.Second)
	if w, k := tg.g.Watchdogs(), len(tg.g.Kernels()); w != 0 || k != 3 {
		tg.errorf("%v after the hang: the watchdog fired %d times and %d kernels started; want none and 3", tg.g.Elapsed()-hung, w, k)
	}
	lines := tg.g.Lines()
	tg.t.Logf("what the console shows, %v after the hang:\n%s", (tg.g.Elapsed() - hung).Round(time.Second), strings.Join(lines[max(0, len(lines)-4):], "\n"))
	if !strings.Contains(tg.g.Console(), fmt.Sprintf("kxboot: chain: watchdog: armed /dev/watchdog (i6300ESB timer) with a %d s timeout", deadline)) {
		tg.errorf("the hop did not arm the watchdog")
	}
	tg.powerCut("")
	tg.at(2, p.Release)
	tg.fellBack(2, "1 unconfirmed hop into /boot/vmlinuz-"+g.Release+" (last: the kernel never confirmed: it crashed, hung or was reset before kxboot mark-good ran",
		"hop/1 failed/1 fallback/0")
}
