package cli

import (
	"strings"
	"testing"

	"github.com/kxboot/kxboot/internal/tries"
)

// TestOnceAndSlots: the usage of --once and of kxboot slot, and what they
// record for the next hop.
func TestOnceAndSlots(t *testing.T) {
	m := newMachine(t)
	for _, args := range [][]string{
		{"chain", "--once"},
		{"chain", "--kernel", "/boot/vmlinuz-" + running},
		{"reboot", "--once", "--kernel", "/boot/vmlinuz-" + running, "--firmware"},
		{"slot", "frob"},
	} {
		if code := m.run(args...); code != 2 {
			t.Errorf("kxboot %s: exit %d; want 2 (usage)\n%s", strings.Join(args, " "), code, m.err)
		}
	}
	if code := m.run("chain", "--once", "--kernel", "/boot/vmlinuz-gone"); code != 1 || !strings.Contains(m.err.String(), "cannot boot /boot/vmlinuz-gone once: kernel /boot/vmlinuz-gone does not exist") {
		t.Errorf("a missing one-shot kernel: exit %d, %q", code, m.err)
	}
	out := m.mustRun("chain", "--once", "--kernel", "/boot/vmlinuz-"+running, "--dry-run")
	if !strings.Contains(out, "would boot /boot/vmlinuz-"+running+" once") || !strings.Contains(out, "initrd:  /boot/initrd.img-"+running) {
		t.Errorf("chain --once --dry-run said:\n%s", out)
	}
	if r, _ := (tries.Store{FS: m.fs}).Read(); r.Next != nil {
		t.Errorf("the dry run recorded %+v", r.Next)
	}
	m.mustRun("chain", "--once", "--kernel", "/boot/vmlinuz-"+running)
	if r, _ := (tries.Store{FS: m.fs}).Read(); r.Next == nil || r.Next.Kernel != "/boot/vmlinuz-"+running || r.Next.By != "kxboot chain --once" {
		t.Errorf("recorded %+v", r.Next)
	}
	if out := m.mustRun("chain", "--dry-run"); !strings.Contains(out, "would hop: booting /boot/vmlinuz-"+running+" ("+running+") once, asked for by kxboot chain --once") {
		t.Errorf("chain --dry-run after --once: %q", out)
	}
	// Without the fast reboot, reboot --once cannot boot another kernel.
	if code := m.run("reboot", "--once", "--kernel", "/boot/vmlinuz-"+running); code != 1 || !strings.Contains(m.err.String(), "the fast reboot is not installed") {
		t.Errorf("reboot --once without the install: exit %d, %q", code, m.err)
	}

	// Slots.
	if code := m.run("slot"); code != 1 || !strings.Contains(m.err.String(), "names no slots") {
		t.Errorf("slot without slots: exit %d, %q", code, m.err)
	}
	m.write("/etc/default/kxboot", []byte("SLOT_A_KERNEL=/boot/vmlinuz-"+newest+"\nSLOT_B_KERNEL=/boot/vmlinuz-"+running+"\n"))
	if out := m.mustRun("slot"); !strings.Contains(out, "* A  /boot/vmlinuz-"+newest) || !strings.Contains(out, "active: slot A, the first of SLOT_A_KERNEL in /etc/default/kxboot:1") {
		t.Errorf("slot list:\n%s", out)
	}
	if code := m.run("slot", "set-next", "C"); code != 2 || !strings.Contains(m.err.String(), "there is no slot C") {
		t.Errorf("set-next C: exit %d, %q", code, m.err)
	}
	m.mustRun("slot", "set-next", "B")
	if out := m.mustRun("slot"); !strings.Contains(out, "next:   slot B, once (kxboot slot set-next)") {
		t.Errorf("slot list after set-next:\n%s", out)
	}
	if out := m.mustRun("chain", "--dry-run"); !strings.Contains(out, "would hop: booting /boot/vmlinuz-"+running+" ("+running+") once, slot B, asked for by kxboot slot set-next") {
		t.Errorf("chain --dry-run after set-next: %q", out)
	}
}
