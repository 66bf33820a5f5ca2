package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/install"
	"github.com/kxboot/kxboot/internal/klog"
	"github.com/kxboot/kxboot/internal/plan"
	"github.com/kxboot/kxboot/internal/tries"
)

type statusReport struct {
	Release   string            `json:"release"`
	Cmdline   string            `json:"cmdline"`
	ViaKxboot bool              `json:"via_kxboot"`
	Marker    string            `json:"marker,omitempty"` // the marker found on the running command line
	Loaded    bool              `json:"loaded"`
	LoadedErr string            `json:"loaded_error,omitempty"`
	Config    string            `json:"config"` // path, or "" when none
	Format    string            `json:"config_format,omitempty"`
	Values    map[string]string `json:"config_values,omitempty"`
	ConfigErr string            `json:"config_error,omitempty"`
	Next      *plan.Plan        `json:"next,omitempty"`
	Installed string            `json:"installed,omitempty"` // "chain wrapper", ...
	Broken    string            `json:"install_problem,omitempty"`
	LastChain string            `json:"last_chain,omitempty"` // this boot's chain decision
	Reboot    string            `json:"next_reboot"`          // what the next reboot boots

	NextErr string `json:"next_error,omitempty"`

	// The tries: the fallback (why the chain boot stopped), the record,
	// and the newest history.
	Fallback string        `json:"fallback,omitempty"`
	Tries    *tries.Record `json:"tries,omitempty"`
	TriesErr string        `json:"tries_error,omitempty"`
	MaxTries int           `json:"max_tries"`
	History  []tries.Entry `json:"history,omitempty"`
}

func runStatus(env *Env, args []string) error {
	fs := newFlags(env, "status", "[--json]", "Show the running kernel, whether this boot came through kxboot, whether a kernel is loaded, and the configuration in force.")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.parse(args); err != nil {
		return err
	}
	var r statusReport
	r.Release, _ = env.FS.ReadString("/proc/sys/kernel/osrelease")
	r.Cmdline, _ = env.FS.ReadString("/proc/cmdline")
	cfg, err := config.Load(env.FS)
	if err != nil {
		r.ConfigErr = err.Error()
		cfg = &config.Config{}
	}
	r.Config, r.Format, r.Values = cfg.Path, cfg.Format, cfg.Values
	r.Marker, r.ViaKxboot = cmdline.Parse(r.Cmdline).HasMarker(cmdline.Markers(cfg.Marker))
	r.Loaded, err = env.Engine.Loaded()
	if err != nil {
		r.LoadedErr = err.Error()
	}
	if r.ConfigErr == "" {
		p, err := plan.Make(env.FS, cfg, plan.Flags{})
		if err != nil {
			r.NextErr = err.Error()
		} else {
			r.Next = &p
		}
	}
	if rec, err := install.ReadRecord(env.FS); err != nil {
		r.Broken = err.Error()
	} else if rec != nil {
		r.Installed = rec.Job + " " + string(rec.Mode)
		if ok, why := install.WrapperIntact(env.FS, rec); !ok {
			r.Broken = why
		}
	}
	r.LastChain = klog.LastChain(env.FS)
	r.Reboot = nextReboot(env)
	r.MaxTries = cfg.MaxTries
	store := tries.Store{FS: env.FS}
	if rec, err := store.Read(); err != nil {
		r.TriesErr = err.Error()
	} else if rec.Kernel != "" || rec.Tries > 0 {
		r.Tries = &rec
	}
	if !r.ViaKxboot && r.ConfigErr == "" {
		if d := chain.Decide(chain.Gather(env.FS)); d.Fallback {
			r.Fallback = d.Reason
		}
	}
	if h, err := store.ReadHistory(); err == nil && len(h) > 0 {
		r.History = h[max(0, len(h)-5):]
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	w := env.Stdout
	if r.Fallback != "" {
		fmt.Fprintf(w, "FALLBACK:   the chain boot stopped; this is the provider's kernel: %s\n", r.Fallback)
	}
	fmt.Fprintf(w, "kernel:     %s\n", r.Release)
	fmt.Fprintf(w, "cmdline:    %s\n", r.Cmdline)
	if r.ViaKxboot {
		fmt.Fprintf(w, "via kxboot: yes (%s is on the command line)\n", r.Marker)
	} else {
		fmt.Fprintf(w, "via kxboot: no\n")
	}
	switch {
	case r.LoadedErr != "":
		fmt.Fprintf(w, "loaded:     unknown (%s)\n", r.LoadedErr)
	case r.Loaded:
		fmt.Fprintf(w, "loaded:     yes (kxboot exec --force or a kexec reboot starts it)\n")
	default:
		fmt.Fprintf(w, "loaded:     no\n")
	}
	switch {
	case r.Broken != "":
		fmt.Fprintf(w, "installed:  %s; WARNING: %s\n", orNone(r.Installed), r.Broken)
	case r.Installed != "":
		fmt.Fprintf(w, "installed:  %s (undo: kxboot uninstall)\n", r.Installed)
	default:
		fmt.Fprintf(w, "installed:  nothing (kxboot install chain sets up the chain boot)\n")
	}
	if r.LastChain != "" {
		fmt.Fprintf(w, "this boot:  %s\n", r.LastChain)
	}
	fmt.Fprintf(w, "reboot:     %s\n", r.Reboot)
	writeTries(w, r)
	switch {
	case r.ConfigErr != "":
		fmt.Fprintf(w, "config:     broken: %s\n", r.ConfigErr)
	case r.Config == "":
		fmt.Fprintf(w, "config:     none (%s is absent: defaults apply)\n", config.Path)
	default:
		fmt.Fprintf(w, "config:     %s (%s format)\n", r.Config, r.Format)
	}
	switch {
	case r.Next != nil:
		fmt.Fprintf(w, "next load:  %s", indent(r.Next.Describe(), "            "))
	case r.NextErr != "":
		fmt.Fprintf(w, "next load:  impossible: %s\n", r.NextErr)
	}
	return nil
}

// writeTries shows the count of tries, the last failure and the newest
// history.
func writeTries(w io.Writer, r statusReport) {
	switch t := r.Tries; {
	case r.TriesErr != "":
		fmt.Fprintf(w, "tries:      DAMAGED: %s (the chain boot stays off until kxboot reset)\n", r.TriesErr)
	case t == nil:
		fmt.Fprintf(w, "tries:      none yet (at most %d unconfirmed hops in a row)\n", r.MaxTries)
	case t.Pending && r.ViaKxboot:
		fmt.Fprintf(w, "tries:      this boot is try %d of %d of %s, waiting for kxboot mark-good\n", t.Tries, r.MaxTries, t.Kernel)
	case t.Tries == 0:
		fmt.Fprintf(w, "tries:      0 unconfirmed; %s confirmed healthy %s\n", t.Kernel, t.Confirmed.Local().Format("2006-01-02 15:04:05"))
	default:
		left := max(0, r.MaxTries-t.Tries)
		fmt.Fprintf(w, "tries:      %d of %d unconfirmed for %s (%d left)\n", t.Tries, r.MaxTries, t.Kernel, left)
	}
	if t := r.Tries; t != nil && t.Failure != nil {
		f := t.Failure
		fmt.Fprintf(w, "last failure: %s, try %d of %s: %s\n", f.Time.Local().Format("2006-01-02 15:04:05"), f.Try, f.Kernel, f.Reason)
	}
	if len(r.History) > 0 {
		fmt.Fprintf(w, "history:    (newest last; kxboot history shows all)\n")
		writeHistory(w, r.History, "  ")
	}
}

func orNone(s string) string {
	if s == "" {
		return "nothing recorded"
	}
	return s
}

// indent indents every line but the first.
func indent(s, pad string) string {
	return strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+pad) + "\n"
}
