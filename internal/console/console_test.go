package console

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

// pty opens a pseudo-terminal pair: the master stands for the person at the
// console, the slave path for the console kxboot opens.
func pty(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// readAll drains what kxboot wrote to the console so far.
func readAll(m *os.File) string {
	m.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := m.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return string(out)
		}
	}
}

func TestAnyKeyAborts(t *testing.T) {
	for _, key := range []string{"x", "\x03" /* Ctrl+C */, "\r", "\x1b"} {
		m, slave := pty(t)
		go func() {
			time.Sleep(300 * time.Millisecond)
			m.Write([]byte(key))
		}()
		start := time.Now()
		who := Window([]string{slave}, "kxboot: booting K in %d s; press any key", 5*time.Second)
		if who != strings.TrimPrefix(slave, "/dev/") {
			t.Errorf("key %q: Window = %q; want the console %s", key, who, slave)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("key %q: the window stayed open %v after the key", key, el)
		}
		if out := readAll(m); !strings.Contains(out, "kxboot: booting K in 5 s; press any key") {
			t.Errorf("console showed %q", out)
		}
	}
}

func TestTimeoutHops(t *testing.T) {
	m, slave := pty(t)
	start := time.Now()
	if who := Window([]string{slave}, "booting in %d s", 1500*time.Millisecond); who != "" {
		t.Errorf("Window = %q with no key; want the time to run out", who)
	}
	if el := time.Since(start); el < 1400*time.Millisecond || el > 4*time.Second {
		t.Errorf("the window lasted %v; want 1.5 s", el)
	}
	out := readAll(m)
	if !strings.Contains(out, "booting in 2 s") || !strings.Contains(out, "booting in 1 s") {
		t.Errorf("the countdown showed %q", out)
	}
}

func TestKeyBeforeWindowDoesNotCount(t *testing.T) {
	m, slave := pty(t)
	// Open the slave once so the line discipline holds the typed key.
	s, err := os.OpenFile(slave, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m.Write([]byte("early\r"))
	time.Sleep(100 * time.Millisecond)
	if who := Window([]string{slave}, "%d", 700*time.Millisecond); who != "" {
		t.Errorf("a key typed before the window aborted it (%q)", who)
	}
}

func TestTerminalRestored(t *testing.T) {
	m, slave := pty(t)
	s, err := os.OpenFile(slave, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before, _ := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	go func() { time.Sleep(200 * time.Millisecond); m.Write([]byte("q")) }()
	Window([]string{slave}, "%d", 3*time.Second)
	after, _ := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if before.Lflag != after.Lflag || before.Iflag != after.Iflag {
		t.Errorf("terminal flags not restored: lflag %#x -> %#x, iflag %#x -> %#x", before.Lflag, after.Lflag, before.Iflag, after.Iflag)
	}
}

func TestNoConsoleWaitsAndHops(t *testing.T) {
	start := time.Now()
	if who := Window([]string{"/nonexistent/ttyS9"}, "%d", 500*time.Millisecond); who != "" {
		t.Errorf("Window = %q", who)
	}
	if el := time.Since(start); el < 450*time.Millisecond {
		t.Errorf("with no console the window lasted only %v", el)
	}
}

func TestDevices(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{
		"/proc/consoles": "ttyS0                -W- (EC p a)    4:64\ntty0                 -WU (E  p  )    4:1\n",
	}, nil)
	got := Devices(fsys)
	if strings.Join(got, " ") != "/dev/ttyS0 /dev/tty0" {
		t.Errorf("Devices = %v", got)
	}
	if got := Devices(rootfstest.New(t)); len(got) != 1 || got[0] != "/dev/console" {
		t.Errorf("Devices without /proc/consoles = %v", got)
	}
}
