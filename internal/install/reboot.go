package install

import (
	"fmt"
	"path"
	"time"
)

// Paths of the fast reboot.
const (
	RebootUnit   = "/etc/systemd/system/kxboot-reboot.service"
	RebootWants  = "/etc/systemd/system/multi-user.target.wants/kxboot-reboot.service"
	ShutdownHook = "/usr/lib/systemd/system-shutdown/kxboot-reboot"
	RebootScript = "/etc/init.d/kxboot-reboot"
	JumpScript   = "/etc/init.d/kxboot-reboot-jump"
	// OpenRCUmountRoot marks Debian's OpenRC layout: Debian's "rc 6" runs
	// "openrc off" and "openrc reboot", and the latter stops the LSB
	// umount scripts kept in the off runlevel, umountroot last.
	OpenRCUmountRoot = "/etc/runlevels/off/umountroot"
)

// rebootPaths are what a fast-reboot install may leave, for an uninstall
// without a record.
var rebootPaths = append([]string{RebootUnit, RebootWants, ShutdownHook, RebootScript, JumpScript},
	openrcRebootLinks()...)

// openrcRebootLevels are the runlevels the OpenRC fast reboot is linked
// into: started at boot, kept through Debian's "off" runlevel.
var openrcRebootLevels = []string{"/etc/runlevels/default", "/etc/runlevels/off"}

// openrcRebootLinks are the runlevel links of the two OpenRC services.
func openrcRebootLinks() []string {
	var links []string
	for _, level := range openrcRebootLevels {
		for _, script := range []string{RebootScript, JumpScript} {
			links = append(links, level+"/"+path.Base(script))
		}
	}
	return links
}

// RebootOptions are the flags of kxboot install reboot.
type RebootOptions struct {
	Binary string // in-machine path of the kxboot binary the shutdown runs
}

// Reboot installs the fast reboot for the running init system: at a
// reboot the next kernel is loaded while /boot is still mounted (kxboot
// reboot --prepare) and jumped into once the file systems are read-only
// (kxboot reboot --jump), where the init system would reset the machine. A
// second install changes nothing.
func (m Machine) Reboot(o RebootOptions) error {
	mode := RunningInit(m.FS)
	prev, err := ReadJob(m.FS, JobReboot)
	if err != nil {
		return err
	}
	if prev != nil {
		if prev.Mode == mode {
			m.Report("kxboot fast reboot is already installed for %s; nothing changed.", mode)
			return nil
		}
		return fmt.Errorf("kxboot fast reboot is installed for %s (recorded in %s), but %s runs the machine now; run kxboot uninstall reboot first", prev.Mode, RebootManifest, mode)
	}
	if err := m.preflight(mode, Options{Binary: o.Binary}); err != nil {
		return err
	}
	if mode == OpenRC && !m.FS.Exists(OpenRCUmountRoot) {
		return fmt.Errorf("%s does not exist: kxboot's OpenRC fast reboot knows Debian's layout, where \"openrc reboot\" makes the root read-only with that LSB script and then kxboot jumps, but not a mount-ro in the shutdown runlevel (Alpine, Gentoo), which busybox init also runs to power off; nothing was installed and reboots stay firmware reboots", OpenRCUmountRoot)
	}
	var steps []Step
	switch mode {
	case Systemd:
		steps = append(steps, fileStep(RebootUnit, 0o644, rebootUnit(o.Binary)))
		steps = append(steps, m.dirs(path.Dir(RebootWants))...)
		steps = append(steps, Step{Kind: "link", Path: RebootWants, Target: RebootUnit})
		steps = append(steps, m.dirs(path.Dir(ShutdownHook))...)
		steps = append(steps, fileStep(ShutdownHook, 0o755, shutdownHook(o.Binary)))
		// Active from now on, so that the next shutdown already stops it
		// (its stop is the load); its undo only forgets the unit: a stop
		// would load a kernel.
		steps = append(steps, Step{Kind: "command",
			Do:   []string{"systemctl", "daemon-reload"},
			Undo: []string{"systemctl", "daemon-reload"}})
		steps = append(steps, Step{Kind: "command",
			Do:   []string{"systemctl", "start", "--no-block", path.Base(RebootUnit)},
			Undo: []string{"systemctl", "daemon-reload"}})
	case Sysvinit:
		steps = append(steps, fileStep(RebootScript, 0o755, sysvinitRebootScript(o.Binary)))
		steps = append(steps, fileStep(JumpScript, 0o755, sysvinitJumpScript(o.Binary)))
		steps = append(steps, updateRC(path.Base(RebootScript)), updateRC(path.Base(JumpScript)))
	case OpenRC:
		// Started at boot and kept through Debian's "off" runlevel, so
		// that the "openrc reboot" that follows stops them in order
		// with the LSB umount scripts.
		steps = append(steps, fileStep(RebootScript, 0o755, openrcRebootScript(o.Binary)))
		steps = append(steps, fileStep(JumpScript, 0o755, openrcJumpScript(o.Binary)))
		for _, level := range openrcRebootLevels {
			steps = append(steps, m.dirs(level)...)
			for _, script := range []string{RebootScript, JumpScript} {
				steps = append(steps, Step{Kind: "link", Path: level + "/" + path.Base(script), Target: script})
			}
		}
		// Started now, so that this boot's reboot already stops them;
		// their stop does nothing unless OpenRC is rebooting.
		for _, svc := range []string{path.Base(JumpScript), path.Base(RebootScript)} {
			steps = append(steps, Step{Kind: "command",
				Do:   []string{"rc-service", svc, "start"},
				Undo: []string{"rc-service", svc, "stop"}})
		}
	}
	r := &Record{Job: JobReboot, Mode: mode, Binary: o.Binary, Time: time.Now().UTC(), Steps: tidy(steps)}
	if err := m.apply(r); err != nil {
		return err
	}
	m.Report("Installed the kxboot fast reboot for %s: reboot, shutdown -r and systemctl reboot now go through kexec into the next kernel (see kxboot reboot --dry-run); poweroff and halt are unchanged.", mode)
	m.Report("One reboot through the firmware: kxboot reboot --firmware. Undo it with: kxboot uninstall reboot")
	return nil
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

// sysvinitRebootScript loads in runlevel 6 before the local file systems
// are unmounted (Debian's rc runs the K links of runlevel 6 whether or not
// the script was started, as kexec-tools' kexec-load relies on).
func sysvinitRebootScript(bin string) string {
	return runlevel6Script("kxboot-reboot", "# Required-Stop:     $local_fs $remote_fs\n",
		"load the next kernel", bin+" reboot --prepare")
}

// sysvinitJumpScript jumps after the root is read-only, before the reboot
// script would reset the machine; if the jump fails, the reboot goes on.
func sysvinitJumpScript(bin string) string {
	return runlevel6Script("kxboot-reboot-jump",
		"# Required-Stop:\n# Should-Stop:       reboot\n# X-Stop-After:      umountroot\n",
		"jump into the loaded kernel", bin+" reboot --jump")
}

// runlevel6Script is an LSB script that runs cmd when runlevel 6 stops it;
// stopDeps are its stop-ordering header lines.
func runlevel6Script(name, stopDeps, what, cmd string) string {
	return fmt.Sprintf(`#!/bin/sh
# Installed by kxboot install reboot; removed by kxboot uninstall.
### BEGIN INIT INFO
# Provides:          %s
# Required-Start:
%s# Default-Start:
# Default-Stop:      6
# Short-Description: kxboot fast reboot: %s
### END INIT INFO

case "$1" in
stop)
	%s
	;;
start|restart|force-reload|status)
	;;
*)
	echo "Usage: $0 stop" >&2
	exit 3
	;;
esac
exit 0
`, name, stopDeps, what, cmd)
}

// The OpenRC services do their work when they are stopped, and only when
// OpenRC says the machine is going down for a reboot (RC_REBOOT=YES, which
// "openrc reboot" sets; a poweroff never kexecs). Stops run in the reverse
// order of starts: the load ("after" the local mounts) stops before they
// are unmounted; the jump ("before" the umount scripts and the load) stops
// after the root is read-only.
func openrcRebootScript(bin string) string {
	return fmt.Sprintf(`#!/sbin/openrc-run
# Installed by kxboot install reboot; removed by kxboot uninstall.
description="kxboot fast reboot: load the next kernel at a reboot"

depend() {
	after localmount
}

start() {
	return 0
}

stop() {
	[ "$RC_REBOOT" = YES ] || return 0
	ebegin "kxboot: loading the next kernel"
	%s reboot --prepare
	eend 0
}
`, bin)
}

func openrcJumpScript(bin string) string {
	return fmt.Sprintf(`#!/sbin/openrc-run
# Installed by kxboot install reboot; removed by kxboot uninstall.
description="kxboot fast reboot: jump into the loaded kernel at a reboot"

depend() {
	before kxboot-reboot umountfs umountnfs.sh umountroot mount-ro killprocs
}

start() {
	return 0
}

stop() {
	[ "$RC_REBOOT" = YES ] || return 0
	%s reboot --jump
	return 0
}
`, bin)
}
