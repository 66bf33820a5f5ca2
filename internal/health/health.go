// Package health decides whether a hop into the owner's kernel proved
// itself: kxboot mark-good (after the owner's HEALTH_CMD succeeds) clears
// the count of tries; kxboot mark-bad, or a deadline that passes without a
// confirmation, records the failure and reboots through the firmware, so
// that the provider's kernel comes back.
package health

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/tries"
)

// Env is the machine the checks act on.
type Env struct {
	FS     rootfs.FS
	Store  *tries.Store
	Config *config.Config
	Logf   func(format string, args ...any)
	Now    func() time.Time
	Sleep  func(time.Duration)
	// Check runs the owner's HEALTH_CMD with a time limit and returns
	// its output and error.
	Check func(cmd string, limit time.Duration) (string, error)
	// Reboot reboots through the firmware (never through kexec) and
	// returns only if that failed.
	Reboot func(reason string) error
	// ReleaseWatchdog stops the watchdog armed before the hop, unless
	// the kernel's init took it over, and says what it did.
	ReleaseWatchdog func() string
	// SettleCause says what ended a try left pending, when the machine
	// knows (chain.SettleCause); nil or "" gives the usual guesses.
	SettleCause func(tries.Record) string
	// Uptime is how long this kernel has run; nil reads /proc/uptime.
	// (The watcher started by the init wrapper may run before the init
	// has mounted /proc again: the command wires CLOCK_BOOTTIME.)
	Uptime          func() (time.Duration, error)
	BootID, Release string
}

// ErrNotAHop is returned by the commands that act on a try when this boot
// did not come through kxboot.
var ErrNotAHop = errors.New("this boot did not come through kxboot")

// onHop says whether this boot came through kxboot, and its try record.
func (e Env) onHop() (tries.Record, error) {
	line, err := e.FS.ReadString("/proc/cmdline")
	// Started by the init wrapper, the watcher can come before the init
	// has mounted /proc again.
	for i := 0; err != nil && i < 120; i++ {
		e.Sleep(time.Second)
		line, err = e.FS.ReadString("/proc/cmdline")
	}
	if _, ok := cmdline.Parse(line).Chained(e.Config.Marker); !ok {
		return tries.Record{}, ErrNotAHop
	}
	// A slot's root keeps its try in the record of the machine that
	// hopped (tries.StateParam).
	if err := e.Store.Locate(line); err != nil {
		return tries.Record{}, err
	}
	return e.Store.Read()
}

// Uptime is how long this kernel has run, from /proc/uptime.
func Uptime(fsys rootfs.FS) (time.Duration, error) {
	s, err := fsys.ReadString("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, fmt.Errorf("/proc/uptime is empty")
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/uptime: %w", err)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// deadline is the time left of HEALTH_DEADLINE, counted from this kernel's
// start (the hop).
func (e Env) deadline() time.Duration {
	uptime := e.Uptime
	if uptime == nil {
		uptime = func() (time.Duration, error) { return Uptime(e.FS) }
	}
	up, err := uptime()
	if err != nil {
		up = 0
	}
	return time.Duration(e.Config.HealthDeadline)*time.Second - up
}

// retryEvery is how often mark-good runs a failing HEALTH_CMD again.
const retryEvery = 10 * time.Second

// Confirm is kxboot mark-good: on a hop whose try is pending, it runs
// HEALTH_CMD until it succeeds or the deadline passes, then confirms. It
// returns what it did in one sentence.
func Confirm(e Env) (string, error) {
	r, err := e.onHop()
	if errors.Is(err, ErrNotAHop) {
		if what := e.settleLost(); what != "" {
			return what, nil
		}
		return "this boot did not come through kxboot (no marker on the command line): nothing to confirm", nil
	}
	if err != nil {
		return "", err
	}
	if !r.Pending {
		if r.Failure != nil && r.Failure.Try == r.Tries && r.Tries > 0 {
			return "", fmt.Errorf("this try already failed (%s); it cannot be confirmed any more", r.Failure.Reason)
		}
		return "this hop is already confirmed; nothing to do", nil
	}
	if cmd := e.Config.HealthCmd; cmd != "" {
		for n := 1; ; n++ {
			left := e.deadline()
			if left <= 0 {
				return "", fmt.Errorf("HEALTH_CMD did not succeed before HEALTH_DEADLINE (%d s after the hop); the deadline watcher fails this try", e.Config.HealthDeadline)
			}
			out, err := e.Check(cmd, min(left, 5*time.Minute))
			if err == nil {
				break
			}
			complaint := oneLine(fmt.Sprintf("HEALTH_CMD %q failed: %v%s", cmd, err, tail(out)))
			e.Logf("kxboot: mark-good: %s (attempt %d; trying again in %v)", complaint, n, retryEvery)
			e.Store.Update(func(r tries.Record, rerr error) (tries.Record, error) {
				if rerr == nil && r.Pending {
					r.Health = complaint
				}
				return r, rerr
			})
			e.Sleep(min(retryEvery, max(left, time.Second)))
		}
	}
	var confirmed bool
	_, err = e.Store.Update(func(r tries.Record, rerr error) (tries.Record, error) {
		if rerr != nil || !r.Pending {
			return r, rerr // the watcher failed it meanwhile
		}
		confirmed = true
		return tries.Confirm(r, e.Now()), nil
	})
	if err != nil {
		return "", err
	}
	if !confirmed {
		return "", fmt.Errorf("this try failed while the health check ran; it cannot be confirmed any more")
	}
	e.history(tries.Entry{Event: "confirmed", Kernel: r.Kernel, Try: r.Tries, Max: maxOf(r, e.Config)})
	what := fmt.Sprintf("confirmed %s as healthy (try %d); the count of tries is cleared", r.Kernel, r.Tries)
	if e.ReleaseWatchdog != nil && r.Watchdog {
		if w := e.ReleaseWatchdog(); w != "" {
			what += "; watchdog: " + w
		}
	}
	return what, nil
}

// settleLost records as failed a try that a boot before this one left
// pending: this boot did not come through kxboot, so the kernel hopped
// into (by a fast reboot, where no chain boot settles it) did not come
// back confirmed; the firmware brought this kernel instead. It says what
// it recorded, or "" when nothing was pending.
func (e Env) settleLost() string {
	var f *tries.Failure
	e.Store.Update(func(r tries.Record, rerr error) (tries.Record, error) {
		if rerr != nil || !r.Pending || r.HopBoot == e.BootID {
			return r, errNothing
		}
		cause := ""
		if e.SettleCause != nil {
			cause = e.SettleCause(r)
		}
		r, f = tries.Settle(r, e.Now(), cause)
		f.Reason += "; the firmware brought back " + e.Release
		r.Failure = f
		return r, nil
	})
	if f == nil {
		return ""
	}
	e.history(tries.Entry{Event: "failed", Kernel: f.Kernel, Try: f.Try, Reason: f.Reason})
	return fmt.Sprintf("this boot did not come through kxboot: the hop into %s (try %d) failed: %s", f.Kernel, f.Try, f.Reason)
}

// maxOf is the most tries the hop had: as its decision recorded it (a
// slot's root has a config of its own), else MAX_TRIES.
func maxOf(r tries.Record, c *config.Config) int {
	if r.Max > 0 {
		return r.Max
	}
	return c.MaxTries
}

// errNothing ends an update that has nothing to write.
var errNothing = errors.New("nothing to write")

// Fail records that the running hop failed, then reboots through the
// firmware unless reboot is false.
func Fail(e Env, reason string, reboot bool) error {
	r, err := e.onHop()
	if err != nil {
		return err
	}
	var f *tries.Failure
	_, err = e.Store.Update(func(r tries.Record, rerr error) (tries.Record, error) {
		if rerr != nil {
			return r, rerr
		}
		r, f = tries.Fail(r, e.Now(), reason)
		return r, nil
	})
	if err != nil {
		return err
	}
	e.Logf("kxboot: try %d of %s failed: %s", f.Try, r.Kernel, reason)
	e.history(tries.Entry{Event: "failed", Kernel: r.Kernel, Try: f.Try, Max: maxOf(r, e.Config), Reason: reason})
	if !reboot {
		return nil
	}
	return e.Reboot(reason)
}

// Watch is kxboot watch: on a hop whose try is pending it waits for the
// confirmation until HEALTH_DEADLINE after the hop; when none came, it
// fails the try and reboots through the firmware. It returns at once when
// there is nothing to watch.
func Watch(e Env) error {
	r, err := e.onHop()
	// A slot's root reaches its record on another device, which may show
	// up late in the boot: keep trying until the deadline, which holds
	// all the same.
	for errors.Is(err, tries.ErrUnreachable) && e.deadline() > 0 {
		e.Sleep(min(e.deadline(), 2*time.Second))
		r, err = e.onHop()
	}
	if errors.Is(err, tries.ErrUnreachable) {
		reason := fmt.Sprintf("no confirmation within HEALTH_DEADLINE (%d s after the hop): %v", e.Config.HealthDeadline, err)
		e.Logf("kxboot: watch: %s; rebooting through the firmware (the next chain boot counts the try as failed)", reason)
		return e.Reboot(reason)
	}
	if errors.Is(err, ErrNotAHop) || (err == nil && !r.Pending) {
		return nil
	}
	if err != nil {
		return err
	}
	e.Logf("kxboot: watch: %s has %d s from the hop to confirm (kxboot mark-good)", r.Kernel, e.Config.HealthDeadline)
	for {
		left := e.deadline()
		if left <= 0 {
			break
		}
		e.Sleep(min(left, 2*time.Second))
		if now, err := e.Store.Read(); err == nil && !now.Pending {
			return nil // confirmed, or failed by mark-bad
		}
	}
	now, err := e.Store.Read()
	if err == nil && !now.Pending {
		return nil
	}
	reason := fmt.Sprintf("no confirmation within HEALTH_DEADLINE (%d s after the hop)", e.Config.HealthDeadline)
	if now.Health != "" {
		reason += "; the last health check said: " + now.Health
	}
	return Fail(e, reason, true)
}

func (e Env) history(en tries.Entry) {
	en.Time, en.Boot, en.Running = e.Now(), e.BootID, e.Release
	if err := e.Store.Append(en); err != nil {
		e.Logf("kxboot: cannot write %s: %v", tries.HistoryPath, err)
	}
}

// tail is the last line of a command's output, for a one-line complaint.
func tail(out string) string {
	out = strings.TrimSpace(out)
	if out == "" {
		return ""
	}
	lines := strings.Split(out, "\n")
	return ": " + lines[len(lines)-1]
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
