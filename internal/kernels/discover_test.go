package kernels

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

// tree copies testdata/<name> (or nothing, for name "") into a temp root,
// then adds the links (in-machine path -> target, as the distribution
// writes it), the bzImages (in-machine path -> release) and any other files.
func tree(t *testing.T, name string, links, bzImages, files map[string]string) rootfs.FS {
	t.Helper()
	fsys := rootfstest.New(t)
	if name != "" {
		if err := os.CopyFS(fsys.Root, os.DirFS(filepath.Join("testdata", name))); err != nil {
			t.Fatal(err)
		}
	}
	for p, release := range bzImages {
		rootfstest.Write(t, fsys, p, bzImage(release))
	}
	for p, data := range files {
		rootfstest.Write(t, fsys, p, []byte(data))
	}
	for p, target := range links {
		rootfstest.Link(t, fsys, p, target)
	}
	return fsys
}

const fedoraMID = "3f1c2a5e8b9d4e7fa0b1c2d3e4f5a6b7"

const fedoraOptions = "root=UUID=5e6f7a8b-1c2d-4e3f-9a0b-c1d2e3f4a5b6 ro rootflags=subvol=root no_timer_check net.ifnames=0 console=tty1 console=ttyS0,115200n8"

var distros = []struct {
	name     string
	links    map[string]string
	bzImages map[string]string
	want     []Kernel
}{
	{
		name: "debian12",
		links: map[string]string{
			"/vmlinuz":        "boot/vmlinuz-6.1.0-54-cloud-amd64",
			"/vmlinuz.old":    "boot/vmlinuz-6.1.0-47-cloud-amd64",
			"/initrd.img":     "boot/initrd.img-6.1.0-54-cloud-amd64",
			"/initrd.img.old": "boot/initrd.img-6.1.0-47-cloud-amd64",
		},
		want: []Kernel{
			{"6.1.0-54-cloud-amd64", "/boot/vmlinuz-6.1.0-54-cloud-amd64", []string{"/boot/initrd.img-6.1.0-54-cloud-amd64"}, "", "Debian /boot/vmlinuz-*"},
			{"6.1.0-47-cloud-amd64", "/boot/vmlinuz-6.1.0-47-cloud-amd64", []string{"/boot/initrd.img-6.1.0-47-cloud-amd64"}, "", "Debian /boot/vmlinuz-*"},
		},
	},
	{
		name: "ubuntu2204",
		links: map[string]string{
			"/boot/vmlinuz":        "vmlinuz-6.5.0-15-generic",
			"/boot/vmlinuz.old":    "vmlinuz-5.15.0-91-generic",
			"/boot/initrd.img":     "initrd.img-6.5.0-15-generic",
			"/boot/initrd.img.old": "initrd.img-5.15.0-91-generic",
		},
		want: []Kernel{
			{"6.5.0-15-generic", "/boot/vmlinuz-6.5.0-15-generic", []string{"/boot/initrd.img-6.5.0-15-generic"}, "", "Debian /boot/vmlinuz-*"},
			{"5.15.0-91-generic", "/boot/vmlinuz-5.15.0-91-generic", []string{"/boot/initrd.img-5.15.0-91-generic"}, "", "Debian /boot/vmlinuz-*"},
		},
	},
	{
		name: "fedora39",
		want: []Kernel{
			{"6.7.4-200.fc39.x86_64", "/boot/vmlinuz-6.7.4-200.fc39.x86_64", []string{"/boot/initramfs-6.7.4-200.fc39.x86_64.img"},
				fedoraOptions + " $tuned_params",
				"BLS entry /boot/loader/entries/" + fedoraMID + "-6.7.4-200.fc39.x86_64.conf (left out initrd $tuned_initrd: only grub expands its variables)"},
			{"6.5.6-300.fc39.x86_64", "/boot/vmlinuz-6.5.6-300.fc39.x86_64", []string{"/boot/initramfs-6.5.6-300.fc39.x86_64.img"},
				fedoraOptions + " $tuned_params",
				"BLS entry /boot/loader/entries/" + fedoraMID + "-6.5.6-300.fc39.x86_64.conf (left out initrd $tuned_initrd: only grub expands its variables)"},
			{"0-rescue-" + fedoraMID, "/boot/vmlinuz-0-rescue-" + fedoraMID, []string{"/boot/initramfs-0-rescue-" + fedoraMID + ".img"},
				fedoraOptions, "BLS entry /boot/loader/entries/" + fedoraMID + "-0-rescue.conf"},
		},
	},
	{
		// /boot on the root file system: the entry's paths start with /boot.
		name: "rhel8",
		want: []Kernel{
			{"4.18.0-513.5.1.el8_9.x86_64", "/boot/vmlinuz-4.18.0-513.5.1.el8_9.x86_64", []string{"/boot/initramfs-4.18.0-513.5.1.el8_9.x86_64.img"},
				"$kernelopts $tuned_params",
				"BLS entry /boot/loader/entries/9a8b7c6d5e4f40318a2b1c0d9e8f7a6b-4.18.0-513.5.1.el8_9.x86_64.conf (left out initrd $tuned_initrd: only grub expands its variables)"},
		},
	},
	{
		name:     "arch",
		bzImages: map[string]string{"/boot/vmlinuz-linux": "6.6.8-arch1-1", "/boot/vmlinuz-linux-lts": "6.1.69-1-lts"},
		want: []Kernel{
			{"6.6.8-arch1-1", "/boot/vmlinuz-linux", []string{"/boot/intel-ucode.img", "/boot/amd-ucode.img", "/boot/initramfs-linux.img"}, "", "Arch /boot/vmlinuz-linux"},
			{"6.1.69-1-lts", "/boot/vmlinuz-linux-lts", []string{"/boot/intel-ucode.img", "/boot/amd-ucode.img", "/boot/initramfs-linux-lts.img"}, "", "Arch /boot/vmlinuz-linux-lts"},
		},
	},
	{
		name:     "alpine",
		bzImages: map[string]string{"/boot/vmlinuz-lts": "6.6.14-0-lts", "/boot/vmlinuz-virt": "6.6.14-0-virt"},
		want: []Kernel{
			{"6.6.14-0-virt", "/boot/vmlinuz-virt", []string{"/boot/intel-ucode.img", "/boot/initramfs-virt"}, "", "Alpine /boot/vmlinuz-virt"},
			{"6.6.14-0-lts", "/boot/vmlinuz-lts", []string{"/boot/intel-ucode.img", "/boot/initramfs-lts"}, "", "Alpine /boot/vmlinuz-lts"},
		},
	},
	{
		name: "opensuse",
		links: map[string]string{
			"/boot/vmlinuz": "vmlinuz-6.4.0-150600.23.25-default",
			"/boot/initrd":  "initrd-6.4.0-150600.23.25-default",
		},
		want: []Kernel{
			{"6.4.0-150600.23.25-default", "/boot/vmlinuz-6.4.0-150600.23.25-default", []string{"/boot/initrd-6.4.0-150600.23.25-default"}, "", "SUSE /boot/vmlinuz-*"},
		},
	},
}

func TestInstalled(t *testing.T) {
	for _, d := range distros {
		t.Run(d.name, func(t *testing.T) {
			fsys := tree(t, d.name, d.links, d.bzImages, nil)
			got, err := Installed(fsys)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, d.want) {
				t.Errorf("Installed:\n got %s\nwant %s", show(got), show(d.want))
			}
			n, err := Newest(fsys)
			if err != nil || !reflect.DeepEqual(n, d.want[0]) {
				t.Errorf("Newest = %s, %v; want %s", show([]Kernel{n}), err, show(d.want[:1]))
			}
		})
	}
}

func show(ks []Kernel) string {
	var b strings.Builder
	for _, k := range ks {
		b.WriteString("\n\t")
		b.WriteString(strings.Join([]string{k.Version, k.Path, strings.Join(k.Initrds, ","), k.Options, k.Source}, " | "))
	}
	return b.String()
}

// A machine that has been several things: a Debian kernel, an Arch-style
// flavour, a systemd-boot entry on the ESP, a hand-built kernel of unknown
// version, a link to a kernel kept outside /boot, and two dangling links.
func TestInstalledMixed(t *testing.T) {
	fsys := tree(t, "",
		map[string]string{
			"/boot/vmlinuz-6.8.0-1-amd64": "/opt/kernels/vmlinuz-6.8.0-1-amd64", // absolute, resolved inside the root
			"/boot/vmlinuz-6.2.0-1-amd64": "vmlinuz-6.2.0-1-amd64.gone",         // dangling
			"/vmlinuz":                    "boot/vmlinuz-6.3.0-1-amd64",         // dangling
			"/initrd.img":                 "boot/initrd.img-6.3.0-1-amd64",
		},
		map[string]string{"/boot/vmlinuz-linux": "6.6.8-arch1-1"},
		map[string]string{
			"/boot/vmlinuz-6.1.0-54-cloud-amd64":    "k",
			"/boot/initrd.img-6.1.0-54-cloud-amd64": "i",
			"/opt/kernels/vmlinuz-6.8.0-1-amd64":    "k",
			"/boot/initrd.img-6.8.0-1-amd64":        "i",
			"/boot/initramfs-linux.img":             "i",
			"/boot/amd-ucode.img":                   "u",
			"/boot/vmlinuz-custom":                  "not a bzImage",
			"/efi/loader/entries/abc-6.9.0.conf":    "title Custom\nversion 6.9.0\nlinux /abc/6.9.0/linux\ninitrd /abc/6.9.0/initrd\noptions quiet\noptions console=ttyS0\n",
			"/efi/abc/6.9.0/linux":                  "k",
			"/efi/abc/6.9.0/initrd":                 "i",
			"/efi/loader/entries/uki.conf":          "title UKI\nefi /EFI/Linux/uki.efi\n",
			"/efi/loader/entries/gone.conf":         "title Gone\nversion 9.9\nlinux /nothere/linux\n",
			"/efi/loader/loader.conf":               "timeout 3\n",
		})
	want := []Kernel{
		{"6.9.0", "/efi/abc/6.9.0/linux", []string{"/efi/abc/6.9.0/initrd"}, "quiet console=ttyS0", "BLS entry /efi/loader/entries/abc-6.9.0.conf"},
		{"6.8.0-1-amd64", "/opt/kernels/vmlinuz-6.8.0-1-amd64", []string{"/boot/initrd.img-6.8.0-1-amd64"}, "", "Debian /boot/vmlinuz-*"},
		{"6.6.8-arch1-1", "/boot/vmlinuz-linux", []string{"/boot/amd-ucode.img", "/boot/initramfs-linux.img"}, "", "Arch /boot/vmlinuz-linux"},
		{"6.1.0-54-cloud-amd64", "/boot/vmlinuz-6.1.0-54-cloud-amd64", []string{"/boot/initrd.img-6.1.0-54-cloud-amd64"}, "", "Debian /boot/vmlinuz-*"},
		{"", "/boot/vmlinuz-custom", nil, "", "/boot/vmlinuz-custom (no initramfs-custom beside it)"},
	}
	got, err := Installed(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Installed:\n got %s\nwant %s", show(got), show(want))
	}
	// A dangling /vmlinuz names a kernel that is not there: ForImage says
	// where it would be and leaves the existence check to the caller.
	if got, want := ForImage(fsys, "/vmlinuz"), (Kernel{Path: "/boot/vmlinuz-6.3.0-1-amd64", Source: "named /vmlinuz"}); !reflect.DeepEqual(got, want) {
		t.Errorf("ForImage(/vmlinuz) = %s; want %s", show([]Kernel{got}), show([]Kernel{want}))
	}
}

func TestNewestNone(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"no /boot":    nil,
		"empty /boot": {"/boot/grub/grub.cfg": "x"},
		"only links":  {"/boot/System.map-6.1.0-1-amd64": "x", "/boot/vmlinuz-6.1.0-2-amd64.dpkg-tmp": "k", "/boot/vmlinuz-6.1.0-2-amd64.sig": "s"},
	} {
		fsys := tree(t, "", map[string]string{"/boot/vmlinuz-6.1.0-3-amd64": "nowhere"}, nil, files)
		if name == "no /boot" {
			fsys = tree(t, "", nil, nil, nil)
		}
		k, err := Newest(fsys)
		if err == nil {
			t.Errorf("%s: Newest = %+v; want an error", name, k)
			continue
		}
		if !strings.HasPrefix(err.Error(), "no installed kernel found in /boot (looked for ") ||
			!strings.HasSuffix(err.Error(), "; name one with --kernel or KERNEL= in /etc/default/kxboot") {
			t.Errorf("%s: error %q", name, err)
		}
	}
}

func TestForImage(t *testing.T) {
	fsysOf := map[string]rootfs.FS{}
	for _, d := range distros {
		fsysOf[d.name] = tree(t, d.name, d.links, d.bzImages, nil)
	}
	custom := tree(t, "", nil,
		map[string]string{"/root/bzImage": "6.11.0-custom", "/root/vmlinuz-6.11.0": "6.11.0"},
		map[string]string{"/root/initrd.img-6.11.0": "i"})
	fsysOf["custom"] = custom

	deb := distros[0].want
	for _, tt := range []struct {
		tree, path string
		want       Kernel
	}{
		{"debian12", "/vmlinuz", Kernel{"6.1.0-54-cloud-amd64", "/boot/vmlinuz-6.1.0-54-cloud-amd64", []string{"/boot/initrd.img-6.1.0-54-cloud-amd64"}, "", "link /vmlinuz with /initrd.img"}},
		{"debian12", "/vmlinuz.old", Kernel{"6.1.0-47-cloud-amd64", "/boot/vmlinuz-6.1.0-47-cloud-amd64", []string{"/boot/initrd.img-6.1.0-47-cloud-amd64"}, "", "link /vmlinuz.old with /initrd.img.old"}},
		{"debian12", "/boot/vmlinuz-6.1.0-47-cloud-amd64", deb[1]},
		{"debian12", "boot/../boot/vmlinuz-6.1.0-54-cloud-amd64", deb[0]},
		{"ubuntu2204", "/boot/vmlinuz", Kernel{"6.5.0-15-generic", "/boot/vmlinuz-6.5.0-15-generic", []string{"/boot/initrd.img-6.5.0-15-generic"}, "", "link /boot/vmlinuz with /boot/initrd.img"}},
		{"opensuse", "/boot/vmlinuz", Kernel{"6.4.0-150600.23.25-default", "/boot/vmlinuz-6.4.0-150600.23.25-default", []string{"/boot/initrd-6.4.0-150600.23.25-default"}, "", "link /boot/vmlinuz with /boot/initrd"}},
		{"fedora39", "/boot/vmlinuz-6.5.6-300.fc39.x86_64", distros[2].want[1]},
		{"arch", "/boot/vmlinuz-linux", distros[4].want[0]},
		{"alpine", "/boot/vmlinuz-lts", distros[5].want[1]},
		{"custom", "/root/bzImage", Kernel{"6.11.0-custom", "/root/bzImage", nil, "", "named /root/bzImage"}},
		{"custom", "/root/vmlinuz-6.11.0", Kernel{"6.11.0", "/root/vmlinuz-6.11.0", []string{"/root/initrd.img-6.11.0"}, "", "Debian /root/vmlinuz-*"}},
		{"custom", "/root/missing", Kernel{"", "/root/missing", nil, "", "named /root/missing"}},
	} {
		got := ForImage(fsysOf[tt.tree], tt.path)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ForImage(%q):\n got %s\nwant %s", tt.tree, tt.path, show([]Kernel{got}), show([]Kernel{tt.want}))
		}
	}
}

func TestParseBLS(t *testing.T) {
	e := parseBLS([]byte("# comment\n\ntitle  Fedora Linux (6.7.4) 39\nversion\t6.7.4\nlinux /vmlinuz-6.7.4\n" +
		"initrd /a.img $tuned_initrd\ninitrd   /b.img\noptions root=UUID=x ro\noptions quiet\nsort-key fedora\n"))
	if got, want := e.initrds, []string{"/a.img", "$tuned_initrd", "/b.img"}; !reflect.DeepEqual(got, want) {
		t.Errorf("initrds = %q; want %q", got, want)
	}
	if got, want := e.options, []string{"root=UUID=x ro", "quiet"}; !reflect.DeepEqual(got, want) {
		t.Errorf("options = %q; want %q", got, want)
	}
	for k, want := range map[string]string{"title": "Fedora Linux (6.7.4) 39", "version": "6.7.4", "linux": "/vmlinuz-6.7.4", "sort-key": "fedora"} {
		if got := e.keys[k]; got != want {
			t.Errorf("%s = %q; want %q", k, got, want)
		}
	}
}
