package install

import (
	"fmt"
	"strings"

	"github.com/kxboot/kxboot/internal/config"
)

// The early-boot services all run `kxboot chain`, which holds the whole
// decision; they only place it as early as the kernel file is readable and
// the state directory writable. The confirmation services all run `kxboot
// mark-good`, which does nothing on a boot that did not come through
// kxboot; they only place it at the end of the boot, without holding the
// boot up while it waits for the owner's health check.

// systemdUnit runs before sysinit.target, once the kernel's directory and
// the state directory are mounted, and before the journal moves to /var (so
// that / can still be remounted read-only before the jump). KillMode=process
// lets the `kxboot watch` that the chain leaves on the owner's kernel
// outlive the oneshot.
func systemdUnit(bin, kernelDir string) string {
	return fmt.Sprintf(`# Installed by kxboot install chain; removed by kxboot uninstall.
[Unit]
Description=kxboot chain boot into the owner's kernel
Documentation=https://github.com/kxboot/kxboot
DefaultDependencies=no
RequiresMountsFor=%s %s
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

// confirmUnit runs after multi-user.target, so the services are up, and,
// where systemd has it (240 and later), after boot-complete.target, which it
// pulls in (the target is in no boot transaction by default): the
// distribution's health checks order themselves before that target, so a
// boot they fail is never confirmed. A Requires= of a target systemd does
// not know would fail the unit at every boot. It is Type=exec, not oneshot:
// a oneshot's start job would hold the boot "starting" for as long as the
// health check takes, and a HEALTH_CMD of "systemctl is-system-running
// --wait" would then wait for itself. Nothing limits its run time;
// mark-good bounds itself by HEALTH_DEADLINE.
func confirmUnit(bin string, bootComplete bool) string {
	deps := "After=multi-user.target"
	if bootComplete {
		deps = "Requires=boot-complete.target\nAfter=boot-complete.target multi-user.target"
	}
	return fmt.Sprintf(`# Installed by kxboot install chain; removed by kxboot uninstall.
[Unit]
Description=kxboot confirmation that the owner's kernel booted well
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

// sysvinitScript is an LSB script in runlevel S, in the shape of the
// DigitalOcean recipe. With /boot and /var on the root file system it runs
// right after the kernel file systems are mounted, before the root is
// checked and made writable; late (a separate /boot or /var), once the
// local file systems are up.
func sysvinitScript(bin string, late bool) string {
	req, before := "mountkernfs", "checkroot"
	if late {
		req, before = "$local_fs", ""
	}
	return fmt.Sprintf(`#!/bin/sh
# Installed by kxboot install chain; removed by kxboot uninstall.
### BEGIN INIT INFO
# Provides:          kxboot-chain
# Required-Start:    %s
# Required-Stop:
# X-Start-Before:    %s
# Default-Start:     S
# Default-Stop:
# X-Interactive:     true
# Short-Description: kxboot chain boot into the owner's kernel
### END INIT INFO

case "$1" in
start)
	%s chain
	;;
stop|restart|force-reload|status)
	;;
*)
	echo "Usage: $0 start" >&2
	exit 3
	;;
esac
exit 0
`, req, before, bin)
}

// openrcScript runs in the sysinit runlevel once /proc, /sys and /dev are
// there, before the root is checked and made writable; late (a separate
// /boot or /var), in the boot runlevel after the local mounts. The
// dependencies are soft ("after", "before") and name both Alpine/Gentoo's
// services and Debian's LSB ones: a "need" of a service the distribution
// does not have would keep the chain boot from ever starting.
func openrcScript(bin string, late bool) string {
	deps := "after sysfs devfs procfs mountkernfs.sh mountdevsubfs.sh\n\tbefore fsck root checkroot.sh checkfs.sh"
	if late {
		deps = "after localmount mountall.sh"
	}
	return fmt.Sprintf(`#!/sbin/openrc-run
# Installed by kxboot install chain; removed by kxboot uninstall.
description="kxboot chain boot into the owner's kernel"

depend() {
	%s
	keyword -docker -lxc -openvz -prefix -systemd-nspawn -vserver
}

start() {
	ebegin "kxboot chain boot"
	%s chain
	eend 0
}
`, deps, bin)
}

// sysvinitConfirmScript is an LSB script that rc starts last ($all) in the
// multi-user runlevels. It leaves mark-good in the background, in its own
// session and away from rc's output, so that rc finishes the boot while the
// health check runs.
func sysvinitConfirmScript(bin string) string {
	return fmt.Sprintf(`#!/bin/sh
# Installed by kxboot install chain; removed by kxboot uninstall.
### BEGIN INIT INFO
# Provides:          kxboot-confirm
# Required-Start:    $all
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:
# Short-Description: kxboot confirmation that the owner's kernel booted well
### END INIT INFO

case "$1" in
start)
	setsid %s mark-good </dev/null >/dev/console 2>&1 &
	;;
stop|restart|force-reload|status)
	;;
*)
	echo "Usage: $0 start" >&2
	exit 3
	;;
esac
exit 0
`, bin)
}

// openrcConfirmScript runs in the default runlevel after every other
// service, and leaves mark-good in the background as the sysvinit script
// does.
func openrcConfirmScript(bin string) string {
	return fmt.Sprintf(`#!/sbin/openrc-run
# Installed by kxboot install chain; removed by kxboot uninstall.
description="kxboot confirmation that the owner's kernel booted well"

depend() {
	after *
}

start() {
	ebegin "kxboot mark-good, in the background"
	setsid %s mark-good </dev/null >/dev/console 2>&1 &
	eend 0
}
`, bin)
}

// configFile is a new /etc/default/kxboot.
func configFile(kernel string, initrds []string, appendArgs string, abort int) string {
	var b strings.Builder
	b.WriteString(`# kxboot settings, read without a shell: write values out, no $ or backquotes.
# ENABLED=no stops the chain boot at the next boot without uninstalling.
ENABLED="yes"
# The kernel to hop into; empty means the newest installed kernel.
`)
	fmt.Fprintf(&b, "KERNEL=%s\n", config.Quote(kernel))
	b.WriteString("# Its initrds, in order (microcode first); empty means the ones found beside it.\n")
	fmt.Fprintf(&b, "INITRD=%s\n", config.Quote(strings.Join(initrds, " ")))
	b.WriteString("# Added to the running command line (CMDLINE= would replace it).\n")
	fmt.Fprintf(&b, "APPEND=%s\n", config.Quote(appendArgs))
	b.WriteString("# Seconds to wait for a key on the consoles before the hop; 0 skips the wait.\n")
	fmt.Fprintf(&b, "ABORT_SECONDS=\"%d\"\n", abort)
	fmt.Fprintf(&b, `# Unconfirmed hops in a row before kxboot stays on the provider's kernel
# (kxboot reset, or a change of kernel or command line, starts over).
MAX_TRIES="%d"
# A command that must succeed before kxboot mark-good confirms the hop,
# for example a ping of the gateway; empty confirms on reaching mark-good.
HEALTH_CMD=""
# Seconds after the hop to confirm, else the try failed: a firmware reboot.
HEALTH_DEADLINE="%d"
`, config.DefaultMaxTries, config.DefaultHealthDeadline)
	return b.String()
}
