package initsys

import (
	"errors"
	"fmt"
	"os/exec"
	"path"
	"strings"

	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// Paths of the systemd units.
const (
	SystemdUnit  = "/etc/systemd/system/kxboot-chain.service"
	SystemdWants = "/etc/systemd/system/sysinit.target.wants"
	ConfirmUnit  = "/etc/systemd/system/kxboot-confirm.service"
	ConfirmWants = "/etc/systemd/system/multi-user.target.wants"
	RebootUnit   = "/etc/systemd/system/kxboot-reboot.service"
	RebootWants  = "/etc/systemd/system/multi-user.target.wants/kxboot-reboot.service"
	ShutdownHook = "/usr/lib/systemd/system-shutdown/kxboot-reboot"
)

type systemd struct{}

func (systemd) Name() Name { return Systemd }

func (systemd) Detect(fsys rootfs.FS) bool { return fsys.Exists("/run/systemd/system") }

func (systemd) Preflight(c Context) error {
	if !c.FS.Exists("/lib/systemd/systemd") && !c.FS.Exists("/usr/lib/systemd/systemd") {
		return notInstalled(c.FS, "systemd is not installed here")
	}
	return nil
}

func (systemd) Chain(c Context) []journal.Step {
	return append([]journal.Step{journal.File(SystemdUnit, 0o644, systemdUnit(c.Binary, c.KernelDir))},
		append(journal.Dirs(c.FS, SystemdWants), journal.Link(SystemdWants+"/kxboot-chain.service", SystemdUnit))...)
}

func (systemd) Confirm(c Context) ([]journal.Step, error) {
	steps := journal.Dirs(c.FS, path.Dir(ConfirmUnit))
	steps = append(steps, journal.File(ConfirmUnit, 0o644, confirmUnit(c.Binary, hasBootComplete(c.FS))))
	steps = append(steps, journal.Dirs(c.FS, ConfirmWants)...)
	return append(steps, journal.Link(ConfirmWants+"/kxboot-confirm.service", ConfirmUnit)), nil
}

func (systemd) Reboot(c Context) ([]journal.Step, error) {
	steps := []journal.Step{journal.File(RebootUnit, 0o644, rebootUnit(c.Binary))}
	steps = append(steps, journal.Dirs(c.FS, path.Dir(RebootWants))...)
	steps = append(steps, journal.Link(RebootWants, RebootUnit))
	steps = append(steps, journal.Dirs(c.FS, path.Dir(ShutdownHook))...)
	steps = append(steps, journal.File(ShutdownHook, 0o755, shutdownHook(c.Binary)))
	// Active from now on, so that the next shutdown already stops it (its
	// stop is the load); its undo only forgets the unit: a stop would load
	// a kernel.
	reload := []string{"systemctl", "daemon-reload"}
	steps = append(steps, journal.Command(reload, reload))
	return append(steps, journal.Command([]string{"systemctl", "start", "--no-block", path.Base(RebootUnit)}, reload)), nil
}

func (systemd) Traces(job string) []string {
	if job == journal.JobChain {
		return []string{SystemdUnit, ConfirmUnit, ConfirmWants + "/kxboot-confirm.service"}
	}
	return []string{RebootUnit, RebootWants, ShutdownHook}
}

func (systemd) RebootCommand(rootfs.FS) []string { return []string{"systemctl", "reboot"} }

func (systemd) RebootSignal(rootfs.FS) (string, bool) {
	return "systemd queues reboot.target for a reboot and poweroff.target for a poweroff; kxboot asks systemctl list-jobs when its unit is stopped, and the shutdown hook jumps only when systemd-shutdown says reboot", true
}

// Rebooting asks systemd for its pending jobs: a reboot has reboot.target
// (or kexec.target) queued while the units are stopped; a poweroff has
// poweroff.target.
// Once systemd-shutdown is PID 1 (the shutdown hook's jump) there is no
// manager to ask: the hook's argument said reboot, and no systemctl is
// started at the last instant before the jump.
func (systemd) Rebooting(fsys rootfs.FS, _ func(string) string) (bool, error) {
	if comm, _ := fsys.ReadString("/proc/1/comm"); strings.HasPrefix(comm, "systemd-shutdow") {
		return false, errors.New("systemd-shutdown runs: no manager to ask")
	}
	out, err := exec.Command("systemctl", "list-jobs", "--no-legend", "--no-pager").Output()
	if err != nil {
		return false, err
	}
	jobs := string(out)
	return strings.Contains(jobs, "reboot.target") || strings.Contains(jobs, "kexec.target"), nil
}

// hasBootComplete says whether systemd knows boot-complete.target (240 and
// later).
func hasBootComplete(fsys rootfs.FS) bool {
	for _, d := range []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"} {
		if fsys.Exists(d + "/boot-complete.target") {
			return true
		}
	}
	return false
}

// systemdUnit runs `kxboot chain` before sysinit.target, once the kernel's
// directory and the state directory are mounted, and before the journal
// moves to /var (so that / can still be remounted read-only before the
// jump). It comes after the root's file system check: the chain writes its
// try record and history by remounting the read-only root writable for a
// moment, and a check running beside that saw a changing file system,
// failed, and dropped the boot into emergency mode (TestChain/systemd, once
// in a clean-clone run). KillMode=process lets the `kxboot watch` that the
// chain leaves on the owner's kernel outlive the oneshot.
func systemdUnit(bin, kernelDir string) string {
	return fmt.Sprintf(`# Installed by kxboot install chain; removed by kxboot uninstall.
[Unit]
Description=kxboot chain boot into the owner's kernel
Documentation=https://github.com/kxboot/kxboot
DefaultDependencies=no
RequiresMountsFor=%s %s
After=systemd-fsck-root.service
Before=sysinit.target systemd-journal-flush.service shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=%s chain
KillMode=process
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=10min

[Install]
WantedBy=sysinit.target
`, kernelDir, StateDir, bin)
}

// confirmUnit runs `kxboot mark-good` after multi-user.target, so the
// services are up, and, where systemd has it (240 and later), after
// boot-complete.target, which it pulls in (the target is in no boot
// transaction by default): the distribution's health checks order
// themselves before that target, so a boot they fail is never confirmed. A
// Requires= of a target systemd does not know would fail the unit at every
// boot. It is Type=exec, not oneshot: a oneshot's start job would hold the
// boot "starting" for as long as the health check takes, and a HEALTH_CMD
// of "systemctl is-system-running --wait" would then wait for itself.
// Nothing limits its run time; mark-good bounds itself by HEALTH_DEADLINE.
func confirmUnit(bin string, bootComplete bool) string {
	deps := "After=multi-user.target"
	if bootComplete {
		deps = "Requires=boot-complete.target\nAfter=boot-complete.target multi-user.target"
	}
	return fmt.Sprintf(`# Installed by kxboot install (chain or reboot); removed by kxboot uninstall.
[Unit]
Description=kxboot confirmation that the kernel kxboot booted came up well
Documentation=https://github.com/kxboot/kxboot
%s

[Service]
Type=exec
ExecStart=%s mark-good
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`, deps, bin)
}

// rebootUnit is active from boot on and does its work when it is stopped
// at shutdown: ordered after the mounts of /boot and of kxboot's state, it
// is stopped before they are unmounted, the way the seed recipe's
// kexec-load.service is.
func rebootUnit(bin string) string {
	return fmt.Sprintf(`# Installed by kxboot install reboot; removed by kxboot uninstall.
[Unit]
Description=kxboot fast reboot: load the next kernel at shutdown
Documentation=https://github.com/kxboot/kxboot
RequiresMountsFor=/boot /var/lib/kxboot

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=%[1]s reboot --armed
ExecStop=%[1]s reboot --prepare
TimeoutStopSec=3min
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`, bin)
}

// shutdownHook is run by systemd-shutdown with the file systems read-only,
// right before it would reset the machine.
func shutdownHook(bin string) string {
	return fmt.Sprintf(`#!/bin/sh
# Installed by kxboot install reboot; removed by kxboot uninstall.
# systemd-shutdown runs this last, with "reboot", "poweroff", "halt" or
# "kexec": on a reboot, jump into the kernel kxboot loaded at shutdown.
[ "$1" = reboot ] || exit 0
exec %s reboot --jump
`, bin)
}
