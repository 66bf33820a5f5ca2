package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// TestKnownGood: the owner's kernel B is confirmed; then the config names
// kernel C, a copy of B's file whose command line cannot mount its root
// (it panics at once). The tiny guest, MAX_TRIES=2:
//
//	A → B          try 1 of B, confirmed: B is the last known-good entry;
//	               KERNEL=C, APPEND=root=/dev/nonexistent
//	A → C, A → C   two panics (panic=, PANIC=2)
//	A              C used up its tries: the hop into the known-good
//	               entry, which also records C as given up, has its
//	               record write cut by a power cut (kxboot.test_pause=
//	               mid-record:known-good pauses that hop alone)
//	A → B          the record is whole, as if that hop had not begun:
//	               the known-good entry again, confirmed
//	A → B          every later boot: C stays given up
//	               C's file changes (touch), MAX_TRIES=1
//	A → C          a fresh count of C: try 1 of 1, a panic
//	A → B          the known-good entry again
//
// status's first line says at each boot which entry it is and why; the
// history records each hop's entry.
func TestKnownGood(t *testing.T) {
	t.Parallel()
	kB := "/boot/vmlinuz-" + kernelBRelease(t)
	const kC = "/boot/vmlinuz-c"
	conf := func(tries int) string {
		return "KERNEL=" + kC + `\nABORT_SECONDS=0\nMAX_TRIES=` + string(rune('0'+tries)) + `\nPANIC=2\nAPPEND=root=/dev/nonexistent\n`
	}
	tg := startTiny(t, "MAX_TRIES=2\n", " kxboot.test_pause=mid-record:known-good",
		harness.BootScript(1, `step good kxboot mark-good
cp `+kB+` `+kC+`
printf '`+conf(2)+`' >/etc/default/kxboot
kx_reboot`),
		harness.BootScript(2, "step status kxboot status\nstep leftovers sh -c 'ls -a /var/lib/kxboot | grep tmp || true'\nstep good kxboot mark-good\nkx_reboot"),
		harness.BootScript(3, `step status kxboot status
step good kxboot mark-good
touch `+kC+`
printf '`+conf(1)+`' >/etc/default/kxboot
kx_reboot`),
		harness.BootScript(4, report+"kx_poweroff"))
	a, b := tg.a.Release, tg.b.Release
	tg.at(1, b)
	tg.ok("1", "good")
	if _, err := tg.g.WaitFor("test pause at mid-record", 3*time.Minute); err != nil {
		tg.fatalf("%v", err)
	}
	if _, err := tg.g.WaitFor("Kernel panic - not syncing: VFS: Unable to mount root fs", time.Second); err != nil {
		tg.errorf("kernel C did not panic the way the case means: %v", err)
	}
	tg.kernelsWere(a, b, a, b, a, b, a)
	tg.powerCut("")
	entry := func(n int, want string) {
		t.Helper()
		st := tg.ok(string(rune('0'+n)), "status")
		if len(st.Out) == 0 || !strings.HasPrefix(st.Out[0], "entry:      the last known-good kernel: ") || !strings.Contains(st.Out[0], want) {
			tg.errorf("boot %d: status's first line is %q; want the known-good entry because %q", n, first(st.Out), want)
		}
	}
	tg.at(2, b)
	if got := tg.step("2", "leftovers").Stdout(); got != "" {
		tg.errorf("boot 2: temp files left in /var/lib/kxboot after the power cut: %q", got)
	}
	entry(2, "2 unconfirmed hops in a row into "+kC+" (last: the kernel never confirmed")
	entry(2, "; booting the last known-good kernel "+kB+" ("+b+") (confirmed ")
	tg.ok("2", "good")
	tg.at(3, b)
	entry(3, kC+" used up its 2 tries (last: the kernel never confirmed")
	tg.ok("3", "good")
	tg.at(4, b)
	entry(4, "1 unconfirmed hop into "+kC)
	// Each hop's entry and kernel, in the order they came.
	var got []string
	for _, l := range tg.ok("4", "history").Out {
		ev := jsonField(l, "event")
		if ev == "hop" {
			ev += ":" + jsonField(l, "entry") + ":" + jsonField(l, "kernel") + ":" + jsonField(l, "try")
		}
		got = append(got, ev)
	}
	want := []string{
		"hop:configured:" + kB + ":1", "confirmed",
		"hop:configured:" + kC + ":1", "failed", "hop:configured:" + kC + ":2", "failed",
		"hop:known-good:" + kB + ":1", "confirmed",
		"hop:known-good:" + kB + ":1", "confirmed",
		"hop:configured:" + kC + ":1", "failed",
		"hop:known-good:" + kB + ":1",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		tg.errorf("history:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if rec := tg.ok("4", "tries").Stdout(); !strings.Contains(rec, `"known_good":{"kernel":"`+kB+`"`) {
		tg.errorf("the try record does not keep B as known-good:\n%s", rec)
	}
	if !strings.Contains(tg.ok("4", "tries").Stdout(), `"gave_up":{"kernel":"`+kC+`"`) {
		tg.errorf("the record does not keep C given up")
	}
	// The qemu after the power cut.
	tg.kernelsWere(a, b, a, b, a, b, a, b)
}

func first(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[0]
}
