package health

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/fastreboot"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

// fw is a machine that reboots through the firmware: the reboot command,
// the wait, the remounts and the reset all go to one list of events, so
// that their order shows.
type fw struct {
	fs     rootfs.FS
	sys    *kexec.Fake
	events []string
	log    []string
}

// resetSys is the fake kexec kernel, with its reset in the list of events.
type resetSys struct {
	*kexec.Fake
	m *fw
}

func (s resetSys) Reboot() error {
	s.m.events = append(s.m.events, "reset")
	return s.Fake.Reboot()
}

// fwMounts is the mount syscalls, in the list of events.
type fwMounts struct{ m *fw }

func (f fwMounts) Mount(source, target, fstype string, flags uintptr, data string) error {
	f.m.events = append(f.m.events, "remount-ro "+f.m.fs.Unpath(target))
	return nil
}
func (f fwMounts) Unmount(target string, flags int) error { return nil }
func (f fwMounts) Sync()                                  { f.m.events = append(f.m.events, "sync") }

// newFW is a machine with a kernel loaded for kexec and a writable root;
// its reboot command answers with reboot.
func newFW(t *testing.T, reboot error) (*fw, Firmware) {
	m := &fw{fs: rootfstest.New(t)}
	m.sys = &kexec.Fake{FS: &m.fs}
	rootfstest.Write(t, m.fs, "/sys/kernel/kexec_loaded", []byte("1\n"))
	rootfstest.Write(t, m.fs, "/proc/self/mounts", []byte("/dev/vda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n"))
	f := Firmware{
		FS:     m.fs,
		Engine: &kexec.Engine{FS: m.fs, Sys: resetSys{m.sys, m}, Arch: "amd64", Euid: func() int { return 0 }},
		Mounts: fwMounts{m},
		Logf:   func(format string, args ...any) { m.log = append(m.log, fmt.Sprintf(format, args...)) },
		RunReboot: func() error {
			// When the init system reboots, nothing may be loaded and
			// the flag must tell kxboot's reboot hook to stand aside.
			if s, _ := m.fs.ReadString("/sys/kernel/kexec_loaded"); s != "0" {
				t.Errorf("the reboot command ran with kexec_loaded %q", s)
			}
			if ok, why := fastreboot.FirmwareRequested(m.fs); !ok || why != "the deadline passed" {
				t.Errorf("the reboot command ran with the firmware flag %v, %q", ok, why)
			}
			m.events = append(m.events, "reboot command")
			return reboot
		},
		Sleep: func(d time.Duration) { m.events = append(m.events, "sleep "+d.String()) },
	}
	return m, f
}

func TestFirmwareReboot(t *testing.T) {
	for _, tt := range []struct {
		name   string
		reboot error
		events []string
		said   string
	}{
		{
			// The init system took the reboot but the machine is still
			// up two minutes later: kxboot resets it, disks read-only.
			name:   "the init system does not reboot",
			events: []string{"reboot command", "sleep 2m0s", "sync", "remount-ro /", "sync", "reset"},
			said:   "kxboot: the init system did not reboot within two minutes; forcing a reset",
		},
		{
			name:   "no reboot command",
			reboot: ErrNoRebootCommand,
			events: []string{"reboot command", "sync", "remount-ro /", "sync", "reset"},
			said:   "kxboot: no reboot command found; forcing a reset",
		},
		{
			name:   "reboot command fails",
			reboot: errors.New("exit status 1"),
			events: []string{"reboot command", "sync", "remount-ro /", "sync", "reset"},
			said:   "kxboot: exit status 1; forcing a reset",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newFW(t, tt.reboot)
			if err := FirmwareReboot(f, "the deadline passed"); err != nil {
				t.Errorf("FirmwareReboot = %v", err)
			}
			if !slices.Equal(m.events, tt.events) {
				t.Errorf("events %q\nwant   %q", m.events, tt.events)
			}
			want := []string{"kxboot: rebooting through the firmware, so the provider's kernel comes back: the deadline passed", tt.said}
			if !slices.Equal(m.log, want) {
				t.Errorf("log %q\nwant %q", m.log, want)
			}
			if want := []string{"unload", "reboot"}; !slices.Equal(m.sys.Calls, want) {
				t.Errorf("kexec calls %q; want %q", m.sys.Calls, want)
			}
			if ok, _ := fastreboot.FirmwareRequested(m.fs); !ok {
				t.Error("no firmware flag after the reboot")
			}
		})
	}
}

// TestFirmwareRebootBare: without the mount syscalls nothing is remounted,
// and a reset the kernel refuses is the error.
func TestFirmwareRebootBare(t *testing.T) {
	m, f := newFW(t, ErrNoRebootCommand)
	f.Mounts = nil
	m.sys.RebootErr = unix.EPERM
	if err := FirmwareReboot(f, "the deadline passed"); err == nil {
		t.Error("a refused reset returned no error")
	}
	if want := []string{"reboot command", "reset"}; !slices.Equal(m.events, want) {
		t.Errorf("events %q; want %q", m.events, want)
	}
}

// TestRunReboot runs a reboot command of the test's: found in kxboot's
// directories when the PATH has none (as PID 1's environment), and given
// those directories as its PATH.
func TestRunReboot(t *testing.T) {
	t.Setenv("PATH", "/nonexistent")
	dir := t.TempDir()
	script := "#!/bin/sh\necho \"$PATH $*\" >\"$0.ran\"\nexit $REBOOT_EXIT\n"
	if err := os.WriteFile(filepath.Join(dir, "reboot"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	dirs := empty + ":" + dir
	if err := runReboot(dirs, []string{"reboot", "-r", "now"}); err != nil {
		t.Fatalf("runReboot = %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "reboot.ran")); err != nil || string(b) != dirs+" -r now\n" {
		t.Errorf("the reboot command ran with PATH %q (%v); want %q", b, err, dirs)
	}
	t.Setenv("REBOOT_EXIT", "1")
	if err := runReboot(dirs, []string{"reboot"}); err == nil || err.Error() != "exit status 1" {
		t.Errorf("a failing reboot command: %v", err)
	}
	if err := runReboot(empty, []string{"reboot"}); !errors.Is(err, ErrNoRebootCommand) {
		t.Errorf("no reboot command: %v", err)
	}
}

func TestRunCheck(t *testing.T) {
	out, err := runCheck(`echo "$PATH"; exit 3`, time.Minute)
	if out != chain.SearchPath+"\n" || err == nil || err.Error() != "exit status 3" {
		t.Errorf("runCheck = %q, %v", out, err)
	}
	start := time.Now()
	if _, err := runCheck("exec sleep 30", 100*time.Millisecond); err == nil || err.Error() != "no answer within 100ms" {
		t.Errorf("a HEALTH_CMD that hangs: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the time limit of 100ms stopped HEALTH_CMD after %v", d)
	}
	// A child left running with the output pipe open does not hold the
	// check past its limit (and the wait for its output).
	start = time.Now()
	if _, err := runCheck("sleep 30 & sleep 30", 100*time.Millisecond); err == nil {
		t.Errorf("a HEALTH_CMD whose child hangs succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a child of HEALTH_CMD held the check for %v", d)
	}
}

func TestForMachine(t *testing.T) {
	fsys := rootfstest.New(t)
	rootfstest.Write(t, fsys, "/proc/sys/kernel/random/boot_id", []byte("boot-9\n"))
	rootfstest.Write(t, fsys, "/proc/sys/kernel/osrelease", []byte("6.1.0-47-cloud-amd64\n"))
	m := fwMounts{}
	h, err := ForMachine(fsys, &kexec.Engine{FS: fsys, Sys: &kexec.Fake{}}, m, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if h.Store.Mounts != m || h.BootID != "boot-9" || h.Release != "6.1.0-47-cloud-amd64" || h.Config.MaxTries == 0 {
		t.Errorf("ForMachine = %+v", h)
	}
	if up, err := h.Uptime(); err != nil || up <= 0 {
		t.Errorf("Uptime = %v, %v", up, err)
	}
	rootfstest.Write(t, fsys, config.Path, []byte("MAX_TRIES=many\n"))
	if _, err := ForMachine(fsys, nil, nil, t.Logf); err == nil || !strings.Contains(err.Error(), "MAX_TRIES") {
		t.Errorf("a config that cannot be read: %v", err)
	}
}
