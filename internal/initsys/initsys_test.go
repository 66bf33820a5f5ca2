package initsys

import (
	"strings"
	"testing"
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
