package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// TestSlots: an A/B scheme on the tiny guest with two root file systems.
// Slot A is kernel B on this machine's own root (/dev/nvme0n1); slot B is
// kernel B on a second root, /dev/nvme1n1, which the chain boot mounts
// read-only to load it and whose kernel confirms its try in the first
// root's record (kxboot.state= on its command line: the first root's
// device, since both roots are copies of one image and share a UUID, as
// A/B pairs often do). The second
// root's health check passes only once /etc/kxtest-healthy exists there.
//
//	A → slot A          confirmed; kxboot slot set-next B
//	A → slot B (101)    HEALTH_CMD fails: the deadline watcher fails the
//	                    try and reboots through the firmware
//	A → slot A (2)      back by itself; set-next B again
//	A → slot B (102)    healthy: confirmed, slot B is active
//	A → slot B (103)    the active slot, every boot
//
// The second root's runner counts its boots from 101.
func TestSlots(t *testing.T) {
	t.Parallel()
	kB := "/boot/vmlinuz-" + kernelBRelease(t)
	const slots = "ABORT_SECONDS=0\nMAX_TRIES=2\nSLOT_A_KERNEL=%s\nSLOT_B_KERNEL=%s\nSLOT_B_ROOT=/dev/nvme1n1\n"
	conf := strings.ReplaceAll(slots, "%s", kB)
	history := "step history kxboot history --json\n"
	tg := newTiny(t, "", "",
		harness.GuestFile{Path: "/etc/default/kxboot", Data: []byte(conf)},
		harness.BootScript(1, "step good kxboot mark-good\nstep slots kxboot slot\nstep next kxboot slot set-next B\nkx_reboot"),
		harness.BootScript(2, "step status kxboot status\n"+history+"step good kxboot mark-good\nstep next kxboot slot set-next B\nkx_reboot"))
	tg.addRoot("ABORT_SECONDS=0\nHEALTH_CMD=\"test -e /etc/kxtest-healthy\"\nHEALTH_DEADLINE=15\n",
		harness.BootScript(101, "step status kxboot status\n(kxboot mark-good >/dev/console 2>&1 &)\nkx_idle"),
		harness.BootScript(102, "touch /etc/kxtest-healthy\nstep good kxboot mark-good\nstep slots kxboot slot\nkx_reboot"),
		harness.BootScript(103, "step status kxboot status\n"+history+"step slots kxboot slot\nkx_poweroff"))
	tg.launch()
	a, b := tg.a.Release, tg.b.Release
	firstLine := func(n, want string) {
		t.Helper()
		st := tg.ok(n, "status")
		if len(st.Out) == 0 || !strings.HasPrefix(st.Out[0], want) {
			tg.errorf("boot %s: status's first line is %q; want %q", n, first(st.Out), want)
		}
	}
	onSecond := func(n int) {
		t.Helper()
		s := tg.guest.at(n, b)
		line, _ := s.Get("cmdline")
		// Both roots are copies of one image, with one UUID: the state is
		// named by its device.
		if !strings.Contains(line, " root=/dev/nvme1n1 ") || !strings.Contains(line, " kxboot.state=/dev/nvme0n1 ") {
			tg.errorf("boot %d: the second root's command line %q lacks root=/dev/nvme1n1 or kxboot.state=/dev/nvme0n1", n, line)
		}
	}

	tg.at(1, b)
	tg.ok("1", "good")
	if got := tg.ok("1", "slots").Stdout(); !strings.Contains(got, "* A  "+kB+"  (this machine's files)") || !strings.Contains(got, "  B  "+kB+"  (root /dev/nvme1n1)") {
		tg.errorf("boot 1: kxboot slot said:\n%s", got)
	}
	tg.ok("1", "next")

	onSecond(101)
	firstLine("101", "entry:      the one-shot kernel: booting "+kB+" ("+b+") once, slot B, asked for by kxboot slot set-next, read from /dev/nvme1n1 (mounted read-only to load)")
	tg.has(101, "status", "tries on:   /dev/nvme0n1")
	if _, err := tg.g.WaitFor("no confirmation within HEALTH_DEADLINE (15 s after the hop)", 2*time.Minute); err != nil {
		tg.errorf("the watcher on slot B did not fail its try: %v", err)
	}

	tg.at(2, b)
	firstLine("2", "entry:      the configured kernel: booting "+kB+" ("+b+"), named by slot A, the active one (confirmed ")
	events := func(n string) string {
		var out []string
		for _, l := range tg.ok(n, "history").Out {
			out = append(out, jsonField(l, "event")+":"+jsonField(l, "entry"))
		}
		return strings.Join(out, " ")
	}
	if got, want := events("2"), "hop:configured confirmed: hop:once failed: hop:configured"; got != want {
		tg.errorf("boot 2: history %q; want %q", got, want)
	}
	if h := tg.step("2", "history").Stdout(); !strings.Contains(h, "the last health check said: HEALTH_CMD") {
		tg.errorf("boot 2: slot B's failure does not quote its health check:\n%s", h)
	}
	tg.ok("2", "good")
	tg.ok("2", "next")

	onSecond(102)
	tg.has(102, "good", "confirmed "+kB+" as healthy")
	if got := tg.ok("102", "slots").Stdout(); !strings.Contains(got, "* B  ") || !strings.Contains(got, "active: slot B, the active one (confirmed ") {
		tg.errorf("boot 102: kxboot slot said:\n%s", got)
	}

	onSecond(103)
	firstLine("103", "entry:      the configured kernel: booting "+kB+" ("+b+"), named by slot B, the active one (confirmed ")
	tg.has(103, "status", "read from /dev/nvme1n1 (mounted read-only to load)")
	if got, want := events("103"), "hop:configured confirmed: hop:once failed: hop:configured confirmed: hop:once confirmed: hop:configured"; got != want {
		tg.errorf("boot 103: history %q; want %q", got, want)
	}
	if err := tg.g.Wait(); err != nil {
		tg.fatalf("qemu did not end after the poweroff: %v", err)
	}
	tg.kernelsWere(a, b, a, b, a, b, a, b, a, b)
}
