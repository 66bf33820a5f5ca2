package kexec

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Range is the physical address range [Start, End).
type Range struct{ Start, End uint64 }

func (r Range) String() string { return fmt.Sprintf("%#x-%#x", r.Start, r.End-1) }

// Size is End - Start.
func (r Range) Size() uint64 { return r.End - r.Start }

// ramFromIOMem returns the RAM a kexec_load may place segments in, from
// /proc/iomem (b; name is what messages call it). It is every top-level
// "System RAM" line less every line nested in one, except the running
// kernel's own code and data: those are overwritten by the next kernel,
// which is how kexec-tools reads the file on arm64. The nested lines are
// memblock reservations that must survive the jump: on a UEFI boot the
// EFI memory map, which the next kernel reads to find its memory, and the
// regions the firmware keeps; the crash kernel's region too. UEFI runtime
// memory is not mapped by Linux and shows as a top-level "reserved" line,
// outside System RAM. This source works whether the machine booted with a
// device tree or through UEFI with ACPI, where the device tree has no
// memory node.
func ramFromIOMem(b []byte, name string) ([]Range, error) {
	var ram, cut []Range
	inRAM := false
	nonzero := false
	for n, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		depth := (len(line) - len(strings.TrimLeft(line, " "))) / 2
		span, label, ok := strings.Cut(strings.TrimSpace(line), " : ")
		lo, hi, ok2 := strings.Cut(span, "-")
		if !ok || !ok2 {
			return nil, fmt.Errorf("%s line %d (%q) is not \"start-end : name\"", name, n+1, line)
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end < start || end == ^uint64(0) {
			return nil, fmt.Errorf("%s line %d (%q) has no valid address range", name, n+1, line)
		}
		if end != 0 {
			nonzero = true
		}
		r := Range{start, end + 1}
		switch {
		case depth == 0:
			inRAM = label == "System RAM"
			if inRAM {
				ram = append(ram, r)
			}
		case inRAM && !strings.HasPrefix(label, "Kernel "):
			cut = append(cut, r)
		}
	}
	if !nonzero && len(ram) > 0 {
		return nil, fmt.Errorf("%s shows every address as 0, as it does to a process without CAP_SYS_ADMIN; run kxboot as root", name)
	}
	ram = subtract(merge(ram), merge(cut))
	if len(ram) == 0 {
		return nil, fmt.Errorf("%s has no System RAM line, so kxboot cannot tell where the next kernel may go; is /proc mounted?", name)
	}
	return ram, nil
}

// totalSize is the sum of the ranges' sizes.
func totalSize(rs []Range) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Size()
	}
	return n
}

// merge sorts ranges and joins those that overlap or touch.
func merge(rs []Range) []Range {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b Range) int {
		if a.Start != b.Start {
			if a.Start < b.Start {
				return -1
			}
			return 1
		}
		return 0
	})
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && r.Start <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtract returns the parts of ram (sorted, disjoint) outside every range
// of cut (sorted, disjoint).
func subtract(ram, cut []Range) []Range {
	var out []Range
	for _, r := range ram {
		for _, c := range cut {
			if c.End <= r.Start || c.Start >= r.End {
				continue
			}
			if c.Start > r.Start {
				out = append(out, Range{r.Start, c.Start})
			}
			r.Start = c.End
			if r.Start >= r.End {
				break
			}
		}
		if r.Start < r.End {
			out = append(out, r)
		}
	}
	return out
}

// lowestHole returns the lowest address at or above min, aligned to align (a
// power of two), where size bytes fit in free without touching used (all
// sorted and disjoint; used need not be). This is kexec-tools' locate_hole
// for arm64, which places everything as low as it fits.
func lowestHole(free, used []Range, size, align, min uint64) (uint64, bool) {
	avail := subtract(free, merge(used))
	for _, r := range avail {
		start := max(r.Start, min)
		start = (start + align - 1) &^ (align - 1)
		if start < r.Start || start >= r.End { // wrapped, or nothing left
			continue
		}
		if r.End-start >= size {
			return start, true
		}
	}
	return 0, false
}
