package harness

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func layoutsForTest(t *testing.T) []Layout {
	t.Helper()
	ls, err := OpenRCLayouts(AMD64)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// TestLayoutFiles checks what each layout writes: valid paths, each once,
// one kind of content each, the shutdown runlevel's three services linked
// to scripts the layout writes, and Debian's "off" runlevel gone.
func TestLayoutFiles(t *testing.T) {
	ls := layoutsForTest(t)
	var names []string
	for _, l := range ls {
		names = append(names, l.Name)
		byPath := map[string]GuestFile{}
		for _, f := range l.Files {
			if err := checkGuestPath(f.Path); err != nil {
				t.Errorf("%s: %v", l.Name, err)
			}
			if _, dup := byPath[f.Path]; dup {
				t.Errorf("%s: %s is written twice", l.Name, f.Path)
			}
			byPath[f.Path] = f
			kinds := 0
			for _, set := range []bool{f.Data != nil, f.HostPath != "", f.Target != "", f.Dir, f.Absent} {
				if set {
					kinds++
				}
			}
			if kinds != 1 {
				t.Errorf("%s: %s gives %d kinds of content; want 1", l.Name, f.Path, kinds)
			}
			if f.HostPath != "" {
				if _, err := os.Stat(f.HostPath); err != nil {
					t.Errorf("%s: %s: %v", l.Name, f.Path, err)
				}
			}
		}
		for _, svc := range []string{"killprocs", "savecache", "mount-ro"} {
			link := byPath["/etc/runlevels/shutdown/"+svc]
			if link.Target != "/etc/init.d/"+svc {
				t.Errorf("%s: /etc/runlevels/shutdown/%s leads to %q; want /etc/init.d/%s", l.Name, svc, link.Target, svc)
			}
			script := byPath["/etc/init.d/"+svc]
			if !bytes.HasPrefix(script.Data, []byte("#!/sbin/openrc-run\n")) || script.Mode != 0o755 {
				t.Errorf("%s: /etc/init.d/%s is not an executable openrc-run script", l.Name, svc)
			}
			if !bytes.Contains(script.Data, []byte(LayoutMarker+svc+" runlevel=$RC_RUNLEVEL RC_REBOOT=$RC_REBOOT root=$(kx_rootmode)")) {
				t.Errorf("%s: /etc/init.d/%s does not print its marker line", l.Name, svc)
			}
		}
		if got := string(byPath["/etc/conf.d/udev"].Data); !strings.Contains(got, "\nrc_need=\"!umountroot\"\n") {
			t.Errorf("%s: /etc/conf.d/udev does not take umountroot from udev's needs:\n%s", l.Name, got)
		}
		if !byPath["/etc/runlevels/off/umountroot"].Absent {
			t.Errorf("%s: /etc/runlevels/off/umountroot is not removed", l.Name)
		}
		if l.Inittab != "" && string(byPath["/etc/inittab"].Data) != l.Inittab {
			t.Errorf("%s: the /etc/inittab written is not the layout's Inittab", l.Name)
		}
		if l.PID1 != "init" || !path.IsAbs(l.PID1Exe) {
			t.Errorf("%s: PID1 %q, PID1Exe %q", l.Name, l.PID1, l.PID1Exe)
		}
		// /sbin/init leads to the program that PID1Exe names (through
		// the guest's /sbin -> usr/sbin and /bin -> usr/bin).
		if l.Name != LayoutGentoo {
			init := byPath["/sbin/init"]
			target := init.Target
			if !path.IsAbs(target) {
				target = path.Join("/usr/sbin", target)
			}
			target = strings.Replace(target, "/bin/", "/usr/bin/", 1)
			if target != l.PID1Exe {
				t.Errorf("%s: /sbin/init leads to %q; PID1Exe is %q", l.Name, init.Target, l.PID1Exe)
			}
		}
	}
	if !reflect.DeepEqual(names, LayoutNames) {
		t.Errorf("layouts %v; want %v", names, LayoutNames)
	}
	for _, name := range LayoutNames {
		l, err := LayoutOf(AMD64, name)
		if err != nil || l.Name != name {
			t.Errorf("LayoutOf(%q): %q, %v", name, l.Name, err)
		}
	}
	if _, err := LayoutOf(AMD64, "alpine"); err == nil {
		t.Error("LayoutOf(alpine) did not fail")
	}
}

// TestLayoutScriptsParse runs every script a layout writes through the
// parsers of dash (the guest's /bin/sh, which openrc-run's scripts run
// with) and busybox sh.
func TestLayoutScriptsParse(t *testing.T) {
	bb, err := Busybox(AMD64)
	if err != nil {
		t.Fatal(err)
	}
	shells := [][]string{{bb, "sh", "-n"}}
	if dash, err := exec.LookPath("dash"); err == nil {
		shells = append(shells, []string{dash, "-n"})
	} else {
		t.Logf("no dash on this host: busybox sh alone checks the scripts")
	}
	for _, l := range layoutsForTest(t) {
		for _, f := range l.Files {
			if !bytes.HasPrefix(f.Data, []byte("#!")) {
				continue
			}
			for _, sh := range shells {
				cmd := exec.Command(sh[0], sh[1:]...)
				cmd.Stdin = bytes.NewReader(f.Data)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s: %s: %s: %v\n%s", l.Name, f.Path, strings.Join(sh, " "), err, out)
				}
			}
		}
	}
}

// TestLayoutServiceOrder runs each shutdown service's depend() with
// OpenRC's dependency words defined to print themselves: mount-ro must
// come after killprocs and savecache.
func TestLayoutServiceOrder(t *testing.T) {
	// The services source the runner's library, as in the guest.
	lib := filepath.Join(t.TempDir(), "lib.sh")
	if err := os.WriteFile(lib, []byte(guestLib), 0o644); err != nil {
		t.Fatal(err)
	}
	deps := func(script string) string {
		prog := strings.ReplaceAll(script, guestLibPath, lib) + `
for w in need use want after before provide keyword; do eval "$w() { echo $w \"\$@\"; }"; done
if command -v depend >/dev/null; then depend; fi
`
		out, err := exec.Command("sh", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("depend(): %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := deps(layoutMountRO); got != "after killprocs savecache" {
		t.Errorf("mount-ro's depend() says %q; want after killprocs savecache", got)
	}
	for name, s := range map[string]string{"killprocs": layoutKillprocs, "savecache": layoutSavecache} {
		if got := deps(s); got != "" {
			t.Errorf("%s's depend() says %q; want nothing (no order among themselves)", name, got)
		}
	}
}

// TestLayoutShutdownScripts checks the openrc-init layout's reboot,
// poweroff and halt: each asks openrc-shutdown for its own action, with
// the time argument openrc-shutdown 0.45 requires.
func TestLayoutShutdownScripts(t *testing.T) {
	l, err := LayoutOf(AMD64, LayoutOpenRCInit)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/sbin/reboot": "--reboot", "/sbin/poweroff": "--poweroff", "/sbin/halt": "--halt"}
	for _, f := range l.Files {
		flag, ok := want[f.Path]
		if !ok {
			continue
		}
		delete(want, f.Path)
		if !bytes.Contains(f.Data, []byte("exec /sbin/openrc-shutdown "+flag+" now\n")) || f.Mode != 0o755 {
			t.Errorf("%s does not run openrc-shutdown %s now:\n%s", f.Path, flag, f.Data)
		}
	}
	if len(want) > 0 {
		t.Errorf("the openrc-init layout lacks %v", want)
	}
}

// inittabLine is one line of an /etc/inittab.
type inittabLine struct {
	id, runlevels, action, process string
}

// parseInittab splits an inittab into its lines, as sysvinit's and busybox's
// init read them: ID:RUNLEVELS:ACTION:PROCESS, comments and blank lines
// skipped. It fails on a line without four fields or an action that the
// init (actions) does not know.
func parseInittab(t *testing.T, text string, actions []string) []inittabLine {
	t.Helper()
	known := map[string]bool{}
	for _, a := range actions {
		known[a] = true
	}
	var out []inittabLine
	ids := map[string]bool{}
	for i, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.SplitN(l, ":", 4)
		if len(f) != 4 {
			t.Fatalf("inittab line %d %q: not ID:RUNLEVELS:ACTION:PROCESS", i+1, l)
		}
		il := inittabLine{f[0], f[1], f[2], f[3]}
		if !known[il.action] {
			t.Errorf("inittab line %d %q: unknown action %q", i+1, l, il.action)
		}
		if il.id != "" {
			if ids[il.id] {
				t.Errorf("inittab line %d: the id %q is used twice", i+1, il.id)
			}
			ids[il.id] = true
		}
		out = append(out, il)
	}
	return out
}

// TestGentooInittab reads the gentoo layout's inittab as sysvinit does and
// checks what each runlevel runs.
func TestGentooInittab(t *testing.T) {
	lines := parseInittab(t, gentooInittab, []string{"respawn", "wait", "once", "boot", "bootwait", "off", "ondemand",
		"initdefault", "sysinit", "powerwait", "powerfail", "powerokwait", "powerfailnow", "ctrlaltdel", "kbrequest"})
	def := ""
	// run lists what a runlevel runs, in order, as init does on entering it.
	run := func(level string) []string {
		var p []string
		for _, l := range lines {
			if (l.action == "wait" || l.action == "once" || l.action == "respawn") && strings.Contains(l.runlevels, level) {
				p = append(p, l.process)
			}
		}
		return p
	}
	var sysinit, boot []string
	for _, l := range lines {
		if len(l.id) > 4 {
			t.Errorf("inittab id %q is longer than sysvinit's 4 characters", l.id)
		}
		switch l.action {
		case "initdefault":
			def = l.runlevels
		case "sysinit":
			sysinit = append(sysinit, l.process)
		case "bootwait", "boot":
			boot = append(boot, l.process)
		}
	}
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s runs %q; want %q", what, got, want)
		}
	}
	if def != "3" {
		t.Errorf("the default runlevel is %q; want 3, as on Gentoo", def)
	}
	check("sysinit", sysinit, "/sbin/openrc sysinit")
	check("the boot", boot, "/sbin/openrc boot")
	check("runlevel "+def, run(def), "/sbin/openrc default")
	check("runlevel 0", run("0"), "/sbin/openrc shutdown", "/sbin/halt -d -p -f")
	check("runlevel 6", run("6"), "/sbin/openrc reboot", "/sbin/reboot -d -f")
	for _, l := range lines {
		if strings.Contains(l.process, "/etc/init.d/rc") {
			t.Errorf("the inittab still runs Debian's rc wrapper: %q", l.process)
		}
	}
}

// TestBusyboxInittab reads the busybox layout's inittab as busybox init
// does (it ignores the runlevels; an empty id is the console) and checks
// each action's commands, in order.
func TestBusyboxInittab(t *testing.T) {
	lines := parseInittab(t, busyboxInittab, []string{"sysinit", "wait", "once", "respawn", "askfirst", "shutdown", "restart", "ctrlaltdel"})
	got := map[string][]string{}
	for _, l := range lines {
		if l.id != "" || l.runlevels != "" {
			t.Errorf("line %v: want an empty id (the console) and no runlevels", l)
		}
		// busybox init runs a command through /bin/sh only when it has
		// shell syntax in it; these are meant to be run directly.
		if strings.ContainsAny(l.process, "~`!$^&*()=|\\{}[];\"'<>?") {
			t.Errorf("%q would go through /bin/sh", l.process)
		}
		got[l.action] = append(got[l.action], l.process)
	}
	want := map[string][]string{
		"sysinit":    {"/sbin/openrc sysinit", "/sbin/openrc boot"},
		"wait":       {"/sbin/openrc default"},
		"ctrlaltdel": {"/sbin/reboot"},
		"shutdown":   {"/sbin/openrc shutdown"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("actions %q; want %q", got, want)
	}
}
