package harness

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// The watchdog guests (e2e/watchdog_test.go) need a kernel with a driver
// for QEMU's i6300esb watchdog, which Debian's cloud kernels lack: they
// boot Debian's generic kernels (linux-image-6.1.0-N-amd64 and -arm64),
// whose drivers are modules. A generic kernel is kept in the cache as its
// vmlinuz and the few modules those guests load, with a modules.dep for
// them, so that the guests need no whole module tree.

// GenericKernel is a Debian kernel of the generic flavour (amd64 or
// arm64, named as the architecture) with a subset of its modules.
type GenericKernel struct {
	Release string // uname -r, e.g. 6.1.0-57-amd64
	Arch    Arch
	Image   string // host path of vmlinuz
	// Modules is the host directory that holds the subset as
	// lib/modules/RELEASE/..., with its modules.dep.
	Modules string
	// Load lists the subset's files, relative to /lib/modules/RELEASE,
	// in an order insmod can load them in (each after what it depends on).
	Load []string
}

// GenericModules are the modules a watchdog guest's kernels load (with
// what they depend on): the watchdog core and the i6300esb driver, NVMe
// and ext4 for the root file system, and crc32c, which ext4 asks for
// (a soft dependency, so not in its depends list) to check metadata.
// Those the kernel has built in (modules.builtin: the watchdog core on
// arm64) are left out.
var GenericModules = []string{"watchdog", "i6300esb", "nvme", "crc32c_generic", "ext4"}

// moduleDirs are the directories of the package searched for the modules
// and their dependencies.
var moduleDirs = []string{"drivers/watchdog/", "drivers/nvme/host/", "fs/", "lib/", "crypto/", "block/"}

// GenericKernelOf returns the generic kernel of arch with the same ABI as
// the cloud kernel short ("6.1.0-57"), downloading it into the cache once.
// Debian names the generic flavour as the architecture.
func GenericKernelOf(arch Arch, short string, logf Logf) (GenericKernel, error) {
	arch = arch.orAMD64()
	rel := short + "-" + arch.GOARCH
	dir := filepath.Join(CacheDir(), "generic", rel)
	k := GenericKernel{Release: rel, Arch: arch, Image: filepath.Join(dir, "vmlinuz-"+rel), Modules: filepath.Join(dir, "tree")}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return k, fmt.Errorf("kernel cache: %w", err)
	}
	unlock, err := lockDir(CacheDir())
	if err != nil {
		return k, err
	}
	defer unlock()
	if !exists(k.Image) {
		logf("downloading Debian package linux-image-%s into %s", rel, dir)
		if err := downloadGeneric(dir, rel, arch); err != nil {
			return k, err
		}
	}
	order, err := os.ReadFile(filepath.Join(dir, "load-order"))
	if err != nil {
		return k, fmt.Errorf("generic kernel %s: %w", rel, err)
	}
	k.Load = strings.Fields(string(order))
	return k, nil
}

// downloadGeneric fetches linux-image-REL and keeps its vmlinuz and the
// closure of GenericModules. The image is renamed into place last: its
// presence marks the kernel cached.
func downloadGeneric(dir, rel string, arch Arch) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(dir), ".download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	deb, err := aptDownload(work, "linux-image-"+rel, arch)
	if err != nil {
		return err
	}
	// The kernel image, and every module in moduleDirs by its path below
	// the release's module directory.
	modRoot := "lib/modules/" + rel + "/"
	kos := map[string]string{} // path below modRoot -> host file
	image := ""
	builtin := map[string]bool{} // module names
	err = walkDeb(deb, func(name string, r io.Reader) error {
		switch {
		case name == modRoot+"modules.builtin":
			b, err := io.ReadAll(r)
			for _, l := range strings.Fields(string(b)) {
				builtin[moduleName(path.Base(l))] = true
			}
			return err
		case name == "boot/vmlinuz-"+rel:
			image = filepath.Join(work, "vmlinuz")
			return writeFrom(image, r)
		case strings.HasPrefix(name, modRoot+"kernel/") && strings.HasSuffix(name, ".ko"):
			rest := strings.TrimPrefix(name, modRoot)
			for _, d := range moduleDirs {
				if strings.HasPrefix(rest, "kernel/"+d) {
					host := filepath.Join(work, "mods", filepath.FromSlash(rest))
					if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
						return err
					}
					kos[rest] = host
					return writeFrom(host, r)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if image == "" {
		return fmt.Errorf("%s has no boot/vmlinuz-%s", deb, rel)
	}
	var want []string
	for _, m := range GenericModules {
		if !builtin[moduleName(m)] {
			want = append(want, m)
		}
	}
	order, deps, err := loadOrder(kos, want)
	if err != nil {
		return fmt.Errorf("linux-image-%s: %w", rel, err)
	}
	tree := filepath.Join(dir, "tree", "lib", "modules", rel)
	var dep strings.Builder
	for _, m := range order {
		dst := filepath.Join(tree, filepath.FromSlash(m))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(kos[m], dst); err != nil {
			return err
		}
		fmt.Fprintf(&dep, "%s:", m)
		for _, d := range deps[m] {
			fmt.Fprintf(&dep, " %s", d)
		}
		dep.WriteString("\n")
	}
	if err := os.WriteFile(filepath.Join(tree, "modules.dep"), []byte(dep.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "load-order"), []byte(strings.Join(order, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(image, filepath.Join(dir, "vmlinuz-"+rel))
}

// loadOrder finds the modules named in want among kos (path -> host
// file) with everything they depend on, and returns their paths with
// each module after its dependencies, and each one's transitive
// dependencies in the same order (what modules.dep lists).
func loadOrder(kos map[string]string, want []string) ([]string, map[string][]string, error) {
	byName := map[string]string{}
	for p := range kos {
		byName[moduleName(path.Base(p))] = p
	}
	var order []string
	deps := map[string][]string{}
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		p, ok := byName[moduleName(name)]
		if !ok {
			return fmt.Errorf("module %s (needed by %s) is not in %s of the package", name, from, strings.Join(moduleDirs, ", "))
		}
		switch state[p] {
		case 1:
			return fmt.Errorf("modules depend on each other in a circle at %s", p)
		case 2:
			return nil
		}
		state[p] = 1
		direct, err := moduleDepends(kos[p])
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		var all []string
		for _, d := range direct {
			if err := visit(d, p); err != nil {
				return err
			}
			dp := byName[moduleName(d)]
			for _, x := range append(append([]string(nil), deps[dp]...), dp) {
				if !seen[x] {
					seen[x] = true
					all = append(all, x)
				}
			}
		}
		sort.SliceStable(all, func(i, j int) bool { return indexOf(order, all[i]) < indexOf(order, all[j]) })
		deps[p] = all
		state[p] = 2
		order = append(order, p)
		return nil
	}
	for _, w := range want {
		if err := visit(w, "the watchdog guests"); err != nil {
			return nil, nil, err
		}
	}
	return order, deps, nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// moduleName is a module's name as modprobe compares them: the file's
// base name without .ko, dashes as underscores.
func moduleName(file string) string {
	name, _, _ := strings.Cut(file, ".ko")
	return strings.ReplaceAll(name, "-", "_")
}

// moduleDepends reads the depends= field of a module's .modinfo section.
func moduleDepends(ko string) ([]string, error) {
	f, err := elf.Open(ko)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", ko, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s has no .modinfo section", ko)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", ko, err)
	}
	for _, field := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(field, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// AddModules puts the kernel's module subset into r at
// /lib/modules/RELEASE.
func (k GenericKernel) AddModules(r *Initramfs) *Initramfs {
	for _, f := range k.moduleFiles() {
		r.HostFile(f.Path, 0o644, f.HostPath)
	}
	return r
}

// GuestFiles are the kernel's image as /boot/vmlinuz-RELEASE and its
// module subset under /lib/modules/RELEASE, for a disk.
func (k GenericKernel) GuestFiles() []GuestFile {
	return append([]GuestFile{{Path: "/boot/vmlinuz-" + k.Release, HostPath: k.Image}}, k.moduleFiles()...)
}

// moduleFiles are the module subset's files, modules.dep first: where
// they go in a guest (/lib/modules/RELEASE/...) and where they are on the
// host.
func (k GenericKernel) moduleFiles() []GuestFile {
	host := filepath.Join(k.Modules, "lib", "modules", k.Release)
	var files []GuestFile
	for _, m := range append([]string{"modules.dep"}, k.Load...) {
		files = append(files, GuestFile{Path: "/lib/modules/" + k.Release + "/" + m, HostPath: filepath.Join(host, filepath.FromSlash(m))})
	}
	return files
}
