package e2e

import (
	"testing"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// TestStatic checks that the kxboot binary needs no dynamic loader: it must
// run alone in an initramfs.
func TestStatic(t *testing.T) {
	t.Parallel()
	kx := kxboot(t) // BuildKxboot already checks; check again to say so here
	if err := harness.CheckStatic(kx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: x86-64 ELF, no PT_INTERP, no DT_NEEDED", kx)
}
