// Package packaging holds what make package builds the .deb, .rpm and .apk
// from (nfpm.yaml, the kernel hook, the maintainer script); this test builds
// them and reads each back with the format's own tool.
package packaging

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// files are what every package installs (the zsh completion's directory
// differs: Debian's vendor-completions, site-functions elsewhere).
var files = []string{
	"/usr/sbin/kxboot",
	"/usr/share/man/man8/kxboot.8.gz",
	"/usr/share/bash-completion/completions/kxboot",
	"/usr/share/fish/vendor_completions.d/kxboot.fish",
	"/usr/share/doc/kxboot/README.md",
}

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed; scripts/install-test-deps installs it", name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(tool(t, name), args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// listed returns the absolute paths of the regular files in a listing.
func listed(lines string, field int) []string {
	var out []string
	for _, l := range strings.Split(lines, "\n") {
		f := strings.Fields(l)
		if len(f) <= field || strings.HasSuffix(f[field], "/") {
			continue
		}
		p := "/" + strings.TrimPrefix(strings.TrimPrefix(f[field], "./"), "/")
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func checkFiles(t *testing.T, what string, got []string, zsh string, hook bool) {
	t.Helper()
	want := append(slices.Clone(files), zsh)
	if hook {
		want = append(want, "/etc/kernel/postinst.d/zz-kxboot")
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s holds\n  %v\nwant\n  %v", what, got, want)
	}
}

// checkBinary checks that the binary is a static one for arch.
func checkBinary(t *testing.T, what, path, arch string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer f.Close()
	if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]; f.Machine != want {
		t.Errorf("%s: /usr/sbin/kxboot is for %v; want %v", what, f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: /usr/sbin/kxboot is not static", what)
		}
	}
}

func TestPackages(t *testing.T) {
	dist := t.TempDir()
	cmd := exec.Command(tool(t, "make"), "-C", "..", "package", "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	for _, a := range []struct{ arch, deb, rpm, apk string }{
		{"amd64", "amd64", "x86_64", "x86_64"},
		{"arm64", "arm64", "aarch64", "aarch64"},
	} {
		glob := func(p string) string {
			m, _ := filepath.Glob(filepath.Join(dist, p))
			if len(m) != 1 {
				t.Fatalf("%s in %s: %v; want one package", p, dist, m)
			}
			return m[0]
		}
		// .deb: files, the one conffile (the kernel hook; /etc/default/kxboot
		// is no conffile: its absence is meaningful), prerm, the binary.
		deb := glob("kxboot_*_" + a.deb + ".deb")
		checkFiles(t, filepath.Base(deb), listed(run(t, "dpkg-deb", "-c", deb), 5), "/usr/share/zsh/vendor-completions/_kxboot", true)
		ctl := t.TempDir()
		run(t, "dpkg-deb", "-e", deb, ctl)
		if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(b)) != "/etc/kernel/postinst.d/zz-kxboot" {
			t.Errorf("%s: conffiles %q; want the kernel hook alone", deb, b)
		}
		if b, _ := os.ReadFile(filepath.Join(ctl, "prerm")); !strings.Contains(string(b), "/usr/sbin/kxboot uninstall") {
			t.Errorf("%s: prerm does not run kxboot uninstall:\n%s", deb, b)
		}
		for _, s := range []string{"postinst", "preinst", "postrm"} {
			if _, err := os.Stat(filepath.Join(ctl, s)); err == nil {
				t.Errorf("%s has a %s: installing must touch nothing", deb, s)
			}
		}
		root := t.TempDir()
		run(t, "dpkg-deb", "-x", deb, root)
		checkBinary(t, deb, filepath.Join(root, "usr/sbin/kxboot"), a.arch)

		// .rpm: files, %preun, the hook as %config(noreplace).
		rpm := glob("kxboot-*." + a.rpm + ".rpm")
		checkFiles(t, filepath.Base(rpm), listed(run(t, "rpm", "-qlp", rpm), 0), "/usr/share/zsh/site-functions/_kxboot", true)
		if s := run(t, "rpm", "-qp", "--scripts", rpm); !strings.Contains(s, "preuninstall scriptlet") || !strings.Contains(s, "/usr/sbin/kxboot uninstall") || strings.Contains(s, "postinstall") {
			t.Errorf("%s: scripts\n%s\nwant a preuninstall that runs kxboot uninstall and nothing on install", rpm, s)
		}

		// .apk: gzip streams of tar archives; tar -i reads past each end.
		apk := glob("kxboot_*_" + a.apk + ".apk")
		var got []string
		for _, p := range listed(run(t, "tar", "-tzif", apk), 0) {
			if !strings.HasPrefix(p, "/.") {
				got = append(got, p)
			} else if p != "/.PKGINFO" && p != "/.pre-deinstall" && !strings.HasPrefix(p, "/.SIGN") {
				t.Errorf("%s: unexpected control file %s", apk, p)
			}
		}
		checkFiles(t, filepath.Base(apk), got, "/usr/share/zsh/site-functions/_kxboot", false)
		info := run(t, "tar", "-xzOif", apk, ".PKGINFO")
		if !strings.Contains(info, "arch = "+a.apk) {
			t.Errorf("%s: .PKGINFO says\n%s\nwant arch = %s", apk, info, a.apk)
		}
		if s := run(t, "tar", "-xzOif", apk, ".pre-deinstall"); !strings.Contains(s, "/usr/sbin/kxboot uninstall") {
			t.Errorf("%s: .pre-deinstall does not run kxboot uninstall", apk)
		}
	}
}

// TestKernelHook runs the kernel hook as a kernel package's postinst runs
// it, with a kxboot on PATH that answers doctor as on a machine whose new
// kernel has no kexec: the hook repeats the kernel's problems on stderr
// with the fix, leaves out the machine's other lines, and exits 0.
func TestKernelHook(t *testing.T) {
	dir := t.TempDir()
	fake := `#!/bin/sh
[ "$1 $2 $3" = "doctor --kernel $KX_IMAGE" ] || { echo "called with $*" >&2; exit 9; }
cat <<'END'
ok    root                running as root
warn  watchdog            no hardware watchdog
ok    kernel              /boot/vmlinuz-6.1.0-99 is an x86 bzImage 6.1.0-99
warn  next kernel's kexec 6.1.0-99 was built without kexec
                          fix: install a kernel built with CONFIG_KEXEC_FILE
fail  lockdown            the kernel is in lockdown (integrity)
END
exit 1
`
	os.WriteFile(filepath.Join(dir, "kxboot"), []byte(fake), 0o755)
	img := filepath.Join(dir, "vmlinuz-6.1.0-99") // the hook runs only for an image that exists
	os.WriteFile(img, nil, 0o644)
	cmd := exec.Command(tool(t, "sh"), "kernel-postinst", "6.1.0-99", img)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "KX_IMAGE="+img)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the hook failed (%v): a kernel install must never fail because of kxboot\n%s", err, stderr.String())
	}
	want := "kxboot: 6.1.0-99: warn  next kernel's kexec 6.1.0-99 was built without kexec\n" +
		"kxboot: 6.1.0-99:                           fix: install a kernel built with CONFIG_KEXEC_FILE\n" +
		"kxboot: 6.1.0-99: fail  lockdown            the kernel is in lockdown (integrity)\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("the hook printed\nstdout %q\nstderr %q\nwant on stderr %q", stdout.String(), stderr.String(), want)
	}
}
