// Package kernels finds the kernels installed on a machine, with the initrds
// that belong to each, by the rules of the distributions that installed them
// (Debian/Ubuntu, Fedora/RHEL BLS entries, SUSE, Arch, Alpine), and orders
// them by the UAPI version format specification.
package kernels

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// Kernel is one bootable kernel and what goes with it.
type Kernel struct {
	Version string   // uname -r style release ("6.1.0-54-cloud-amd64"), "" if unknown
	Path    string   // in-machine path of the image, links resolved
	Initrds []string // in load order: early microcode cpio(s) first, then the main initrd
	Options string   // a BLS entry's options line, raw (may hold GRUB variables like $kernelopts)
	Source  string   // how it was found, for people
}

// Installed returns every kernel installed on the machine, newest first.
// Kernels found twice (a BLS entry and /boot/vmlinuz-*) are merged on their
// resolved Path; the BLS entry wins, as it carries the options. Kernels of
// unknown version come after all known ones, rescue images last.
func Installed(fsys rootfs.FS) ([]Kernel, error) {
	found, err := blsKernels(fsys)
	if err != nil {
		return nil, err
	}
	names, err := readDirNames(fsys, "/boot")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if k, ok := fromName(fsys, "/boot", name); ok {
			found = append(found, k)
		}
	}
	var out []Kernel
	seen := map[string]bool{}
	for _, k := range found {
		if !seen[k.Path] {
			seen[k.Path] = true
			out = append(out, k)
		}
	}
	slices.SortStableFunc(out, func(a, b Kernel) int {
		if r := cmpInt(rank(a), rank(b)); r != 0 {
			return r
		}
		if r := Compare(b.Version, a.Version); r != 0 {
			return r
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

// rank puts kernels of known version first, then unknown ones, then rescue
// images (Fedora's vmlinuz-0-rescue-<machine-id>): a generic kernel with
// every driver, never the one an owner means by "the newest".
func rank(k Kernel) int {
	switch {
	case strings.Contains(path.Base(k.Path), "-rescue-") || strings.Contains(k.Version, "rescue"):
		return 2
	case k.Version == "":
		return 1
	}
	return 0
}

// Newest returns the newest installed kernel.
func Newest(fsys rootfs.FS) (Kernel, error) {
	all, err := Installed(fsys)
	if err != nil {
		return Kernel{}, err
	}
	if len(all) == 0 {
		return Kernel{}, errors.New("no installed kernel found in /boot (looked for /boot/vmlinuz-<version>, " +
			"/boot/vmlinuz-<flavour> with its initramfs, and BLS entries in /boot/loader/entries, /efi/loader/entries " +
			"and /boot/efi/loader/entries); name one with --kernel or KERNEL= in /etc/default/kxboot")
	}
	return all[0], nil
}

// ForImage describes a kernel the owner named by path: its Version and the
// initrds that belong to it by the same distribution rules as Installed.
// /vmlinuz and /vmlinuz.old (and /boot/vmlinuz on newer Ubuntu and SUSE)
// take the initrd their sibling link names. A path no rule knows gets the
// release read from the image, and no initrds. The image need not exist;
// the caller checks that.
func ForImage(fsys rootfs.FS, p string) Kernel {
	p = path.Clean("/" + p)
	real, err := fsys.Resolve(p)
	if err != nil {
		real = p
	}
	if k, ok := linkPair(fsys, p, real); ok {
		return k
	}
	if all, err := Installed(fsys); err == nil {
		for _, k := range all {
			if k.Path == real {
				return k
			}
		}
	}
	if k, ok := fromName(fsys, path.Dir(real), path.Base(real)); ok {
		return k
	}
	return Kernel{Version: ReleaseOf(fsys, real), Path: real, Source: "named " + p}
}

// linkPairs maps the names of the "current kernel" links Debian, Ubuntu and
// SUSE keep to the initrd links kept beside them.
var linkPairs = map[string][]string{
	"vmlinuz":     {"initrd.img", "initrd"},
	"vmlinuz.old": {"initrd.img.old", "initrd.old"},
}

func linkPair(fsys rootfs.FS, p, real string) (Kernel, bool) {
	dir, name := path.Split(p)
	for _, initrd := range linkPairs[name] {
		ir := path.Join(dir, initrd)
		if !isFile(fsys, ir) {
			continue
		}
		k := Kernel{Path: real, Initrds: []string{resolve(fsys, ir)}, Source: "link " + p + " with " + ir}
		if v, ok := versionFromName(path.Base(real)); ok {
			k.Version = v
		} else {
			k.Version = ReleaseOf(fsys, real)
		}
		return k, true
	}
	return Kernel{}, false
}

// skipSuffixes mark files in /boot that are not kernels to boot: package
// manager leftovers, backups and detached signatures.
var skipSuffixes = []string{".dpkg-tmp", ".dpkg-new", ".dpkg-old", ".dpkg-bak", ".dpkg-dist",
	".rpmnew", ".rpmsave", ".bak", ".old", ".orig", ".sig", ".sign", ".asc", ".hmac", ".efi.signed"}

// versioned are the initrd names that go with /boot/vmlinuz-<version>, with
// the distributions that use them (the first that exists wins).
var versioned = []struct{ distro, initrd string }{
	{"Debian", "initrd.img-%s"},     // Debian, Ubuntu
	{"Red Hat", "initramfs-%s.img"}, // Fedora/RHEL without BLS; Gentoo and Void name theirs alike
	{"SUSE", "initrd-%s"},           // openSUSE, SLES
}

// flavoured are the initrd names that go with /boot/vmlinuz-<flavour>
// (vmlinuz-linux, vmlinuz-lts), whose names carry no version.
var flavoured = []struct{ distro, initrd string }{
	{"Arch", "initramfs-%s.img"}, // vmlinuz-linux, -lts, -zen, -hardened
	{"Alpine", "initramfs-%s"},   // vmlinuz-lts, -virt, -edge
}

// microcode are the early microcode cpio archives Arch and Alpine install
// beside the kernel; they go before the main initrd. Debian, Ubuntu and
// Fedora put microcode inside the initrd instead.
var microcode = []string{"intel-ucode.img", "amd-ucode.img"}

// fromName applies the per-name rules to the file name in dir.
func fromName(fsys rootfs.FS, dir, name string) (Kernel, bool) {
	rest, ok := strings.CutPrefix(name, "vmlinuz-")
	if !ok {
		rest, ok = strings.CutPrefix(name, "vmlinux-") // Debian ppc64el
	}
	if !ok || rest == "" {
		return Kernel{}, false
	}
	for _, s := range skipSuffixes {
		if strings.HasSuffix(name, s) {
			return Kernel{}, false
		}
	}
	img := path.Join(dir, name)
	if !isFile(fsys, img) {
		return Kernel{}, false // dangling link, directory
	}
	k := Kernel{Path: resolve(fsys, img)}
	glob := strings.TrimSuffix(name, rest) + "*"
	if v, ok := versionFromName(name); ok {
		k.Version = v
		k.Source = "versioned " + path.Join(dir, glob)
		for _, r := range versioned {
			if ir := path.Join(dir, fmt.Sprintf(r.initrd, v)); isFile(fsys, ir) {
				k.Initrds = []string{resolve(fsys, ir)}
				k.Source = r.distro + " " + path.Join(dir, glob)
				break
			}
		}
		return k, true
	}
	// A flavour names its initramfs; microcode goes with it only when
	// that is there, as both come from the distribution's packaging.
	k.Version = ReleaseOf(fsys, img)
	k.Source = img + " (no initramfs-" + rest + " beside it)"
	for _, r := range flavoured {
		ir := path.Join(dir, fmt.Sprintf(r.initrd, rest))
		if !isFile(fsys, ir) {
			continue
		}
		for _, m := range microcode {
			if mc := path.Join(dir, m); isFile(fsys, mc) {
				k.Initrds = append(k.Initrds, resolve(fsys, mc))
			}
		}
		k.Initrds = append(k.Initrds, resolve(fsys, ir))
		k.Source = r.distro + " " + img
		break
	}
	return k, true
}

// versionFromName returns the version in "vmlinuz-<version>", which starts
// with a digit (Fedora's "vmlinuz-0-rescue-<machine-id>" included).
func versionFromName(name string) (string, bool) {
	for _, pre := range []string{"vmlinuz-", "vmlinux-"} {
		if v, ok := strings.CutPrefix(name, pre); ok && v != "" && isDigit(v[0]) {
			return v, true
		}
	}
	return "", false
}

// isFile says whether in-machine path p leads, links followed inside the
// root, to a regular file.
func isFile(fsys rootfs.FS, p string) bool {
	st, err := os.Stat(fsys.Path(resolve(fsys, p)))
	return err == nil && st.Mode().IsRegular()
}

func resolve(fsys rootfs.FS, p string) string {
	r, err := fsys.Resolve(p)
	if err != nil {
		return p
	}
	return r
}

// readDirNames lists a directory's names, sorted; a missing directory is
// empty, any other failure is an error.
func readDirNames(fsys rootfs.FS, dir string) ([]string, error) {
	ents, err := os.ReadDir(fsys.Path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s for installed kernels: %w", dir, err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}
