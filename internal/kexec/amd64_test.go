package kexec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/arch/x86/x86asm"

	"github.com/kxboot/kxboot/internal/testimg"
)

// seabiosE820 is the firmware memory map of a 1 GiB QEMU guest under
// SeaBIOS, as /sys/firmware/memmap shows it.
var seabiosE820 = []E820Entry{
	{0x0, 0x9FC00, e820RAM},
	{0x9FC00, 0x400, e820Reserved},
	{0xF0000, 0x10000, e820Reserved},
	{0x100000, 0x3FEE0000, e820RAM},
	{0x3FFE0000, 0x20000, e820Reserved},
	{0xFEFFC000, 0x4000, e820Reserved},
	{0xFFFC0000, 0x40000, e820Reserved},
}

func amd64LoadFor(t *testing.T) amd64Load {
	t.Helper()
	ram, err := ramFromIOMem(testdata(t, "iomem-amd64-seabios"), "/proc/iomem")
	if err != nil {
		t.Fatal(err)
	}
	running := make([]byte, 4096)
	running[0x0F] = 0x22                                        // orig_video_isVGA: something to see copied
	binary.LittleEndian.PutUint32(running[bpSubarch:], 0)       // a PC
	binary.LittleEndian.PutUint64(running[bpACPIRSDP:], 0xF5A0) // what the first boot's loader found
	return amd64Load{
		Name:    "/boot/vmlinuz-6.1.0-57-cloud-amd64",
		Kernel:  testimg.BzImage(3<<20+123*16, "6.1.0-57-cloud-amd64"),
		Initrd:  bytes.Repeat([]byte("initrd"), 200000),
		Cmdline: `root=/dev/vda1 kxtest.words="a b  c"`,
		E820:    seabiosE820, RAM: ram, Running: running, Rand: fill(0x5a),
	}
}

func TestBuildAMD64(t *testing.T) {
	l := amd64LoadFor(t)
	p, err := buildAMD64(l)
	if err != nil {
		t.Fatal(err)
	}
	checkSegments(t, p.Segments, l.RAM)
	if len(p.Segments) != 4 {
		t.Fatalf("%d segments; want kernel, initrd, boot parameters, trampoline", len(p.Segments))
	}
	le := binary.LittleEndian
	byMem := map[uint64]Segment{}
	for _, s := range p.Segments {
		byMem[s.Mem] = s
		if s.Mem+s.MemSize > 1<<32 || s.Mem < 1<<20 {
			t.Errorf("segment %#x-%#x is outside 1 MiB-4 GiB", s.Mem, s.Mem+s.MemSize)
		}
		// The crash kernel's reservation (0x2f000000-0x36ffffff) stays free.
		if s.Mem < 0x37000000 && s.Mem+s.MemSize > 0x2F000000 {
			t.Errorf("segment %#x-%#x overlaps the crash kernel's memory", s.Mem, s.Mem+s.MemSize)
		}
	}

	// The kernel: the file after its 4 setup sectors, as is, 2 MiB-aligned,
	// in init_size bytes, as high as it fits below the end of the free
	// RAM, 0x3ffe0000.
	k := byMem[p.Kernel.Start]
	initSize := uint64(le.Uint32(l.Kernel[0x260:]))
	if k.Mem%0x200000 != 0 || k.MemSize != initSize || !bytes.Equal(k.Buf, l.Kernel[4*512:]) {
		t.Errorf("kernel segment at %#x, %#x bytes of memory, %d of data; want 2 MiB-aligned, init_size %#x, the file from byte 2048", k.Mem, k.MemSize, len(k.Buf), initSize)
	}
	if want := (0x3FFE0000 - initSize) &^ 0x1FFFFF; k.Mem != want {
		t.Errorf("kernel at %#x; want the highest fit %#x", k.Mem, want)
	}
	// No copies: the kernel's and the initrd's segments are the caller's
	// buffers (the mapped files), so a load costs two pages of heap.
	if unsafe.SliceData(k.Buf) != &l.Kernel[4*512] {
		t.Error("the kernel segment is a copy of the file, not the file")
	}

	zp := byMem[p.BootParams].Buf
	if len(zp) < 4096+len(l.Cmdline)+1 {
		t.Fatalf("boot parameters segment has %d bytes", len(zp))
	}
	// The setup header as the image has it, but for the fields kxboot
	// fills in: type_of_loader, ramdisk, cmd_line_ptr, hardware_subarch,
	// setup_data.
	hz, hk := bytes.Clone(zp[:0x26C]), bytes.Clone(l.Kernel[:0x26C])
	for _, f := range [][2]int{{bpTypeOfLoader, 1}, {bpRamdisk, 8}, {bpCmdline, 4}, {bpSubarch, 12}, {bpSetupData, 8}} {
		clear(hz[f[0] : f[0]+f[1]])
		clear(hk[f[0] : f[0]+f[1]])
	}
	if !bytes.Equal(hz[0x1F1:], hk[0x1F1:]) {
		t.Error("the setup header was not copied from the image")
	}
	if zp[bpTypeOfLoader] != 0xD1 {
		t.Errorf("type_of_loader = %#x; want 0xd1 (a kexec loader, kxboot's version)", zp[bpTypeOfLoader])
	}
	cmd := uint64(le.Uint32(zp[bpCmdline:])) | uint64(le.Uint32(zp[bpExtCmdline:]))<<32
	if off := cmd - p.BootParams; off != 4096 || string(zp[off:off+uint64(len(l.Cmdline))+1]) != l.Cmdline+"\x00" {
		t.Errorf("cmd_line_ptr %#x does not point at the command line after the zero page", cmd)
	}
	ird := uint64(le.Uint32(zp[bpRamdisk:])) | uint64(le.Uint32(zp[bpExtRamdisk:]))<<32
	is := byMem[ird]
	if is.Mem == 0 || unsafe.SliceData(is.Buf) != &l.Initrd[0] || le.Uint32(zp[bpRamdiskSize:]) != uint32(len(l.Initrd)) {
		t.Errorf("ramdisk_image %#x size %d does not name the initrd segment, uncopied", ird, le.Uint32(zp[bpRamdiskSize:]))
	}
	if ird+is.MemSize > uint64(le.Uint32(l.Kernel[0x22C:]))+1 {
		t.Errorf("initrd ends at %#x, above initrd_addr_max", ird+is.MemSize)
	}
	if zp[0x0F] != 0x22 || le.Uint64(zp[bpACPIRSDP:]) != 0xF5A0 {
		t.Errorf("screen_info or acpi_rsdp_addr not taken from the running kernel's boot_params")
	}
	if n := int(zp[bpE820Entries]); n != len(seabiosE820) {
		t.Errorf("e820_entries = %d; want %d", n, len(seabiosE820))
	}
	for i, e := range seabiosE820 {
		o := bpE820Table + 20*i
		got := E820Entry{le.Uint64(zp[o:]), le.Uint64(zp[o+8:]), le.Uint32(zp[o+16:])}
		if got != e {
			t.Errorf("e820 entry %d = %+v; want %+v", i, got, e)
		}
	}
	// setup_data: one node, the random seed.
	sd := le.Uint64(zp[bpSetupData:])
	off := sd - p.BootParams
	if sd%8 != 0 || off < 4096 || off+16+rngSeedLen > uint64(len(zp)) {
		t.Fatalf("setup_data %#x is not inside the boot parameters segment", sd)
	}
	if next, typ, n := le.Uint64(zp[off:]), le.Uint32(zp[off+8:]), le.Uint32(zp[off+12:]); next != 0 || typ != setupRNGSeed || n != rngSeedLen || !bytes.Equal(zp[off+16:off+16+rngSeedLen], bytes.Repeat([]byte{0x5a}, rngSeedLen)) {
		t.Errorf("setup_data node: next %#x type %d len %d; want one SETUP_RNG_SEED of %d random bytes", next, typ, n, rngSeedLen)
	}

	// The trampoline is the entry; it jumps to the 64-bit entry with rsi
	// = the zero page.
	tr := byMem[p.Entry]
	if tr.MemSize != 4096 {
		t.Fatalf("no trampoline page at the entry %#x", p.Entry)
	}
	if got := le.Uint64(tr.Buf[0x70:]); got != p.BootParams {
		t.Errorf("trampoline's rsi = %#x; want the zero page %#x", got, p.BootParams)
	}
	if got := le.Uint64(tr.Buf[0x78:]); got != k.Mem+0x200 {
		t.Errorf("trampoline jumps to %#x; want the 64-bit entry %#x", got, k.Mem+0x200)
	}
	if got := le.Uint64(tr.Buf[0x62:]); got != p.Entry+0x40 {
		t.Errorf("GDT base %#x; want %#x, in the trampoline page", got, p.Entry+0x40)
	}
}

// TestAMD64Trampoline disassembles the hand-assembled trampoline and checks
// each instruction and where each RIP-relative operand lands.
func TestAMD64Trampoline(t *testing.T) {
	b := amd64Trampoline(0x7000000, 0x7001000, 0x1000200)
	want := []string{
		"lgdt ptr [rip+0x59] -> 0x60",
		"mov eax, 0x18",
		"mov ds, ax", "mov es, ax", "mov ss, ax", "mov fs, ax", "mov gs, ax",
		"lea rsp, ptr [rip+0xfe3] -> 0x1000",
		"push 0x10",
		"lea rax, ptr [rip+0x3] -> 0x29",
		"push rax",
		"ret far (64-bit)",
		"mov rsi, qword ptr [rip+0x40] -> 0x70",
		"mov rax, qword ptr [rip+0x41] -> 0x78",
		"jmp rax",
	}
	var got []string
	for pc := 0; pc < 0x39; {
		in, err := x86asm.Decode(b[pc:], 64)
		if err != nil {
			t.Fatalf("at %#x: %v", pc, err)
		}
		s := x86asm.IntelSyntax(in, 0, nil)
		if in.Op == x86asm.LRET {
			s += fmt.Sprintf(" (%d-bit)", in.DataSize) // REX.W: pops an 8-byte RIP and CS
		}
		for _, a := range in.Args {
			if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.RIP {
				s += fmt.Sprintf(" -> %#x", pc+in.Len+int(m.Disp))
			}
		}
		got = append(got, s)
		pc += in.Len
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("trampoline disassembles to\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	le := binary.LittleEndian
	if le.Uint64(b[0x50:]) != 0x00AF9A000000FFFF || le.Uint64(b[0x58:]) != 0x00CF92000000FFFF || le.Uint16(b[0x60:]) != 31 {
		t.Error("the GDT is not null, null, 64-bit code (0x10), data (0x18) with limit 31")
	}
}

func TestBuildAMD64Refusals(t *testing.T) {
	le := binary.LittleEndian
	for _, tt := range []struct {
		name string
		edit func(*amd64Load)
		want string
	}{
		{"old protocol", func(l *amd64Load) { le.PutUint16(l.Kernel[0x206:], 0x020A) }, "boot protocol 2.10, older than the 2.12"},
		{"32-bit", func(l *amd64Load) { le.PutUint16(l.Kernel[0x236:], 0) }, "no 64-bit entry point"},
		{"zImage", func(l *amd64Load) { l.Kernel[0x211] = 0 }, "is a zImage"},
		{"long command line", func(l *amd64Load) { l.Cmdline = strings.Repeat("x", 2048) }, "the command line has 2048 bytes and this kernel takes at most 2047"},
		{"no room", func(l *amd64Load) { l.RAM = []Range{{0x100000, 0x800000}} }, "no free range of"},
		{"not relocatable, its place taken", func(l *amd64Load) {
			l.Kernel[0x234] = 0
			l.RAM = []Range{{0x100000, 0x1000000}, {0x2000000, 0x3ffe0000}}
		}, "not relocatable and must go at 0x1000000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := amd64LoadFor(t)
			tt.edit(&l)
			_, err := buildAMD64(l)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), l.Name) {
				t.Errorf("got %v; want an error naming %s with %q", err, l.Name, tt.want)
			}
		})
	}
}

func TestBuildAMD64Placement(t *testing.T) {
	le := binary.LittleEndian
	t.Run("not relocatable", func(t *testing.T) {
		l := amd64LoadFor(t)
		l.Kernel[0x234] = 0
		p, err := buildAMD64(l)
		if err != nil {
			t.Fatal(err)
		}
		if p.Kernel.Start != 0x1000000 {
			t.Errorf("kernel at %#x; want its pref_address 0x1000000", p.Kernel.Start)
		}
		checkSegments(t, p.Segments, l.RAM)
	})
	t.Run("above 4 GiB when the kernel allows it", func(t *testing.T) {
		l := amd64LoadFor(t)
		// Below 4 GiB only room for the two small pages.
		l.RAM = []Range{{0x100000, 0x104000}, {1 << 32, 1<<32 + 1<<30}}
		p, err := buildAMD64(l)
		if err != nil {
			t.Fatal(err)
		}
		checkSegments(t, p.Segments, l.RAM)
		if p.Kernel.Start < 1<<32 {
			t.Errorf("kernel at %#x; want above 4 GiB, the only room for it", p.Kernel.Start)
		}
		var zp []byte
		for _, s := range p.Segments {
			if s.Mem == p.BootParams {
				zp = s.Buf
			}
		}
		if p.BootParams >= 1<<32 || p.Entry >= 1<<32 {
			t.Errorf("boot parameters at %#x, trampoline at %#x; want both below 4 GiB while there is room", p.BootParams, p.Entry)
		}
		ird := uint64(binary.LittleEndian.Uint32(zp[bpRamdisk:])) | uint64(binary.LittleEndian.Uint32(zp[bpExtRamdisk:]))<<32
		if ird < 1<<32 {
			t.Errorf("initrd at %#x; want above 4 GiB, through ext_ramdisk_image", ird)
		}
		// Without XLF_CAN_BE_LOADED_ABOVE_4G the same machine has no room.
		le.PutUint16(l.Kernel[0x236:], 0x1)
		if _, err := buildAMD64(l); err == nil || !strings.Contains(err.Error(), "no free range") {
			t.Errorf("a kernel that must stay below 4 GiB: %v", err)
		}
	})
	t.Run("more than 128 e820 entries", func(t *testing.T) {
		l := amd64LoadFor(t)
		l.E820 = nil
		for i := range 130 {
			l.E820 = append(l.E820, E820Entry{uint64(i) << 30, 1 << 29, e820RAM})
		}
		p, err := buildAMD64(l)
		if err != nil {
			t.Fatal(err)
		}
		var zp []byte
		for _, s := range p.Segments {
			if s.Mem == p.BootParams {
				zp = s.Buf
			}
		}
		if zp[bpE820Entries] != 128 {
			t.Errorf("e820_entries = %d; want 128", zp[bpE820Entries])
		}
		off := le.Uint64(zp[bpSetupData:]) - p.BootParams
		if typ, n := le.Uint32(zp[off+8:]), le.Uint32(zp[off+12:]); typ != setupE820Ext || n != 2*20 || le.Uint64(zp[off+16:]) != 128<<30 {
			t.Errorf("first setup_data: type %d, %d bytes; want SETUP_E820_EXT with the 2 entries past 128", typ, n)
		}
		next := le.Uint64(zp[off:]) - p.BootParams
		if le.Uint32(zp[next+8:]) != setupRNGSeed || le.Uint64(zp[next:]) != 0 {
			t.Error("the second and last setup_data is not the random seed")
		}
	})
}

func TestHighestHole(t *testing.T) {
	free := []Range{{0x100000, 0x800000}, {0x1000000, 0x3000000}}
	for _, tt := range []struct {
		used                []Range
		size, align, lo, hi uint64
		want                uint64
		ok                  bool
	}{
		{nil, 0x1000, 0x1000, 0, ^uint64(0), 0x2FFF000, true},
		{nil, 0x200000, 0x200000, 0, 0x2F00000, 0x2C00000, true},
		{[]Range{{0x2000000, 0x3000000}}, 0x1000000, 0x1000, 0, ^uint64(0), 0x1000000, true},
		{[]Range{{0x2000000, 0x3000000}}, 0x1000001, 0x1000, 0, ^uint64(0), 0, false},
		{nil, 0x700000, 0x100000, 0x100000, 0x1000000, 0x100000, true},
		{nil, 0x1000, 0x1000, 0x900000, 0xA00000, 0, false},
		{nil, 0x4000000, 0x1000, 0, ^uint64(0), 0, false},
	} {
		got, ok := highestHole(free, tt.used, tt.size, tt.align, tt.lo, tt.hi)
		if got != tt.want || ok != tt.ok {
			t.Errorf("highestHole(used %v, size %#x, align %#x, %#x-%#x) = %#x, %v; want %#x, %v", tt.used, tt.size, tt.align, tt.lo, tt.hi, got, ok, tt.want, tt.ok)
		}
	}
}

func TestAMD64Sources(t *testing.T) {
	m := newMachine(t)
	m.amd64Sysfs()
	e820, err := m.e.e820FromMemmap()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(e820) != fmt.Sprint(seabiosE820) {
		t.Errorf("e820 from memmap = %v; want %v", e820, seabiosE820)
	}
	if got := m.e.rsdpFromSystab(); got != 0 {
		t.Errorf("rsdp on a BIOS boot = %#x; want 0", got)
	}
	if s, err := m.e.SegmentSources(); err != nil || !strings.Contains(s, "7 entries, a BIOS boot") || !strings.Contains(s, "3 free ranges") {
		t.Errorf("SegmentSources = %q, %v", s, err)
	}
	m.write("/sys/firmware/efi/systab", []byte("MPS=0x7f8e3000\nACPI20=0x7fb7e014\nACPI=0x7fb7e000\nSMBIOS=0x7f9a9000\n"))
	if got := m.e.rsdpFromSystab(); got != 0x7fb7e014 {
		t.Errorf("rsdp from systab = %#x; want ACPI20's 0x7fb7e014", got)
	}
	m.write("/sys/firmware/memmap/3/end", []byte("zz\n"))
	if _, err := m.e.e820FromMemmap(); err == nil || !strings.Contains(err.Error(), "/sys/firmware/memmap/3/end") {
		t.Errorf("a damaged memmap entry: %v", err)
	}
}

// amd64Sysfs gives the fake machine the /proc/iomem and /sys/firmware/memmap
// of a 1 GiB SeaBIOS guest.
func (m *machine) amd64Sysfs() {
	m.write("/proc/iomem", testdata(m.t, "iomem-amd64-seabios"))
	names := map[uint32]string{e820RAM: "System RAM", e820Reserved: "Reserved"}
	for i, e := range seabiosE820 {
		d := fmt.Sprintf("/sys/firmware/memmap/%d/", i)
		m.write(d+"start", fmt.Appendf(nil, "0x%x\n", e.Addr))
		m.write(d+"end", fmt.Appendf(nil, "0x%x\n", e.Addr+e.Size-1))
		m.write(d+"type", []byte(names[e.Type]+"\n"))
	}
}
