package kexec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
	"github.com/kxboot/kxboot/internal/testimg"
)

// machine is a fake root with /boot, /proc and /sys, and an engine on a fake Sys.
type machine struct {
	t   *testing.T
	fs  rootfs.FS
	sys *Fake
	e   *Engine
	bzi []byte
	arm []byte
}

func newMachine(t *testing.T) *machine {
	t.Helper()
	m := &machine{t: t, fs: rootfstest.New(t), bzi: testimg.BzImage(16384, "6.1.0-54-cloud-amd64"), arm: testimg.Arm64(8192)}
	m.sys = &Fake{FS: &m.fs}
	m.e = &Engine{FS: m.fs, Sys: m.sys, Arch: "amd64", Euid: func() int { return 0 }}
	m.write("/boot/vmlinuz-6.1.0-54-cloud-amd64", m.bzi)
	m.write("/boot/initrd.img-6.1.0-54-cloud-amd64", []byte("main-initrd-cpio"))
	m.write("/boot/intel-ucode.img", []byte("ucode")) // 5 bytes: needs padding
	m.write("/sys/kernel/kexec_loaded", []byte("0\n"))
	m.write("/proc/sys/kernel/kexec_load_disabled", []byte("0\n"))
	m.amd64Sysfs()
	return m
}

func (m *machine) write(p string, b []byte) {
	m.t.Helper()
	rootfstest.Write(m.t, m.fs, p, b)
}

const kernel = "/boot/vmlinuz-6.1.0-54-cloud-amd64"

func TestLoadFile(t *testing.T) {
	m := newMachine(t)
	res, err := m.e.Load(Request{Kernel: kernel, Initrds: []string{"/boot/initrd.img-6.1.0-54-cloud-amd64"}, Cmdline: "root=/dev/vda1 ro"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Syscall != "kexec_file_load" || res.FellBack {
		t.Errorf("result = %+v; want kexec_file_load without fallback", res)
	}
	if !slices.Equal(m.sys.Calls, []string{"file_load"}) {
		t.Errorf("calls = %v", m.sys.Calls)
	}
	if !bytes.Equal(m.sys.Kernel, m.bzi) || string(m.sys.Initrd) != "main-initrd-cpio" || m.sys.Cmdline != "root=/dev/vda1 ro" {
		t.Errorf("loaded kernel %d bytes, initrd %q, cmdline %q", len(m.sys.Kernel), m.sys.Initrd, m.sys.Cmdline)
	}
	if loaded, _ := m.e.Loaded(); !loaded {
		t.Error("Loaded() = false after a load")
	}
}

func TestLoadNoInitrd(t *testing.T) {
	m := newMachine(t)
	if _, err := m.e.Load(Request{Kernel: kernel}); err != nil {
		t.Fatal(err)
	}
	if m.sys.Initrd != nil {
		t.Errorf("initrd = %q; want none", m.sys.Initrd)
	}
}

func TestLoadConcatenatesInitrds(t *testing.T) {
	m := newMachine(t)
	res, err := m.e.Load(Request{Kernel: kernel, Initrds: []string{"/boot/intel-ucode.img", "/boot/initrd.img-6.1.0-54-cloud-amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	// Microcode first, padded with zeros to 4 bytes, then the main initrd.
	want := "ucode\x00\x00\x00main-initrd-cpio"
	if string(m.sys.Initrd) != want {
		t.Errorf("initrd = %q; want %q", m.sys.Initrd, want)
	}
	if res.InitrdBytes != int64(len(want)) {
		t.Errorf("InitrdBytes = %d; want %d", res.InitrdBytes, len(want))
	}
}

func TestLoadFallsBackToKexecLoad(t *testing.T) {
	m := newMachine(t)
	m.sys.FileErr = unix.ENOSYS
	res, err := m.e.Load(Request{Kernel: kernel, Initrds: []string{"/boot/intel-ucode.img", "/boot/initrd.img-6.1.0-54-cloud-amd64"}, Cmdline: "quiet"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.FellBack || res.Syscall != "kexec_load" {
		t.Errorf("result = %+v; want a fallback to kexec_load", res)
	}
	if !slices.Equal(m.sys.Calls, []string{"file_load", "kexec_load"}) {
		t.Errorf("calls = %v", m.sys.Calls)
	}
	// The segments hold the kernel after its setup, the joined initrds
	// and the command line, whatever file_load read before.
	var kernelSeg, initrdSeg, cmdline bool
	for _, s := range m.sys.Segments {
		kernelSeg = kernelSeg || bytes.Equal(s.Buf, m.bzi[4*512:])
		initrdSeg = initrdSeg || string(s.Buf) == "ucode\x00\x00\x00main-initrd-cpio"
		cmdline = cmdline || bytes.Contains(s.Buf, []byte("\x00quiet\x00"))
	}
	if len(m.sys.Segments) != 4 || !kernelSeg || !initrdSeg || !cmdline {
		t.Errorf("kexec_load got %d segments: kernel %v, initrd %v, command line %v", len(m.sys.Segments), kernelSeg, initrdSeg, cmdline)
	}
}

func TestLoadForcedMethods(t *testing.T) {
	m := newMachine(t)
	m.sys.FileErr = unix.ENOSYS
	_, err := m.e.Load(Request{Kernel: kernel, Method: File})
	if err == nil || !strings.Contains(err.Error(), "no kexec_file_load") || !errors.Is(err, unix.ENOSYS) {
		t.Errorf("forced file load on a kernel without it: %v", err)
	}
	if !slices.Equal(m.sys.Calls, []string{"file_load"}) {
		t.Errorf("calls = %v; want no fallback when forced", m.sys.Calls)
	}
	m.sys.Calls = nil
	if _, err := m.e.Load(Request{Kernel: kernel, Method: Segments}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.sys.Calls, []string{"kexec_load"}) {
		t.Errorf("calls = %v; want only kexec_load", m.sys.Calls)
	}
}

func TestLockdownForbidsKexecLoad(t *testing.T) {
	m := newMachine(t)
	m.write("/sys/kernel/security/lockdown", []byte("none [integrity] confidentiality\n"))
	_, err := m.e.Load(Request{Kernel: kernel, Method: Segments})
	if err == nil || !strings.Contains(err.Error(), "lockdown (integrity)") {
		t.Errorf("err = %v", err)
	}
	m.sys.FileErr = unix.ENOSYS
	_, err = m.e.Load(Request{Kernel: kernel})
	if err == nil || !strings.Contains(err.Error(), "forbids kexec_load") {
		t.Errorf("err = %v", err)
	}
	if len(m.sys.Calls) != 1 || m.sys.Calls[0] != "file_load" {
		t.Errorf("calls = %v; kexec_load must not be tried under lockdown", m.sys.Calls)
	}
}

func TestExplain(t *testing.T) {
	tests := []struct {
		name  string
		errno unix.Errno
		setup func(m *machine)
		want  string
	}{
		{"not root", unix.EPERM, func(m *machine) { m.e.Euid = func() int { return 1000 } }, "kexec needs root"},
		{"load disabled", unix.EPERM, func(m *machine) { m.write("/proc/sys/kernel/kexec_load_disabled", []byte("1\n")) }, "kexec_load_disabled is 1"},
		{"lockdown", unix.EPERM, func(m *machine) {
			m.write("/sys/kernel/security/lockdown", []byte("none integrity [confidentiality]\n"))
		}, "lockdown (confidentiality)"},
		{"unknown eperm", unix.EPERM, nil, "LSM policy"},
		{"signature", unix.EKEYREJECTED, nil, "rejected the image's signature"},
		{"enoexec", unix.ENOEXEC, nil, "does not accept this image (ENOEXEC)"},
		{"einval", unix.EINVAL, nil, "arm64 answers this"},
		{"ebusy", unix.EBUSY, nil, "EBUSY"},
		{"enomem", unix.ENOMEM, nil, "contiguous free memory"},
		{"other", unix.EIO, nil, "the kernel answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			if tt.setup != nil {
				tt.setup(m)
			}
			m.sys.FileErr = tt.errno
			_, err := m.e.Load(Request{Kernel: kernel})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), kernel) || !errors.Is(err, tt.errno) {
				t.Errorf("err = %v; want it to name %s and wrap %v", err, kernel, tt.errno)
			}
			if strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("err = %q; want one line", err)
			}
		})
	}
}

func TestLoadRefusesBadImages(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		arch string
		want string
	}{
		{"text", []byte("hello\n"), "amd64", "not a bootable kernel image"},
		{"truncated", testimg.BzImage(16384, "x")[:8192], "amd64", "truncated"},
		{"arm64 on amd64", testimg.Arm64(4096), "amd64", "it is an arm64 kernel (arm64 Image) and this machine is amd64"},
		{"bzImage on arm64", testimg.BzImage(8192, "x"), "arm64", "it is an amd64 kernel"},
		{"zImage on arm64", armZImage(), "arm64", "it is an arm kernel (32-bit ARM zImage) and this machine is arm64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			m.e.Arch = tt.arch
			m.write("/boot/bad", tt.data)
			_, err := m.e.Load(Request{Kernel: "/boot/bad"})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "/boot/bad") {
				t.Fatalf("err = %v; want %q naming /boot/bad", err, tt.want)
			}
			if len(m.sys.Calls) != 0 {
				t.Errorf("calls = %v; a bad image must not reach the kernel", m.sys.Calls)
			}
		})
	}
}

func TestLoadMissingFiles(t *testing.T) {
	m := newMachine(t)
	_, err := m.e.Load(Request{Kernel: "/boot/vmlinuz-nope"})
	if err == nil || !strings.Contains(err.Error(), "kernel /boot/vmlinuz-nope does not exist") {
		t.Errorf("err = %v", err)
	}
	_, err = m.e.Load(Request{Kernel: kernel, Initrds: []string{"/boot/initrd-nope"}})
	if err == nil || !strings.Contains(err.Error(), "initrd /boot/initrd-nope does not exist") {
		t.Errorf("err = %v", err)
	}
	if len(m.sys.Calls) != 0 {
		t.Errorf("calls = %v", m.sys.Calls)
	}
}

func TestLoadUnpacksCompressedArm64(t *testing.T) {
	for _, tt := range []struct {
		name string
		data func([]byte) []byte
	}{
		{"Image.gz", testimg.Gzip},
		{"zboot", func(b []byte) []byte { return testimg.Zboot(testimg.Gzip(b), "gzip") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			m.e.Arch = "arm64"
			m.write("/boot/Image.gz", tt.data(m.arm))
			res, err := m.e.Load(Request{Kernel: "/boot/Image.gz"})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.sys.Kernel, m.arm) {
				t.Errorf("the kernel was given %d bytes, not the unpacked %d-byte Image", len(m.sys.Kernel), len(m.arm))
			}
			if res.Kind.String() != "arm64 Image" {
				t.Errorf("kind = %v", res.Kind)
			}
		})
	}
}

func TestLoadRefusesUntrustedFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		// Files owned by another user cannot be made without root; the
		// mode checks below still run.
		t.Log("not root: ownership is not tested here, only modes")
	}
	tests := []struct {
		name  string
		setup func(m *machine)
		req   Request
		want  string
	}{
		{"world-writable kernel", func(m *machine) { os.Chmod(m.fs.Path(kernel), 0o666) }, Request{Kernel: kernel}, "writable by group or others (mode 0666)"},
		{"group-writable /boot", func(m *machine) { os.Chmod(m.fs.Path("/boot"), 0o775) }, Request{Kernel: kernel}, "sits in /boot"},
		{"world-writable initrd", func(m *machine) { os.Chmod(m.fs.Path("/boot/intel-ucode.img"), 0o646) },
			Request{Kernel: kernel, Initrds: []string{"/boot/intel-ucode.img"}}, "refusing initrd /boot/intel-ucode.img"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			tt.setup(m)
			_, err := m.e.Load(tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, rootfs.ErrUntrusted) {
				t.Fatalf("err = %v; want %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "chmod go-w") {
				t.Errorf("err = %v; want the fix", err)
			}
			if len(m.sys.Calls) != 0 {
				t.Errorf("calls = %v", m.sys.Calls)
			}
		})
	}
}

func TestExecAndUnload(t *testing.T) {
	m := newMachine(t)
	if err := m.e.Exec(); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Exec with nothing loaded = %v; want ErrNotLoaded", err)
	}
	if len(m.sys.Calls) != 0 {
		t.Errorf("calls = %v; nothing loaded must mean no jump", m.sys.Calls)
	}
	if _, err := m.e.Load(Request{Kernel: kernel}); err != nil {
		t.Fatal(err)
	}
	if err := m.e.Exec(); err != nil {
		t.Fatal(err)
	}
	if err := m.e.Unload(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.sys.Calls, []string{"file_load", "reboot_kexec", "unload"}) {
		t.Errorf("calls = %v", m.sys.Calls)
	}
	if loaded, _ := m.e.Loaded(); loaded {
		t.Error("still loaded after unload")
	}
	m.sys.UnloadErr = unix.EPERM
	m.e.Euid = func() int { return 1000 }
	if err := m.e.Unload(); err == nil || !strings.Contains(err.Error(), "unload failed: kexec needs root") {
		t.Errorf("unload as non-root = %v", err)
	}
}

func TestLoadedWithoutSysfs(t *testing.T) {
	m := newMachine(t)
	os.Remove(m.fs.Path("/sys/kernel/kexec_loaded"))
	if _, err := m.e.Loaded(); err == nil || !strings.Contains(err.Error(), "sysfs is not mounted") {
		t.Errorf("err = %v", err)
	}
}

func TestParseMethod(t *testing.T) {
	for in, want := range map[string]Method{"": Auto, "auto": Auto, "file": File, "load": Segments} {
		if got, err := ParseMethod(in); err != nil || got != want {
			t.Errorf("ParseMethod(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseMethod("kexec"); err == nil {
		t.Error("ParseMethod(kexec) accepted")
	}
}

// 32-bit ARM gets a sentence before anything is opened or called.
func TestLoadRefusesArm32(t *testing.T) {
	m := newMachine(t)
	m.e.Arch = "arm"
	_, err := m.e.Load(Request{Kernel: kernel})
	if err == nil || !strings.Contains(err.Error(), "kxboot cannot load kernels on 32-bit ARM: Linux has no kexec_file_load there") {
		t.Fatalf("Load on arm: %v", err)
	}
	if len(m.sys.Calls) != 0 {
		t.Errorf("calls %v; want none", m.sys.Calls)
	}
}

// armZImage is the start of a 32-bit ARM zImage: its magic at 0x24.
func armZImage() []byte {
	b := make([]byte, 4096)
	copy(b[0x24:], []byte{0x18, 0x28, 0x6f, 0x01})
	return b
}

// FuzzConcat checks that joining initrds gives the bytes of the files one
// after the other, each started on a 4-byte boundary with zero padding,
// whatever their sizes (the sendfile path and its bookkeeping).
func FuzzConcat(f *testing.F) {
	f.Add([]byte("ucode"), []byte("main-initrd-cpio"), []byte{})
	f.Add([]byte{}, []byte("a"), []byte("bcdefg"))
	f.Add(bytes.Repeat([]byte{7}, 70000), []byte("xyz"), bytes.Repeat([]byte{9}, 4099))
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		fs := rootfstest.New(t)
		var want []byte
		var paths []string
		for i, part := range [][]byte{a, b, c} {
			for i > 0 && len(want)%4 != 0 {
				want = append(want, 0)
			}
			want = append(want, part...)
			p := fmt.Sprintf("/boot/part%d", i)
			rootfstest.Write(t, fs, p, part)
			paths = append(paths, p)
		}
		mem, err := memfd("test")
		if err != nil {
			t.Fatal(err)
		}
		defer mem.Close()
		n, err := concat(fs, paths, mem)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(fmt.Sprintf("/proc/self/fd/%d", mem.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(want)) || !bytes.Equal(got, want) {
			t.Errorf("concat of %d, %d, %d bytes: %d bytes reported, %d written, equal %v; want %d", len(a), len(b), len(c), n, len(got), bytes.Equal(got, want), len(want))
		}
	})
}
