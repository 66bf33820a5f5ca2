//go:build linux

package watchdog

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOptionsMatchTheKernel(t *testing.T) {
	if OptSetTimeout != unix.WDIOF_SETTIMEOUT || OptMagicClose != unix.WDIOF_MAGICCLOSE || OptKeepalivePing != unix.WDIOF_KEEPALIVEPING {
		t.Fatal("the WDIOF_ flags differ from golang.org/x/sys/unix")
	}
}

// Native on a path that does not exist: the error must say "no watchdog".
// (It never opens a real watchdog.)
func TestNativeOpenMissing(t *testing.T) {
	_, err := Native{}.Open(filepath.Join(t.TempDir(), "watchdog"))
	if !errors.Is(err, fs.ErrNotExist) || !absent(err) {
		t.Fatalf("err %v", err)
	}
}
