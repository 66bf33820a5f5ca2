package initwrap

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
	"github.com/kxboot/kxboot/internal/testimg"
)

type execCall struct {
	path string
	argv []string
	env  []string
}

type fakeMounts struct{ calls []string }

func (f *fakeMounts) Mount(source, target, fstype string, flags uintptr, data string) error {
	f.calls = append(f.calls, "mount "+fstype)
	return nil
}
func (f *fakeMounts) Unmount(target string, flags int) error {
	f.calls = append(f.calls, "umount")
	return nil
}
func (f *fakeMounts) Sync() {}

type pid1 struct {
	fs     rootfs.FS
	sys    *kexec.Fake
	mounts *fakeMounts
	out    bytes.Buffer
	execs  []execCall
	works  string // the path whose exec "succeeds"
	hung   bool
	env    Env
}

func newPID1(t *testing.T, files map[string]string) *pid1 {
	base := map[string]string{
		"/proc/self/stat":                    "1 (init)",
		"/proc/self/mounts":                  "/dev/vda1 / ext4 ro 0 0\nproc /proc proc rw 0 0\nsysfs /sys sysfs rw 0 0\ndevtmpfs /dev devtmpfs rw 0 0\n",
		"/proc/cmdline":                      "root=/dev/vda1 ro console=ttyS0",
		"/sys/kernel/kexec_loaded":           "0",
		"/boot/vmlinuz-6.1.0-56-cloud-amd64": string(testimg.BzImage(16384, "6.1.0-56-cloud-amd64")),
		"/sbin/init.kxboot-orig":             "#!systemd",
		"/lib/systemd/systemd":               "#!systemd",
		"/etc/default/kxboot":                "ABORT_SECONDS=0\n",
	}
	for k, v := range files {
		if v == "-" {
			delete(base, k)
		} else {
			base[k] = v
		}
	}
	p := &pid1{fs: rootfstest.Tree(t, base, nil), mounts: &fakeMounts{}}
	p.sys = &kexec.Fake{FS: &p.fs, ExecErr: unix.EINVAL}
	p.works = p.fs.Path(Original)
	p.env = Env{
		FS: p.fs, Mounts: p.mounts, Console: &p.out,
		Engine:  &kexec.Engine{FS: p.fs, Sys: p.sys, Arch: "amd64", Euid: func() int { return 0 }},
		Args:    []string{"/sbin/init", "splash"},
		Environ: []string{"HOME=/", "TERM=linux"},
		Exec: func(path string, argv, env []string) error {
			p.execs = append(p.execs, execCall{p.fs.Unpath(path), argv, env})
			if path == p.works {
				return nil
			}
			return unix.ENOEXEC
		},
		Window: func(string, time.Duration) string { return "" },
		Hang:   func() { p.hung = true },
	}
	return p
}

func TestAlreadyHoppedHandsOverUntouched(t *testing.T) {
	p := newPID1(t, map[string]string{"/proc/cmdline": "root=/dev/vda1 ro kxboot.chained=1"})
	Run(p.env)
	if len(p.execs) != 1 || p.execs[0].path != Original || !slices.Equal(p.execs[0].argv, []string{"/sbin/init", "splash"}) ||
		!slices.Equal(p.execs[0].env, []string{"HOME=/", "TERM=linux"}) {
		t.Errorf("execs = %+v; want the original init with the same argv and environment", p.execs)
	}
	if len(p.sys.Calls) != 0 {
		t.Errorf("kexec calls %v on a boot that already hopped", p.sys.Calls)
	}
	if !strings.Contains(p.out.String(), "kxboot: chain: boot on: this boot already came through kexec") {
		t.Errorf("console: %q", p.out.String())
	}
}

func TestFailedJumpHandsOver(t *testing.T) {
	p := newPID1(t, nil)
	Run(p.env)
	if want := []string{"file_load", "reboot_kexec", "unload"}; !slices.Equal(p.sys.Calls, want) {
		t.Errorf("kexec calls %v; want %v", p.sys.Calls, want)
	}
	if len(p.execs) != 1 || p.execs[0].path != Original {
		t.Errorf("execs = %+v", p.execs)
	}
	if !strings.Contains(p.out.String(), "the jump into /boot/vmlinuz-6.1.0-56-cloud-amd64 failed") {
		t.Errorf("console: %q", p.out.String())
	}
}

func TestEarlyMountsAreUndone(t *testing.T) {
	p := newPID1(t, map[string]string{"/proc/self/stat": "-", "/proc/self/mounts": "-", "/proc/cmdline": "kexeced"})
	Run(p.env)
	// Nothing was mounted: kxboot mounts all three and takes them away again.
	if want := []string{"mount proc", "mount sysfs", "mount devtmpfs", "umount", "umount", "umount"}; !slices.Equal(p.mounts.calls, want) {
		t.Errorf("mount calls %v; want %v", p.mounts.calls, want)
	}
}

func TestMissingOriginalFallsBack(t *testing.T) {
	p := newPID1(t, map[string]string{"/sbin/init.kxboot-orig": "-", "/proc/cmdline": "kxboot.chained=1"})
	p.works = p.fs.Path("/lib/systemd/systemd")
	Run(p.env)
	if len(p.execs) != 1 || p.execs[0].path != "/lib/systemd/systemd" {
		t.Errorf("execs = %+v", p.execs)
	}
	if !strings.Contains(p.out.String(), "/sbin/init.kxboot-orig is missing or broken; starting /lib/systemd/systemd instead") {
		t.Errorf("console: %q", p.out.String())
	}
}

func TestPanicHandsOver(t *testing.T) {
	p := newPID1(t, nil)
	p.env.Engine = nil // chain.Run dereferences it: a panic inside PID 1
	Run(p.env)
	if len(p.execs) == 0 || p.execs[0].path != Original {
		t.Errorf("execs = %+v after a panic", p.execs)
	}
	if !strings.Contains(p.out.String(), "kxboot: internal error") {
		t.Errorf("console: %q", p.out.String())
	}
}

func TestNothingToStartHangs(t *testing.T) {
	p := newPID1(t, map[string]string{"/proc/cmdline": "kxboot.chained=1"})
	p.works = ""
	rootfstest.Write(t, p.fs, "/bin/sh", []byte("sh"))
	Run(p.env)
	var tried []string
	for _, e := range p.execs {
		tried = append(tried, e.path)
	}
	if want := []string{Original, "/lib/systemd/systemd", "/bin/sh"}; !slices.Equal(tried, want) {
		t.Errorf("tried %v; want %v", tried, want)
	}
	if !p.hung {
		t.Error("PID 1 did not stay when nothing could be started")
	}
}
