package harness

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// An image for guests of another architecture than the host's (arm64 on an
// amd64 host) is built the way the host's own are: debootstrap's first
// stage unpacks the packages, then the second stage and the recipe's
// scripts run the guest's own programs in a chroot (dpkg, the packages'
// scripts, update-initramfs). The host runs those programs through
// qemu-user-static, which the kernel starts for them by binfmt_misc. That
// is cheaper than running the second stage in a guest booted from the
// first stage's tree: qemu-user translates only the programs' code, while
// the programs' system calls, their file system and the compressors'
// threads are the host's; and it needs no guest kernel, network or disk.
// The build installs and registers what it needs itself (runForeign), so
// that a fresh machine builds the image with nothing done by hand.

// foreignStage is how the second stage of another architecture's image
// runs, for the recipe hash: a change of method builds a new image.
const foreignStage = "in a chroot, its programs run by qemu-user-static through binfmt_misc"

// qemuUserNames is qemu's name of each architecture whose images can be
// built on a host of another one: qemu-NAME-static runs its programs.
var qemuUserNames = map[string]string{"arm64": "aarch64"}

// binfmtDir is where binfmt_misc is mounted.
const binfmtDir = "/proc/sys/fs/binfmt_misc"

// runForeign makes this host run arch's programs in tree: it installs
// qemu-user-static if it is missing, mounts binfmt_misc if it is not, and
// registers qemu's entry for arch unless it is there; then it runs the
// tree's /bin/true in a chroot. What it does goes to log. The entry stays
// registered until the host reboots, like the package's own registration
// on a machine with systemd-binfmt or binfmt-support.
func runForeign(arch Arch, tree string, log io.Writer) error {
	name, ok := qemuUserNames[arch.GOARCH]
	if !ok {
		return fmt.Errorf("the harness knows no qemu-user emulator for %s programs", arch)
	}
	conf := "/usr/lib/binfmt.d/qemu-" + name + ".conf"
	if !exists(conf) {
		if err := aptInstall(log, "qemu-user-static"); err != nil {
			return fmt.Errorf("installing qemu-user-static, which runs the %s image's programs here: %w", arch, err)
		}
		if !exists(conf) {
			return fmt.Errorf("qemu-user-static is installed but %s is missing", conf)
		}
	}
	if !exists(binfmtDir + "/register") {
		fmt.Fprintf(log, "$ mount -t binfmt_misc binfmt_misc %s\n", binfmtDir)
		if err := syscall.Mount("binfmt_misc", binfmtDir, "binfmt_misc", 0, ""); err != nil && !exists(binfmtDir+"/register") {
			return fmt.Errorf("mounting binfmt_misc on %s: %w", binfmtDir, err)
		}
	}
	entry := binfmtDir + "/qemu-" + name
	if !exists(entry) {
		rule, err := binfmtRule(conf)
		if err != nil {
			return err
		}
		fmt.Fprintf(log, "$ echo '%s' >%s/register\n", rule, binfmtDir)
		// Another build may register it at the same moment: then the
		// write fails with EEXIST and the entry is there.
		if err := os.WriteFile(binfmtDir+"/register", []byte(rule), 0o200); err != nil && !exists(entry) {
			return fmt.Errorf("registering qemu-%s with binfmt_misc: %w", name, err)
		}
	}
	if err := checkBinfmt(entry, log); err != nil {
		return err
	}
	cmd := exec.Command(sbin("chroot"), tree, "/bin/true")
	cmd.Env = chrootEnv
	cmd.SysProcAttr = dieWithUs()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chroot %s /bin/true, an %s program, failed although binfmt_misc has %s: %w: %s", tree, arch, entry, err, out)
	}
	fmt.Fprintf(log, "chroot %s /bin/true: ran\n", tree)
	return nil
}

// binfmtRule reads the registration line (":name:type:...") of a
// binfmt.d file.
func binfmtRule(conf string) (string, error) {
	data, err := os.ReadFile(conf)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, ":") {
			return l, nil
		}
	}
	return "", fmt.Errorf("%s holds no binfmt_misc rule", conf)
}

// checkBinfmt makes sure that a binfmt_misc entry is enabled and has the
// F flag: the kernel then opens the interpreter when the entry is
// registered, and finds it for a program in a chroot, where its path does
// not exist.
func checkBinfmt(entry string, log io.Writer) error {
	data, err := os.ReadFile(entry)
	if err != nil {
		return err
	}
	text := string(data)
	fmt.Fprintf(log, "$ cat %s\n%s", entry, text)
	flags := ""
	for _, l := range strings.Split(text, "\n") {
		if f, ok := strings.CutPrefix(l, "flags: "); ok {
			flags = f
		}
	}
	if !strings.Contains(flags, "F") {
		return fmt.Errorf("binfmt_misc's %s was registered without the F flag (flags %q), so a chroot cannot find its interpreter; remove it (echo -1 >%s) and the build registers qemu-user-static's own", entry, flags, entry)
	}
	if strings.HasPrefix(text, "disabled") {
		fmt.Fprintf(log, "$ echo 1 >%s\n", entry)
		if err := os.WriteFile(entry, []byte("1"), 0o200); err != nil {
			return fmt.Errorf("enabling %s: %w", entry, err)
		}
	}
	return nil
}

// aptInstall installs packages on the host with apt-get, refreshing apt's
// lists once if they do not know a package; it waits for another apt or
// dpkg run to finish first.
func aptInstall(log io.Writer, pkgs ...string) error {
	install := func() error {
		fmt.Fprintf(log, "$ apt-get install %s\n", strings.Join(pkgs, " "))
		args := append([]string{"-q", "-y", "-o", "DPkg::Lock::Timeout=300", "--no-install-recommends", "install"}, pkgs...)
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = log, log
		return cmd.Run()
	}
	if install() == nil {
		return nil
	}
	fmt.Fprintf(log, "$ apt-get update\n")
	update := exec.Command("apt-get", "-q", "-o", "DPkg::Lock::Timeout=300", "update")
	update.Stdout, update.Stderr = log, log
	if err := update.Run(); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	if err := install(); err != nil {
		return fmt.Errorf("apt-get install %s: %w", strings.Join(pkgs, " "), err)
	}
	return nil
}
