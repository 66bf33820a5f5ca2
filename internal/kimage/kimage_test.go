package kimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kxboot/kxboot/internal/testimg"
)

func write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIdentify(t *testing.T) {
	arm := testimg.Arm64(4096)
	tests := []struct {
		name    string
		data    []byte
		want    Kind
		wantErr string
		is      error
	}{
		{"bzImage", testimg.BzImage(8192, "6.1.0-1-amd64"), BzImage, "", nil},
		{"arm64", arm, Arm64, "", nil},
		{"gzip", testimg.Gzip(arm), Gzip, "", nil},
		{"zboot", testimg.Zboot(testimg.Gzip(arm), "gzip"), EFIZboot, "", nil},
		{"text", []byte("#!/bin/sh\necho hello\n"), Unknown, "not a bootable kernel image", ErrNotKernel},
		{"empty", nil, Unknown, "the file is empty", ErrNotKernel},
		{"truncated bzImage", testimg.BzImage(8192, "x")[:4096], Unknown, "header says 8192 bytes, the file has 4096", ErrTruncated},
		{"truncated zboot", testimg.Zboot(testimg.Gzip(arm), "gzip")[:0x120], Unknown, "truncated", ErrTruncated},
		{"short", []byte("MZ"), Unknown, "not a bootable kernel image", ErrNotKernel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, "vmlinuz", tt.data)
			info, err := Identify(p, "/boot/vmlinuz")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Identify: %v", err)
				}
				if info.Kind != tt.want {
					t.Errorf("kind = %v; want %v", info.Kind, tt.want)
				}
				return
			}
			wantRefusal(t, err, tt.wantErr, tt.is)
		})
	}
}

func TestIdentifyMissing(t *testing.T) {
	_, err := Identify(filepath.Join(t.TempDir(), "nope"), "/boot/nope")
	if err == nil || !strings.Contains(err.Error(), "/boot/nope does not exist") {
		t.Fatalf("err = %v", err)
	}
}

func TestIdentifyDirectory(t *testing.T) {
	_, err := Identify(t.TempDir(), "/boot")
	if !errors.Is(err, ErrNotKernel) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnpack(t *testing.T) {
	arm := testimg.Arm64(70000)
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"gzip", testimg.Gzip(arm)},
		{"zboot", testimg.Zboot(testimg.Gzip(arm), "gzip")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, "Image.gz", tt.data)
			info, err := Identify(p, p)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := Unpack(p, p, info, &out); err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if !bytes.Equal(out.Bytes(), arm) {
				t.Errorf("unpacked %d bytes, not the original %d-byte Image", out.Len(), len(arm))
			}
		})
	}
}

func TestUnpackRefuses(t *testing.T) {
	arm := testimg.Arm64(70000)
	gz := testimg.Gzip(arm)
	tests := []struct {
		name, want string
		data       []byte
	}{
		{"zstd zboot", `compressed with "zstd"`, testimg.Zboot([]byte("not really zstd"), "zstd")},
		{"gzip of text", "does not hold an arm64 Image", testimg.Gzip([]byte(strings.Repeat("hello ", 20)))},
		{"cut gzip", "truncated", gz[:len(gz)/2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, "Image.gz", tt.data)
			info, err := Identify(p, p)
			if err != nil {
				t.Fatal(err)
			}
			err = Unpack(p, p, info, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want %q", err, tt.want)
			}
		})
	}
}

func TestParseArm64Header(t *testing.T) {
	hdr := func(imageSize, flags uint64) []byte {
		b := make([]byte, 64)
		binary.LittleEndian.PutUint64(b[8:], 0x80000)
		binary.LittleEndian.PutUint64(b[16:], imageSize)
		binary.LittleEndian.PutUint64(b[24:], flags)
		copy(b[0x38:], "ARM\x64")
		return b
	}
	for _, tt := range []struct {
		name      string
		hdr       []byte
		page      int
		anywhere  bool
		wantErr   string
		is        error
		wantFlags uint64
	}{
		{"flags 0", hdr(1<<20, 0), 0, false, "", nil, 0},
		{"4k", hdr(1<<20, 2), 4096, false, "", nil, 2},
		{"16k", hdr(1<<20, 4), 16384, false, "", nil, 4},
		{"64k anywhere", hdr(1<<20, 6|8), 65536, true, "", nil, 14},
		{"debian", hdr(27983872, 0xa), 4096, true, "", nil, 0xa},
		{"longer buffer", append(hdr(1<<20, 2), 1, 2, 3), 4096, false, "", nil, 2},
		{"short", hdr(1<<20, 2)[:63], 0, false, "only 63 bytes are there; reinstall", ErrTruncated, 0},
		{"no magic", make([]byte, 64), 0, false, `lacks the arm64 Image magic "ARM\x64"`, ErrNotKernel, 0},
		{"image_size 0", hdr(0, 2), 0, false, "image_size 0, as kernels older than 3.17 do", ErrNotKernel, 0},
		{"big-endian", hdr(1<<20, 3), 0, false, "big-endian arm64 kernel", ErrNotKernel, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseArm64Header(tt.hdr, "/boot/Image")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, tt.is) || !strings.Contains(err.Error(), "/boot/Image") {
					t.Fatalf("err = %v; want it to name the file, contain %q and wrap %v", err, tt.wantErr, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Arm64Header{TextOffset: 0x80000, ImageSize: binary.LittleEndian.Uint64(tt.hdr[16:]), Flags: tt.wantFlags}
			if h != want {
				t.Errorf("header = %+v; want %+v", h, want)
			}
			if h.PageSize() != tt.page || h.PhysAnywhere() != tt.anywhere || h.BigEndian() {
				t.Errorf("PageSize, PhysAnywhere, BigEndian = %d, %v, %v; want %d, %v, false", h.PageSize(), h.PhysAnywhere(), h.BigEndian(), tt.page, tt.anywhere)
			}
		})
	}
}

// set returns a copy of b with the little-endian value v (of n bytes) at off.
func set(b []byte, off, n int, v uint64) []byte {
	b = bytes.Clone(b)
	switch n {
	case 2:
		binary.LittleEndian.PutUint16(b[off:], uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b[off:], uint32(v))
	case 8:
		binary.LittleEndian.PutUint64(b[off:], v)
	}
	return b
}

func TestIdentifyArm64(t *testing.T) {
	// Shaped like Debian's signed kernels: .text and .data, then a
	// certificate table of 1472 bytes ending at the end of the file.
	signed := testimg.Arm64PE{Sections: []int{0x3000, 0x1800}, Cert: 1472, Release: "6.1.0-57-cloud-arm64"}.Bytes()
	const dataEnd = 0x200 + 0x3000 + 0x1800
	unsigned := testimg.Arm64PE{Sections: []int{0x3000, 0x1800}}.Bytes()
	one := testimg.Arm64PE{}.Bytes()
	odd := testimg.Arm64PE{Sections: []int{0x1001}, Cert: 100}.Bytes() // table after 7 bytes of padding
	sect := func(i, field int) int { return testimg.PESectOffset + 40*i + field }
	tests := []struct {
		name    string
		data    []byte
		wantErr string
		is      error
	}{
		{"plain", testimg.Arm64(4096), "", nil},
		{"plain 64 bytes", testimg.Arm64(64), "", nil},
		{"signed", signed, "", nil},
		{"unsigned", unsigned, "", nil},
		{"one section", one, "", nil},
		{"padded signature", odd, "", nil},
		{"bytes after the signature", append(bytes.Clone(signed), 0, 0, 0, 0, 0, 0, 0, 0), "", nil},
		{"bytes after the sections", append(bytes.Clone(unsigned), 1, 2, 3), "", nil},
		{"cert entry without size", set(unsigned, testimg.PECertDirEntry, 4, 12345), "", nil},
		{"data directory 4 not there", set(signed, testimg.PEOptOffset+108, 4, 4), "", nil},

		{"plain 63 bytes", testimg.Arm64(64)[:63], "only 63 bytes, fewer than the 64", ErrNotKernel},
		{"plain image_size 0", set(testimg.Arm64(4096), 16, 8, 0), "image_size 0", ErrNotKernel},
		{"plain big-endian", set(testimg.Arm64(4096), 24, 8, 1), "big-endian", ErrNotKernel},
		{"plain larger than image_size", set(testimg.Arm64(4096), 16, 8, 4095), "the file has 4096 bytes, more than the 4095 its arm64 header says", ErrNotKernel},
		{"signed larger than image_size", set(signed, 16, 8, uint64(len(signed)-1)), "more than the", ErrNotKernel},

		{"signed cut in the headers", signed[:0x100], "its PE header says 328 bytes, the file has 256; reinstall the kernel package", ErrTruncated},
		{"signed cut in the PE signature", signed[:0x42], "its PE header says 88 bytes, the file has 66", ErrTruncated},
		{"signed cut in .text", signed[:0x1000], "its PE header says 18944 bytes, the file has 4096; reinstall", ErrTruncated},
		{"signed cut at the end of .data", signed[:dataEnd], "its PE header says 20416 bytes with the signature, the file has 18944", ErrTruncated},
		{"signed cut by 1 byte", signed[:len(signed)-1], "says 20416 bytes with the signature, the file has 20415", ErrTruncated},
		{"signed cut in the signature", signed[:dataEnd+700], "with the signature, the file has 19644", ErrTruncated},
		{"unsigned cut by 1 byte", unsigned[:len(unsigned)-1], "its PE header says 18944 bytes, the file has 18943", ErrTruncated},
		{"one section cut", one[:0x1000], "its PE header says 4608 bytes, the file has 4096", ErrTruncated},

		{"PE offset in the Image header", set(signed, 0x3C, 4, 0x20), "puts the PE header at byte 0x20", ErrNotKernel},
		{"PE offset far out", set(signed, 0x3C, 4, 0x7fff0000), "puts the PE header at byte 0x7fff0000", ErrNotKernel},
		{"PE offset beyond the file", set(signed, 0x3C, 4, 0x8000), "its PE header says 32792 bytes, the file has 20416", ErrTruncated},
		{"no PE signature", set(signed, testimg.PEOffset, 2, 0), "no PE signature at byte 0x40", ErrNotKernel},
		{"x86 machine", set(signed, testimg.PEOffset+4, 2, 0x8664), "machine 0x8664 where an arm64 kernel has 0xaa64", ErrNotKernel},
		{"no sections", set(signed, testimg.PEOffset+6, 2, 0), "lists no sections", ErrNotKernel},
		{"short optional header", set(signed, testimg.PEOffset+20, 2, 96), "optional header has 96 bytes, fewer than the 112", ErrNotKernel},
		{"huge section table", set(signed, testimg.PEOffset+6, 2, 0xffff), "its PE headers run to byte", ErrNotKernel},
		{"PE32", set(signed, testimg.PEOptOffset, 2, 0x10B), "magic 0x10b where a 64-bit image has 0x20b", ErrNotKernel},
		{"no section data", set(set(signed, sect(0, 16), 4, 0), sect(1, 16), 4, 0), "no section in its PE header has data", ErrNotKernel},
		{"SizeOfImage short", set(signed, testimg.PEOptOffset+56, 4, 0x1000), "SizeOfImage 4096, less than the 18944 bytes", ErrNotKernel},
		{"section longer than the file", set(signed, sect(1, 16), 4, 0x5800), "its PE header says 35328 bytes, the file has 20416", ErrTruncated},
		{"signature inside .data", set(signed, testimg.PECertDirEntry, 4, dataEnd-8), "starts at byte 18936, inside the kernel, which ends at byte 18944", ErrNotKernel},
		{"signature longer than the file", set(signed, testimg.PECertDirEntry+4, 4, 1473), "says 20417 bytes with the signature, the file has 20416", ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, "vmlinuz", tt.data)
			info, err := Identify(p, "/boot/vmlinuz")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Identify: %v", err)
				}
				want := Arm64Header{ImageSize: binary.LittleEndian.Uint64(tt.data[16:]), Flags: binary.LittleEndian.Uint64(tt.data[24:])}
				if info.Kind != Arm64 || info.Arm64 != want {
					t.Errorf("info = %+v; want kind %v and header %+v", info, Arm64, want)
				}
				return
			}
			wantRefusal(t, err, tt.wantErr, tt.is)
		})
	}
}

func TestUnpackArm64Checks(t *testing.T) {
	signed := testimg.Arm64PE{Sections: []int{0x3000, 0x1800}, Cert: 1472}.Bytes()
	for _, tt := range []struct {
		name, wantErr string
		image         []byte
		is            error
	}{
		{"signed", "", signed, nil},
		{"plain", "", testimg.Arm64(70000), nil},
		{"signed cut by 1 byte", "(unpacked) is a truncated kernel image: its PE header says 20416 bytes with the signature, the unpacked Image has 20415", signed[:len(signed)-1], ErrTruncated},
		{"signed cut in the headers", "its PE header says 328 bytes, the unpacked Image has 256", signed[:256], ErrTruncated},
		{"x86 machine", "machine 0x8664", set(signed, testimg.PEOffset+4, 2, 0x8664), ErrNotKernel},
		{"image_size 0", "image_size 0", set(testimg.Arm64(4096), 16, 8, 0), ErrNotKernel},
		{"big-endian", "big-endian", set(signed, 24, 8, 0xb), ErrNotKernel},
		{"larger than image_size", "the unpacked Image has 4096 bytes, more than the 100", set(testimg.Arm64(4096), 16, 8, 100), ErrNotKernel},
		{"shorter than a header", "the compressed stream ends early", testimg.Arm64(64)[:63], ErrTruncated},
	} {
		for _, wrap := range []struct {
			name string
			f    func([]byte) []byte
		}{
			{"gzip", testimg.Gzip},
			{"zboot", func(b []byte) []byte { return testimg.Zboot(testimg.Gzip(b), "gzip") }},
		} {
			t.Run(wrap.name+" "+tt.name, func(t *testing.T) {
				p := write(t, "Image.gz", wrap.f(tt.image))
				info, err := Identify(p, "/boot/Image.gz")
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				err = Unpack(p, "/boot/Image.gz", info, &out)
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("Unpack: %v", err)
					}
					if !bytes.Equal(out.Bytes(), tt.image) {
						t.Errorf("unpacked %d bytes, not the original %d", out.Len(), len(tt.image))
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, tt.is) || !strings.Contains(err.Error(), "/boot/Image.gz") {
					t.Fatalf("err = %v; want it to name the file, contain %q and wrap %v", err, tt.wantErr, tt.is)
				}
			})
		}
	}
}

// wantRefusal checks a refusal: it says want, wraps is and names the file.
func wantRefusal(t *testing.T, err error, want string, is error) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, is) {
		t.Fatalf("err = %v; want it to contain %q and wrap %v", err, want, is)
	}
	if !strings.Contains(err.Error(), "/boot/vmlinuz") {
		t.Errorf("err = %v; want it to name the file", err)
	}
}
