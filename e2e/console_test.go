package e2e

import (
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// TestConsole proves the harness without kxboot: kernel A boots the
// busybox initramfs, reports its release and command line, and reads a
// line typed on the serial console.
func TestConsole(t *testing.T) {
	t.Parallel()
	a, _ := kernels(t)
	root := harness.NewInitramfs().Busybox(busybox(t))
	root.File("/init", 0o755, harness.Script("1", `
say prompt "type a line"
read -r line
say typed "$line"
`))
	gu := start(t, root)
	if _, err := gu.g.WaitFor(harness.Tag+"prompt:", 2*time.Minute); err != nil {
		gu.fatalf("%v", err)
	}
	const line = "hello from the host  (two spaces)"
	if err := gu.g.Send(line + "\n"); err != nil {
		t.Fatal(err)
	}
	gu.wait()
	if got := gu.value("1", "release"); got != a.Release {
		gu.errorf("uname -r in the guest: got %q; want %q", got, a.Release)
	}
	if got := gu.value("1", "cmdline"); got != providerAppend(a) {
		gu.errorf("/proc/cmdline: got %q; want %q", got, providerAppend(a))
	}
	if got := gu.value("1", "typed"); got != line {
		gu.errorf("the guest read %q from its console; want %q", got, line)
	}
}
