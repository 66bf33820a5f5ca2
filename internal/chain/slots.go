package chain

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/blockdev"
	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/mounts"
	"github.com/kxboot/kxboot/internal/plan"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/tries"
)

// SlotMounts mounts the slots' root file systems (tests replace it).
var SlotMounts mounts.Sys = mounts.Native{}

// openSlot makes the files of b reachable: for a slot with its own root,
// that root mounted read-only on a scratch directory, which it returns
// (the in-machine prefix of b's paths) with the unmount.
func openSlot(fsys rootfs.FS, b tries.Boot) (string, func(), error) {
	if b.Root == "" {
		return "", func() {}, nil
	}
	dev, err := blockdev.Resolve(fsys, b.Root)
	if err != nil {
		return "", nil, fmt.Errorf("slot %s's root file system cannot be found: %w", b.Slot, err)
	}
	point, unmount, err := mounts.Device(fsys, SlotMounts, dev, "slot-"+b.Slot, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
	if err != nil {
		return "", nil, fmt.Errorf("slot %s's root file system: %w", b.Slot, err)
	}
	return point, unmount, nil
}

// SlotCandidate is what a hop into slot s loads: its kernel and initrds
// (named, or found beside the kernel, inside the slot's root when it has
// one) and its command line: SLOT_<NAME>_CMDLINE, else the usual one with
// root= set to the slot's root. A hop into another root also names, with
// tries.StateParam, the file system of this machine's try record, where
// the slot's kernel confirms its try.
func SlotCandidate(fsys rootfs.FS, cfg *config.Config, s config.Slot, from string) *Candidate {
	c := &Candidate{Boot: tries.Boot{Slot: s.Name, Root: s.Root, Kernel: s.Kernel}, From: from}
	in, done, err := openSlot(fsys, c.Boot)
	if err != nil {
		c.Err = err
		return c
	}
	defer done()
	if in != "" {
		c.From += ", read from " + s.Root + " (mounted read-only to load)"
	}
	f := plan.Flags{Kernel: in + s.Kernel, Initrds: prefixed(in, s.Initrd)}
	if s.Cmdline != "" {
		f.Cmdline = &s.Cmdline
	}
	p, err := plan.Make(fsys, cfg, f)
	if err != nil {
		c.Err = fmt.Errorf("slot %s: %w", s.Name, err)
		return c
	}
	line := cmdline.Parse(p.Cmdline)
	if s.Root != "" {
		if s.Cmdline == "" {
			line = line.Remove("root").Append(cmdline.Cmdline{"root=" + s.Root})
		}
		held := tries.Dir
		for !fsys.Exists(held) && held != "/" {
			held = path.Dir(held)
		}
		spec, err := blockdev.UUIDOf(fsys, held)
		if err != nil {
			c.Err = fmt.Errorf("slot %s boots another root file system, which must confirm its try in this machine's %s, but that cannot be named: %w", s.Name, tries.Dir, err)
			return c
		}
		line = line.Remove(tries.StateParam).Append(cmdline.Cmdline{tries.StateParam + "=" + spec})
	}
	p.Cmdline = hopCmdline(line.RemoveMarkers([]string{p.Marker}).Append(cmdline.Cmdline{p.Marker}).String(), cfg, p.Marker)
	c.Boot.Initrds = unprefixed(in, p.Initrds)
	c.Boot.Cmdline, c.Boot.Release = p.Cmdline, p.Release
	c.Boot.ID = tries.IdentityIn(fsys, in, c.Boot.Kernel, c.Boot.Initrds, c.Boot.Cmdline)
	c.Err = kexec.CheckFiles(fsys, in+s.Kernel, p.Initrds)
	return c
}

func prefixed(in string, ps []string) []string {
	if ps == nil {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = in + p
	}
	return out
}

func unprefixed(in string, ps []string) []string {
	if in == "" {
		return ps
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = strings.TrimPrefix(p, in)
	}
	return out
}

// ActiveSlot is the slot the chain boot boots when nothing else is asked:
// the slot of the last known-good entry, else the first by name.
func ActiveSlot(cfg *config.Config, r tries.Record) (config.Slot, string) {
	if g := r.Good; g != nil && g.Slot != "" {
		if s, ok := cfg.Slot(g.Slot); ok {
			return s, fmt.Sprintf("slot %s, the active one (confirmed %s)", s.Name, g.Confirmed.Local().Format("2006-01-02 15:04:05"))
		}
	}
	s := cfg.Slots[0]
	return s, fmt.Sprintf("slot %s, the first of SLOT_%s_KERNEL in %s:%d (no slot has confirmed yet)", s.Name, s.Name, cfg.Path, s.Line)
}

// Load loads b, mounting its slot's root for the load (the chain boot's
// hop and the fast reboot's).
func Load(fsys rootfs.FS, e *kexec.Engine, b tries.Boot) (kexec.Result, error) {
	in, done, err := openSlot(fsys, b)
	if err != nil {
		return kexec.Result{}, err
	}
	defer done()
	return e.Load(kexec.Request{Kernel: in + b.Kernel, Initrds: prefixed(in, b.Initrds), Cmdline: b.Cmdline})
}
