package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/fastreboot"
	"github.com/kxboot/kxboot/internal/health"
	"github.com/kxboot/kxboot/internal/klog"
	"github.com/kxboot/kxboot/internal/mounts"
	"github.com/kxboot/kxboot/internal/tries"
)

// searchPath is the PATH of the commands kxboot starts: PID 1's
// environment has none.
const searchPath = chain.SearchPath

// healthEnv wires the health checks to the machine.
func healthEnv(env *Env, logf func(string, ...any)) (health.Env, error) {
	cfg, err := config.Load(env.FS)
	if err != nil {
		return health.Env{}, err
	}
	return health.Env{
		FS: env.FS, Store: &tries.Store{FS: env.FS, Mounts: env.Mounts}, Config: cfg, Logf: logf,
		Now: time.Now, Sleep: time.Sleep,
		Check:           runCheck,
		Reboot:          func(reason string) error { return firmwareReboot(env, logf, reason) },
		ReleaseWatchdog: func() string { return releaseWatchdog(env) },
		Uptime:          bootTime,
		BootID:          chain.BootID(env.FS),
		Release:         chain.Release(env.FS),
	}, nil
}

// withHealth runs fn with the health checks wired to the machine and a
// logger to the kernel log and stderr.
func withHealth(env *Env, fn func(health.Env, *klog.Logger) error) error {
	l := klog.Open(env.FS, env.Stderr)
	defer l.Close()
	h, err := healthEnv(env, l.Logf)
	if err != nil {
		return err
	}
	return fn(h, l)
}

// bootTime is the time since this kernel started, from CLOCK_BOOTTIME,
// which needs no /proc.
func bootTime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

// runCheck runs HEALTH_CMD with /bin/sh and a time limit.
func runCheck(cmd string, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Env = append(os.Environ(), "PATH="+searchPath)
	out, err := c.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within %v", limit)
	}
	return string(out), err
}

// firmwareReboot reboots so that the provider's kernel comes back: nothing
// stays loaded for kexec, the flag in /run tells kxboot's own reboot hook
// to stand aside, and the init system does a clean reboot. If the machine
// is still up two minutes later, it syncs, remounts read-only and resets.
func firmwareReboot(env *Env, logf func(string, ...any), reason string) error {
	env.Engine.Unload()
	fastreboot.RequestFirmware(env.FS, reason)
	logf("kxboot: rebooting through the firmware, so the provider's kernel comes back: %s", reason)
	c := exec.Command("reboot")
	c.Env = append(os.Environ(), "PATH="+searchPath)
	c.Path, _ = exec.LookPath("reboot")
	if c.Path == "" {
		for _, p := range strings.Split(searchPath, ":") {
			if _, err := os.Stat(p + "/reboot"); err == nil {
				c.Path = p + "/reboot"
				break
			}
		}
	}
	err := errors.New("no reboot command found")
	if c.Path != "" {
		if err = c.Run(); err == nil {
			time.Sleep(2 * time.Minute)
			err = errors.New("the init system did not reboot within two minutes")
		}
	}
	logf("kxboot: %v; forcing a reset", err)
	if env.Mounts != nil {
		mounts.RemountReadOnly(env.FS, env.Mounts)
	}
	return env.Engine.Reboot()
}

func runMarkGood(env *Env, args []string) error {
	fs := newFlags(env, "mark-good", "",
		`Confirm that the kernel kxboot hopped into is healthy: run HEALTH_CMD (again
every 10 s until it succeeds or HEALTH_DEADLINE passes), then clear the count of
tries. The boot runs it at its end; on a boot that did not come through kxboot
it does nothing.`)
	if err := fs.parse(args); err != nil {
		return err
	}
	return withHealth(env, func(h health.Env, l *klog.Logger) error {
		what, err := health.Confirm(h)
		if err != nil {
			return err
		}
		l.Out = env.Stdout
		l.Logf("kxboot: mark-good: %s", what)
		return nil
	})
}

func runMarkBad(env *Env, args []string) error {
	fs := newFlags(env, "mark-bad", "[--reason R] [--no-reboot]",
		`Record that the kernel kxboot hopped into failed, and reboot through the
firmware so that the provider's kernel comes back. The failure counts toward
MAX_TRIES.`)
	reason := fs.String("reason", "marked bad by kxboot mark-bad", "why, for the history")
	noReboot := fs.Bool("no-reboot", false, "only record the failure")
	if err := fs.parse(args); err != nil {
		return err
	}
	return withHealth(env, func(h health.Env, _ *klog.Logger) error {
		err := health.Fail(h, *reason, !*noReboot)
		if errors.Is(err, health.ErrNotAHop) {
			return fmt.Errorf("%w (no marker on the command line): there is no try to fail; to stop the chain boot, set ENABLED=no in %s", err, config.Path)
		}
		return err
	})
}

func runWatch(env *Env, args []string) error {
	fs := newFlags(env, "watch", "",
		`The deadline watcher: on a boot that came through kxboot with its try still
unconfirmed, wait until HEALTH_DEADLINE seconds after the hop; if no
confirmation came, record the failure and reboot through the firmware. The
chain boot starts it; it returns at once when there is nothing to watch.`)
	if err := fs.parse(args); err != nil {
		return err
	}
	return withHealth(env, func(h health.Env, _ *klog.Logger) error { return health.Watch(h) })
}

func runReset(env *Env, args []string) error {
	fs := newFlags(env, "reset", "",
		`Forget the count of tries (and a damaged try record), so that the next boot
hops into the configured kernel again. The history keeps what happened.`)
	if err := fs.parse(args); err != nil {
		return err
	}
	s := tries.Store{FS: env.FS, Mounts: env.Mounts}
	var before tries.Record
	var damaged error
	if _, err := s.Update(func(r tries.Record, rerr error) (tries.Record, error) {
		before, damaged = r, rerr
		if rerr != nil {
			return tries.Record{}, nil
		}
		return tries.Reset(r), nil
	}); err != nil {
		return fmt.Errorf("cannot write %s: %w", tries.RecordPath, err)
	}
	reason := fmt.Sprintf("%d unconfirmed tries forgotten", before.Tries)
	if damaged != nil {
		reason = "replaced a damaged record: " + damaged.Error()
	}
	s.Append(tries.Entry{Time: time.Now(), Boot: chain.BootID(env.FS), Running: chain.Release(env.FS), Kernel: before.Kernel, Event: "reset", Reason: reason})
	fmt.Fprintf(env.Stdout, "kxboot: %s; the next boot hops again (see kxboot chain --dry-run)\n", reason)
	return nil
}

func runHistory(env *Env, args []string) error {
	fs := newFlags(env, "history", "[--json] [-n N]", "Show the chain boot's history: each hop, abort, confirmation, failure and fallback, oldest first.")
	asJSON := fs.Bool("json", false, "print the entries as JSON lines")
	n := fs.Int("n", 0, "only the last N entries")
	if err := fs.parse(args); err != nil {
		return err
	}
	es, err := tries.Store{FS: env.FS}.ReadHistory()
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", tries.HistoryPath, err)
	}
	if *n > 0 && len(es) > *n {
		es = es[len(es)-*n:]
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		for _, e := range es {
			enc.Encode(e)
		}
		return nil
	}
	if len(es) == 0 {
		fmt.Fprintf(env.Stdout, "no history yet (%s)\n", tries.HistoryPath)
	}
	writeHistory(env.Stdout, es, "")
	return nil
}

// writeHistory prints entries one line each.
func writeHistory(w io.Writer, es []tries.Entry, pad string) {
	for _, e := range es {
		try := ""
		if e.Try > 0 && e.Max > 0 {
			try = fmt.Sprintf(" try %d/%d", e.Try, e.Max)
		} else if e.Try > 0 {
			try = fmt.Sprintf(" try %d", e.Try)
		}
		line := fmt.Sprintf("%s%s  on %s  %s%s", pad, e.Time.Local().Format("2006-01-02 15:04:05"), orDash(e.Running), e.Event, try)
		if e.Kernel != "" {
			line += "  " + e.Kernel
		}
		if e.Reason != "" {
			line += ": " + e.Reason
		}
		fmt.Fprintln(w, line)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
