package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/health"
	"github.com/kxboot/kxboot/internal/klog"
	"github.com/kxboot/kxboot/internal/status"
	"github.com/kxboot/kxboot/internal/tries"
)

// withHealth runs fn with the health checks wired to the machine and a
// logger to the kernel log and stderr.
func withHealth(env *Env, fn func(health.Env, *klog.Logger) error) error {
	l := klog.Open(env.FS, env.Stderr)
	defer l.Close()
	h, err := health.ForMachine(env.FS, env.Engine, env.Mounts, l.Logf)
	if err != nil {
		return err
	}
	return fn(h, l)
}

func runMarkGood(env *Env, args []string) error {
	fs := newFlags(env, "mark-good", "",
		`Confirm that the kernel kxboot hopped into is healthy: run HEALTH_CMD (again
every 10 s until it succeeds or HEALTH_DEADLINE passes), then clear the count of
tries. The boot runs it at its end; on a boot that did not come through kxboot
it confirms nothing. Then, with the fast reboot installed, it preloads the
next reboot's kernel (REBOOT_PRELOAD), so that the shutdown skips the load.`)
	if err := fs.parse(args); err != nil {
		return err
	}
	return withHealth(env, func(h health.Env, l *klog.Logger) error {
		what, err := health.Confirm(h)
		refreshMetrics(env, h.Config, l.Logf)
		if err != nil {
			return err
		}
		l.Out = env.Stdout
		l.Logf("kxboot: mark-good: %s", what)
		// The try is settled: the next reboot's kernel is known now.
		preload(env, l)
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
	reason, err := s.Forget(time.Now(), chain.BootID(env.FS), chain.Release(env.FS))
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "kxboot: %s; the next boot hops again (see kxboot chain --dry-run)\n", reason)
	return nil
}

func runHistory(env *Env, args []string) error {
	fs := newFlags(env, "history", "[--json] [--n N]", "Show the chain boot's history: each hop, abort, confirmation, failure and fallback, oldest first.\n--json prints one JSON object per line (JSON Lines), oldest first.")
	asJSON := fs.Bool("json", false, "print the entries as JSON Lines, one object per line")
	n := fs.Int("n", 0, "only the last N entries (default 0: all)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *n < 0 {
		return fmt.Errorf("%w: --n %d: give a number of entries, 1 or more (0 or none for all)", errUsage, *n)
	}
	st, err := locatedStore(env)
	if err != nil {
		return err
	}
	es, err := st.ReadHistory()
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
	status.WriteHistory(env.Stdout, es, "")
	return nil
}
