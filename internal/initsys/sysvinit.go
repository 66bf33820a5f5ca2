package initsys

import (
	"fmt"
	"path"
	"strings"

	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// sysvinit is Debian's sysvinit-core with insserv: LSB scripts in
// /etc/init.d, ordered by their headers through update-rc.d. It is also
// what runs when no other init system is found.
type sysvinit struct{}

func (sysvinit) Name() Name { return Sysvinit }

func (sysvinit) Detect(rootfs.FS) bool { return true }

func (sysvinit) Preflight(c Context) error {
	if !c.FS.Exists("/etc/init.d") {
		return notInstalled(c.FS, "there is no /etc/init.d here")
	}
	return nil
}

// Chain goes through update-rc.d: Debian's rc runs the scripts insserv
// knows (its .depend files).
func (sysvinit) Chain(c Context) []journal.Step {
	return append([]journal.Step{journal.File(ChainScript, 0o755, sysvinitScript(c.Binary, c.Late))}, updateRC(ChainScript)...)
}

func (sysvinit) Confirm(c Context) ([]journal.Step, error) {
	if !c.FS.Exists("/etc/init.d") {
		return nil, fmt.Errorf("there is no /etc/init.d here for %s, which confirms each boot through kxboot, and no systemd or OpenRC runs the machine; kxboot can confirm boots only under systemd, sysvinit or OpenRC", ConfirmScript)
	}
	return append([]journal.Step{journal.File(ConfirmScript, 0o755, sysvinitConfirmScript(c.Binary))}, updateRC(ConfirmScript)...), nil
}

// Reboot places two scripts in runlevel 6: the load before the local file
// systems are unmounted, the jump after the root is read-only.
func (sysvinit) Reboot(c Context) ([]journal.Step, error) {
	steps := []journal.Step{
		journal.File(RebootScript, 0o755, sysvinitRebootScript(c.Binary)),
		journal.File(JumpScript, 0o755, sysvinitJumpScript(c.Binary)),
	}
	steps = append(steps, updateRC(RebootScript)...)
	return append(steps, updateRC(JumpScript)...), nil
}

func (sysvinit) Traces(job string) []string {
	if job == journal.JobChain {
		return []string{ChainScript, ConfirmScript}
	}
	return []string{RebootScript, JumpScript}
}

func (sysvinit) RebootCommand(rootfs.FS) []string { return []string{"reboot"} }

// Rebooting: the glue runs in runlevel 6 alone, which is a reboot.
func (sysvinit) Rebooting(rootfs.FS, func(string) string) (bool, error) { return true, nil }

func (sysvinit) RebootSignal(rootfs.FS) (string, bool) {
	return "sysvinit runs kxboot's scripts in runlevel 6 (reboot) only; runlevel 0 (poweroff, halt) never loads or jumps", true
}

// updateRC registers an init script with update-rc.d, after saving the
// boot order it renumbers.
func updateRC(script string) []journal.Step {
	name := path.Base(script)
	return []journal.Step{journal.SaveBootOrder(), journal.Command(
		[]string{"update-rc.d", name, "defaults"},
		[]string{"update-rc.d", "-f", name, "remove"})}
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
	return lsbScript([][2]string{{"Provides", "kxboot-chain"}, {"Required-Start", req}, {"Required-Stop", ""},
		{"X-Start-Before", before}, {"Default-Start", "S"}, {"Default-Stop", ""}, {"X-Interactive", "true"},
		{"Short-Description", "kxboot chain boot into the owner's kernel"}}, "start", bin+" chain")
}

// sysvinitConfirmScript is an LSB script that rc starts last ($all) in the
// multi-user runlevels. It leaves mark-good in the background, in its own
// session and away from rc's output, so that rc finishes the boot while the
// health check runs.
func sysvinitConfirmScript(bin string) string {
	return lsbScript([][2]string{{"Provides", "kxboot-confirm"}, {"Required-Start", "$all"}, {"Required-Stop", ""},
		{"Default-Start", "2 3 4 5"}, {"Default-Stop", ""},
		{"Short-Description", "kxboot confirmation that the owner's kernel booted well"}},
		"start", "setsid "+bin+" mark-good </dev/null >/dev/console 2>&1 &")
}

// sysvinitRebootScript loads in runlevel 6 before the local file systems
// are unmounted (Debian's rc runs the K links of runlevel 6 whether or not
// the script was started, as kexec-tools' kexec-load relies on).
func sysvinitRebootScript(bin string) string {
	return lsbScript([][2]string{{"Provides", "kxboot-reboot"}, {"Required-Start", ""}, {"Required-Stop", "$local_fs $remote_fs"},
		{"Default-Start", ""}, {"Default-Stop", "6"}, {"Short-Description", "kxboot fast reboot: load the next kernel"}},
		"stop", bin+" reboot --prepare")
}

// sysvinitJumpScript jumps after the root is read-only, before the reboot
// script would reset the machine; if the jump fails, the reboot goes on.
func sysvinitJumpScript(bin string) string {
	return lsbScript([][2]string{{"Provides", "kxboot-reboot-jump"}, {"Required-Start", ""}, {"Required-Stop", ""},
		{"Should-Stop", "reboot"}, {"X-Stop-After", "umountroot"}, {"Default-Start", ""}, {"Default-Stop", "6"},
		{"Short-Description", "kxboot fast reboot: jump into the loaded kernel"}},
		"stop", bin+" reboot --jump")
}

// lsbScript is an LSB init script with the header fields given, in order,
// that runs cmd for the action act ("start" or "stop") and accepts the
// other actions doing nothing.
func lsbScript(header [][2]string, act, cmd string) string {
	var h strings.Builder
	for _, f := range header {
		line := "# " + f[0] + ":"
		if f[1] != "" {
			line += strings.Repeat(" ", max(1, 21-len(line))) + f[1]
		}
		h.WriteString(line + "\n")
	}
	other := "stop|restart|force-reload|status"
	if act == "stop" {
		other = "start|restart|force-reload|status"
	}
	return fmt.Sprintf(`#!/bin/sh
# Installed by kxboot install; removed by kxboot uninstall.
### BEGIN INIT INFO
%s### END INIT INFO

case "$1" in
%s)
	%s
	;;
%s)
	;;
*)
	echo "Usage: $0 %s" >&2
	exit 3
	;;
esac
exit 0
`, h.String(), act, cmd, other, act)
}
