// Package chain is the decision of a chain boot, taken at every boot of a
// machine whose provider forces its own kernel: hop into the owner's kernel
// now, or boot on with the kernel that runs. Decide is a pure function of
// what the machine looks like; Run gathers that, keeps the abort window,
// loads and jumps, and turns every failure into "boot on" with the reason,
// so that a failed hop never strands the machine.
package chain

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/plan"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/tries"
	"github.com/kxboot/kxboot/internal/watchdog"
)

// Input is everything the decision looks at.
type Input struct {
	Running   cmdline.Cmdline // this boot's command line
	Config    *config.Config  // nil when it could not be read
	ConfigErr error
	// Plan is what the hop loads; Base is the plan as plan.Make made it,
	// before the hop's own additions (panic=, the test pause taken out).
	Plan      plan.Plan
	Base      plan.Plan
	PlanErr   error
	KernelErr error // the checks a load makes of the planned kernel and initrds
	// The tries: the record as read (or why it cannot be believed), and
	// the identity of the planned hop.
	Record    tries.Record
	RecordErr error
	ID        string
	// Once is the one-shot kernel the record asks for, Good the last
	// known-good entry (nil when there is none or KNOWN_GOOD=no).
	Once, Good *Candidate
	// Slot is the active slot, when the config names slots: it stands
	// for the configured kernel (Plan, ID).
	Slot *Candidate
	// Cause is what is known to have ended a try left pending ("" when
	// nothing is): the watchdog armed before that hop reset the machine.
	Cause string
}

// primary is the configured entry: the active slot, or the kernel the
// plan names.
func (in Input) primary() Candidate {
	if in.Slot != nil {
		return *in.Slot
	}
	c := Candidate{Boot: tries.Boot{Kernel: in.Plan.Kernel, Initrds: in.Plan.Initrds, Cmdline: in.Plan.Cmdline, Release: in.Plan.Release, ID: in.ID},
		From: in.Plan.KernelFrom, Err: in.PlanErr}
	if c.Err == nil {
		c.Err = in.KernelErr
	}
	return c
}

// Candidate is an entry other than the configured kernel that a hop may
// boot: what it loads, in words, and why it cannot be used (nil when it
// can).
type Candidate struct {
	Boot tries.Boot
	From string
	Err  error
}

// Decision says whether to hop, and why, in one line a person reads.
type Decision struct {
	Hop    bool   `json:"hop"`
	Reason string `json:"reason"`
	Kernel string `json:"kernel,omitempty"`
	// Entry is which entry the hop boots: tries.Once, tries.Configured
	// or tries.KnownGood.
	Entry string `json:"entry,omitempty"`
	// Chained: this boot came through kexec already (the loop guard).
	Chained bool `json:"chained,omitempty"`
	// Fallback: the chain boot stopped after MaxTries unconfirmed hops.
	Fallback bool `json:"fallback,omitempty"`
	Abort    bool `json:"abort,omitempty"` // a key in the abort window
	Try      int  `json:"try,omitempty"`   // the hop's number among the tries
	Max      int  `json:"max,omitempty"`
	// Boot is what the hop loads.
	Boot tries.Boot `json:"-"`
	// GiveUp: the configured kernel used up its tries with this hop's
	// decision; the record keeps that, so the next boots go on to the
	// known-good entry.
	GiveUp *tries.GaveUp `json:"-"`
}

func (d Decision) String() string {
	if d.Hop {
		return "hop: " + d.Reason
	}
	return "boot on: " + d.Reason
}

func bootOn(format string, args ...any) Decision {
	return Decision{Reason: fmt.Sprintf(format, args...)}
}

// Decide is the chain boot's decision. The loop guard comes first: a boot
// that already came through kxboot never hops again, whatever else is
// wrong. Then the entries, in order: a one-shot kernel, the configured
// kernel, the last known-good entry once the configured kernel used up
// its tries; and when none can be booted, the running (provider's) kernel.
func Decide(in Input) Decision {
	own := ""
	if in.Config != nil {
		own = in.Config.Marker
	}
	if m, ok := in.Running.Chained(own); ok {
		d := bootOn("this boot already came through kexec (%s is on the command line)", m)
		d.Chained = true
		return d
	}
	if in.ConfigErr != nil {
		return bootOn("the config cannot be used: %v", in.ConfigErr)
	}
	if !in.Config.Enabled {
		where := in.Config.Path
		if line, ok := in.Config.Line["ENABLED"]; ok {
			where = fmt.Sprintf("%s:%d", where, line)
		}
		return bootOn("chain boot is disabled (ENABLED=no in %s)", where)
	}
	if in.RecordErr != nil {
		return bootOn("the try record cannot be believed (%v); staying on this kernel: read kxboot history, then run kxboot reset", in.RecordErr)
	}
	note := ""
	if o := in.Once; o != nil {
		if o.Err == nil {
			return hop(tries.Once, o.Boot, 1, 1, fmt.Sprintf("booting %s%s once, %s; the boot after goes back to the usual kernel", o.Boot.Kernel, rel(o.Boot.Release), o.From))
		}
		note = fmt.Sprintf("the one-shot kernel cannot be used (%v); ", o.Err)
	}
	max := in.Config.MaxTries
	prim := in.primary()
	id := prim.Boot.ID
	given := prim.Err == nil && tries.GivenUp(in.Record, id, max)
	if prim.Err == nil && !given {
		try := tries.NextTry(in.Record, id)
		return hop(tries.Configured, prim.Boot, try, max, fmt.Sprintf("%sbooting %s%s, named by %s%s", note, prim.Boot.Kernel, rel(prim.Boot.Release), prim.From, tryOf(try, max)))
	}
	// The configured kernel cannot be booted, or used up its tries.
	why := fmt.Sprint(prim.Err)
	var gave *tries.GaveUp
	if given {
		why, gave = givenUp(in.Record, prim.Boot, max, in.Cause)
	}
	if g := in.Good; g != nil && g.Err == nil && g.Boot.ID != id && !tries.Exhausted(in.Record, g.Boot.ID, max) {
		try := tries.NextTry(in.Record, g.Boot.ID)
		d := hop(tries.KnownGood, g.Boot, try, max, fmt.Sprintf("%s%s; booting the last known-good kernel %s%s (%s)%s", note, why, g.Boot.Kernel, rel(g.Boot.Release), g.From, tryOf(try, max)))
		if gave != nil && (in.Record.GaveUp == nil || in.Record.GaveUp.ID != gave.ID) {
			d.GiveUp = gave
		}
		return d
	}
	if !given {
		return bootOn("%s%s%s", note, why, goodNote(in, id, max))
	}
	d := bootOn("%s%s; staying on this kernel until kxboot reset, or a change of the kernel or its command line%s", note, why, goodNote(in, id, max))
	d.Fallback, d.Kernel, d.Max = true, prim.Boot.Kernel, max
	return d
}

func hop(entry string, b tries.Boot, try, max int, reason string) Decision {
	return Decision{Hop: true, Entry: entry, Kernel: b.Kernel, Boot: b, Try: try, Max: max, Reason: reason}
}

// tryOf is ", try N of MAX", or nothing when the tries are not counted.
func tryOf(try, max int) string {
	if max <= 0 {
		return ""
	}
	return fmt.Sprintf(", try %d of %d", try, max)
}

func rel(release string) string {
	if release == "" {
		return ""
	}
	return " (" + release + ")"
}

// givenUp words why the configured kernel is given up, and the record of
// it that keeps it so.
func givenUp(r tries.Record, b tries.Boot, max int, cause string) (string, *tries.GaveUp) {
	if g := r.GaveUp; g != nil && g.ID == b.ID && !tries.Exhausted(r, b.ID, max) {
		return fmt.Sprintf("%s used up its %d tries (last: %s)", b.Kernel, g.Tries, g.Reason), g
	}
	last := "no reason was recorded"
	if f := r.Failure; f != nil {
		last = f.Reason
	}
	if r.Pending {
		_, f := tries.Settle(r, time.Time{}, cause)
		last = f.Reason
	}
	hops := fmt.Sprintf("%d unconfirmed hops in a row", r.Tries)
	if r.Tries == 1 {
		hops = "1 unconfirmed hop"
	}
	why := fmt.Sprintf("%s into %s (last: %s)", hops, b.Kernel, last)
	return why, &tries.GaveUp{Kernel: b.Kernel, ID: b.ID, Tries: r.Tries, Reason: last}
}

// goodNote says why the known-good entry is not booted instead, when there
// is one.
func goodNote(in Input, id string, max int) string {
	g := in.Good
	switch {
	case g == nil:
		return ""
	case g.Err != nil:
		return fmt.Sprintf(" (the last known-good kernel cannot be used: %v)", g.Err)
	case g.Boot.ID == id:
		return "" // it is the configured kernel itself
	case tries.Exhausted(in.Record, g.Boot.ID, max):
		return fmt.Sprintf(" (the last known-good kernel %s failed %d times too)", g.Boot.Kernel, in.Record.Tries)
	}
	return ""
}

// SettleCause says what ended the try r left pending, when the machine
// knows: the watchdog armed before that hop reset the machine, as the
// watchdog driver read it from the chip (watchdog0's bootstatus). "" when
// nothing is pending, the hop armed no watchdog, or the driver does not
// say (no driver loaded yet, or a driver that does not report it).
func SettleCause(fsys rootfs.FS, r tries.Record) string {
	if !r.Pending || !r.Watchdog {
		return ""
	}
	if !watchdog.ReadSysfs(fsys).FiredLastBoot() {
		return ""
	}
	return "the hardware watchdog armed before the hop reset the machine (" + watchdog.SysDir + "/bootstatus says so), so the kernel hung before kxboot mark-good ran"
}

// Gather reads the machine into an Input.
func Gather(fsys rootfs.FS) Input {
	var in Input
	running, _ := fsys.ReadString("/proc/cmdline")
	in.Running = cmdline.Parse(running)
	in.Config, in.ConfigErr = config.Load(fsys)
	if in.ConfigErr != nil {
		return in
	}
	in.Record, in.RecordErr = tries.Store{FS: fsys}.Read()
	in.Plan, in.PlanErr = plan.Make(fsys, in.Config, plan.Flags{})
	if in.PlanErr == nil {
		in.Base = in.Plan
		in.Plan.Cmdline = hopCmdline(in.Plan.Cmdline, in.Config, in.Plan.Marker)
		in.KernelErr = kexec.CheckFiles(fsys, in.Plan.Kernel, in.Plan.Initrds)
		in.ID = tries.Identity(fsys, in.Plan.Kernel, in.Plan.Initrds, in.Plan.Cmdline)
	}
	if in.RecordErr != nil {
		return in
	}
	in.Cause = SettleCause(fsys, in.Record)
	if len(in.Config.Slots) > 0 {
		s, from := ActiveSlot(in.Config, in.Record)
		in.Slot = SlotCandidate(fsys, in.Config, s, from)
	}
	if o := in.Record.Next; o != nil {
		in.Once = OnceCandidate(fsys, in.Config, o)
	}
	if g := in.Record.Good; g != nil && in.Config.KnownGood {
		in.Good = goodCandidate(fsys, g)
	}
	return in
}

// goodCandidate is the known-good entry, if its files are still those
// that confirmed.
func goodCandidate(fsys rootfs.FS, g *tries.Good) *Candidate {
	c := &Candidate{Boot: g.Boot, From: "confirmed " + g.Confirmed.Local().Format("2006-01-02 15:04:05")}
	if g.Slot != "" {
		c.From = "slot " + g.Slot + ", " + c.From
	}
	in, done, err := openSlot(fsys, g.Boot)
	if err != nil {
		c.Err = err
		return c
	}
	defer done()
	if err := kexec.CheckFiles(fsys, in+g.Kernel, prefixed(in, g.Initrds)); err != nil {
		c.Err = err
	} else if tries.IdentityIn(fsys, in, g.Kernel, g.Initrds, g.Cmdline) != g.ID {
		c.Err = fmt.Errorf("%s or its initrds changed since it was confirmed", g.Kernel)
	}
	return c
}

// OnceCandidate is the plan of a one-shot kernel: the kernel asked for,
// its initrds (named, or found beside it) and the usual command line.
func OnceCandidate(fsys rootfs.FS, cfg *config.Config, o *tries.OneShot) *Candidate {
	if o.Slot != "" {
		s, ok := cfg.Slot(o.Slot)
		if !ok {
			return &Candidate{Boot: tries.Boot{Slot: o.Slot}, Err: fmt.Errorf("slot %s, asked for by %s, is not in %s any more", o.Slot, o.By, cfg.Path)}
		}
		return SlotCandidate(fsys, cfg, s, "slot "+o.Slot+", asked for by "+o.By)
	}
	f := plan.Flags{Kernel: o.Kernel, Initrds: o.Initrds}
	c := &Candidate{From: "asked for by " + o.By}
	p, err := plan.Make(fsys, cfg, f)
	if err != nil {
		c.Err = err
		return c
	}
	p.Cmdline = hopCmdline(p.Cmdline, cfg, p.Marker)
	c.Boot = tries.Boot{Kernel: p.Kernel, Initrds: p.Initrds, Cmdline: p.Cmdline, Release: p.Release,
		ID: tries.Identity(fsys, p.Kernel, p.Initrds, p.Cmdline)}
	c.Err = kexec.CheckFiles(fsys, p.Kernel, p.Initrds)
	return c
}

// hopCmdline is the command line a hop boots: the test pause (for the
// provider's boot that hops, not the next) taken out, panic= added.
func hopCmdline(line string, cfg *config.Config, marker string) string {
	return withPanic(cmdline.Parse(line).Remove(TestPauseParam).String(), cfg.Panic, marker)
}

// withPanic adds panic=N to the hop's command line, so that a kernel that
// panics resets the machine and the provider's kernel comes back, unless
// the owner chose a panic= of their own (or PANIC=0). It goes before the
// marker, which stays last: a reboot from the hop's kernel, reusing its
// command line, then arrives at the same line.
func withPanic(line string, secs int, marker string) string {
	c := cmdline.Parse(line)
	if secs <= 0 || c.Has("panic") {
		return line
	}
	ms := []string{marker}
	_, had := c.HasMarker(ms)
	c = c.RemoveMarkers(ms).Append(cmdline.Cmdline{"panic=" + fmt.Sprint(secs)})
	if had {
		c = c.Append(cmdline.Cmdline{marker})
	}
	return c.String()
}

// Env is what Run acts through.
type Env struct {
	FS     rootfs.FS
	Engine *kexec.Engine
	// Logf reports each step; PID 1 sends it to /dev/kmsg and the console.
	Logf func(format string, args ...any)
	// Window keeps the abort window; it returns the console a key came
	// from, or "" when the time ran out.
	Window func(prompt string, d time.Duration) string
	// BeforeJump makes the jump clean: in service mode it remounts
	// read-only what is writable. Its error is logged, not fatal.
	BeforeJump func() error
	// Record keeps the decision for kxboot status.
	Record func(Decision)
	// Store keeps the tries and the history; nil keeps neither (tests of
	// other parts).
	Store *tries.Store
	// Now, BootID and Release stamp the history.
	Now     func() time.Time
	BootID  string
	Release string
	// StartWatch starts the deadline watcher (kxboot watch) in the
	// background; called on a boot that came through kxboot while its try
	// is pending.
	StartWatch func()
	// ArmWatchdog arms the hardware watchdog for d before the jump, and
	// says what it did.
	ArmWatchdog func(d time.Duration) (string, error)
	// ReleaseWatchdog stops it again when the hop does not happen.
	ReleaseWatchdog func() string
	// Pause is called at the named instant of a hop (after-record,
	// mid-record) when the command line asks for it with
	// kxboot.test_pause=; the tests cut the power there. A suffix
	// ":ENTRY" (":known-good") pauses only a hop into that entry.
	Pause func(at string)
}

// TestPauseParam names the instant at which the e2e tests cut the power.
const TestPauseParam = "kxboot.test_pause"

// Run decides and, when it is a hop, keeps the abort window, loads the
// kernel and jumps. It returns only when the machine is to boot on, with the
// decision that says why; on a successful jump it does not return.
func Run(env Env) Decision {
	if env.Now == nil {
		env.Now = time.Now
	}
	in := Gather(env.FS)
	d := Decide(in)
	if d.Chained {
		// A slot's root confirms its try in the record StateParam names,
		// which the watcher finds; this root's own record is not it.
		_, shared := in.Running.Get(tries.StateParam)
		if (shared || in.RecordErr == nil && in.Record.Pending) && env.StartWatch != nil {
			env.StartWatch()
		}
		return finish(env, d, in)
	}
	in.Record = settle(env, in)
	if !d.Hop {
		return finish(env, d, in)
	}
	env.Logf("kxboot: chain: %s", d.Reason)
	if secs := in.Config.AbortSeconds; secs > 0 && env.Window != nil {
		prompt := "kxboot: booting " + d.Kernel + " in %d s; press any key to boot the current kernel instead "
		if who := env.Window(prompt, time.Duration(secs)*time.Second); who != "" {
			d := bootOn("a key was pressed on %s during the %d s abort window", who, secs)
			d.Abort = true
			return finish(env, d, in)
		}
	}
	b := d.Boot
	res, err := Load(env.FS, env.Engine, b)
	if err != nil {
		return finish(env, bootOn("%v", err), in)
	}
	env.Logf("kxboot: chain: loaded %s with %s; command line: %s", b.Kernel, res.Syscall, b.Cmdline)
	armed := ArmFor(env.FS, env.ArmWatchdog, in.Config, b, env.Logf, "kxboot: chain: ")
	// The try is durable before the jump: a kernel that never comes back
	// must still be counted.
	if err := record(env, in, d, armed); err != nil {
		env.Engine.Unload()
		if armed && env.ReleaseWatchdog != nil {
			env.Logf("kxboot: chain: watchdog: %s", env.ReleaseWatchdog())
		}
		return finish(env, bootOn("cannot record the try in %s (%v); not hopping, because a failing kernel would then never be given up", tries.RecordPath, err), in)
	}
	if env.BeforeJump != nil {
		if err := env.BeforeJump(); err != nil {
			env.Logf("kxboot: chain: %v; jumping anyway, the file systems are synced", err)
		}
	}
	env.Logf("kxboot: chain: jumping into %s", b.Kernel)
	if env.Record != nil {
		env.Record(d)
	}
	err = env.Engine.Exec()
	// Still here: the jump failed. Drop the loaded kernel so that no later
	// reboot takes it by surprise, take the try back, and boot on.
	env.Engine.Unload()
	reason := fmt.Sprintf("the jump into %s failed: %v", b.Kernel, err)
	if env.Store != nil {
		env.Store.Update(func(r tries.Record, rerr error) (tries.Record, error) {
			r, _ = tries.Fail(r, env.Now(), reason)
			return r, rerr
		})
	}
	return finish(env, bootOn("%s", reason), in)
}

// settle closes a try the last boot left pending: the provider's kernel
// is back, so that hop ended without a confirmation.
func settle(env Env, in Input) tries.Record {
	if env.Store == nil || in.RecordErr != nil || !in.Record.Pending {
		return in.Record
	}
	r, f := tries.Settle(in.Record, env.Now(), in.Cause)
	env.Logf("kxboot: chain: the hop into %s (try %d) failed: %s", f.Kernel, f.Try, f.Reason)
	if err := env.Store.WriteLocked(r); err != nil {
		env.Logf("kxboot: chain: cannot record the failure in %s: %v", tries.RecordPath, err)
	}
	history(env, tries.Entry{Event: "failed", Kernel: f.Kernel, Try: f.Try, Max: in.Config.MaxTries, Reason: f.Reason})
	return r
}

// record writes the try before the jump, pausing where a test asks.
func record(env Env, in Input, d Decision, armed bool) error {
	if env.Store == nil {
		return nil
	}
	pause, _ := in.Running.Get(TestPauseParam)
	// "mid-record:known-good" pauses only the hop into that entry.
	pause, entry, only := strings.Cut(pause, ":")
	if only && entry != d.Entry {
		pause = ""
	}
	s := *env.Store
	if pause == "mid-record" && env.Pause != nil {
		s.BeforeRename = func() { env.Pause(pause) }
	}
	r := HopRecord(in.Record, d, env.Now(), env.BootID)
	r.Watchdog = armed
	if err := s.WriteLocked(r); err != nil {
		return err
	}
	env.Logf("kxboot: chain: recorded try %d of %d in %s", r.Tries, d.Max, tries.RecordPath)
	history(env, tries.Entry{Event: "hop", Entry: d.Entry, Kernel: d.Kernel, Try: r.Tries, Max: d.Max, Reason: d.Reason})
	if pause == "after-record" && env.Pause != nil {
		env.Pause(pause)
	}
	return nil
}

// ArmFor arms the hardware watchdog (through arm) for HEALTH_DEADLINE
// before a jump into b, when the config asks for it and b's kernel has the
// driver to stop it again: a watchdog it could not stop would reset a good
// boot too. It logs what it did after prefix and says whether it armed.
func ArmFor(fsys rootfs.FS, arm func(time.Duration) (string, error), cfg *config.Config, b tries.Boot, logf func(string, ...any), prefix string) bool {
	if arm == nil || !cfg.Watchdog {
		return false
	}
	if ok, _, why := watchdog.NextKernelCanStop(fsys, b.Release); !ok {
		logf("%swatchdog: not armed: %s", prefix, why)
		return false
	}
	what, err := arm(time.Duration(cfg.HealthDeadline) * time.Second)
	switch {
	case errors.Is(err, watchdog.ErrNoWatchdog):
		logf("%swatchdog: none (no %s): a kernel that hangs before its userspace starts stays hung until the machine is power-cycled", prefix, watchdog.Device)
	case err != nil:
		logf("%swatchdog: %v", prefix, err)
	case what != "":
		logf("%swatchdog: %s", prefix, what)
		return true
	}
	return false
}

// HopRecord is the record of a hop decided by d: the try, a one-shot
// kernel used up, and the configured kernel given up when d says so.
func HopRecord(r tries.Record, d Decision, now time.Time, boot string) tries.Record {
	if g := d.GiveUp; g != nil {
		r = tries.GiveUp(r, g.Kernel, g.ID, g.Tries, g.Reason, now)
	}
	r = tries.Hop(r, d.Boot, d.Entry, d.Reason, now, boot)
	r.Max = d.Max
	return r
}

// history appends to the history, logging what it cannot write.
func history(env Env, e tries.Entry) {
	if env.Store == nil {
		return
	}
	e.Time, e.Boot, e.Running = env.Now(), env.BootID, env.Release
	if err := env.Store.Append(e); err != nil {
		env.Logf("kxboot: chain: cannot write %s: %v", tries.HistoryPath, err)
	}
}

func finish(env Env, d Decision, in Input) Decision {
	env.Logf("kxboot: chain: %s", d)
	if env.Record != nil {
		env.Record(d)
	}
	// Every boot-on worth knowing goes to the history: not the boots of
	// the owner's kernel itself, nor a chain boot turned off on purpose.
	disabled := in.Config != nil && !in.Config.Enabled && in.ConfigErr == nil
	if !d.Hop && !d.Chained && !disabled {
		ev := "boot-on"
		if d.Fallback {
			ev = "fallback"
		}
		if d.Abort {
			ev = "abort"
		}
		max := 0
		if in.Config != nil {
			max = in.Config.MaxTries
		}
		history(env, tries.Entry{Event: ev, Kernel: in.Plan.Kernel, Max: max, Reason: d.Reason})
	}
	return d
}

// Explain is the one-line answer of `kxboot chain --dry-run`, from the
// input gathered and the decision taken on it.
func Explain(in Input, d Decision) string {
	s := "would " + d.String()
	if d.Hop && in.Config != nil && in.Config.AbortSeconds > 0 {
		s += fmt.Sprintf(", after a %d s abort window", in.Config.AbortSeconds)
	}
	return s
}
