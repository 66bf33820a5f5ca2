package health

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
	"github.com/kxboot/kxboot/internal/tries"
)

// box is the owner's kernel after a hop, with a fake clock: Sleep moves
// /proc/uptime on.
type box struct {
	env     Env
	up      time.Duration
	checks  int
	reboots []string
	log     []string
}

func newBox(t *testing.T, cmdline string, cfg config.Config, pending bool) *box {
	fsys := rootfstest.New(t)
	rootfstest.Write(t, fsys, "/proc/cmdline", []byte(cmdline))
	b := &box{}
	setUp := func() {
		rootfstest.Write(t, fsys, "/proc/uptime", []byte(fmt.Sprintf("%.2f 1.00\n", b.up.Seconds())))
	}
	b.up = 20 * time.Second
	setUp()
	store := &tries.Store{FS: fsys}
	if pending {
		store.Write(tries.Hop(tries.Record{}, tries.Boot{Kernel: "/boot/vmlinuz-B", ID: "id"}, tries.Configured, "", time.Now(), "boot-a"))
	}
	b.env = Env{
		FS: fsys, Store: store, Config: &cfg,
		Logf:  func(f string, a ...any) { b.log = append(b.log, fmt.Sprintf(f, a...)) },
		Now:   func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).Add(b.up) },
		Sleep: func(d time.Duration) { b.up += d; setUp() },
		Check: func(cmd string, limit time.Duration) (string, error) {
			b.checks++
			if strings.Contains(cmd, "false") || (strings.Contains(cmd, "third") && b.checks < 3) {
				return "ping: connect: Network is unreachable\n", errors.New("exit status 1")
			}
			return "", nil
		},
		Reboot: func(reason string) error { b.reboots = append(b.reboots, reason); return nil },
	}
	return b
}

func conf(health string) config.Config {
	return config.Config{MaxTries: 3, HealthDeadline: 120, HealthCmd: health}
}

const hopLine = "root=/dev/vda ro kxboot.chained=1 panic=10"

func events(t *testing.T, s *tries.Store) string {
	h, err := s.ReadHistory()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range h {
		out = append(out, e.Event)
	}
	return strings.Join(out, " ")
}

func TestConfirm(t *testing.T) {
	b := newBox(t, hopLine, conf("ping -c1 third-time-lucky"), true)
	what, err := Confirm(b.env)
	if err != nil || !strings.Contains(what, "confirmed /boot/vmlinuz-B as healthy (try 1)") {
		t.Fatalf("Confirm = %q, %v", what, err)
	}
	if b.checks != 3 {
		t.Errorf("HEALTH_CMD ran %d times; want 3 (two failures, then success)", b.checks)
	}
	r, _ := b.env.Store.Read()
	if r.Pending || r.Tries != 0 || r.Health != "" {
		t.Errorf("record after confirming: %+v", r)
	}
	if got := events(t, b.env.Store); got != "confirmed" {
		t.Errorf("history: %s", got)
	}
	if what, err := Confirm(b.env); err != nil || !strings.Contains(what, "already confirmed") {
		t.Errorf("second Confirm = %q, %v", what, err)
	}
}

// TestConfirmNotAHop: mark-good on a boot that did not come through
// kxboot confirms nothing; a try a boot before left pending (a fast
// reboot into a kernel that never came back) is recorded as failed, once.
func TestConfirmNotAHop(t *testing.T) {
	b := newBox(t, "root=/dev/vda ro", conf(""), true)
	what, err := Confirm(b.env)
	if err != nil || !strings.Contains(what, "did not come through kxboot: the hop into /boot/vmlinuz-B (try 1) failed: the kernel never confirmed") {
		t.Errorf("Confirm on the provider's kernel = %q, %v", what, err)
	}
	r, _ := b.env.Store.Read()
	if r.Pending || r.Tries != 1 || r.Failure == nil || !r.Confirmed.IsZero() || !strings.HasSuffix(r.Failure.Reason, "the firmware brought back "+b.env.Release) {
		t.Errorf("the provider's kernel settled the owner's try as %+v", r)
	}
	what, err = Confirm(b.env)
	if err != nil || what != "this boot did not come through kxboot (no marker on the command line): nothing to confirm" {
		t.Errorf("second Confirm = %q, %v", what, err)
	}
	// A try this very boot recorded (for the reboot it is going down for)
	// is not this boot's to settle.
	b.env.Store.Write(tries.Hop(tries.Record{}, tries.Boot{Kernel: "/boot/k", ID: "k"}, tries.Configured, "", time.Now(), b.env.BootID))
	Confirm(b.env)
	if r, _ := b.env.Store.Read(); !r.Pending {
		t.Errorf("settled this boot's own try: %+v", r)
	}
}

// TestHealthFailsUntilDeadline: a kernel without network never confirms;
// the watcher fails the try with the health check's complaint and reboots.
func TestHealthFailsUntilDeadline(t *testing.T) {
	b := newBox(t, hopLine, conf("/bin/false"), true)
	if _, err := Confirm(b.env); err == nil || !strings.Contains(err.Error(), "did not succeed before HEALTH_DEADLINE") {
		t.Fatalf("Confirm = %v", err)
	}
	if r, _ := b.env.Store.Read(); !r.Pending || !strings.Contains(r.Health, "Network is unreachable") {
		t.Errorf("record: %+v", r)
	}
	b.up = 20 * time.Second
	if err := Watch(b.env); err != nil {
		t.Fatal(err)
	}
	if len(b.reboots) != 1 || !strings.Contains(b.reboots[0], "no confirmation within HEALTH_DEADLINE (120 s after the hop); the last health check said: HEALTH_CMD \"/bin/false\" failed: exit status 1: ping: connect: Network is unreachable") {
		t.Errorf("reboots: %q", b.reboots)
	}
	r, _ := b.env.Store.Read()
	if r.Pending || r.Tries != 1 || r.Failure == nil {
		t.Errorf("record after the deadline: %+v", r)
	}
	if got := events(t, b.env.Store); got != "failed" {
		t.Errorf("history: %s", got)
	}
}

func TestWatchConfirmed(t *testing.T) {
	b := newBox(t, hopLine, conf(""), true)
	sleeps := 0
	sleep := b.env.Sleep
	b.env.Sleep = func(d time.Duration) {
		sleep(d)
		if sleeps++; sleeps == 3 {
			if _, err := Confirm(b.env); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := Watch(b.env); err != nil || len(b.reboots) != 0 {
		t.Errorf("Watch = %v, reboots %q; a confirmed hop must not reboot", err, b.reboots)
	}
	if b.up > 30*time.Second {
		t.Errorf("the watcher waited until %v after the confirmation", b.up)
	}
}

func TestWatchNothingPending(t *testing.T) {
	for _, tt := range []struct {
		line    string
		pending bool
	}{{hopLine, false}, {"root=/dev/vda", true}} {
		b := newBox(t, tt.line, conf(""), tt.pending)
		if err := Watch(b.env); err != nil || len(b.reboots) != 0 || b.up != 20*time.Second {
			t.Errorf("%q pending=%v: Watch = %v, reboots %q, waited to %v", tt.line, tt.pending, err, b.reboots, b.up)
		}
	}
}

func TestMarkBad(t *testing.T) {
	b := newBox(t, hopLine, conf(""), true)
	if err := Fail(b.env, "marked bad by kxboot mark-bad", false); err != nil {
		t.Fatal(err)
	}
	r, _ := b.env.Store.Read()
	if r.Pending || r.Failure == nil || r.Failure.Reason != "marked bad by kxboot mark-bad" || len(b.reboots) != 0 {
		t.Errorf("record %+v, reboots %q", r, b.reboots)
	}
	if _, err := Confirm(b.env); err == nil {
		t.Error("a failed try was confirmed")
	}
	nb := newBox(t, "root=/dev/vda", conf(""), true)
	if err := Fail(nb.env, "x", true); !errors.Is(err, ErrNotAHop) || len(nb.reboots) != 0 {
		t.Errorf("mark-bad on the provider's kernel: %v, %q", err, nb.reboots)
	}
}

// TestWatchUnreachable: on a slot's root whose record (kxboot.state=)
// cannot be reached, the watcher keeps trying, and at the deadline
// reboots through the firmware all the same: nothing could confirm.
func TestWatchUnreachable(t *testing.T) {
	b := newBox(t, hopLine+" kxboot.state=/dev/vdz", conf(""), true)
	if err := Watch(b.env); err != nil || len(b.reboots) != 1 || !strings.Contains(b.reboots[0], "no confirmation within HEALTH_DEADLINE (120 s after the hop): the try record cannot be reached: it is on kxboot.state=/dev/vdz, which cannot be found") {
		t.Errorf("Watch = %v, reboots %q", err, b.reboots)
	}
	if b.up < 120*time.Second {
		t.Errorf("rebooted at %v, before the deadline", b.up)
	}
}
