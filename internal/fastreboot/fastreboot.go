// Package fastreboot is kxboot's reboot through kexec: at shutdown, while
// /boot is still mounted, Prepare loads the next kernel (or keeps the one
// Preload loaded ahead, once the boot was confirmed, when it is still the
// one to boot); at the very end,
// with the file systems read-only, Jump starts it where the init system
// would reset the machine. Whatever goes wrong leaves nothing loaded, so
// the reboot goes on through the firmware, with the reason logged: a
// reboot never becomes a hang.
package fastreboot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/kxboot/kxboot/internal/atomicfile"
	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/mounts"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/tries"
)

// FirmwareFlag asks the next reboot to go through the firmware: kxboot
// reboot --firmware and a failed try write it. /run lasts one boot, so the
// reboot after goes through kexec again.
const FirmwareFlag = "/run/kxboot/firmware-reboot"

// TryPrefix begins the history's reason of a hop made by a fast reboot
// (with the chain boot installed, a fast reboot is a try too).
const TryPrefix = "fast reboot: "

// Choice is what a fast reboot would boot.
type Choice struct {
	Load   bool           // false: reboot through the firmware
	Hop    chain.Decision // what to load, as an entry and a try
	Reason string         // why, in one line
	Rec    tries.Record
}

// Decide is what the next reboot loads, from the machine as chain.Gather
// read it. Every fast reboot is a try, decided as the chain boot decides a
// hop (a one-shot kernel, the configured or newest kernel, the last
// known-good one), so that a kernel that never confirmed is not booted
// again by the next reboot. With the chain boot installed and enabled, it
// is the chain boot's own try, counted against MAX_TRIES (after a
// fallback: nothing, so the firmware brings the provider's kernel back).
// The fast reboot alone gives each kernel one try: when it was not
// confirmed, the next reboot goes to the last known-good kernel, or
// through the firmware.
func Decide(in chain.Input, chainInstalled bool) Choice {
	// This is a reboot, not a boot: the running kernel's marker is not a
	// loop.
	own := ""
	if in.Config != nil {
		own = in.Config.Marker
	}
	in.Running = in.Running.RemoveMarkers(cmdline.Markers(own))
	if !chainInstalled && in.Config != nil {
		cfg := *in.Config
		cfg.Enabled, cfg.MaxTries = true, 1
		in.Config = &cfg
	}
	d := chain.Decide(in)
	if !d.Hop {
		if chainInstalled {
			return Choice{Reason: "the chain boot says: " + d.Reason}
		}
		return Choice{Reason: d.Reason}
	}
	return Choice{Load: true, Hop: d, Reason: d.Reason, Rec: in.Record}
}

// Next is what the next reboot does: whether the fast reboot is installed,
// whether this boot asked for one reboot through the firmware, and what a
// fast reboot would load.
type Next struct {
	Installed bool
	Firmware  string // why one reboot goes through the firmware; "" when none was asked for
	Choice    Choice
	// Ahead is the record of the kernel Preload loaded for this choice on
	// this boot, if any (the shutdown keeps it when it is still loaded).
	Ahead *Preloaded
}

// Plan reads what the next reboot does, from the input chain.Gather read.
func Plan(fsys rootfs.FS, in chain.Input) Next {
	return PlanFor(fsys, in, journal.Installed(fsys, journal.JobChain), journal.Installed(fsys, journal.JobReboot))
}

// PlanFor is Plan for a caller that has read the install records already.
func PlanFor(fsys rootfs.FS, in chain.Input, chainInstalled, rebootInstalled bool) Next {
	n := Next{Installed: rebootInstalled}
	if ok, why := FirmwareRequested(fsys); ok {
		n.Firmware = why
	}
	n.Choice = Decide(in, chainInstalled)
	if p, ok := ReadPreloaded(fsys); ok && n.Firmware == "" && n.Choice.Load && p.matches(fsys, n.Choice.Hop.Boot, chain.BootID(fsys)) {
		n.Ahead = &p
	}
	return n
}

// String says in one sentence what the next reboot boots.
func (n Next) String() string {
	switch {
	case !n.Installed:
		return "the fast reboot is not installed (kxboot install reboot): the next reboot goes through the firmware"
	case n.Firmware != "":
		return "the next reboot goes through the firmware, once (" + n.Firmware + ")"
	case !n.Choice.Load:
		return "the next reboot goes through the firmware: " + n.Choice.Reason
	}
	if n.Ahead != nil {
		return "the next reboot goes through kexec, " + n.Choice.Reason + " (preloaded at " + n.Ahead.Time.Format("15:04:05") + ")"
	}
	return "the next reboot goes through kexec, " + n.Choice.Reason
}

// Env is the machine a fast reboot acts on.
type Env struct {
	FS     rootfs.FS
	Engine *kexec.Engine
	Logf   func(format string, args ...any)
	Store  *tries.Store
	Now    func() time.Time
	// Rebooting says whether the shutdown is a reboot, not a poweroff
	// or halt (systemd's pending jobs); nil where the glue runs only
	// on a reboot.
	Rebooting       func() (bool, error)
	BootID, Release string
	// ArmWatchdog and ReleaseWatchdog are the chain boot's (chain.Env):
	// a fast reboot is a try, and a hang of the next kernel before its
	// userspace is caught by a watchdog that survives kexec.
	ArmWatchdog     func(d time.Duration) (string, error)
	ReleaseWatchdog func() string
}

// FirmwareRequested says whether this boot asked for one reboot through
// the firmware, and why.
func FirmwareRequested(fsys rootfs.FS) (bool, string) {
	s, err := fsys.ReadString(FirmwareFlag)
	if errors.Is(err, fs.ErrNotExist) {
		return false, ""
	}
	if s == "" {
		s = "requested"
	}
	return true, s
}

// RequestFirmware makes the next reboot go through the firmware.
func RequestFirmware(fsys rootfs.FS, why string) error {
	if err := os.MkdirAll(fsys.Path("/run/kxboot"), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(fsys.Path(FirmwareFlag), []byte(why+"\n"), 0o644)
}

// ClearFirmware takes a request back.
func ClearFirmware(fsys rootfs.FS) { os.Remove(fsys.Path(FirmwareFlag)) }

// Prepare loads the next kernel for the jump at the end of the shutdown,
// or makes sure nothing is loaded, and says why. It is run at every
// shutdown by the init glue and never fails the shutdown.
func Prepare(e Env) {
	unlock := lockLoads(e.FS)
	defer unlock()
	in := chain.Gather(e.FS)
	next := Plan(e.FS, in)
	// The record of a preloaded kernel is spent here, kept or not.
	ForgetPreloaded(e.FS)
	if !next.Installed {
		e.Logf("kxboot: reboot: the fast reboot is not installed (no %s): nothing loaded", journal.Path(journal.JobReboot))
		return
	}
	firmware := func(reason string) {
		e.Engine.Unload()
		e.Logf("kxboot: reboot: through the firmware: %s", reason)
		e.history(tries.Entry{Event: "firmware-reboot", Reason: reason})
	}
	if next.Firmware != "" {
		firmware("one reboot through the firmware was asked for (" + next.Firmware + ")")
		return
	}
	if e.Rebooting != nil {
		if yes, err := e.Rebooting(); err == nil && !yes {
			e.Logf("kxboot: reboot: not a reboot (poweroff or halt): nothing loaded")
			e.Engine.Unload()
			return
		}
	}
	c := next.Choice
	if c.Rec.Pending && e.Store != nil {
		// This boot's try (or one nobody settled) ends unconfirmed.
		r, f := tries.Fail(c.Rec, e.Now(), "the machine rebooted before kxboot mark-good confirmed the kernel")
		if err := e.Store.WriteLocked(r); err != nil {
			e.Logf("kxboot: reboot: cannot record the failure in %s: %v", tries.RecordPath, err)
		} else {
			c.Rec = r
			e.history(tries.Entry{Event: "failed", Kernel: f.Kernel, Try: f.Try, Reason: f.Reason})
		}
	}
	if !c.Load {
		firmware(c.Reason)
		return
	}
	b := c.Hop.Boot
	if a := next.Ahead; a != nil && e.stillLoaded() {
		e.Logf("kxboot: reboot: kept %s, preloaded at %s with %s (files and command line unchanged); command line: %s", b.Kernel, a.Time.Format("15:04:05"), a.Syscall, b.Cmdline)
	} else {
		start := time.Now()
		res, err := chain.Load(e.FS, e.Engine, b)
		if err != nil {
			firmware(err.Error())
			return
		}
		e.Logf("kxboot: reboot: loaded %s with %s in %d ms; command line: %s", b.Kernel, res.Syscall, time.Since(start).Milliseconds(), b.Cmdline)
	}
	// Armed now, while the record can still say so: the jump comes when
	// the file systems are read-only. (On systemd, systemd-shutdown then
	// takes the device over with its own timeout, RebootWatchdogSec.)
	armed := false
	if in.Config != nil {
		armed = chain.ArmFor(e.FS, e.ArmWatchdog, in.Config, b, e.Logf, "kxboot: reboot: ")
	}
	// The try is durable before the jump: a kernel that never confirms is
	// counted by the next boot, whatever kernel that is.
	r := chain.HopRecord(c.Rec, c.Hop, e.Now(), e.BootID)
	r.Watchdog = armed
	if err := e.Store.WriteLocked(r); err != nil {
		if armed && e.ReleaseWatchdog != nil {
			e.Logf("kxboot: reboot: watchdog: %s", e.ReleaseWatchdog())
		}
		firmware(fmt.Sprintf("cannot record the try in %s (%v)", tries.RecordPath, err))
		return
	}
	e.history(tries.Entry{Event: "hop", Entry: c.Hop.Entry, Kernel: b.Kernel, Try: r.Tries, Max: c.Hop.Max, Reason: TryPrefix + c.Reason})
}

// Jump starts the loaded kernel, at the end of a reboot. When this is not
// a reboot, nothing is loaded, a local file system is still writable, or
// the jump fails, it returns and the shutdown goes on through the firmware
// (or powers off).
func Jump(e Env) {
	if ok, _ := FirmwareRequested(e.FS); ok {
		e.Logf("kxboot: reboot: through the firmware, as asked")
		return
	}
	// Prepare spends the preload's record: still there, the shutdown's
	// first half never ran (a forced reboot, reboot -f), so no try was
	// recorded and the kernel preloaded at boot must not be started.
	if _, ok := ReadPreloaded(e.FS); ok {
		e.Engine.Unload()
		e.Logf("kxboot: reboot: the kernel preloaded at boot was never taken over by the shutdown (a forced reboot?): no try is recorded, so the reboot goes through the firmware")
		return
	}
	if e.Rebooting != nil {
		// A kernel loaded by hand (kxboot load) must not turn a
		// poweroff into a kexec. An init that cannot answer any more
		// (systemd-shutdown, where the hook checked "reboot") goes on.
		if yes, err := e.Rebooting(); err == nil && !yes {
			e.Logf("kxboot: reboot: not a reboot (poweroff or halt): no jump")
			return
		}
	}
	if loaded, err := e.Engine.Loaded(); err == nil && !loaded {
		e.Logf("kxboot: reboot: no kernel is loaded; the reboot goes through the firmware")
		return
	}
	if rw := mounts.Writable(e.FS); len(rw) > 0 {
		e.Engine.Unload()
		verb := "are"
		if len(rw) == 1 {
			verb = "is"
		}
		e.Logf("kxboot: reboot: %s %s still writable, and a jump would lose what is not written; the reboot goes through the firmware", strings.Join(rw, ", "), verb)
		return
	}
	// Loaded, or sysfs is already gone: the kernel refuses the jump when
	// nothing is loaded.
	e.Logf("kxboot: reboot: jumping into the loaded kernel")
	err := e.Engine.Jump()
	e.Engine.Unload()
	e.Logf("kxboot: reboot: the jump failed (%v); the reboot goes through the firmware", err)
}

func (e Env) history(en tries.Entry) {
	if e.Store == nil {
		return
	}
	en.Time, en.Boot, en.Running = e.Now(), e.BootID, e.Release
	if err := e.Store.Append(en); err != nil {
		e.Logf("kxboot: reboot: cannot write %s: %v", tries.HistoryPath, err)
	}
}
