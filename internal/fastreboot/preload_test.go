package fastreboot

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/internal/chain"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
	"github.com/kxboot/kxboot/internal/tries"
)

// preloadBox is a box with RAM of ramKiB and this boot's id.
func preloadBox(t *testing.T, conf string, ramKiB int) *box {
	b := newBox(t, "root=/dev/vda ro", conf, false)
	rootfstest.Write(t, b.env.FS, "/proc/meminfo", []byte("MemTotal:       "+strconv.Itoa(ramKiB)+" kB\nMemFree:         1000 kB\n"))
	rootfstest.Write(t, b.env.FS, "/proc/sys/kernel/random/boot_id", []byte("boot-1\n"))
	b.env.BootID = chain.BootID(b.env.FS)
	return b
}

func (b *box) last() string { return b.log[len(b.log)-1] }

// TestPreloadThenKeep: the kernel loaded ahead is the one the shutdown
// keeps: one load in all, the try recorded at the shutdown as before, and
// the record spent.
func TestPreloadThenKeep(t *testing.T) {
	b := preloadBox(t, "", 4<<20)
	said := Preload(b.env)
	if !strings.HasPrefix(said, "kxboot: reboot: preloaded "+kB+" with kexec_file_load in ") || !slices.Equal(b.sys.Calls, []string{"file_load"}) {
		t.Fatalf("preload said %q, calls %v", said, b.sys.Calls)
	}
	if p, ok := ReadPreloaded(b.env.FS); !ok || p.Kernel != kB || p.Boot != "boot-1" || p.Cmdline != "root=/dev/vda ro panic=10 kxboot.chained=1" {
		t.Fatalf("record %+v, %v", p, ok)
	}
	if got := Plan(b.env.FS, chain.Gather(b.env.FS)).String(); !strings.HasPrefix(got, "the next reboot goes through kexec, booting "+kB) || !strings.HasSuffix(got, ", try 1 of 1 (preloaded at 12:00:00)") {
		t.Errorf("the plan says %q", got)
	}
	if again := Preload(b.env); !strings.Contains(again, "is preloaded already") || len(b.sys.Calls) != 1 {
		t.Errorf("second preload said %q, calls %v", again, b.sys.Calls)
	}
	r, _ := b.env.Store.Read()
	if r.Pending || r.Tries != 0 {
		t.Errorf("the preload recorded a try: %+v", r)
	}
	Prepare(b.env)
	if !slices.Equal(b.sys.Calls, []string{"file_load"}) || !strings.Contains(b.last(), "kxboot: reboot: kept "+kB+", preloaded at 12:00:00 with kexec_file_load") {
		t.Fatalf("calls %v, log %q", b.sys.Calls, b.log)
	}
	if got := b.events(t); got != "hop" {
		t.Errorf("history %q", got)
	}
	if r, _ := b.env.Store.Read(); !r.Pending || r.Tries != 1 {
		t.Errorf("record after the shutdown %+v", r)
	}
	if _, ok := ReadPreloaded(b.env.FS); ok {
		t.Error("the record of the preload outlived the shutdown")
	}
}

// TestPrepareLoadsAgain: whatever changed since the preload (the file,
// the command line, the boot, the loaded kernel), the shutdown loads the
// kernel it chose.
func TestPrepareLoadsAgain(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(b *box)
	}{
		{"kernel rewritten", func(b *box) {
			p := b.env.FS.Path(kB)
			data, _ := os.ReadFile(p)
			os.Remove(p)
			os.WriteFile(p, data, 0o644)
			os.Chtimes(p, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
		}},
		{"initrd rewritten in place, times kept", func(b *box) {
			p := b.env.FS.Path("/boot/initrd.img-6.1.0-56-cloud-amd64")
			st, _ := os.Stat(p)
			time.Sleep(10 * time.Millisecond)
			os.WriteFile(p, []byte("initrd-X"), 0o644)
			os.Chtimes(p, st.ModTime(), st.ModTime())
		}},
		{"APPEND changed", func(b *box) { rootfstest.Write(t, b.env.FS, "/etc/default/kxboot", []byte("APPEND=quiet\n")) }},
		{"unloaded by hand", func(b *box) { b.env.Engine.Unload() }},
		{"loaded by kxboot load", func(b *box) { ForgetPreloaded(b.env.FS) }},
		{"another boot", func(b *box) {
			rootfstest.Write(t, b.env.FS, "/proc/sys/kernel/random/boot_id", []byte("boot-2\n"))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := preloadBox(t, "", 4<<20)
			Preload(b.env)
			tt.change(b)
			b.sys.Calls = nil
			Prepare(b.env)
			if !slices.Contains(b.sys.Calls, "file_load") || !strings.Contains(b.last(), "kxboot: reboot: loaded "+kB+" with kexec_file_load") {
				t.Errorf("calls %v, log %q", b.sys.Calls, b.log)
			}
		})
	}
}

// TestPreloadDeclines: no load ahead when the owner said no, the files
// take too much of the RAM (auto), the boot's try is not settled, or the
// next reboot goes through the firmware; a kernel loaded ahead for an
// earlier choice is unloaded.
func TestPreloadDeclines(t *testing.T) {
	for _, tt := range []struct {
		name, conf string
		ramKiB     int
		setup      func(b *box)
		want       string
		calls      []string
	}{
		{"no", "REBOOT_PRELOAD=no\n", 4 << 20, nil, "nothing preloaded: REBOOT_PRELOAD=no in /etc/default/kxboot; the shutdown loads", nil},
		{"auto, small RAM", "", 512, nil, "nothing preloaded: the kernel and initrds take 0 MiB, more than 1/32 of the RAM (0 MiB); the shutdown loads (REBOOT_PRELOAD=yes in /etc/default/kxboot preloads anyway)", nil},
		{"yes, small RAM", "REBOOT_PRELOAD=yes\n", 512, nil, "with kexec_file_load in ", []string{"file_load"}},
		{"try pending", "", 4 << 20, func(b *box) { b.env.Store.Write(tries.Record{Tries: 1, Pending: true, ID: "x"}) }, "this boot's try is not confirmed yet", nil},
		{"firmware", "", 4 << 20, func(b *box) { RequestFirmware(b.env.FS, "kxboot reboot --firmware") }, "the next reboot goes through the firmware, once (kxboot reboot --firmware)", nil},
		{"kernel gone", "KERNEL=/boot/vmlinuz-gone\n", 4 << 20, nil, "the next reboot goes through the firmware: kernel /boot/vmlinuz-gone does not exist", nil},
		{"earlier choice", "", 4 << 20, func(b *box) {
			Preload(b.env)
			rootfstest.Write(t, b.env.FS, "/etc/default/kxboot", []byte("REBOOT_PRELOAD=no\nAPPEND=quiet\n"))
			b.sys.Calls = nil
		}, "REBOOT_PRELOAD=no", []string{"unload"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := preloadBox(t, tt.conf, tt.ramKiB)
			if tt.setup != nil {
				tt.setup(b)
			}
			said := Preload(b.env)
			if !strings.Contains(said, tt.want) || !slices.Equal(b.sys.Calls, tt.calls) {
				t.Errorf("said %q, calls %v; want %q, %v", said, b.sys.Calls, tt.want, tt.calls)
			}
			_, recorded := ReadPreloaded(b.env.FS)
			if recorded != slices.Contains(tt.calls, "file_load") {
				t.Errorf("record kept: %v", recorded)
			}
		})
	}
	b := preloadBox(t, "", 4<<20)
	Preload(b.env)
	rootfstest.Write(t, b.env.FS, "/etc/default/kxboot", []byte("APPEND=quiet\n"))
	b.sys.Calls = nil
	if said := Preload(b.env); !slices.Equal(b.sys.Calls, []string{"unload", "file_load"}) || !strings.Contains(said, "preloaded "+kB) {
		t.Errorf("a new choice: said %q, calls %v", said, b.sys.Calls)
	}
	os.Remove(b.env.FS.Path(journal.Path(journal.JobReboot)))
	if said := Preload(b.env); said != "" {
		t.Errorf("not installed: said %q", said)
	}
}

// TestJumpRefusesAPreloadNotTakenOver: a forced reboot skips Prepare, so
// the preloaded kernel would start with no try recorded: the jump
// unloads it and the reboot goes through the firmware.
func TestJumpRefusesAPreloadNotTakenOver(t *testing.T) {
	b := preloadBox(t, "", 4<<20)
	rootfstest.Write(t, b.env.FS, "/proc/self/mounts", []byte("/dev/vda / ext4 ro 0 0\n"))
	Preload(b.env)
	b.sys.Calls = nil
	Jump(b.env)
	if !slices.Equal(b.sys.Calls, []string{"unload"}) || !strings.Contains(b.last(), "never taken over by the shutdown") {
		t.Errorf("calls %v, log %q", b.sys.Calls, b.log)
	}
	// After Prepare (which spends the record) the jump goes ahead.
	Preload(b.env)
	Prepare(b.env)
	b.sys.Calls = nil
	Jump(b.env)
	if !slices.Contains(b.sys.Calls, "reboot_kexec") {
		t.Errorf("after Prepare: calls %v, log %q", b.sys.Calls, b.log)
	}
}
