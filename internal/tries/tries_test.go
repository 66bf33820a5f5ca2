package tries

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestEncodeDecode(t *testing.T) {
	r := Hop(Record{}, Boot{Kernel: "/boot/vmlinuz-6.12", ID: "abc"}, Configured, "", t0, "boot-1")
	got, err := Decode(Encode(r))
	if err != nil {
		t.Fatal(err)
	}
	if got.Tries != 1 || !got.Pending || got.Kernel != "/boot/vmlinuz-6.12" || !got.HopTime.Equal(t0) || got.Version != version {
		t.Errorf("round trip: %+v", got)
	}
}

func TestDecodeDamaged(t *testing.T) {
	good := Encode(Hop(Record{}, Boot{Kernel: "/boot/k", ID: "id"}, Configured, "", t0, "b"))
	flipped := []byte(strings.Replace(string(good), `\"tries\":1`, `\"tries\":0`, 1))
	flipped = []byte(strings.Replace(string(flipped), `"tries":1`, `"tries":0`, 1))
	for name, b := range map[string][]byte{
		"empty":     nil,
		"torn":      good[:len(good)/2],
		"zeros":     make([]byte, 64),
		"edited":    flipped,
		"no record": []byte(`{"sha256":"00"}`),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: Decode = %v; want ErrDamaged", name, err)
		}
	}
	if string(flipped) == string(good) {
		t.Fatal("the edit did not change the record")
	}
}

// TestLifecycle follows the count through hops, failures and a
// confirmation: consecutive unconfirmed hops, not "ever booted once".
func TestLifecycle(t *testing.T) {
	const max = 3
	var r Record
	var f *Failure
	for i := 1; i <= max; i++ {
		if Exhausted(r, "A", max) {
			t.Fatalf("exhausted before hop %d", i)
		}
		if n := NextTry(r, "A"); n != i {
			t.Fatalf("next try %d; want %d", n, i)
		}
		r = Hop(r, Boot{Kernel: "/boot/k", ID: "A"}, Configured, "", t0, "b")
		r, f = Settle(r, t0.Add(time.Minute), "") // the provider's kernel came back
		if f == nil || f.Try != i || !strings.Contains(f.Reason, "never confirmed") {
			t.Fatalf("settle after hop %d: %+v", i, f)
		}
	}
	if !Exhausted(r, "A", max) {
		t.Fatalf("not exhausted after %d failed hops: %+v", max, r)
	}
	if Exhausted(r, "B", max) || NextTry(r, "B") != 1 {
		t.Error("a changed kernel or command line does not start a fresh count")
	}
	if Exhausted(r, "A", 0) {
		t.Error("MAX_TRIES=0 stopped the chain boot")
	}
	r = Reset(r)
	if Exhausted(r, "A", max) || r.Failure == nil {
		t.Errorf("reset: %+v (the last failure is kept for the record)", r)
	}
	// Confirmed, then failing again: counts from one.
	r = Confirm(Hop(r, Boot{Kernel: "/boot/k", ID: "A"}, Configured, "", t0, "b"), t0)
	if r.Tries != 0 || r.Pending {
		t.Fatalf("confirm: %+v", r)
	}
	r = Hop(r, Boot{Kernel: "/boot/k", ID: "A"}, Configured, "", t0, "b")
	r.Health = "ping: network unreachable"
	r, f = Settle(r, t0, "")
	if r.Tries != 1 || f == nil || !strings.Contains(f.Reason, "ping: network unreachable") {
		t.Errorf("failure after a confirmation: %+v %+v", r, f)
	}
	if _, f := Settle(r, t0, ""); f != nil {
		t.Error("settling twice recorded two failures")
	}
	r, f = Fail(Hop(r, Boot{Kernel: "/boot/k", ID: "A"}, Configured, "", t0, "b"), t0, "marked bad")
	if r.Pending || r.Tries != 2 || f.Reason != "marked bad" {
		t.Errorf("fail: %+v %+v", r, f)
	}
}

func newStore(t *testing.T) (Store, string) {
	fsys := rootfstest.New(t)
	return Store{FS: fsys}, fsys.Root
}

func TestStore(t *testing.T) {
	s, root := newStore(t)
	r, err := s.Read()
	if err != nil || r.Tries != 0 {
		t.Fatalf("no record: %+v, %v", r, err)
	}
	// A write cut short by a power cut leaves a temp file: the next
	// write removes it and the record is whole.
	os.MkdirAll(filepath.Join(root, Dir), 0o755)
	leftover := filepath.Join(root, Dir, ".tries.tmp123")
	os.WriteFile(leftover, []byte("half"), 0o644)
	called := false
	s.BeforeRename = func() {
		called = true
		// At this instant the old record (none) is what a reader sees.
		if _, err := os.Stat(filepath.Join(root, RecordPath)); err == nil {
			t.Error("the record was in place before the rename")
		}
	}
	if _, err := s.Update(func(r Record, err error) (Record, error) {
		return Hop(r, Boot{Kernel: "/boot/k", ID: "A"}, Configured, "", t0, "b"), err
	}); err != nil {
		t.Fatal(err)
	}
	if !called {
		t.Error("BeforeRename was not called")
	}
	if _, err := os.Stat(leftover); err == nil {
		t.Error("the leftover temp file is still there")
	}
	if r, err := s.Read(); err != nil || r.Tries != 1 {
		t.Errorf("read back: %+v, %v", r, err)
	}
	os.WriteFile(filepath.Join(root, RecordPath), []byte("garbage"), 0o644)
	if _, err := s.Read(); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), RecordPath) {
		t.Errorf("damaged record: %v", err)
	}
}

type fakeMounts struct{ calls []string }

func (f *fakeMounts) Mount(source, target, fstype string, flags uintptr, data string) error {
	f.calls = append(f.calls, fmt.Sprintf("mount %s ro=%v nosuid=%v", filepath.Base(target), flags&unix.MS_RDONLY != 0, flags&unix.MS_NOSUID != 0))
	return nil
}
func (f *fakeMounts) Unmount(target string, flags int) error { return nil }
func (f *fakeMounts) Sync()                                  { f.calls = append(f.calls, "sync") }

// TestWritableRemounts: the wrapper's root is read-only; a write remounts
// the file system that holds /var/lib/kxboot writable, writes, and puts it
// back read-only, keeping its flags.
func TestWritableRemounts(t *testing.T) {
	s, _ := newStore(t)
	rootfstest.Write(t, s.FS, "/proc/self/mounts", []byte("/dev/vda / ext4 ro,relatime 0 0\n/dev/vdb /var ext4 ro,nosuid 0 0\nproc /proc proc rw 0 0\n"))
	fm := &fakeMounts{}
	s.Mounts = fm
	n := 0
	err := s.writable(func() error {
		n++
		if n == 1 {
			return &os.PathError{Op: "open", Path: "x", Err: unix.EROFS}
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("err %v after %d writes", err, n)
	}
	want := "mount var ro=false nosuid=true,sync,mount var ro=true nosuid=true"
	if got := strings.Join(fm.calls, ","); got != want {
		t.Errorf("calls %s\nwant  %s", got, want)
	}
	// Other errors are not a reason to remount.
	fm.calls = nil
	err = s.writable(func() error { return unix.ENOSPC })
	if !errors.Is(err, unix.ENOSPC) || len(fm.calls) != 0 {
		t.Errorf("ENOSPC: %v, %v", err, fm.calls)
	}
}

func TestHistory(t *testing.T) {
	s, root := newStore(t)
	for i := 0; i < 3; i++ {
		if err := s.Append(Entry{Time: t0, Event: "hop", Try: i + 1, Max: 3}); err != nil {
			t.Fatal(err)
		}
	}
	// A power cut in the middle of an append leaves a partial line.
	f, _ := os.OpenFile(filepath.Join(root, HistoryPath), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-11-25T12:00:00Z","eve`)
	f.Close()
	es, err := s.ReadHistory()
	if err != nil || len(es) != 3 || es[2].Try != 3 {
		t.Fatalf("history: %+v, %v", es, err)
	}
	// Bounded: it never grows past MaxHistory.
	long := strings.Repeat("x", 1000)
	for i := 0; i < 400; i++ {
		if err := s.Append(Entry{Time: t0, Event: "boot-on", Reason: long}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := os.Stat(filepath.Join(root, HistoryPath))
	if st.Size() > MaxHistory {
		t.Errorf("history is %d bytes; bound %d", st.Size(), MaxHistory)
	}
	es, _ = s.ReadHistory()
	if len(es) < 100 || es[len(es)-1].Event != "boot-on" {
		t.Errorf("after trimming: %d entries", len(es))
	}
}

func TestIdentity(t *testing.T) {
	fsys := rootfstest.New(t)
	rootfstest.Write(t, fsys, "/boot/k", []byte("kernel one"))
	a := Identity(fsys, "/boot/k", nil, "root=/dev/vda")
	if b := Identity(fsys, "/boot/k", nil, "root=/dev/vda"); a != b {
		t.Error("identity is not stable")
	}
	if b := Identity(fsys, "/boot/k", nil, "root=/dev/vda quiet"); a == b {
		t.Error("a changed command line kept the identity")
	}
	if Identity(fsys, "/boot/k", nil, "root=/dev/vda panic=10 init=/bin/x m=1") != Identity(fsys, "/boot/k", nil, "root=/dev/vda init=/bin/x panic=10 m=1") {
		t.Error("the same words in another order gave another identity")
	}
	if Identity(fsys, "/boot/k", nil, "root=/dev/vda panic=10 init=/bin/x panic=1") != Identity(fsys, "/boot/k", nil, "root=/dev/vda init=/bin/x panic=1") {
		t.Error("a panic= gave another identity")
	}
	os.Remove(fsys.Path("/boot/k"))
	rootfstest.Write(t, fsys, "/boot/k", []byte("kernel two, replaced"))
	if b := Identity(fsys, "/boot/k", nil, "root=/dev/vda"); a == b {
		t.Error("a replaced kernel kept the identity")
	}
}

func TestForget(t *testing.T) {
	s, root := newStore(t)
	r, _ := Fail(Hop(Record{}, Boot{Kernel: "/boot/k", ID: "A"}, Configured, "", t0, "b"), t0, "marked bad")
	s.Write(Hop(r, Boot{Kernel: "/boot/k", ID: "A"}, Configured, "", t0, "b"))
	what, err := s.Forget(t0.Add(time.Hour), "boot-2", "6.1.0-47-cloud-amd64")
	if err != nil || what != "2 unconfirmed tries forgotten" {
		t.Fatalf("Forget = %q, %v", what, err)
	}
	if r, err := s.Read(); err != nil || r.Tries != 0 || r.Pending || r.Failure == nil || r.Kernel != "/boot/k" {
		t.Errorf("record after the reset: %+v, %v (the last failure is kept)", r, err)
	}
	es, _ := s.ReadHistory()
	want := Entry{Time: t0.Add(time.Hour), Boot: "boot-2", Running: "6.1.0-47-cloud-amd64", Kernel: "/boot/k", Event: "reset", Reason: what}
	if len(es) != 1 || es[0] != want {
		t.Errorf("history: %+v; want %+v", es, want)
	}

	// A damaged record is replaced by an empty one, and the history says
	// what was wrong with it.
	os.WriteFile(filepath.Join(root, RecordPath), []byte("garbage"), 0o644)
	what, err = s.Forget(t0, "boot-3", "")
	if err != nil || !strings.HasPrefix(what, "replaced a damaged record: ") || !strings.Contains(what, ErrDamaged.Error()) {
		t.Fatalf("Forget of a damaged record = %q, %v", what, err)
	}
	if r, err := s.Read(); err != nil || r != (Record{Version: version}) {
		t.Errorf("record after replacing a damaged one: %+v, %v", r, err)
	}
	if es, _ := s.ReadHistory(); len(es) != 2 || es[1].Event != "reset" || es[1].Reason != what || es[1].Kernel != "" {
		t.Errorf("history: %+v", es)
	}

	// A record that cannot be written is an error that names it.
	s.Fail = unix.EIO
	if _, err := s.Forget(t0, "boot-4", ""); err == nil || !strings.Contains(err.Error(), "cannot write "+RecordPath) || !errors.Is(err, unix.EIO) {
		t.Errorf("Forget on a machine that cannot write: %v", err)
	}
}
