package watchdog

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// Driver is the name of the driver behind watchdog0 ("iTCO_wdt",
// "i6300esb"), from its device's driver link in sysfs; "" when it cannot
// be told.
func Driver(fsys rootfs.FS) string {
	t, err := os.Readlink(fsys.Path(SysDir + "/device/driver"))
	if err != nil {
		return ""
	}
	return path.Base(t)
}

// NextKernelCanStop says whether the kernel of release has the driver
// (built in, or a module in /lib/modules/RELEASE) to stop the watchdog
// that Arm would leave running, or why not. A kernel without it cannot
// open /dev/watchdog, so nothing stops the countdown and the hardware
// resets a kernel that booted well: its try would count as failed. known
// is false when it cannot be told (no driver name, no module tree for the
// release); the caller then arms as before.
func NextKernelCanStop(fsys rootfs.FS, release string) (ok, known bool, why string) {
	driver := Driver(fsys)
	dir := "/lib/modules/" + release
	if driver == "" || release == "" || !fsys.Exists(dir) {
		return true, false, ""
	}
	want := moduleName(driver)
	for _, list := range []string{"modules.builtin", "modules.dep"} {
		f, err := os.Open(fsys.Path(dir + "/" + list))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			file, _, _ := strings.Cut(sc.Text(), ":")
			if moduleName(path.Base(file)) == want {
				f.Close()
				return true, true, ""
			}
		}
		f.Close()
	}
	return false, true, fmt.Sprintf("kernel %s has no %s driver (%s lists neither it built in nor as a module), so it could not stop the watchdog armed before the hop, and the hardware would reset it even after a good boot", release, driver, dir)
}

// moduleName is a module's name as modprobe compares them: the file's base
// name without .ko and its compression suffix, dashes as underscores.
func moduleName(file string) string {
	name, _, _ := strings.Cut(file, ".ko")
	return strings.ReplaceAll(name, "-", "_")
}
