// Package console runs the abort window of a chain boot: it writes a
// countdown on every console the kernel has and waits, in raw mode, for any
// key. Raw mode matters: the DigitalOcean recipe waited for Ctrl+C as a
// signal, which never reached it; here Ctrl+C is just another key.
package console

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// Devices lists the device paths of the kernel's consoles, from
// /proc/consoles ("ttyS0  -W- (EC p a) 4:64"), in the kernel's order. When
// it cannot be read, /dev/console stands for them all.
func Devices(fsys rootfs.FS) []string {
	b, err := fsys.ReadFile("/proc/consoles")
	var out []string
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			out = append(out, "/dev/"+f[0])
		}
	}
	if len(out) == 0 {
		out = []string{"/dev/console"}
	}
	return out
}

// term is one open console and the settings to give back.
type term struct {
	name string
	f    *os.File
	old  *unix.Termios
}

// Window writes prompt (a format with one %d for the seconds left) on each
// console, then waits up to d for a key on any of them. It returns the
// console a key came from, or "" when the time ran out. Consoles that cannot
// be opened are skipped; with none, it just waits out the time, so that a
// machine without a console still hops.
func Window(paths []string, prompt string, d time.Duration) string {
	var terms []*term
	for _, p := range paths {
		t, err := open(p)
		if err != nil {
			continue
		}
		terms = append(terms, t)
	}
	defer func() {
		for _, t := range terms {
			t.restore()
		}
	}()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			for _, t := range terms {
				t.f.WriteString("\r\n")
			}
			return ""
		}
		secs := int((left + time.Second - 1) / time.Second)
		for _, t := range terms {
			fmt.Fprintf(t.f, "\r"+prompt, secs)
		}
		step := left % time.Second
		if step == 0 {
			step = time.Second
		}
		if who := wait(terms, step); who != "" {
			for _, t := range terms {
				t.f.WriteString("\r\n")
			}
			return who
		}
	}
}

func open(path string) (*term, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	t := &term{name: strings.TrimPrefix(path, "/dev/"), f: f}
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		// Not a terminal (a file or a pipe in a test): write only.
		return t, nil
	}
	raw := *old
	// Raw input: every key arrives at once and none is a signal, so
	// Ctrl+C (0x03) aborts like any other key. Output stays cooked so
	// that "\n" still returns the carriage.
	raw.Lflag &^= unix.ICANON | unix.ECHO | unix.ISIG | unix.IEXTEN
	raw.Iflag &^= unix.IXON | unix.ICRNL | unix.BRKINT | unix.INPCK | unix.ISTRIP
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return t, nil
	}
	t.old = old
	// Keys typed before the window opened do not count.
	unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH)
	return t, nil
}

func (t *term) restore() {
	fd := int(t.f.Fd())
	if t.old != nil {
		// Drop the key that aborted, so that it does not reach the
		// login prompt, and give the console back as it was.
		unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH)
		unix.IoctlSetTermios(fd, unix.TCSETS, t.old)
	}
	t.f.Close()
}

// wait polls the consoles for input for up to d; it returns the name of the
// first one that gave a byte.
func wait(terms []*term, d time.Duration) string {
	if len(terms) == 0 {
		time.Sleep(d)
		return ""
	}
	fds := make([]unix.PollFd, len(terms))
	for i, t := range terms {
		fds[i] = unix.PollFd{Fd: int32(t.f.Fd()), Events: unix.POLLIN}
	}
	end := time.Now().Add(d)
	for {
		ms := int(time.Until(end) / time.Millisecond)
		if ms <= 0 {
			return ""
		}
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			if err != nil {
				time.Sleep(time.Until(end))
			}
			return ""
		}
		for i, p := range fds {
			if p.Revents&unix.POLLIN == 0 {
				if p.Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
					fds[i].Fd = -1 // a console that went away: stop watching it
				}
				continue
			}
			var b [16]byte
			if n, _ := unix.Read(int(p.Fd), b[:]); n > 0 {
				return terms[i].name
			}
		}
	}
}
