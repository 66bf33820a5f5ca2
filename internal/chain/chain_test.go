package chain

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/cmdline"
	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/plan"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
	"github.com/kxboot/kxboot/internal/testimg"
	"github.com/kxboot/kxboot/internal/tries"
	"github.com/kxboot/kxboot/internal/watchdog"
)

func TestDecide(t *testing.T) {
	enabled := &config.Config{Enabled: true, Path: "/etc/default/kxboot"}
	disabled := &config.Config{Enabled: false, Path: "/etc/default/kxboot", Line: map[string]int{"ENABLED": 3}}
	custom := &config.Config{Enabled: true, Marker: "my.hop=1"}
	p := plan.Plan{Kernel: "/boot/vmlinuz-B", Release: "6.1.0-56", KernelFrom: "KERNEL= in /etc/default/kxboot:2"}
	tests := []struct {
		name    string
		in      Input
		hop     bool
		because string
	}{
		{"hop", Input{Running: cmdline.Parse("root=/dev/vda ro"), Config: enabled, Plan: p}, true,
			"booting /boot/vmlinuz-B (6.1.0-56), named by KERNEL= in /etc/default/kxboot:2"},
		{"own marker", Input{Running: cmdline.Parse("root=/dev/vda kxboot.chained=1 ro"), Config: enabled, Plan: p}, false,
			"already came through kexec (kxboot.chained=1"},
		{"seed marker anywhere", Input{Running: cmdline.Parse("kexeced root=/dev/vda ro"), Config: enabled, Plan: p}, false, "(kexeced is"},
		{"scaleway marker", Input{Running: cmdline.Parse("root=/dev/vda is_in_kexec=yes"), Config: enabled, Plan: p}, false, "is_in_kexec=yes"},
		{"custom marker", Input{Running: cmdline.Parse("root=/dev/vda my.hop=1"), Config: custom, Plan: p}, false, "my.hop=1"},
		{"marker after -- is init's", Input{Running: cmdline.Parse("root=/dev/vda -- kxboot.chained=1"), Config: enabled, Plan: p}, true, "booting"},
		{"marker beats a broken config", Input{Running: cmdline.Parse("kxboot.chained=1"), ConfigErr: errors.New("x:1: bad")}, false, "already came through"},
		{"broken config", Input{Running: cmdline.Parse("ro"), ConfigErr: errors.New("/etc/default/kxboot:4: bad line")}, false,
			"the config cannot be used: /etc/default/kxboot:4: bad line"},
		{"disabled", Input{Running: cmdline.Parse("ro"), Config: disabled, Plan: p}, false, "disabled (ENABLED=no in /etc/default/kxboot:3)"},
		{"no kernel", Input{Running: cmdline.Parse("ro"), Config: enabled, PlanErr: errors.New("no installed kernel found")}, false, "no installed kernel found"},
		{"bad kernel", Input{Running: cmdline.Parse("ro"), Config: enabled, Plan: p, KernelErr: errors.New("kernel /boot/vmlinuz-B does not exist")}, false, "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.in)
			if d.Hop != tt.hop || !strings.Contains(d.Reason, tt.because) {
				t.Errorf("Decide = %+v; want hop=%v because %q", d, tt.hop, tt.because)
			}
			if strings.Contains(d.Reason, "\n") {
				t.Errorf("reason is not one line: %q", d.Reason)
			}
		})
	}
}

// machine is a provider-booted Debian machine with the owner's kernel B.
type machine struct {
	fs      rootfs.FS
	sys     *kexec.Fake
	env     Env
	log     []string
	windows []string
	record  []Decision
	key     string // what the abort window returns
	jumpErr error
}

func newMachine(t *testing.T, conf string) *machine {
	fsys := rootfstest.Tree(t, map[string]string{
		"/proc/cmdline":                         "BOOT_IMAGE=/vmlinuz-A root=/dev/vda ro console=ttyS0",
		"/boot/vmlinuz-6.1.0-56-cloud-amd64":    string(testimg.BzImage(16384, "6.1.0-56-cloud-amd64")),
		"/boot/initrd.img-6.1.0-56-cloud-amd64": "initrd-B",
		"/sys/kernel/kexec_loaded":              "0\n",
		"/etc/default/kxboot":                   conf,
	}, nil)
	m := &machine{fs: fsys}
	m.sys = &kexec.Fake{FS: &m.fs}
	m.env = Env{
		FS:     fsys,
		Engine: &kexec.Engine{FS: fsys, Sys: m.sys, Arch: "amd64", Euid: func() int { return 0 }},
		Logf:   func(f string, a ...any) { m.log = append(m.log, strings.TrimSpace(fmtS(f, a...))) },
		Window: func(prompt string, d time.Duration) string {
			m.windows = append(m.windows, fmtS(prompt, int(d/time.Second)))
			return m.key
		},
		Record: func(d Decision) { m.record = append(m.record, d) },
	}
	return m
}

func TestRunHops(t *testing.T) {
	m := newMachine(t, "KERNEL=/boot/vmlinuz-6.1.0-56-cloud-amd64\nAPPEND=nomodeset\nABORT_SECONDS=3\n")
	m.sys.ExecErr = unix.EINVAL // the fake "jump" returns; a real one would not
	d := Run(m.env)
	if want := []string{"file_load", "reboot_kexec", "unload"}; !slices.Equal(m.sys.Calls, want) {
		t.Errorf("calls = %v; want %v", m.sys.Calls, want)
	}
	if m.sys.Cmdline != "root=/dev/vda ro console=ttyS0 nomodeset panic=10 kxboot.chained=1" || string(m.sys.Initrd) != "initrd-B" {
		t.Errorf("loaded cmdline %q initrd %q", m.sys.Cmdline, m.sys.Initrd)
	}
	if len(m.windows) != 1 || !strings.Contains(m.windows[0], "kxboot: booting /boot/vmlinuz-6.1.0-56-cloud-amd64 in 3 s; press any key to boot the current kernel instead") {
		t.Errorf("abort window prompt: %q", m.windows)
	}
	// A jump that returns means boot on, with the reason, and nothing left loaded.
	if d.Hop || !strings.Contains(d.Reason, "the jump into /boot/vmlinuz-6.1.0-56-cloud-amd64 failed") {
		t.Errorf("decision after a failed jump: %+v", d)
	}
	if !slices.ContainsFunc(m.log, func(s string) bool { return strings.HasPrefix(s, "kxboot: chain: jumping into") }) {
		t.Errorf("log: %q", m.log)
	}
}

func TestRunBootsOn(t *testing.T) {
	tests := []struct {
		name, conf, cmdline, key, want string
		window                         bool
	}{
		{"key in the window", "ABORT_SECONDS=5\n", "", "ttyS0", "a key was pressed on ttyS0 during the 5 s abort window", true},
		{"missing kernel", "KERNEL=/boot/vmlinuz-gone\n", "", "", "kernel /boot/vmlinuz-gone does not exist", false},
		{"malformed config", "KERNEL=/boot/x y\n", "", "", "the config cannot be used: /etc/default/kxboot:1", false},
		{"disabled", "ENABLED=no\n", "", "", "chain boot is disabled", false},
		{"already hopped", "", "root=/dev/vda kxboot.chained=1", "", "already came through kexec", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, tt.conf)
			if tt.cmdline != "" {
				rootfstest.Write(t, m.fs, "/proc/cmdline", []byte(tt.cmdline))
			}
			m.key = tt.key
			d := Run(m.env)
			if d.Hop || !strings.Contains(d.Reason, tt.want) {
				t.Fatalf("Run = %+v; want boot on because %q", d, tt.want)
			}
			if len(m.sys.Calls) != 0 {
				t.Errorf("calls = %v; booting on must not load", m.sys.Calls)
			}
			if (len(m.windows) > 0) != tt.window {
				t.Errorf("abort window shown: %v", m.windows)
			}
			if len(m.record) != 1 || !reflect.DeepEqual(m.record[0], d) {
				t.Errorf("recorded %v", m.record)
			}
			if last := m.log[len(m.log)-1]; last != "kxboot: chain: boot on: "+d.Reason {
				t.Errorf("last log line %q", last)
			}
		})
	}
}

// TestRunChecksBeforeTheWindow: what the load would refuse (a kernel a
// non-root user could have written, a missing initrd) is refused before the
// abort window and before any "booting" line, and the dry run says so too.
func TestRunChecksBeforeTheWindow(t *testing.T) {
	for _, tt := range []struct {
		name, conf string
		prep       func(fsys rootfs.FS)
		want       string
	}{
		{"untrusted kernel", "ABORT_SECONDS=5\n", func(fsys rootfs.FS) {
			os.Chmod(fsys.Path("/boot/vmlinuz-6.1.0-56-cloud-amd64"), 0o664)
		}, "refusing kernel /boot/vmlinuz-6.1.0-56-cloud-amd64: "},
		{"missing initrd", "ABORT_SECONDS=5\nINITRD=/boot/initrd-gone\n", nil, "initrd /boot/initrd-gone does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, tt.conf)
			if tt.prep != nil {
				tt.prep(m.fs)
			}
			in := Gather(m.fs)
			if got := Explain(in, Decide(in)); !strings.HasPrefix(got, "would boot on: ") || !strings.Contains(got, tt.want) {
				t.Errorf("the dry run says %q; want it to boot on because %q", got, tt.want)
			}
			d := Run(m.env)
			if d.Hop || !strings.Contains(d.Reason, tt.want) {
				t.Errorf("Run = %+v; want boot on because %q", d, tt.want)
			}
			if len(m.windows) != 0 || len(m.sys.Calls) != 0 {
				t.Errorf("abort window %v, calls %v; want neither", m.windows, m.sys.Calls)
			}
			for _, l := range m.log {
				if strings.Contains(l, "booting /boot") {
					t.Errorf("logged %q for a hop it cannot make", l)
				}
			}
		})
	}
}

func TestRunLoadRefused(t *testing.T) {
	m := newMachine(t, "ABORT_SECONDS=0\n")
	rootfstest.Write(t, m.fs, "/proc/sys/kernel/kexec_load_disabled", []byte("1\n"))
	m.sys.FileErr = unix.EPERM
	d := Run(m.env)
	if d.Hop || !strings.Contains(d.Reason, "kexec_load_disabled is 1") {
		t.Errorf("Run = %+v", d)
	}
	if len(m.windows) != 0 {
		t.Errorf("ABORT_SECONDS=0 still showed the window")
	}
}

func TestExplain(t *testing.T) {
	m := newMachine(t, "")
	explain := func(fsys rootfs.FS) string { in := Gather(fsys); return Explain(in, Decide(in)) }
	if got := explain(m.fs); got != "would hop: booting /boot/vmlinuz-6.1.0-56-cloud-amd64 (6.1.0-56-cloud-amd64), named by newest installed kernel (Debian /boot/vmlinuz-*), try 1 of 3, after a 5 s abort window" {
		t.Errorf("Explain = %q", got)
	}
	os.Remove(m.fs.Path("/boot/vmlinuz-6.1.0-56-cloud-amd64"))
	if got := explain(m.fs); !strings.HasPrefix(got, "would boot on: no installed kernel found") {
		t.Errorf("Explain = %q", got)
	}
}

// withStore gives the machine its try record and history.
func (m *machine) withStore() *tries.Store {
	s := &tries.Store{FS: m.fs}
	m.env.Store = s
	m.env.Now = func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }
	m.env.BootID = "boot-a"
	m.env.Release = "6.1.0-55-cloud-amd64"
	return s
}

// TestTries follows a kernel that never confirms: each provider boot
// settles the last try as failed and hops again, until MAX_TRIES; then the
// machine stays on the provider's kernel, with the reason.
func TestTries(t *testing.T) {
	m := newMachine(t, "ABORT_SECONDS=0\nMAX_TRIES=2\n")
	s := m.withStore()
	m.sys.ExecErr = unix.EINVAL
	var atJump []tries.Record
	m.env.BeforeJump = func() error {
		r, err := s.Read()
		if err != nil {
			t.Fatal(err)
		}
		atJump = append(atJump, r)
		// The jump "succeeds": the fake cannot, so make Exec not return
		// an error that Run would take back.
		return nil
	}
	for boot := 1; boot <= 2; boot++ {
		d := Run(m.env)
		if len(atJump) != boot || atJump[boot-1].Tries != boot || !atJump[boot-1].Pending {
			t.Fatalf("boot %d: the record at the jump was %+v; want try %d, pending", boot, atJump, boot)
		}
		if !strings.Contains(d.Reason, "failed") {
			t.Fatalf("boot %d: %+v", boot, d)
		}
		// The jump "happened" and the kernel never confirmed: put the
		// record back to what the jump left (pending).
		if err := s.Write(atJump[boot-1]); err != nil {
			t.Fatal(err)
		}
	}
	d := Run(m.env)
	if d.Hop || !d.Fallback || !strings.Contains(d.Reason, "2 unconfirmed hops in a row into /boot/vmlinuz-6.1.0-56-cloud-amd64 (last: the kernel never confirmed") {
		t.Fatalf("after two unconfirmed hops: %+v", d)
	}
	if len(atJump) != 2 {
		t.Errorf("hopped again after MAX_TRIES")
	}
	h, _ := s.ReadHistory()
	var evs []string
	for _, e := range h {
		evs = append(evs, fmt.Sprintf("%s/%d", e.Event, e.Try))
	}
	// The fake's jump returns (boot-on: the jump failed); the test then
	// puts back the pending record a real jump leaves.
	if got := strings.Join(evs, " "); got != "hop/1 boot-on/0 failed/1 hop/2 boot-on/0 failed/2 fallback/0" {
		t.Errorf("history %s", got)
	}
	// A new kernel file starts a fresh count.
	rootfstest.Write(t, m.fs, "/etc/default/kxboot", []byte("ABORT_SECONDS=0\nMAX_TRIES=2\nAPPEND=quiet\n"))
	if d := Run(m.env); !strings.Contains(d.Reason, "failed") || len(atJump) != 3 || atJump[2].Tries != 1 {
		t.Errorf("a changed command line did not start a fresh count: %+v, %+v", d, atJump)
	}
}

func TestTriesOnTheHop(t *testing.T) {
	m := newMachine(t, "ABORT_SECONDS=0\n")
	s := m.withStore()
	rootfstest.Write(t, m.fs, "/proc/cmdline", []byte("root=/dev/vda kxboot.chained=1"))
	watched := 0
	m.env.StartWatch = func() { watched++ }
	Run(m.env)
	if watched != 0 {
		t.Error("a watcher started with no try pending")
	}
	s.Write(tries.Hop(tries.Record{}, tries.Boot{Kernel: "/boot/k", ID: "id"}, tries.Configured, "", time.Now(), "b"))
	d := Run(m.env)
	if watched != 1 || !d.Chained {
		t.Errorf("the watcher did not start on a pending try: %d, %+v", watched, d)
	}
	if r, _ := s.Read(); !r.Pending || r.Tries != 1 {
		t.Errorf("the hop's own boot settled its try: %+v", r)
	}
	if h, _ := s.ReadHistory(); len(h) != 0 {
		t.Errorf("the owner's kernel wrote history at boot: %+v", h)
	}
}

func TestTriesDamagedRecord(t *testing.T) {
	m := newMachine(t, "ABORT_SECONDS=0\n")
	m.withStore()
	rootfstest.Write(t, m.fs, tries.RecordPath, []byte(`{"record":{"version":1,"tries":0},"sha256":"bad"}`))
	d := Run(m.env)
	if d.Hop || !strings.Contains(d.Reason, "the try record cannot be believed") || !strings.Contains(d.Reason, "kxboot reset") {
		t.Errorf("damaged record: %+v", d)
	}
	if len(m.sys.Calls) != 0 {
		t.Errorf("loaded with a damaged record: %v", m.sys.Calls)
	}
}

func TestTriesUnwritable(t *testing.T) {
	m := newMachine(t, "ABORT_SECONDS=0\n")
	m.withStore().Fail = unix.ENOSPC
	d := Run(m.env)
	if d.Hop || !strings.Contains(d.Reason, "cannot record the try") {
		t.Errorf("Run = %+v", d)
	}
	if want := []string{"file_load", "unload"}; !slices.Equal(m.sys.Calls, want) {
		t.Errorf("calls %v; want %v (no jump without a record)", m.sys.Calls, want)
	}
}

func TestPanicParam(t *testing.T) {
	for _, tt := range []struct {
		line string
		secs int
		want string
	}{
		{"root=/dev/vda kxboot.chained=1", 10, "root=/dev/vda panic=10 kxboot.chained=1"},
		{"root=/dev/vda", 10, "root=/dev/vda panic=10"},
		{"root=/dev/vda panic=0 kxboot.chained=1", 10, "root=/dev/vda panic=0 kxboot.chained=1"},
		{"root=/dev/vda", 0, "root=/dev/vda"},
	} {
		if got := withPanic(tt.line, tt.secs, "kxboot.chained=1"); got != tt.want {
			t.Errorf("withPanic(%q, %d) = %q; want %q", tt.line, tt.secs, got, tt.want)
		}
	}
}

func fmtS(f string, a ...any) string { return fmt.Sprintf(f, a...) }

// TestWatchdogNeedsTheNextKernelsDriver: the watchdog is armed only when
// the owner's kernel has a driver to stop it after a good boot.
func TestWatchdogNeedsTheNextKernelsDriver(t *testing.T) {
	for _, tt := range []struct {
		name, dep string
		armed     bool
	}{
		{"driver as a module", "kernel/drivers/watchdog/i6300esb.ko: kernel/drivers/watchdog/watchdog.ko\n", true},
		{"no driver", "kernel/drivers/watchdog/softdog.ko:\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, "KERNEL=/boot/vmlinuz-6.1.0-56-cloud-amd64\nABORT_SECONDS=0\n")
			rootfstest.Write(t, m.fs, "/lib/modules/6.1.0-56-cloud-amd64/modules.dep", []byte(tt.dep))
			os.MkdirAll(m.fs.Path(watchdog.SysDir+"/device"), 0o755)
			os.Symlink("../../../bus/pci/drivers/i6300esb", m.fs.Path(watchdog.SysDir+"/device/driver"))
			armed := false
			m.env.ArmWatchdog = func(time.Duration) (string, error) { armed = true; return "armed", nil }
			m.sys.ExecErr = unix.EINVAL
			Run(m.env)
			if armed != tt.armed {
				t.Errorf("armed = %v; want %v; log %q", armed, tt.armed, m.log)
			}
			said := slices.ContainsFunc(m.log, func(s string) bool {
				return strings.Contains(s, "watchdog: not armed: kernel 6.1.0-56-cloud-amd64 has no i6300esb driver")
			})
			if said == tt.armed {
				t.Errorf("log %q", m.log)
			}
		})
	}
}

// TestWatchdogFired: a try that armed the watchdog and was left pending,
// on a boot whose watchdog driver reports that the watchdog caused the
// reset (bootstatus WDIOF_CARDRESET), fails with that cause, in the
// history and in the fallback's reason; without the bit, or when the hop
// armed nothing, the reason keeps its guesses.
func TestWatchdogFired(t *testing.T) {
	for _, tt := range []struct {
		name       string
		armed      bool
		bootstatus string
		fired      bool
	}{
		{"armed and fired", true, "32\n", true},
		{"armed, no reset reported", true, "0\n", false},
		{"armed, driver says nothing", true, "", false},
		{"not armed", false, "32\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, "ABORT_SECONDS=0\nMAX_TRIES=1\n")
			s := m.withStore()
			if tt.bootstatus != "" {
				rootfstest.Write(t, m.fs, watchdog.SysDir+"/bootstatus", []byte(tt.bootstatus))
			}
			in := Gather(m.fs)
			d := Decide(in)
			r := HopRecord(in.Record, d, m.env.Now(), "boot-0")
			r.Watchdog = tt.armed
			if err := s.Write(r); err != nil {
				t.Fatal(err)
			}
			d = Run(m.env)
			if d.Hop || !d.Fallback {
				t.Fatalf("after the one try: %+v", d)
			}
			h, _ := s.ReadHistory()
			if len(h) == 0 || h[0].Event != "failed" {
				t.Fatalf("history %+v", h)
			}
			const cause = "the kernel never confirmed: the hardware watchdog armed before the hop reset the machine (/sys/class/watchdog/watchdog0/bootstatus says so), so the kernel hung before kxboot mark-good ran"
			const guess = "the kernel never confirmed: it crashed, hung or was reset before kxboot mark-good ran"
			want := guess
			if tt.fired {
				want = cause
			}
			if !strings.HasPrefix(h[0].Reason, want) {
				t.Errorf("failure reason %q; want it to start %q", h[0].Reason, want)
			}
			if !strings.Contains(d.Reason, "(last: "+want) {
				t.Errorf("fallback reason %q; want it to quote %q", d.Reason, want)
			}
		})
	}
}

// TestNoWatchdogSaysSo: a hop on a machine with no watchdog says plainly
// what a hang would mean.
func TestNoWatchdogSaysSo(t *testing.T) {
	m := newMachine(t, "KERNEL=/boot/vmlinuz-6.1.0-56-cloud-amd64\nABORT_SECONDS=0\n")
	m.env.ArmWatchdog = NativeWatchdog(m.fs)
	m.sys.ExecErr = unix.EINVAL
	Run(m.env)
	if !slices.Contains(m.log, "kxboot: chain: watchdog: none (no /dev/watchdog): a kernel that hangs before its userspace starts stays hung until the machine is power-cycled") {
		t.Errorf("log %q", m.log)
	}
}
