// Package initsys knows the init systems kxboot works with: which one runs
// the machine, how to ask it for a clean reboot, whether its shutdown is a
// reboot or a poweroff, and what to write into it to place kxboot's chain
// boot, its confirmation and its fast reboot (as journal steps, which
// package install records, makes and undoes). Each init system is one
// adapter file (systemd.go, sysvinit.go, openrc.go); the init wrapper, a
// way to place the chain boot but no init system, is wrapper.go. Adding an
// init system is adding an adapter file and its place in the registry
// below.
package initsys

import (
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/atomicfile"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/mounts"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// Name names a way to place the chain boot: an init system, the wrapper,
// or auto (choose).
type Name string

const (
	Auto     Name = "auto"
	Wrapper  Name = "wrapper" // kxboot stands in for /sbin/init
	Systemd  Name = "systemd"
	Sysvinit Name = "sysvinit"
	OpenRC   Name = "openrc"
)

// Context is what an adapter plans an install from.
type Context struct {
	FS     rootfs.FS
	Binary string // in-machine path of the kxboot binary the boot runs
	// KernelDir is the directory of the kernel the chain boot hops into,
	// which must be mounted before it runs.
	KernelDir string
	// Late: /boot or kxboot's state directory is its own mount, so the
	// chain boot runs once the local file systems are mounted.
	Late bool
}

// Placement is a way to run the chain boot early at every boot.
type Placement interface {
	Name() Name
	// Preflight says why the chain boot cannot be placed here, or nil.
	Preflight(c Context) error
	// Chain is the steps that place it.
	Chain(c Context) []journal.Step
	// Traces are the paths an install of job may leave, for an uninstall
	// that finds no record.
	Traces(job string) []string
}

// Init is an init system that runs the machine: besides placing the chain
// boot, it runs the confirmation at the end of each boot and carries the
// fast reboot.
type Init interface {
	Placement
	// Detect says whether this init system runs the machine now.
	Detect(fsys rootfs.FS) bool
	// Confirm is the steps of the service that runs kxboot mark-good at
	// the end of every boot, or why there can be none.
	Confirm(c Context) ([]journal.Step, error)
	// Reboot is the steps of the fast reboot, or why it cannot be placed.
	Reboot(c Context) ([]journal.Step, error)
	// RebootCommand asks the init system for a clean reboot.
	RebootCommand(fsys rootfs.FS) []string
	// Rebooting says, at shutdown, whether the machine is going down for
	// a reboot (not a poweroff or halt); getenv reads the environment the
	// init system gave the glue. An error means it cannot tell.
	Rebooting(fsys rootfs.FS, getenv func(string) string) (bool, error)
	// RebootSignal says in a sentence how a shutdown tells a reboot from
	// a poweroff on this machine, for doctor and install; every is false
	// when some reboots (or all) go through the firmware all the same.
	RebootSignal(fsys rootfs.FS) (how string, every bool)
}

// inits are the init systems, in the order they are looked for; the last
// is what runs when no other is found.
var inits = []Init{systemd{}, openrc{}, sysvinit{}}

// Placements are the modes a user can name, auto aside.
func Placements() []Placement {
	out := []Placement{wrapper{}}
	for _, i := range inits {
		out = append(out, i)
	}
	return out
}

// Running is the init system that runs the machine now.
func Running(fsys rootfs.FS) Init {
	for _, i := range inits[:len(inits)-1] {
		if i.Detect(fsys) {
			return i
		}
	}
	return inits[len(inits)-1]
}

// Get is the placement of a name (not auto).
func Get(n Name) (Placement, error) {
	var names []string
	for _, p := range Placements() {
		if p.Name() == n {
			return p, nil
		}
		names = append(names, string(p.Name()))
	}
	return nil, fmt.Errorf("unknown mode %q: use auto, %s", n, strings.Join(names, ", "))
}

// Choose resolves auto: the earliest placement that stays safe. The wrapper
// runs before any service, but only dpkg-divert keeps it in place when the
// init package is upgraded, and it cannot write its try record to a
// separate /var; elsewhere the service of the running init is the safe
// choice.
func Choose(fsys rootfs.FS, want Name) Name {
	if want != Auto && want != "" {
		return want
	}
	if hasDpkg(fsys) && SeparateMount(fsys, stateMounts...) == "" {
		return Wrapper
	}
	return Running(fsys).Name()
}

// The scripts of the init systems that run scripts from /etc/init.d
// (sysvinit, OpenRC), by job.
const (
	ChainScript   = "/etc/init.d/kxboot-chain"
	ConfirmScript = "/etc/init.d/kxboot-confirm"
	RebootScript  = "/etc/init.d/kxboot-reboot"
	JumpScript    = "/etc/init.d/kxboot-reboot-jump"
)

// StateDir is where the chain writes its try record before the hop.
const StateDir = journal.Dir

// LateMounts are the paths the chain needs before the hop: it reads the
// kernel under /boot and writes its try record under StateDir. When any is
// its own mount, the chain runs once the local file systems are mounted.
var LateMounts = []string{"/boot", "/var", "/var/lib", StateDir}

// stateMounts are the mounts the wrapper, which runs when only / is
// mounted, would write its try record beneath instead of into.
var stateMounts = []string{"/var", "/var/lib", StateDir}

// SeparateMount returns the first of the in-machine paths that is its own
// mount, or "" when all of them are on the root file system.
func SeparateMount(fsys rootfs.FS, points ...string) string {
	ms, _ := mounts.List(fsys)
	for _, p := range points {
		for _, m := range ms {
			if m.Point == p {
				return p
			}
		}
	}
	return ""
}

// sameDevice says whether two in-machine paths are on one file system.
func sameDevice(fsys rootfs.FS, a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(fsys.Path(a), &sa) != nil || unix.Stat(fsys.Path(b), &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}

// PID1 is the base name of the program that runs as PID 1 ("systemd",
// "init", "openrc-init", "busybox"), or "" when it cannot be told.
func PID1(fsys rootfs.FS) string {
	if t, err := os.Readlink(fsys.Path("/proc/1/exe")); err == nil {
		return path.Base(strings.TrimSuffix(t, " (deleted)"))
	}
	return ""
}

// RebootIntent records, for this boot, that kxboot reboot asked for the
// reboot: where the init system cannot tell a reboot from a poweroff
// (upstream busybox init runs the same shutdown for both), the fast reboot
// acts only on this. /run lasts one boot; the boot id guards against a
// copy that outlived it.
const RebootIntent = "/run/kxboot/reboot-intent"

// RecordRebootIntent writes RebootIntent.
func RecordRebootIntent(fsys rootfs.FS) error {
	if err := os.MkdirAll(fsys.Path(path.Dir(RebootIntent)), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(fsys.Path(RebootIntent), []byte(bootID(fsys)+"\n"), 0o644)
}

// rebootIntended says whether kxboot reboot asked for this boot's reboot.
func rebootIntended(fsys rootfs.FS) bool {
	s, err := fsys.ReadString(RebootIntent)
	return err == nil && s != "" && s == bootID(fsys)
}

func bootID(fsys rootfs.FS) string {
	s, _ := fsys.ReadString("/proc/sys/kernel/random/boot_id")
	return s
}

// notInstalled is the refusal of a mode whose init system is absent.
func notInstalled(fsys rootfs.FS, what string) error {
	return fmt.Errorf("%s; choose --mode %s", what, Running(fsys).Name())
}
