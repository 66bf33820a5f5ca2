package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// The tiny guest is the systemd disk image with a ten-line shell script as
// its init, wrapped by kxboot the way `kxboot install chain --mode
// wrapper` leaves a machine (/sbin/init -> kxboot, the original init at
// /sbin/init.kxboot-orig; TestChain proves the install itself). Its
// kernels boot without an initramfs, as on many boards: the disk is an
// NVMe drive, whose driver Debian's cloud kernels have built in, and the
// kernel mounts the real ext4 root read-only itself, so the try record is
// written the way it is in the field. A boot takes about 4 s under TCG
// instead of 20-40 s for a whole init system, which is what lets the
// boot-counting cases run many boots each. The initrds are removed from
// the tiny disk, so kxboot finds none beside kernel B and loads it alone.

// tinyInit is the "distribution's init" of the tiny guest.
const tinyInit = `#!/bin/sh
# kxtest tiny init: mounts what the initramfs did not, makes / writable,
# and runs the kxtest runner. Written by the e2e tests (e2e/tiny_test.go).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs -o mode=755 tmpfs /run
/usr/local/lib/kxtest/early
mount -o remount,rw /
/usr/local/lib/kxtest/runner
while :; do sleep 3600; done
`

// tinyReboot and tinyPoweroff stand in for the init system's commands
// (first in PATH): sync, / read-only, then the firmware reset or power off.
const tinyReboot = `#!/bin/sh
sync
mount -o remount,ro / 2>/dev/null
echo b >/proc/sysrq-trigger
sleep 60
`

const tinyPoweroff = `#!/bin/sh
sync
mount -o remount,ro / 2>/dev/null
echo o >/proc/sysrq-trigger
sleep 60
`

// tinyGuest is one tiny guest's disk, run by one or more qemu processes in
// turn (a power cut ends one and starts the next).
type tinyGuest struct {
	*guest
	slot  *slot
	img   *harness.DiskImage
	disk  string
	disk2 string // a second root file system (/dev/nvme1n1), or ""
	dir   string
	arch  harness.Arch
	runs  int
	a, b  harness.Kernel
	kB    string
	extra string // added to the provider's command line
	// boot, if set, changes how qemu starts the provider's kernel (the
	// watchdog guests boot another kernel, with a watchdog device).
	boot func(*harness.Options)
}

// tinyConf is /etc/default/kxboot for the hop into B: no abort window.
func tinyConf(kB, more string) string {
	return fmt.Sprintf("KERNEL=%s\nABORT_SECONDS=0\n%s", kB, more)
}

// startTiny makes a tiny guest with conf as /etc/default/kxboot and the
// boot scripts, and starts it on the provider's kernel A with extra added
// to the command line.
func startTiny(t *testing.T, more, extra string, files ...harness.GuestFile) *tinyGuest {
	t.Helper()
	tg := newTiny(t, more, extra, files...)
	tg.launch()
	return tg
}

// newTiny is startTiny without the start.
func newTiny(t *testing.T, more, extra string, files ...harness.GuestFile) *tinyGuest {
	t.Helper()
	return newTinyOf(t, harness.AMD64, more, extra, files...)
}

// newTinyOf is newTiny for a guest of arch: the systemd image of arch,
// booted through qemu's own loader (a device tree on arm64).
func newTinyOf(t *testing.T, arch harness.Arch, more, extra string, files ...harness.GuestFile) *tinyGuest {
	t.Helper()
	a, b := kernelsOf(t, arch)
	img := imageOf(t, arch, harness.Systemd)
	dir := diskDir(t)
	disk, err := harness.NewDisk(img, dir)
	if err != nil {
		t.Fatal(err)
	}
	kB := "/boot/vmlinuz-" + b.Release
	// A config among files replaces the one made of more.
	base := tinyBase(t, arch, a, b, tinyConf(kB, more))
	for _, f := range files {
		if f.Path == "/etc/default/kxboot" {
			base = slices.DeleteFunc(base, func(g harness.GuestFile) bool { return g.Path == f.Path })
		}
	}
	if err := harness.Inject(disk, append(base, files...)...); err != nil {
		t.Fatal(err)
	}
	return &tinyGuest{guest: &guest{t: t}, slot: claim(t), img: img, disk: disk, dir: dir, arch: arch, a: a, b: b, kB: kB, extra: extra}
}

// addRoot gives the tiny guest a second root file system, /dev/nvme1n1: a
// copy of the same image made tiny the same way, with conf as its
// /etc/default/kxboot and its runner's boots counted from 101.
func (tg *tinyGuest) addRoot(conf string, files ...harness.GuestFile) {
	tg.t.Helper()
	dir := filepath.Join(tg.dir, "root2")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tg.t.Fatal(err)
	}
	disk, err := harness.NewDisk(tg.img, dir)
	if err != nil {
		tg.t.Fatal(err)
	}
	base := append(tinyBase(tg.t, tg.arch, tg.a, tg.b, conf), harness.GuestFile{Path: "/var/lib/kxtest/count", Data: []byte("100\n")})
	if err := harness.Inject(disk, append(base, files...)...); err != nil {
		tg.t.Fatal(err)
	}
	tg.disk2 = disk
}

// tinyBase is what makes a copy of the image tiny: kxboot as /sbin/init
// before the tiny init, the stand-ins for reboot and poweroff, conf as
// /etc/default/kxboot, no initrds.
func tinyBase(t *testing.T, arch harness.Arch, a, b harness.Kernel, conf string) []harness.GuestFile {
	return []harness.GuestFile{
		{Path: "/usr/local/sbin/kxboot", Mode: 0o755, HostPath: kxbootOf(t, arch)},
		{Path: "/usr/local/lib/kxtest/tinyinit", Mode: 0o755, Data: []byte(tinyInit)},
		{Path: "/usr/local/sbin/reboot", Mode: 0o755, Data: []byte(tinyReboot)},
		{Path: "/usr/local/sbin/poweroff", Mode: 0o755, Data: []byte(tinyPoweroff)},
		{Path: "/sbin/init.kxboot-orig", Target: "/usr/local/lib/kxtest/tinyinit"},
		{Path: "/sbin/init", Target: "/usr/local/sbin/kxboot"},
		{Path: "/etc/default/kxboot", Data: []byte(conf)},
		{Path: "/boot/initrd.img-" + a.Release, Absent: true},
		{Path: "/boot/initrd.img-" + b.Release, Absent: true},
	}
}

// launch starts qemu on the guest's disk.
func (tg *tinyGuest) launch() {
	tg.t.Helper()
	tg.runs++
	o := tg.img.BootDirect(tg.disk)
	o.Disk2 = tg.disk2
	o.Append += " kxtest.provider=1" + tg.extra
	o.ConsoleLog = filepath.Join(tg.dir, fmt.Sprintf("console-%d.log", tg.runs))
	o.MaxKernels = 60
	o.Timeout = 15 * time.Minute
	if tg.boot != nil {
		tg.boot(&o)
	}
	g, err := harness.Start(o)
	if err != nil {
		tg.t.Fatal(err)
	}
	tg.slot.add(g)
	tg.g = g
	tg.t.Cleanup(func() {
		g.Kill()
		if tg.t.Failed() {
			tg.t.Logf("whole console of run %d (%s):\n%s", tg.runs, o.ConsoleLog, g.Console())
		}
	})
}

// powerCut kills qemu at once, like pulling the plug, and starts the
// machine again with extra as the provider's added parameters.
func (tg *tinyGuest) powerCut(extra string) {
	tg.t.Helper()
	tg.g.Kill()
	tg.t.Logf("power cut at %v", tg.g.Elapsed().Round(100*time.Millisecond))
	tg.extra = extra
	tg.launch()
}

// at waits for the end of boot n, checks that it ran on release and what
// every boot of a disk image reports (disk_test.go).
func (tg *tinyGuest) at(n int, release string) *harness.Report {
	tg.t.Helper()
	s := tg.guest.at(n, release)
	tg.checkBoot(s, n, tg.img)
	return s
}

// has fails the test unless step name of boot n printed want.
func (gu *guest) has(n int, name, want string) {
	gu.t.Helper()
	st := gu.step(fmt.Sprint(n), name)
	if !strings.Contains(st.Stdout(), want) {
		gu.errorf("boot %d: %s lacks %q:\n%s", n, name, want, st.Stdout())
	}
}

// events is the history's events with their try numbers, e.g. "hop/1
// failed/1 fallback/0", from a `kxboot history --json` step.
func (gu *guest) events(n int, name string) string {
	gu.t.Helper()
	return historyEvents(gu.ok(fmt.Sprint(n), name).Out)
}

// historyEvents reads the lines of kxboot history --json as
// "event/try ...", try 0 where there is none.
func historyEvents(lines []string) string {
	var out []string
	for _, l := range lines {
		ev := jsonField(l, "event")
		try := jsonField(l, "try")
		if try == "" {
			try = "0"
		}
		out = append(out, ev+"/"+try)
	}
	return strings.Join(out, " ")
}

// jsonField pulls one field out of a JSON line without a full decode.
func jsonField(line, key string) string {
	i := strings.Index(line, `"`+key+`":`)
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+3:]
	if strings.HasPrefix(v, `"`) {
		end := strings.Index(v[1:], `"`)
		return v[1 : end+1]
	}
	end := strings.IndexAny(v, ",}")
	return v[:end]
}

// kernelsWere fails the test unless the kernels started so far are want.
func (gu *guest) kernelsWere(want ...string) {
	gu.t.Helper()
	if got := gu.g.Kernels(); strings.Join(got, " ") != strings.Join(want, " ") {
		gu.errorf("kernels started: %v; want %v", got, want)
	}
}
