package mounts

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

// typeSys refuses every file system type but one, as the kernel does.
type typeSys struct {
	fakeSys
	want string
}

func (f *typeSys) Mount(source, target, fstype string, flags uintptr, data string) error {
	f.fakeSys.Mount(source, target, fstype, flags, data)
	if fstype != f.want {
		return unix.EINVAL
	}
	return nil
}

// TestDevice: each mount gets a directory of its own, even two at once;
// the types are tried in order; the unmount removes the directory; a
// device with no known file system says which were tried.
func TestDevice(t *testing.T) {
	fsys := rootfstest.New(t)
	sys := &typeSys{fakeSys: fakeSys{fsys: fsys}, want: "xfs"}
	p1, un1, err := Device(fsys, sys, "/dev/vdb", "slot-B", unix.MS_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	p2, un2, err := Device(fsys, sys, "/dev/vdb", "slot-B", unix.MS_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if p1 == p2 || !strings.HasPrefix(p1, "/run/kxboot/slot-B-") {
		t.Errorf("mount points %q and %q; want two of their own under /run/kxboot", p1, p2)
	}
	if got := strings.Join(sys.calls, ", "); got != "mount ext4 "+p1+", mount xfs "+p1+", mount ext4 "+p2+", mount xfs "+p2 {
		t.Errorf("calls: %s", got)
	}
	un1()
	un2()
	for _, p := range []string{p1, p2} {
		if _, err := os.Stat(fsys.Path(p)); err == nil {
			t.Errorf("%s is left after the unmount", p)
		}
	}
	sys.want = "none"
	if _, _, err := Device(fsys, sys, "/dev/vdc", "state", 0); err == nil || !strings.Contains(err.Error(), "cannot mount /dev/vdc: it holds none of the file systems ext4, xfs, btrfs, f2fs, vfat") {
		t.Errorf("no file system: %v", err)
	}
	if ents, _ := os.ReadDir(fsys.Path("/run/kxboot")); len(ents) != 0 {
		t.Errorf("left in /run/kxboot: %v", ents)
	}
}
