package install

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
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
	switch {
	case name == "dpkg-divert" && args[len(args)-2] == "--add":
		return os.Rename(f.fs.Path(args[len(args)-1]), f.fs.Path(args[3]))
	case name == "update-rc.d" && args[1] == "defaults":
		// insserv: the new script goes in, and a later one is renumbered.
		os.Rename(f.fs.Path("/etc/rcS.d/S04checkroot.sh"), f.fs.Path("/etc/rcS.d/S05checkroot.sh"))
		os.WriteFile(f.fs.Path("/etc/init.d/.depend.boot"), []byte("kxboot-chain: mountkernfs\ncheckroot.sh: kxboot-chain\n"), 0o644)
		return os.Symlink("../init.d/kxboot-chain", f.fs.Path("/etc/rcS.d/S04kxboot-chain"))
	case name == "update-rc.d" && args[2] == "remove":
		// insserv: the script goes, the others keep their new numbers.
		os.Remove(f.fs.Path("/etc/rcS.d/S04kxboot-chain"))
		return os.WriteFile(f.fs.Path("/etc/init.d/.depend.boot"), []byte("checkroot.sh: mountkernfs\n"), 0o644)
	case name == "dpkg-divert" && args[len(args)-2] == "--remove":
		if _, err := os.Lstat(f.fs.Path(args[3])); err != nil {
			return nil // "No diversion ..., none removed"
		}
		return os.Rename(f.fs.Path(args[3]), f.fs.Path(args[len(args)-1]))
	}
	return fmt.Errorf("unexpected command %s", line)
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
		"/etc/init.d/README":                 "init scripts\n",
		"/etc/systemd/system/README":         "units\n",
	}
	links := map[string]string{}
	switch init {
	case "systemd":
		files["/lib/systemd/systemd"] = "systemd"
		files["/run/systemd/system/.keep"] = ""
		links["/sbin/init"] = "../lib/systemd/systemd"
	case "sysvinit":
		files["/sbin/init"] = "sysvinit"
	case "openrc":
		files["/sbin/init"] = "sysvinit"
		files["/sbin/openrc-run"] = "openrc-run"
		files["/run/openrc/softlevel"] = "default"
	}
	links["/etc/rcS.d/S04checkroot.sh"] = "../init.d/checkroot.sh"
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

func machineFor(fsys rootfs.FS, r Runner, report *[]string) Machine {
	return Machine{FS: fsys, Run: r, Report: func(f string, a ...any) { *report = append(*report, fmt.Sprintf(f, a...)) }}
}

func TestInstallUninstallRestoresExactly(t *testing.T) {
	tests := []struct {
		init string
		mode Mode
		want map[string]string // entries the install must create
	}{
		{"systemd", Auto, map[string]string{"/sbin/init": "link /usr/local/sbin/kxboot", "/sbin/init.kxboot-orig": "link ../lib/systemd/systemd"}},
		{"sysvinit", Wrapper, map[string]string{"/sbin/init": "link /usr/local/sbin/kxboot"}},
		{"systemd", Systemd, map[string]string{"/etc/systemd/system/sysinit.target.wants/kxboot-chain.service": "link " + SystemdUnit}},
		{"sysvinit", Sysvinit, map[string]string{"/etc/rcS.d/S04kxboot-chain": "link ../init.d/kxboot-chain", "/etc/rcS.d/S05checkroot.sh": "link ../init.d/checkroot.sh"}},
		{"openrc", OpenRC, map[string]string{OpenRCLink: "link " + InitScript}},
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
				if after[p] != want {
					t.Errorf("%s is %q; want %q", p, after[p], want)
				}
			}
			if !strings.HasPrefix(after[config.Path], "file -rw-r--r--") || !strings.HasPrefix(after[ManifestPath], "file") {
				t.Errorf("config %q, record %q", after[config.Path], after[ManifestPath])
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

			if err := m.Uninstall(); err != nil {
				t.Fatal(err)
			}
			if d := diff(before, snapshot(t, fsys)); d != "" {
				t.Errorf("uninstall did not restore the tree:\n%s", d)
			}
			out = nil
			if err := m.Uninstall(); err != nil || !strings.Contains(out[0], "not installed; nothing to undo") {
				t.Errorf("second uninstall: %v, %q", err, out)
			}
		})
	}
}

func TestCrashedInstallIsUndone(t *testing.T) {
	fsys, run := debian(t, "sysvinit")
	before := snapshot(t, fsys)
	run.failAt = "update-rc.d kxboot-chain defaults"
	var out []string
	m := machineFor(fsys, run, &out)
	err := m.Chain(Options{Mode: Sysvinit, Binary: "/usr/local/sbin/kxboot"})
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
}

func TestUninstallExplainsWhatItFinds(t *testing.T) {
	fsys, run := debian(t, "systemd")
	var out []string
	m := machineFor(fsys, run, &out)
	if err := m.Chain(Options{Mode: Wrapper, Binary: "/usr/local/sbin/kxboot"}); err != nil {
		t.Fatal(err)
	}
	// A package upgrade without dpkg-divert's protection put its own init back.
	os.Remove(fsys.Path(Init))
	os.Symlink("../lib/systemd/systemd", fsys.Path(Init))
	if ok, why := WrapperIntact(fsys, mustRecord(t, fsys)); ok || !strings.Contains(why, "no longer leads to /usr/local/sbin/kxboot") {
		t.Errorf("WrapperIntact = %v, %q", ok, why)
	}
	err := m.Uninstall()
	if err == nil || !strings.Contains(err.Error(), "/sbin/init is no longer kxboot's link") {
		t.Fatalf("err = %v", err)
	}
	// Without a record but with traces: say so, touch nothing.
	os.Remove(fsys.Path(ManifestPath))
	err = m.Uninstall()
	if err == nil || !strings.Contains(err.Error(), "no install record") || !strings.Contains(err.Error(), "/sbin/init.kxboot-orig exists") {
		t.Errorf("err = %v", err)
	}
}

func mustRecord(t *testing.T, fsys rootfs.FS) *Record {
	r, err := ReadRecord(fsys)
	if err != nil || r == nil {
		t.Fatalf("record: %v, %v", r, err)
	}
	return r
}

func TestEditedConfigIsKept(t *testing.T) {
	fsys, run := debian(t, "systemd")
	var out []string
	m := machineFor(fsys, run, &out)
	if err := m.Chain(Options{Mode: Systemd, Binary: "/usr/local/sbin/kxboot", Kernel: "/boot/vmlinuz-6.1.0-56-cloud-amd64", Given: true}); err != nil {
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
		{"no binary", nil, Options{Mode: Systemd, Binary: "/usr/sbin/nope"}, "is not on this machine"},
		{"writable binary", func(fsys rootfs.FS) { os.Chmod(fsys.Path("/usr/local/sbin/kxboot"), 0o777) }, Options{Mode: Systemd, Binary: "/usr/local/sbin/kxboot"}, "writable by group or others"},
		{"config exists and flags", func(fsys rootfs.FS) { os.WriteFile(fsys.Path(config.Path), []byte(""), 0o644) },
			Options{Mode: Systemd, Binary: "/usr/local/sbin/kxboot", Kernel: "/x", Given: true}, "edit KERNEL, INITRD and APPEND there"},
		{"openrc missing", nil, Options{Mode: OpenRC, Binary: "/usr/local/sbin/kxboot"}, "OpenRC is not installed"},
		{"left-over original", func(fsys rootfs.FS) { os.WriteFile(fsys.Path("/sbin/init.kxboot-orig"), nil, 0o755) },
			Options{Mode: Wrapper, Binary: "/usr/local/sbin/kxboot"}, "an earlier wrapper install was not undone"},
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
	if err := m.Chain(Options{Mode: Systemd, Binary: "/usr/local/sbin/kxboot"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Chain(Options{Mode: Wrapper, Binary: "/usr/local/sbin/kxboot"}); err == nil || !strings.Contains(err.Error(), "run kxboot uninstall first") {
		t.Errorf("err = %v", err)
	}
}

func TestMovesFromTheDropletRecipe(t *testing.T) {
	fsys, run := debian(t, "sysvinit")
	rootfstest.Write(t, fsys, "/etc/default/droplet-kernel", []byte("ENABLED=true\nKERNEL_IMAGE=\"/boot/vmlinuz-6.1.0-56-cloud-amd64\"\nINITRD=\"\"\nAPPEND=\"\"\n"))
	var out []string
	if err := machineFor(fsys, run, &out).Chain(Options{Mode: Sysvinit, Binary: "/usr/local/sbin/kxboot"}); err != nil {
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
	if m := ChooseMode(fsys, Auto); m != Wrapper {
		t.Errorf("Debian: %v", m)
	}
	os.Remove(fsys.Path("/var/lib/dpkg/status"))
	if m := ChooseMode(fsys, Auto); m != Systemd {
		t.Errorf("no dpkg, systemd running: %v", m)
	}
	fsys, _ = debian(t, "openrc")
	os.Remove(fsys.Path("/usr/bin/dpkg-divert"))
	if m := ChooseMode(fsys, Auto); m != OpenRC {
		t.Errorf("no dpkg-divert, openrc running: %v", m)
	}
	if m := ChooseMode(fsys, Sysvinit); m != Sysvinit {
		t.Errorf("named mode: %v", m)
	}
}
