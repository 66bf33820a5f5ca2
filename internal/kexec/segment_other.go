//go:build linux && !amd64

package kexec

import (
	"os"

	"golang.org/x/sys/unix"
)

// segmentLoad is u-root's path, used on amd64 only; the engine builds arm64
// segments itself and never calls this there.
func segmentLoad(kernel, initrd *os.File, cmdline string) error { return unix.ENOSYS }
