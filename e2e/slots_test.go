package e2e

import (
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kxboot/kxboot/e2e/internal/harness"
)

// Guest slots. Every case runs its guests inside a slot, and there are two:
// a TCG guest keeps a core busy, and these machines have two. A freed slot
// goes to the waiting case that cost the most in the last full run
// (caseCost), so the long cases start first and the run does not end with
// one long case alone on a core. go test must let every case wait at once
// for that to work: make test runs the e2e package with -parallel 64.
const slotCount = 2

// slotsEnv overrides slotCount, for measuring.
const slotsEnv = "KXBOOT_E2E_SLOTS"

// caseCost is each case's guest seconds in the last full run
// (docs/testing.md); a case not listed counts as defaultCost. Only the
// order matters: keep the list roughly current when cases change.
var caseCost = map[string]float64{
	"TestFleetAnsible":                  300,
	"TestChain/systemd":                 210,
	"TestFastRebootLayouts/openrc-init": 160,
	"TestFastRebootLayouts/busybox":     155,
	"TestChainArm64/wrapper":            130,
	"TestChain/openrc-busybox":          115,
	"TestChainArm64/systemd":            110,
	"TestChain/wrapper-sysvinit":        105,
	"TestChain/sysvinit":                95,
	"TestFastReboot/openrc":             92,
	"TestKnownGood":                     90,
	"TestFastRebootLayouts/gentoo":      88,
	"TestChain/wrapper-systemd":         85,
	"TestSlots":                         80,
	"TestFastReboot/sysvinit":           77,
	"TestTriesDeadline":                 62,
	"TestWatchdogRecovers":              120,
	"TestArm64WatchdogRecovers":         88,
	"TestWatchdogStopped":               49,
	"TestTriesControl":                  52,
	"TestTriesKernelBroken":             27,
	"TestTriesPowerCut/after-record":    18,
	"TestTriesPowerCut/mid-record":      16,
	"TestHopFileLoad":                   12,
	"TestBadInputs":                     10,
	"TestHopKexecLoad":                  12,
	"TestWrapperHopsOnce":               11,
	// arm64 under TCG; measured on a busy machine, with the UEFI cases
	// estimated as if kxboot's UEFI hop worked (their kernel B adds
	// about the devicetree case's second kernel).
	"TestArm64Hop/uefi":                   24,
	"TestArm64WrapperHopsOnce/uefi":       24,
	"TestArm64Hop/devicetree":             20,
	"TestArm64WrapperHopsOnce/devicetree": 20,
	"TestArm64WrapperBootsOn/uefi":        12,
	"TestArm64WrapperBootsOn/devicetree":  11,
}

const defaultCost = 10

// settle is how long the queue waits after the last case began waiting
// before it hands out a free slot: the cases of a run start waiting within
// milliseconds of each other, and the costliest should get the first slots.
const settle = 200 * time.Millisecond

type slotQueue struct {
	mu      sync.Mutex
	free    int
	waiting []*waiter
	last    time.Time   // when the newest waiter came
	timer   *time.Timer // a pending dispatch, or nil
}

type waiter struct {
	cost  float64
	ready chan struct{}
}

var slots = &slotQueue{free: slotTotal()}

func slotTotal() int {
	if n, err := strconv.Atoi(os.Getenv(slotsEnv)); err == nil && n > 0 {
		return n
	}
	return slotCount
}

// acquire waits until the case named name has a slot.
func (q *slotQueue) acquire(name string) {
	cost, ok := caseCost[name]
	if !ok {
		cost = defaultCost
	}
	w := &waiter{cost: cost, ready: make(chan struct{})}
	q.mu.Lock()
	q.waiting = append(q.waiting, w)
	q.last = time.Now()
	q.schedule()
	q.mu.Unlock()
	<-w.ready
}

// release gives a slot back.
func (q *slotQueue) release() {
	q.mu.Lock()
	q.free++
	q.schedule()
	q.mu.Unlock()
}

// schedule arms a dispatch once the queue has settled. q.mu is held.
func (q *slotQueue) schedule() {
	if q.timer != nil || q.free == 0 || len(q.waiting) == 0 {
		return
	}
	q.timer = time.AfterFunc(time.Until(q.last.Add(settle)), q.dispatch)
}

// dispatch hands the free slots to the costliest waiters.
func (q *slotQueue) dispatch() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.timer = nil
	if wait := time.Until(q.last.Add(settle)); wait > 0 {
		q.timer = time.AfterFunc(wait, q.dispatch)
		return
	}
	for q.free > 0 && len(q.waiting) > 0 {
		best := 0
		for i, w := range q.waiting {
			if w.cost > q.waiting[best].cost {
				best = i
			}
		}
		w := q.waiting[best]
		q.waiting = append(q.waiting[:best], q.waiting[best+1:]...)
		q.free--
		close(w.ready)
	}
}

// slot is a case's hold on a guest slot, with the guests it ran.
type slot struct {
	mu     sync.Mutex
	guests []*harness.Guest
}

// claim waits for a guest slot for t and keeps it until t ends. Then it
// logs how many kernels the case's guests started and how long it held the
// slot, in the line that e2e/report adds up.
func claim(t *testing.T) *slot {
	t.Helper()
	slots.acquire(t.Name())
	s := &slot{}
	start := time.Now()
	t.Cleanup(func() {
		s.mu.Lock()
		n := 0
		for _, g := range s.guests {
			n += len(g.Kernels())
		}
		s.mu.Unlock()
		t.Logf("kxtest-guest: %d kernel starts, %.1f s in a guest slot", n, time.Since(start).Seconds())
		slots.release()
	})
	return s
}

// add counts g's kernels as the case's.
func (s *slot) add(g *harness.Guest) {
	s.mu.Lock()
	s.guests = append(s.guests, g)
	s.mu.Unlock()
}
