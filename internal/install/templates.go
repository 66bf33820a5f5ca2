package install

import (
	"fmt"
	"strings"

	"github.com/kxboot/kxboot/internal/config"
)

// The early-boot services all run `kxboot chain`, which holds the whole
// decision; they only place it as early as the kernel file is readable.

// systemdUnit runs before sysinit.target, once the kernel's directory is
// mounted, and before the journal moves to /var (so that / can still be
// remounted read-only before the jump).
func systemdUnit(bin, kernelDir string) string {
	return fmt.Sprintf(`# Installed by kxboot install chain; removed by kxboot uninstall.
[Unit]
Description=kxboot chain boot into the owner's kernel
Documentation=https://github.com/kxboot/kxboot
DefaultDependencies=no
RequiresMountsFor=%s
Before=sysinit.target systemd-journal-flush.service shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=%s chain
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=10min

[Install]
WantedBy=sysinit.target
`, kernelDir, bin)
}

// sysvinitScript is an LSB script in runlevel S, in the shape of the
// DigitalOcean recipe. With /boot on the root file system it runs right
// after the kernel file systems are mounted, before the root is checked and
// made writable; with a separate /boot, once the local file systems are up.
func sysvinitScript(bin string, separateBoot bool) string {
	req, before := "mountkernfs", "checkroot"
	if separateBoot {
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
// there, before the root is checked and made writable; with a separate
// /boot, in the boot runlevel after the local mounts. The dependencies are
// soft ("after", "before") and name both Alpine/Gentoo's services and
// Debian's LSB ones: a "need" of a service the distribution does not have
// would keep the chain boot from ever starting.
func openrcScript(bin string, separateBoot bool) string {
	deps := "after sysfs devfs procfs mountkernfs.sh mountdevsubfs.sh\n\tbefore fsck root checkroot.sh checkfs.sh"
	if separateBoot {
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
	return b.String()
}
