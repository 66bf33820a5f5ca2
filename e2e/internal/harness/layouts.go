package harness

import "fmt"

// OpenRC layouts. Debian's OpenRC image (flavour OpenRC) boots the way
// Debian sets OpenRC up: sysvinit's init runs /etc/init.d/rc, which brings
// the machine down with `openrc off` (Debian's LSB scripts sendsigs,
// umountfs and umountroot in /etc/runlevels/off), then an empty
// `openrc shutdown`, then /etc/init.d/halt. The OpenRC machines kxboot
// must also serve are laid out the other way, as OpenRC itself ships:
// the work of the shutdown is in the "shutdown" runlevel (killprocs,
// savecache, mount-ro), there is no "off" runlevel, and what starts that
// runlevel differs by machine:
//
//   - openrc-init as PID 1 (Gentoo or Artix with openrc-init): a reboot
//     runs `openrc reboot`, a power-off `openrc shutdown`;
//   - busybox init (Alpine): every ::shutdown: line of /etc/inittab runs,
//     whether the machine reboots or powers off;
//   - sysvinit with Gentoo's /etc/inittab: runlevel 6 runs `openrc
//     reboot`, runlevel 0 `openrc shutdown`.
//
// `openrc reboot` starts the shutdown runlevel with RC_REBOOT=YES in the
// services' environment; `openrc shutdown` does not. That variable is how
// a service in the shutdown runlevel, such as kxboot's, can tell a reboot
// from a power-off, and so it is what the layouts are for.
//
// No Alpine or Gentoo packages can be had on these machines, so each
// layout is the Debian OpenRC image with a few files written into a copy
// of its disk (Inject): its PID 1, its /etc/inittab, three small
// services of our own in /etc/runlevels/shutdown, and one line for udev
// that keeps Debian's umountroot out of the way (layoutUdevConf); the
// links of the "off" runlevel go. That costs seconds per
// case, where a new debootstrap image would cost minutes and a recipe.
// Everything else (Debian's openrc 0.45.2, its sysinit runlevel of LSB
// scripts, udev, the kxtest runner in the default runlevel) stays as the
// image has it.

// Layout names.
const (
	LayoutOpenRCInit = "openrc-init" // openrc-init as PID 1
	LayoutBusybox    = "busybox"     // busybox init with an Alpine-style inittab
	LayoutGentoo     = "gentoo"      // sysvinit with a Gentoo-style inittab
)

// LayoutNames lists the layouts in the order OpenRCLayouts returns them.
var LayoutNames = []string{LayoutOpenRCInit, LayoutBusybox, LayoutGentoo}

// Layout is a set of files that turns a copy of the OpenRC image into a
// machine laid out like another distribution's OpenRC.
type Layout struct {
	Name string
	// Imitates says in a few words which machines the layout stands for.
	Imitates string
	// PID1 is what /proc/1/comm shows. It is "init" in every layout: the
	// kernel runs /sbin/init, and a task's comm is the base name of the
	// path it was started by, not of a symbolic link's target.
	PID1 string
	// PID1Exe is where /proc/1/exe leads: the program that really is
	// PID 1, which tells the layouts apart.
	PID1Exe string
	// RebootSetsRCReboot says whether the shutdown runlevel sees
	// RC_REBOOT=YES when the machine reboots. No layout sets it when the
	// machine powers off.
	RebootSetsRCReboot bool
	// RebootSays and PoweroffSays are console lines (substrings) that PID
	// 1 prints when it takes a reboot or power-off request, proving the
	// request went the layout's way; "" if it prints none.
	RebootSays, PoweroffSays string
	// Inittab is the /etc/inittab the layout writes; "" if it has none.
	Inittab string
	// Files are what to Inject into a copy of the OpenRC image.
	Files []GuestFile
}

// LayoutMarker starts the console line that each shutdown service of a
// layout prints when it starts: "kxtest-layout: NAME runlevel=LEVEL
// RC_REBOOT=VALUE root=MODE", MODE being how / is mounted then (rw or
// ro). mount-ro adds "kxtest-layout: mount-ro done: / MODE" when it has
// finished.
const LayoutMarker = "kxtest-layout: "

// The shutdown services. They are written for these tests from what the
// services of those names must do on an OpenRC machine; they are not
// copies of OpenRC's own. Each prints its marker line to /dev/console
// (not to its standard output, which an init may send elsewhere) with the
// runlevel and RC_REBOOT it sees and how / is mounted: a service of the
// shutdown runlevel, such as kxboot's, may still have to write to it.

// layoutLib sources the runner's guest library (runner.go, guestLib),
// which the image holds: the marker lines use its kx_rootmode, the first
// mount option of / in /proc/mounts, rw or ro.
const layoutLib = ". " + guestLibPath + "\n"

// layoutKillprocs is /etc/init.d/killprocs. It replaces Debian's LSB
// script of that name (initscripts' single-user helper, which no runlevel
// here uses).
const layoutKillprocs = `#!/sbin/openrc-run
# kxtest layout service (e2e/internal/harness/layouts.go): ends the
# processes that are left once the other services have stopped, so that
# mount-ro can make the file systems read-only.
description="kxtest: end the processes left at shutdown"

` + layoutLib + `
start() {
	echo "kxtest-layout: killprocs runlevel=$RC_RUNLEVEL RC_REBOOT=$RC_REBOOT root=$(kx_rootmode)" >/dev/console
	ebegin "Ending the remaining processes"
	# killall5 (sysvinit-utils) signals every process but PID 1, kernel
	# threads and its own session, which is openrc's: the runlevel goes
	# on. TERM first; killall5 -18 (CONT, harmless) succeeds while any
	# process is left, so wait up to 5 s for them to end, then KILL.
	killall5 -15
	n=0
	while [ "$n" -lt 10 ] && killall5 -18; do
		sleep 0.5
		n=$((n + 1))
	done
	killall5 -9
	# killall5 exits 2 when there was nobody left to signal: not an error.
	eend 0
}
`

// layoutSavecache is /etc/init.d/savecache. OpenRC's savecache copies the
// dependency cache to disk so that the next boot can start from it;
// Debian's openrc ships one in its "off" runlevel. Here it only has to
// exist and run, because kxboot orders its own shutdown work after it;
// what it would save does not matter to a test, so it saves nothing.
const layoutSavecache = `#!/sbin/openrc-run
# kxtest layout service (e2e/internal/harness/layouts.go): stands where
# OpenRC's savecache is in the shutdown runlevel. It saves nothing: the
# tests need the service and its place in the order, not OpenRC's cache.
description="kxtest: the savecache of the shutdown runlevel (saves nothing)"

` + layoutLib + `
start() {
	echo "kxtest-layout: savecache runlevel=$RC_RUNLEVEL RC_REBOOT=$RC_REBOOT root=$(kx_rootmode)" >/dev/console
	return 0
}
`

// layoutMountRO is /etc/init.d/mount-ro: the last of the shutdown
// runlevel, after which PID 1 may power off or reset the machine without
// ext4 having to replay its journal at the next boot.
const layoutMountRO = `#!/sbin/openrc-run
# kxtest layout service (e2e/internal/harness/layouts.go): makes every
# local file system read-only, the root last, once killprocs has ended
# the processes that could still write.
description="kxtest: remount the local file systems read-only"

depend() {
	after killprocs savecache
}

` + layoutLib + `
start() {
	echo "kxtest-layout: mount-ro runlevel=$RC_RUNLEVEL RC_REBOOT=$RC_REBOOT root=$(kx_rootmode)" >/dev/console
	ebegin "Remounting the local file systems read-only"
	sync
	swapoff -a 2>/dev/null
	# Local file systems are those on a block device (/dev/...); proc,
	# sysfs, tmpfs, devtmpfs and devpts have nothing to write back.
	# Deepest first: /proc/mounts lists a mount after its parent, so
	# reading it backwards puts children before parents. The root
	# comes last, on its own.
	list=
	while read -r dev mnt fstype rest; do
		case $dev in /dev/*) ;; *) continue ;; esac
		[ "$mnt" = / ] || list="$mnt $list"
	done </proc/mounts
	rc=0
	for m in $list; do
		mount -o remount,ro "$m" || rc=1
	done
	sync
	mount -o remount,ro / || rc=1
	echo "kxtest-layout: mount-ro done: / $(kx_rootmode)" >/dev/console
	eend $rc "Could not remount every file system read-only"
}
`

// layoutUdevConf is /etc/conf.d/udev. Debian's /etc/init.d/udev says
// "Required-Stop: umountroot" in its LSB header, and Debian's openrc
// (lsb2rcconf) turns that into "need umountroot". So umountroot is started
// with udev at boot, and when openrc stops every service that is not in
// the shutdown runlevel, before it starts that runlevel, it stops
// umountroot too, whose stop remounts / read-only: the shutdown runlevel
// would begin with a read-only root, which is not how Alpine or Gentoo
// reach it (there / stays writable until mount-ro), and which a service
// of that runlevel that must still write, such as kxboot's, would trip
// over. OpenRC reads rc_need from /etc/conf.d/SERVICE for any service,
// LSB ones included, and a "!" takes a dependency away.
const layoutUdevConf = `# kxtest layout (e2e/internal/harness/layouts.go): udev does not need
# Debian's umountroot, whose stop would make / read-only before the
# shutdown runlevel starts.
rc_need="!umountroot"
`

// layoutServiceFiles are the shutdown services and their links in the
// shutdown runlevel, and the removal of Debian's "off" runlevel: with no
// /etc/runlevels/off/umountroot the machine is one that does its shutdown
// in the shutdown runlevel, which is how kxboot tells it from Debian's
// layout. The empty /etc/runlevels/off directory stays (Inject removes
// files, not directories); an empty runlevel does nothing. Debian's LSB
// scripts umountroot, umountfs, umountnfs.sh and sendsigs stay in
// /etc/init.d, started by nothing once udev no longer needs umountroot
// (layoutUdevConf).
func layoutServiceFiles() []GuestFile {
	return []GuestFile{
		{Path: "/etc/init.d/killprocs", Mode: 0o755, Data: []byte(layoutKillprocs)},
		{Path: "/etc/init.d/savecache", Mode: 0o755, Data: []byte(layoutSavecache)},
		{Path: "/etc/init.d/mount-ro", Mode: 0o755, Data: []byte(layoutMountRO)},
		{Path: "/etc/runlevels/shutdown/killprocs", Target: "/etc/init.d/killprocs"},
		{Path: "/etc/runlevels/shutdown/savecache", Target: "/etc/init.d/savecache"},
		{Path: "/etc/runlevels/shutdown/mount-ro", Target: "/etc/init.d/mount-ro"},
		{Path: "/etc/conf.d/udev", Data: []byte(layoutUdevConf)},
		{Path: "/etc/runlevels/off/savecache", Absent: true},
		{Path: "/etc/runlevels/off/sendsigs", Absent: true},
		{Path: "/etc/runlevels/off/umountfs", Absent: true},
		{Path: "/etc/runlevels/off/umountnfs.sh", Absent: true},
		{Path: "/etc/runlevels/off/umountroot", Absent: true},
	}
}

// openrcShutdownScript returns /sbin/NAME for the openrc-init layout: a
// script that asks openrc-init for action through openrc-shutdown.
// sysvinit's halt, reboot and poweroff write to sysvinit's /run/initctl,
// which no process reads under openrc-init. Arguments are ignored: the
// callers here (the runner, kxboot) ask for the action and nothing else.
//
// The script waits for openrc-init's control FIFO first. openrc-init makes
// it only after the default runlevel has started, and openrc-shutdown
// opens it with fopen(..., "w"), which, if it is not there yet, makes a
// regular file in its place that openrc-init never reads, and the request
// is lost. The runner starts at the end of the default runlevel, so the
// wait is a matter of milliseconds, if any.
func openrcShutdownScript(flag string) []byte {
	return []byte(`#!/bin/sh
# kxtest layout openrc-init (e2e/internal/harness/layouts.go): asks
# openrc-init, PID 1, to ` + flag + ` through openrc-shutdown.
fifo=/run/openrc/init.ctl
n=0
while [ ! -p "$fifo" ]; do
	if [ "$n" -ge 60 ]; then
		echo "$0: $fifo is not there: is openrc-init PID 1?" >&2
		exit 1
	fi
	sleep 0.5
	n=$((n + 1))
done
exec /sbin/openrc-shutdown --` + flag + ` now
`)
}

// busyboxInittab is /etc/inittab of the busybox layout, in busybox init's
// format (ID:RUNLEVELS:ACTION:PROCESS, with the runlevels ignored and an
// empty ID meaning the console), as Alpine's is. No getty: nothing logs
// in, and the runner writes to /dev/console.
const busyboxInittab = `# /etc/inittab for busybox init: the kxtest layout "busybox"
# (e2e/internal/harness/layouts.go), laid out as Alpine's.

# The boot: OpenRC's sysinit and boot runlevels, then the default one,
# each to its end before the next.
::sysinit:/sbin/openrc sysinit
::sysinit:/sbin/openrc boot
::wait:/sbin/openrc default

# Ctrl-Alt-Del reboots.
::ctrlaltdel:/sbin/reboot

# Run at every reboot, power-off and halt alike: busybox init does not
# tell them apart for its shutdown lines, so RC_REBOOT is never set.
::shutdown:/sbin/openrc shutdown
`

// gentooInittab is /etc/inittab of the gentoo layout, in sysvinit's
// format: Gentoo's runlevel lines, which call openrc directly instead of
// Debian's /etc/init.d/rc wrapper (whose runlevels 0 and 6 run `openrc
// off`). Left out: Gentoo's `telinit u` lines (they make init re-execute
// itself in case it was upgraded), its gettys (nothing logs in here, and
// the runner writes to /dev/console) and the power-failure lines.
const gentooInittab = `# /etc/inittab for sysvinit: the kxtest layout "gentoo"
# (e2e/internal/harness/layouts.go), with Gentoo's runlevel lines.

# The default runlevel.
id:3:initdefault:

# The boot: OpenRC's sysinit runlevel, then its boot runlevel.
si::sysinit:/sbin/openrc sysinit
rc::bootwait:/sbin/openrc boot

# Halt and power-off: OpenRC's shutdown runlevel, then halt (-d: no wtmp
# record, the root is read-only by then; -p: power off; -f: halt itself,
# as it would in runlevel 0 anyway, rather than call shutdown).
l0:0:wait:/sbin/openrc shutdown
l0s:0:wait:/sbin/halt -d -p -f

# Single user: OpenRC's single runlevel, then a root shell.
l1:1:wait:/sbin/openrc single
su0:S:wait:/sbin/openrc single
su1:S:wait:/sbin/sulogin

# Multi-user: Gentoo's runlevel 2 is OpenRC's nonetwork, 3 to 5 its default.
l2:2:wait:/sbin/openrc nonetwork
l3:3:wait:/sbin/openrc default
l4:4:wait:/sbin/openrc default
l5:5:wait:/sbin/openrc default

# Reboot: OpenRC's shutdown runlevel through "openrc reboot", which sets
# RC_REBOOT=YES, then the reset.
l6:6:wait:/sbin/openrc reboot
l6r:6:wait:/sbin/reboot -d -f

# Ctrl-Alt-Del reboots.
ca:12345:ctrlaltdel:/sbin/shutdown -r now
`

// OpenRCLayouts returns the layouts for guests of arch, in the order of
// LayoutNames. The busybox layout copies the host's static busybox for
// arch (Busybox), which is why this can fail.
func OpenRCLayouts(arch Arch) ([]Layout, error) {
	bb, err := Busybox(arch)
	if err != nil {
		return nil, fmt.Errorf("the %s layout: %w", LayoutBusybox, err)
	}
	return []Layout{openrcInitLayout(), busyboxLayout(bb), gentooLayout()}, nil
}

// LayoutOf returns the layout called name for guests of arch.
func LayoutOf(arch Arch, name string) (Layout, error) {
	switch name {
	case LayoutOpenRCInit:
		return openrcInitLayout(), nil
	case LayoutBusybox:
		bb, err := Busybox(arch)
		if err != nil {
			return Layout{}, fmt.Errorf("the %s layout: %w", LayoutBusybox, err)
		}
		return busyboxLayout(bb), nil
	case LayoutGentoo:
		return gentooLayout(), nil
	}
	return Layout{}, fmt.Errorf("no OpenRC layout %q; want one of %v", name, LayoutNames)
}

// openrcInitLayout is OpenRC's own init as PID 1, as on Gentoo or Artix
// machines that boot with openrc-init: /sbin/init leads to it, so the
// provider's command line (no init=) stays as it is. openrc-init runs the
// sysinit, boot and default runlevels, then waits for commands on its
// FIFO: "reboot" runs `openrc reboot`, "poweroff" `openrc shutdown`, and
// after the runlevel it signals every process (TERM, 3 s, KILL) and
// calls reboot(2). /sbin/reboot, /sbin/poweroff and /sbin/halt become
// scripts that send those commands through openrc-shutdown, as OpenRC's
// sysvinit-compatible tools do. /etc/inittab goes: no process here reads
// it, and a Debian one left behind would name /etc/init.d/rc, the layout
// this one is not.
func openrcInitLayout() Layout {
	files := []GuestFile{
		{Path: "/sbin/init", Target: "openrc-init"},
		{Path: "/sbin/reboot", Mode: 0o755, Data: openrcShutdownScript("reboot")},
		{Path: "/sbin/poweroff", Mode: 0o755, Data: openrcShutdownScript("poweroff")},
		{Path: "/sbin/halt", Mode: 0o755, Data: openrcShutdownScript("halt")},
		{Path: "/etc/inittab", Absent: true},
	}
	return Layout{
		Name:               LayoutOpenRCInit,
		Imitates:           "a machine with openrc-init as PID 1 (Gentoo or Artix with openrc-init)",
		PID1:               "init",
		PID1Exe:            "/usr/sbin/openrc-init",
		RebootSetsRCReboot: true,
		RebootSays:         `PID1: Received "reboot" from FIFO`,
		PoweroffSays:       `PID1: Received "poweroff" from FIFO`,
		Files:              append(files, layoutServiceFiles()...),
	}
}

// busyboxLayout is busybox init as PID 1 with an Alpine-style inittab, as
// on Alpine: Debian's busybox-static (bb is the host's copy), whose init
// is upstream's. /sbin/init, reboot, poweroff and halt lead to busybox,
// which picks the applet by the base name it was started by; reboot,
// poweroff and halt signal PID 1 (TERM, USR2, USR1), and busybox init
// then runs every ::shutdown: line, signals every process (TERM, 1 s,
// KILL) and calls reboot(2).
//
// Debian's openrc needs nothing more under busybox init: its sysinit
// runlevel mounts /proc and /run itself (init.sh), and Debian's LSB
// scripts mount the rest and start udev, as under sysvinit. Two
// differences show on the console and do no harm here: busybox init sets
// TERM=vt102 on a serial console, for which Debian's checkroot.sh and
// checkfs.sh get "setterm: terminal vt102 does not support --msg"; and
// /sys is not mounted yet when Debian's mountkernfs.sh tries securityfs
// (it mounts securityfs before sysfs), which it skips with a warning.
// Under sysvinit and openrc-init /sys is mounted before any runlevel
// starts: both call libselinux's selinux_init_load_policy, which mounts
// sysfs on the way; the static busybox has no SELinux code.
func busyboxLayout(bb string) Layout {
	files := []GuestFile{
		{Path: "/bin/busybox", Mode: 0o755, HostPath: bb},
		{Path: "/sbin/init", Target: "/bin/busybox"},
		{Path: "/sbin/reboot", Target: "/bin/busybox"},
		{Path: "/sbin/poweroff", Target: "/bin/busybox"},
		{Path: "/sbin/halt", Target: "/bin/busybox"},
		{Path: "/etc/inittab", Data: []byte(busyboxInittab)},
	}
	return Layout{
		Name:         LayoutBusybox,
		Imitates:     "Alpine: busybox init with ::shutdown:/sbin/openrc shutdown",
		PID1:         "init",
		PID1Exe:      "/usr/bin/busybox",
		RebootSays:   "Requesting system reboot",
		PoweroffSays: "Requesting system poweroff",
		Inittab:      busyboxInittab,
		Files:        append(files, layoutServiceFiles()...),
	}
}

// gentooLayout is sysvinit's init as PID 1 with a Gentoo-style inittab,
// as on Gentoo with sysvinit: the runner's reboot and poweroff are
// sysvinit's, which switch to runlevel 6 or 0, whose lines run `openrc
// reboot` or `openrc shutdown` and then reboot or halt.
func gentooLayout() Layout {
	files := []GuestFile{
		{Path: "/etc/inittab", Data: []byte(gentooInittab)},
	}
	return Layout{
		Name:               LayoutGentoo,
		Imitates:           "Gentoo with sysvinit: runlevel 6 runs openrc reboot, runlevel 0 openrc shutdown",
		PID1:               "init",
		PID1Exe:            "/usr/sbin/init",
		RebootSetsRCReboot: true,
		RebootSays:         "INIT: Switching to runlevel: 6",
		PoweroffSays:       "INIT: Switching to runlevel: 0",
		Inittab:            gentooInittab,
		Files:              append(files, layoutServiceFiles()...),
	}
}
