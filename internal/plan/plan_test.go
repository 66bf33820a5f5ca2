package plan

import (
	"strings"
	"testing"

	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
	"github.com/kxboot/kxboot/internal/testimg"
)

// A machine still set up by the DigitalOcean recipe: its file names the
// kernel as KERNEL_IMAGE and a non-empty APPEND replaces the command line.
func TestLegacyDropletFile(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{
		"/proc/cmdline":               "root=/dev/vda1 console=ttyS0 kexeced",
		"/boot/vmlinuz-6.1.0-9-amd64": string(testimg.BzImage(8192, "6.1.0-9-amd64")),
		"/etc/default/droplet-kernel": "# droplet\nENABLED=true\nKERNEL_IMAGE=\"/boot/vmlinuz-6.1.0-9-amd64\"\nINITRD=\"\"\nAPPEND=\"root=/dev/vda1 ro\"\n",
	}, nil)
	cfg, err := config.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Make(fsys, cfg, Flags{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Kernel != "/boot/vmlinuz-6.1.0-9-amd64" || p.KernelFrom != "KERNEL_IMAGE= in /etc/default/droplet-kernel:3" {
		t.Errorf("kernel %q from %q", p.Kernel, p.KernelFrom)
	}
	if p.Cmdline != "root=/dev/vda1 ro kxboot.chained=1" || !strings.HasPrefix(p.CmdlineFrom, "APPEND= in /etc/default/droplet-kernel:5") {
		t.Errorf("cmdline %q from %q", p.Cmdline, p.CmdlineFrom)
	}
	if p.Release != "6.1.0-9-amd64" {
		t.Errorf("release %q", p.Release)
	}
}

func TestRunningMarkersAreNotCarried(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{
		"/proc/cmdline":               "BOOT_IMAGE=/vmlinuz root=/dev/vda1 is_in_kexec=yes kxboot.chained=1 -- single",
		"/boot/vmlinuz-6.1.0-9-amd64": string(testimg.BzImage(8192, "6.1.0-9-amd64")),
	}, nil)
	extra := "x=1"
	p, err := Make(fsys, &config.Config{}, Flags{Append: &extra})
	if err != nil {
		t.Fatal(err)
	}
	// Init's arguments stay after "--"; the marker goes once, before it.
	if want := "root=/dev/vda1 x=1 kxboot.chained=1 -- single"; p.Cmdline != want {
		t.Errorf("cmdline %q; want %q", p.Cmdline, want)
	}
}

func TestTooLongCmdline(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{
		"/proc/cmdline":               "root=/dev/vda1",
		"/boot/vmlinuz-6.1.0-9-amd64": string(testimg.BzImage(8192, "6.1.0-9-amd64")),
	}, nil)
	long := "x=" + strings.Repeat("y", 3000)
	_, err := Make(fsys, &config.Config{}, Flags{Append: &long})
	if err == nil || !strings.Contains(err.Error(), "2047") {
		t.Errorf("err = %v", err)
	}
}

// A kernel that came through kxboot has APPEND on its command line
// already: a load from it adds APPEND's words once, not twice.
func TestAppendOnce(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{
		"/proc/cmdline":               "root=/dev/vda1 nomodeset quiet panic=10 kxboot.chained=1",
		"/boot/vmlinuz-6.1.0-9-amd64": string(testimg.BzImage(8192, "6.1.0-9-amd64")),
		"/etc/default/kxboot":         "APPEND=\"nomodeset console=ttyS0 -- single\"\n",
	}, nil)
	cfg, err := config.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Make(fsys, cfg, Flags{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "root=/dev/vda1 nomodeset quiet panic=10 console=ttyS0 kxboot.chained=1 -- single"; p.Cmdline != want {
		t.Errorf("cmdline %q; want %q", p.Cmdline, want)
	}
}
