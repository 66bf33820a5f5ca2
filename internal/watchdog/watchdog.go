// Package watchdog arms the hardware watchdog before the hop into the
// owner's kernel and stops it again once that kernel is confirmed good.
//
// The plan: just before kexec, Arm opens /dev/watchdog (which starts it),
// sets a timeout, pings it once and closes it without the magic character,
// so the watchdog keeps counting down through the kexec. If the new kernel
// hangs, the hardware resets the machine and the provider's kernel comes
// back from the firmware. If it boots, its init (systemd's
// RuntimeWatchdogSec, or a watchdog daemon) may take the watchdog over; if
// nothing did by the time kxboot mark-good confirms the boot, Release stops
// it with the magic close, so a healthy machine is not reset.
//
// What the Linux watchdog core does, and this package relies on
// (drivers/watchdog/watchdog_dev.c and watchdog_core.c):
//   - /dev/watchdog is the legacy node of watchdog0, and opening it starts
//     the watchdog. It is single-open: a second open fails with EBUSY.
//   - Closing it stops the watchdog only if the magic character 'V' was the
//     last thing written (or if the driver does not set WDIOF_MAGICCLOSE, in
//     which case every close stops it), and never when nowayout is set.
//     Otherwise the kernel logs "watchdog did not stop!" and it keeps
//     running.
//   - At a reboot, and kexec is one (kernel_restart_prepare sends the reboot
//     notifiers SYS_RESTART, which is SYS_DOWN), the core stops every
//     watchdog whose driver asked for it with watchdog_stop_on_reboot(),
//     which most do, unless the core's module parameter stop_on_reboot is 0
//     (watchdog.stop_on_reboot=0 on the command line). Drivers with a
//     shutdown hook of their own may stop it regardless. See Survives.
//   - In the new kernel, a driver that sees its watchdog already running
//     (iTCO_wdt does) lets the core ping it until a program opens it, or
//     until watchdog.open_timeout seconds if that is set (the default, 0, is
//     forever); some drivers (i6300esb) stop the hardware when they probe.
//     Either way the armed watchdog guards the hop up to the point where the
//     new kernel's driver loads; beyond that it takes
//     watchdog.open_timeout=N on the new kernel's command line.
package watchdog

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// Device is the in-machine path of the watchdog device kxboot arms.
const Device = "/dev/watchdog"

// SysDir is the sysfs directory of watchdog0, the watchdog behind Device
// (the core gives the legacy /dev/watchdog node to the watchdog with id 0).
const SysDir = "/sys/class/watchdog/watchdog0"

// Flags of watchdog_info.options (include/uapi/linux/watchdog.h), kept here
// so that the package and its fake build everywhere.
const (
	OptSetTimeout    = 0x0080 // WDIOF_SETTIMEOUT
	OptMagicClose    = 0x0100 // WDIOF_MAGICCLOSE
	OptKeepalivePing = 0x8000 // WDIOF_KEEPALIVEPING
	// OptCardReset in bootstatus: the last reboot was caused by the
	// watchdog (WDIOF_CARDRESET). i6300esb and iTCO_wdt read it from the
	// chip when they probe.
	OptCardReset = 0x0020
)

var (
	// ErrNoWatchdog means there is no /dev/watchdog (or no driver behind
	// it). It is not a failure: the caller logs "no watchdog" and hops.
	ErrNoWatchdog = errors.New("no hardware watchdog (" + Device + " is missing)")
	// ErrBusy means another program holds /dev/watchdog open.
	ErrBusy = errors.New(Device + " is held open by another program")
	// ErrNowayout means the watchdog cannot be stopped once started.
	ErrNowayout = errors.New("the watchdog has nowayout set")
	// ErrNoMagicClose means the driver stops the watchdog on every close,
	// so it cannot be left running without holding the device open.
	ErrNoMagicClose = errors.New("the watchdog driver stops the watchdog whenever " + Device + " is closed (no WDIOF_MAGICCLOSE)")
	// ErrNotStopped means the magic close did not stop the watchdog.
	ErrNotStopped = errors.New("the watchdog did not stop")
)

// Info is what WDIOC_GETSUPPORT reports.
type Info struct {
	Identity string
	Options  uint32
	Version  uint32
}

// Dev is an open watchdog device. The watchdog runs from Open on.
type Dev interface {
	// Info is WDIOC_GETSUPPORT.
	Info() (Info, error)
	// SetTimeout is WDIOC_SETTIMEOUT; it returns the timeout the driver
	// took, which it may have rounded.
	SetTimeout(seconds int) (int, error)
	// Timeout is WDIOC_GETTIMEOUT.
	Timeout() (int, error)
	// Keepalive pings the watchdog.
	Keepalive() error
	// MagicClose writes the magic character 'V' and closes, which stops
	// the watchdog unless nowayout is set.
	MagicClose() error
	// Close closes without the magic character: the watchdog keeps
	// running.
	Close() error
}

// Opener opens a watchdog device at a host path. Errors must keep the
// errno (syscall.EBUSY, ENOENT, ...) reachable with errors.Is.
type Opener interface {
	Open(path string) (Dev, error)
}

// Armed describes an armed watchdog, for the log.
type Armed struct {
	Identity  string // the driver's identity ("iTCO_wdt")
	Timeout   int    // seconds, as the driver took it
	Requested int    // seconds asked for
	Timeleft  int    // seconds left as the driver reports it after the ping; -1 unknown
	Note      string // why the timeout differs from the one asked for, if it does
}

func (a Armed) String() string {
	s := fmt.Sprintf("armed %s (%s) with a %d s timeout", Device, a.Identity, a.Timeout)
	if a.Timeout != a.Requested {
		s += fmt.Sprintf(" (asked for %d s", a.Requested)
		if a.Note != "" {
			s += "; " + a.Note
		}
		s += ")"
	}
	if a.Timeleft >= 0 && a.Timeleft < a.Timeout {
		s += fmt.Sprintf("; the driver reports %d s left", a.Timeleft)
	}
	return s
}

// Sysfs is what /sys/class/watchdog/watchdog0 says; empty fields and -1
// for what it does not (no sysfs, a legacy driver, CONFIG_WATCHDOG_SYSFS
// off).
type Sysfs struct {
	Present    bool
	Identity   string
	State      string // "active" or "inactive"
	Timeout    int
	MinTimeout int
	MaxTimeout int
	Timeleft   int
	Nowayout   int // 1, 0, or -1 unknown
	Bootstatus int // WDIOF_* flags of the last reboot's cause; -1 unknown
}

// FiredLastBoot says whether the driver reports that the watchdog caused
// the reset this boot came from; false when it does not say.
func (s Sysfs) FiredLastBoot() bool {
	return s.Bootstatus > 0 && s.Bootstatus&OptCardReset != 0
}

// ReadSysfs reads watchdog0's sysfs attributes.
func ReadSysfs(fsys rootfs.FS) Sysfs {
	s := Sysfs{Present: fsys.Exists(SysDir), Timeout: -1, MinTimeout: -1, MaxTimeout: -1, Timeleft: -1, Nowayout: -1, Bootstatus: -1}
	if !s.Present {
		return s
	}
	s.Identity, _ = fsys.ReadString(SysDir + "/identity")
	s.State, _ = fsys.ReadString(SysDir + "/state")
	num := func(name string) int {
		v, err := fsys.ReadString(SysDir + "/" + name)
		if err != nil {
			return -1
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return -1
		}
		return n
	}
	s.Timeout = num("timeout")
	s.MinTimeout = num("min_timeout")
	s.MaxTimeout = num("max_timeout")
	s.Timeleft = num("timeleft")
	s.Nowayout = num("nowayout")
	s.Bootstatus = num("bootstatus")
	return s
}

// Describe names watchdog0 for a report: "watchdog0 (iTCO_wdt, timeout
// 30 s)", or "/dev/watchdog" when sysfs says nothing.
func (s Sysfs) Describe() string {
	if !s.Present {
		return Device + " (no " + SysDir + ": a legacy driver, or sysfs is not mounted)"
	}
	var parts []string
	if s.Identity != "" {
		parts = append(parts, s.Identity)
	}
	if s.Timeout >= 0 {
		parts = append(parts, fmt.Sprintf("timeout %d s", s.Timeout))
	}
	if s.State != "" {
		parts = append(parts, s.State)
	}
	if len(parts) == 0 {
		return "watchdog0"
	}
	return "watchdog0 (" + strings.Join(parts, ", ") + ")"
}

// absent says whether an open error means there is no watchdog behind the
// node: no node, or a node with no driver.
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO)
}

func seconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// Arm starts the watchdog with the given timeout and leaves it running.
//
// It opens /dev/watchdog (which starts the watchdog), sets the timeout
// (the driver may round it, or refuse it; Armed says what it took), pings
// once and closes WITHOUT the magic character: the kernel then keeps the
// watchdog running with nobody feeding it ("watchdog did not stop!" in the
// kernel log is expected), so that if the kernel kxboot hops into hangs,
// the hardware resets the machine. Closing rather than holding the device
// open lets kxboot exec and hop freely, and lets the new kernel's init open
// the device. Release stops it again.
//
// Arm refuses, without opening the device, when nowayout is set: kxboot
// could never stop it again, and a healthy kernel with no program feeding
// the watchdog would be reset. It also refuses (and stops what it started)
// when the driver has no magic close, since closing would stop it anyway.
// With no /dev/watchdog it returns ErrNoWatchdog, which is not a failure.
func Arm(fsys rootfs.FS, dev Opener, timeout time.Duration) (Armed, error) {
	want := seconds(timeout)
	a := Armed{Requested: want, Timeleft: -1}
	if !fsys.Exists(Device) {
		return a, ErrNoWatchdog
	}
	sys := ReadSysfs(fsys)
	a.Identity = sys.Identity
	if sys.Nowayout == 1 {
		return a, fmt.Errorf("%w on %s (%s/nowayout is 1): once started it could never be stopped, so kxboot does not arm it", ErrNowayout, sys.Describe(), SysDir)
	}
	d, err := dev.Open(fsys.Path(Device))
	switch {
	case absent(err):
		return a, ErrNoWatchdog
	case errors.Is(err, syscall.EBUSY):
		return a, fmt.Errorf("%w (systemd's RuntimeWatchdogSec or a watchdog daemon): kxboot leaves it to that program", ErrBusy)
	case err != nil:
		return a, fmt.Errorf("open %s: %w", Device, err)
	}
	// From here the watchdog runs: every failure stops it again.
	abort := func(err error) (Armed, error) {
		if cerr := d.MagicClose(); cerr != nil {
			return a, fmt.Errorf("%w; and stopping it again failed: %v", err, cerr)
		}
		return a, err
	}
	info, err := d.Info()
	if err != nil {
		return abort(fmt.Errorf("%s: WDIOC_GETSUPPORT: %w", Device, err))
	}
	if info.Identity != "" {
		a.Identity = info.Identity
	}
	if a.Identity == "" {
		a.Identity = "unnamed driver"
	}
	if info.Options&OptMagicClose == 0 {
		return abort(fmt.Errorf("%s: %w", a.Identity, ErrNoMagicClose))
	}

	took, err := d.SetTimeout(want)
	if errors.Is(err, syscall.EINVAL) {
		// Out of the driver's range: retry at the nearest bound.
		if b := clamp(want, sys); b != want {
			a.Note = fmt.Sprintf("the driver takes %d to %d s", sys.MinTimeout, sys.MaxTimeout)
			took, err = d.SetTimeout(b)
		}
	}
	if err != nil {
		// Keep the driver's own timeout, if it says what it is.
		cur, gerr := d.Timeout()
		if gerr != nil || cur <= 0 {
			return abort(fmt.Errorf("%s (%s): cannot set the timeout (%v) nor read it (%v)", Device, a.Identity, err, gerr))
		}
		if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOTTY) {
			a.Note = "the driver's timeout is fixed"
		} else {
			a.Note = fmt.Sprintf("setting it failed: %v", err)
		}
		took = cur
	} else if took <= 0 {
		// A driver that did not write the value back.
		if cur, gerr := d.Timeout(); gerr == nil && cur > 0 {
			took = cur
		} else {
			took = want
		}
	}
	a.Timeout = took
	if err := d.Keepalive(); err != nil {
		return abort(fmt.Errorf("%s (%s): ping: %w", Device, a.Identity, err))
	}
	if s := ReadSysfs(fsys); s.Timeleft >= 0 {
		a.Timeleft = s.Timeleft
	}
	// No 'V': the watchdog keeps running after this close.
	if err := d.Close(); err != nil {
		return a, fmt.Errorf("close %s: %w", Device, err)
	}
	return a, nil
}

// clamp brings seconds into the range sysfs gives, where it gives one.
func clamp(want int, s Sysfs) int {
	if s.MaxTimeout > 0 && want > s.MaxTimeout {
		return s.MaxTimeout
	}
	if s.MinTimeout > 0 && want < s.MinTimeout {
		return s.MinTimeout
	}
	return want
}

// Release stops the watchdog for kxboot mark-good, and says what it did.
//
// If /dev/watchdog can be opened, nobody holds it: Release writes the
// magic 'V' and closes, which stops it (opening an idle watchdog starts
// it, and the magic close stops it again, so this is safe when Arm never
// ran). If the open fails with EBUSY, a program (systemd's
// RuntimeWatchdogSec, a watchdog daemon) holds and feeds it: Release
// leaves it alone and returns no error. When nowayout is set Release does
// not open it at all, since an open it could not undo would leave nobody
// feeding it; it returns ErrNowayout with a sentence saying so.
//
// The error is nil when the outcome is safe (stopped, nothing to stop, or
// fed by another program); the sentence is for the log either way.
func Release(fsys rootfs.FS, dev Opener) (string, error) {
	if !fsys.Exists(Device) {
		return "no " + Device + ": nothing to stop", nil
	}
	sys := ReadSysfs(fsys)
	if sys.Nowayout == 1 {
		msg := fmt.Sprintf("%s has nowayout set (%s/nowayout is 1), so it cannot be stopped; kxboot leaves it alone: unless the kernel or a program feeds it, it will reset the machine", sys.Describe(), SysDir)
		return msg, fmt.Errorf("%w: %s", ErrNowayout, msg)
	}
	d, err := dev.Open(fsys.Path(Device))
	switch {
	case absent(err):
		return "no watchdog behind " + Device + ": nothing to stop", nil
	case errors.Is(err, syscall.EBUSY):
		return Device + " is held by another program (systemd's RuntimeWatchdogSec or a watchdog daemon), which feeds it: left running", nil
	case err != nil:
		msg := fmt.Sprintf("cannot open %s to stop it: %v", Device, err)
		return msg, fmt.Errorf("open %s: %w", Device, err)
	}
	name := Device
	if info, err := d.Info(); err == nil && info.Identity != "" {
		name = fmt.Sprintf("%s (%s)", Device, info.Identity)
	}
	if err := d.MagicClose(); err != nil {
		msg := fmt.Sprintf("the magic close of %s failed: %v", name, err)
		return msg, fmt.Errorf("%s: magic close: %w", name, err)
	}
	if after := ReadSysfs(fsys); after.State == "active" {
		msg := fmt.Sprintf("%s did not stop after the magic close (%s/state is still active)", name, SysDir)
		return msg, fmt.Errorf("%w: %s", ErrNotStopped, msg)
	}
	return "stopped " + name + " with the magic close", nil
}

// Paths Survives reads.
const (
	ParamPath   = "/sys/module/watchdog/parameters/stop_on_reboot"
	CmdlinePath = "/proc/cmdline"
	ParamName   = "watchdog.stop_on_reboot"
)

// Survives says whether a watchdog armed now keeps running through the
// kexec into the new kernel, with a sentence for doctor.
//
// The watchdog core stops, at every reboot and kexec, each watchdog whose
// driver asked for it (watchdog_stop_on_reboot(), which most drivers call)
// unless its module parameter stop_on_reboot is 0; at 1 it stops every
// one; at -1, the default, the driver decides. The running value is
// /sys/module/watchdog/parameters/stop_on_reboot (present whenever the core
// is loaded or built in); failing that, the command line's
// watchdog.stop_on_reboot= (the last one counts, as in the kernel) is what
// the core will be loaded with. true means the core will not stop it; a
// driver with a shutdown hook of its own could still.
func Survives(fsys rootfs.FS) (bool, string) {
	if fsys.Exists(Device) && fsys.Exists("/sys/class/watchdog") && !fsys.Exists(SysDir) {
		return false, "/dev/watchdog has no " + SysDir + ": a legacy driver outside the watchdog core, so stop_on_reboot does not apply and the driver alone decides whether it stops at the kexec"
	}
	if v, err := fsys.ReadString(ParamPath); err == nil {
		return verdict(v, "the watchdog core's stop_on_reboot is "+v+" ("+ParamPath+")")
	}
	if v, ok := cmdlineParam(fsys); ok {
		return verdict(v, "the command line has "+ParamName+"="+v)
	}
	return false, "stop_on_reboot is not set (no " + ParamPath + ", no " + ParamName + "= on the command line): the driver decides, and most drivers have the kernel stop the watchdog at the kexec"
}

func verdict(v, src string) (bool, string) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	switch {
	case err != nil:
		return false, src + ": not a number, so the kernel will most likely stop the watchdog at the kexec"
	case n == 0:
		return true, src + ": the kernel leaves the watchdog running through the kexec"
	case n < 0:
		return false, src + ": the driver decides, and most drivers have the kernel stop the watchdog at the kexec"
	}
	return false, src + ": the kernel stops the watchdog at the kexec"
}

// cmdlineParam finds the last watchdog.stop_on_reboot= on the running
// command line. The kernel compares parameter names with '-' and '_' as
// the same character, so watchdog.stop-on-reboot counts too.
func cmdlineParam(fsys rootfs.FS) (string, bool) {
	b, err := fsys.ReadFile(CmdlinePath)
	if err != nil {
		return "", false
	}
	val, found := "", false
	for _, tok := range cmdline.Parse(string(b)).Params() {
		v, ok := cmdline.Value(tok)
		if ok && strings.ReplaceAll(cmdline.Key(tok), "-", "_") == ParamName {
			val, found = v, true
		}
	}
	return val, found
}
