package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestArgsDisk(t *testing.T) {
	o := Options{Kernel: "/k", Initrd: "/i", Append: "root=/dev/vda", Disk: "/d/a,b.img"}
	args := strings.Join(Args(o), " ")
	for _, want := range []string{"-no-reboot", "-drive file=/d/a,,b.img,format=raw,cache=unsafe,if=virtio", "-initrd /i", "-m 1024", "-smp 1", "-accel tcg"} {
		if !strings.Contains(args, want) {
			t.Errorf("Args %q lacks %q", args, want)
		}
	}
	o.NVMe = true
	if args := strings.Join(Args(o), " "); !strings.Contains(args, "-drive file=/d/a,,b.img,format=raw,cache=unsafe,if=none,id=root -device nvme,drive=root,serial=kxtest") {
		t.Errorf("NVMe: got %q", args)
	}
	o.NVMe = false
	// KVM runs the host's CPU model; an arm64 guest gets the virt machine.
	o.Accel = "kvm"
	if args := strings.Join(Args(o), " "); !strings.Contains(args, "-accel kvm -cpu host") {
		t.Errorf("KVM: got %q", args)
	}
	o.Accel, o.Arch = "", ARM64
	if args := strings.Join(Args(o), " "); !strings.HasPrefix(args, "-M virt -cpu max,pauth-impdef=on -accel tcg ") {
		t.Errorf("arm64: got %q", args)
	}
	o.Arch = AMD64
	// Reboot starts qemu again after a reset, so qemu itself must still
	// exit on a reset; only InPlaceReset leaves -no-reboot out.
	o.Reboot = true
	if !strings.Contains(strings.Join(Args(o), " "), "-no-reboot") {
		t.Errorf("Reboot: want -no-reboot (the harness starts qemu again)")
	}
	o.InPlaceReset = true
	o.Initrd = ""
	args = strings.Join(Args(o), " ")
	if strings.Contains(args, "-no-reboot") || strings.Contains(args, "-initrd") {
		t.Errorf("InPlaceReset without initrd: got %q", args)
	}
}

// TestArgsAMD64Unchanged pins the qemu command line of amd64 guests to
// what it was before the boot paths (BootPath) came: a guest that does not
// choose one must not boot any differently.
func TestArgsAMD64Unchanged(t *testing.T) {
	t.Setenv(MonitorEnv, "") // a debugging monitor is the one change allowed
	for _, c := range []struct {
		o    Options
		want []string
	}{
		{Options{Kernel: "/k", Initrd: "/i", Append: `console=ttyS0 a="b  c"`},
			[]string{"-accel", "tcg", "-m", "1024", "-smp", "1", "-nodefaults", "-no-user-config", "-nic", "none", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-kernel", "/k", "-initrd", "/i", "-append", `console=ttyS0 a="b  c"`}},
		{Options{Kernel: "/k", Append: "x", Disk: "/d.img", NVMe: true, Reboot: true, MemoryMB: 512, CPU: "qemu64"},
			[]string{"-accel", "tcg", "-cpu", "qemu64", "-m", "512", "-smp", "1", "-nodefaults", "-no-user-config", "-nic", "none", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-kernel", "/k", "-append", "x", "-drive", "file=/d.img,format=raw,cache=unsafe,if=none,id=root", "-device", "nvme,drive=root,serial=kxtest"}},
	} {
		if got := Args(c.o); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Args(%+v):\n got %q\nwant %q", c.o, got, c.want)
		}
	}
}

// TestArgsUEFI: BootUEFI adds the architecture's firmware and nothing
// else; Start refuses it where the harness has no firmware.
func TestArgsUEFI(t *testing.T) {
	o := Options{Arch: ARM64, Kernel: "/k", Initrd: "/i", Append: "console=ttyAMA0"}
	direct := Args(o)
	o.Boot = BootUEFI
	uefi := Args(o)
	var extra []string
	for i, j := 0, 0; i < len(uefi); i++ {
		if j < len(direct) && uefi[i] == direct[j] {
			j++
			continue
		}
		extra = append(extra, uefi[i])
	}
	if want := []string{"-bios", ARM64.UEFI}; !reflect.DeepEqual(extra, want) || len(uefi) != len(direct)+2 {
		t.Errorf("BootUEFI adds %q to %q; want only %q", extra, direct, want)
	}
	none := AMD64
	none.UEFI = ""
	if err := none.checkBoot(BootUEFI); err == nil || !strings.Contains(err.Error(), "no UEFI firmware for amd64") {
		t.Errorf("an architecture without firmware, with BootUEFI: %v; want the harness to say it has none", err)
	}
	if err := (Arch{}).checkBoot("pxe"); err == nil {
		t.Errorf("an unknown boot path: no error")
	}
	noFW := ARM64
	noFW.UEFI = "/nonexistent/QEMU_EFI.fd"
	if err := noFW.checkBoot(BootUEFI); err == nil || !strings.Contains(err.Error(), "apt-get install qemu-efi-aarch64") {
		t.Errorf("missing firmware: %v; want the package to install", err)
	}
}

func TestKernelStarts(t *testing.T) {
	lines := []string{
		"[    0.000000] Linux version 6.1.0-55-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP",
		"KXTEST cmdline: Linux version is not a banner",
		"SeaBIOS (version 1.16.2)",
		"Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP",
		"[   40.7] reboot: Restarting system",
		"[    0.000000] Linux version 6.1.0-55-cloud-amd64 (x) y",
	}
	got := KernelStarts(lines)
	want := []string{"6.1.0-55-cloud-amd64", "6.1.0-56-cloud-amd64", "6.1.0-55-cloud-amd64"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("KernelStarts: got %q; want %q", got, want)
	}
}

func TestDeb822(t *testing.T) {
	st := deb822(`Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
`)
	if len(st) != 2 || st[0]["uris"] != "http://mirror.example/debian" || st[1]["suites"] != "bookworm-security" {
		t.Errorf("deb822: got %v", st)
	}
}

func TestRecipes(t *testing.T) {
	seen := map[string]string{}
	for _, f := range Flavours {
		rec, err := recipeFor(f, AMD64)
		if err != nil {
			t.Fatal(err)
		}
		h := recipeHash(f, rec, "a", "b")
		if other, ok := seen[h]; ok {
			t.Errorf("flavours %s and %s have the same recipe hash", f, other)
		}
		seen[h] = f
		if recipeHash(f, rec, "a", "c") == h {
			t.Errorf("%s: the hash ignores kernel B", f)
		}
		// Every shell text the recipe writes must parse.
		for p, file := range guestFiles(f, AMD64) {
			if strings.HasPrefix(file.data, "#!/bin/sh") || strings.HasSuffix(p, ".sh") {
				checkShell(t, f+":"+p, file.data)
			}
		}
	}
	if _, err := recipeFor("upstart", AMD64); err == nil {
		t.Errorf("recipeFor(upstart): no error")
	}
	checkShell(t, "lib.sh", guestLib)
	checkShell(t, "boot scripts' kx_reset", cleanResetSh)
}

// TestRecipeHashesAMD64 pins the recipe hashes of the amd64 images, whose
// cache directories carry them: a change that rebuilds them must be meant
// (then update the hashes here). Images for other architectures came
// without changing them.
func TestRecipeHashesAMD64(t *testing.T) {
	want := map[string]string{
		Systemd:  "c94f92e86283101cc98bf18a3ff70662237a85446f003269dae44a59f7472875",
		Sysvinit: "78943a1102524708e4827c19ee645b5aad9fb8c1d6a00ce1536a556b46c858d6",
		OpenRC:   "75c8994f9a52632cce4d5cb08c362fc64aef04f63be04c668b3706dd9fbcdce0",
	}
	for _, f := range Flavours {
		for _, arch := range []Arch{{}, AMD64} {
			rec, err := recipeFor(f, arch)
			if err != nil {
				t.Fatal(err)
			}
			if got := recipeHash(f, rec, "6.1.0-56-cloud-amd64", "6.1.0-57-cloud-amd64"); got != want[f] {
				t.Errorf("the %s recipe's hash for %q is %s; want %s", f, arch.GOARCH, got, want[f])
			}
		}
	}
	if DiskAppendOf(AMD64) != DiskAppend || DiskAppendOf(Arch{}) != DiskAppend {
		t.Errorf("DiskAppendOf(AMD64) = %q; want DiskAppend, %q", DiskAppendOf(AMD64), DiskAppend)
	}
	if got, want := debsDirName(Systemd, AMD64), "debs-systemd"; got != want {
		t.Errorf("amd64's debootstrap cache is %s; want %s", got, want)
	}
}

// TestRecipeARM64: an arm64 image masks the getty of its own console and
// has a hash, a cache name and a download cache of its own.
func TestRecipeARM64(t *testing.T) {
	for _, f := range Flavours {
		amd, _ := recipeFor(f, AMD64)
		arm, err := recipeFor(f, ARM64)
		if err != nil {
			t.Fatal(err)
		}
		if recipeHash(f, amd, "6.1.0-56-cloud-arm64", "6.1.0-57-cloud-arm64") == recipeHash(f, arm, "6.1.0-56-cloud-arm64", "6.1.0-57-cloud-arm64") {
			t.Errorf("%s: the arm64 recipe hashes as the amd64 one", f)
		}
		if debsDirName(f, ARM64) == debsDirName(f, AMD64) {
			t.Errorf("%s: arm64 and amd64 share the debootstrap cache %s", f, debsDirName(f, AMD64))
		}
	}
	arm, _ := recipeFor(Systemd, ARM64)
	if !strings.Contains(arm.enable, "serial-getty@ttyAMA0.service") || strings.Contains(arm.enable, "ttyS0") {
		t.Errorf("arm64 systemd recipe enables %q; want ttyAMA0's getty masked", arm.enable)
	}
	if got, want := DiskAppendOf(ARM64), "root=/dev/nvme0n1 ro console=ttyAMA0 norandmaps cryptomgr.notests"; got != want {
		t.Errorf("DiskAppendOf(ARM64) = %q; want %q", got, want)
	}
	img := &DiskImage{Flavour: Systemd, GOARCH: "arm64", KernelA: "/k", InitrdA: "/i"}
	if o := img.Boot("/d"); o.Arch.GOARCH != "arm64" || o.Append != DiskAppendOf(ARM64) {
		t.Errorf("arm64 image boots %s with %q", o.Arch, o.Append)
	}
	if old := (&DiskImage{Flavour: Systemd}); old.Arch().GOARCH != "amd64" || old.Append() != DiskAppend {
		t.Errorf("an image without GOARCH boots %s with %q; want amd64's", old.Arch(), old.Append())
	}
}

func checkShell(t *testing.T, name, text string) {
	t.Helper()
	cmd := exec.Command("sh", "-n")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s does not parse: %v\n%s", name, err, out)
	}
}

// TestGuestLib runs lib.sh's step and kx_ helpers on the host and reads
// their output with Parse, as a test reads a guest's console.
func TestGuestLib(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "lib.sh")
	if err := os.WriteFile(lib, []byte(guestLib), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `. "$1"; KX_RUN=$2
say stage 7
n=keep
step two sh -c 'echo out1; echo out2; echo err1 >&2; exit 3'
say n "$n"
( say inside yes; kx_reboot; say after no )
say action "$(cat "$KX_RUN/action")"
say mode "$(kx_rootmode)"
`
	out, err := exec.Command("sh", "-c", script, "sh", lib, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := Parse(strings.Split(string(out), "\n")).Stage("7")
	s := r.Step("two")
	if !reflect.DeepEqual(s.Out, []string{"out1", "out2"}) || s.Stderr() != "err1" || s.RC != 3 {
		t.Errorf("step: got %+v", s)
	}
	for k, want := range map[string]string{"n": "keep", "inside": "yes", "action": "reboot"} {
		if got, _ := r.Get(k); got != want {
			t.Errorf("%s: got %q; want %q\n%s", k, got, want, out)
		}
	}
	if _, ok := r.Get("after"); ok {
		t.Errorf("kx_reboot did not leave the script")
	}
	if m, _ := r.Get("mode"); m != "rw" && m != "ro" {
		t.Errorf("kx_rootmode: %q", m)
	}
}

// TestInject writes files into a small ext4 image, through a /sbin ->
// usr/sbin link as in Debian's merged /usr, and reads them back.
func TestInject(t *testing.T) {
	for _, tool := range []string{"mke2fs", "debugfs"} {
		if !exists(sbin(tool)) {
			t.Fatalf("%s is not installed: apt-get install e2fsprogs (scripts/install-test-deps does)", tool)
		}
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{"usr/sbin", "etc"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/sbin", filepath.Join(tree, "sbin")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"etc/old", "etc/gone"} {
		if err := os.WriteFile(filepath.Join(tree, f), []byte("old\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	disk := filepath.Join(dir, "disk.img")
	if out, err := exec.Command(sbin("mke2fs"), "-q", "-F", "-t", "ext4", "-d", tree, disk, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	host := filepath.Join(dir, "host file")
	if err := os.WriteFile(host, []byte("from the host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Inject(disk,
		GuestFile{Path: "/etc/kxtest/boot-1.sh", Data: []byte("say hi\n")},
		GuestFile{Path: "/usr/local/sbin/kxboot", Mode: 0o755, HostPath: host},
		GuestFile{Path: "/sbin/init-wrapper", Mode: 0o4755, Data: []byte("#!/bin/sh\n")},
		GuestFile{Path: "/sbin/new/dir/f", Data: []byte("deep\n")},
		GuestFile{Path: "/etc/old", Mode: 0o640, Data: []byte("new\n")},
		GuestFile{Path: "/etc/link", Target: "../usr/local/sbin/kxboot"},
		GuestFile{Path: "/var/lib/kxtest", Dir: true, Mode: 0o700},
		GuestFile{Path: "/etc/gone", Absent: true},
		GuestFile{Path: "/etc/never-was", Absent: true},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, mode, data string }{
		{"/etc/kxtest/boot-1.sh", "0644", "say hi\n"},
		{"/usr/local/sbin/kxboot", "0755", "from the host\n"},
		{"/usr/sbin/init-wrapper", "04755", "#!/bin/sh\n"},
		{"/usr/sbin/new/dir/f", "0644", "deep\n"},
		{"/etc/old", "0640", "new\n"},
		{"/etc/kxtest", "0755", ""},
		{"/var/lib/kxtest", "0700", ""},
	} {
		st, err := exec.Command(sbin("debugfs"), "-R", "stat "+c.path, disk).Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(st), "Mode:  "+c.mode) || !strings.Contains(string(st), "User:     0   Group:     0") {
			t.Errorf("%s: want mode %s, owner 0:0; debugfs says:\n%s", c.path, c.mode, st)
		}
		if c.data != "" {
			got, err := exec.Command(sbin("debugfs"), "-R", "cat "+c.path, disk).Output()
			if err != nil || string(got) != c.data {
				t.Errorf("%s holds %q (%v); want %q", c.path, got, err, c.data)
			}
		}
	}
	if ty, err := debugfsType(disk, "/etc/gone"); err != nil || ty != "" {
		t.Errorf("/etc/gone is still there (%q, %v)", ty, err)
	}
	if st, _ := exec.Command(sbin("debugfs"), "-R", "stat /etc/link", disk).Output(); !strings.Contains(string(st), `Fast link dest: "../usr/local/sbin/kxboot"`) {
		t.Errorf("/etc/link:\n%s", st)
	}
	if err := Inject(disk, GuestFile{Path: "relative"}); err == nil {
		t.Errorf("a relative path: no error")
	}
	if err := Inject(disk, GuestFile{Path: "/etc/kxtest/boot-1.sh/x", Data: []byte("x")}); err == nil {
		t.Errorf("a file below a regular file: no error")
	}
}
