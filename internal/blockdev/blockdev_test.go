package blockdev

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

const (
	extUUID   = "5e6f7a8b-1c2d-4e3f-9a0b-c1d2e3f4a5b6"
	xfsUUID   = "0c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5"
	btrfsUUID = "9a8b7c6d-5e4f-4031-8a2b-1c0d9e8f7a6b"
	partUUID  = "6b3e1c2a-0d4f-4e5a-9b8c-7d6e5f4a3b2c"
)

func uuidBytes(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		t.Fatalf("bad uuid %q", s)
	}
	return b
}

// ext4 builds the first 2 KiB of an ext4 file system.
func ext4(t *testing.T, uuid, label string) []byte {
	b := make([]byte, 2048)
	sb := b[1024:]
	binary.LittleEndian.PutUint16(sb[0x38:], 0xEF53)
	copy(sb[0x68:], uuidBytes(t, uuid))
	copy(sb[0x78:0x88], label)
	return b
}

// xfs builds the first sector of an XFS file system.
func xfs(t *testing.T, uuid, label string) []byte {
	b := make([]byte, 512)
	copy(b, "XFSB")
	binary.BigEndian.PutUint32(b[4:], 4096) // block size, for looks
	copy(b[32:], uuidBytes(t, uuid))
	copy(b[108:120], label)
	return b
}

// btrfs builds a device holding a btrfs superblock at 64 KiB.
func btrfs(t *testing.T, uuid, label string) []byte {
	b := make([]byte, 0x10000+0x1000)
	sb := b[0x10000:]
	copy(sb[0x20:], uuidBytes(t, uuid))
	copy(sb[0x40:], "_BHRfS_M")
	copy(sb[0x12b:], label)
	return b
}

type machine struct {
	files map[string][]byte
	links map[string]string
}

func (m machine) build(t *testing.T) rootfs.FS {
	t.Helper()
	fsys := rootfstest.New(t)
	for p, data := range m.files {
		rootfstest.Write(t, fsys, p, data)
	}
	for p, target := range m.links {
		rootfstest.Link(t, fsys, p, target)
	}
	return fsys
}

// devices is a cloud VM: vda with a root partition (ext4) and an ESP, vdb
// holding XFS, vdc btrfs, a device-mapper volume, an empty loop device, a
// CD drive, and vdz that sysfs lists but /dev lacks. Image files stand in
// for the device nodes.
func devices(t *testing.T) map[string][]byte {
	return map[string][]byte{
		"/dev/vda":   make([]byte, 4096),
		"/dev/vda1":  ext4(t, extUUID, "cloudimg-rootfs"),
		"/dev/vda15": make([]byte, 4096),
		"/dev/vdb":   xfs(t, xfsUUID, "my data"),
		"/dev/vdc":   btrfs(t, btrfsUUID, "fedora"),
		"/dev/dm-0":  ext4(t, "11111111-2222-4333-8444-555555555555", "lvroot"),
		"/dev/loop0": nil,

		"/sys/class/block/vda/size":             []byte("41943040\n"),
		"/sys/class/block/vda/vda1/partition":   []byte("1\n"),
		"/sys/class/block/vda/vda15/partition":  []byte("15\n"),
		"/sys/class/block/vda1/partition":       []byte("1\n"),
		"/sys/class/block/vda1/uevent":          []byte("MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=root\n"),
		"/sys/class/block/vda15/partition":      []byte("15\n"),
		"/sys/class/block/vda15/uevent":         []byte("MAJOR=254\nMINOR=15\nDEVNAME=vda15\nDEVTYPE=partition\nPARTN=15\nPARTNAME=EFI System Partition\n"),
		"/sys/class/block/vdb/size":             []byte("2097152\n"),
		"/sys/class/block/vdc/size":             []byte("2097152\n"),
		"/sys/class/block/dm-0/dm/name":         []byte("vg-root\n"),
		"/sys/class/block/loop0/size":           []byte("0\n"),
		"/sys/class/block/sr0/size":             []byte("2048\n"),
		"/sys/class/block/vdz/size":             []byte("2048\n"),
		"/sys/class/block/sda1/partition":       []byte("1\n"),
		"/sys/class/block/vda/queue/rotational": []byte("1\n"),
	}
}

func udev() map[string]string {
	return map[string]string{
		"/dev/disk/by-uuid/" + extUUID:                      "../../vda1",
		"/dev/disk/by-uuid/" + xfsUUID:                      "../../vdb",
		"/dev/disk/by-uuid/" + btrfsUUID:                    "../../vdc",
		"/dev/disk/by-uuid/7E2C-1A3B":                       "../../vda15",
		"/dev/disk/by-label/cloudimg-rootfs":                "../../vda1",
		`/dev/disk/by-label/my\x20data`:                     "../../vdb",
		"/dev/disk/by-label/UEFI":                           "../../vda15",
		"/dev/disk/by-partuuid/" + partUUID:                 "../../vda1",
		"/dev/disk/by-partlabel/root":                       "../../vda1",
		`/dev/disk/by-partlabel/EFI\x20System\x20Partition`: "../../vda15",
		"/dev/mapper/vg-root":                               "../dm-0",
		"/dev/disk/by-path/pci-0000:00:04.0-part1":          "../../vda1",
		"/dev/disk/by-label/a:b":                            "../../vdc",
		"/dev/disk/by-uuid/dead-beef":                       "../../gone", // stale link
	}
}

func TestResolve(t *testing.T) {
	withUdev := machine{devices(t), udev()}.build(t)
	bare := machine{devices(t), nil}.build(t) // early boot: no udev links
	for _, tt := range []struct {
		fsys       rootfs.FS
		name, spec string
		want       string
	}{
		{withUdev, "udev", "/dev/vda1", "/dev/vda1"},
		{withUdev, "udev", "  /dev/vda1 ", "/dev/vda1"},
		{withUdev, "udev", "/dev/mapper/vg-root", "/dev/dm-0"},
		{withUdev, "udev", "/dev/disk/by-uuid/" + extUUID, "/dev/vda1"},
		{withUdev, "udev", "/dev/sda1", "/dev/sda1"}, // only in /sys/class/block
		{withUdev, "udev", "UUID=" + extUUID, "/dev/vda1"},
		{withUdev, "udev", "UUID=" + strings.ToUpper(extUUID), "/dev/vda1"},
		{withUdev, "udev", "UUID=7e2c-1a3b", "/dev/vda15"},
		{withUdev, "udev", `"UUID=` + xfsUUID + `"`, "/dev/vdb"},
		{withUdev, "udev", "LABEL=cloudimg-rootfs", "/dev/vda1"},
		{withUdev, "udev", "LABEL=my data", "/dev/vdb"},
		{withUdev, "udev", "PARTUUID=" + partUUID, "/dev/vda1"},
		{withUdev, "udev", "PARTUUID=" + strings.ToUpper(partUUID), "/dev/vda1"},
		{withUdev, "udev", "PARTLABEL=root", "/dev/vda1"},
		{withUdev, "udev", "PARTLABEL=EFI System Partition", "/dev/vda15"},
		{withUdev, "udev", "UUID=" + btrfsUUID, "/dev/vdc"},

		{bare, "bare", "/dev/vda1", "/dev/vda1"},
		{bare, "bare", "UUID=" + extUUID, "/dev/vda1"},
		{bare, "bare", "UUID=" + strings.ToUpper(xfsUUID), "/dev/vdb"},
		{bare, "bare", "UUID=" + btrfsUUID, "/dev/vdc"},
		{bare, "bare", "LABEL=cloudimg-rootfs", "/dev/vda1"},
		{bare, "bare", "LABEL=my data", "/dev/vdb"},
		{bare, "bare", "LABEL=fedora", "/dev/vdc"},
		{bare, "bare", "LABEL=lvroot", "/dev/dm-0"},
		{bare, "bare", "PARTLABEL=root", "/dev/vda1"},
		{bare, "bare", "/dev/mapper/vg-root", "/dev/dm-0"},
		{bare, "bare", "/dev/disk/by-uuid/" + extUUID, "/dev/vda1"},
		{bare, "bare", "/dev/disk/by-label/my data", "/dev/vdb"},
		{withUdev, "udev", "/dev/disk/by-path/pci-0000:00:04.0-part1", "/dev/vda1"},
		{withUdev, "udev", "LABEL=a:b", "/dev/vdc"},
	} {
		got, err := Resolve(tt.fsys, tt.spec)
		if err != nil || got != tt.want {
			t.Errorf("%s: Resolve(%q) = %q, %v; want %q", tt.name, tt.spec, got, err, tt.want)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	withUdev := machine{devices(t), udev()}.build(t)
	bare := machine{devices(t), nil}.build(t)
	for _, tt := range []struct {
		fsys       rootfs.FS
		name, spec string
		want       string
	}{
		{withUdev, "udev", "UUID=abcd",
			`root=UUID=abcd does not match any block device here (looked in /dev/disk/by-uuid and the ext4/xfs/btrfs superblocks of 6 devices; 2 more could not be read); the new kernel would stop at "Waiting for root device"`},
		{withUdev, "udev", "UUID=dead-beef", // a stale link is not a device
			`root=UUID=dead-beef does not match any block device here (looked in /dev/disk/by-uuid and the ext4/xfs/btrfs superblocks of 6 devices; 2 more could not be read); the new kernel would stop at "Waiting for root device"`},
		{bare, "bare", "LABEL=nope",
			`root=LABEL=nope does not match any block device here (looked in the ext4/xfs/btrfs superblocks of 6 devices; 2 more could not be read; there is no /dev/disk/by-label); the new kernel would stop at "Waiting for root device"`},
		{withUdev, "udev", "PARTUUID=00000000-01",
			`root=PARTUUID=00000000-01 does not match any block device here (looked in /dev/disk/by-partuuid); the new kernel would stop at "Waiting for root device"`},
		{withUdev, "udev", "PARTLABEL=swap",
			`root=PARTLABEL=swap does not match any block device here (looked in /dev/disk/by-partlabel and the partition names of 10 devices in /sys/class/block); the new kernel would stop at "Waiting for root device"`},
		// Scaleway: the provider's root=/dev/vda reused where the file system is on vda1.
		{withUdev, "udev", "/dev/vda",
			`root=/dev/vda names the whole disk /dev/vda, which has partitions (/dev/vda1, /dev/vda15); the root file system is on one of them, so the new kernel would fail to mount /dev/vda`},
		{withUdev, "udev", "/dev/vda2",
			`root=/dev/vda2 does not match any block device here (no /dev/vda2, nothing named vda2 in /sys/class/block); the new kernel would stop at "Waiting for root device"`},
		{bare, "bare", "/dev/mapper/vg-home",
			`root=/dev/mapper/vg-home does not match any block device here (no /dev/mapper/vg-home, nothing named vg-home in /sys/class/block); the new kernel would stop at "Waiting for root device"`},
		{withUdev, "udev", "$root",
			`root=$root refers to the GRUB variable $root, which the kernel will not expand; put the device itself (root=UUID=...) on the command line`},
		{withUdev, "udev", "UUID=$rootuuid",
			`root=UUID=$rootuuid refers to the GRUB variable $rootuuid, which the kernel will not expand; put the device itself (root=UUID=...) on the command line`},
		{withUdev, "udev", "", `root= has no value; the new kernel would not know which device to mount`},
		{withUdev, "udev", "UUID=", `root=UUID= has an empty value; the new kernel would stop at "Waiting for root device"`},
	} {
		got, err := Resolve(tt.fsys, tt.spec)
		if err == nil {
			t.Errorf("%s: Resolve(%q) = %q; want error %q", tt.name, tt.spec, got, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("%s: Resolve(%q) error\n got %q\nwant %q", tt.name, tt.spec, err, tt.want)
		}
		if errors.Is(err, ErrUnchecked) {
			t.Errorf("%s: Resolve(%q) error %q is ErrUnchecked; want a plain error", tt.name, tt.spec, err)
		}
	}
}

func TestResolveUnchecked(t *testing.T) {
	withUdev := machine{devices(t), udev()}.build(t)
	bare := machine{devices(t), nil}.build(t)
	for _, tt := range []struct {
		fsys rootfs.FS
		spec string
	}{
		{withUdev, "/dev/root"},
		{withUdev, "/dev/nfs"},
		{withUdev, "nfs:10.0.0.1:/srv/root"},
		{withUdev, "ZFS=rpool/ROOT/debian"},
		{withUdev, "zfs:AUTO"},
		{withUdev, "254:1"},
		{withUdev, "fe01"},
		{withUdev, "PARTUUID=" + partUUID + "/PARTNROFF=1"},
		{withUdev, "live:CDLABEL=Fedora-Live"},
		{withUdev, "tmpfs"},
		{bare, "PARTUUID=" + partUUID}, // no udev link, and no partition table reading
	} {
		got, err := Resolve(tt.fsys, tt.spec)
		if !errors.Is(err, ErrUnchecked) {
			t.Errorf("Resolve(%q) = %q, %v; want ErrUnchecked", tt.spec, got, err)
			continue
		}
		if got != "" || !strings.HasPrefix(err.Error(), "root="+tt.spec+" cannot be checked here (") {
			t.Errorf("Resolve(%q) = %q, %q", tt.spec, got, err)
		}
	}
}

func TestReadSuperblock(t *testing.T) {
	dir := t.TempDir()
	for name, tt := range map[string]struct {
		data []byte
		want superblock
	}{
		"ext4":    {ext4(t, extUUID, "cloudimg-rootfs"), superblock{"ext4", extUUID, "cloudimg-rootfs"}},
		"ext4-16": {ext4(t, extUUID, "sixteen-chars-xy"), superblock{"ext4", extUUID, "sixteen-chars-xy"}},
		"xfs":     {xfs(t, xfsUUID, "twelve-chars"), superblock{"xfs", xfsUUID, "twelve-chars"}},
		"btrfs":   {btrfs(t, btrfsUUID, "fedora_fedora"), superblock{"btrfs", btrfsUUID, "fedora_fedora"}},
		"zeros":   {make([]byte, 8192), superblock{}},
		"short":   {[]byte("x"), superblock{}},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, tt.data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readSuperblock(p)
		if err != nil || got != tt.want {
			t.Errorf("readSuperblock(%s) = %+v, %v; want %+v", name, got, err, tt.want)
		}
	}
	if _, err := readSuperblock(filepath.Join(dir, "missing")); err == nil {
		t.Error("readSuperblock(missing) succeeded")
	}
}

func TestUdevEncode(t *testing.T) {
	for in, want := range map[string]string{
		"cloudimg-rootfs":      "cloudimg-rootfs",
		"my data":              `my\x20data`,
		"EFI System Partition": `EFI\x20System\x20Partition`,
		"a/b":                  `a\x2fb`,
		`back\slash`:           `back\x5cslash`,
		"fête":                 "fête",
	} {
		if got := udevEncode(in); got != want {
			t.Errorf("udevEncode(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestUUIDOf: the file system that holds a path, by UUID; by its /dev
// path when another device holds the same UUID (an A/B pair from one
// image).
func TestUUIDOf(t *testing.T) {
	files := devices(t)
	files["/var/lib/kxboot/tries"] = []byte("{}")
	fsys := machine{files: files}.build(t)
	var st unix.Stat_t
	if err := unix.Stat(fsys.Path("/var/lib/kxboot"), &st); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	rootfstest.Write(t, fsys, "/sys/dev/block/"+id+"/uevent", []byte("MAJOR=254\nMINOR=1\nDEVNAME=vda1\n"))
	if got, err := UUIDOf(fsys, "/var/lib/kxboot"); err != nil || got != "UUID="+extUUID {
		t.Errorf("UUIDOf = %q, %v; want UUID=%s", got, err, extUUID)
	}
	rootfstest.Write(t, fsys, "/dev/vdd", ext4(t, extUUID, "copy"))
	rootfstest.Write(t, fsys, "/sys/class/block/vdd/size", []byte("2048\n"))
	if got, err := UUIDOf(fsys, "/var/lib/kxboot"); err != nil || got != "/dev/vda1" {
		t.Errorf("UUIDOf with a copy = %q, %v; want /dev/vda1", got, err)
	}
	os.Remove(fsys.Path("/sys/dev/block/" + id + "/uevent"))
	if _, err := UUIDOf(fsys, "/var/lib/kxboot"); err == nil || !strings.Contains(err.Error(), "which /sys/dev/block does not list") {
		t.Errorf("UUIDOf without sysfs: %v", err)
	}
}
