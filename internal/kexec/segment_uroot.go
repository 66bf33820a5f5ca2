//go:build linux && (amd64 || arm64)

package kexec

import (
	"io"
	"log"
	"os"

	"github.com/u-root/u-root/pkg/boot/linux"
)

// segmentLoad uses u-root's kexec_load implementation, which parses the image
// and builds the segments: on amd64 the boot_params and purgatory, on arm64
// the trampoline and the device tree taken from the running system.
func segmentLoad(kernel, initrd *os.File, cmdline string) error {
	// u-root logs debug dumps (the purgatory's ELF headers, a note that a
	// signed image's signature is ignored) through the standard logger;
	// kxboot's errors say what matters, so keep that off the console.
	prev := log.Writer()
	log.SetOutput(io.Discard)
	defer log.SetOutput(prev)
	return linux.KexecLoad(kernel, initrd, cmdline, nil, nil)
}
