package initsys

import (
	"os"
	"strings"
	"testing"

	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

func TestRebootUnits(t *testing.T) {
	u := rebootUnit("/usr/local/sbin/kxboot")
	for _, want := range []string{"ExecStop=/usr/local/sbin/kxboot reboot --prepare", "RemainAfterExit=yes", "RequiresMountsFor=/boot /var/lib/kxboot", "WantedBy=multi-user.target"} {
		if !strings.Contains(u, want) {
			t.Errorf("reboot unit lacks %q", want)
		}
	}
	h := shutdownHook("/usr/local/sbin/kxboot")
	if !strings.Contains(h, `[ "$1" = reboot ] || exit 0`) || !strings.Contains(h, "exec /usr/local/sbin/kxboot reboot --jump") {
		t.Errorf("shutdown hook:\n%s", h)
	}
	j := sysvinitJumpScript("/bin/kxboot")
	if !strings.Contains(j, "\n# X-Stop-After:      umountroot\n") || !strings.Contains(j, "\n# Default-Stop:      6\n") {
		t.Errorf("jump script:\n%s", j)
	}
}

// TestOpenRCRebooting: "openrc reboot" says so in RC_REBOOT; under an init
// that cannot (upstream busybox), kxboot reboot's intent for this boot
// does, and an intent left from another boot does not.
func TestOpenRCRebooting(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{"/proc/sys/kernel/random/boot_id": "boot-2\n"}, nil)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "RC_REBOOT" {
				return v
			}
			return ""
		}
	}
	o := openrc{}
	if yes, _ := o.Rebooting(fsys, env("YES")); !yes {
		t.Error("RC_REBOOT=YES is not a reboot")
	}
	if yes, _ := o.Rebooting(fsys, env("")); yes {
		t.Error("a shutdown without RC_REBOOT is a reboot")
	}
	rootfstest.Write(t, fsys, RebootIntent, []byte("boot-1\n"))
	if yes, _ := o.Rebooting(fsys, env("")); yes {
		t.Error("another boot's intent counted")
	}
	if err := RecordRebootIntent(fsys); err != nil {
		t.Fatal(err)
	}
	if yes, _ := o.Rebooting(fsys, env("")); !yes {
		t.Error("kxboot reboot's intent did not count")
	}
}

func TestPID1AndRebootCommand(t *testing.T) {
	fsys := rootfstest.Tree(t, nil, map[string]string{"/proc/1/exe": "/sbin/openrc-init"})
	if got := PID1(fsys); got != "openrc-init" {
		t.Errorf("PID1 = %q", got)
	}
	if got := strings.Join(openrc{}.RebootCommand(fsys), " "); got != "openrc-shutdown -r now" {
		t.Errorf("openrc-init's reboot command: %q", got)
	}
	os.Remove(fsys.Path("/proc/1/exe"))
	os.Symlink("/bin/busybox (deleted)", fsys.Path("/proc/1/exe"))
	if got := PID1(fsys); got != "busybox" {
		t.Errorf("PID1 of a replaced binary = %q", got)
	}
	if got := strings.Join(openrc{}.RebootCommand(fsys), " "); got != "reboot" {
		t.Errorf("busybox's reboot command: %q", got)
	}
}

func TestHasAction(t *testing.T) {
	tab := "# ::reboot:/commented\n::sysinit:/sbin/openrc sysinit\ntty1::respawn:/sbin/getty 38400 tty1\n::shutdown:/sbin/openrc shutdown\n"
	if hasAction(tab, "reboot") || !hasAction(tab, "shutdown") || !hasAction(tab, "respawn") {
		t.Errorf("hasAction misreads:\n%s", tab)
	}
}

// TestSystemdRebootingAtTheEnd: under systemd-shutdown (the hook's jump)
// Rebooting answers "cannot tell" at once, without starting systemctl.
func TestSystemdRebootingAtTheEnd(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{"/proc/1/comm": "systemd-shutdow\n"}, nil)
	t.Setenv("PATH", t.TempDir()) // no systemctl to start
	if _, err := (systemd{}).Rebooting(fsys, os.Getenv); err == nil || !strings.Contains(err.Error(), "systemd-shutdown runs") {
		t.Errorf("err = %v", err)
	}
}
