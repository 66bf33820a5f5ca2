package watchdog

import (
	"strings"
	"testing"

	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

// TestNextKernelCanStop: the driver behind watchdog0 is looked for in the
// next kernel's module tree, built in or as a (compressed) module.
func TestNextKernelCanStop(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{
		"/lib/modules/6.1.0-57-amd64/modules.builtin":       "kernel/drivers/char/mem.ko\n",
		"/lib/modules/6.1.0-57-amd64/modules.dep":           "kernel/drivers/watchdog/i6300esb.ko.xz: kernel/drivers/watchdog/watchdog.ko.xz\n",
		"/lib/modules/6.1.0-57-cloud-amd64/modules.builtin": "kernel/drivers/char/mem.ko\n",
		"/lib/modules/6.1.0-57-cloud-amd64/modules.dep":     "kernel/drivers/watchdog/softdog.ko: kernel/drivers/watchdog/watchdog.ko\n",
		"/lib/modules/6.1.0-58-amd64/modules.builtin":       "kernel/drivers/watchdog/i6300esb.ko\n",
	}, map[string]string{SysDir + "/device/driver": "../../../bus/pci/drivers/i6300esb"})
	if got := Driver(fsys); got != "i6300esb" {
		t.Fatalf("Driver = %q", got)
	}
	for _, tt := range []struct {
		release   string
		ok, known bool
	}{
		{"6.1.0-57-amd64", true, true},
		{"6.1.0-58-amd64", true, true},
		{"6.1.0-57-cloud-amd64", false, true},
		{"6.1.0-99-amd64", true, false}, // no module tree: cannot tell
		{"", true, false},
	} {
		ok, known, why := NextKernelCanStop(fsys, tt.release)
		if ok != tt.ok || known != tt.known {
			t.Errorf("%s: ok %v, known %v (%s); want %v, %v", tt.release, ok, known, why, tt.ok, tt.known)
		}
		if !ok && !strings.Contains(why, "has no i6300esb driver") {
			t.Errorf("%s: why = %q", tt.release, why)
		}
	}
	if got := moduleName("iTCO-wdt.ko.zst"); got != "iTCO_wdt" {
		t.Errorf("moduleName = %q", got)
	}
}
