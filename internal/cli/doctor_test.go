package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDoctorHealthy(t *testing.T) {
	m := newMachine(t)
	out := m.mustRun("doctor")
	for _, want := range []string{
		"ok    root", "ok    kexec support       kexec_load and kexec_file_load are built in (asked the running kernel)",
		"ok    kexec_load_disabled", "ok    lockdown", "ok    secure boot", "ok    config",
		"ok    kernel              /boot/vmlinuz-" + newest + " is an x86 bzImage " + newest,
		"ok    initrd", "ok    root=               root=UUID=" + rootUUID + " is /dev/vda1", "ok    memory",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor lacks %q:\n%s", want, out)
		}
	}
}

// Each broken machine must fail with the reason named, and exit 1.
func TestDoctorNamesTheReason(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(m *machine)
		want   string
	}{
		{"not root", func(m *machine) { m.uid = 1000 }, "fail  root                running as uid 1000"},
		{"load disabled", func(m *machine) { m.write("/proc/sys/kernel/kexec_load_disabled", []byte("1\n")) }, "fail  kexec_load_disabled kernel.kexec_load_disabled is 1"},
		{"no kexec", func(m *machine) { m.sys.ProbeFile, m.sys.ProbeLoad = unix.ENOSYS, unix.ENOSYS }, "built without kexec (neither CONFIG_KEXEC nor CONFIG_KEXEC_FILE, asked the running kernel)"},
		// The kernel does not answer the probe (kexec_load_disabled, an
		// LSM): its build options say.
		{"no kexec in the config", func(m *machine) {
			m.sys.ProbeFile, m.sys.ProbeLoad = unix.EPERM, unix.EPERM
			m.write("/boot/config-"+running, []byte("# CONFIG_KEXEC is not set\n"))
		}, "built without kexec (neither CONFIG_KEXEC nor CONFIG_KEXEC_FILE, /boot/config-" + running + ")"},
		{"lockdown without file load", func(m *machine) {
			m.sys.ProbeFile = unix.ENOSYS
			m.write("/sys/kernel/security/lockdown", []byte("none [integrity] confidentiality\n"))
		}, "forbids kexec_load"},
		{"missing kernel", func(m *machine) { m.write("/etc/default/kxboot", []byte("KERNEL=/boot/vmlinuz-9\n")) }, "fail  kernel              kernel /boot/vmlinuz-9 does not exist"},
		{"text kernel", func(m *machine) {
			m.write("/boot/README", []byte("hello"))
			m.write("/etc/default/kxboot", []byte("KERNEL=/boot/README\n"))
		}, "not a bootable kernel image"},
		{"writable kernel", func(m *machine) { os.Chmod(m.fs.Path("/boot/vmlinuz-"+newest), 0o666) }, "writable by group or others"},
		{"wrong root", func(m *machine) { m.write("/proc/cmdline", []byte("root=UUID=0000 ro\n")) }, "fail  root=               root=UUID=0000"},
		{"no memory", func(m *machine) { m.write("/proc/meminfo", []byte("MemAvailable: 10 kB\n")) }, "fail  memory"},
		{"broken config", func(m *machine) { m.write("/etc/default/kxboot", []byte("this is not shell\n")) }, "fail  config              /etc/default/kxboot:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			tt.break_(m)
			code := m.run("doctor")
			if code != 1 || !strings.Contains(m.out.String(), tt.want) {
				t.Errorf("exit %d; want 1 and %q in:\n%s%s", code, tt.want, m.out, m.err)
			}
		})
	}
}

func TestDoctorWarnings(t *testing.T) {
	m := newMachine(t)
	m.write("/sys/kernel/security/lockdown", []byte("none [integrity] confidentiality\n"))
	m.write("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0a9ce0d0b8c", []byte{6, 0, 0, 0, 1})
	out := m.mustRun("doctor") // warnings only: exit 0
	for _, want := range []string{"warn  lockdown            the kernel is in lockdown (integrity)", "warn  secure boot         Secure Boot is on", "fix: "} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor lacks %q:\n%s", want, out)
		}
	}
	var checks []struct{ Name, Status, Message string }
	if err := json.Unmarshal([]byte(m.mustRun("doctor", "--json")), &checks); err != nil || len(checks) < 8 {
		t.Fatalf("doctor --json: %v, %d checks", err, len(checks))
	}
}
