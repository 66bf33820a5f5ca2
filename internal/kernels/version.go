package kernels

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// Compare orders two kernel versions: -1 if a is older than b, 0 if they
// are equal, +1 if a is newer.
//
// The order is the UAPI Group version format specification (the one
// systemd-boot and bootctl sort boot entries by), with one addition for
// kernel release strings: a release candidate "-rcN" sorts before the
// release. The specification only knows '~' as "sorts before", and read
// literally it puts "6.10.0-rc3" after "6.10.0" (more components are newer).
// Kernel releases never use '~', so an "rc" component followed by digits and
// preceded by '-', '.', '_' or a digit ("6.10.0-rc3", Fedora's
// "6.10.0-0.rc3.31.fc41", Ubuntu mainline's "6.10.0-061000rc3-generic") is
// rewritten as "~rcN" before comparing. "arch1" is left alone: its "rc" is
// preceded by a letter.
func Compare(a, b string) int {
	return uapiCompare(kernelRC(a), kernelRC(b))
}

// kernelRC rewrites release-candidate components as '~' suffixes, see Compare.
func kernelRC(v string) string {
	if !strings.Contains(v, "rc") {
		return v
	}
	out := make([]byte, 0, len(v)+1)
	for i := 0; i < len(v); i++ {
		if i > 0 && i+2 < len(v) && v[i] == 'r' && v[i+1] == 'c' && isDigit(v[i+2]) {
			switch p := v[i-1]; {
			case p == '-' || p == '.' || p == '_':
				out[len(out)-1] = '~' // the '~' takes the separator's place
			case isDigit(p):
				out = append(out, '~')
			}
		}
		out = append(out, v[i])
	}
	return string(out)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// uapiCompare is the comparison of the UAPI version format specification,
// as systemd's strverscmp_improved implements it. Where the specification's
// prose and systemd differ (a numeric component against an alphabetical
// one: "1.a" vs "1.0"), this follows systemd, which the specification names
// as its implementation: the numeric component is newer.
func uapiCompare(a, b string) int {
	i, j := 0, 0
	// special handles one of the prefix characters '~', '-', '^', '.': a
	// string starting with it where the other does not is older; when both
	// do, both are skipped.
	special := func(c byte) (int, bool) {
		ca := i < len(a) && a[i] == c
		cb := j < len(b) && b[j] == c
		switch {
		case ca && cb:
			i++
			j++
		case ca:
			return -1, true
		case cb:
			return 1, true
		}
		return 0, false
	}
	for {
		for i < len(a) && !validVersionChar(a[i]) {
			i++
		}
		for j < len(b) && !validVersionChar(b[j]) {
			j++
		}
		if r, done := special('~'); done {
			return r
		}
		if i == len(a) || j == len(b) {
			// The one with something left is newer.
			return cmpInt(len(a)-i, len(b)-j)
		}
		for _, c := range []byte{'-', '^', '.'} {
			if r, done := special(c); done {
				return r
			}
		}
		ai, bj := i, j
		if (i < len(a) && isDigit(a[i])) || (j < len(b) && isDigit(b[j])) {
			for ai < len(a) && isDigit(a[ai]) {
				ai++
			}
			for bj < len(b) && isDigit(b[bj]) {
				bj++
			}
			// A number is newer than no number.
			if r := cmpInt(ai-i, bj-j); (ai == i || bj == j) && r != 0 {
				return r
			}
			na := strings.TrimLeft(a[i:ai], "0")
			nb := strings.TrimLeft(b[j:bj], "0")
			if r := cmpInt(len(na), len(nb)); r != 0 {
				return r
			}
			if r := strings.Compare(na, nb); r != 0 {
				return r
			}
		} else {
			for ai < len(a) && isAlpha(a[ai]) {
				ai++
			}
			for bj < len(b) && isAlpha(b[bj]) {
				bj++
			}
			// Byte order puts capitals before lower case ("B" < "a"), and
			// a longer run is newer ("abc" < "abcd").
			if r := strings.Compare(a[i:ai], b[j:bj]); r != 0 {
				return r
			}
		}
		i, j = ai, bj
	}
}

func validVersionChar(c byte) bool {
	return isDigit(c) || isAlpha(c) || c == '~' || c == '-' || c == '^' || c == '.'
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ReleaseOf reads the kernel release ("6.1.0-54-cloud-amd64") from the
// image at in-machine path p. Only x86 bzImages carry it at a known place:
// the setup header's kernel_version field (le16 at 0x20E) points, less
// 0x200, to a NUL-terminated string that begins with the release. Any other
// format, or an unreadable file, gives "".
func ReleaseOf(fsys rootfs.FS, p string) string {
	f, err := os.Open(fsys.Path(p))
	if err != nil {
		return ""
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return ""
	}
	// Boot sector signature, then the "HdrS" setup header of boot
	// protocol 2.00 and later (kernel_version exists since 2.00 too).
	if binary.LittleEndian.Uint16(hdr[0x1FE:]) != 0xAA55 || string(hdr[0x202:0x206]) != "HdrS" {
		return ""
	}
	ptr := binary.LittleEndian.Uint16(hdr[0x20E:])
	if ptr == 0 {
		return ""
	}
	buf := make([]byte, 512)
	n, _ := f.ReadAt(buf, int64(ptr)+0x200)
	buf = buf[:n]
	nul := bytes.IndexByte(buf, 0)
	if nul >= 0 {
		buf = buf[:nul]
	}
	// The release ends at the first space, or at the NUL; with neither
	// within reach this is not a version string.
	if sp := bytes.IndexByte(buf, ' '); sp >= 0 {
		buf = buf[:sp]
	} else if nul < 0 {
		return ""
	}
	rel := string(buf)
	if rel == "" || !isDigit(rel[0]) {
		return ""
	}
	return rel
}
