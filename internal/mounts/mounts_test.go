package mounts

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

type fakeSys struct {
	fsys  rootfs.FS
	calls []string
	fail  map[string]error
	flags map[string]uintptr // the flags of the last mount call on each point
}

func (f *fakeSys) Mount(source, target, fstype string, flags uintptr, data string) error {
	p := f.fsys.Unpath(target)
	call := fmt.Sprintf("mount %s %s", fstype, p)
	if flags&unix.MS_REMOUNT != 0 {
		call = "remount-ro " + p
	}
	f.calls = append(f.calls, call)
	if f.flags == nil {
		f.flags = map[string]uintptr{}
	}
	f.flags[p] = flags
	return f.fail[p]
}

func (f *fakeSys) Unmount(target string, flags int) error {
	f.calls = append(f.calls, "umount "+f.fsys.Unpath(target))
	return nil
}

func (f *fakeSys) Sync() { f.calls = append(f.calls, "sync") }

// A Debian 12 machine in early userspace: the root and /boot writable, a
// data disk and a scratch disk (nosuid, nodev, noexec) too, the API file
// systems and a tmpfs that need nothing.
const mountsFile = `/dev/vda1 / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
udev /dev devtmpfs rw,nosuid,relatime,size=490000k,nr_inodes=122000,mode=755 0 0
tmpfs /run tmpfs rw,nosuid,nodev,size=100000k,mode=755 0 0
/dev/vda2 /boot ext4 rw,relatime 0 0
/dev/vdb1 /srv/my\040data xfs rw,relatime 0 0
/dev/vdc /mnt/ro ext4 ro,relatime 0 0
/dev/vdd /var/tmp ext4 rw,nosuid,nodev,noexec,noatime 0 0
`

func TestRemountReadOnly(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{"/proc/self/mounts": mountsFile}, nil)
	f := &fakeSys{fsys: fsys}
	if err := RemountReadOnly(fsys, f); err != nil {
		t.Fatal(err)
	}
	want := []string{"sync", "remount-ro /var/tmp", "remount-ro /srv/my data", "remount-ro /boot", "remount-ro /", "sync"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls = %q; want %q", f.calls, want)
	}
	// A remount clears the flags it is not given: each keeps its own.
	for p, want := range map[string]uintptr{
		"/var/tmp": unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME,
		"/boot":    unix.MS_RELATIME,
		"/":        unix.MS_RELATIME,
	} {
		want |= unix.MS_REMOUNT | unix.MS_RDONLY
		if got := f.flags[p]; got != want {
			t.Errorf("remount of %s: flags %#x; want %#x", p, got, want)
		}
	}
	f = &fakeSys{fsys: fsys, fail: map[string]error{"/": unix.EBUSY}}
	err := RemountReadOnly(fsys, f)
	if err == nil || !strings.Contains(err.Error(), "could not remount / read-only") || !errors.Is(err, unix.EBUSY) {
		t.Errorf("err = %v", err)
	}
	if !slices.Contains(f.calls, "remount-ro /boot") {
		t.Errorf("one failure stopped the rest: %q", f.calls)
	}
}

func TestEarly(t *testing.T) {
	// The kernel mounted nothing: PID 1 mounts all three, and undoes them in reverse.
	fsys := rootfstest.New(t)
	f := &fakeSys{fsys: fsys}
	undo, err := Early(fsys, f)
	if err != nil {
		t.Fatal(err)
	}
	undo()
	want := []string{"mount proc /proc", "mount sysfs /sys", "mount devtmpfs /dev", "umount /dev", "umount /sys", "umount /proc"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls = %q; want %q", f.calls, want)
	}
	// The kernel mounted /dev (CONFIG_DEVTMPFS_MOUNT) and /proc is there:
	// only /sys is kxboot's to mount and to take away.
	fsys = rootfstest.Tree(t, map[string]string{
		"/proc/self/mounts": "/dev/vda1 / ext4 ro 0 0\ndevtmpfs /dev devtmpfs rw 0 0\n",
	}, nil)
	f = &fakeSys{fsys: fsys}
	undo, _ = Early(fsys, f)
	undo()
	if want := []string{"mount sysfs /sys", "umount /sys"}; !slices.Equal(f.calls, want) {
		t.Errorf("calls = %q; want %q", f.calls, want)
	}
}

func TestList(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{"/proc/self/mounts": mountsFile}, nil)
	ms, err := List(fsys)
	if err != nil || len(ms) != 9 {
		t.Fatalf("List: %d mounts, %v", len(ms), err)
	}
	if ms[6].Point != "/srv/my data" || ms[6].Type != "xfs" || ms[6].ReadOnly() || !ms[7].ReadOnly() {
		t.Errorf("List = %+v", ms)
	}
}

func TestRemountFlags(t *testing.T) {
	for _, tt := range []struct {
		options string
		want    uintptr
	}{
		{"rw,relatime", unix.MS_RELATIME},
		{"ro,nosuid,nodev,noexec,noatime,nodiratime", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME},
		// What mount(2) does not take as a flag, and rw or ro, which the
		// caller decides, are left out.
		{"rw,errors=remount-ro,size=100k", 0},
	} {
		m := Mount{Options: strings.Split(tt.options, ",")}
		if got := RemountFlags(m); got != tt.want {
			t.Errorf("RemountFlags(%s) = %#x; want %#x", tt.options, got, tt.want)
		}
	}
}
