//go:build linux && amd64

package kexec

import (
	"io"
	"log"
	"os"

	"github.com/u-root/u-root/pkg/boot/linux"
)

// segmentLoad uses u-root's kexec_load implementation on amd64, which parses
// the bzImage and builds the segments, the boot_params and the purgatory.
// arm64's segments are kxboot's own (arm64.go).
func segmentLoad(kernel, initrd *os.File, cmdline string) error {
	// u-root logs debug dumps (the purgatory's ELF headers, a note that a
	// signed image's signature is ignored) through the standard logger;
	// kxboot's errors say what matters, so keep that off the console.
	prev := log.Writer()
	log.SetOutput(io.Discard)
	defer log.SetOutput(prev)
	return linux.KexecLoad(kernel, initrd, cmdline, nil, nil)
}
