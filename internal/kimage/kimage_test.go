package kimage

import (
	"bytes"
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
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, tt.is) {
				t.Fatalf("err = %v; want it to contain %q and wrap %v", err, tt.wantErr, tt.is)
			}
			if !strings.Contains(err.Error(), "/boot/vmlinuz") {
				t.Errorf("err = %v; want it to name the file", err)
			}
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
