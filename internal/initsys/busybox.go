package initsys

import (
	"bytes"
	"os"
	"strings"

	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// Busybox init (Alpine's PID 1, with OpenRC as its rc system) reads
// /etc/inittab. Upstream busybox runs every ::shutdown: line for a reboot,
// a poweroff and a halt alike, then picks the syscall; Alpine's busybox
// adds a ::reboot: action that runs instead of ::shutdown: on a reboot
// (SIGTERM), falling back to ::shutdown: when there is none. kxboot puts
// "::reboot:/sbin/openrc reboot" before the first ::shutdown: line where
// the binary has the action, so that OpenRC sets RC_REBOOT=YES on a
// reboot; elsewhere only kxboot reboot's intent says "reboot".

// Inittab is busybox init's (and sysvinit's) table.
const Inittab = "/etc/inittab"

// RebootLine is the inittab line kxboot adds for a patched busybox init.
const RebootLine = "::reboot:/sbin/openrc reboot"

// busyboxActions is the table of action names in a busybox binary that
// knows ::reboot: (upstream's reads "shutdown\0restart\0").
var busyboxActions = []byte("shutdown\x00reboot\x00restart\x00")

// busyboxHasReboot says whether PID 1's busybox knows the ::reboot: action.
func busyboxHasReboot(fsys rootfs.FS) bool {
	exe, err := os.Readlink(fsys.Path("/proc/1/exe"))
	if err != nil {
		return false
	}
	b, err := fsys.ReadFile(strings.TrimSuffix(exe, " (deleted)"))
	return err == nil && bytes.Contains(b, busyboxActions)
}

// busyboxReboot is the inittab edit for a busybox init with ::reboot:,
// with init told to read its table again after the edit and after its
// undo; nothing where PID 1 is another init, where the binary lacks the
// action, or where the table has a ::reboot: line of its own already.
func busyboxReboot(fsys rootfs.FS) []journal.Step {
	if PID1(fsys) != "busybox" || !busyboxHasReboot(fsys) {
		return nil
	}
	if b, err := fsys.ReadFile(Inittab); err != nil || hasAction(string(b), "reboot") {
		return nil
	}
	hup := []string{"kill", "-HUP", "1"}
	return []journal.Step{
		journal.Command(nil, hup),
		journal.Line(Inittab, RebootLine, "::shutdown:"),
		journal.Command(hup, nil),
	}
}

// hasAction says whether an inittab in busybox's form has a line of the
// action.
func hasAction(tab, action string) bool {
	for _, l := range strings.Split(tab, "\n") {
		f := strings.SplitN(strings.TrimSpace(l), ":", 4)
		if len(f) == 4 && !strings.HasPrefix(f[0], "#") && f[2] == action {
			return true
		}
	}
	return false
}
