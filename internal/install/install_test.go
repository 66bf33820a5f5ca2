package install

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/initsys"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
	"github.com/kxboot/kxboot/internal/tries"
)

// fakeRunner does what dpkg-divert and update-rc.d (insserv) do to the tree, so that
// the test can compare trees; failAt makes one command fail.
type fakeRunner struct {
	fs     rootfs.FS
	ran    []string
	failAt string
}

func (f *fakeRunner) Run(name string, args ...string) error {
	line := name + " " + strings.Join(args, " ")
	f.ran = append(f.ran, line)
	if f.failAt != "" && strings.Contains(line, f.failAt) {
		return fmt.Errorf("%s: exit status 2", line)
	}
	if name == "update-rc.d" && args[1] == "defaults" && !f.fs.Exists("/etc/init.d/"+args[0]) {
		return fmt.Errorf("update-rc.d: error: unable to read /etc/init.d/%s", args[0])
	}
	switch {
	case name == "dpkg-divert" && args[len(args)-2] == "--add":
		return os.Rename(f.fs.Path(args[len(args)-1]), f.fs.Path(args[3]))
	case name == "update-rc.d" && args[0] == "kxboot-chain" && args[1] == "defaults":
		// insserv: the new script goes in, and a later one is renumbered.
		os.Rename(f.fs.Path("/etc/rcS.d/S04checkroot.sh"), f.fs.Path("/etc/rcS.d/S05checkroot.sh"))
		os.WriteFile(f.fs.Path("/etc/init.d/.depend.boot"), []byte("kxboot-chain: mountkernfs\ncheckroot.sh: kxboot-chain\n"), 0o644)
		return os.Symlink("../init.d/kxboot-chain", f.fs.Path("/etc/rcS.d/S04kxboot-chain"))
	case name == "update-rc.d" && args[1] == "kxboot-chain" && args[2] == "remove":
		// insserv: the script goes, the others keep their new numbers.
		os.Remove(f.fs.Path("/etc/rcS.d/S04kxboot-chain"))
		return os.WriteFile(f.fs.Path("/etc/init.d/.depend.boot"), []byte("checkroot.sh: mountkernfs\n"), 0o644)
	case name == "update-rc.d" && args[0] == "kxboot-confirm" && args[1] == "defaults":
		// insserv: last ($all) in the multi-user runlevels, renumbering
		// the script before it.
		for _, rl := range "2345" {
			d := "/etc/rc" + string(rl) + ".d/"
			os.Rename(f.fs.Path(d+"S01rsyslog"), f.fs.Path(d+"S02rsyslog"))
			if err := os.Symlink("../init.d/kxboot-confirm", f.fs.Path(d+"S03kxboot-confirm")); err != nil {
				return err
			}
		}
		return os.WriteFile(f.fs.Path("/etc/init.d/.depend.start"), []byte("TARGETS = rsyslog kxboot-confirm\nkxboot-confirm: rsyslog\n"), 0o644)
	case name == "update-rc.d" && args[1] == "kxboot-confirm" && args[2] == "remove":
		for _, rl := range "2345" {
			os.Remove(f.fs.Path("/etc/rc" + string(rl) + ".d/S03kxboot-confirm"))
		}
		return os.WriteFile(f.fs.Path("/etc/init.d/.depend.start"), []byte("TARGETS = rsyslog\n"), 0o644)
	case name == "systemctl" || name == "rc-service" || name == "kill":
		return nil
	case name == "update-rc.d" && strings.HasPrefix(args[0], "kxboot-reboot") && args[1] == "defaults":
		// insserv: K links in runlevel 6 only.
		n := map[string]string{"kxboot-reboot": "K01", "kxboot-reboot-jump": "K05"}[args[0]]
		return os.Symlink("../init.d/"+args[0], f.fs.Path("/etc/rc6.d/"+n+args[0]))
	case name == "update-rc.d" && strings.HasPrefix(args[1], "kxboot-reboot") && args[2] == "remove":
		links, _ := f.fs.Glob("/etc/rc6.d/K0?" + args[1])
		for _, l := range links {
			os.Remove(f.fs.Path(l))
		}
		return nil
	case name == "dpkg-divert" && args[len(args)-2] == "--remove":
		if _, err := os.Lstat(f.fs.Path(args[3])); err != nil {
			return nil // "No diversion ..., none removed"
		}
		return os.Rename(f.fs.Path(args[3]), f.fs.Path(args[len(args)-1]))
	}
	return fmt.Errorf("unexpected command %s", line)
}

// initFiles are what each init system adds to a Debian machine; "->"
// starts a link's target.
var initFiles = map[string]map[string]string{
	"systemd": {
		"/lib/systemd/systemd":                     "systemd",
		"/lib/systemd/system/boot-complete.target": "[Unit]\nRequires=sysinit.target\nAfter=sysinit.target\n",
		"/run/systemd/system/.keep":                "",
		"/sbin/init":                               "->../lib/systemd/systemd",
	},
	"sysvinit": {"/sbin/init": "sysvinit"},
	"openrc": {
		"/sbin/init":            "sysvinit",
		"/sbin/openrc-run":      "openrc-run",
		"/run/openrc/softlevel": "default",
	},
}

// debian is a Debian 12 machine; init is "systemd", "sysvinit" or "openrc".
func debian(t *testing.T, init string) (rootfs.FS, *fakeRunner) {
	files := map[string]string{
		"/var/lib/dpkg/status":               "Package: dpkg\n",
		"/usr/bin/dpkg-divert":               "#!",
		"/usr/local/sbin/kxboot":             "kxboot binary",
		"/etc/hostname":                      "droplet\n",
		"/etc/default/grub":                  "GRUB_TIMEOUT=5\n",
		"/boot/vmlinuz-6.1.0-56-cloud-amd64": "B",
		"/proc/self/mounts":                  "/dev/vda1 / ext4 rw 0 0\n",
		"/etc/init.d/.depend.boot":           "checkroot.sh:\n",
		"/etc/init.d/.depend.start":          "TARGETS = rsyslog\nrsyslog:\n",
		"/etc/init.d/README":                 "init scripts\n",
		"/etc/systemd/system/README":         "units\n",
	}
	links := map[string]string{}
	for p, v := range initFiles[init] {
		if t, ok := strings.CutPrefix(v, "->"); ok {
			links[p] = t
		} else {
			files[p] = v
		}
	}
	links["/etc/rcS.d/S04checkroot.sh"] = "../init.d/checkroot.sh"
	links["/etc/rc6.d/K02umountroot"] = "../init.d/umountroot"
	for _, rl := range "2345" {
		links["/etc/rc"+string(rl)+".d/S01rsyslog"] = "../init.d/rsyslog"
	}
	fsys := rootfstest.Tree(t, files, links)
	os.Chmod(fsys.Path("/usr/local/sbin/kxboot"), 0o755)
	return fsys, &fakeRunner{fs: fsys}
}

// snapshot describes every entry of the tree outside /proc and /run: type,
// mode, link target or content hash.
func snapshot(t *testing.T, fsys rootfs.FS) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(fsys.Root, func(p string, d fs.DirEntry, err error) error {
		rel := fsys.Unpath(p)
		if rel == "/proc" || rel == "/run" {
			return filepath.SkipDir
		}
		info, _ := os.Lstat(p)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case info.IsDir():
			out[rel] = fmt.Sprintf("dir %v", info.Mode().Perm())
		default:
			b, _ := os.ReadFile(p)
			out[rel] = fmt.Sprintf("file %v %x", info.Mode().Perm(), sha256.Sum256(b))
		}
		return nil
	})
	return out
}

func diff(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	return strings.Join(d, "\n")
}

func machineFor(fsys rootfs.FS, r journal.Runner, report *[]string) Machine {
	return Machine{FS: fsys, Run: r, Report: func(f string, a ...any) { *report = append(*report, fmt.Sprintf(f, a...)) }}
}

// The confirmation service each running init gets, in every mode.
var (
	confirmSystemd = map[string]string{
		initsys.ConfirmUnit: "file -rw-r--r--",
		initsys.ConfirmWants + "/kxboot-confirm.service": "link " + initsys.ConfirmUnit,
	}
	confirmSysvinit = map[string]string{
		initsys.ConfirmScript:          "file -rwxr-xr-x",
		"/etc/rc2.d/S03kxboot-confirm": "link ../init.d/kxboot-confirm",
		"/etc/rc5.d/S03kxboot-confirm": "link ../init.d/kxboot-confirm",
		"/etc/rc2.d/S02rsyslog":        "link ../init.d/rsyslog",
		"/etc/rc2.d/S01rsyslog":        "",
		initsys.ConfirmUnit:            "",
	}
	confirmOpenRC = map[string]string{
		initsys.ConfirmScript: "file -rwxr-xr-x",
		initsys.OpenRCConfirm: "link " + initsys.ConfirmScript,
	}
	rcAddsConfirm    = []string{"update-rc.d kxboot-confirm defaults", "update-rc.d -f kxboot-confirm remove"}
	rcAddsBoth       = []string{"update-rc.d kxboot-confirm defaults", "update-rc.d kxboot-chain defaults", "update-rc.d -f kxboot-chain remove", "update-rc.d -f kxboot-confirm remove"}
	rcAddsChainAlone = []string{"update-rc.d kxboot-chain defaults", "update-rc.d -f kxboot-chain remove"}
)

// with is want with more entries.
func with(want map[string]string, more map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range want {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

func TestInstallUninstallRestoresExactly(t *testing.T) {
	tests := []struct {
		init string
		mode initsys.Name
		// entries the install must create ("file" and its mode: a file
		// with that mode; "": none)
		want map[string]string
		rc   []string // the update-rc.d runs of install and uninstall, in order
	}{
		{"systemd", initsys.Auto, with(confirmSystemd, map[string]string{"/sbin/init": "link /usr/local/sbin/kxboot", "/sbin/init.kxboot-orig": "link ../lib/systemd/systemd", initsys.ConfirmScript: ""}), nil},
		{"sysvinit", initsys.Wrapper, with(confirmSysvinit, map[string]string{"/sbin/init": "link /usr/local/sbin/kxboot"}), rcAddsConfirm},
		{"openrc", initsys.Wrapper, with(confirmOpenRC, map[string]string{"/sbin/init": "link /usr/local/sbin/kxboot", initsys.ConfirmUnit: ""}), nil},
		{"systemd", initsys.Systemd, with(confirmSystemd, map[string]string{"/etc/systemd/system/sysinit.target.wants/kxboot-chain.service": "link " + initsys.SystemdUnit}), nil},
		{"sysvinit", initsys.Sysvinit, with(confirmSysvinit, map[string]string{"/etc/rcS.d/S04kxboot-chain": "link ../init.d/kxboot-chain", "/etc/rcS.d/S05checkroot.sh": "link ../init.d/checkroot.sh", "/etc/rcS.d/S04checkroot.sh": "", "/etc/init.d/kxboot-chain": "file -rwxr-xr-x"}), rcAddsBoth},
		{"systemd", initsys.Sysvinit, with(confirmSystemd, map[string]string{"/etc/rcS.d/S04kxboot-chain": "link ../init.d/kxboot-chain", initsys.ConfirmScript: ""}), rcAddsChainAlone},
		{"openrc", initsys.OpenRC, with(confirmOpenRC, map[string]string{initsys.OpenRCLink: "link " + initsys.ChainScript}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.init+"/"+string(tt.mode), func(t *testing.T) {
			fsys, run := debian(t, tt.init)
			before := snapshot(t, fsys)
			var out []string
			m := machineFor(fsys, run, &out)
			if err := m.Chain(Options{Mode: tt.mode, Binary: "/usr/local/sbin/kxboot"}); err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, fsys)
			for p, want := range tt.want {
				got := after[p]
				if strings.HasPrefix(want, "file") && !strings.HasPrefix(got, want) || !strings.HasPrefix(want, "file") && got != want {
					t.Errorf("%s is %q; want %q", p, got, want)
				}
			}
			// One snapshot of the boot order, before the first update-rc.d.
			snaps, first := 0, -1
			for i, s := range mustRecord(t, fsys).Steps {
				if s.Kind == "rcsnap" {
					snaps++
					if first >= 0 {
						t.Errorf("the boot order is saved after update-rc.d ran")
					}
				}
				if s.Kind == "command" && s.Do[0] == "update-rc.d" && first < 0 {
					first = i
				}
			}
			if want := min(len(tt.rc), 1); snaps != want {
				t.Errorf("the record saves the boot order %d times; want %d", snaps, want)
			}
			if !strings.HasPrefix(after[config.Path], "file -rw-r--r--") || !strings.HasPrefix(after[journal.Path(journal.JobChain)], "file") {
				t.Errorf("config %q, record %q", after[config.Path], after[journal.Path(journal.JobChain)])
			}
			if c, err := config.Load(fsys); err != nil || !c.Enabled || c.AbortSeconds != config.DefaultAbortSeconds {
				t.Errorf("the written config reads back as %+v, %v", c, err)
			}
			if !strings.Contains(strings.Join(out, "\n"), "Undo it all with: kxboot uninstall") {
				t.Errorf("install said: %q", out)
			}

			// Installing twice changes nothing.
			out = nil
			if err := m.Chain(Options{Mode: tt.mode, Binary: "/usr/local/sbin/kxboot"}); err != nil {
				t.Fatal(err)
			}
			if d := diff(after, snapshot(t, fsys)); d != "" {
				t.Errorf("a second install changed:\n%s", d)
			}
			if !strings.Contains(out[0], "already installed") {
				t.Errorf("second install said %q", out)
			}

			// The boots since left a try record, a history and a
			// write cut short by a power cut: they go with the install.
			st := tries.Store{FS: fsys}
			st.Write(tries.Hop(tries.Record{}, tries.Boot{Kernel: "/boot/k", ID: "id"}, tries.Configured, "", time.Now(), "b"))
			st.Append(tries.Entry{Event: "hop", Try: 1})
			rootfstest.Write(t, fsys, tries.Dir+"/.tries.tmp42", []byte("half"))
			if err := m.Uninstall(); err != nil {
				t.Fatal(err)
			}
			if d := diff(before, snapshot(t, fsys)); d != "" {
				t.Errorf("uninstall did not restore the tree:\n%s", d)
			}
			var rc []string
			for _, r := range run.ran {
				if strings.HasPrefix(r, "update-rc.d") {
					rc = append(rc, r)
				}
			}
			if strings.Join(rc, "\n") != strings.Join(tt.rc, "\n") {
				t.Errorf("update-rc.d ran %q; want %q", rc, tt.rc)
			}
			out = nil
			if err := m.Uninstall(); err != nil || !strings.Contains(out[0], "not installed; nothing to undo") {
				t.Errorf("second uninstall: %v, %q", err, out)
			}
		})
	}
}

func TestCrashedInstallIsUndone(t *testing.T) {
	for _, failAt := range []string{"update-rc.d kxboot-confirm defaults", "update-rc.d kxboot-chain defaults"} {
		t.Run(failAt, func(t *testing.T) {
			fsys, run := debian(t, "sysvinit")
			before := snapshot(t, fsys)
			run.failAt = failAt
			var out []string
			m := machineFor(fsys, run, &out)
			err := m.Chain(Options{Mode: initsys.Sysvinit, Binary: "/usr/local/sbin/kxboot"})
			if err == nil || !strings.Contains(err.Error(), "undone by kxboot uninstall") {
				t.Fatalf("err = %v", err)
			}
			run.failAt = ""
			if err := m.Uninstall(); err != nil {
				t.Fatal(err)
			}
			if d := diff(before, snapshot(t, fsys)); d != "" {
				t.Errorf("uninstall after a failed install left:\n%s", d)
			}
		})
	}
}

func TestUnits(t *testing.T) {
	fsys, run := debian(t, "systemd")
	var out []string
	if err := machineFor(fsys, run, &out).Chain(Options{Mode: initsys.Systemd, Binary: "/usr/local/sbin/kxboot"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		unit string
		want []string // lines it must hold, under their section
	}{
		{initsys.SystemdUnit, []string{
			"[Unit]", "RequiresMountsFor=/boot /var/lib/kxboot",
			"[Service]", "Type=oneshot", "ExecStart=/usr/local/sbin/kxboot chain", "KillMode=process",
			"[Install]", "WantedBy=sysinit.target"}},
		{initsys.ConfirmUnit, []string{
			"[Unit]", "Requires=boot-complete.target", "After=boot-complete.target multi-user.target",
			"[Service]", "Type=exec", "ExecStart=/usr/local/sbin/kxboot mark-good", "StandardOutput=journal+console",
			"[Install]", "WantedBy=multi-user.target"}},
	} {
		b, err := fsys.ReadFile(tt.unit)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		i := 0
		for _, l := range lines {
			if i < len(tt.want) && l == tt.want[i] {
				i++
			}
		}
		if i < len(tt.want) {
			t.Errorf("%s lacks %q (or has it in another section):\n%s", tt.unit, tt.want[i], b)
		}
		// The boot must not wait minutes for the health check.
		if strings.Contains(string(b), "DefaultDependencies=no") != (tt.unit == initsys.SystemdUnit) {
			t.Errorf("%s: DefaultDependencies wrong:\n%s", tt.unit, b)
		}
	}
	if b, _ := fsys.ReadFile(initsys.ConfirmUnit); strings.Contains(string(b), "Before=") || strings.Contains(string(b), "Type=oneshot") {
		t.Errorf("%s would hold the boot up:\n%s", initsys.ConfirmUnit, b)
	}

	// A systemd older than 240 has no boot-complete.target to require.
	fsys, run = debian(t, "systemd")
	os.Remove(fsys.Path("/lib/systemd/system/boot-complete.target"))
	if err := machineFor(fsys, run, &out).Chain(Options{Mode: initsys.Systemd, Binary: "/usr/local/sbin/kxboot"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := fsys.ReadFile(initsys.ConfirmUnit); strings.Contains(string(b), "boot-complete") || !strings.Contains(string(b), "\nAfter=multi-user.target\n") {
		t.Errorf("%s without boot-complete.target:\n%s", initsys.ConfirmUnit, b)
	}
}

func TestConfirmScripts(t *testing.T) {
	for _, tt := range []struct {
		init string
		want []string
	}{
		{"sysvinit", []string{"# Provides:          kxboot-confirm", "# Required-Start:    $all", "# Default-Start:     2 3 4 5",
			"\tsetsid /usr/local/sbin/kxboot mark-good </dev/null >/dev/console 2>&1 &"}},
		{"openrc", []string{"#!/sbin/openrc-run", "\tafter *",
			"\tsetsid /usr/local/sbin/kxboot mark-good </dev/null >/dev/console 2>&1 &"}},
	} {
		t.Run(tt.init, func(t *testing.T) {
			fsys, run := debian(t, tt.init)
			var out []string
			if err := machineFor(fsys, run, &out).Chain(Options{Mode: initsys.Wrapper, Binary: "/usr/local/sbin/kxboot"}); err != nil {
				t.Fatal(err)
			}
			b, err := fsys.ReadFile(initsys.ConfirmScript)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains("\n"+string(b)+"\n", "\n"+w+"\n") {
					t.Errorf("%s lacks the line %q:\n%s", initsys.ConfirmScript, w, b)
				}
			}
		})
	}
}

func TestSeparateMounts(t *testing.T) {
	tests := []struct {
		init, mount string
		mode        initsys.Name
		want        map[string]string // entries the install must create
		wantErr     string
	}{
		{"sysvinit", "/var", initsys.Sysvinit, map[string]string{initsys.ChainScript: "# Required-Start:    $local_fs"}, ""},
		{"sysvinit", "/var/lib", initsys.Sysvinit, map[string]string{initsys.ChainScript: "# Required-Start:    $local_fs"}, ""},
		{"sysvinit", "/boot", initsys.Sysvinit, map[string]string{initsys.ChainScript: "# Required-Start:    $local_fs"}, ""},
		{"sysvinit", "/home", initsys.Sysvinit, map[string]string{initsys.ChainScript: "# Required-Start:    mountkernfs"}, ""},
		{"openrc", "/var", initsys.OpenRC, map[string]string{initsys.OpenRCBoot: "link " + initsys.ChainScript, initsys.OpenRCLink: "", initsys.ChainScript: "\tafter localmount mountall.sh"}, ""},
		{"openrc", "/home", initsys.OpenRC, map[string]string{initsys.OpenRCLink: "link " + initsys.ChainScript, initsys.OpenRCBoot: ""}, ""},
		{"systemd", "/var", initsys.Wrapper, nil, "/var is a separate mount, and the wrapper runs before anything but / is mounted"},
		{"sysvinit", "/var/lib", initsys.Wrapper, nil, "/var/lib is a separate mount"},
		{"systemd", "/boot", initsys.Wrapper, map[string]string{"/sbin/init": "link /usr/local/sbin/kxboot"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.init+"/"+string(tt.mode)+tt.mount, func(t *testing.T) {
			fsys, run := debian(t, tt.init)
			rootfstest.Write(t, fsys, "/proc/self/mounts", []byte("/dev/vda1 / ext4 rw 0 0\n/dev/vdb1 "+tt.mount+" ext4 rw 0 0\n"))
			before := snapshot(t, fsys)
			var out []string
			m := machineFor(fsys, run, &out)
			err := m.Chain(Options{Mode: tt.mode, Binary: "/usr/local/sbin/kxboot"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "choose --mode systemd, sysvinit or openrc") {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				if d := diff(before, snapshot(t, fsys)); d != "" {
					t.Errorf("a refused install changed:\n%s", d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, fsys)
			for p, want := range tt.want {
				switch {
				case strings.HasPrefix(want, "link") || want == "":
					if after[p] != want {
						t.Errorf("%s is %q; want %q", p, after[p], want)
					}
				default:
					if b, _ := fsys.ReadFile(p); !strings.Contains(string(b), want+"\n") {
						t.Errorf("%s lacks %q:\n%s", p, want, b)
					}
				}
			}
			if err := m.Uninstall(); err != nil {
				t.Fatal(err)
			}
			if d := diff(before, snapshot(t, fsys)); d != "" {
				t.Errorf("uninstall did not restore the tree:\n%s", d)
			}
		})
	}
}

func TestUninstallExplainsWhatItFinds(t *testing.T) {
	fsys, run := debian(t, "systemd")
	var out []string
	m := machineFor(fsys, run, &out)
	if err := m.Chain(Options{Mode: initsys.Wrapper, Binary: "/usr/local/sbin/kxboot"}); err != nil {
		t.Fatal(err)
	}
	// A package upgrade without dpkg-divert's protection put its own init back.
	os.Remove(fsys.Path(initsys.SbinInit))
	os.Symlink("../lib/systemd/systemd", fsys.Path(initsys.SbinInit))
	if ok, why := initsys.WrapperIntact(fsys, mustRecord(t, fsys)); ok || !strings.Contains(why, "no longer leads to /usr/local/sbin/kxboot") {
		t.Errorf("WrapperIntact = %v, %q", ok, why)
	}
	err := m.Uninstall()
	if err == nil || !strings.Contains(err.Error(), "/sbin/init is no longer kxboot's link") {
		t.Fatalf("err = %v", err)
	}
	// Without a record but with traces: say so, touch nothing.
	os.Remove(fsys.Path(journal.Path(journal.JobChain)))
	err = m.Uninstall()
	if err == nil || !strings.Contains(err.Error(), "no install record") || !strings.Contains(err.Error(), "/sbin/init.kxboot-orig exists") || !strings.Contains(err.Error(), initsys.ConfirmUnit+" exists") {
		t.Errorf("err = %v", err)
	}
}

func mustRecord(t *testing.T, fsys rootfs.FS) *journal.Record {
	r, err := journal.Read(fsys, journal.JobChain)
	if err != nil || r == nil {
		t.Fatalf("record: %v, %v", r, err)
	}
	return r
}

func TestEditedConfigIsKept(t *testing.T) {
	fsys, run := debian(t, "systemd")
	var out []string
	m := machineFor(fsys, run, &out)
	if err := m.Chain(Options{Mode: initsys.Systemd, Binary: "/usr/local/sbin/kxboot", Kernel: "/boot/vmlinuz-6.1.0-56-cloud-amd64", Given: true}); err != nil {
		t.Fatal(err)
	}
	c, _ := config.Load(fsys)
	if c.Kernel != "/boot/vmlinuz-6.1.0-56-cloud-amd64" {
		t.Errorf("config kernel %q", c.Kernel)
	}
	rootfstest.Write(t, fsys, config.Path, []byte("KERNEL=/boot/mine\n"))
	if err := m.Uninstall(); err != nil {
		t.Fatal(err)
	}
	if b, err := fsys.ReadFile(config.Path + ".kxboot-saved"); err != nil || string(b) != "KERNEL=/boot/mine\n" {
		t.Errorf("the edited config was not kept: %q, %v", b, err)
	}
	if fsys.Exists(config.Path) {
		t.Error("the config is still in place")
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(fsys rootfs.FS)
		o     Options
		want  string
	}{
		{"no binary", nil, Options{Mode: initsys.Systemd, Binary: "/usr/sbin/nope"}, "is not on this machine"},
		{"writable binary", func(fsys rootfs.FS) { os.Chmod(fsys.Path("/usr/local/sbin/kxboot"), 0o777) }, Options{Mode: initsys.Systemd, Binary: "/usr/local/sbin/kxboot"}, "writable by group or others"},
		{"config exists and flags", func(fsys rootfs.FS) { os.WriteFile(fsys.Path(config.Path), []byte(""), 0o644) },
			Options{Mode: initsys.Systemd, Binary: "/usr/local/sbin/kxboot", Kernel: "/x", Given: true}, "edit KERNEL, INITRD and APPEND there"},
		{"openrc missing", nil, Options{Mode: initsys.OpenRC, Binary: "/usr/local/sbin/kxboot"}, "OpenRC is not installed"},
		{"left-over original", func(fsys rootfs.FS) { os.WriteFile(fsys.Path("/sbin/init.kxboot-orig"), nil, 0o755) },
			Options{Mode: initsys.Wrapper, Binary: "/usr/local/sbin/kxboot"}, "an earlier wrapper install was not undone"},
		{"no init to confirm under", func(fsys rootfs.FS) { os.RemoveAll(fsys.Path("/run/systemd")); os.RemoveAll(fsys.Path("/etc/init.d")) },
			Options{Mode: initsys.Systemd, Binary: "/usr/local/sbin/kxboot"}, "kxboot can confirm boots only under systemd, sysvinit or OpenRC"},
		{"confirm unit exists", func(fsys rootfs.FS) { os.WriteFile(fsys.Path(initsys.ConfirmUnit), []byte("mine\n"), 0o644) },
			Options{Mode: initsys.Systemd, Binary: "/usr/local/sbin/kxboot"}, initsys.ConfirmUnit + " exists already; kxboot will not overwrite it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys, run := debian(t, "systemd")
			os.MkdirAll(fsys.Path("/etc/default"), 0o755)
			if tt.setup != nil {
				tt.setup(fsys)
			}
			before := snapshot(t, fsys)
			var out []string
			err := machineFor(fsys, run, &out).Chain(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want %q", err, tt.want)
			}
			if d := diff(before, snapshot(t, fsys)); d != "" {
				t.Errorf("a refused install changed:\n%s", d)
			}
		})
	}
	// Another mode on top of an install.
	fsys, run := debian(t, "systemd")
	var out []string
	m := machineFor(fsys, run, &out)
	if err := m.Chain(Options{Mode: initsys.Systemd, Binary: "/usr/local/sbin/kxboot"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Chain(Options{Mode: initsys.Wrapper, Binary: "/usr/local/sbin/kxboot"}); err == nil || !strings.Contains(err.Error(), "run kxboot uninstall chain first") {
		t.Errorf("err = %v", err)
	}
}

func TestMovesFromTheDropletRecipe(t *testing.T) {
	fsys, run := debian(t, "sysvinit")
	rootfstest.Write(t, fsys, "/etc/default/droplet-kernel", []byte("ENABLED=true\nKERNEL_IMAGE=\"/boot/vmlinuz-6.1.0-56-cloud-amd64\"\nINITRD=\"\"\nAPPEND=\"\"\n"))
	var out []string
	if err := machineFor(fsys, run, &out).Chain(Options{Mode: initsys.Sysvinit, Binary: "/usr/local/sbin/kxboot"}); err != nil {
		t.Fatal(err)
	}
	b, _ := fsys.ReadFile(config.Path)
	c, err := config.Parse(config.Path, b, config.Kxboot)
	if err != nil || c.Kernel != "/boot/vmlinuz-6.1.0-56-cloud-amd64" {
		t.Errorf("moved config %q: %v", b, err)
	}
	if !strings.Contains(strings.Join(out, "\n"), "Taking the settings of /etc/default/droplet-kernel") {
		t.Errorf("install said %q", out)
	}
}

func TestChooseMode(t *testing.T) {
	fsys, _ := debian(t, "systemd")
	if m := initsys.Choose(fsys, initsys.Auto); m != initsys.Wrapper {
		t.Errorf("Debian: %v", m)
	}
	rootfstest.Write(t, fsys, "/proc/self/mounts", []byte("/dev/vda1 / ext4 rw 0 0\n/dev/vdb1 /var ext4 rw 0 0\n"))
	if m := initsys.Choose(fsys, initsys.Auto); m != initsys.Systemd {
		t.Errorf("Debian with a separate /var: %v", m)
	}
	os.Remove(fsys.Path("/var/lib/dpkg/status"))
	if m := initsys.Choose(fsys, initsys.Auto); m != initsys.Systemd {
		t.Errorf("no dpkg, systemd running: %v", m)
	}
	fsys, _ = debian(t, "openrc")
	os.Remove(fsys.Path("/usr/bin/dpkg-divert"))
	if m := initsys.Choose(fsys, initsys.Auto); m != initsys.OpenRC {
		t.Errorf("no dpkg-divert, openrc running: %v", m)
	}
	if m := initsys.Choose(fsys, initsys.Sysvinit); m != initsys.Sysvinit {
		t.Errorf("named mode: %v", m)
	}
}

// TestRebootInstall: the fast reboot for each init system, beside the
// chain boot or alone; uninstall puts the tree back exactly.
func TestRebootInstall(t *testing.T) {
	for _, tt := range []struct {
		init      string
		withChain bool
		want      []string // paths the install must create
	}{
		{"systemd", false, []string{initsys.RebootUnit, initsys.RebootWants, initsys.ShutdownHook}},
		{"systemd", true, []string{initsys.RebootUnit, initsys.RebootWants, initsys.ShutdownHook}},
		{"sysvinit", true, []string{initsys.RebootScript, initsys.JumpScript, "/etc/rc6.d/K01kxboot-reboot", "/etc/rc6.d/K05kxboot-reboot-jump"}},
		{"openrc", false, []string{initsys.RebootScript, initsys.JumpScript, "/etc/runlevels/off/kxboot-reboot", "/etc/runlevels/off/kxboot-reboot-jump", "/etc/runlevels/default/kxboot-reboot-jump"}},
	} {
		t.Run(fmt.Sprintf("%s/chain=%v", tt.init, tt.withChain), func(t *testing.T) {
			fsys, run := debian(t, tt.init)
			if tt.init == "openrc" {
				rootfstest.Write(t, fsys, "/etc/runlevels/off/umountroot", []byte("x"))
			}
			before := snapshot(t, fsys)
			var out []string
			m := machineFor(fsys, run, &out)
			if tt.withChain {
				if err := m.Chain(Options{Mode: initsys.Auto, Binary: "/usr/local/sbin/kxboot"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Reboot(RebootOptions{Binary: "/usr/local/sbin/kxboot"}); err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, fsys)
			for _, p := range tt.want {
				if after[p] == "" {
					t.Errorf("%s was not created", p)
				}
			}
			// The confirmation service: a fast reboot is a try too. One
			// record holds it, the chain's when that came first.
			confirm := map[string]string{"systemd": initsys.ConfirmUnit}[tt.init]
			if confirm == "" {
				confirm = initsys.ConfirmScript
			}
			holder := journal.JobReboot
			if tt.withChain {
				holder = journal.JobChain
			}
			if after[confirm] == "" || (Machine{FS: fsys}).heldBy(confirm) != holder {
				t.Errorf("confirmation %s: %q, held by %q; want %s's", confirm, after[confirm], (Machine{FS: fsys}).heldBy(confirm), holder)
			}
			if rec, err := journal.Read(fsys, journal.JobReboot); err != nil || rec == nil || rec.Mode != tt.init {
				t.Errorf("reboot record: %+v, %v", rec, err)
			}
			if rec, _ := journal.Read(fsys, journal.JobChain); (rec != nil) != tt.withChain {
				t.Errorf("chain record: %+v", rec)
			}
			out = nil
			if err := m.Reboot(RebootOptions{Binary: "/usr/local/sbin/kxboot"}); err != nil || !strings.Contains(out[0], "already installed") {
				t.Errorf("second install: %v, %q", err, out)
			}
			if err := m.Uninstall(); err != nil {
				t.Fatal(err)
			}
			if d := diff(before, snapshot(t, fsys)); d != "" {
				t.Errorf("uninstall did not restore the tree:\n%s", d)
			}
		})
	}
	// An initsys.OpenRC without Debian's off runlevel (Alpine, Gentoo: mount-ro in
	// the shutdown runlevel) is refused, and nothing is written.
	fsys, run := debian(t, "openrc")
	before := snapshot(t, fsys)
	err := machineFor(fsys, run, new([]string)).Reboot(RebootOptions{Binary: "/usr/local/sbin/kxboot"})
	if err == nil || !strings.Contains(err.Error(), "neither "+initsys.OpenRCUmountRoot) || !strings.Contains(err.Error(), "nothing was installed") || !strings.Contains(err.Error(), "rc-update add mount-ro shutdown") {
		t.Errorf("openrc without %s: %v", initsys.OpenRCUmountRoot, err)
	}
	if d := diff(before, snapshot(t, fsys)); d != "" {
		t.Errorf("the refused install changed the tree:\n%s", d)
	}
	// uninstall reboot leaves the chain boot.
	fsys, run = debian(t, "systemd")
	var out []string
	m := machineFor(fsys, run, &out)
	m.Chain(Options{Mode: initsys.Systemd, Binary: "/usr/local/sbin/kxboot"})
	m.Reboot(RebootOptions{Binary: "/usr/local/sbin/kxboot"})
	if err := m.UninstallJobs(journal.JobReboot); err != nil {
		t.Fatal(err)
	}
	if fsys.Exists(initsys.RebootUnit) || !fsys.Exists(initsys.SystemdUnit) || !fsys.Exists(initsys.ConfirmUnit) {
		t.Errorf("uninstall reboot: reboot unit %v, chain unit %v, confirm unit %v", fsys.Exists(initsys.RebootUnit), fsys.Exists(initsys.SystemdUnit), fsys.Exists(initsys.ConfirmUnit))
	}
	// The fast reboot first, then the chain boot: the confirmation is the
	// fast reboot's; uninstalling that hands it to the chain boot, whose
	// uninstall then takes it away with the rest.
	fsys, run = debian(t, "systemd")
	before = snapshot(t, fsys)
	m = machineFor(fsys, run, &out)
	if err := m.Reboot(RebootOptions{Binary: "/usr/local/sbin/kxboot"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Chain(Options{Mode: initsys.Systemd, Binary: "/usr/local/sbin/kxboot"}); err != nil {
		t.Fatal(err)
	}
	if m.heldBy(initsys.ConfirmUnit) != journal.JobReboot {
		t.Errorf("the confirmation is held by %q; want the fast reboot's record", m.heldBy(initsys.ConfirmUnit))
	}
	if err := m.UninstallJobs(journal.JobReboot); err != nil {
		t.Fatal(err)
	}
	if !fsys.Exists(initsys.ConfirmUnit) || m.heldBy(initsys.ConfirmUnit) != journal.JobChain {
		t.Errorf("after uninstall reboot the confirmation is %v, held by %q; want kept by the chain boot", fsys.Exists(initsys.ConfirmUnit), m.heldBy(initsys.ConfirmUnit))
	}
	if err := m.Uninstall(); err != nil {
		t.Fatal(err)
	}
	if d := diff(before, snapshot(t, fsys)); d != "" {
		t.Errorf("uninstall did not restore the tree:\n%s", d)
	}
}

// alpine is an OpenRC machine laid out as Alpine, Gentoo and openrc-init
// are: a shutdown runlevel with killprocs, savecache and mount-ro, and no
// Debian off runlevel. pid1 is the program /proc/1/exe leads to; a busybox
// binary with ::reboot: holds the patched action table.
func alpine(t *testing.T, pid1 string, patched bool) (rootfs.FS, *fakeRunner) {
	fsys, run := debian(t, "openrc")
	for _, svc := range []string{"killprocs", "savecache", "mount-ro"} {
		rootfstest.Write(t, fsys, "/etc/init.d/"+svc, []byte("#!/sbin/openrc-run\n"))
		os.MkdirAll(fsys.Path(initsys.OpenRCShutdown), 0o755)
		os.Symlink("/etc/init.d/"+svc, fsys.Path(initsys.OpenRCShutdown+"/"+svc))
	}
	table := "sysinit\x00wait\x00once\x00respawn\x00askfirst\x00ctrlaltdel\x00shutdown\x00restart\x00"
	if patched {
		table = "sysinit\x00wait\x00once\x00respawn\x00askfirst\x00ctrlaltdel\x00shutdown\x00reboot\x00restart\x00"
	}
	rootfstest.Write(t, fsys, "/bin/busybox", []byte("\x7fELF..."+table+"..."))
	rootfstest.Write(t, fsys, "/sbin/openrc-init", []byte("\x7fELF"))
	rootfstest.Write(t, fsys, initsys.Inittab, []byte("::sysinit:/sbin/openrc sysinit\n::wait:/sbin/openrc default\n::shutdown:/sbin/openrc shutdown\n"))
	os.MkdirAll(fsys.Path("/proc/1"), 0o755)
	os.Symlink(pid1, fsys.Path("/proc/1/exe"))
	return fsys, run
}

// TestRebootInstallShutdownLayout: the load in the default runlevel, the
// jump in the shutdown runlevel; on a busybox init with ::reboot: the
// inittab line, with init told to read it, and all of it undone exactly.
func TestRebootInstallShutdownLayout(t *testing.T) {
	for _, tt := range []struct {
		name, pid1 string
		patched    bool
		wantLine   bool
		says       string
	}{
		{"gentoo", "/sbin/init", false, false, "init runs \"openrc reboot\""},
		{"openrc-init", "/sbin/openrc-init", false, false, "openrc-init runs \"openrc reboot\""},
		{"busybox-patched", "/bin/busybox", true, true, "busybox init runs its ::reboot: lines"},
		{"busybox-upstream", "/bin/busybox", false, false, "only kxboot reboot"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fsys, run := alpine(t, tt.pid1, tt.patched)
			before := snapshot(t, fsys)
			var out []string
			m := machineFor(fsys, run, &out)
			if err := m.Reboot(RebootOptions{Binary: "/usr/local/sbin/kxboot"}); err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, fsys)
			for p, want := range map[string]string{
				initsys.OpenRCDefault + "/kxboot-reboot":       "link " + initsys.RebootScript,
				initsys.OpenRCShutdown + "/kxboot-reboot-jump": "link " + initsys.JumpScript,
				"/etc/runlevels/off/kxboot-reboot":             "",
			} {
				if after[p] != want {
					t.Errorf("%s is %q; want %q", p, after[p], want)
				}
			}
			jump, _ := fsys.ReadFile(initsys.JumpScript)
			if !strings.Contains(string(jump), "\tafter killprocs savecache mount-ro\n") || !strings.Contains(string(jump), "start() {\n\t/usr/local/sbin/kxboot reboot --jump\n") {
				t.Errorf("jump service:\n%s", jump)
			}
			tab, _ := fsys.ReadFile(initsys.Inittab)
			hasLine := strings.Contains(string(tab), initsys.RebootLine+"\n::shutdown:")
			if hasLine != tt.wantLine {
				t.Errorf("inittab (want the ::reboot: line: %v):\n%s", tt.wantLine, tab)
			}
			hups := strings.Count(strings.Join(run.ran, "\n"), "kill -HUP 1")
			if (hups == 1) != tt.wantLine {
				t.Errorf("init told to reread its table %d times: %q", hups, run.ran)
			}
			if says, _ := initsys.Running(fsys).RebootSignal(fsys); !strings.Contains(says, tt.says) {
				t.Errorf("RebootSignal = %q; want %q in it", says, tt.says)
			}
			if said := strings.Join(out, "\n"); !strings.Contains(said, "How this machine tells a reboot from a poweroff: ") || !strings.Contains(said, tt.says) || strings.Contains(said, "reboot, shutdown -r") == (tt.name == "busybox-upstream") {
				t.Errorf("install said:\n%s", said)
			}
			if err := m.Uninstall(); err != nil {
				t.Fatal(err)
			}
			if d := diff(before, snapshot(t, fsys)); d != "" {
				t.Errorf("uninstall did not restore the tree:\n%s", d)
			}
			if hups := strings.Count(strings.Join(run.ran, "\n"), "kill -HUP 1"); tt.wantLine && hups != 2 {
				t.Errorf("init was not told to reread its table after the undo: %q", run.ran)
			}
		})
	}
	// A busybox table with a ::reboot: line of the owner's is left alone.
	fsys, run := alpine(t, "/bin/busybox", true)
	rootfstest.Write(t, fsys, initsys.Inittab, []byte("::reboot:/sbin/openrc reboot\n::shutdown:/sbin/openrc shutdown\n"))
	if err := machineFor(fsys, run, new([]string)).Reboot(RebootOptions{Binary: "/usr/local/sbin/kxboot"}); err != nil {
		t.Fatal(err)
	}
	if tab, _ := fsys.ReadFile(initsys.Inittab); strings.Count(string(tab), "::reboot:") != 1 {
		t.Errorf("inittab:\n%s", tab)
	}
}
