package kexec

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func ranges(rs []Range) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, " ")
}

// The testdata files are /proc/iomem of Debian 12's cloud-arm64 kernel in
// QEMU's virt machine with 1 GiB: booted with a device tree (-kernel) and
// through UEFI (edk2) with ACPI.
func TestRAMFromIOMem(t *testing.T) {
	tests := []struct {
		file, want string
	}{
		// The kernel's code and data stay usable (not the reserved
		// rest of its image between them, as in kexec-tools); the dtb and
		// initrd QEMU placed (0x48000000) and the reservations at the top go.
		{"iomem-arm64-dt", "0x40000000-0x4158ffff 0x41a10000-0x47ffffff 0x480f2000-0x481fffff 0x48300000-0x7abfffff 0x7fc00000-0x7fc38fff 0x7fdd8000-0x7fdd9fff"},
		// Three System RAM lines around the firmware's runtime regions
		// (top-level reserved); the EFI memory map and the other
		// memblock reservations nested in them are cut out.
		{"iomem-arm64-uefi", "0x40000000-0x74dfffff 0x78e00000-0x7a2fffff 0x7a780000-0x7c11ffff 0x7c121000-0x7c31ffff 0x7c412000-0x7c42efff 0x7c730000-0x7d15dfff 0x7d15f000-0x7e4e1fff 0x7fa00000-0x7fa02fff 0x7fa04000-0x7fa05fff"},
		// Another UEFI boot, whose RAM kexec-tools 2.0.25 printed on the
		// same boot (kexec -d -l: "System RAM ranges"): the same ranges.
		{"iomem-arm64-uefi-kt", "0x40000000-0x739fffff 0x77a00000-0x78e9ffff 0x79320000-0x7996ffff 0x79971000-0x79b6ffff 0x7afc5000-0x7afcffff 0x7afe0000-0x7afe9fff 0x7afeb000-0x7c43ffff 0x7c730000-0x7d24ffff 0x7d251000-0x7e4e1fff 0x7fa00000-0x7fa02fff 0x7fa04000-0x7fa05fff"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ramFromIOMem(b, "/proc/iomem")
			if err != nil {
				t.Fatal(err)
			}
			if ranges(got) != tt.want {
				t.Errorf("RAM =\n  %s\nwant\n  %s", ranges(got), tt.want)
			}
		})
	}
}

func TestRAMFromIOMemRefusals(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not root", "00000000-00000000 : System RAM\n  00000000-00000000 : Kernel code\n", "run kxboot as root"},
		{"no RAM", "09000000-09000fff : pl011@9000000\n", "has no System RAM line"},
		{"empty", "", "has no System RAM line"},
		{"garbage", "hello\n", `line 1 ("hello") is not "start-end : name"`},
		{"bad hex", "4000000g-7fffffff : System RAM\n", "line 1 (\"4000000g-7fffffff : System RAM\") has no valid address range"},
		{"reversed", "7fffffff-40000000 : System RAM\n", "has no valid address range"},
		{"all reserved", "40000000-7fffffff : System RAM\n  40000000-7fffffff : reserved\n", "has no System RAM line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ramFromIOMem([]byte(tt.in), "/proc/iomem")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "/proc/iomem") {
				t.Fatalf("err = %v; want it to name /proc/iomem and say %q", err, tt.want)
			}
		})
	}
}

func TestLowestHole(t *testing.T) {
	free := []Range{{0x1000, 0x5000}, {0x10000, 0x40000}}
	tests := []struct {
		used             []Range
		size, align, min uint64
		want             uint64
		ok               bool
	}{
		{nil, 0x1000, 0x1000, 0, 0x1000, true},
		{nil, 0x4000, 0x1000, 0, 0x1000, true},
		{nil, 0x5000, 0x1000, 0, 0x10000, true},      // too big for the first range
		{nil, 0x1000, 0x20000, 0, 0x20000, true},     // the first 128 KiB-aligned address with room
		{nil, 0x1000, 0x1000, 0x4800, 0x10000, true}, // min leaves too little in the first
		{[]Range{{0x1000, 0x2000}}, 0x1000, 0x1000, 0, 0x2000, true},
		{[]Range{{0x1000, 0x5000}, {0x10000, 0x3f000}}, 0x1000, 0x1000, 0, 0x3f000, true},
		{nil, 0x40000, 0x1000, 0, 0, false},
		{nil, 0x1000, 0x1000, 0x40000, 0, false},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, ok := lowestHole(free, tt.used, tt.size, tt.align, tt.min)
			if got != tt.want || ok != tt.ok {
				t.Errorf("lowestHole(size %#x, align %#x, min %#x) = %#x, %v; want %#x, %v", tt.size, tt.align, tt.min, got, ok, tt.want, tt.ok)
			}
		})
	}
}
