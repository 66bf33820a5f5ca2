package fastreboot

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
	"github.com/kxboot/kxboot/internal/testimg"
	"github.com/kxboot/kxboot/internal/tries"
)

const kB = "/boot/vmlinuz-6.1.0-56-cloud-amd64"

// box is a Debian machine running kernel A (or B, after a hop) with the
// fast reboot installed, and a fake loader.
type box struct {
	env Env
	sys *kexec.Fake
	log []string
}

func newBox(t *testing.T, running string, conf string, chain bool) *box {
	files := map[string]string{
		"/proc/cmdline":                         running,
		kB:                                      string(testimg.BzImage(16384, "6.1.0-56-cloud-amd64")),
		"/boot/initrd.img-6.1.0-56-cloud-amd64": "initrd-B",
		"/sys/kernel/kexec_loaded":              "0\n",
		journal.Path(journal.JobReboot):         `{"job":"reboot","mode":"systemd","steps":[]}`,
	}
	if conf != "" {
		files["/etc/default/kxboot"] = conf
	}
	if chain {
		files[journal.Path(journal.JobChain)] = `{"job":"chain","mode":"systemd","steps":[]}`
	}
	fsys := rootfstest.Tree(t, files, nil)
	b := &box{}
	b.sys = &kexec.Fake{FS: &fsys}
	b.env = Env{
		FS:     fsys,
		Engine: &kexec.Engine{FS: fsys, Sys: b.sys, Arch: "amd64", Euid: func() int { return 0 }},
		Logf:   func(f string, a ...any) { b.log = append(b.log, fmt.Sprintf(f, a...)) },
		Store:  &tries.Store{FS: fsys},
		Now:    func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) },
	}
	return b
}

func (b *box) events(t *testing.T) string {
	h, err := b.env.Store.ReadHistory()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range h {
		out = append(out, e.Event)
	}
	return strings.Join(out, " ")
}

func TestPrepareLoadsNewest(t *testing.T) {
	b := newBox(t, "BOOT_IMAGE=/vmlinuz-A root=/dev/vda ro", "", false)
	Prepare(b.env)
	if !slices.Equal(b.sys.Calls, []string{"file_load"}) || b.sys.Cmdline != "root=/dev/vda ro panic=10 kxboot.chained=1" {
		t.Fatalf("calls %v, cmdline %q, log %q", b.sys.Calls, b.sys.Cmdline, b.log)
	}
	if !strings.Contains(b.log[len(b.log)-1], "kxboot: reboot: loaded "+kB+" with kexec_file_load in ") {
		t.Errorf("log %q", b.log)
	}
	if got := b.events(t); got != "hop" {
		t.Errorf("history %q", got)
	}
	// The jump: sync and reboot(LINUX_REBOOT_CMD_KEXEC); the fake's returns.
	b.sys.ExecErr = unix.EINVAL
	Jump(b.env)
	if !slices.Equal(b.sys.Calls, []string{"file_load", "reboot_kexec", "unload"}) {
		t.Errorf("jump calls %v", b.sys.Calls)
	}
	if !strings.Contains(b.log[len(b.log)-1], "the jump failed") {
		t.Errorf("log %q", b.log)
	}
}

// TestPrepareFromAHop: a reboot from a kernel that came through kxboot
// keeps its command line, APPEND and panic= once.
func TestPrepareFromAHop(t *testing.T) {
	b := newBox(t, "root=/dev/vda ro nomodeset panic=10 kxboot.chained=1", "APPEND=nomodeset\n", false)
	Prepare(b.env)
	if b.sys.Cmdline != "root=/dev/vda ro nomodeset panic=10 kxboot.chained=1" {
		t.Errorf("cmdline %q", b.sys.Cmdline)
	}
}

func TestPrepareFallsThrough(t *testing.T) {
	for _, tt := range []struct {
		name, conf string
		setup      func(b *box)
		want       string
		loaded     bool
	}{
		{"kernel gone", "KERNEL=/boot/vmlinuz-gone\n", nil, "through the firmware: kernel /boot/vmlinuz-gone does not exist", false},
		{"firmware asked", "", func(b *box) { RequestFirmware(b.env.FS, "kxboot reboot --firmware") }, "one reboot through the firmware was asked for (kxboot reboot --firmware", false},
		{"poweroff", "", func(b *box) {
			b.env.Rebooting = func() (bool, error) { return false, nil }
		}, "not a reboot", false},
		{"not installed", "", func(b *box) { os.Remove(b.env.FS.Path(journal.Path(journal.JobReboot))) }, "not installed", false},
		{"load refused", "", func(b *box) { b.sys.FileErr = unix.ENOEXEC }, "through the firmware: ", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBox(t, "root=/dev/vda", tt.conf, false)
			if tt.setup != nil {
				tt.setup(b)
			}
			Prepare(b.env)
			if last := b.log[len(b.log)-1]; !strings.Contains(last, tt.want) {
				t.Errorf("log %q; want %q", b.log, tt.want)
			}
			if l, _ := b.env.Engine.Loaded(); l != tt.loaded {
				t.Errorf("loaded = %v", l)
			}
			b.sys.Calls = nil
			Jump(b.env)
			if slices.Contains(b.sys.Calls, "reboot_kexec") {
				t.Error("jumped with nothing loaded")
			}
		})
	}
}

// TestPrepareChain: with the chain boot installed, a fast reboot is a try
// of the owner's kernel; after a fallback it goes through the firmware.
func TestPrepareChain(t *testing.T) {
	b := newBox(t, "root=/dev/vda ro panic=10 kxboot.chained=1", "KERNEL="+kB+"\nMAX_TRIES=2\n", true)
	Prepare(b.env)
	if b.sys.Cmdline != "root=/dev/vda ro panic=10 kxboot.chained=1" {
		t.Errorf("cmdline %q", b.sys.Cmdline)
	}
	r, err := b.env.Store.Read()
	if err != nil || r.Tries != 1 || !r.Pending {
		t.Fatalf("record %+v, %v", r, err)
	}
	if got := b.events(t); got != "hop" {
		t.Errorf("history %q", got)
	}
	r.Tries, r.Pending = 2, false
	b.env.Store.Write(r)
	b.sys.Calls = nil
	Prepare(b.env)
	if len(b.sys.Calls) != 1 || b.sys.Calls[0] != "unload" || !strings.Contains(b.log[len(b.log)-1], "the chain boot says: 2 unconfirmed hops in a row") {
		t.Errorf("after the fallback: calls %v, log %q", b.sys.Calls, b.log)
	}
}

// TestJumpRefuses: a kernel loaded (by kxboot load, say) never turns a
// poweroff into a kexec, and a file system still writable sends the reboot
// through the firmware; an init that cannot answer any more goes on.
func TestJumpRefuses(t *testing.T) {
	for _, tt := range []struct {
		name      string
		rebooting func() (bool, error)
		mounts    string
		want      string
		jumped    bool
	}{
		{"poweroff", func() (bool, error) { return false, nil }, "/dev/vda / ext4 ro 0 0\n", "not a reboot (poweroff or halt): no jump", false},
		{"writable", nil, "/dev/vda / ext4 ro 0 0\n/dev/vdb /srv xfs rw,noatime 0 0\ntmpfs /run tmpfs rw 0 0\n", "/srv is still writable", false},
		{"reboot", func() (bool, error) { return true, nil }, "/dev/vda / ext4 ro 0 0\ntmpfs /run tmpfs rw 0 0\n", "jumping into the loaded kernel", true},
		{"cannot tell", func() (bool, error) { return false, fmt.Errorf("no systemd") }, "/dev/vda / ext4 ro 0 0\n", "jumping into the loaded kernel", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBox(t, "root=/dev/vda", "", false)
			rootfstest.Write(t, b.env.FS, "/proc/self/mounts", []byte(tt.mounts))
			Prepare(b.env)
			b.env.Rebooting = tt.rebooting
			b.sys.Calls = nil
			Jump(b.env)
			if jumped := slices.Contains(b.sys.Calls, "reboot_kexec"); jumped != tt.jumped {
				t.Errorf("jumped %v; calls %v", jumped, b.sys.Calls)
			}
			if !strings.Contains(strings.Join(b.log, "\n"), tt.want) {
				t.Errorf("log %q; want %q", b.log, tt.want)
			}
		})
	}
}

// TestPrepareArmsTheWatchdog: a fast reboot is a try, and arms the
// watchdog for HEALTH_DEADLINE like a hop, recording that it did (so that
// mark-good stops it); WATCHDOG=no leaves it alone.
func TestPrepareArmsTheWatchdog(t *testing.T) {
	for _, conf := range []string{"HEALTH_DEADLINE=90\n", "WATCHDOG=no\n"} {
		b := newBox(t, "root=/dev/vda", conf, false)
		var asked []time.Duration
		b.env.ArmWatchdog = func(d time.Duration) (string, error) {
			asked = append(asked, d)
			return "armed i6300esb for 90 s", nil
		}
		Prepare(b.env)
		r, _ := b.env.Store.Read()
		want := conf == "HEALTH_DEADLINE=90\n"
		if r.Watchdog != want || (len(asked) == 1) != want || want && asked[0] != 90*time.Second {
			t.Errorf("%q: armed %v for %v, record says %v", conf, len(asked) == 1, asked, r.Watchdog)
		}
		if want && !slices.Contains(b.log, "kxboot: reboot: watchdog: armed i6300esb for 90 s") {
			t.Errorf("log %q", b.log)
		}
	}
}
