package harness

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Flavours of disk images: the init system that the guest boots with.
const (
	Systemd  = "systemd"  // systemd as PID 1 (systemd-sysv)
	Sysvinit = "sysvinit" // sysvinit-core's init with sysv-rc's rc scripts
	OpenRC   = "openrc"   // sysvinit-core's init with Debian's OpenRC as the rc system
)

// Flavours lists every flavour Image builds.
var Flavours = []string{Systemd, Sysvinit, OpenRC}

// ImageRecipeVersion names the recipe of disk images in their cache
// directory. The directory name also carries a hash of the recipe's text
// (package lists, the files it writes, the commands it runs), so a change
// to any of them builds new images even if nobody bumps this.
const ImageRecipeVersion = 1

// DiskSize is the size of the ext4 file system of an image; the file is
// sparse, so a copy takes the space of what is in it (about 600 MB).
const DiskSize = "2G"

// Suite is the Debian release the guests run.
const Suite = "bookworm"

// DiskAppend is the start of the command line that boots a disk image:
// the root file system is the NVMe disk, mounted read-only first as a
// boot loader's entry would. Tests add their own words after it. Leave the
// console log level alone (no "quiet", no loglevel below 6): Kernels
// counts the "Linux version" banners.
//
// norandmaps turns off address space randomisation in the guests, for
// QEMU's sake: TCG keys a translation on the virtual address, so with
// randomisation every process translates the shared libraries' pages
// anew (1.8 million translations in one OpenRC boot, against 250,000
// without), and QEMU 7.2 then pays for each store into a page that holds
// many stale translations by walking them all. kexec's relocate_kernel
// copies the next kernel over such pages: a guest once spent 90 s, and
// under load minutes, between "kexec_core: Starting new kernel" and the
// next banner (seen with the monitor, MonitorEnv: rep movsq moving five
// words a second). Without randomisation the jump takes 3 s and a boot
// reaches its runner in less than half the time. kxboot does not care:
// it carries the word over to the next kernel like any other.
//
// The parameters after norandmaps are GuestParams: see there.
const DiskAppend = "root=/dev/nvme0n1 ro console=ttyS0 norandmaps " + GuestParams

// DiskAppendOf is DiskAppend for a guest of arch: its console and its
// parameters (Arch.Params). For AMD64 it is DiskAppend itself.
func DiskAppendOf(arch Arch) string {
	arch = arch.orAMD64()
	return "root=/dev/nvme0n1 ro console=" + arch.Console + " norandmaps " + arch.Params
}

// GuestParams go on every guest kernel's command line. cryptomgr.notests
// skips the crypto API's self-tests at boot, which under TCG took 0.4 s
// of the kernel's 2.5 s to its init (initcall_debug: crypto_algapi_init),
// in every one of the hundred-odd kernels a test run starts.
//
// no_timer_check skips the x86 kernel's check that the timer interrupt
// arrives through the IO-APIC within a few ticks. Under TCG on a busy host
// the ticks can come late, and the kernel then panicked at 0.06 s with
// "IO-APIC + timer doesn't work!" (seen once in a full run while two
// guests and a compile shared two cores). Virtual machine images pass it
// for the same reason; other architectures ignore it.
const GuestParams = "cryptomgr.notests no_timer_check"

// DefaultDiskTimeout bounds a whole run of a disk image (several boots)
// unless Options.Timeout says otherwise.
const DefaultDiskTimeout = 8 * time.Minute

// DiskImage is a cached ext4 image of a Debian guest of one flavour with
// kernels A and B installed, and kernel A's boot files extracted from it
// for qemu's -kernel and -initrd: the provider's kernel.
type DiskImage struct {
	Flavour string
	// GOARCH is the architecture of the guest's programs and kernels;
	// images built before it was recorded are amd64's.
	GOARCH  string `json:",omitempty"`
	A, B    string // kernel releases installed in the guest (uname -r)
	Name    string `json:"-"` // the cache directory's base name
	Dir     string `json:"-"` // the cache directory
	Path    string `json:"-"` // the ext4 image; never boot it: copy it with NewDisk
	KernelA string `json:"-"` // host copy of the guest's /boot/vmlinuz-A
	InitrdA string `json:"-"` // host copy of the guest's /boot/initrd.img-A
	KernelB string `json:"-"` // host copy of the guest's /boot/vmlinuz-B
	InitrdB string `json:"-"` // host copy of the guest's /boot/initrd.img-B
	// Packages is debootstrap's --include list; Installed names what was
	// installed after it in the chroot with apt-get.
	Packages  []string
	Installed []string
	// BuildTime is how long this call took to build the image; 0 when
	// the image came from the cache.
	BuildTime time.Duration `json:"-"`
	// Built is when the image was built; Steps how long each step took.
	Built time.Time
	Steps []BuildStep
}

// BuildStep is one timed step of an image build.
type BuildStep struct {
	Name    string
	Seconds float64
}

// Boot returns Options that boot disk (a copy made by NewDisk) the way the
// provider does: kernel A and its Debian initrd given to qemu, the disk as
// an NVMe drive (/dev/nvme0n1), and a reboot inside the guest resetting
// the machine into kernel A again. Set Append's extra words, ConsoleLog,
// Timeout and MaxKernels as the test needs.
func (img *DiskImage) Boot(disk string) Options {
	return Options{
		Arch:    img.Arch(),
		Kernel:  img.KernelA,
		Initrd:  img.InitrdA,
		Append:  img.Append(),
		Disk:    disk,
		NVMe:    true,
		Reboot:  true,
		Timeout: DefaultDiskTimeout,
	}
}

// BootDirect is Boot without an initramfs: kernel A mounts the root
// itself (its NVMe driver and ext4 are built in) and starts /sbin/init,
// as a provider's kernel without an initrd would. Under TCG that saves
// about 4 s a boot, 2 of them unpacking Debian's 13 MB initrd. The
// owner's kernel B still gets its initrd when kxboot loads it.
func (img *DiskImage) BootDirect(disk string) Options {
	o := img.Boot(disk)
	o.Initrd = ""
	return o
}

// Arch is the architecture of the image's guests.
func (img *DiskImage) Arch() Arch {
	if a, ok := Arches[img.GOARCH]; ok {
		return a
	}
	return AMD64
}

// Append is the provider's command line for the image: DiskAppendOf its
// architecture.
func (img *DiskImage) Append() string { return DiskAppendOf(img.Arch()) }

// DebsDir is debootstrap's download cache of the image's flavour and
// architecture, which holds the .deb of every package the first stage
// installed: a test that reinstalls one in the guest (which has no
// network) takes it from there.
func (img *DiskImage) DebsDir() string {
	return filepath.Join(CacheDir(), "images", debsDirName(img.Flavour, img.Arch()))
}

// debsDirName is the base name of DebsDir: amd64's keeps the name it had
// before other architectures came.
func debsDirName(flavour string, arch Arch) string {
	if arch = arch.orAMD64(); arch.GOARCH != AMD64.GOARCH {
		return "debs-" + flavour + "-" + arch.GOARCH
	}
	return "debs-" + flavour
}

// recipe is what differs between flavours.
type recipe struct {
	arch    Arch     // the guest's architecture
	include []string // debootstrap --include
	extra   []string // apt-get install in the chroot, after the kernels
	enable  string   // shell commands in the chroot that enable the runner and the probe
}

// commonPackages go into every flavour. initramfs-tools builds each
// kernel's initrd (virtio_blk is a module); zstd is its default compressor.
var commonPackages = []string{"udev", "kmod", "procps", "e2fsprogs", "initramfs-tools", "linux-base", "zstd"}

// systemdMasked lists units that would wake up on their own in a first
// boot and print or work for nothing (there is no network and no time to
// lose). getty-static starts gettys on tty2-6, which a guest without a
// display does not have, and held multi-user.target back by 4.4 s of every
// boot under TCG; the serial console's getty held it back until udev had
// announced ttyS0 (about 5 s more). Nothing reads a login prompt: the
// runner writes to /dev/console, and kxboot's abort window comes before
// any getty. console is the serial console (Arch.Console).
func systemdMasked(console string) string {
	return "apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer getty-static.service serial-getty@" + console + ".service"
}

// recipeFor returns the recipe of flavour for guests of arch.
func recipeFor(flavour string, arch Arch) (recipe, error) {
	arch = arch.orAMD64()
	switch flavour {
	case Systemd:
		r := recipe{
			arch:    arch,
			include: append([]string{"systemd", "systemd-sysv"}, commonPackages...),
			enable:  "systemctl enable kxtest.service kxtest-early.service\nsystemctl mask " + systemdMasked(arch.Console),
		}
		if arch.GOARCH == AMD64.GOARCH {
			// Ansible drives the fleet case's guests over SSH, with
			// Python (and python3-apt for its apt module). sshd is off
			// unless a case turns it on (FleetFiles), so that no other
			// guest pays for it.
			r.extra = FleetPackages
			r.enable += "\nsystemctl disable ssh.service"
		}
		return r, nil
	case Sysvinit:
		return recipe{
			arch:    arch,
			include: append([]string{"sysvinit-core"}, commonPackages...),
			enable:  "update-rc.d kxtest defaults\nupdate-rc.d kxtest-early defaults",
		}, nil
	case OpenRC:
		// debootstrap cannot choose openrc for sysvinit-core's "sysv-rc |
		// file-rc | openrc": it takes sysv-rc, and apt swaps it for OpenRC.
		return recipe{
			arch:    arch,
			include: append([]string{"sysvinit-core"}, commonPackages...),
			extra:   []string{"openrc"},
			enable:  "rc-update add kxtest default\nrc-update add kxtest-early sysinit",
		}, nil
	}
	return recipe{}, fmt.Errorf("unknown image flavour %q; want one of %v", flavour, Flavours)
}

// packagesScript installs the kernels (and what the flavour adds) in the
// chroot. The kernels come from the suites of the host's sources, the
// security suite included, which debootstrap alone cannot use.
func packagesScript(a, b string, extra []string) string {
	return `passwd -d root
apt-get -q update
apt-get -q -y --no-install-recommends install linux-image-` + a + ` linux-image-` + b + " " + strings.Join(extra, " ") + `
`
}

// unsafeIO is a dpkg configuration file in the tree while it is built.
const unsafeIO = "/etc/dpkg/dpkg.cfg.d/kxtest-unsafe-io"

// finishScript enables the runner, cleans up and lists what is installed.
func finishScript(enable string) string {
	return enable + `
rm -f ` + unsafeIO + `
apt-get clean
rm -rf /var/lib/apt/lists/*
rm -f /usr/sbin/policy-rc.d
dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\n' >/var/lib/kxtest/packages
`
}

// recipeHash covers everything that goes into an image besides the
// kernels and the mirror's packages. An amd64 recipe hashes exactly the
// text it hashed before images of other architectures came, so that the
// amd64 images in the caches stay valid.
func recipeHash(flavour string, rec recipe, a, b string) string {
	arch := rec.arch.orAMD64()
	h := sha256.New()
	fmt.Fprintf(h, "%d\n%s\n%s\n%q\n%q\n%s\n", ImageRecipeVersion, flavour, DiskSize, rec.include, rec.extra, rec.enable)
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\nforeign, %s\n", packagesScript(a, b, rec.extra), finishScript(rec.enable), serialGettyOn(arch.Console), mkfsArgs, unsafeIO)
	if arch.GOARCH != AMD64.GOARCH {
		fmt.Fprintf(h, "arch %s; second stage %s\n", arch.GOARCH, foreignStage)
	}
	files := guestFiles(flavour, arch)
	for _, p := range sortedPaths(files) {
		fmt.Fprintf(h, "%s %o %d\n%s\n", p, files[p].mode, len(files[p].data), files[p].data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// mkfsArgs are mke2fs's options besides -d, the file and the size.
const mkfsArgs = "-q -F -t ext4 -L kxroot"

// Image returns the disk image of flavour with kernels a (the provider's,
// booted by qemu) and b (the owner's) installed, building it if the cache
// has none: debootstrap, then apt-get in the chroot, then mke2fs -d. A
// file lock per image keeps concurrent runs from building it twice.
func Image(flavour string, a, b Kernel, logf Logf) (*DiskImage, error) {
	if a.Arch.orAMD64().GOARCH != b.Arch.orAMD64().GOARCH {
		return nil, fmt.Errorf("disk image: kernel A is %s's and kernel B %s's", a.Arch, b.Arch)
	}
	arch := a.Arch.orAMD64()
	rec, err := recipeFor(flavour, arch)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(CacheDir(), "images")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	// amd64's names carry no architecture: they are those of the images
	// built before other architectures came.
	kind := flavour
	if arch.GOARCH != AMD64.GOARCH {
		kind += "-" + arch.GOARCH
	}
	prefix := fmt.Sprintf("%s-%s-%s-v", kind, a.Short(), b.Short())
	name := fmt.Sprintf("%s%d-%s", prefix, ImageRecipeVersion, recipeHash(flavour, rec, a.Release, b.Release)[:8])
	unlock, err := lockFile(filepath.Join(root, name+".lock"), true)
	if err != nil {
		return nil, err
	}
	defer unlock()

	final := filepath.Join(root, name)
	// The lock file's time says when the image was last used: see prune.
	now := time.Now()
	os.Chtimes(filepath.Join(root, name+".lock"), now, now)
	if img, err := loadImage(final); err == nil {
		return img, nil
	} else if exists(final) {
		logf("image %s is incomplete (%v); building it again", name, err)
		if err := removeTree(final); err != nil {
			return nil, err
		}
	}
	// Leftovers of an interrupted build of this image: the lock is ours.
	old, _ := filepath.Glob(filepath.Join(root, ".build-"+name+"-*"))
	for _, d := range old {
		if err := removeTree(d); err != nil {
			return nil, err
		}
	}

	start := time.Now()
	work, err := os.MkdirTemp(root, ".build-"+name+"-")
	if err != nil {
		return nil, err
	}
	if err := build(work, flavour, rec, a.Release, b.Release, logf); err != nil {
		return nil, fmt.Errorf("building the %s image %s (its files are kept in %s): %w", flavour, name, work, err)
	}
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(work, final); err != nil {
		return nil, err
	}
	img, err := loadImage(final)
	if err != nil {
		return nil, err
	}
	img.BuildTime = time.Since(start)
	logf("image %s built in %v", name, img.BuildTime.Round(time.Second))

	prune(prefix, name, logf)
	return img, nil
}

// prune removes images of other recipes for the same flavour and kernels
// that no run has used for a day: a run of another checkout may still boot
// one (qemu reads its kernel again at every reset).
func prune(prefix, keep string, logf Logf) {
	root := filepath.Join(CacheDir(), "images")
	others, _ := filepath.Glob(filepath.Join(root, prefix+"*"))
	for _, o := range others {
		base := filepath.Base(o)
		if base == keep || strings.HasSuffix(base, ".lock") {
			continue
		}
		fi, err := os.Stat(o + ".lock")
		if err == nil && time.Since(fi.ModTime()) < 24*time.Hour {
			continue
		}
		release, err := lockFile(o+".lock", false)
		if err != nil {
			continue // being built
		}
		logf("removing %s: an image of another recipe, unused for a day", base)
		if err := removeTree(o); err != nil {
			logf("%v", err)
		}
		release()
	}
}

// loadImage reads the manifest of a finished image and checks its files.
func loadImage(dir string) (*DiskImage, error) {
	data, err := os.ReadFile(filepath.Join(dir, "image.json"))
	if err != nil {
		return nil, err
	}
	img := &DiskImage{}
	if err := json.Unmarshal(data, img); err != nil {
		return nil, fmt.Errorf("%s/image.json: %w", dir, err)
	}
	img.Dir = dir
	img.Name = filepath.Base(dir)
	img.Path = filepath.Join(dir, "disk.img")
	img.KernelA = filepath.Join(dir, "vmlinuz-"+img.A)
	img.InitrdA = filepath.Join(dir, "initrd.img-"+img.A)
	img.KernelB = filepath.Join(dir, "vmlinuz-"+img.B)
	img.InitrdB = filepath.Join(dir, "initrd.img-"+img.B)
	for _, f := range []string{img.Path, img.KernelA, img.InitrdA, img.KernelB, img.InitrdB} {
		if _, err := os.Stat(f); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// build makes work/disk.img, the boot files and work/image.json; the
// debootstrap tree in work/tree is removed at the end.
func build(work, flavour string, rec recipe, a, b string, logf Logf) error {
	logPath := filepath.Join(work, "build.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	tree := filepath.Join(work, "tree")
	debs := filepath.Join(filepath.Dir(work), debsDirName(flavour, rec.arch)) // debootstrap's download cache
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	mirror, sources := hostSources()

	arch := rec.arch.orAMD64()
	img := &DiskImage{Flavour: flavour, GOARCH: arch.GOARCH, A: a, B: b, Packages: rec.include, Installed: append([]string{"linux-image-" + a, "linux-image-" + b}, rec.extra...)}
	step := func(name string, f func() error) error {
		t := time.Now()
		fmt.Fprintf(logFile, "\n=== %s\n", name)
		logf("image %s: %s", flavour, name)
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w; the end of %s:\n%s", name, err, logPath, tailFile(logPath, 30))
		}
		img.Steps = append(img.Steps, BuildStep{name, time.Since(t).Seconds()})
		return nil
	}
	run := func(name string, args ...string) error {
		fmt.Fprintf(logFile, "$ %s %s\n", name, strings.Join(args, " "))
		cmd := exec.Command(sbin(name), args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.Env = chrootEnv
		cmd.SysProcAttr = dieWithUs()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}

	steps := []struct {
		name string
		f    func() error
	}{
		{"debootstrap " + Suite + " " + arch.GOARCH + " from " + mirror + ", first stage", func() error {
			// In a mount namespace of its own, like every command that
			// mounts in the tree: its mounts die with it.
			return run("unshare", "--mount", "--propagation", "private", "--kill-child",
				sbin("debootstrap"), "--foreign", "--arch="+arch.GOARCH, "--variant=minbase", "--include="+strings.Join(rec.include, ","),
				"--cache-dir="+debs, Suite, tree, mirror)
		}},
		{"run " + arch.GOARCH + " programs on this " + runtime.GOARCH + " host", func() error {
			if arch.Native() {
				return nil
			}
			return runForeign(arch, tree, logFile)
		}},
		{"debootstrap, second stage", func() error {
			// dpkg without fsync: the tree becomes an image anyway, and
			// the build takes a third of the time.
			if err := writeTree(tree, unsafeIO, 0o644, []byte("force-unsafe-io\n")); err != nil {
				return err
			}
			return run("unshare", "--mount", "--propagation", "private", "--kill-child",
				sbin("chroot"), tree, "/debootstrap/debootstrap", "--second-stage")
		}},
		{"configure", func() error {
			files := guestFiles(flavour, arch)
			for _, p := range sortedPaths(files) {
				if lateFile(p) {
					continue // after the packages: see "enable the runner"
				}
				if err := writeTree(tree, p, files[p].mode, []byte(files[p].data)); err != nil {
					return err
				}
			}
			if err := os.MkdirAll(filepath.Join(tree, "var/lib/kxtest"), 0o755); err != nil {
				return err
			}
			os.Remove(filepath.Join(tree, "etc/apt/sources.list"))
			return writeTree(tree, "/etc/apt/sources.list.d/debian.sources", 0o644, sources)
		}},
		{"install linux-image-" + a + " linux-image-" + b + " " + strings.Join(rec.extra, " "), func() error {
			return inChroot(tree, packagesScript(a, b, rec.extra), logFile)
		}},
		{"enable the runner", func() error {
			files := guestFiles(flavour, arch)
			for _, p := range sortedPaths(files) {
				if lateFile(p) {
					if err := writeTree(tree, p, files[p].mode, []byte(files[p].data)); err != nil {
						return err
					}
				}
			}
			if flavour != Systemd {
				inittab := filepath.Join(tree, "etc/inittab")
				data, err := os.ReadFile(inittab)
				if err != nil {
					return err
				}
				if err := writeTree(tree, "/etc/inittab", 0o644, append(data, []byte("\n# Serial console (kxtest)\n"+serialGettyOn(arch.Console))...)); err != nil {
					return err
				}
			}
			if err := inChroot(tree, finishScript(rec.enable), logFile); err != nil {
				return err
			}
			return checkPackages(tree, flavour, rec)
		}},
		{"copy kernel A's and B's boot files", func() error {
			for _, rel := range []string{a, b} {
				for _, f := range []string{"vmlinuz-" + rel, "initrd.img-" + rel} {
					if err := copyRegular(filepath.Join(tree, "boot", f), filepath.Join(work, f)); err != nil {
						return err
					}
				}
			}
			return nil
		}},
		{"mke2fs -d", func() error {
			args := append(strings.Fields(mkfsArgs), "-d", tree, filepath.Join(work, "disk.img"), DiskSize)
			if err := run("mke2fs", args...); err != nil {
				return err
			}
			return os.Chmod(filepath.Join(work, "disk.img"), 0o444)
		}},
		{"remove the tree", func() error { return removeTree(tree) }},
	}
	for _, s := range steps {
		if err := step(s.name, s.f); err != nil {
			return err
		}
	}
	img.Built = time.Now().UTC()
	data, err := json.MarshalIndent(img, "", "\t")
	if err != nil {
		return err
	}
	return writeSynced(filepath.Join(work, "image.json"), data)
}

// dieWithUs makes a child process get SIGKILL when the test process dies
// (a go test timeout exits without running cleanups): no qemu or
// debootstrap is left running on its own. unshare's --kill-child passes it
// on to its own child.
func dieWithUs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// sbin returns the path of a system tool: on $PATH, else in /usr/sbin or
// /sbin, which a user's $PATH may lack.
func sbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); exists(p) {
			return p
		}
	}
	return name
}

// lateFile tells the files written after the packages are installed: the
// services (so that no package script of sysv-rc meets OpenRC's scripts)
// and the empty resolv.conf (apt needs the host's until then).
func lateFile(p string) bool {
	return strings.HasPrefix(p, "/etc/init.d/") || strings.HasPrefix(p, "/etc/systemd/") || p == "/etc/resolv.conf"
}

// chrootEnv is the environment of the build's commands: nothing of the
// test's own.
var chrootEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root", "LC_ALL=C", "TERM=dumb", "DEBIAN_FRONTEND=noninteractive",
}

// chrootShim runs in a new mount namespace: proc and sys are mounted in
// the tree for package scripts (update-initramfs) and vanish with the
// namespace, whatever happens.
const chrootShim = `set -e
mount -t proc proc "$1/proc"
mount -t sysfs sysfs "$1/sys"
exec chroot "$1" /bin/sh -exc "$2"`

// inChroot runs script with sh -e in tree.
func inChroot(tree, script string, log io.Writer) error {
	fmt.Fprintf(log, "$ chroot %s <<EOF\n%sEOF\n", tree, script)
	cmd := exec.Command(sbin("unshare"), "--mount", "--propagation", "private", "--kill-child",
		"/bin/sh", "-c", chrootShim, "kxtest-chroot", tree, script)
	cmd.Env = chrootEnv
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = dieWithUs()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("chroot script: %w", err)
	}
	return nil
}

// checkPackages makes sure the tree holds the init system it should, and
// not another: debootstrap and apt choose among alternatives on their own.
func checkPackages(tree, flavour string, rec recipe) error {
	data, err := os.ReadFile(filepath.Join(tree, "var/lib/kxtest/packages"))
	if err != nil {
		return err
	}
	installed := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "ii" {
			installed[f[1]] = true
		}
	}
	want := map[string][]string{
		Systemd:  {"systemd", "systemd-sysv", "udev"},
		Sysvinit: {"sysvinit-core", "sysv-rc", "udev"},
		OpenRC:   {"sysvinit-core", "openrc", "udev"},
	}[flavour]
	unwanted := map[string][]string{
		Systemd:  {"sysvinit-core", "openrc"},
		Sysvinit: {"systemd", "systemd-sysv", "openrc"},
		OpenRC:   {"systemd", "systemd-sysv", "sysv-rc"},
	}[flavour]
	for _, p := range append(append(want, rec.include...), rec.extra...) {
		if !installed[p] {
			return fmt.Errorf("the %s tree lacks the package %s", flavour, p)
		}
	}
	for _, p := range unwanted {
		if installed[p] {
			return fmt.Errorf("the %s tree has the package %s", flavour, p)
		}
	}
	return nil
}

// hostSources returns the mirror for debootstrap and the deb822 sources
// file for the guest: this machine's own, else Debian's defaults.
func hostSources() (mirror string, sources []byte) {
	data, err := os.ReadFile("/etc/apt/sources.list.d/debian.sources")
	if err == nil {
		for _, stanza := range deb822(string(data)) {
			if hasWord(stanza["types"], "deb") && hasWord(stanza["suites"], Suite) && hasWord(stanza["components"], "main") {
				if uris := strings.Fields(stanza["uris"]); len(uris) > 0 {
					return strings.TrimSuffix(uris[0], "/"), data
				}
			}
		}
	}
	const d = "http://deb.debian.org/debian"
	return d, []byte(`Types: deb
URIs: ` + d + `
Suites: ` + Suite + ` ` + Suite + `-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ` + d + `-security
Suites: ` + Suite + `-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`)
}

// deb822 splits a sources file into stanzas of lower-cased fields.
func deb822(text string) []map[string]string {
	var out []map[string]string
	cur := map[string]string{}
	last := ""
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
			cur = map[string]string{}
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.TrimSpace(l) == "":
			flush()
		case strings.HasPrefix(l, "#"):
		case l[0] == ' ' || l[0] == '\t':
			if last != "" {
				cur[last] += " " + strings.TrimSpace(l)
			}
		default:
			k, v, ok := strings.Cut(l, ":")
			if ok {
				last = strings.ToLower(strings.TrimSpace(k))
				cur[last] = strings.TrimSpace(v)
			}
		}
	}
	flush()
	return out
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// writeTree writes a file at guest path p of tree, refusing to follow a
// symbolic link on the way: an absolute link in the tree points into the
// host.
func writeTree(tree, p string, mode os.FileMode, data []byte) error {
	rel := strings.TrimPrefix(filepath.Clean("/"+p), "/")
	parts := strings.Split(rel, "/")
	dir := tree
	for _, part := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, part)
		fi, err := os.Lstat(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("writing %s in the tree: %s is not a directory", p, dir)
		}
	}
	name := filepath.Join(tree, rel)
	if fi, err := os.Lstat(name); err == nil && !fi.Mode().IsRegular() {
		if err := os.Remove(name); err != nil {
			return err
		}
	}
	if err := os.WriteFile(name, data, mode); err != nil {
		return err
	}
	return os.Chmod(name, mode)
}

// copyRegular copies a regular file (not a link) from src to dst.
func copyRegular(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeFrom(dst, in)
}

func writeSynced(name string, data []byte) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// removeTree removes dir unless something is mounted in it, in which case
// removing would reach into that file system.
func removeTree(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == abs || strings.HasPrefix(mp, abs+"/") {
			return fmt.Errorf("not removing %s: %s is mounted in it", abs, mp)
		}
	}
	return os.RemoveAll(abs)
}

// unescapeMount undoes the octal escapes of /proc/self/mountinfo.
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// tailFile returns the last n lines of a file.
func tailFile(name string, n int) string {
	data, err := os.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	return Tail(strings.Split(strings.TrimRight(string(data), "\n"), "\n"), n)
}

// lockFile takes an exclusive flock on name until the returned function is
// called. With wait false it fails at once if another process holds it.
func lockFile(name string, wait bool) (func(), error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("image lock: %w", err)
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("image lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}
