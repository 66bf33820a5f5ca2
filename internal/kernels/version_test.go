package kernels

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/kxboot/kxboot/internal/rootfs"
	"github.com/kxboot/kxboot/internal/testimg"
)

func TestCompare(t *testing.T) {
	// Each pair is older, newer.
	for _, tt := range [][2]string{
		{"6.1.0-47-cloud-amd64", "6.1.0-54-cloud-amd64"},
		{"6.9", "6.10"},
		{"6.9.0", "6.10.0"},
		{"5.15.0-91-generic", "6.1.0-1-amd64"},
		{"5.15.0-91-generic", "5.15.0-101-generic"},
		{"6.6.8-arch1-1", "6.6.9-arch1-1"},
		{"6.6.8-arch1-1", "6.6.8-arch2-1"},
		{"6.6.8-arch1-1", "6.6.10-arch1-1"},
		{"6.1.69-1-lts", "6.6.8-arch1-1"},
		{"6.5.6-300.fc39.x86_64", "6.5.12-300.fc39.x86_64"},
		{"6.5.6-300.fc39.x86_64", "6.7.4-200.fc39.x86_64"},
		{"6.5.6-200.fc39.x86_64", "6.5.6-300.fc39.x86_64"},
		{"4.18.0-513.5.1.el8_9.x86_64", "4.18.0-513.11.1.el8_9.x86_64"},
		{"6.4.0-150600.23.22-default", "6.4.0-150600.23.25-default"},
		{"6.6.14-0-lts", "6.6.14-0-virt"},
		// '~' sorts before everything.
		{"6.1~rc1", "6.1"},
		{"6.1~rc1", "6.1~rc2"},
		{"6.1~rc9", "6.1~rc10"},
		// Kernel release candidates, in the spellings distributions use.
		{"6.10.0-rc3", "6.10.0"},
		{"6.10.0-rc3", "6.10.0-rc4"},
		{"6.9.0", "6.10.0-rc1"},
		{"6.10-rc3-amd64", "6.10-amd64"},
		{"6.10.0-rc3-1-mainline", "6.10.0-arch1-1"},
		{"6.10.0-0.rc3.31.fc41.x86_64", "6.10.0-0.rc4.20240621git50736169ecc8.38.fc41.x86_64"},
		{"6.10.0-0.rc3.31.fc41.x86_64", "6.10.0-64.fc41.x86_64"},
		{"6.10.0-061000rc3-generic", "6.10.0-061000-generic"},
		// Unknown and rescue versions sort low; Installed ranks them apart.
		{"", "0"},
		{"0-rescue-3f1c2a5e8b9d4e7fa0b1c2d3e4f5a6b7", "5.14.0-1"},
	} {
		if got := Compare(tt[0], tt[1]); got != -1 {
			t.Errorf("Compare(%q, %q) = %d; want -1", tt[0], tt[1], got)
		}
		if got := Compare(tt[1], tt[0]); got != 1 {
			t.Errorf("Compare(%q, %q) = %d; want 1", tt[1], tt[0], got)
		}
	}
}

// The examples of the UAPI version format specification.
func TestCompareSpec(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"11", "11", 0},
		{"systemd-123", "systemd-123", 0},
		{"bar-123", "foo-123", -1},
		{"123a", "123", 1},
		{"123.a", "123", 1},
		{"123.a", "123.b", -1},
		{"123a", "123.a", 1},
		{"11α", "11β", 0},
		{"B", "a", -1},
		{"", "0", -1},
		{"0.", "0", 1},
		{"0.0", "0", 1},
		{"0", "~", 1},
		{"", "~", 1},
		{"1_", "1", 0},
		{"_1", "1", 0},
		{"1_", "1.2", -1},
		{"1_2_3", "1.3.3", 1},
		{"1+", "1", 0},
		{"+1", "1", 0},
		{"1+", "1.2", -1},
		{"1+2+3", "1.3.3", 1},
		{"007", "7", 0},
		{"abc", "abcd", -1},
	} {
		if got := Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%q, %q) = %d; want %d", tt.a, tt.b, got, tt.want)
		}
	}
	chain := []string{"122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1",
		"123^post1", "123.a-1", "123.1-1", "123a-1", "124-1"}
	for i := range chain {
		for j := range chain {
			if got, want := Compare(chain[i], chain[j]), cmpInt(i, j); got != want {
				t.Errorf("Compare(%q, %q) = %d; want %d", chain[i], chain[j], got, want)
			}
		}
	}
}

func FuzzCompare(f *testing.F) {
	for _, s := range []string{"6.10.0-rc3", "6.1~rc1", "123^post1", "-.~^", "1.a", "arch1", "0-rescue-x"} {
		f.Add(s, "6.10.0")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if x, y := Compare(a, b), Compare(b, a); x != -y {
			t.Errorf("Compare(%q, %q) = %d but Compare(%q, %q) = %d", a, b, x, b, a, y)
		}
		if Compare(a, a) != 0 {
			t.Errorf("Compare(%q, %q) != 0", a, a)
		}
	})
}

// bzImage returns the start of an x86 bzImage whose setup header points at
// a kernel version string beginning with release.
func bzImage(release string) []byte {
	const at = 0x3c0 // where the string sits, as in real setup code
	b := make([]byte, 0x800)
	binary.LittleEndian.PutUint16(b[0x1fe:], 0xaa55)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x020f)
	binary.LittleEndian.PutUint16(b[0x20e:], at-0x200)
	copy(b[at:], release+" (builder@buildhost) (gcc (GCC) 13.2.1, GNU ld 2.41) #1 SMP PREEMPT_DYNAMIC Thu, 01 Feb 2024 10:00:00 +0000\x00")
	return b
}

func TestReleaseOf(t *testing.T) {
	dir := t.TempDir()
	fsys := rootfs.New(dir)
	arm64 := make([]byte, 0x800)
	copy(arm64[0x38:], "ARM\x64")
	signed := testimg.Arm64PE{Sections: []int{0x3000, 0x1800}, Cert: 1472, Release: "6.1.0-57-cloud-arm64"}.Bytes()
	noNUL := bzImage("6.1.0-54-cloud-amd64")[:0x3d0]
	zeroPtr := bzImage("6.1.0-54-cloud-amd64")
	zeroPtr[0x20e], zeroPtr[0x20f] = 0, 0
	for name, tt := range map[string]struct {
		data []byte
		want string
	}{
		"debian":    {bzImage("6.1.0-54-cloud-amd64"), "6.1.0-54-cloud-amd64"},
		"arch":      {bzImage("6.6.8-arch1-1"), "6.6.8-arch1-1"},
		"arm64":     {arm64, ""},
		"gzip":      {[]byte("\x1f\x8b\x08\x00rest"), ""},
		"truncated": {noNUL, ""},
		"noversion": {zeroPtr, ""},
		"empty":     {nil, ""},

		"arm64 Image":           {testimg.Arm64Release(0x10000, "6.1.0-57-cloud-arm64"), "6.1.0-57-cloud-arm64"},
		"arm64 signed PE Image": {signed, "6.1.0-57-cloud-arm64"},
		"Image.gz":              {testimg.Gzip(signed), "6.1.0-57-cloud-arm64"},
		"zboot":                 {testimg.Zboot(testimg.Gzip(signed), "gzip"), "6.1.0-57-cloud-arm64"},
		"zboot zstd":            {testimg.Zboot([]byte("zstd data"), "zstd"), ""},
		"Image without banner":  {testimg.Arm64(0x10000), ""},
		"Image.gz cut early":    {testimg.Gzip(signed)[:40], ""},
		"gzip of text":          {testimg.Gzip([]byte(testimg.Banner("6.1.0-1-amd64"))), "6.1.0-1-amd64"},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), tt.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if got := ReleaseOf(fsys, "/"+name); got != tt.want {
			t.Errorf("ReleaseOf(%s) = %q; want %q", name, got, tt.want)
		}
	}
	if got := ReleaseOf(fsys, "/missing"); got != "" {
		t.Errorf("ReleaseOf(missing) = %q; want \"\"", got)
	}
}

func TestBannerRelease(t *testing.T) {
	long := strings.Repeat("a", maxRelease-1)
	for _, tt := range []struct{ name, text, want string }{
		{"banner", testimg.Banner("6.1.0-57-cloud-arm64"), "6.1.0-57-cloud-arm64"},
		{"format string first", "Linux version %s\x00" + testimg.Banner("6.6.8-arch1-1"), "6.6.8-arch1-1"},
		{"prefix twice", "Linux version Linux version 6.1 (", "6.1"},
		{"ends after the space", "Linux version 6.1 ", "6.1"},
		{"ends in the release", "Linux version 6.1", ""},
		{"NUL in the release", "Linux version 6.1\x00 (", ""},
		{"no digit", "Linux version unknown (", ""},
		{"64 bytes", "Linux version 6" + long + " (", "6" + long},
		{"65 bytes", "Linux version 6" + long + "a (", ""},
		{"nothing", "Linux versio", ""},
	} {
		// Put the text at every place around the first chunk boundaries,
		// behind bytes that begin the prefix over and over, and read it in
		// pieces of every size the reader gives.
		for _, chunk := range []int{0, 200, 333} {
			for pad := 0; pad < 3*max(chunk, 200); pad++ {
				data := append(bytes.Repeat([]byte("L"), pad), tt.text...)
				for _, r := range []io.Reader{bytes.NewReader(data), iotest.HalfReader(bytes.NewReader(data)), iotest.OneByteReader(bytes.NewReader(data))} {
					if got := bannerRelease(r, chunk); got != tt.want {
						t.Fatalf("%s: bannerRelease(%d bytes of padding, chunk %d) = %q; want %q", tt.name, pad, chunk, got, tt.want)
					}
				}
			}
		}
	}
}

// BenchmarkReleaseOf reads the release from the arm64 kernel image at
// $KXBOOT_BENCH_ARM64 (a real one, such as Debian's 27 MB signed Image),
// as it is and gzipped as Image.gz and EFI zboot.
func BenchmarkReleaseOf(b *testing.B) {
	src := os.Getenv("KXBOOT_BENCH_ARM64")
	if src == "" {
		b.Skip("set KXBOOT_BENCH_ARM64 to an arm64 kernel Image")
	}
	img, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	want := ReleaseOf(rootfs.New("/"), src)
	if want == "" {
		b.Fatalf("no release in %s", src)
	}
	b.Logf("%s: %q", src, want)
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(img)
	zw.Close()
	dir := b.TempDir()
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"Image", img},
		{"Image.gz", gz.Bytes()},
		{"zboot", testimg.Zboot(gz.Bytes(), "gzip")},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			b.Fatal(err)
		}
		b.Run(f.name, func(b *testing.B) {
			for b.Loop() {
				if got := ReleaseOf(rootfs.New(dir), "/"+f.name); got != want {
					b.Fatalf("ReleaseOf = %q; want %q", got, want)
				}
			}
		})
	}
}
