package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// The boot-counting cases: every one ends in userspace on the provider's
// kernel A within MAX_TRIES firmware resets, with the failure and its
// reason in the history. They run on the tiny guest (tiny_test.go).

// report is what every case's last boot prints: status, history.
const report = `step status kxboot status
step history kxboot history --json
step tries cat /var/lib/kxboot/tries
step leftovers sh -c 'ls -a /var/lib/kxboot | grep tmp || true'
`

// fellBack checks the provider boot n after a fallback: status says so in
// its first line, with the reason; the history ends in a fallback.
func (gu *guest) fellBack(n int, reason, events string) {
	gu.t.Helper()
	st := gu.ok(fmt.Sprint(n), "status")
	first := ""
	if len(st.Out) > 0 {
		first = st.Out[0]
	}
	if !strings.HasPrefix(first, "FALLBACK:") || !strings.Contains(first, reason) {
		gu.errorf("boot %d: kxboot status's first line is %q; want FALLBACK: ... %q", n, first, reason)
	}
	if got := gu.events(n, "history"); got != events {
		gu.errorf("boot %d: history events %q; want %q", n, got, events)
	}
	hist := gu.step(fmt.Sprint(n), "history").Stdout()
	if !strings.Contains(hist, reason) {
		gu.errorf("boot %d: the history does not give the reason %q:\n%s", n, reason, hist)
	}
}

// TestTriesDeadline: the owner's kernel comes up but never confirms; the
// watcher fails the try HEALTH_DEADLINE after the hop and reboots. In the
// first try nothing runs mark-good; in the second mark-good runs and keeps
// trying a HEALTH_CMD that fails (the guest has no network), and the
// failure records what the check said. After MAX_TRIES=2 the provider's
// kernel stays. The deadline is three to six times what kernel B needs to reach
// its runner here (3-6 s).
func TestTriesDeadline(t *testing.T) {
	t.Parallel()
	const conf = `HEALTH_CMD="grep -q up /sys/class/net/eth0/operstate"` + "\nHEALTH_DEADLINE=20\nMAX_TRIES=2\n"
	tg := startTiny(t, conf, "",
		harness.BootScript(1, "step status kxboot status\nkx_idle"),
		harness.BootScript(2, "(kxboot mark-good >/dev/console 2>&1 &)\nkx_idle"),
		harness.BootScript(3, report+"kx_poweroff"))
	tg.at(1, tg.b.Release)
	tg.has(1, "status", "tries:      this boot is try 1 of 2 of "+tg.kB+", waiting for kxboot mark-good")
	tg.at(2, tg.b.Release)
	tg.at(3, tg.a.Release)
	tg.fellBack(3, "no confirmation within HEALTH_DEADLINE (20 s after the hop); the last health check said: HEALTH_CMD",
		"hop/1 failed/1 hop/2 failed/2 fallback/0")
	// Try 1 never ran mark-good, try 2 quotes the check's own words.
	var failed []string
	for _, l := range tg.step("3", "history").Out {
		var e struct{ Event, Reason string }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			tg.errorf("history line %q: %v", l, err)
		}
		if e.Event == "failed" {
			failed = append(failed, e.Reason)
		}
	}
	if len(failed) != 2 || failed[0] != "no confirmation within HEALTH_DEADLINE (20 s after the hop)" ||
		!strings.HasSuffix(failed[1], "grep: /sys/class/net/eth0/operstate: No such file or directory") {
		tg.errorf("the failures' reasons are %q; want try 1's without a health check, try 2's with its words", failed)
	}
	a, b := tg.a.Release, tg.b.Release
	tg.kernelsWere(a, b, a, b, a)
}

// TestTriesKernelBroken: the kernel file is deleted, then truncated, after
// the install: each boot stays on A and says why; nothing is loaded.
func TestTriesKernelBroken(t *testing.T) {
	t.Parallel()
	tg := startTiny(t, "", "",
		harness.BootScript(1, `step good kxboot mark-good
cp /boot/vmlinuz-`+kernelBRelease(t)+` /root/kernel
rm /boot/vmlinuz-`+kernelBRelease(t)+`
kx_reboot`),
		harness.BootScript(2, `step status kxboot status
head -c 1000000 /root/kernel >/boot/vmlinuz-`+kernelBRelease(t)+`
kx_reboot`),
		harness.BootScript(3, report+"step loaded cat /sys/kernel/kexec_loaded\nkx_poweroff"))
	tg.at(1, tg.b.Release)
	tg.ok("1", "good")
	tg.at(2, tg.a.Release)
	tg.has(2, "status", "this boot:  boot on: kernel "+tg.kB+" does not exist")
	tg.at(3, tg.a.Release)
	tg.has(3, "status", "this boot:  boot on: kernel "+tg.kB+" is a truncated kernel image")
	if got := tg.events(3, "history"); got != "hop/1 confirmed/1 boot-on/0 boot-on/0" {
		tg.errorf("history events %q", got)
	}
	if got := tg.ok("3", "loaded").Stdout(); got != "0" {
		tg.errorf("a kernel is loaded after booting on: %q", got)
	}
}

// TestTriesKexecRefused: kexec is turned off before the hop
// (kernel.kexec_load_disabled=1 from the provider's command line): the
// provider's kernel boots on, with the reason.
func TestTriesKexecRefused(t *testing.T) {
	t.Parallel()
	tg := startTiny(t, "", " sysctl.kernel.kexec_load_disabled=1",
		harness.BootScript(1, report+"kx_poweroff"))
	tg.at(1, tg.a.Release)
	tg.has(1, "status", "this boot:  boot on: ")
	tg.has(1, "status", "kexec_load_disabled is 1")
	if got := tg.events(1, "history"); got != "boot-on/0" {
		tg.errorf("history events %q", got)
	}
	tg.kernelsWere(tg.a.Release)
}

// TestTriesPowerCut cuts the power right after the try is recorded (before
// the jump), and in another machine in the middle of writing the record.
// The record is never torn: the first comes back as a failed try, the
// second as if the hop had not begun.
func TestTriesPowerCut(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"after-record", "mid-record"} {
		t.Run(at, func(t *testing.T) {
			tg := startTiny(t, "MAX_TRIES=3\n", " kxboot.test_pause="+at,
				harness.BootScript(1, report+"step good kxboot mark-good\nstep after kxboot history --json\nkx_poweroff"))
			if _, err := tg.g.WaitFor("test pause at "+at, 3*time.Minute); err != nil {
				tg.fatalf("%v", err)
			}
			tg.powerCut("")
			tg.at(1, tg.b.Release)
			st := tg.ok("1", "status")
			if strings.Contains(st.Stdout(), "DAMAGED") {
				tg.errorf("the record is damaged after the power cut:\n%s", st.Stdout())
			}
			if got := tg.step("1", "leftovers").Stdout(); got != "" {
				tg.errorf("temp files left in /var/lib/kxboot: %q", got)
			}
			want := map[string]string{
				"after-record": "hop/1 failed/1 hop/2",
				"mid-record":   "hop/1",
			}[at]
			if got := tg.events(1, "history"); got != want {
				tg.errorf("history after the power cut: %q; want %q", got, want)
			}
			if got := tg.events(1, "after"); got != want+" confirmed/"+want[len(want)-1:] {
				tg.errorf("history after mark-good: %q", got)
			}
		})
	}
}

// TestTriesControl: a good kernel hops and confirms 4 times in a row,
// with no false fallback: with MAX_TRIES=2, one confirmation lost in any
// of them shows as a failed try, two as a fallback, twice over. (It was
// 20 times, 220 guest seconds; the OpenRC layout guests took that room in
// the suite's budget, and TestKnownGood and TestSlots, whose confirmed
// hops count the same way, 2 more of its 6.)
func TestTriesControl(t *testing.T) {
	t.Parallel()
	const boots = 4
	var files []harness.GuestFile
	for n := 1; n <= boots; n++ {
		end := "kx_reboot"
		if n == boots {
			end = report + "kx_poweroff"
		}
		files = append(files, harness.BootScript(n, "step good kxboot mark-good\nstep status kxboot status\n"+end))
	}
	tg := startTiny(t, "MAX_TRIES=2\n", "", files...)
	for n := 1; n <= boots; n++ {
		tg.at(n, tg.b.Release)
		if got := tg.ok(fmt.Sprint(n), "good").Stdout(); !strings.Contains(got, "confirmed "+tg.kB+" as healthy (try 1)") {
			tg.errorf("boot %d: mark-good said %q", n, got)
		}
		tg.has(n, "status", "tries:      0 unconfirmed")
	}
	want := strings.TrimSpace(strings.Repeat("hop/1 confirmed/1 ", boots))
	if got := tg.events(boots, "history"); got != want {
		tg.errorf("history: %q", got)
	}
	var ks []string
	for n := 0; n < boots; n++ {
		ks = append(ks, tg.a.Release, tg.b.Release)
	}
	tg.kernelsWere(ks...)
}

func kernelBRelease(t *testing.T) string {
	_, b := kernels(t)
	return b.Release
}
