package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

func TestParseGoodLines(t *testing.T) {
	for _, tt := range []struct{ line, key, val string }{
		{"KERNEL=/boot/vmlinuz-6.1.0-18-amd64", "KERNEL", "/boot/vmlinuz-6.1.0-18-amd64"},
		{`KERNEL="/boot/vmlinuz"`, "KERNEL", "/boot/vmlinuz"},
		{`KERNEL='/boot/vmlinuz'`, "KERNEL", "/boot/vmlinuz"},
		{"export KERNEL=/vmlinuz", "KERNEL", "/vmlinuz"},
		{"\texport\tKERNEL=/vmlinuz", "KERNEL", "/vmlinuz"},
		{"  KERNEL=/vmlinuz   # the distribution's link", "KERNEL", "/vmlinuz"},
		{`APPEND="console=ttyS0,115200n8 nomodeset"`, "APPEND", "console=ttyS0,115200n8 nomodeset"},
		{`APPEND='dyndbg="file a.c +p"'`, "APPEND", `dyndbg="file a.c +p"`},
		{`APPEND="dyndbg=\"file a.c +p\""`, "APPEND", `dyndbg="file a.c +p"`},
		{"CMDLINE=\"a \\\\ b \\$ c \\` d\"", "CMDLINE", "a \\ b $ c ` d"},
		{`CMDLINE="a\nb \x"`, "CMDLINE", `a\nb \x`}, // other backslashes stay, as in sh
		{`CMDLINE='$HOME and \ and "'`, "CMDLINE", `$HOME and \ and "`},
		{`HEALTH_CMD="systemctl is-system-running --wait" # must say running`, "HEALTH_CMD", "systemctl is-system-running --wait"},
		{"KERNEL=a#b", "KERNEL", "a#b"}, // '#' starts a comment only after white space
		{"KERNEL=#b", "KERNEL", "#b"},
		{"KERNEL=", "KERNEL", ""},
		{`KERNEL=""`, "KERNEL", ""},
		{"KERNEL= # none", "KERNEL", ""},
		{`KERNEL="/boot/a"'b'c`, "KERNEL", "/boot/abc"},
		{`KERNEL=/boot/my\ kernel`, "KERNEL", "/boot/my kernel"},
		{"KERNEL=/boot/vmlinuz-*", "KERNEL", "/boot/vmlinuz-*"}, // no globbing in assignments
		{"PANIC=0", "PANIC", "0"},
		{"HEALTH_CMD='ping -c1 10.0.0.1'", "HEALTH_CMD", "ping -c1 10.0.0.1"},
		{"MODE=chain", "MODE", "chain"},
	} {
		c, err := Parse(Path, []byte(tt.line+"\n"), Kxboot)
		if err != nil {
			t.Errorf("%s: %v", tt.line, err)
			continue
		}
		if got, ok := c.Values[tt.key]; !ok || got != tt.val || len(c.Values) != 1 {
			t.Errorf("%s: Values = %q; want %s=%q", tt.line, c.Values, tt.key, tt.val)
		}
		if c.Line[tt.key] != 1 {
			t.Errorf("%s: Line = %v; want 1", tt.line, c.Line)
		}
	}
}

func TestParseBadLines(t *testing.T) {
	const p = "/etc/default/kxboot:1: "
	for _, tt := range []struct{ line, want string }{
		{"KERNEL = /vmlinuz", `"KERNEL = /vmlinuz" is not a KEY=value assignment; write it as KEY=value with no space around "="`},
		{"if [ -x /sbin/kexec ]; then", `"if [ -x /sbin/kexec ]; then" is not a KEY=value assignment; write it as KEY=value with no space around "="`},
		{"export KERNEL", `"KERNEL" is not a KEY=value assignment; write it as KEY=value with no space around "="`},
		{`: "${KERNEL:=vmlinuz-$(uname -r | awk -F \- '{print $NF }')}"`, `": \"${KERNEL:=vmlinuz-$(uname -r | awk -F"... is not a KEY=value assignment; write it as KEY=value with no space around "="`},
		{"KERNEL+=/vmlinuz", `"KERNEL+=/vmlinuz" is not a KEY=value assignment; write it as KEY=value with no space around "="`},
		{"1KERNEL=/vmlinuz", `"1KERNEL=/vmlinuz" is not a KEY=value assignment; write it as KEY=value with no space around "="`},
		{`KERNEL="/vmlinuz`, "the value of KERNEL has an unclosed double quote; close it on the same line"},
		{`KERNEL="/vmlinuz\"`, "the value of KERNEL has an unclosed double quote; close it on the same line"},
		{`KERNEL='/vmlinuz`, "the value of KERNEL has an unclosed single quote; close it on the same line"},
		{"APPEND=quiet splash", "the value of APPEND has white space outside quotes; put the whole value in double quotes"},
		{"MAX_TRIES=-1", `MAX_TRIES="-1" is not a number of hops from 0 to 100; write for example MAX_TRIES=3 (0 never stops hopping)`},
		{"HEALTH_DEADLINE=5", `HEALTH_DEADLINE="5" is not a number of seconds from 10 to 86400; write for example HEALTH_DEADLINE=300`},
		{"REBOOT_PRELOAD=always", `REBOOT_PRELOAD="always" is not auto, yes or no; write REBOOT_PRELOAD=auto (preload when the kernel and initrds take at most 1/32 of the RAM), yes or no`},
		{"PANIC=-1", `PANIC="-1" is not a number of seconds from 0 to 3600; write for example PANIC=10 (0 adds no panic= parameter)`},
		{"WATCHDOG=maybe", `WATCHDOG="maybe" is not yes or no; write WATCHDOG=yes or WATCHDOG=no`},
		{"APPEND= quiet", "the value of APPEND has white space outside quotes; put the whole value in double quotes"},
		{"KERNEL=/vmlinuz INITRD=/initrd.img", "the line holds more than one assignment; put each KEY=value on its own line"},
		{"KERNEL=/boot/vmlinuz-$(uname -r)", "the value of KERNEL uses shell expansion ($...), which kxboot does not evaluate; write the value out"},
		{`KERNEL="/boot/vmlinuz-$VERSION"`, "the value of KERNEL uses shell expansion ($...), which kxboot does not evaluate; write the value out"},
		{"KERNEL=`ls /boot/vmlinuz-*`", "the value of KERNEL uses shell expansion (`...`), which kxboot does not evaluate; write the value out"},
		{"KERNEL=\"`ls`\"", "the value of KERNEL uses shell expansion (`...`), which kxboot does not evaluate; write the value out"},
		{"KERNEL=~/vmlinuz", "the value of KERNEL uses shell expansion (~), which kxboot does not evaluate; write the value out"},
		{"KERNEL=/vmlinuz;reboot", "the value of KERNEL uses shell syntax (;), which kxboot does not run; put the value in single quotes"},
		{"KERNEL=/vmlinuz&", "the value of KERNEL uses shell syntax (&), which kxboot does not run; put the value in single quotes"},
		{`KERNEL=/vmlinuz\`, "the value of KERNEL ends in a backslash, which continues the line in a shell; put the value on one line"},
		{"KERNEL=/vmlinuz\r", "the line ends in a carriage return (DOS line endings); convert the file with dos2unix"},
		{"KERNEL=/vm\x00linuz", "the line holds a NUL byte; the file must be plain text"},
		{"KERNAL=/vmlinuz", "KERNAL is not a kxboot setting; did you mean KERNEL?"},
		{"kernel=/vmlinuz", "kernel is not a kxboot setting; did you mean KERNEL?"},
		{"INITRAMFS=/initrd.img", "INITRAMFS is not a kxboot setting; the settings are ENABLED, KERNEL, INITRD, APPEND, CMDLINE, MARKER, ABORT_SECONDS, MAX_TRIES, HEALTH_CMD, HEALTH_DEADLINE, PANIC, WATCHDOG, KNOWN_GOOD, MODE, METRICS_DIR, REBOOT_PRELOAD"},
		{"exportKERNEL=/vmlinuz", "exportKERNEL is not a kxboot setting; the settings are ENABLED, KERNEL, INITRD, APPEND, CMDLINE, MARKER, ABORT_SECONDS, MAX_TRIES, HEALTH_CMD, HEALTH_DEADLINE, PANIC, WATCHDOG, KNOWN_GOOD, MODE, METRICS_DIR, REBOOT_PRELOAD"},
		{"KERNEL_IMAGE=/vmlinuz", "KERNEL_IMAGE is not a kxboot setting; the settings are ENABLED, KERNEL, INITRD, APPEND, CMDLINE, MARKER, ABORT_SECONDS, MAX_TRIES, HEALTH_CMD, HEALTH_DEADLINE, PANIC, WATCHDOG, KNOWN_GOOD, MODE, METRICS_DIR, REBOOT_PRELOAD"},
		{"ENABLED=maybe", `ENABLED="maybe" is not yes or no; write ENABLED=yes or ENABLED=no`},
		{`MARKER="hop once"`, `MARKER="hop once" is not a single kernel parameter; write one word such as MARKER=kxboot.chained=1`},
		{`MARKER='a="b"'`, `MARKER="a=\"b\"" is not a single kernel parameter; write one word such as MARKER=kxboot.chained=1`},
		{"MARKER=--", `MARKER="--" is not a single kernel parameter; write one word such as MARKER=kxboot.chained=1`},
	} {
		_, err := Parse(Path, []byte(tt.line+"\n"), Kxboot)
		if err == nil || err.Error() != p+tt.want {
			t.Errorf("%s:\n got %v\nwant %s", tt.line, err, p+tt.want)
		}
	}
}

func TestParseFile(t *testing.T) {
	data := "# comment\n\nKERNEL=/vmlinuz\nENABLED=no\nKERNEL=/boot/vmlinuz-6.8\nMAX_TRIES=3\n"
	c, err := Parse(Path, []byte(data), Kxboot)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path:    Path,
		Format:  Kxboot,
		Enabled: false,
		Kernel:  "/boot/vmlinuz-6.8",
		Values:  map[string]string{"KERNEL": "/boot/vmlinuz-6.8", "ENABLED": "no", "MAX_TRIES": "3"},
		Line:    map[string]int{"KERNEL": 5, "ENABLED": 4, "MAX_TRIES": 6},

		AbortSeconds: DefaultAbortSeconds, MaxTries: 3, HealthDeadline: DefaultHealthDeadline,
		Panic: DefaultPanic, Watchdog: true, KnownGood: true, Preload: PreloadAuto,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}

	_, err = Parse("/srv/kx", []byte("KERNEL=/vmlinuz\n\n  KERNAL=/x # typo\n"), Kxboot)
	if got, want := err.Error(), "/srv/kx:3: KERNAL is not a kxboot setting; did you mean KERNEL?"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	_, err = Parse("/srv/kx", []byte("ENABLED=yes\nENABLED=perhaps\n"), Kxboot)
	if got, want := err.Error(), `/srv/kx:2: ENABLED="perhaps" is not yes or no; write ENABLED=yes or ENABLED=no`; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	if _, err := Parse("/srv/kx", nil, "grub"); err == nil {
		t.Error("Parse with an unknown format did not fail")
	}
}

func TestEnabled(t *testing.T) {
	for _, tt := range []struct {
		val  string
		want bool
	}{{"yes", true}, {"YES", true}, {"true", true}, {"1", true}, {"", true}, {"no", false}, {"No", false}, {"false", false}, {"0", false}} {
		c, err := Parse(Path, []byte("ENABLED="+tt.val), Kxboot)
		if err != nil || c.Enabled != tt.want {
			t.Errorf("ENABLED=%s: Enabled = %v, %v; want %v", tt.val, c.Enabled, err, tt.want)
		}
	}
	c, _ := Parse(Path, nil, Kxboot)
	if !c.Enabled {
		t.Error("an empty kxboot file is not enabled")
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The example files of the recipes and their kxboot equivalents.
func TestSeedFiles(t *testing.T) {
	for _, tt := range []struct {
		file, format string
		want         Config
	}{
		{"droplet-kernel", Droplet, Config{Enabled: true, Kernel: "/vmlinuz", Initrd: []string{"/initrd.img"}}},
		{"kexec", Debian, Config{Enabled: true, Kernel: "/vmlinuz", Initrd: []string{"/initrd.img"}}},
		{"kxboot-fast-reboot", Kxboot, Config{Enabled: true, Kernel: "/vmlinuz", Initrd: []string{"/initrd.img"}}},
		{"kxboot-alpine", Kxboot, Config{Enabled: true, Kernel: "/boot/vmlinuz-lts", Initrd: []string{"/boot/initramfs-lts"}}},
		{"kxboot-scaleway", Kxboot, Config{Enabled: true, Kernel: "/vmlinuz", Initrd: []string{"/initrd.img"}, Append: "root=/dev/vda1", Marker: "is_in_kexec=yes"}},
		{"kxboot", Kxboot, Config{
			Enabled: true,
			Kernel:  "/boot/vmlinuz-6.1.0-18-amd64",
			Initrd:  []string{"/boot/intel-ucode.img", "/boot/initrd.img-6.1.0-18-amd64"},
			Append:  `console=ttyS0,115200n8 dyndbg="file drivers/usb/* +p"`,
			Marker:  "kxboot.chained=1",
		}},
	} {
		c, err := Parse("/etc/default/x", read(t, tt.file), tt.format)
		if err != nil {
			t.Errorf("%s: %v", tt.file, err)
			continue
		}
		if c.Enabled != tt.want.Enabled || c.Kernel != tt.want.Kernel || !slices.Equal(c.Initrd, tt.want.Initrd) ||
			c.Append != tt.want.Append || c.Cmdline != tt.want.Cmdline || c.Marker != tt.want.Marker {
			t.Errorf("%s: got %+v; want %+v", tt.file, c, tt.want)
		}
		if len(c.Warnings) != 0 {
			t.Errorf("%s: warnings %q", tt.file, c.Warnings)
		}
	}
	c, _ := Parse(Path, read(t, "kxboot"), Kxboot)
	if c.Values["ABORT_SECONDS"] != "10" || c.Values["HEALTH_CMD"] != "systemctl is-system-running --wait" || c.Line["HEALTH_CMD"] != 10 {
		t.Errorf("reserved keys: Values %q, Line %v", c.Values, c.Line)
	}
}

func TestLegacy(t *testing.T) {
	const dk, dx = "/etc/default/droplet-kernel", "/etc/default/kexec"
	for _, tt := range []struct {
		name, format, data string
		want               Config
	}{
		{dk, Droplet, "ENABLED=true\nKERNEL_IMAGE=/boot/vmlinuz-grsec\nAPPEND=\"root=/dev/vda1 ro\"\n", Config{
			Enabled: true, Kernel: "/boot/vmlinuz-grsec", Cmdline: "root=/dev/vda1 ro",
			Warnings: []string{dk + ":3: APPEND replaced the running command line in the droplet-kernel script, so kxboot reads it as CMDLINE; in /etc/default/kxboot write CMDLINE= for that, or APPEND= to add to the running one"},
		}},
		{dk, Droplet, "ENABLED=yes\n", Config{
			Warnings: []string{dk + `:1: ENABLED="yes" is not "true", so the droplet-kernel script did nothing; kxboot reads it as disabled too`},
		}},
		{dk, Droplet, "ENABLED=false\nKERNEL_IMAGE=/vmlinuz\n", Config{Kernel: "/vmlinuz"}},
		{dk, Droplet, "KERNEL_IMAGE=/vmlinuz\n", Config{Kernel: "/vmlinuz"}}, // the script tested ENABLED = true
		{dk, Droplet, "ENABLED=true\nINITRD=\nSLEEP=10\n", Config{
			Enabled:  true,
			Warnings: []string{dk + ":3: SLEEP is not a droplet-kernel setting; kxboot ignores it"},
		}},
		{dx, Debian, "LOAD_KEXEC=false\nKERNEL_IMAGE=\"/vmlinuz\"\nINITRD=\"/initrd.img\"\nAPPEND=\"\"\n", Config{Kernel: "/vmlinuz", Initrd: []string{"/initrd.img"}}},
		{dx, Debian, "LOAD_KEXEC=true\nAPPEND=\"root=/dev/sda2 quiet\"\nREUSE_CMDLINE=false\n", Config{
			Enabled: true, Cmdline: "root=/dev/sda2 quiet",
			Warnings: []string{dx + ":2: APPEND replaced the running command line in Debian's kexec-load script, so kxboot reads it as CMDLINE; in /etc/default/kxboot write CMDLINE= for that, or APPEND= to add to the running one"},
		}},
		{dx, Debian, "LOAD_KEXEC=true\nUSE_GRUB_CONFIG=true\nKERNEL_IMAGE=/vmlinuz\nINITRD=/initrd.img\nAPPEND=quiet\n", Config{
			Enabled:  true,
			Warnings: []string{dx + ":2: USE_GRUB_CONFIG=true made kexec-load boot GRUB's default entry, so kxboot ignores KERNEL_IMAGE, INITRD and APPEND and finds the default kernel itself"},
		}},
		{dx, Debian, "LOAD_KEXEC=1\nKDUMP=yes\n", Config{
			Warnings: []string{
				dx + ":2: KDUMP is not a kexec-tools setting; kxboot ignores it",
				dx + `:1: LOAD_KEXEC="1" is not "true", so the kexec-load script did nothing; kxboot reads it as disabled too`,
			},
		}},
	} {
		c, err := Parse(tt.name, []byte(tt.data), tt.format)
		if err != nil {
			t.Errorf("%q: %v", tt.data, err)
			continue
		}
		if c.Enabled != tt.want.Enabled || c.Kernel != tt.want.Kernel || !slices.Equal(c.Initrd, tt.want.Initrd) ||
			c.Append != tt.want.Append || c.Cmdline != tt.want.Cmdline || c.Marker != tt.want.Marker ||
			!slices.Equal(c.Warnings, tt.want.Warnings) {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.data, c, tt.want)
		}
	}
	// A recipe's file is still read without a shell.
	_, err := Parse(dx, []byte("LOAD_KEXEC=true\nKERNEL_IMAGE=/boot/vmlinuz-$(uname -r)\n"), Debian)
	if got, want := err.Error(), dx+":2: the value of KERNEL_IMAGE uses shell expansion ($...), which kxboot does not evaluate; write the value out"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

func TestAbortSeconds(t *testing.T) {
	for in, want := range map[string]int{"": DefaultAbortSeconds, "0": 0, "12": 12} {
		c, err := Parse(Path, []byte("ABORT_SECONDS="+in+"\n"), Kxboot)
		if err != nil || c.AbortSeconds != want {
			t.Errorf("ABORT_SECONDS=%s: %v, %v; want %d", in, c, err, want)
		}
	}
	for _, bad := range []string{"-1", "five", "601", "1.5"} {
		_, err := Parse(Path, []byte("\nABORT_SECONDS="+bad+"\n"), Kxboot)
		if err == nil || !strings.Contains(err.Error(), Path+":2: ABORT_SECONDS") {
			t.Errorf("ABORT_SECONDS=%s: %v", bad, err)
		}
	}
}

func TestFormat(t *testing.T) {
	c, err := Parse(Path, read(t, "kxboot"), Kxboot)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Format(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `# kxboot settings, read without a shell: write values out, no $ or ` + "`" + `.
ENABLED="yes"
KERNEL="/boot/vmlinuz-6.1.0-18-amd64"
INITRD="/boot/intel-ucode.img /boot/initrd.img-6.1.0-18-amd64"
APPEND="console=ttyS0,115200n8 dyndbg=\"file drivers/usb/* +p\""
MARKER="kxboot.chained=1"
ABORT_SECONDS="10"
HEALTH_CMD="systemctl is-system-running --wait"
`
	if got != want {
		t.Errorf("Format =\n%s\nwant\n%s", got, want)
	}

	// Moving from the droplet recipe: APPEND becomes CMDLINE.
	c, err = Parse("/etc/default/droplet-kernel", []byte("ENABLED=true\nKERNEL_IMAGE=/vmlinuz\nAPPEND='root=/dev/vda1 $ \"x\"'\nSLEEP=3\n"), Droplet)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = Format(c)
	want = "# kxboot settings, read without a shell: write values out, no $ or `.\n" +
		"ENABLED=\"yes\"\nKERNEL=\"/vmlinuz\"\nCMDLINE=\"root=/dev/vda1 \\$ \\\"x\\\"\"\nABORT_SECONDS=\"5\"\n"
	if got != want {
		t.Errorf("Format of a droplet-kernel file =\n%s\nwant\n%s", got, want)
	}
	back, err := Parse(Path, []byte(got), Kxboot)
	if err != nil || back.Cmdline != `root=/dev/vda1 $ "x"` || back.Kernel != "/vmlinuz" || !back.Enabled {
		t.Errorf("Format's output reads back as %+v, %v", back, err)
	}

	c.Kernel = "/boot/a\nb"
	if _, err := Format(c); err == nil || err.Error() != "the value of KERNEL holds a newline or NUL byte, which /etc/default/kxboot cannot hold; remove it" {
		t.Errorf("Format with a newline: %v", err)
	}
}

// tree builds a machine root holding files (in-machine path: contents),
// every file 0644 and every directory 0755.
func tree(t *testing.T, files map[string]string) rootfs.FS {
	t.Helper()
	return rootfstest.Tree(t, files, nil)
}

const (
	kxFile      = "KERNEL=/boot/vmlinuz-6.8\n"
	dropletFile = "ENABLED=true\nKERNEL_IMAGE=/vmlinuz\n"
	debianFile  = "LOAD_KEXEC=true\nKERNEL_IMAGE=/vmlinuz.old\n"
)

func TestLoad(t *testing.T) {
	dk, dx := "/etc/default/droplet-kernel", "/etc/default/kexec"
	for _, tt := range []struct {
		name     string
		files    map[string]string
		path     string
		format   string
		kernel   string
		warnings []string
	}{
		{"none", nil, "", Kxboot, "", nil},
		{"other files only", map[string]string{"/etc/default/grub": "GRUB_TIMEOUT=5\n"}, "", Kxboot, "", nil},
		{"kxboot", map[string]string{Path: kxFile}, Path, Kxboot, "/boot/vmlinuz-6.8", nil},
		{"droplet", map[string]string{dk: dropletFile}, dk, Droplet, "/vmlinuz", nil},
		{"debian", map[string]string{dx: debianFile}, dx, Debian, "/vmlinuz.old", nil},
		{"droplet before debian", map[string]string{dk: dropletFile, dx: debianFile}, dk, Droplet, "/vmlinuz",
			[]string{dx + " is ignored because " + dk + " exists; remove it, and its recipe, once kxboot works"}},
		{"kxboot before all", map[string]string{Path: kxFile, dk: dropletFile, dx: debianFile}, Path, Kxboot, "/boot/vmlinuz-6.8", []string{
			dk + " is ignored because " + Path + " exists; remove it, and its recipe, once kxboot works",
			dx + " is ignored because " + Path + " exists; remove it, and its recipe, once kxboot works",
		}},
	} {
		c, err := Load(tree(t, tt.files))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if c.Path != tt.path || c.Format != tt.format || c.Kernel != tt.kernel || !slices.Equal(c.Warnings, tt.warnings) || !c.Enabled {
			t.Errorf("%s: got %+v", tt.name, c)
		}
		if c.Values == nil || c.Line == nil {
			t.Errorf("%s: nil maps in %+v", tt.name, c)
		}
	}
}

func TestLoadLink(t *testing.T) {
	fsys := tree(t, map[string]string{"/srv/kxboot.conf": kxFile})
	if err := os.MkdirAll(fsys.Path("/etc/default"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/srv/kxboot.conf", fsys.Path(Path)); err != nil {
		t.Fatal(err)
	}
	c, err := Load(fsys)
	if err != nil || c.Kernel != "/boot/vmlinuz-6.8" || c.Path != Path {
		t.Errorf("through a link: %+v, %v", c, err)
	}

	os.Remove(fsys.Path("/srv/kxboot.conf"))
	_, err = Load(fsys)
	if want := "/etc/default/kxboot is a link to /srv/kxboot.conf, which does not exist; fix the link or remove it"; err == nil || err.Error() != want {
		t.Errorf("dangling link: %v; want %s", err, want)
	}
}

func TestLoadErrors(t *testing.T) {
	fsys := tree(t, map[string]string{Path: "KERNEL=/vmlinuz\nKERNAL=/x\n"})
	_, err := Load(fsys)
	if want := "/etc/default/kxboot:2: KERNAL is not a kxboot setting; did you mean KERNEL?"; err == nil || err.Error() != want {
		t.Errorf("got %v; want %s", err, want)
	}

	for _, p := range []string{Path, "/etc/default/kexec"} {
		fsys := tree(t, map[string]string{p: "KERNEL=/vmlinuz\n"})
		if err := os.Chmod(fsys.Path(p), 0o666); err != nil {
			t.Fatal(err)
		}
		_, err := Load(fsys)
		want := "refusing the config: untrusted file: " + p + " is writable by group or others (mode 0666); fix with: chown root:root " + p + " && chmod go-w " + p
		if err == nil || err.Error() != want {
			t.Errorf("untrusted %s:\n got %v\nwant %s", p, err, want)
		}
	}

	fsys = tree(t, map[string]string{Path: kxFile})
	if err := os.Chmod(fsys.Path("/etc/default"), 0o777); err != nil {
		t.Fatal(err)
	}
	_, err = Load(fsys)
	if want := "refusing the config: untrusted file: /etc/default/kxboot sits in /etc/default, which is writable by group or others (mode 0777); fix with: chown root:root /etc/default && chmod go-w /etc/default"; err == nil || err.Error() != want {
		t.Errorf("untrusted directory:\n got %v\nwant %s", err, want)
	}

	// A file present but unreadable as a file is an error, not "missing".
	fsys = tree(t, nil)
	os.MkdirAll(fsys.Path(Path), 0o755)
	if _, err := Load(fsys); err == nil || !strings.HasPrefix(err.Error(), "reading /etc/default/kxboot: ") {
		t.Errorf("directory in place of the file: %v", err)
	}
}

func TestSlots(t *testing.T) {
	c, err := Parse("/etc/default/kxboot", []byte("SLOT_B_KERNEL=/boot/vmlinuz\nSLOT_B_ROOT=/dev/mmcblk0p3\nSLOT_B_INITRD=\"/boot/a /boot/b\"\nSLOT_A_KERNEL=/boot/vmlinuz-a\n"), Kxboot)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Slots) != 2 || c.Slots[0].Name != "A" || c.Slots[1].Root != "/dev/mmcblk0p3" || len(c.Slots[1].Initrd) != 2 || c.Slots[0].Initrd != nil || c.Slots[1].Line != 1 {
		t.Errorf("slots %+v", c.Slots)
	}
	for conf, want := range map[string]string{
		"SLOT_B_ROOT=/dev/x\n":                    "slot B has settings but no SLOT_B_KERNEL",
		"SLOT_A_KERNEL=vmlinuz\n":                 "SLOT_A_KERNEL=\"vmlinuz\" is not an absolute path",
		"KERNEL=/boot/k\nSLOT_A_KERNEL=/boot/k\n": "/etc/default/kxboot:1: KERNEL= and the SLOT_..._KERNEL settings both name the kernel",
		"SLOT_A_KERNELS=/boot/k\n":                "SLOT_A_KERNELS is not a kxboot setting",
	} {
		if _, err := Parse("/etc/default/kxboot", []byte(conf), Kxboot); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", conf, err, want)
		}
	}
}
