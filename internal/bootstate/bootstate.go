// Package bootstate is the one answer to "what is this machine, how did
// this boot come, and what boots next": Read gathers it once per command
// (the running kernel, the config, the plan, the try record, the installs,
// the chain boot's decision and the next reboot's), and status, the dry
// runs and doctor read that value instead of working it out again.
package bootstate

import (
	"strings"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/fastreboot"
	"github.com/kxboot/kxboot/internal/initsys"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/klog"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/tries"
)

// Via is how this boot came.
type Via string

const (
	// Firmware: no kxboot marker on the command line; the firmware, the
	// provider or a boot loader started this kernel.
	Firmware Via = "firmware"
	// Chain: the chain boot hopped into this kernel at boot.
	Chain Via = "chain"
	// FastReboot: kxboot's fast reboot loaded this kernel at the last
	// shutdown.
	FastReboot Via = "fast-reboot"
	// Kexec: the marker is there but the history names no hop or fast
	// reboot that made it (kxboot load and exec by hand).
	Kexec Via = "kexec"
)

// State is the machine as one command sees it.
type State struct {
	Release string
	Cmdline string
	BootID  string
	Marker  string // the kxboot marker on the running command line, "" when none
	Via     Via
	Init    initsys.Name // the init system that runs the machine

	// The installs: their records (nil when not installed), a record
	// that cannot be read, and a wrapper install that no longer holds.
	Chain, Reboot  *journal.Record
	InstallErr     error
	InstallProblem string

	// In is what the chain boot's decision reads: the config, the plan,
	// the try record.
	In chain.Input
	// NextBoot is the chain boot's decision on this machine now: on a
	// boot that came through kxboot, the loop guard; otherwise what a
	// boot would do (a fallback says why the chain boot stopped).
	NextBoot chain.Decision
	// NextReboot is what the next reboot does.
	NextReboot fastreboot.Next

	Loaded    bool // a kernel is loaded for kexec
	LoadedErr error
	LastChain string // this boot's chain decision, from the kernel log
	History   []tries.Entry
	// StateOn is the device of the try record shown, when it is not this
	// machine's own (a slot's root, tries.StateParam).
	StateOn string
}

// Loader says whether a kernel is loaded for kexec (kexec.Engine).
type Loader interface {
	Loaded() (bool, error)
}

// Read gathers the state. loaded may be nil (nothing is asked of the
// kernel then).
func Read(fsys rootfs.FS, loaded Loader) State {
	var s State
	s.Release = chain.Release(fsys)
	s.Cmdline, _ = fsys.ReadString("/proc/cmdline")
	s.BootID = chain.BootID(fsys)
	s.Init = initsys.Running(fsys).Name()
	s.In = chain.Gather(fsys)
	if s.In.ConfigErr != nil || s.In.PlanErr != nil {
		// Gather stops before the try record then; the status still
		// shows it.
		s.In.Record, s.In.RecordErr = tries.Store{FS: fsys}.Read()
	}
	own := ""
	if s.In.Config != nil {
		own = s.In.Config.Marker
	}
	s.Marker, _ = cmdline.Parse(s.Cmdline).Chained(own)
	s.Chain, s.InstallErr = journal.Read(fsys, journal.JobChain)
	if ok, why := initsys.WrapperIntact(fsys, s.Chain); !ok {
		s.InstallProblem = why
	}
	s.Reboot, _ = journal.Read(fsys, journal.JobReboot)
	s.NextBoot = chain.Decide(s.In)
	s.NextReboot = fastreboot.PlanFor(fsys, s.In, s.Chain != nil, s.Reboot != nil)
	if loaded != nil {
		s.Loaded, s.LoadedErr = loaded.Loaded()
	}
	s.LastChain = klog.LastChain(fsys)
	st := tries.Store{FS: fsys}
	// A slot's root shows the try record of the machine that hopped.
	if err := st.Locate(s.Cmdline); err != nil {
		s.In.RecordErr = err
	} else if st.Located() != "" {
		s.In.Record, s.In.RecordErr = st.Read()
		s.StateOn = st.Located()
	}
	s.History, _ = st.ReadHistory()
	s.Via = via(s.Marker, s.BootID, s.History)
	return s
}

// via tells how this boot came: without the marker, through the firmware;
// with it, by what the boot before this one wrote into the history last
// before it loaded the kernel that runs (a hop of the chain boot, or a
// fast reboot's load at shutdown).
func via(marker, boot string, h []tries.Entry) Via {
	if marker == "" {
		return Firmware
	}
	prev := ""
	for i := len(h) - 1; i >= 0; i-- {
		e := h[i]
		switch {
		case e.Boot == boot && boot != "":
			continue // this boot's own lines
		case prev == "":
			prev = e.Boot
		case e.Boot != prev:
			return Kexec // the boot before wrote no load
		}
		switch {
		case e.Event == "fast-reboot", e.Event == "hop" && strings.HasPrefix(e.Reason, fastreboot.TryPrefix):
			return FastReboot
		case e.Event == "hop":
			return Chain
		}
	}
	return Kexec
}

// ByHop says whether a boot that came this way is one kxboot chose and
// loaded (a chain hop or a fast reboot), and so has a try of its own.
func (v Via) ByHop() bool { return v == Chain || v == FastReboot }

// Entries, as status names them: the tries' entries, and the kernel the
// firmware (the provider, a boot loader) started.
const Provider = "provider"

// Entry is which entry this boot is, and why it was chosen. A boot that
// came through a hop or a fast reboot is the try record's last hop; any
// other is the provider's kernel, for the reason the chain boot gave at
// this boot (or the one it would give).
func (s State) Entry() (entry, why string) {
	r := s.In.Record
	if s.Via.ByHop() && r.Entry != "" {
		return r.Entry, r.Why
	}
	if s.Via != Firmware {
		return Provider, "this kernel was loaded by hand (kxboot load, kxboot exec), not chosen by a hop"
	}
	switch {
	case s.LastChain != "":
		return Provider, "the chain boot at this boot said: " + s.LastChain
	case s.Chain == nil:
		return Provider, "the chain boot is not installed"
	}
	return Provider, "no chain boot decision was logged at this boot"
}

// ViaKxboot says whether this boot came through kxboot at all.
func (s State) ViaKxboot() bool { return s.Marker != "" }

// Fallback is why the chain boot stopped on this kernel, or "" when it did
// not (a boot that came through kxboot never is a fallback).
func (s State) Fallback() string {
	if s.ViaKxboot() || s.In.ConfigErr != nil || !s.NextBoot.Fallback {
		return ""
	}
	return s.NextBoot.Reason
}
