package doctor

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/fdt"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/plan"

	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
	"github.com/kxboot/kxboot/internal/testimg"
	"github.com/kxboot/kxboot/internal/tries"
	"github.com/kxboot/kxboot/internal/watchdog"
)

func withWatchdog(extra map[string]string) map[string]string {
	files := map[string]string{
		watchdog.Device:               "",
		watchdog.SysDir + "/identity": "iTCO_wdt\n",
		watchdog.SysDir + "/timeout":  "30\n",
		watchdog.SysDir + "/state":    "inactive\n",
		watchdog.SysDir + "/nowayout": "0\n",
		"/proc/cmdline":               "root=/dev/vda1 ro\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	return files
}

func TestCheckWatchdog(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		status Status
		line   string // as Write prints it
		remedy string
	}{
		{"none", map[string]string{"/proc/cmdline": "ro\n"}, OK,
			"ok    watchdog            no hardware watchdog: a custom kernel that hangs before its userspace starts stays hung until the machine is power-cycled (the provider's console or API); panic=N brings back a panic, HEALTH_DEADLINE a kernel whose userspace runs but never confirms\n", ""},
		{"stopped at the hop", withWatchdog(map[string]string{watchdog.ParamPath: "-1\n"}), Warn,
			"warn  watchdog            watchdog0 (iTCO_wdt, timeout 30 s, inactive); the watchdog core's stop_on_reboot is -1 (/sys/module/watchdog/parameters/stop_on_reboot): the driver decides, and most drivers have the kernel stop the watchdog at the kexec, so the watchdog kxboot arms before the hop would not guard the custom kernel\n",
			"add watchdog.stop_on_reboot=0 to the provider kernel's command line, if the provider lets you"},
		{"stopped at the hop, no sysfs parameter", withWatchdog(nil), Warn,
			"warn  watchdog            watchdog0 (iTCO_wdt, timeout 30 s, inactive); stop_on_reboot is not set", "watchdog.stop_on_reboot=0"},
		{"survives (sysfs)", withWatchdog(map[string]string{watchdog.ParamPath: "0\n"}), OK,
			"ok    watchdog            watchdog0 (iTCO_wdt, timeout 30 s, inactive); the watchdog core's stop_on_reboot is 0 (/sys/module/watchdog/parameters/stop_on_reboot): the kernel leaves the watchdog running through the kexec, so it guards the custom kernel while it boots\n", ""},
		{"survives (command line)", withWatchdog(map[string]string{"/proc/cmdline": "root=/dev/vda1 watchdog.stop_on_reboot=0\n"}), OK,
			"ok    watchdog            watchdog0 (iTCO_wdt, timeout 30 s, inactive); the command line has watchdog.stop_on_reboot=0: the kernel leaves", ""},
		{"nowayout", withWatchdog(map[string]string{watchdog.ParamPath: "0\n", watchdog.SysDir + "/nowayout": "1\n"}), Warn,
			"warn  watchdog            watchdog0 (iTCO_wdt, timeout 30 s, inactive) has nowayout set: once started it can never be stopped, so kxboot does not arm it", "nowayout=0"},
		{"legacy driver", map[string]string{watchdog.Device: "", "/sys/class/watchdog/.keep": "", watchdog.ParamPath: "0\n"}, Warn,
			"warn  watchdog            /dev/watchdog (no /sys/class/watchdog/watchdog0: a legacy driver, or sysfs is not mounted); /dev/watchdog has no /sys/class/watchdog/watchdog0: a legacy driver", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := checkWatchdog(Input{FS: rootfstest.Tree(t, tt.files, nil)})
			if c.Name != "watchdog" || c.Status != tt.status {
				t.Errorf("check %+v; want status %s", c, tt.status)
			}
			var buf bytes.Buffer
			Write(&buf, []Check{c})
			if !strings.HasPrefix(buf.String(), tt.line) {
				t.Errorf("Write:\n%s\nwant it to start with:\n%s", buf.String(), tt.line)
			}
			if (tt.remedy == "") != (c.Remedy == "") || !strings.Contains(c.Remedy, tt.remedy) {
				t.Errorf("remedy %q, want %q", c.Remedy, tt.remedy)
			}
			if Failed([]Check{c}) {
				t.Error("the watchdog check made doctor fail")
			}
		})
	}
}

// TestCheckWatchdogTimeout: the watchdog is armed for HEALTH_DEADLINE,
// which doctor holds against the driver's range.
func TestCheckWatchdogTimeout(t *testing.T) {
	ranged := func(min, max string) map[string]string {
		return withWatchdog(map[string]string{watchdog.SysDir + "/min_timeout": min, watchdog.SysDir + "/max_timeout": max})
	}
	tests := []struct {
		name    string
		files   map[string]string
		conf    string
		status  Status
		want    string
		remedy  string
		noCheck bool
	}{
		{"no watchdog", map[string]string{"/proc/cmdline": "ro\n"}, "", OK, "", "", true},
		{"within", ranged("2\n", "613\n"), "HEALTH_DEADLINE=300\n", OK,
			"armed for HEALTH_DEADLINE=300 s before a hop, within the 2-613 s watchdog0 (iTCO_wdt, timeout 30 s, inactive) takes", "", false},
		{"longer than the maximum", ranged("2\n", "613\n"), "HEALTH_DEADLINE=900\n", Warn,
			"HEALTH_DEADLINE=900 is longer than the longest timeout of watchdog0 (iTCO_wdt, timeout 30 s, inactive) (613 s): kxboot arms it for 613 s, so a kernel still booting after that is reset and its try counted as failed",
			"set HEALTH_DEADLINE=613 (or less) in /etc/default/kxboot, or WATCHDOG=no", false},
		{"shorter than the minimum", ranged("60\n", "600\n"), "HEALTH_DEADLINE=20\n", OK,
			"HEALTH_DEADLINE=20 is shorter than the shortest timeout of watchdog0 (iTCO_wdt, timeout 30 s, inactive) (60 s): kxboot arms it for 60 s", "", false},
		{"no range published", withWatchdog(nil), "", OK,
			"armed for HEALTH_DEADLINE=300 s before a hop; watchdog0 (iTCO_wdt, timeout 30 s, inactive) does not publish its range", "", false},
		{"not armed", ranged("2\n", "613\n"), "WATCHDOG=no\nHEALTH_DEADLINE=900\n", OK,
			"WATCHDOG=no: kxboot does not arm the watchdog before a hop", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.conf != "" {
				tt.files[config.Path] = tt.conf
			}
			fsys := rootfstest.Tree(t, tt.files, nil)
			cfg, err := config.Load(fsys)
			if err != nil {
				t.Fatal(err)
			}
			c, ok := checkWatchdogTimeout(Input{FS: fsys}, cfg)
			if ok == tt.noCheck {
				t.Fatalf("check given: %v, want %v (%+v)", ok, !tt.noCheck, c)
			}
			if !ok {
				return
			}
			if c.Status != tt.status || !strings.HasPrefix(c.Message, tt.want) || c.Remedy != tt.remedy {
				t.Errorf("check %+v;\nwant status %s, detail starting %q, remedy %q", c, tt.status, tt.want, tt.remedy)
			}
		})
	}
}

// Run has the check, and a machine without a watchdog does not fail for it.
func TestRunHasWatchdogCheck(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{"/proc/cmdline": "ro\n"}, nil)
	var found bool
	for _, c := range Run(Input{FS: fsys, Euid: 0, Arch: "amd64"}) {
		if c.Name == "watchdog" {
			found = true
			if c.Status != OK {
				t.Errorf("watchdog check %+v", c)
			}
		}
	}
	if !found {
		t.Error("Run has no watchdog check")
	}
}

// On arm64 without kexec_file_load, doctor reads and checks what the
// kexec_load would be built from, and fails when it could not be.
func TestSegmentSources(t *testing.T) {
	tree := &fdt.Tree{Root: &fdt.Node{}}
	tree.Ensure("/chosen").SetU64("linux,uefi-mmap-start", 0x7c120000)
	iomem := "40000000-7fffffff : System RAM\n  40210000-4158ffff : Kernel code\n  7c120000-7c120fff : reserved\n"
	tests := []struct {
		name   string
		files  map[string]string
		status Status
		want   string
	}{
		{"uefi", map[string]string{"/proc/iomem": iomem, "/sys/firmware/fdt": string(tree.Marshal())}, OK,
			"ok    kexec_load sources  RAM from /proc/iomem (2 free ranges, 1023 MiB), device tree from /sys/firmware/fdt (" + fmt.Sprint(len(tree.Marshal())) + " bytes, a UEFI boot: the tree's EFI memory map properties are passed on, so the next kernel finds its memory); both read and checked"},
		{"no device tree", map[string]string{"/proc/iomem": iomem}, Fail,
			"fail  kexec_load sources  kexec_load cannot be built on this boot: /sys/firmware/fdt is not readable"},
		{"damaged device tree", map[string]string{"/proc/iomem": iomem, "/sys/firmware/fdt": "junk"}, Fail,
			"fail  kexec_load sources  kexec_load cannot be built on this boot: /sys/firmware/fdt cannot be read: device tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.files["/proc/cmdline"] = "ro\n"
			fsys := rootfstest.Tree(t, tt.files, nil)
			eng := &kexec.Engine{FS: fsys, Sys: &kexec.Fake{ProbeFile: unix.ENOSYS}, Arch: "arm64"}
			var found []Check
			for _, c := range Run(Input{FS: fsys, Euid: 0, Arch: "arm64", Engine: eng}) {
				if c.Name == "kexec_load sources" || c.Name == "kexec support" {
					found = append(found, c)
				}
			}
			if len(found) != 2 || !strings.Contains(found[0].Message, "kexec_file_load is not (CONFIG_KEXEC_FILE off, asked the running kernel)") {
				t.Fatalf("checks %+v; want the probe's answer and the sources check", found)
			}
			var buf bytes.Buffer
			Write(&buf, found[1:])
			if found[1].Status != tt.status || !strings.HasPrefix(buf.String(), tt.want) {
				t.Errorf("check:\n%s\nwant %s and it to start with:\n%s", buf.String(), tt.status, tt.want)
			}
		})
	}
}

func TestArm32(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{"/proc/cmdline": "ro\n"}, nil)
	cs := Run(Input{FS: fsys, Euid: 0, Arch: "arm"})
	last := cs[len(cs)-1]
	if last.Name != "architecture" || last.Status != Fail || !strings.Contains(last.Message, "32-bit ARM") || !Failed(cs) {
		t.Errorf("checks %+v; want them to end failing on the architecture", cs)
	}
}

// TestAlpine: Alpine's kexec_load_disabled default gets Alpine's fix, and
// an upstream busybox init is a warning that only kxboot reboot kexecs.
func TestAlpine(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{
		"/etc/alpine-release":                  "3.21.0\n",
		"/proc/sys/kernel/kexec_load_disabled": "1\n",
		"/run/openrc/softlevel":                "default",
		"/bin/busybox":                         "\x7fELF ctrlaltdel\x00shutdown\x00restart\x00",
		"/etc/init.d/mount-ro":                 "#!/sbin/openrc-run\n",
	}, map[string]string{
		"/proc/1/exe":                      "/bin/busybox",
		"/etc/runlevels/shutdown/mount-ro": "/etc/init.d/mount-ro",
	})
	c := checkLoadDisabled(Input{FS: fsys})
	if c.Status != Fail || !strings.Contains(c.Message, "Alpine's kernels start with it at 1") || !strings.Contains(c.Remedy, "kexec_load_disabled=0") || !strings.Contains(c.Remedy, "/etc/update-extlinux.conf") {
		t.Errorf("kexec_load_disabled on Alpine: %+v", c)
	}
	c = checkRebootPath(Input{FS: fsys})
	if c.Status != Warn || !strings.HasPrefix(c.Message, "openrc: busybox init runs the same ::shutdown: lines") || !strings.Contains(c.Remedy, "kxboot reboot") {
		t.Errorf("reboot path under upstream busybox: %+v", c)
	}
	rootfstest.Write(t, fsys, "/bin/busybox", []byte("\x7fELF ctrlaltdel\x00shutdown\x00reboot\x00restart\x00"))
	if c = checkRebootPath(Input{FS: fsys}); c.Status != OK || !strings.Contains(c.Message, "::reboot:") {
		t.Errorf("reboot path under Alpine's busybox: %+v", c)
	}
}

// TestNextWatchdog: doctor warns when the kernel to hop into has no driver
// for the watchdog kxboot would arm, and says nothing it cannot tell.
func TestNextWatchdog(t *testing.T) {
	fsys := rootfstest.Tree(t, withWatchdog(map[string]string{
		"/lib/modules/6.1.0-57-cloud-amd64/modules.dep": "kernel/drivers/watchdog/softdog.ko:\n",
		"/lib/modules/6.1.0-57-amd64/modules.builtin":   "kernel/drivers/watchdog/iTCO_wdt.ko\n",
	}), map[string]string{watchdog.SysDir + "/device/driver": "../../../bus/platform/drivers/iTCO_wdt"})
	in := Input{FS: fsys}
	if c, ok := checkNextWatchdog(in, plan.Plan{Release: "6.1.0-57-cloud-amd64"}); !ok || c.Status != Warn || !strings.Contains(c.Message, "has no iTCO_wdt driver") {
		t.Errorf("a kernel without the driver: %+v", c)
	}
	if c, ok := checkNextWatchdog(in, plan.Plan{Release: "6.1.0-57-amd64"}); !ok || c.Status != OK {
		t.Errorf("a kernel with the driver built in: %+v", c)
	}
	if c, ok := checkNextWatchdog(in, plan.Plan{Release: "6.1.0-99-amd64"}); ok {
		t.Errorf("a kernel with no module tree: %+v", c)
	}
}

// TestSlots: a line per slot; a slot whose kernel is missing fails with
// the setting to fix.
func TestSlots(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{
		"/proc/cmdline":       "root=/dev/vda1 ro\n",
		"/boot/vmlinuz-a":     string(testimg.BzImage(16384, "6.1.0-56-cloud-amd64")),
		"/etc/default/kxboot": "SLOT_A_KERNEL=/boot/vmlinuz-a\nSLOT_B_KERNEL=/boot/vmlinuz-b\n",
	}, nil)
	got := map[string]Check{}
	for _, c := range Run(Input{FS: fsys, Euid: 0, Arch: "amd64"}) {
		got[c.Name] = c
	}
	if a := got["slot A"]; a.Status != OK || !strings.HasPrefix(a.Message, "/boot/vmlinuz-a (6.1.0-56-cloud-amd64), command line: root=/dev/vda1 ro panic=10 kxboot.chained=1") {
		t.Errorf("slot A: %+v", a)
	}
	if b := got["slot B"]; b.Status != Fail || !strings.Contains(b.Message, "/boot/vmlinuz-b does not exist") || !strings.Contains(b.Remedy, "fix SLOT_B_* in /etc/default/kxboot") {
		t.Errorf("slot B: %+v", b)
	}
}

// TestCheckHopWatchdog: on a kernel that came through the hop and has a
// watchdog, doctor says whether the hop armed it, from the try record.
func TestCheckHopWatchdog(t *testing.T) {
	hop := time.Date(2026, 12, 1, 10, 2, 11, 0, time.Local)
	via := map[string]string{"/proc/cmdline": "root=/dev/vda1 ro kxboot.chained=1\n"}
	tests := []struct {
		name    string
		files   map[string]string
		conf    string
		rec     tries.Record
		status  Status
		want    string
		noCheck bool
	}{
		{"armed", withWatchdog(via), "", tries.Record{HopTime: hop, Watchdog: true}, OK,
			"the hop into this kernel (2026-12-01 10:02:11) armed the watchdog", false},
		{"not armed", withWatchdog(via), "", tries.Record{HopTime: hop}, Warn,
			"this kernel came through kxboot's hop (2026-12-01 10:02:11), which did not arm the watchdog although this kernel has one: usually there was no /dev/watchdog yet when kxboot ran", false},
		{"not through kxboot", withWatchdog(nil), "", tries.Record{HopTime: hop}, OK, "", true},
		{"no hop recorded", withWatchdog(via), "", tries.Record{}, OK, "", true},
		{"no watchdog", via, "", tries.Record{HopTime: hop}, OK, "", true},
		{"WATCHDOG=no", withWatchdog(via), "WATCHDOG=no\n", tries.Record{HopTime: hop}, OK, "", true},
		{"nowayout", withWatchdog(map[string]string{"/proc/cmdline": via["/proc/cmdline"], watchdog.SysDir + "/nowayout": "1\n"}), "", tries.Record{HopTime: hop}, OK, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.conf != "" {
				tt.files[config.Path] = tt.conf
			}
			fsys := rootfstest.Tree(t, tt.files, nil)
			boot := chain.Gather(fsys)
			boot.Record, boot.RecordErr = tt.rec, nil
			c, ok := checkHopWatchdog(Input{FS: fsys}, &boot)
			if ok == tt.noCheck {
				t.Fatalf("check given: %v, want %v (%+v)", ok, !tt.noCheck, c)
			}
			if !ok {
				return
			}
			if c.Status != tt.status || !strings.HasPrefix(c.Message, tt.want) || (c.Remedy == "") != (tt.status == OK) {
				t.Errorf("check %+v;\nwant status %s, detail starting %q, a remedy only with a warning", c, tt.status, tt.want)
			}
		})
	}
}

func TestCheckLoadDisabledWithoutKexec(t *testing.T) {
	// /proc is mounted but the kernel has no kexec: no sysctl to read.
	fsys := rootfstest.Tree(t, map[string]string{"/proc/sys/kernel/osrelease": "6.1.0\n"}, nil)
	c := checkLoadDisabled(Input{FS: fsys})
	if c.Status != Warn || !strings.Contains(c.Message, "built without kexec") || strings.Contains(c.Message, "/proc is not mounted") {
		t.Errorf("no kexec in the kernel: %+v", c)
	}
	c = checkLoadDisabled(Input{FS: rootfstest.Tree(t, map[string]string{"/etc/hostname": "x\n"}, nil)})
	if !strings.Contains(c.Message, "/proc is not mounted") || c.Remedy == "" {
		t.Errorf("no /proc: %+v", c)
	}
}
