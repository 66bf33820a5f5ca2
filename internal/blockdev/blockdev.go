// Package blockdev resolves the root= of a kernel command line to the block
// device it names on this machine, so that a wrong root= (Scaleway's reused
// root=/dev/vda when the file system is on /dev/vda1, a Fedora BLS entry's
// unexpanded $kernelopts) is reported before the jump instead of as a new
// kernel stuck at "Waiting for root device".
package blockdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// ErrUnchecked is wrapped by Resolve's error for root= forms that are valid
// but that only the booting kernel or its initramfs can resolve (device
// numbers, /dev/root, NFS, ZFS, network forms): the caller warns, it does
// not refuse.
var ErrUnchecked = errors.New("cannot be checked here")

const waiting = `the new kernel would stop at "Waiting for root device"`

// Resolve returns the in-machine /dev path of the block device root=spec
// names (spec is the value after "root="), following /dev links inside the
// root: "UUID=..." gives "/dev/vda1", "/dev/mapper/vg-root" gives
// "/dev/dm-0".
func Resolve(fsys rootfs.FS, spec string) (string, error) {
	spec = strings.TrimSpace(spec)
	if len(spec) >= 2 && spec[0] == '"' && spec[len(spec)-1] == '"' {
		spec = spec[1 : len(spec)-1]
	}
	if spec == "" {
		return "", fmt.Errorf("root= has no value; the new kernel would not know which device to mount")
	}
	if i := strings.IndexByte(spec, '$'); i >= 0 {
		v := spec[i:]
		if j := strings.IndexAny(v, " /,"); j > 0 {
			v = v[:j]
		}
		return "", fmt.Errorf("root=%s refers to the GRUB variable %s, which the kernel will not expand; "+
			"put the device itself (root=UUID=...) on the command line", spec, v)
	}
	if why := uncheckable(spec); why != "" {
		return "", fmt.Errorf("root=%s %w (%s)", spec, ErrUnchecked, why)
	}
	for _, t := range tags {
		if v, ok := strings.CutPrefix(spec, t.key); ok {
			return byTag(fsys, spec, t, v)
		}
	}
	if strings.HasPrefix(spec, "/dev/") {
		return byPath(fsys, spec)
	}
	if strings.Contains(spec, ":") {
		return "", fmt.Errorf("root=%s %w (a network or initramfs form like live:, nbd: or iscsi: is resolved by the initramfs)", spec, ErrUnchecked)
	}
	return "", fmt.Errorf("root=%s %w (not a form kxboot knows: /dev/..., UUID=, LABEL=, PARTUUID=, PARTLABEL=; the initramfs may)", spec, ErrUnchecked)
}

var devNumber = regexp.MustCompile(`^([0-9]+:[0-9]+|[0-9a-fA-F]+)$`)

// uncheckable says why spec cannot be resolved from here, or "" if it can.
func uncheckable(spec string) string {
	lower := strings.ToLower(spec)
	switch {
	case spec == "/dev/root":
		return "it is the kernel's name for the device it was told to mount"
	case spec == "/dev/nfs" || strings.HasPrefix(lower, "nfs:") || strings.HasPrefix(lower, "nfs4:"):
		return "an NFS root is mounted over the network at boot"
	case strings.HasPrefix(spec, "ZFS=") || strings.HasPrefix(lower, "zfs:"):
		return "a ZFS dataset is imported by the initramfs"
	case devNumber.MatchString(spec):
		return "a device number is resolved by the kernel and can differ under another kernel"
	case strings.Contains(spec, "/PARTNROFF="):
		return "a partition offset is resolved by the kernel"
	}
	return ""
}

type tag struct {
	key, dir string
	fold     bool // compare case-insensitively (UUIDs are hex)
	// fallback looks the value up without udev's links; it returns the
	// device found and what it looked at, for the error.
	fallback func(fsys rootfs.FS, v string) (dev, looked string)
}

var tags = []tag{
	{"UUID=", "/dev/disk/by-uuid", true, func(fsys rootfs.FS, v string) (string, string) {
		return scanSuperblocks(fsys, func(sb superblock) bool { return strings.EqualFold(sb.uuid, v) })
	}},
	{"LABEL=", "/dev/disk/by-label", false, func(fsys rootfs.FS, v string) (string, string) {
		return scanSuperblocks(fsys, func(sb superblock) bool { return sb.label == v })
	}},
	{"PARTUUID=", "/dev/disk/by-partuuid", true, nil},
	{"PARTLABEL=", "/dev/disk/by-partlabel", false, scanPartNames},
}

func byTag(fsys rootfs.FS, spec string, t tag, v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("root=%s has an empty value; %s", spec, waiting)
	}
	if dev, ok := byLink(fsys, t, v); ok {
		return dev, nil
	}
	haveDir := isDir(fsys, t.dir)
	var looked []string
	if haveDir {
		looked = append(looked, t.dir)
	}
	if t.fallback != nil {
		dev, what := t.fallback(fsys, v)
		if dev != "" {
			return dev, nil
		}
		looked = append(looked, what)
	}
	if len(looked) == 0 {
		// No udev links and no way around them (PARTUUID needs the
		// partition table): nothing was looked at, so say so.
		return "", fmt.Errorf("root=%s %w (there is no %s, and kxboot does not read partition tables)", spec, ErrUnchecked, t.dir)
	}
	where := strings.Join(looked, " and ")
	if !haveDir {
		where += "; there is no " + t.dir
	}
	return "", fmt.Errorf("root=%s does not match any block device here (looked in %s); %s", spec, where, waiting)
}

// byLink finds v in a /dev/disk/by-* directory as udev names it, and
// returns the device the link leads to, if that exists.
func byLink(fsys rootfs.FS, t tag, v string) (string, bool) {
	names := []string{v, udevEncode(v)}
	if t.fold {
		ents, _ := os.ReadDir(fsys.Path(t.dir))
		for _, e := range ents {
			if strings.EqualFold(e.Name(), v) {
				names = append(names, e.Name())
			}
		}
	}
	for _, n := range names {
		if strings.Contains(n, "/") {
			continue
		}
		link := path.Join(t.dir, n)
		if _, err := os.Lstat(fsys.Path(link)); err != nil {
			continue
		}
		if dev, err := fsys.Resolve(link); err == nil && devExists(fsys, dev) {
			return dev, true
		}
	}
	return "", false
}

// udevEncode spells a label the way udev names its link: bytes other than
// ASCII letters, digits, "#+-.:=@_" and UTF-8 become \xNN ("my root" is
// "my\x20root").
func udevEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("#+-.:=@_", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// byPath checks a /dev/... name: it must be a device node here (links
// followed inside the root), or at least a block device the kernel lists in
// /sys/class/block when /dev is not populated. A whole disk that has
// partitions is refused: its file system is on one of them.
func byPath(fsys rootfs.FS, spec string) (string, error) {
	p := path.Clean(spec)
	dev, err := fsys.Resolve(p)
	if err != nil {
		return "", fmt.Errorf("root=%s: %w", spec, err)
	}
	switch {
	case fsys.Exists(dev) || isDir(fsys, "/sys/class/block/"+path.Base(dev)):
	case strings.HasPrefix(p, "/dev/mapper/"):
		if dm := dmByName(fsys, path.Base(p)); dm != "" {
			dev = dm
			break
		}
		fallthrough
	default:
		// /dev/disk/by-uuid/X without udev: look X up as UUID=X would.
		for _, t := range tags {
			if v, ok := strings.CutPrefix(p, t.dir+"/"); ok && t.fallback != nil {
				if d, _ := t.fallback(fsys, v); d != "" {
					return d, nil
				}
			}
		}
		return "", fmt.Errorf("root=%s does not match any block device here (no %s, nothing named %s in /sys/class/block); %s",
			spec, p, path.Base(dev), waiting)
	}
	if parts := partitions(fsys, path.Base(dev)); len(parts) > 0 {
		return "", fmt.Errorf("root=%s names the whole disk %s, which has partitions (%s); the root file system is on one of them, "+
			"so the new kernel would fail to mount %s", spec, dev, strings.Join(parts, ", "), dev)
	}
	return dev, nil
}

// partitions lists /dev paths of the partitions of disk, from sysfs: each
// is a subdirectory of the disk's directory holding a "partition" file.
func partitions(fsys rootfs.FS, disk string) []string {
	dir, err := fsys.Resolve("/sys/class/block/" + disk)
	if err != nil {
		return nil
	}
	ents, _ := os.ReadDir(fsys.Path(dir))
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), disk) && fsys.Exists(path.Join(dir, e.Name(), "partition")) {
			out = append(out, "/dev/"+e.Name())
		}
	}
	return out
}

// dmByName finds the dm-N device whose device-mapper name is name.
func dmByName(fsys rootfs.FS, name string) string {
	for _, b := range blockDevices(fsys) {
		if n, err := fsys.ReadString("/sys/class/block/" + b + "/dm/name"); err == nil && n == name {
			return devPath(b)
		}
	}
	return ""
}

// scanPartNames finds a partition by its GPT name, which the kernel gives
// in the partition's uevent as PARTNAME.
func scanPartNames(fsys rootfs.FS, v string) (string, string) {
	devs := blockDevices(fsys)
	for _, b := range devs {
		ue, err := fsys.ReadFile("/sys/class/block/" + b + "/uevent")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(ue), "\n") {
			if line == "PARTNAME="+v {
				return devPath(b), ""
			}
		}
	}
	return "", fmt.Sprintf("the partition names of %d devices in /sys/class/block", len(devs))
}

// blockDevices lists the names in /sys/class/block.
func blockDevices(fsys rootfs.FS) []string {
	ents, _ := os.ReadDir(fsys.Path("/sys/class/block"))
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// devPath is the /dev path of a /sys/class/block name; sysfs spells the
// '/' of names like cciss/c0d0 as '!'.
func devPath(name string) string { return "/dev/" + strings.ReplaceAll(name, "!", "/") }

func devExists(fsys rootfs.FS, dev string) bool {
	return fsys.Exists(dev) || isDir(fsys, "/sys/class/block/"+path.Base(dev))
}

func isDir(fsys rootfs.FS, p string) bool {
	st, err := os.Stat(fsys.Path(p))
	return err == nil && st.IsDir()
}

// superblock is what a file system's superblock says about it.
type superblock struct {
	fstype, uuid, label string
}

// scanSuperblocks reads the superblock of every device in /sys/class/block
// (without udev, the only record of UUIDs and labels) and returns the first
// that match accepts, or "" and a description of what was read.
func scanSuperblocks(fsys rootfs.FS, match func(superblock) bool) (string, string) {
	read, unreadable := 0, 0
	for _, b := range blockDevices(fsys) {
		if !worthReading(fsys, b) {
			continue
		}
		sb, err := readSuperblock(fsys.Path(devPath(b)))
		if err != nil {
			unreadable++
			continue
		}
		read++
		if sb.fstype != "" && match(sb) {
			return devPath(b), ""
		}
	}
	what := fmt.Sprintf("the ext4/xfs/btrfs superblocks of %d devices", read)
	if read == 1 {
		what = "the ext4/xfs/btrfs superblock of 1 device"
	}
	if unreadable > 0 {
		what += fmt.Sprintf("; %d more could not be read", unreadable)
	}
	return "", what
}

// worthReading says whether device b may hold a file system: empty loop
// and ram devices have nothing to read; optical and floppy drives can
// stall on a read.
func worthReading(fsys rootfs.FS, b string) bool {
	if size, err := fsys.ReadString("/sys/class/block/" + b + "/size"); err == nil && size == "0" {
		return false
	}
	return !strings.HasPrefix(b, "sr") && !strings.HasPrefix(b, "fd")
}

// readSuperblock reads the few KiB that hold an ext2/3/4, XFS or btrfs
// superblock. A device with none of them gives an empty superblock, not an
// error.
func readSuperblock(hostPath string) (superblock, error) {
	f, err := os.Open(hostPath)
	if err != nil {
		return superblock{}, err
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return superblock{}, err
	}
	head = head[:n]
	// ext2/3/4: superblock at 1024, magic 0xEF53 (le16) at +0x38, UUID
	// at +0x68, volume name (16 bytes) at +0x78.
	if len(head) >= 1024+0x88 && binary.LittleEndian.Uint16(head[1024+0x38:]) == 0xEF53 {
		s := head[1024:]
		return superblock{"ext4", formatUUID(s[0x68:0x78]), cString(s[0x78:0x88])}, nil
	}
	// XFS: "XFSB" at 0, UUID at 32, label (12 bytes) at 108.
	if len(head) >= 120 && string(head[:4]) == "XFSB" {
		return superblock{"xfs", formatUUID(head[32:48]), cString(head[108:120])}, nil
	}
	// btrfs: superblock at 64 KiB, fsid at +0x20, magic "_BHRfS_M" at
	// +0x40, label (256 bytes) at +0x12b.
	bt := make([]byte, 0x22b)
	if n, _ := f.ReadAt(bt, 0x10000); n == len(bt) && string(bt[0x40:0x48]) == "_BHRfS_M" {
		return superblock{"btrfs", formatUUID(bt[0x20:0x30]), cString(bt[0x12b:])}, nil
	}
	return superblock{}, nil
}

func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// UUIDOf names the file system that holds the in-machine path p as a
// root= would: "UUID=..." from its superblock, found through the device
// number of p (/sys/dev/block/MAJOR:MINOR); or the device's /dev path when
// another device holds a file system of the same UUID (an A/B pair made
// from one image), since the UUID would then name either.
func UUIDOf(fsys rootfs.FS, p string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(fsys.Path(p), &st); err != nil {
		return "", err
	}
	id := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	uevent, err := fsys.ReadString("/sys/dev/block/" + id + "/uevent")
	if err != nil {
		return "", fmt.Errorf("%s is on device %s, which /sys/dev/block does not list: %w", p, id, err)
	}
	name := ""
	for _, l := range strings.Split(uevent, "\n") {
		if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
			name = v
		}
	}
	if name == "" {
		return "", fmt.Errorf("%s is on device %s, which has no name in /sys/dev/block/%s/uevent", p, id, id)
	}
	sb, err := readSuperblock(fsys.Path(devPath(name)))
	if err != nil {
		return "", err
	}
	if sb.uuid == "" {
		return "", fmt.Errorf("%s is on %s, whose file system has no ext4, XFS or btrfs UUID", p, devPath(name))
	}
	for _, b := range blockDevices(fsys) {
		if b == name || !worthReading(fsys, b) {
			continue
		}
		if other, err := readSuperblock(fsys.Path(devPath(b))); err == nil && other.uuid == sb.uuid {
			return devPath(name), nil
		}
	}
	return "UUID=" + sb.uuid, nil
}
