// Package doctor answers "will kexec work here, and if not, why" with one
// line per check, each ok, warn or fail, and a remedy. It only reads.
package doctor

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/kxboot/kxboot/internal/blockdev"
	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/initsys"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/kimage"
	"github.com/kxboot/kxboot/internal/plan"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/watchdog"
)

// Status of one check.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is one line of the report.
type Check struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	Remedy  string `json:"remedy,omitempty"`
}

// Input is what the checks look at.
type Input struct {
	FS   rootfs.FS
	Euid int
	Arch string // GOARCH
	// Engine, when set, is asked which load syscalls the running kernel
	// has and, on arm64, whether a kexec_load can be built here.
	Engine *kexec.Engine
	// Boot is the config and plan as the command's boot state read them
	// (bootstate); nil reads them here.
	Boot *chain.Input
}

// Run runs every check in order.
func Run(in Input) []Check {
	var out []Check
	add := func(c Check) { out = append(out, c) }
	add(checkRoot(in))
	if err := kexec.CheckArch(in.Arch); err != nil {
		add(Check{"architecture", Fail, err.Error(), ""})
		return out
	}
	release, _ := in.FS.ReadString("/proc/sys/kernel/osrelease")
	lock := kexec.Lockdown(in.FS)
	sys := checkKernelConfig(in, release, lock)
	add(sys.Check)
	if sys.load == kexec.Yes && sys.file != kexec.Yes && in.Engine != nil {
		add(checkSegments(in))
	}
	add(checkLoadDisabled(in))
	add(checkLockdown(lock))
	add(checkSecureBoot(in))
	add(checkWatchdog(in))
	add(checkRebootPath(in))

	boot := in.Boot
	if boot == nil {
		g := chain.Gather(in.FS)
		boot = &g
	}
	cfg := boot.Config
	if boot.ConfigErr != nil {
		add(Check{"config", Fail, boot.ConfigErr.Error(), "fix the file as the message says; kxboot will not load anything until then"})
		return out
	}
	if cfg.Path == "" {
		add(Check{"config", OK, fmt.Sprintf("no %s: the newest installed kernel and the running command line apply", config.Path), ""})
	} else {
		msg := fmt.Sprintf("%s is read (%s format)", cfg.Path, cfg.Format)
		if len(cfg.Warnings) > 0 {
			add(Check{"config", Warn, msg + "; " + strings.Join(cfg.Warnings, "; "), "run kxboot install to move to /etc/default/kxboot"})
		} else {
			add(Check{"config", OK, msg, ""})
		}
	}
	for _, sl := range cfg.Slots {
		add(checkSlot(in, cfg, sl))
	}
	if c, ok := checkWatchdogTimeout(in, cfg); ok {
		add(c)
	}
	if c, ok := checkHopWatchdog(in, boot); ok {
		add(c)
	}
	if boot.PlanErr != nil {
		add(Check{"plan", Fail, boot.PlanErr.Error(), ""})
		return out
	}
	p := boot.Base
	size, c := checkKernel(in, p)
	add(c)
	if c, ok := checkNextKexec(in, p, release); ok {
		add(c)
	}
	isize, c := checkInitrds(in, p)
	add(c)
	add(checkRootDevice(in, p))
	add(checkMemory(in, size+isize))
	if c, ok := checkNextWatchdog(in, p); ok {
		add(c)
	}
	return out
}

// checkSlot says whether a slot can be booted: its root found and mounted
// (read-only, for the moment of the check), its kernel an image for this
// machine, its command line.
func checkSlot(in Input, cfg *config.Config, sl config.Slot) Check {
	name := "slot " + sl.Name
	c := chain.SlotCandidate(in.FS, cfg, sl, "")
	if c.Err != nil {
		return Check{name, Fail, c.Err.Error(), fmt.Sprintf("fix SLOT_%s_* in %s; kxboot slot set-next %s would not boot it", sl.Name, cfg.Path, sl.Name)}
	}
	where := ""
	if sl.Root != "" {
		where = " on " + sl.Root
	}
	rel := ""
	if c.Boot.Release != "" {
		rel = " (" + c.Boot.Release + ")"
	}
	return Check{name, OK, fmt.Sprintf("%s%s%s, command line: %s", c.Boot.Kernel, rel, where, c.Boot.Cmdline), ""}
}

// checkNextWatchdog says whether the kernel to hop into can stop the
// watchdog kxboot arms before the hop; nothing when there is no watchdog
// or it cannot be told.
func checkNextWatchdog(in Input, p plan.Plan) (Check, bool) {
	if !in.FS.Exists(watchdog.Device) {
		return Check{}, false
	}
	ok, known, why := watchdog.NextKernelCanStop(in.FS, p.Release)
	switch {
	case !known:
		return Check{}, false
	case !ok:
		return Check{"watchdog driver", Warn, why + "; kxboot does not arm it for that kernel",
			"install that kernel's module package (the one with " + watchdog.Driver(in.FS) + "), or hop into a kernel that has the driver"}, true
	}
	return Check{"watchdog driver", OK, fmt.Sprintf("kernel %s has the %s driver: it can stop the watchdog armed before the hop", p.Release, watchdog.Driver(in.FS)), ""}, true
}

func checkRoot(in Input) Check {
	if in.Euid == 0 {
		return Check{"root", OK, "running as root", ""}
	}
	return Check{"root", Fail, fmt.Sprintf("running as uid %d: loading a kernel needs root", in.Euid), "run kxboot as root (sudo kxboot doctor)"}
}

// kernelConfig returns the running kernel's build options and where they
// were read from.
func kernelConfig(fsys rootfs.FS, release string) (map[string]string, string) {
	var data []byte
	src := "/boot/config-" + release
	b, err := fsys.ReadFile(src)
	if err == nil && release != "" {
		data = b
	} else if gz, err := fsys.ReadFile("/proc/config.gz"); err == nil {
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return nil, ""
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, ""
		}
		src = "/proc/config.gz"
	} else {
		return nil, ""
	}
	opts := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			opts[k] = v
		}
	}
	return opts, src
}

// syscallCheck is the kexec support check and what it found.
type syscallCheck struct {
	Check
	file, load kexec.Has
}

// checkKernelConfig says which load syscalls the running kernel has: asked
// of the kernel itself when it answers (root, kexec not disabled), else
// read from its build options, which a provider's kernel often lacks.
func checkKernelConfig(in Input, release, lock string) syscallCheck {
	const name = "kexec support"
	file, load := kexec.Unknown, kexec.Unknown
	if in.Engine != nil {
		file, load = in.Engine.Syscalls()
	}
	src := "asked the running kernel"
	if file == kexec.Unknown || load == kexec.Unknown {
		opts, from := kernelConfig(in.FS, release)
		if opts == nil {
			c := Check{name, Warn, fmt.Sprintf("the build options of %s are not readable (no /boot/config-%s, no /proc/config.gz) and the kernel did not answer the probe (run as root)", release, release), "run kxboot doctor as root"}
			if in.FS.Exists("/sys/kernel/kexec_loaded") {
				c.Message = fmt.Sprintf("the build options of %s are not readable (no /boot/config-%s, no /proc/config.gz) and the kernel did not answer the probe (not root, or kexec_load_disabled); /sys/kernel/kexec_loaded exists, so kexec is built in", release, release)
			}
			return syscallCheck{Check: c}
		}
		yesNo := func(opt string) kexec.Has {
			if opts[opt] == "y" {
				return kexec.Yes
			}
			return kexec.No
		}
		file, load, src = yesNo("CONFIG_KEXEC_FILE"), yesNo("CONFIG_KEXEC"), from
	}
	c := syscallCheck{file: file, load: load}
	switch {
	case load == kexec.Yes && file == kexec.Yes:
		c.Check = Check{name, OK, fmt.Sprintf("kexec_load and kexec_file_load are built in (%s)", src), ""}
	case file == kexec.Yes:
		c.Check = Check{name, OK, fmt.Sprintf("kexec_file_load is built in, kexec_load is not (%s)", src), ""}
	case load == kexec.Yes && lock != "":
		c.Check = Check{name, Fail, fmt.Sprintf("this kernel has only kexec_load (no CONFIG_KEXEC_FILE, %s), and its lockdown (%s) forbids kexec_load", src, lock), "boot without lockdown, or a kernel with CONFIG_KEXEC_FILE"}
	case load == kexec.Yes:
		c.Check = Check{name, OK, fmt.Sprintf("kexec_load is built in; kexec_file_load is not (CONFIG_KEXEC_FILE off, %s), so kxboot uses kexec_load", src), ""}
	default:
		c.Check = Check{name, Fail, fmt.Sprintf("this kernel was built without kexec (neither CONFIG_KEXEC nor CONFIG_KEXEC_FILE, %s), so nothing can be loaded from it", src), "boot a kernel built with CONFIG_KEXEC or CONFIG_KEXEC_FILE (most distribution kernels are)"}
	}
	return c
}

// checkSegments reads and checks what kxboot's kexec_load is built from
// (the RAM in /proc/iomem; the running device tree on arm64, the firmware's
// memory map on amd64), read-only.
func checkSegments(in Input) Check {
	const name = "kexec_load sources"
	msg, err := in.Engine.SegmentSources()
	if err != nil {
		return Check{name, Fail, "kexec_load cannot be built on this boot: " + err.Error(), "boot a kernel with kexec_file_load (CONFIG_KEXEC_FILE), which needs neither"}
	}
	return Check{name, OK, msg + "; both read and checked", ""}
}

func checkLoadDisabled(in Input) Check {
	const name = "kexec_load_disabled"
	s, err := in.FS.ReadString("/proc/sys/kernel/kexec_load_disabled")
	if err != nil {
		if in.FS.Exists("/proc/sys/kernel") {
			// /proc is there; the setting exists only with kexec built in.
			return Check{name, Warn, "there is no kernel.kexec_load_disabled: this kernel was built without kexec (CONFIG_KEXEC_CORE), see the kexec support line", ""}
		}
		return Check{name, Warn, "kernel.kexec_load_disabled is not readable: /proc is not mounted", "mount /proc (mount -t proc proc /proc)"}
	}
	if n, _ := strconv.Atoi(s); n != 0 {
		msg := "kernel.kexec_load_disabled is 1: this kernel refuses every kexec load until the next firmware boot (it cannot be set back to 0)"
		if in.FS.Exists("/etc/alpine-release") {
			return Check{name, Fail, msg + "; Alpine's kernels start with it at 1 unless the command line says kexec_load_disabled=0",
				"add kexec_load_disabled=0 to the kernel command line (default_kernel_opts in /etc/update-extlinux.conf, then update-extlinux; or GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, then grub-mkconfig -o /boot/grub/grub.cfg) and reboot through the firmware"}
		}
		return Check{name, Fail, msg,
			"remove what sets it (a file in /etc/sysctl.d, or sysctl.kernel.kexec_load_disabled=1 on the command line) and reboot through the firmware"}
	}
	return Check{name, OK, "kernel.kexec_load_disabled is 0", ""}
}

// checkRebootPath says how the running init tells the fast reboot a
// reboot from a poweroff, and warns where some reboots cannot be told.
func checkRebootPath(in Input) Check {
	init := initsys.Running(in.FS)
	how, every := init.RebootSignal(in.FS)
	if !every {
		return Check{"reboot path", Warn, fmt.Sprintf("%s: %s", init.Name(), how), "use kxboot reboot to reboot through kexec (see README, Fast reboot)"}
	}
	return Check{"reboot path", OK, fmt.Sprintf("%s: %s", init.Name(), how), ""}
}

func checkLockdown(lock string) Check {
	if lock == "" {
		return Check{"lockdown", OK, "the kernel is not in lockdown", ""}
	}
	return Check{"lockdown", Warn, fmt.Sprintf("the kernel is in lockdown (%s): kexec_load is refused and kexec_file_load accepts only signed kernels", lock),
		"use a kernel signed by a key this kernel trusts (the distribution's packages are), or boot without lockdown"}
}

// secureBootVar is the EFI global variable whose fifth byte (after four
// bytes of attributes) is 1 when Secure Boot is on.
const secureBootVar = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0a9ce0d0b8c"

func checkSecureBoot(in Input) Check {
	if !in.FS.Exists("/sys/firmware/efi") {
		return Check{"secure boot", OK, "booted without EFI: no Secure Boot", ""}
	}
	b, err := in.FS.ReadFile(secureBootVar)
	if err != nil || len(b) < 5 {
		return Check{"secure boot", OK, "EFI boot; Secure Boot state not readable (efivarfs not mounted or variable absent): assumed off", ""}
	}
	if b[4] == 1 {
		return Check{"secure boot", Warn, "Secure Boot is on: the kernel to load must be signed by a trusted key",
			"use the distribution's signed kernel package, or turn Secure Boot off in the firmware"}
	}
	return Check{"secure boot", OK, "Secure Boot is off", ""}
}

// checkWatchdog says whether the hardware watchdog kxboot arms before the
// hop will still run in the new kernel. It only reads sysfs and the command
// line: opening /dev/watchdog would start the watchdog.
func checkWatchdog(in Input) Check {
	const name = "watchdog"
	if !in.FS.Exists(watchdog.Device) {
		return Check{name, OK, "no hardware watchdog: a custom kernel that hangs before its userspace starts stays hung until the machine is power-cycled (the provider's console or API); panic=N brings back a panic, HEALTH_DEADLINE a kernel whose userspace runs but never confirms", ""}
	}
	sys := watchdog.ReadSysfs(in.FS)
	desc := sys.Describe()
	if sys.Nowayout == 1 {
		return Check{name, Warn, desc + " has nowayout set: once started it can never be stopped, so kxboot does not arm it and a hung custom kernel is not reset by it",
			"load the watchdog driver with nowayout=0 (its module option; on the command line for example iTCO_wdt.nowayout=0)"}
	}
	ok, why := watchdog.Survives(in.FS)
	if !ok {
		remedy := "add watchdog.stop_on_reboot=0 to the provider kernel's command line, if the provider lets you"
		if !sys.Present && in.FS.Exists("/sys/class/watchdog") {
			remedy = "" // a legacy driver: the parameter does not reach it
		}
		return Check{name, Warn, desc + "; " + why + ", so the watchdog kxboot arms before the hop would not guard the custom kernel", remedy}
	}
	return Check{name, OK, desc + "; " + why + ", so it guards the custom kernel while it boots", ""}
}

// checkHopWatchdog says, on a kernel that came through kxboot's hop and
// has a watchdog, whether that hop armed it (the try record keeps it).
// Where it did not, this kernel hung before its userspace would not have
// been reset. The usual cause is order: kxboot, as PID 1 or the earliest
// service, runs before udev loads the driver, so /dev/watchdog does not
// exist yet when it hops, although it does by the time doctor runs.
// Nothing when there is no watchdog, this boot did not come through
// kxboot, or the watchdog is off (WATCHDOG=no, nowayout: other checks say
// so).
func checkHopWatchdog(in Input, boot *chain.Input) (Check, bool) {
	const name = "watchdog at the hop"
	cfg := boot.Config
	if !in.FS.Exists(watchdog.Device) || cfg == nil || !cfg.Watchdog || boot.RecordErr != nil || watchdog.ReadSysfs(in.FS).Nowayout == 1 {
		return Check{}, false
	}
	r := boot.Record
	if _, via := boot.Running.Chained(cfg.Marker); !via || r.HopTime.IsZero() {
		return Check{}, false
	}
	when := r.HopTime.Local().Format("2006-01-02 15:04:05")
	if r.Watchdog {
		return Check{name, OK, fmt.Sprintf("the hop into this kernel (%s) armed the watchdog", when), ""}, true
	}
	return Check{name, Warn, fmt.Sprintf("this kernel came through kxboot's hop (%s), which did not arm the watchdog although this kernel has one: usually there was no %s yet when kxboot ran (the previous boot's kernel log has kxboot's \"watchdog:\" line), so a hang of this kernel before its userspace would not have been reset", when, watchdog.Device),
		"have the watchdog's driver loaded before kxboot runs: built into the provider's kernel, or loaded by its initramfs (initramfs-tools: add the module to /etc/initramfs-tools/modules, then update-initramfs -u)"}, true
}

// checkWatchdogTimeout says how long the watchdog armed before a hop runs:
// HEALTH_DEADLINE, which must fit the driver's range (sysfs min_timeout
// and max_timeout). Beyond the maximum Arm takes the maximum, and a kernel
// still booting then is reset, its try counted as failed. Nothing when
// there is no watchdog.
func checkWatchdogTimeout(in Input, cfg *config.Config) (Check, bool) {
	const name = "watchdog timeout"
	if !in.FS.Exists(watchdog.Device) {
		return Check{}, false
	}
	if !cfg.Watchdog {
		return Check{name, OK, "WATCHDOG=no: kxboot does not arm the watchdog before a hop", ""}, true
	}
	sys := watchdog.ReadSysfs(in.FS)
	d := cfg.HealthDeadline
	switch {
	case sys.MaxTimeout > 0 && d > sys.MaxTimeout:
		return Check{name, Warn, fmt.Sprintf("HEALTH_DEADLINE=%d is longer than the longest timeout of %s (%d s): kxboot arms it for %d s, so a kernel still booting after that is reset and its try counted as failed", d, sys.Describe(), sys.MaxTimeout, sys.MaxTimeout),
			fmt.Sprintf("set HEALTH_DEADLINE=%d (or less) in %s, or WATCHDOG=no", sys.MaxTimeout, cfg.Path)}, true
	case sys.MinTimeout > 0 && d < sys.MinTimeout:
		return Check{name, OK, fmt.Sprintf("HEALTH_DEADLINE=%d is shorter than the shortest timeout of %s (%d s): kxboot arms it for %d s, and a hang is reset that much later", d, sys.Describe(), sys.MinTimeout, sys.MinTimeout), ""}, true
	case sys.MaxTimeout > 0:
		return Check{name, OK, fmt.Sprintf("armed for HEALTH_DEADLINE=%d s before a hop, within the %d-%d s %s takes; the kernel hopped into must load its watchdog driver (or confirm) within that time", d, max(sys.MinTimeout, 0), sys.MaxTimeout, sys.Describe()), ""}, true
	}
	return Check{name, OK, fmt.Sprintf("armed for HEALTH_DEADLINE=%d s before a hop; %s does not publish its range (no max_timeout in sysfs), so the log of each hop says what the driver took", d, sys.Describe()), ""}, true
}

func checkKernel(in Input, p plan.Plan) (int64, Check) {
	const name = "kernel"
	info, err := kimage.Identify(in.FS.Path(p.Kernel), p.Kernel)
	if err != nil {
		return 0, Check{name, Fail, err.Error(), ""}
	}
	if err := in.FS.Trusted(p.Kernel); err != nil {
		return 0, Check{name, Fail, err.Error(), ""}
	}
	if arch := info.Kind.Arch(); arch != in.Arch {
		return 0, Check{name, Fail, fmt.Sprintf("%s is an %s kernel (%s) and this machine is %s", p.Kernel, arch, info.Kind, in.Arch), "name a kernel built for " + in.Arch}
	}
	st, _ := os.Stat(in.FS.Path(p.Kernel))
	size := st.Size()
	if info.Kind == kimage.Gzip || info.Kind == kimage.EFIZboot {
		size *= 4 // unpacked in memory first; a rough guess
	}
	rel := ""
	if p.Release != "" {
		rel = " " + p.Release
	}
	return size, Check{name, OK, fmt.Sprintf("%s is an %s%s (from %s)", p.Kernel, info.Kind, rel, p.KernelFrom), ""}
}

// checkNextKexec says whether the kernel to be loaded, when it is not the
// running one and its build options are in /boot, has kexec itself: from a
// kernel without it, kxboot can neither fast-reboot nor hop again.
func checkNextKexec(in Input, p plan.Plan, running string) (Check, bool) {
	const name = "next kernel's kexec"
	if p.Release == "" || p.Release == running {
		return Check{}, false
	}
	opts, from := kernelConfig(in.FS, p.Release)
	if opts == nil || from != "/boot/config-"+p.Release {
		return Check{}, false
	}
	if opts["CONFIG_KEXEC"] != "y" && opts["CONFIG_KEXEC_FILE"] != "y" {
		return Check{name, Warn, fmt.Sprintf("%s was built without kexec (neither CONFIG_KEXEC nor CONFIG_KEXEC_FILE in %s): once it runs, no fast reboot or hop can start from it", p.Release, from),
			"install a kernel built with CONFIG_KEXEC_FILE (most distribution kernels are)"}, true
	}
	return Check{name, OK, fmt.Sprintf("%s has kexec (%s)", p.Release, from), ""}, true
}

func checkInitrds(in Input, p plan.Plan) (int64, Check) {
	const name = "initrd"
	if len(p.Initrds) == 0 {
		return 0, Check{name, Warn, "no initrd will be loaded (" + p.InitrdsFrom + "): the new kernel must mount its root by itself",
			"name the initrd with --initrd or INITRD= if the kernel needs one (most distribution kernels do)"}
	}
	var total int64
	for _, ir := range p.Initrds {
		st, err := os.Stat(in.FS.Path(ir))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return 0, Check{name, Fail, fmt.Sprintf("initrd %s does not exist (%s)", ir, p.InitrdsFrom), "fix INITRD= or --initrd"}
			}
			return 0, Check{name, Fail, fmt.Sprintf("initrd %s: %v", ir, err), ""}
		}
		if err := in.FS.Trusted(ir); err != nil {
			return 0, Check{name, Fail, err.Error(), ""}
		}
		total += st.Size()
	}
	return total, Check{name, OK, fmt.Sprintf("%s (%d MiB, from %s)", strings.Join(p.Initrds, " + "), total>>20, p.InitrdsFrom), ""}
}

func checkRootDevice(in Input, p plan.Plan) Check {
	const name = "root="
	root, ok := cmdline.Parse(p.Cmdline).Get("root")
	if !ok {
		return Check{name, Warn, "the new command line has no root=: the new kernel's initrd must find the root file system by itself", "add root=UUID=... with --append or APPEND= if it does not"}
	}
	dev, err := blockdev.Resolve(in.FS, root)
	switch {
	case errors.Is(err, blockdev.ErrUnchecked):
		return Check{name, Warn, err.Error(), ""}
	case err != nil:
		return Check{name, Fail, err.Error(), "fix root= with --append root=... or APPEND= (ls -l /dev/disk/by-uuid shows the names)"}
	}
	return Check{name, OK, fmt.Sprintf("root=%s is %s", root, dev), ""}
}

func checkMemory(in Input, need int64) Check {
	const name = "memory"
	b, err := in.FS.ReadFile("/proc/meminfo")
	if err != nil {
		return Check{name, Warn, "/proc/meminfo is not readable", ""}
	}
	var availKB int64 = -1
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			availKB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if availKB < 0 {
		return Check{name, Warn, "MemAvailable is missing from /proc/meminfo", ""}
	}
	avail := availKB << 10
	msg := fmt.Sprintf("%d MiB available for %d MiB of kernel and initrds", avail>>20, need>>20)
	switch {
	case avail < need:
		return Check{name, Fail, msg, "free memory, or load earlier in the boot"}
	case avail < 2*need+64<<20:
		return Check{name, Warn, msg + ": little room, and kexec needs it contiguous", "free memory, or load earlier in the boot"}
	}
	return Check{name, OK, msg, ""}
}

// Failed says whether any check failed.
func Failed(cs []Check) bool {
	for _, c := range cs {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Write prints the report, one line a check and its remedy under it.
func Write(w io.Writer, cs []Check) {
	for _, c := range cs {
		fmt.Fprintf(w, "%-4s  %-19s %s\n", c.Status, c.Name, c.Message)
		if c.Remedy != "" && c.Status != OK {
			fmt.Fprintf(w, "      %-19s fix: %s\n", "", c.Remedy)
		}
	}
}
