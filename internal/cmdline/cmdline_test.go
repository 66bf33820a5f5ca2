package cmdline

import (
	"slices"
	"strings"
	"testing"
)

// Command lines as machines print them in /proc/cmdline.
const (
	debianGrub = "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=2f9b5a8e-4c1d-4f5e-9a7b-3c2d1e0f9a8b ro quiet\n"
	fedoraBLS  = "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-6.8.5-301.fc40.x86_64 root=/dev/mapper/fedora-root ro rd.lvm.lv=fedora/root rd.lvm.lv=fedora/swap rhgb quiet\n"
	droplet    = "BOOT_IMAGE=/boot/vmlinuz-5.15.0-101-generic root=PARTUUID=9f6c5a3e-01 ro console=tty1 console=ttyS0 nvme_core.io_timeout=4294967295 panic=-1 kexeced\n"
	scaleway   = "console=ttyAMA0,115200n8 root=/dev/vda nbd.max_parts=8 is_in_kexec=yes root=/dev/vda1\n"
	initArgs   = "root=/dev/sda1 ro init=/usr/lib/systemd/systemd console=ttyS0,115200n8 -- --unit=rescue.target \"a b\"\n"
	spaces     = `root=/dev/vda1 dyndbg="file drivers/usb/* +p" "acpi_osi=!Windows 2012" systemd.setenv="GREETING=hello world" quiet`
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Cmdline
	}{
		{"", nil},
		{" \n", nil},
		{debianGrub, Cmdline{"BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64", "root=UUID=2f9b5a8e-4c1d-4f5e-9a7b-3c2d1e0f9a8b", "ro", "quiet"}},
		{fedoraBLS, Cmdline{"BOOT_IMAGE=(hd0,gpt2)/vmlinuz-6.8.5-301.fc40.x86_64", "root=/dev/mapper/fedora-root", "ro", "rd.lvm.lv=fedora/root", "rd.lvm.lv=fedora/swap", "rhgb", "quiet"}},
		{scaleway, Cmdline{"console=ttyAMA0,115200n8", "root=/dev/vda", "nbd.max_parts=8", "is_in_kexec=yes", "root=/dev/vda1"}},
		{initArgs, Cmdline{"root=/dev/sda1", "ro", "init=/usr/lib/systemd/systemd", "console=ttyS0,115200n8", "--", "--unit=rescue.target", `"a b"`}},
		{spaces, Cmdline{"root=/dev/vda1", `dyndbg="file drivers/usb/* +p"`, `"acpi_osi=!Windows 2012"`, `systemd.setenv="GREETING=hello world"`, "quiet"}},
		{"  a\t\tb  \r\n", Cmdline{"a", "b"}},
		{"a\vb\fc", Cmdline{"a", "b", "c"}},
		{"a\xa0b", Cmdline{"a", "b"}},                      // the kernel's isspace includes Latin-1 NBSP
		{`foo="a b`, Cmdline{`foo="a b`}},                  // unclosed: runs to the end
		{"foo=\"a b \n", Cmdline{`foo="a b`}},              // but not into the newline
		{`a"b c"d e`, Cmdline{`a"b c"d`, "e"}},             // a quote anywhere toggles
		{"a\x00b c", Cmdline{"a"}},                         // the kernel stops at NUL
		{`x="" y`, Cmdline{`x=""`, "y"}},                   // empty quoted value
		{`"quoted flag" z`, Cmdline{`"quoted flag"`, "z"}}, // leading quote
	} {
		if got := Parse(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Parse(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestString(t *testing.T) {
	for _, in := range []string{debianGrub, fedoraBLS, droplet, scaleway, initArgs, spaces} {
		want := strings.TrimSuffix(in, "\n")
		if got := Parse(in).String(); got != want {
			t.Errorf("Parse(%q).String() = %q; want %q", in, got, want)
		}
	}
}

func TestKeyValue(t *testing.T) {
	for _, tt := range []struct {
		tok, key, val string
		ok            bool
	}{
		{"quiet", "quiet", "", false},
		{"root=UUID=2f9b", "root", "UUID=2f9b", true},
		{"console=ttyS0,115200n8", "console", "ttyS0,115200n8", true},
		{"BOOT_IMAGE=(hd0,gpt2)/vmlinuz", "BOOT_IMAGE", "(hd0,gpt2)/vmlinuz", true},
		{`dyndbg="file drivers/usb/* +p"`, "dyndbg", "file drivers/usb/* +p", true},
		{`"acpi_osi=!Windows 2012"`, "acpi_osi", "!Windows 2012", true},
		{`systemd.setenv="GREETING=hello world"`, "systemd.setenv", "GREETING=hello world", true},
		{`"quoted flag"`, "quoted flag", "", false},
		{`"--"`, "--", "", false},
		{"empty=", "empty", "", true},
		{`empty=""`, "empty", "", true},
		{`open="`, "open", "", true},
		{`"open=`, "open", "", true},
		{`"x="`, "x", "", true},
		{`half="a b`, "half", "a b", true},
		{`mid=a"b"`, "mid", `a"b"`, true}, // quotes not at the value's start stay
		{"=lead", "=lead", "", false},     // next_arg ignores an '=' at the start
		{"=a=b", "=a", "b", true},
		{`"`, "", "", false},
	} {
		if got := Key(tt.tok); got != tt.key {
			t.Errorf("Key(%q) = %q; want %q", tt.tok, got, tt.key)
		}
		val, ok := Value(tt.tok)
		if val != tt.val || ok != tt.ok {
			t.Errorf("Value(%q) = %q, %v; want %q, %v", tt.tok, val, ok, tt.val, tt.ok)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, tt := range []struct{ key, val, want string }{
		{"root", "/dev/vda1", "root=/dev/vda1"},
		{"console", "ttyS0,115200n8", "console=ttyS0,115200n8"},
		{"dyndbg", "file drivers/usb/* +p", `dyndbg="file drivers/usb/* +p"`},
		{"x", "", "x="},
		{"tab", "a\tb", "tab=\"a\tb\""},
		{"nbsp", "\u00e0", "nbsp=\"\u00e0\""}, // à is C3 A0: the kernel would split it
	} {
		got := Quote(tt.key, tt.val)
		if got != tt.want {
			t.Errorf("Quote(%q, %q) = %q; want %q", tt.key, tt.val, got, tt.want)
		}
		if v, _ := Value(got); v != tt.val || Key(got) != tt.key {
			t.Errorf("Quote(%q, %q) = %q reads back as %q=%q", tt.key, tt.val, got, Key(got), v)
		}
	}
}

func TestParamsInitArgs(t *testing.T) {
	for _, tt := range []struct {
		in           string
		params, init Cmdline
	}{
		{debianGrub, Parse(debianGrub), nil},
		{initArgs, Cmdline{"root=/dev/sda1", "ro", "init=/usr/lib/systemd/systemd", "console=ttyS0,115200n8"}, Cmdline{"--unit=rescue.target", `"a b"`}},
		{"a -- b -- c", Cmdline{"a"}, Cmdline{"b", "--", "c"}},
		{`a "--" b`, Cmdline{"a"}, Cmdline{"b"}},
		{"a --=x b", Cmdline{"a", "--=x", "b"}, nil},
		{"a --", Cmdline{"a"}, Cmdline{}},
		{"-- b", Cmdline{}, Cmdline{"b"}},
	} {
		c := Parse(tt.in)
		if got := c.Params(); !slices.Equal(got, tt.params) {
			t.Errorf("Parse(%q).Params() = %q; want %q", tt.in, got, tt.params)
		}
		if got := c.InitArgs(); !slices.Equal(got, tt.init) || (got == nil) != (tt.init == nil) {
			t.Errorf("Parse(%q).InitArgs() = %#v; want %#v", tt.in, got, tt.init)
		}
	}
}

func TestParamsDoesNotAlias(t *testing.T) {
	c := Parse(initArgs)
	_ = append(c.Params(), "x")
	if c[4] != "--" {
		t.Errorf("appending to Params wrote into the command line: %q", c)
	}
}

func TestGet(t *testing.T) {
	for _, tt := range []struct {
		in, key, want string
		ok            bool
	}{
		{debianGrub, "root", "UUID=2f9b5a8e-4c1d-4f5e-9a7b-3c2d1e0f9a8b", true},
		{debianGrub, "quiet", "", true},
		{debianGrub, "splash", "", false},
		{fedoraBLS, "rd.lvm.lv", "fedora/swap", true},
		{droplet, "console", "ttyS0", true},
		{droplet, "panic", "-1", true},
		{scaleway, "root", "/dev/vda1", true}, // last wins
		{initArgs, "console", "ttyS0,115200n8", true},
		{initArgs, "--unit", "", false}, // init's, not the kernel's
		{spaces, "dyndbg", "file drivers/usb/* +p", true},
		{spaces, "acpi_osi", "!Windows 2012", true},
		{"quiet quiet=1", "quiet", "1", true},
	} {
		got, ok := Parse(tt.in).Get(tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Parse(%q).Get(%q) = %q, %v; want %q, %v", tt.in, tt.key, got, ok, tt.want, tt.ok)
		}
		if has := Parse(tt.in).Has(tt.key); has != tt.ok {
			t.Errorf("Parse(%q).Has(%q) = %v; want %v", tt.in, tt.key, has, tt.ok)
		}
	}
}

func TestSet(t *testing.T) {
	for _, tt := range []struct{ in, key, val, want string }{
		{scaleway, "root", "/dev/vda1", "console=ttyAMA0,115200n8 root=/dev/vda1 nbd.max_parts=8 is_in_kexec=yes"},
		{debianGrub, "console", "ttyS0,115200n8", "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=2f9b5a8e-4c1d-4f5e-9a7b-3c2d1e0f9a8b ro quiet console=ttyS0,115200n8"},
		{initArgs, "panic", "30", "root=/dev/sda1 ro init=/usr/lib/systemd/systemd console=ttyS0,115200n8 panic=30 -- --unit=rescue.target \"a b\""},
		{initArgs, "init", "/sbin/init", "root=/dev/sda1 ro init=/sbin/init console=ttyS0,115200n8 -- --unit=rescue.target \"a b\""},
		{spaces, "dyndbg", "file a.c +p", `root=/dev/vda1 dyndbg="file a.c +p" "acpi_osi=!Windows 2012" systemd.setenv="GREETING=hello world" quiet`},
		{spaces, "acpi_osi", "Linux", `root=/dev/vda1 dyndbg="file drivers/usb/* +p" acpi_osi=Linux systemd.setenv="GREETING=hello world" quiet`},
		{"quiet ro quiet", "quiet", "1", "quiet=1 ro"},
		{"", "root", "/dev/vda1", "root=/dev/vda1"},
		{"-- x", "root", "/dev/vda1", "root=/dev/vda1 -- x"},
	} {
		c := Parse(tt.in)
		before := slices.Clone(c)
		if got := c.Set(tt.key, tt.val).String(); got != tt.want {
			t.Errorf("Parse(%q).Set(%q, %q) =\n %q; want\n %q", tt.in, tt.key, tt.val, got, tt.want)
		}
		if !slices.Equal(c, before) {
			t.Errorf("Set changed its receiver: %q; was %q", c, before)
		}
	}
}

func TestSetNeverAliases(t *testing.T) {
	c := make(Cmdline, 2, 10)
	c[0], c[1] = "a", "b=1"
	d := c.Set("b", "2")
	_ = append(c, "c")
	if d[1] != "b=2" || len(d) != 2 {
		t.Errorf("Set result changed by appending to the receiver: %q", d)
	}
	d[0] = "z"
	if c[0] != "a" {
		t.Errorf("writing to Set's result wrote into the receiver: %q", c)
	}
}

func TestRemove(t *testing.T) {
	for _, tt := range []struct {
		in   string
		keys []string
		want string
	}{
		{debianGrub, []string{"quiet"}, "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=2f9b5a8e-4c1d-4f5e-9a7b-3c2d1e0f9a8b ro"},
		{fedoraBLS, []string{"rhgb", "quiet", "rd.lvm.lv"}, "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-6.8.5-301.fc40.x86_64 root=/dev/mapper/fedora-root ro"},
		{scaleway, []string{"root"}, "console=ttyAMA0,115200n8 nbd.max_parts=8 is_in_kexec=yes"},
		{initArgs, []string{"--unit", "console"}, "root=/dev/sda1 ro init=/usr/lib/systemd/systemd -- --unit=rescue.target \"a b\""},
		{spaces, []string{"acpi_osi"}, `root=/dev/vda1 dyndbg="file drivers/usb/* +p" systemd.setenv="GREETING=hello world" quiet`},
		{debianGrub, nil, strings.TrimSpace(debianGrub)},
	} {
		if got := Parse(tt.in).Remove(tt.keys...).String(); got != tt.want {
			t.Errorf("Parse(%q).Remove(%q) =\n %q; want\n %q", tt.in, tt.keys, got, tt.want)
		}
	}
}

func TestAppend(t *testing.T) {
	for _, tt := range []struct{ in, extra, want string }{
		{debianGrub, "nomodeset console=ttyS0", "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=2f9b5a8e-4c1d-4f5e-9a7b-3c2d1e0f9a8b ro quiet nomodeset console=ttyS0"},
		{initArgs, "nomodeset", "root=/dev/sda1 ro init=/usr/lib/systemd/systemd console=ttyS0,115200n8 nomodeset -- --unit=rescue.target \"a b\""},
		{initArgs, "nomodeset -- single", "root=/dev/sda1 ro init=/usr/lib/systemd/systemd console=ttyS0,115200n8 nomodeset -- --unit=rescue.target \"a b\" single"},
		{"ro", "quiet -- single", "ro quiet -- single"},
		{"ro", "", "ro"},
		{"", "ro", "ro"},
	} {
		c := Parse(tt.in)
		before := slices.Clone(c)
		if got := c.Append(Parse(tt.extra)).String(); got != tt.want {
			t.Errorf("Parse(%q).Append(%q) =\n %q; want\n %q", tt.in, tt.extra, got, tt.want)
		}
		if !slices.Equal(c, before) {
			t.Errorf("Append changed its receiver: %q", c)
		}
	}
}

func TestMarkers(t *testing.T) {
	for _, tt := range []struct {
		own  string
		want []string
	}{
		{"", []string{DefaultMarker, "kexeced", "is_in_kexec=yes"}},
		{"site.hop=1", []string{"site.hop=1", "kexeced", "is_in_kexec=yes"}},
		{"kexeced", []string{"kexeced", "is_in_kexec=yes"}},
	} {
		got := Markers(tt.own)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Markers(%q) = %q; want %q", tt.own, got, tt.want)
		}
		got[0] = "x"
		if LegacyMarkers[0] != "kexeced" {
			t.Fatalf("Markers returned LegacyMarkers itself")
		}
	}
}

func TestHasMarker(t *testing.T) {
	m := Markers("")
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{debianGrub, "", false},
		{droplet, "kexeced", true},
		{"root=/dev/vda kexeced console=ttyS0", "kexeced", true}, // not only at the end
		{scaleway, "is_in_kexec=yes", true},
		{`root=/dev/vda is_in_kexec="yes"`, "is_in_kexec=yes", true},
		{"root=/dev/vda is_in_kexec=no", "", false},
		{"root=/dev/vda kexeced=1", "", false},
		{"root=/dev/vda notkexeced", "", false},
		{"root=/dev/vda kxboot.chained=1", DefaultMarker, true},
		{"root=/dev/vda -- kxboot.chained=1", "", false},  // init's argument, not the kernel's
		{"kexeced kxboot.chained=1", DefaultMarker, true}, // own marker first
	} {
		got, ok := Parse(tt.in).HasMarker(m)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Parse(%q).HasMarker = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestReuse(t *testing.T) {
	m := Markers("")
	for _, tt := range []struct{ in, want string }{
		{debianGrub, "root=UUID=2f9b5a8e-4c1d-4f5e-9a7b-3c2d1e0f9a8b ro quiet"},
		{fedoraBLS, "root=/dev/mapper/fedora-root ro rd.lvm.lv=fedora/root rd.lvm.lv=fedora/swap rhgb quiet"},
		{droplet, "root=PARTUUID=9f6c5a3e-01 ro console=tty1 console=ttyS0 nvme_core.io_timeout=4294967295 panic=-1"},
		{scaleway, "console=ttyAMA0,115200n8 root=/dev/vda nbd.max_parts=8 root=/dev/vda1"},
		{"initrd=\\EFI\\debian\\initrd.img root=/dev/sda2 kxboot.chained=1 -- kexeced\n", "root=/dev/sda2 -- kexeced"},
		{initArgs, strings.TrimSpace(initArgs)},
	} {
		if got := Reuse(tt.in, m).String(); got != tt.want {
			t.Errorf("Reuse(%q) =\n %q; want\n %q", tt.in, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", 2048)
	for _, tt := range []struct{ in, want string }{
		{strings.TrimSpace(debianGrub), ""},
		{spaces, ""},
		{strings.Repeat("a", 2047), ""},
		{long, "the command line is 2048 bytes; the kernel accepts at most 2047, so drop parameters it does not need"},
		{`root=/dev/vda dyndbg="file a.c`, `the command line has an unclosed double quote in "dyndbg=\"file a.c"; close it or remove it`},
		{`a"b c`, `the command line has an unclosed double quote in "a\"b c"; close it or remove it`},
		{"root=/dev/vda\nquiet", "the command line holds a newline, which breaks every tool that reads /proc/cmdline; put it on one line"},
		{"root=/dev/vda\x00quiet", "the command line holds a NUL byte, which would end it early; remove it"},
	} {
		err := Validate(tt.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("Validate(%.40q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
