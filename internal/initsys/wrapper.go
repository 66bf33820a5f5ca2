package initsys

import (
	"fmt"
	"os"

	"github.com/kxboot/kxboot/internal/initwrap"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// SbinInit is the init the kernel starts, which the wrapper stands in for.
const SbinInit = "/sbin/init"

// wrapper places the chain boot in PID 1's first moment: /sbin/init leads
// to kxboot, which hops or hands over to the original init
// (internal/initwrap). It is no init system: the confirmation and the fast
// reboot go to the one that runs the machine.
type wrapper struct{}

func (wrapper) Name() Name { return Wrapper }

func (wrapper) Preflight(c Context) error {
	if c.FS.Exists(initwrap.Original) {
		return fmt.Errorf("%s exists: an earlier wrapper install was not undone; restore /sbin/init from it by hand (or reinstall the init package), then install again", initwrap.Original)
	}
	if !c.FS.Exists(SbinInit) {
		return fmt.Errorf("%s does not exist, so there is no init to wrap; choose --mode systemd, sysvinit or openrc", SbinInit)
	}
	// The kernel mounts only the root before it starts init: a binary on
	// another file system (a separate /usr) would leave /sbin/init
	// pointing at nothing.
	if !sameDevice(c.FS, c.Binary, "/") {
		return fmt.Errorf("%s is not on the root file system, which is all the kernel has mounted when it starts /sbin/init; copy kxboot to /sbin/kxboot and install with --binary /sbin/kxboot, or choose a service mode", c.Binary)
	}
	// Likewise the try record the chain writes before the hop.
	if p := SeparateMount(c.FS, stateMounts...); p != "" {
		return fmt.Errorf("%s is a separate mount, and the wrapper runs before anything but / is mounted, so the try record it writes to %s would land under the mount point; choose --mode systemd, sysvinit or openrc", p, StateDir)
	}
	return nil
}

// Chain moves the init aside, with dpkg-divert where dpkg would otherwise
// put a new one back at the next upgrade of the init package, and links
// /sbin/init to kxboot.
func (wrapper) Chain(c Context) []journal.Step {
	var steps []journal.Step
	if hasDpkg(c.FS) {
		steps = append(steps, journal.Command(
			[]string{"dpkg-divert", "--package", "kxboot", "--divert", initwrap.Original, "--rename", "--add", SbinInit},
			[]string{"dpkg-divert", "--package", "kxboot", "--divert", initwrap.Original, "--rename", "--remove", SbinInit}))
	} else {
		steps = append(steps, journal.Rename(SbinInit, initwrap.Original))
	}
	return append(steps, journal.Link(SbinInit, c.Binary))
}

func (wrapper) Traces(job string) []string {
	if job != journal.JobChain {
		return nil
	}
	return []string{initwrap.Original}
}

// hasDpkg says whether the machine's packages are dpkg's, so that
// dpkg-divert can keep /sbin/init ours across init package upgrades.
func hasDpkg(fsys rootfs.FS) bool {
	return fsys.Exists("/var/lib/dpkg/status") && (fsys.Exists("/usr/bin/dpkg-divert") || fsys.Exists("/bin/dpkg-divert"))
}

// WrapperIntact says, for a wrapper install, whether /sbin/init still
// leads to kxboot; a package upgrade that replaced it (without dpkg-divert)
// turns the chain boot off silently otherwise.
func WrapperIntact(fsys rootfs.FS, r *journal.Record) (bool, string) {
	if r == nil || Name(r.Mode) != Wrapper {
		return true, ""
	}
	t, err := os.Readlink(fsys.Path(SbinInit))
	if err != nil || t != r.Binary {
		return false, fmt.Sprintf("%s no longer leads to %s (an init package upgrade replaced it?); the chain boot does not run: kxboot uninstall, then kxboot install chain", SbinInit, r.Binary)
	}
	return true, ""
}
