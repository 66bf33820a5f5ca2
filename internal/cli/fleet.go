package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"time"

	"github.com/kxboot/kxboot/internal/atomicfile"
	"github.com/kxboot/kxboot/internal/bootstate"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/kernels"
	"github.com/kxboot/kxboot/internal/status"
)

// The commands fleet tools drive: verify, reboot-required and metrics.
// They read the same status report as kxboot status.

// report reads the machine's status report.
func report(env *Env) status.Report {
	return status.From(bootstate.Read(env.FS, env.Engine))
}

// pollEvery is how often verify --wait reads the state again.
var pollEvery = 2 * time.Second

func runVerify(env *Env, args []string) error {
	fs := newFlags(env, "verify", "(--expect-release R | --expect-kernel PATH) [--require-confirmed] [--wait SECONDS] [--json]",
		`Say whether the machine runs the kernel it should, for fleet tools after a
reboot. Exit status: 0 as expected; 1 another kernel runs; 2 not confirmed
(yet) by kxboot mark-good; 3 kxboot fell back (the chain boot stopped, or the
known-good or the provider's kernel runs after a failed hop); 4 cannot tell.
One line on stdout (--json: one JSON object with code, verdict and message).`)
	var w status.Want
	fs.StringVar(&w.Release, "expect-release", "", "the release that should run (uname -r)")
	fs.StringVar(&w.Kernel, "expect-kernel", "", "the kernel file that should run")
	fs.BoolVar(&w.RequireConfirmed, "require-confirmed", false, "also require kxboot mark-good's confirmation of this boot")
	wait := fs.Int("wait", 0, "seconds to wait for the confirmation (or for the expected kernel to confirm)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.parse(args); err != nil {
		return err
	}
	switch {
	case (w.Release == "") == (w.Kernel == ""):
		return fmt.Errorf("%w: say what should run: --expect-release R (as uname -r prints it) or --expect-kernel PATH, one of them", errUsage)
	case *wait < 0:
		return fmt.Errorf("%w: --wait %d: give a number of seconds, 0 or more", errUsage, *wait)
	}
	if w.Kernel != "" {
		w.Kernel = path.Clean(w.Kernel)
		w.KernelRelease = kernels.ReleaseOf(env.FS, w.Kernel)
		// KERNEL=/vmlinuz and --expect-kernel /boot/vmlinuz-6.1.0-57 (or
		// the other way round) name one file.
		w.SameFile = func(a, b string) bool {
			ra, errA := env.FS.Resolve(a)
			rb, errB := env.FS.Resolve(b)
			return errA == nil && errB == nil && ra == rb
		}
	}
	deadline := time.Now().Add(time.Duration(*wait) * time.Second)
	v := status.Verify(report(env), w)
	for v.Code == status.VerifyUnconfirmed && time.Now().Before(deadline) {
		time.Sleep(min(pollEvery, time.Until(deadline)))
		v = status.Verify(report(env), w)
	}
	if *asJSON {
		if err := json.NewEncoder(env.Stdout).Encode(v); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(env.Stdout, v.Line)
	}
	if v.Code != 0 {
		return exitError(v.Code)
	}
	return nil
}

func runRebootRequired(env *Env, args []string) error {
	fs := newFlags(env, "reboot-required", "[--json]",
		`Exit 0 when the next reboot would boot another kernel than the running one
(a newer kernel installed, KERNEL= changed), 1 when not, 4 when it cannot be
told; one line on stdout says why. For kured: --reboot-sentinel-command.`)
	asJSON := fs.Bool("json", false, "print JSON (reboot_required, reason, next_kernel)")
	if err := fs.parse(args); err != nil {
		return err
	}
	r := report(env)
	code := 1
	switch {
	case r.RebootRequired:
		code = 0
	case r.RebootUnknown:
		code = 4
	}
	if *asJSON {
		out := struct {
			Required bool           `json:"reboot_required"`
			Reason   string         `json:"reason"`
			Next     *status.Kernel `json:"next_kernel,omitempty"`
			Release  string         `json:"release"`
		}{r.RebootRequired, r.RebootWhy, r.NextKernel, r.Release}
		if err := json.NewEncoder(env.Stdout).Encode(out); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(env.Stdout, r.RebootWhy)
	}
	if code != 0 {
		return exitError(code)
	}
	return nil
}

func runMetrics(env *Env, args []string) error {
	fs := newFlags(env, "metrics", "[--textfile-dir DIR]",
		`Print the boot state as Prometheus metrics, or with --textfile-dir write them
to DIR/kxboot.prom for the node exporter's textfile collector (atomically:
a temporary file renamed over the old). METRICS_DIR= in the config makes
kxboot mark-good do that at every boot.`)
	dir := fs.String("textfile-dir", "", "the directory of the node exporter's textfile collector, e.g. /var/lib/prometheus/node-exporter")
	if err := fs.parse(args); err != nil {
		return err
	}
	r := report(env)
	if *dir == "" {
		return status.WriteMetrics(env.Stdout, r)
	}
	return writeMetrics(env, *dir, r)
}

// writeMetrics replaces dir/kxboot.prom with the report's metrics.
func writeMetrics(env *Env, dir string, r status.Report) error {
	var b bytes.Buffer
	if err := status.WriteMetrics(&b, r); err != nil {
		return err
	}
	p := path.Join(dir, status.MetricsFile)
	if err := atomicfile.Write(env.FS.Path(p), b.Bytes(), 0o644); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot write the metrics to %s: the directory %s does not exist; create it or fix METRICS_DIR in %s", p, dir, config.Path)
		}
		return fmt.Errorf("cannot write the metrics to %s: %v", p, err)
	}
	return nil
}

// refreshMetrics rewrites the metrics when cfg names METRICS_DIR, after a
// command that changed the boot state. A failure is logged, never fatal:
// the metrics must not fail a boot's confirmation.
func refreshMetrics(env *Env, cfg *config.Config, logf func(string, ...any)) {
	if cfg == nil || cfg.MetricsDir == "" {
		return
	}
	if err := writeMetrics(env, cfg.MetricsDir, report(env)); err != nil {
		logf("kxboot: metrics: %v", err)
	}
}
