package kernels

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
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
// image at in-machine path p, or gives "" when it cannot tell. An x86
// bzImage names it in its setup header. An arm64 Image holds it in the
// kernel's banner ("Linux version 6.1.0-57-cloud-arm64 (debian-kernel@...")
// somewhere in its read-only data, found by reading the image through, and
// unpacking it on the way for Image.gz and a gzip EFI zboot image. That can
// take a while: callers prefer the release a file name gives.
func ReleaseOf(fsys rootfs.FS, p string) string {
	f, err := os.Open(fsys.Path(p))
	if err != nil {
		return ""
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	n, _ := f.ReadAt(hdr, 0)
	hdr = hdr[:n]
	le := binary.LittleEndian
	switch {
	case n >= 0x210 && le.Uint16(hdr[0x1FE:]) == 0xAA55 && string(hdr[0x202:0x206]) == "HdrS":
		// Boot sector signature, then the setup header of boot protocol
		// 2.00 and later (kernel_version exists since 2.00 too).
		return bzImageRelease(f, hdr)
	case n >= 0x40 && string(hdr[0x38:0x3C]) == "ARM\x64":
		return bannerRelease(f, bannerChunk)
	case n >= 2 && hdr[0] == 0x1F && hdr[1] == 0x8B:
		return gzipRelease(f)
	case n >= 0x40 && string(hdr[0:2]) == "MZ" && string(hdr[4:8]) == "zimg" && string(bytes.TrimRight(hdr[24:56], "\x00")) == "gzip":
		// EFI zboot: the compressed Image's offset and size at 8 and 12.
		off, size := int64(le.Uint32(hdr[8:])), int64(le.Uint32(hdr[12:]))
		return gzipRelease(io.NewSectionReader(f, off, size))
	}
	return ""
}

// bzImageRelease reads the release at the setup header's kernel_version
// field (le16 at 0x20E), which points, less 0x200, to a NUL-terminated
// string that begins with the release.
func bzImageRelease(f *os.File, hdr []byte) string {
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

func gzipRelease(r io.Reader) string {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return ""
	}
	return bannerRelease(zr, bannerChunk)
}

const (
	bannerPrefix = "Linux version "
	// maxRelease is the longest release the kernel keeps (__NEW_UTS_LEN).
	maxRelease = 64
	// bannerChunk is how much of an image is read at a time.
	bannerChunk = 256 << 10
)

// bannerRelease reads r in chunks of up to chunk bytes until it finds the
// kernel banner, and returns the release in it: the word after
// "Linux version ", ended by a space. Other text that begins alike (a
// "Linux version %s" format string) is passed over.
func bannerRelease(r io.Reader, chunk int) string {
	// A match is judged only once the release and the space after it can
	// be in the buffer; the tail where they might not be is carried over
	// to the next read.
	const tail = len(bannerPrefix) + maxRelease + 1
	prefix := []byte(bannerPrefix)
	buf := make([]byte, max(chunk, 2*tail))
	n := 0
	for {
		m, err := io.ReadFull(r, buf[n:])
		n += m
		eof := err != nil // the end, a cut gzip stream or a read error alike
		limit := n
		if !eof {
			limit = n - tail
		}
		for from := 0; ; {
			i := bytes.Index(buf[from:n], prefix)
			if i < 0 || from+i >= limit {
				break
			}
			at := from + i + len(bannerPrefix)
			word := buf[at:min(n, at+maxRelease+1)]
			if sp := bytes.IndexByte(word, ' '); sp > 0 && validRelease(word[:sp]) {
				return string(word[:sp])
			}
			from += i + 1
		}
		if eof {
			return ""
		}
		n = copy(buf, buf[limit:n])
	}
}

// validRelease says whether b can be a kernel release: printable, no
// spaces, starting with a digit.
func validRelease(b []byte) bool {
	if len(b) == 0 || !isDigit(b[0]) {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
