package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/fastreboot"
	"github.com/kxboot/kxboot/internal/initsys"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
	"github.com/kxboot/kxboot/internal/testimg"
)

const (
	running = "6.1.0-47-cloud-amd64"
	newest  = "6.1.0-54-cloud-amd64"
	// What GRUB gives a Debian 12 cloud machine, with a quoted argument.
	procCmdline = `BOOT_IMAGE=/boot/vmlinuz-6.1.0-47-cloud-amd64 root=UUID=6d9a1c3e-7f2b-4b7a-9c1e-2f3a4b5c6d7e ro console=tty0 console=ttyS0,115200 app.motd="hello  world" quiet`
	rootUUID    = "6d9a1c3e-7f2b-4b7a-9c1e-2f3a4b5c6d7e"
)

// machine is a Debian 12 cloud machine in a temp dir: two kernels installed,
// the older one running.
type machine struct {
	t   *testing.T
	fs  rootfs.FS
	sys *kexec.Fake
	env *Env
	out *bytes.Buffer
	err *bytes.Buffer
	uid int
}

func newMachine(t *testing.T) *machine {
	t.Helper()
	m := &machine{t: t, fs: rootfstest.New(t), out: &bytes.Buffer{}, err: &bytes.Buffer{}}
	m.sys = &kexec.Fake{FS: &m.fs}
	eng := &kexec.Engine{FS: m.fs, Sys: m.sys, Arch: "amd64", Euid: func() int { return m.uid }}
	m.env = &Env{FS: m.fs, Engine: eng, Stdout: m.out, Stderr: m.err, Euid: func() int { return m.uid }}
	for _, v := range []string{running, newest} {
		m.write("/boot/vmlinuz-"+v, testimg.BzImage(32768, v))
		m.write("/boot/initrd.img-"+v, []byte("initrd of "+v))
		m.write("/boot/config-"+v, []byte("CONFIG_KEXEC=y\nCONFIG_KEXEC_FILE=y\n# CONFIG_FOO is not set\n"))
	}
	os.Symlink("boot/vmlinuz-"+newest, m.fs.Path("/vmlinuz"))
	os.Symlink("boot/initrd.img-"+newest, m.fs.Path("/initrd.img"))
	m.write("/proc/cmdline", []byte(procCmdline+"\n"))
	m.write("/proc/sys/kernel/osrelease", []byte(running+"\n"))
	m.write("/proc/sys/kernel/kexec_load_disabled", []byte("0\n"))
	m.write("/proc/meminfo", []byte("MemTotal:        2000000 kB\nMemFree:         1500000 kB\nMemAvailable:    1800000 kB\n"))
	m.write("/sys/kernel/kexec_loaded", []byte("0\n"))
	m.write("/dev/vda1", []byte{})
	os.MkdirAll(m.fs.Path("/dev/disk/by-uuid"), 0o755)
	os.Symlink("../../vda1", m.fs.Path("/dev/disk/by-uuid/"+rootUUID))
	return m
}

func (m *machine) write(p string, b []byte) {
	m.t.Helper()
	rootfstest.Write(m.t, m.fs, p, b)
}

// run runs kxboot with args and returns the exit status; output is in m.out and m.err.
func (m *machine) run(args ...string) int {
	m.out.Reset()
	m.err.Reset()
	return Run(args, m.env)
}

func (m *machine) mustRun(args ...string) string {
	m.t.Helper()
	if code := m.run(args...); code != 0 {
		m.t.Fatalf("kxboot %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, m.out, m.err)
	}
	return m.out.String()
}

func TestHelpListsEveryCommand(t *testing.T) {
	m := newMachine(t)
	out := m.mustRun("help")
	for name, c := range commands {
		if !c.glue && !strings.Contains(out, "  "+name+" ") || c.glue && (strings.Contains(out, "  "+name+" ") || !strings.Contains(out, "Init glue, run by what kxboot install puts in place: "+name)) {
			t.Errorf("help does not list %s as it should (glue %v):\n%s", name, c.glue, out)
		}
		if code := m.run(name, "--help"); code != 0 || !strings.Contains(m.out.String(), "Usage: kxboot ") {
			t.Errorf("kxboot %s --help: exit %d, stdout %q", name, code, m.out)
		}
	}
	for _, k := range config.Keys() {
		if !strings.Contains(out, " "+k+" ") && !strings.HasSuffix(strings.Split(out, k)[0], " ") {
			t.Errorf("help does not name the config key %s:\n%s", k, out)
		}
	}
	if m.run("reboot", "--help"); strings.Contains(m.out.String(), "  --prepare") || !strings.Contains(m.out.String(), "Init glue, run by what kxboot install puts in place: --armed, --jump, --prepare.") {
		t.Errorf("reboot --help shows the init glue as flags for people:\n%s", m.out)
	}
	if code := m.run("frobnicate"); code != 2 || !strings.Contains(m.err.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, m.err)
	}
	if code := m.run("load", "stray"); code != 2 || !strings.Contains(m.err.String(), `unexpected argument "stray"`) {
		t.Errorf("stray argument: exit %d, %q", code, m.err)
	}
}

func TestLoadDryRunTouchesNothing(t *testing.T) {
	m := newMachine(t)
	out := m.mustRun("load", "--dry-run")
	for _, want := range []string{
		"kernel:  /boot/vmlinuz-" + newest + " (" + newest + ")",
		"newest installed kernel",
		"initrd:  /boot/initrd.img-" + newest,
		`cmdline: root=UUID=` + rootUUID + ` ro console=tty0 console=ttyS0,115200 app.motd="hello  world" quiet kxboot.chained=1`,
		"from the running command line",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	// Asking the kernel which load calls it has (Probe) loads nothing.
	if len(m.sys.Calls) != 1 || m.sys.Calls[0] != "probe" {
		t.Errorf("a dry run made the calls %v; want only the probe", m.sys.Calls)
	}
	if !strings.HasPrefix(out, "Would load with kexec_file_load (dry run: every check passed, nothing loaded):") {
		t.Errorf("dry run says:\n%s", out)
	}
}

// TestLoadDryRunRefusesWhatTheLoadRefuses: a dry run fails, with the load's
// own sentence, wherever the load would.
func TestLoadDryRunRefusesWhatTheLoadRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		prep func(m *machine)
		want string
	}{
		{"not a kernel", []string{"--kernel", "/etc/passwd"}, nil, "/etc/passwd is not a bootable kernel image"},
		{"no kernel", []string{"--kernel", "/boot/vmlinuz-gone"}, nil, "kernel /boot/vmlinuz-gone does not exist"},
		{"no initrd", []string{"--initrd", "/boot/gone.img"}, nil, "initrd /boot/gone.img does not exist"},
		{"writable kernel", nil, func(m *machine) {
			os.Chmod(m.fs.Path("/boot/vmlinuz-"+newest), 0o664)
		}, "refusing kernel /boot/vmlinuz-" + newest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			m.write("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"))
			if tt.prep != nil {
				tt.prep(m)
			}
			code2 := m.run(append([]string{"load", "--dry-run"}, tt.args...)...)
			errOut2 := m.err.String()
			code := m.run(append([]string{"load"}, tt.args...)...)
			errOut := m.err.String()
			if code == 0 || code2 != code || errOut2 != errOut || !strings.Contains(errOut2, tt.want) {
				t.Errorf("load: exit %d, %q\nload --dry-run: exit %d, %q\nwant the same refusal, with %q", code, errOut, code2, errOut2, tt.want)
			}
		})
	}
}

func TestLoadPassesArgumentsByteForByte(t *testing.T) {
	m := newMachine(t)
	m.mustRun("load", "--append", `kxtest.words="a b  c" token=42`)
	want := `root=UUID=` + rootUUID + ` ro console=tty0 console=ttyS0,115200 app.motd="hello  world" quiet kxtest.words="a b  c" token=42 kxboot.chained=1`
	if m.sys.Cmdline != want {
		t.Errorf("cmdline given to the kernel:\n %q\nwant\n %q", m.sys.Cmdline, want)
	}
	if string(m.sys.Initrd) != "initrd of "+newest {
		t.Errorf("initrd = %q", m.sys.Initrd)
	}
	if !strings.Contains(m.out.String(), "Loaded with kexec_file_load") {
		t.Errorf("stdout: %s", m.out)
	}
}

func TestConfigAndFlags(t *testing.T) {
	m := newMachine(t)
	m.write("/boot/intel-ucode.img", []byte("ucod"))
	m.write("/etc/default/kxboot", []byte(`# my kernel
KERNEL="/boot/vmlinuz-`+running+`"
INITRD="/boot/intel-ucode.img /boot/initrd.img-`+running+`"
APPEND="nomodeset"
`))
	out := m.mustRun("load", "--dry-run")
	for _, want := range []string{"KERNEL= in /etc/default/kxboot:2", "INITRD= in /etc/default/kxboot:3", "APPEND= in /etc/default/kxboot:4", "quiet nomodeset kxboot.chained=1"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	m.mustRun("load")
	if string(m.sys.Initrd) != "ucodinitrd of "+running {
		t.Errorf("initrds joined as %q", m.sys.Initrd)
	}
	// Flags override the file.
	if code := m.run("load", "--kernel", "/vmlinuz", "--cmdline", "x", "--append", "y"); code != 2 || !strings.Contains(m.err.String(), "--append and --cmdline do not go together") {
		t.Errorf("append+cmdline: exit %d %q", code, m.err)
	}
	m.mustRun("load", "--kernel", "/vmlinuz", "--no-initrd", "--cmdline", "root=/dev/vda1 kexeced")
	if m.sys.Cmdline != "root=/dev/vda1 kxboot.chained=1" || m.sys.Initrd != nil {
		t.Errorf("cmdline %q (old markers must go), initrd %q", m.sys.Cmdline, m.sys.Initrd)
	}
}

func TestLoadErrorsAreOneSentence(t *testing.T) {
	m := newMachine(t)
	m.write("/root/notes.txt", []byte("just text\n"))
	m.write("/boot/vmlinuz-cut", testimg.BzImage(32768, "x")[:10000])
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"load", "--kernel", "/boot/vmlinuz-gone"}, "kernel /boot/vmlinuz-gone does not exist"},
		{[]string{"load", "--kernel", "/root/notes.txt"}, "/root/notes.txt is not a bootable kernel image"},
		{[]string{"load", "--kernel", "/boot/vmlinuz-cut"}, "kernel /boot/vmlinuz-cut is a truncated kernel image"},
	}
	for _, tt := range tests {
		code := m.run(tt.args...)
		msg := m.err.String()
		if code != 1 || !strings.HasPrefix(msg, "kxboot: ") || !strings.Contains(msg, tt.want) || strings.Count(msg, "\n") != 1 {
			t.Errorf("kxboot %v: exit %d, stderr %q; want one line with %q", tt.args, code, msg, tt.want)
		}
	}
	if len(m.sys.Calls) != 0 {
		t.Errorf("bad input reached the kernel: %v", m.sys.Calls)
	}
	m.write("/etc/default/kxboot", []byte("KERNAL=/boot/x\n"))
	if code := m.run("load"); code != 1 || !strings.Contains(m.err.String(), "/etc/default/kxboot:1") || !strings.Contains(m.err.String(), "KERNEL") {
		t.Errorf("typo in config: exit %d, %q", code, m.err)
	}
}

func TestExecNeedsForceAndALoadedKernel(t *testing.T) {
	m := newMachine(t)
	if code := m.run("exec"); code != 2 || !strings.Contains(m.err.String(), "skips a clean shutdown") {
		t.Errorf("exec without --force: exit %d, %q", code, m.err)
	}
	if code := m.run("exec", "--force"); code != 1 || !strings.Contains(m.err.String(), "no kernel is loaded") {
		t.Errorf("exec with nothing loaded: exit %d, %q", code, m.err)
	}
	m.mustRun("load")
	m.mustRun("exec", "--force")
	m.mustRun("unload")
	if want := []string{"file_load", "reboot_kexec", "unload"}; !slices.Equal(m.sys.Calls, want) {
		t.Errorf("calls = %v; want %v", m.sys.Calls, want)
	}
}

func TestStatus(t *testing.T) {
	m := newMachine(t)
	out := m.mustRun("status")
	for _, want := range []string{"kernel:     " + running, "via kxboot: no", "loaded:     no", "config:     none", "next load:  kernel:  /boot/vmlinuz-" + newest} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// After a hop: the new kernel runs with the marker on its command line.
	m.write("/proc/cmdline", []byte("root=/dev/vda1 ro quiet kxboot.chained=1\n"))
	m.write("/proc/sys/kernel/osrelease", []byte(newest+"\n"))
	out = m.mustRun("status")
	if !strings.Contains(out, "via kxboot: yes (kxboot.chained=1 is on the command line)") || !strings.Contains(out, "kernel:     "+newest) {
		t.Errorf("status after a hop:\n%s", out)
	}
	m.mustRun("load")
	var r struct {
		Release   string `json:"release"`
		ViaKxboot bool   `json:"via_kxboot"`
		Loaded    bool   `json:"loaded"`
		Next      struct {
			Kernel string `json:"kernel"`
		} `json:"next"`
	}
	if err := json.Unmarshal([]byte(m.mustRun("status", "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if r.Release != newest || !r.ViaKxboot || !r.Loaded || r.Next.Kernel != "/boot/vmlinuz-"+newest {
		t.Errorf("status --json = %+v", r)
	}
	// A legacy marker counts too.
	m.write("/proc/cmdline", []byte("root=/dev/vda1 kexeced ro\n"))
	if out := m.mustRun("status"); !strings.Contains(out, "via kxboot: yes (kexeced") {
		t.Errorf("legacy marker:\n%s", out)
	}
	m.write("/etc/default/kxboot", []byte("KERNEL=\"/boot/x\n"))
	if out := m.mustRun("status"); !strings.Contains(out, "config:     broken: /etc/default/kxboot:1") {
		t.Errorf("broken config:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	m := newMachine(t)
	if out := m.mustRun("version"); !strings.HasPrefix(out, "kxboot ") {
		t.Errorf("version: %q", out)
	}
}

// runs records the distribution's commands kxboot runs.
type runs struct{ ran []string }

func (r *runs) Run(name string, args ...string) error {
	r.ran = append(r.ran, strings.Join(append([]string{name}, args...), " "))
	return nil
}

// TestReboot: kxboot reboot asks the running init for the reboot (its own
// command), after recording its intent for this boot; --firmware sets the
// one-shot flag and unloads; without the fast reboot installed it says so.
func TestReboot(t *testing.T) {
	m := newMachine(t)
	r := &runs{}
	m.env.Runner = r
	m.write("/proc/sys/kernel/random/boot_id", []byte("boot-7\n"))
	if code := m.run("reboot"); code != 1 || !strings.Contains(m.err.String(), "the fast reboot is not installed") || len(r.ran) != 0 {
		t.Fatalf("reboot without the install: exit %d, %q, ran %q", code, m.err, r.ran)
	}
	m.write(journal.Path(journal.JobReboot), []byte(`{"job":"reboot","mode":"openrc","steps":[]}`))
	m.write("/run/openrc/softlevel", []byte("default"))
	os.MkdirAll(m.fs.Path("/proc/1"), 0o755)
	os.Symlink("/usr/sbin/openrc-init", m.fs.Path("/proc/1/exe"))
	out := m.mustRun("reboot")
	if !strings.Contains(out, "kxboot: rebooting through kexec, booting /boot/vmlinuz-"+newest) || strings.Join(r.ran, "; ") != "openrc-shutdown -r now" {
		t.Errorf("reboot said %q and ran %q", out, r.ran)
	}
	if b, err := m.fs.ReadFile(initsys.RebootIntent); err != nil || string(b) != "boot-7\n" {
		t.Errorf("the intent: %q, %v", b, err)
	}
	r.ran = nil
	m.mustRun("load")
	out = m.mustRun("reboot", "--firmware")
	if !strings.Contains(out, "through the firmware, once") || strings.Join(r.ran, "; ") != "openrc-shutdown -r now" || !m.fs.Exists(fastreboot.FirmwareFlag) {
		t.Errorf("reboot --firmware said %q and ran %q", out, r.ran)
	}
	if l, _ := m.env.Engine.Loaded(); l {
		t.Error("reboot --firmware left a kernel loaded")
	}
}

// TestUsageErrors: every mistake in the command line exits 2 with one
// sentence that starts "kxboot", says what is wrong and how to fix it.
func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"lod"}, `unknown command "lod" (did you mean load?); run kxboot help for the list`},
		{[]string{"statsu"}, `(did you mean status?)`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"; run kxboot help`},
		{[]string{"load", "--bogus"}, "kxboot load: unknown flag --bogus; run kxboot load --help for its flags"},
		{[]string{"load", "--kernl", "/boot/x"}, "unknown flag --kernl (did you mean --kernel?)"},
		{[]string{"load", "--kernel"}, "--kernel needs a value (--kernel VALUE)"},
		{[]string{"load", "--syscall", "bogus"}, `unknown syscall "bogus": use auto, file (kexec_file_load) or load (kexec_load)`},
		{[]string{"load", "--append", "x", "--cmdline", "y"}, "--append and --cmdline do not go together"},
		{[]string{"load", "--no-initrd", "--initrd", "/x"}, "--no-initrd and --initrd do not go together"},
		{[]string{"load", "extra"}, `unexpected argument "extra"`},
		{[]string{"history", "--n", "-3"}, "--n -3: give a number of entries"},
		{[]string{"history", "--n", "x"}, `--n does not take "x"`},
		{[]string{"load", "--dry-run=maybe"}, "--dry-run is a switch and takes no value"},
	} {
		m := newMachine(t)
		code := m.run(tt.args...)
		errOut := m.err.String()
		if code != 2 || !strings.Contains(errOut, tt.want) || !strings.HasPrefix(errOut, "kxboot") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("kxboot %s: exit %d, stderr %q; want exit 2 and one line with %q", strings.Join(tt.args, " "), code, errOut, tt.want)
		}
		if m.out.Len() != 0 {
			t.Errorf("kxboot %s: stdout %q; want nothing", strings.Join(tt.args, " "), m.out)
		}
	}
}

// TestDoctorKernel: doctor --kernel checks the kernel named, as the
// packages' kernel hook runs it, and says when that kernel has no kexec.
func TestDoctorKernel(t *testing.T) {
	m := newMachine(t)
	const noKexec = "6.1.0-99-custom"
	m.write("/boot/vmlinuz-"+noKexec, testimg.BzImage(32768, noKexec))
	m.write("/boot/initrd.img-"+noKexec, []byte("initrd"))
	m.write("/boot/config-"+noKexec, []byte("# CONFIG_KEXEC is not set\n# CONFIG_KEXEC_FILE is not set\n"))
	m.run("doctor", "--kernel", "/boot/vmlinuz-"+noKexec)
	out := m.out.String()
	if !strings.Contains(out, "/boot/vmlinuz-"+noKexec+" is an x86 bzImage") || !strings.Contains(out, noKexec+" was built without kexec") {
		t.Errorf("doctor --kernel:\n%s", out)
	}
	m.run("doctor", "--kernel", "/boot/vmlinuz-"+newest)
	if out := m.out.String(); !strings.Contains(out, newest+" has kexec") {
		t.Errorf("doctor --kernel (a kernel with kexec):\n%s", out)
	}
}
