package kexec

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/fdt"
	"github.com/kxboot/kxboot/internal/testimg"
)

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// fill is a Rand that gives the same byte again and again, so that the
// seeds are recognisable.
type fill byte

func (f fill) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(f)
	}
	return len(p), nil
}

// arm64Image is a fake Image of n file bytes whose header asks for
// imageSize bytes of memory at textOffset.
func arm64Image(n int, textOffset, imageSize uint64) []byte {
	b := testimg.Arm64(n)
	binary.LittleEndian.PutUint64(b[8:], textOffset)
	binary.LittleEndian.PutUint64(b[16:], imageSize)
	return b
}

func loadFor(t *testing.T, boot string) arm64Load {
	t.Helper()
	iomem := testdata(t, "iomem-arm64-"+boot)
	ram, err := ramFromIOMem(iomem, "/proc/iomem")
	if err != nil {
		t.Fatal(err)
	}
	tree := "fdt-arm64-uefi"
	if boot == "dt" {
		tree = "fdt-arm64-dt.gz"
	}
	return arm64Load{
		Name:    "/boot/vmlinuz-6.1.0-57-cloud-arm64",
		Kernel:  arm64Image(3<<20+123, 0, 5<<20+4096*3),
		Initrd:  bytes.Repeat([]byte("initrd"), 200000),
		Cmdline: `root=/dev/vda1 kxtest.words="a b  c"`,
		FDT:     testdata(t, tree), FDTName: "/sys/firmware/fdt",
		RAM: ram, PageSize: 4096, Rand: fill(0x5a),
	}
}

// checkSegments checks what the kernel's sanity_check_segment_list and
// arm64's relocation want of any plan: at most 16 segments in address
// order, page-aligned, disjoint, buf within memsz, all inside the RAM.
func checkSegments(t *testing.T, segs []Segment, ram []Range) {
	t.Helper()
	if len(segs) > 16 {
		t.Errorf("%d segments; the kernel takes at most 16", len(segs))
	}
	var end uint64
	for i, s := range segs {
		if s.Mem%4096 != 0 || s.MemSize%4096 != 0 {
			t.Errorf("segment %d at %#x size %#x is not page-aligned", i, s.Mem, s.MemSize)
		}
		if uint64(len(s.Buf)) > s.MemSize {
			t.Errorf("segment %d: %d bytes of data in %d bytes of memory", i, len(s.Buf), s.MemSize)
		}
		if s.Mem < end {
			t.Errorf("segment %d at %#x overlaps or precedes the one before (ends %#x)", i, s.Mem, end)
		}
		end = s.Mem + s.MemSize
		inside := slices.ContainsFunc(ram, func(r Range) bool { return r.Start <= s.Mem && end <= r.End })
		if !inside {
			t.Errorf("segment %d %#x-%#x is not inside one free RAM range of %s", i, s.Mem, end, ranges(ram))
		}
	}
}

func TestBuildArm64(t *testing.T) {
	for _, boot := range []string{"uefi", "dt"} {
		t.Run(boot, func(t *testing.T) {
			l := loadFor(t, boot)
			orig, err := fdt.Parse(l.FDT)
			if err != nil {
				t.Fatal(err)
			}
			p, err := buildArm64(l)
			if err != nil {
				t.Fatal(err)
			}
			checkSegments(t, p.Segments, l.RAM)
			if len(p.Segments) != 4 {
				t.Fatalf("%d segments; want kernel, initrd, dtb, trampoline", len(p.Segments))
			}
			k, ird, dtb, tr := p.Segments[0], p.Segments[1], p.Segments[2], p.Segments[3]

			// Both boots have free RAM at 0x40000000, 2 MiB-aligned:
			// the kernel goes there, the rest right above it.
			if k.Mem != 0x40000000 || k.MemSize != 5<<20+4096*3 || !bytes.Equal(k.Buf, l.Kernel) {
				t.Errorf("kernel segment at %#x, %#x bytes, %d file bytes; want 0x40000000, image_size, the whole file", k.Mem, k.MemSize, len(k.Buf))
			}
			if p.Kernel != (Range{k.Mem, k.Mem + k.MemSize}) {
				t.Errorf("plan's kernel range %v", p.Kernel)
			}
			if ird.Mem != k.Mem+k.MemSize || !bytes.Equal(ird.Buf, l.Initrd) {
				t.Errorf("initrd at %#x (want %#x, right after the kernel)", ird.Mem, k.Mem+k.MemSize)
			}
			if dtb.Mem != ird.Mem+ird.MemSize || tr.Mem != dtb.Mem+dtb.MemSize || p.Entry != tr.Mem {
				t.Errorf("dtb at %#x, trampoline at %#x, entry %#x; want each right after the one before", dtb.Mem, tr.Mem, p.Entry)
			}

			// The trampoline: x0 = dtb, x1-x3 = 0, branch to the kernel.
			want := []byte{0xc0, 0x00, 0x00, 0x58, 0xe4, 0x00, 0x00, 0x58, 0xe1, 0x03, 0x1f, 0xaa, 0xe2, 0x03, 0x1f, 0xaa, 0xe3, 0x03, 0x1f, 0xaa, 0x80, 0x00, 0x1f, 0xd6}
			if !bytes.Equal(tr.Buf[:24], want) {
				t.Errorf("trampoline code % x; want % x", tr.Buf[:24], want)
			}
			le := binary.LittleEndian
			if le.Uint64(tr.Buf[24:]) != dtb.Mem || le.Uint64(tr.Buf[32:]) != k.Mem {
				t.Errorf("trampoline literals %#x %#x; want dtb %#x, kernel %#x", le.Uint64(tr.Buf[24:]), le.Uint64(tr.Buf[32:]), dtb.Mem, k.Mem)
			}

			// The device tree: the new command line and initrd, fresh
			// seeds, and everything else as the running kernel had it.
			got, err := fdt.Parse(dtb.Buf)
			if err != nil {
				t.Fatalf("the dtb segment does not parse: %v", err)
			}
			c, oc := got.Lookup("/chosen"), orig.Lookup("/chosen")
			if v, _ := c.Get("bootargs"); string(v) != l.Cmdline+"\x00" {
				t.Errorf("bootargs %q; want %q", v, l.Cmdline)
			}
			if s, _ := c.U64("linux,initrd-start"); s != ird.Mem {
				t.Errorf("linux,initrd-start %#x; want %#x", s, ird.Mem)
			}
			if e, _ := c.U64("linux,initrd-end"); e != ird.Mem+uint64(len(l.Initrd)) {
				t.Errorf("linux,initrd-end %#x; want %#x", e, ird.Mem+uint64(len(l.Initrd)))
			}
			if v, _ := c.Get("rng-seed"); !bytes.Equal(v, bytes.Repeat([]byte{0x5a}, 64)) {
				t.Errorf("rng-seed % x; want 64 fresh bytes", v)
			}
			_, hadKaslr := oc.Get("kaslr-seed")
			if v, ok := c.Get("kaslr-seed"); ok != hadKaslr || ok && !bytes.Equal(v, bytes.Repeat([]byte{0x5a}, 8)) {
				t.Errorf("kaslr-seed % x (present %v); want it fresh where the firmware gave one (%v) and absent elsewhere", v, ok, hadKaslr)
			}
			for _, p := range oc.Props {
				switch p.Name {
				case "bootargs", "linux,initrd-start", "linux,initrd-end", "rng-seed", "kaslr-seed":
					continue
				}
				if v, ok := c.Get(p.Name); !ok || !bytes.Equal(v, p.Value) {
					t.Errorf("/chosen %s = % x; want it kept as % x", p.Name, v, p.Value)
				}
			}
			if boot == "uefi" {
				if _, ok := c.Get("linux,uefi-mmap-start"); !ok {
					t.Error("the UEFI memory map's properties are gone")
				}
			}
			// The rest of the tree is untouched.
			got.Root.Children = slices.DeleteFunc(got.Root.Children, func(n *fdt.Node) bool { return n.Name == "chosen" })
			orig.Root.Children = slices.DeleteFunc(orig.Root.Children, func(n *fdt.Node) bool { return n.Name == "chosen" })
			if !bytes.Equal(got.Marshal(), orig.Marshal()) {
				t.Error("the dtb differs from the running tree outside /chosen")
			}
		})
	}
}

// Without an initrd the first kernel's initrd properties must not reach
// the next one (they point at memory it freed), and an empty initrd takes
// the place of the one the EFI stub's initrd table still names.
func TestBuildArm64NoInitrd(t *testing.T) {
	l := loadFor(t, "uefi")
	tree, _ := fdt.Parse(l.FDT)
	ch := tree.Lookup("/chosen")
	ch.SetU64("linux,initrd-start", 0x48000000)
	ch.SetU64("linux,initrd-end", 0x48100000)
	ch.SetU64("linux,elfcorehdr", 0x1000)
	l.FDT, l.Initrd = tree.Marshal(), nil
	p, err := buildArm64(l)
	if err != nil {
		t.Fatal(err)
	}
	checkSegments(t, p.Segments, l.RAM)
	if len(p.Segments) != 4 {
		t.Fatalf("%d segments; want kernel, empty initrd, dtb, trampoline", len(p.Segments))
	}
	ird := p.Segments[1]
	if !bytes.Equal(ird.Buf, make([]byte, 4096)) {
		t.Errorf("initrd segment %d bytes, not one zero page", len(ird.Buf))
	}
	got, _ := fdt.Parse(p.Segments[2].Buf)
	c := got.Lookup("/chosen")
	if s, _ := c.U64("linux,initrd-start"); s != ird.Mem {
		t.Errorf("linux,initrd-start %#x; want the empty initrd at %#x", s, ird.Mem)
	}
	if e, _ := c.U64("linux,initrd-end"); e != ird.Mem+4096 {
		t.Errorf("linux,initrd-end %#x; want %#x", e, ird.Mem+4096)
	}
	if _, ok := c.Get("linux,elfcorehdr"); ok {
		t.Error("/chosen still has linux,elfcorehdr")
	}
}

// A text_offset is honoured: the kernel sits that far above a 2 MiB base.
func TestBuildArm64TextOffset(t *testing.T) {
	l := loadFor(t, "dt")
	l.Kernel = arm64Image(0x3000, 0x80000, 0x100000)
	p, err := buildArm64(l)
	if err != nil {
		t.Fatal(err)
	}
	if k := p.Segments[0]; k.Mem != 0x40080000 {
		t.Errorf("kernel at %#x; want 0x40080000", k.Mem)
	}
}

func TestBuildArm64Refusals(t *testing.T) {
	tests := []struct {
		name string
		edit func(*arm64Load)
		want string
	}{
		{"long command line", func(l *arm64Load) { l.Cmdline = strings.Repeat("x", 2048) }, "the command line has 2048 bytes and arm64 kernels take at most 2047"},
		{"no room for the kernel", func(l *arm64Load) { l.RAM = []Range{{0x40000000, 0x40100000}} }, "no free range of 5132 KiB for the kernel"},
		{"no room for the initrd", func(l *arm64Load) { l.RAM = []Range{{0x40000000, 0x40600000}} }, "for the initrd"},
		{"damaged device tree", func(l *arm64Load) { l.FDT = []byte("not a tree") }, "the running kernel's /sys/firmware/fdt cannot be read"},
		{"not an Image", func(l *arm64Load) { l.Kernel = make([]byte, 4096) }, "arm64 Image magic"},
		{"text_offset", func(l *arm64Load) { l.Kernel = arm64Image(0x3000, 0x80010, 0x100000) }, "text_offset 0x80010 is not a multiple of the page size"},
		{"file over image_size", func(l *arm64Load) { l.Kernel = arm64Image(0x3000, 0, 0x1000) }, "the file has 12288 bytes, more than the 4096 its header says"},
		{"no randomness", func(l *arm64Load) { l.Rand = bytes.NewReader(nil) }, "no random bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := loadFor(t, "uefi")
			tt.edit(&l)
			_, err := buildArm64(l)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), l.Name) {
				t.Fatalf("err = %v; want it to name %s and say %q", err, l.Name, tt.want)
			}
		})
	}
}

// The engine on arm64: kexec_file_load is missing (Debian's arm64
// kernels), so it builds the segments from the machine's /proc/iomem and
// device tree and calls kexec_load with them.
func TestLoadArm64(t *testing.T) {
	m := newMachine(t)
	m.e.Arch, m.e.Rand = "arm64", fill(1)
	img := arm64Image(0x5000, 0, 0x8000)
	m.write("/boot/vmlinuz-6.1.0-57-cloud-arm64", img)
	m.write("/proc/iomem", testdata(t, "iomem-arm64-uefi"))
	m.write("/sys/firmware/fdt", testdata(t, "fdt-arm64-uefi"))
	m.sys.FileErr = unix.ENOSYS
	res, err := m.e.Load(Request{Kernel: "/boot/vmlinuz-6.1.0-57-cloud-arm64", Initrds: []string{"/boot/initrd.img-6.1.0-54-cloud-amd64", "/boot/intel-ucode.img"}, Cmdline: "root=/dev/vda1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Syscall != "kexec_load" || !res.FellBack || !slices.Equal(m.sys.Calls, []string{"file_load", "kexec_load"}) {
		t.Fatalf("result %+v, calls %v; want kexec_load after kexec_file_load's ENOSYS", res, m.sys.Calls)
	}
	segs := m.sys.Segments
	if len(segs) != 4 || !bytes.Equal(segs[0].Buf, img) || string(segs[1].Buf) != "main-initrd-cpioucode" {
		t.Fatalf("segments %d: kernel %d bytes, initrd %q", len(segs), len(segs[0].Buf), segs[1].Buf)
	}
	if m.sys.Entry != segs[3].Mem {
		t.Errorf("entry %#x; want the trampoline at %#x", m.sys.Entry, segs[3].Mem)
	}
	if s, err := m.e.SegmentSources(); err != nil || !strings.Contains(s, "a UEFI boot") || !strings.Contains(s, "9 free ranges, 924 MiB") {
		t.Errorf("SegmentSources = %q, %v", s, err)
	}
}

func TestLoadArm64Sources(t *testing.T) {
	tests := []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"no iomem", map[string][]byte{"/sys/firmware/fdt": nil}, "/proc/iomem is not readable"},
		{"no fdt", map[string][]byte{"/proc/iomem": nil}, "/sys/firmware/fdt is not readable"},
		{"not root", map[string][]byte{"/proc/iomem": []byte("00000000-00000000 : System RAM\n"), "/sys/firmware/fdt": nil}, "run kxboot as root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			m.e.Arch = "arm64"
			m.write("/boot/Image", arm64Image(0x5000, 0, 0x8000))
			os.Remove(m.fs.Path("/proc/iomem")) // the amd64 one newMachine wrote
			for p, b := range tt.files {
				if b == nil {
					b = testdata(t, map[string]string{"/proc/iomem": "iomem-arm64-uefi", "/sys/firmware/fdt": "fdt-arm64-uefi"}[p])
				}
				m.write(p, b)
			}
			_, err := m.e.Load(Request{Kernel: "/boot/Image", Method: Segments})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "/boot/Image") {
				t.Errorf("Load: %v; want it to name /boot/Image and say %q", err, tt.want)
			}
			if _, err := m.e.SegmentSources(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SegmentSources: %v; want %q", err, tt.want)
			}
			if slices.Contains(m.sys.Calls, "kexec_load") {
				t.Error("kexec_load was called")
			}
		})
	}
}

func TestSyscalls(t *testing.T) {
	tests := []struct {
		file, load error
		wf, wl     Has
	}{
		{nil, nil, Yes, Yes},
		{unix.ENOSYS, nil, No, Yes},
		{unix.EPERM, unix.EPERM, Unknown, Unknown},
		{unix.EBADF, unix.ENOSYS, Yes, No},
	}
	for _, tt := range tests {
		m := newMachine(t)
		m.sys.ProbeFile, m.sys.ProbeLoad = tt.file, tt.load
		f, l := m.e.Syscalls()
		if f != tt.wf || l != tt.wl {
			t.Errorf("probe answers %v, %v: Syscalls = %v, %v; want %v, %v", tt.file, tt.load, f, l, tt.wf, tt.wl)
		}
		if !slices.Equal(m.sys.Calls, []string{"probe"}) {
			t.Errorf("calls %v", m.sys.Calls)
		}
	}
}
