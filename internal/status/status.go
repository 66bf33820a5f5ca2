// Package status is kxboot's report of the machine's boot state: what
// `kxboot status` prints, for people and as JSON, built from the one
// bootstate.State a command reads, so that other commands and exporters
// share it. The JSON form is a contract: Schema changes when a field
// changes meaning or goes away, and no two fields say opposite things (a
// value and the error that kept it from being known are never both there).
package status

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kxboot/kxboot/internal/bootstate"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/plan"
	"github.com/kxboot/kxboot/internal/tries"
)

// Schema is the version of the JSON form.
const Schema = 1

// Report is the status. Each value and its *_error field exclude each
// other.
type Report struct {
	Schema    int           `json:"schema"`
	BootID    string        `json:"boot_id,omitempty"`
	Release   string        `json:"release"`
	Cmdline   string        `json:"cmdline"`
	Via       bootstate.Via `json:"via"` // firmware, chain, fast-reboot, kexec
	ViaKxboot bool          `json:"via_kxboot"`
	Marker    string        `json:"marker,omitempty"` // the marker found on the running command line
	Init      string        `json:"init"`             // the init system that runs the machine
	// Entry is which entry this boot is (once, configured, known-good,
	// provider), and EntryWhy why it was chosen.
	Entry    string `json:"entry"`
	EntryWhy string `json:"entry_reason"`

	Loaded    *bool  `json:"loaded,omitempty"` // absent when it cannot be told
	LoadedErr string `json:"loaded_error,omitempty"`
	// Preloaded is the kernel the fast reboot preloaded for the next
	// reboot (REBOOT_PRELOAD), when that is what is loaded.
	Preloaded string `json:"preloaded,omitempty"`

	Config    string            `json:"config,omitempty"` // the file read; absent when none
	Format    string            `json:"config_format,omitempty"`
	Values    map[string]string `json:"config_values,omitempty"`
	ConfigErr string            `json:"config_error,omitempty"`
	Next      *plan.Plan        `json:"next,omitempty"` // what a load would use
	NextErr   string            `json:"next_error,omitempty"`

	Installed  string `json:"installed,omitempty"` // the chain boot: "chain wrapper", ...
	Broken     string `json:"install_problem,omitempty"`
	FastReboot string `json:"fast_reboot,omitempty"` // the init the fast reboot is installed for
	LastChain  string `json:"last_chain,omitempty"`  // this boot's chain decision
	Reboot     string `json:"next_reboot"`           // what the next reboot boots

	// The tries: the fallback (why the chain boot stopped), the record,
	// and the newest history.
	Fallback string        `json:"fallback,omitempty"`
	Tries    *tries.Record `json:"tries,omitempty"`
	TriesErr string        `json:"tries_error,omitempty"`
	MaxTries int           `json:"max_tries,omitempty"`    // absent when the config cannot be read
	StateOn  string        `json:"state_device,omitempty"` // the device of the try record, when not this root's
	History  []tries.Entry `json:"history,omitempty"`

	// What kxboot meant this boot to be, and whether it proved itself:
	// the kernel the last hop or fast reboot loaded (absent when the try
	// record names none), and whether this boot is that hop, confirmed by
	// kxboot mark-good.
	Expected    *Kernel    `json:"expected,omitempty"`
	Confirmed   bool       `json:"confirmed"`
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	// What the next reboot would run, and whether that differs from this
	// boot (kxboot reboot-required).
	NextKernel     *Kernel `json:"next_kernel,omitempty"`
	RebootRequired bool    `json:"reboot_required"`
	RebootWhy      string  `json:"reboot_required_reason"`
	// RebootUnknown: whether a reboot is required cannot be told.
	RebootUnknown bool `json:"-"`
}

// Kernel names a kernel kxboot boots: its file, its release when known,
// and the entry it is booted as.
type Kernel struct {
	Kernel  string `json:"kernel"`
	Release string `json:"release,omitempty"`
	Entry   string `json:"entry,omitempty"`
}

// historyLines is how much of the history the status shows.
const historyLines = 5

// From builds the report.
func From(s bootstate.State) Report {
	r := Report{Schema: Schema, BootID: s.BootID, Release: s.Release, Cmdline: s.Cmdline,
		Via: s.Via, ViaKxboot: s.ViaKxboot(), Marker: s.Marker, Init: string(s.Init),
		LastChain: s.LastChain, Reboot: s.NextReboot.String(), Fallback: s.Fallback()}
	r.Entry, r.EntryWhy = s.Entry()
	r.StateOn = s.StateOn
	if s.LoadedErr != nil {
		r.LoadedErr = s.LoadedErr.Error()
	} else {
		r.Loaded = &s.Loaded
		if a := s.NextReboot.Ahead; a != nil && s.Loaded {
			r.Preloaded = a.Kernel
		}
	}
	in := s.In
	switch {
	case in.ConfigErr != nil:
		r.ConfigErr = in.ConfigErr.Error()
	default:
		r.Config, r.Format, r.Values, r.MaxTries = in.Config.Path, in.Config.Format, in.Config.Values, in.Config.MaxTries
		if in.PlanErr != nil {
			r.NextErr = in.PlanErr.Error()
		} else {
			p := in.Base
			r.Next = &p
		}
	}
	switch {
	case s.InstallErr != nil:
		r.Broken = s.InstallErr.Error()
	case s.Chain != nil:
		r.Installed = s.Chain.Job + " " + s.Chain.Mode
		r.Broken = s.InstallProblem
	}
	if s.Reboot != nil {
		r.FastReboot = s.Reboot.Mode
	}
	switch {
	case in.RecordErr != nil:
		r.TriesErr = in.RecordErr.Error()
	case in.Record.Kernel != "" || in.Record.Tries > 0:
		rec := in.Record
		r.Tries = &rec
	}
	if h := s.History; len(h) > 0 {
		r.History = h[max(0, len(h)-historyLines):]
	}
	r.Expected, r.Confirmed, r.ConfirmedAt = expected(s)
	r.NextKernel, r.RebootRequired, r.RebootUnknown, r.RebootWhy = nextKernel(s)
	return r
}

// thisHop says whether the try record's last hop made this boot: a boot
// kxboot chose, whose record was not written by this boot itself (a fast
// reboot loading at shutdown writes the next boot's).
func thisHop(s bootstate.State) bool {
	return s.Via.ByHop() && s.In.Record.HopBoot != s.BootID
}

// expected is the kernel the try record's last hop loaded, and whether
// this boot is that hop, confirmed. A hop written by this boot (a fast
// reboot loading at shutdown) is the next boot's, not this one's.
func expected(s bootstate.State) (*Kernel, bool, *time.Time) {
	rec := s.In.Record
	if s.In.RecordErr != nil || rec.Kernel == "" {
		return nil, false, nil
	}
	k := &Kernel{Kernel: rec.Kernel, Entry: rec.Entry}
	if rec.Boot != nil {
		k.Release = rec.Boot.Release
	}
	if !thisHop(s) || rec.Pending || rec.Confirmed.IsZero() || rec.Confirmed.Before(rec.HopTime) {
		return k, false, nil
	}
	at := rec.Confirmed
	return k, true, &at
}

// nextKernel is what the next reboot would run (the fast reboot's load, or
// the chain boot's hop after the firmware), whether that differs from the
// running kernel (another release, or, on a boot kxboot made, another
// kernel file, initrd or command line), whether that cannot be told, and
// why, in one sentence.
func nextKernel(s bootstate.State) (next *Kernel, required, unknown bool, why string) {
	c := s.NextReboot.Choice
	if s.In.ConfigErr != nil || s.In.PlanErr != nil || s.In.RecordErr != nil {
		return nil, false, true, "cannot tell what the next reboot boots: " + s.NextReboot.String()
	}
	if !c.Load {
		return nil, false, false, "the next reboot boots no kernel of kxboot's (" + c.Reason + "), so rebooting changes nothing kxboot knows of"
	}
	b := c.Hop.Boot
	k := &Kernel{Kernel: b.Kernel, Release: b.Release, Entry: c.Hop.Entry}
	rec := s.In.Record
	switch {
	case b.Release == "":
		return k, false, true, "cannot tell the release of " + b.Kernel + ", the kernel the next reboot boots"
	case b.Release != s.Release:
		return k, true, false, fmt.Sprintf("the next reboot boots %s (%s); %s runs", b.Release, b.Kernel, s.Release)
	case thisHop(s) && rec.ID != "" && b.ID != "" && rec.ID != b.ID:
		return k, true, false, fmt.Sprintf("the next reboot boots %s with another kernel file, initrd or command line than this boot's", b.Kernel)
	}
	return k, false, false, fmt.Sprintf("the next reboot boots %s (%s), which runs now", b.Release, b.Kernel)
}

// Write prints the report for people.
func Write(w io.Writer, r Report) {
	if r.Fallback != "" {
		fmt.Fprintf(w, "FALLBACK:   the chain boot stopped; this is the provider's kernel: %s\n", r.Fallback)
	} else {
		fmt.Fprintf(w, "entry:      %s: %s\n", entrySays[r.Entry], r.EntryWhy)
	}
	fmt.Fprintf(w, "kernel:     %s\n", r.Release)
	fmt.Fprintf(w, "cmdline:    %s\n", r.Cmdline)
	if r.ViaKxboot {
		fmt.Fprintf(w, "via kxboot: yes (%s is on the command line)\n", r.Marker)
	} else {
		fmt.Fprintf(w, "via kxboot: no\n")
	}
	fmt.Fprintf(w, "came by:    %s\n", viaSays[r.Via])
	switch {
	case r.LoadedErr != "":
		fmt.Fprintf(w, "loaded:     unknown (%s)\n", r.LoadedErr)
	case *r.Loaded && r.Preloaded != "":
		fmt.Fprintf(w, "loaded:     yes: %s, preloaded for the next reboot (REBOOT_PRELOAD)\n", r.Preloaded)
	case *r.Loaded:
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
}

// entrySays names the entries for people.
var entrySays = map[string]string{
	tries.Once:         "the one-shot kernel",
	tries.Configured:   "the configured kernel",
	tries.KnownGood:    "the last known-good kernel",
	bootstate.Provider: "the provider's kernel",
}

// viaSays words how this boot came.
var viaSays = map[bootstate.Via]string{
	bootstate.Firmware:   "firmware (or the provider, or a boot loader): no kxboot marker",
	bootstate.Chain:      "chain (kxboot's chain boot hopped into this kernel)",
	bootstate.FastReboot: "fast-reboot (kxboot's fast reboot loaded this kernel at the last shutdown)",
	bootstate.Kexec:      "kexec (the marker is there, but no hop or fast reboot of kxboot's is recorded for it)",
}

// writeTries shows the count of tries, the last failure and the newest
// history.
func writeTries(w io.Writer, r Report) {
	if r.StateOn != "" {
		fmt.Fprintf(w, "tries on:   %s (this slot's root confirms its try in the record of the machine that hopped)\n", r.StateOn)
	}
	switch t := r.Tries; {
	case strings.HasPrefix(r.TriesErr, tries.ErrUnreachable.Error()):
		fmt.Fprintf(w, "tries:      UNREACHABLE: %s\n", r.TriesErr)
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
		WriteHistory(w, r.History, "  ")
	}
}

// WriteHistory prints history entries one line each, pad before each.
func WriteHistory(w io.Writer, es []tries.Entry, pad string) {
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
