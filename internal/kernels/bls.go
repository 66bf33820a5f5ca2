package kernels

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strings"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// blsRoots are the places a Boot Loader Specification partition ($BOOT) is
// mounted: /boot (Fedora, RHEL and grub's BLS support; XBOOTLDR), /efi and
// /boot/efi (an ESP used by systemd-boot). Entries live in $BOOT/loader/entries.
var blsRoots = []string{"/boot", "/efi", "/boot/efi"}

// blsKernels reads the type #1 entries under every BLS root, in file name
// order. Entries without a "linux" key (UKI "efi" entries) and entries whose
// kernel is missing are skipped; an unreadable entry is an error, since
// skipping it could silently pick another kernel.
func blsKernels(fsys rootfs.FS) ([]Kernel, error) {
	var out []Kernel
	for _, boot := range blsRoots {
		dir := path.Join(boot, "loader/entries")
		names, err := readDirNames(fsys, dir)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if !strings.HasSuffix(name, ".conf") {
				continue
			}
			entry := path.Join(dir, name)
			b, err := fsys.ReadFile(entry)
			if err != nil {
				return nil, fmt.Errorf("reading BLS entry %s: %w", entry, err)
			}
			if k, ok := blsKernel(fsys, boot, entry, parseBLS(b)); ok {
				out = append(out, k)
			}
		}
	}
	return out, nil
}

// blsEntry is what kxboot uses of an entry: "initrd" and "options" may
// repeat, every other key counts once (the last wins).
type blsEntry struct {
	keys    map[string]string
	initrds []string // every value of every initrd line, in order
	options []string // every options line, in order
}

func parseBLS(b []byte) blsEntry {
	e := blsEntry{keys: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			key, val = line[:i], strings.TrimSpace(line[i+1:])
		}
		switch key {
		case "initrd":
			// grub's BLS support takes several paths on one line
			// ("initrd /initramfs-X.img $tuned_initrd").
			e.initrds = append(e.initrds, strings.Fields(val)...)
		case "options":
			e.options = append(e.options, val)
		default:
			e.keys[key] = val
		}
	}
	return e
}

// blsKernel turns an entry into a Kernel. Paths in an entry are relative to
// $BOOT, the partition holding the entries: "/vmlinuz-X" is /boot/vmlinuz-X
// when /boot is its own partition. When /boot is part of the root file
// system grub writes "/boot/vmlinuz-X", so a path not found below $BOOT is
// tried from the machine's root.
func blsKernel(fsys rootfs.FS, boot, entry string, e blsEntry) (Kernel, bool) {
	linux := e.keys["linux"]
	if linux == "" {
		return Kernel{}, false
	}
	base := ""
	for _, b := range []string{boot, "/"} {
		if isFile(fsys, path.Join(b, linux)) {
			base = b
			break
		}
	}
	if base == "" {
		return Kernel{}, false
	}
	k := Kernel{
		Path:    resolve(fsys, path.Join(base, linux)),
		Version: e.keys["version"],
		Options: strings.Join(e.options, " "),
		Source:  "BLS entry " + entry,
	}
	if k.Version == "" {
		k.Version = ReleaseOf(fsys, k.Path)
	}
	var vars []string
	for _, ir := range e.initrds {
		if strings.HasPrefix(ir, "$") {
			// A GRUB environment variable ($tuned_initrd): only grub
			// expands it. Usually empty; said in Source for people.
			vars = append(vars, ir)
			continue
		}
		p := path.Join(base, ir)
		if other := path.Join(otherBase(base, boot), ir); !isFile(fsys, p) && isFile(fsys, other) {
			p = other
		}
		k.Initrds = append(k.Initrds, resolve(fsys, p))
	}
	if len(vars) > 0 {
		k.Source += fmt.Sprintf(" (left out initrd %s: only grub expands its variables)", strings.Join(vars, " "))
	}
	return k, true
}

func otherBase(base, boot string) string {
	if base == "/" {
		return boot
	}
	return "/"
}
