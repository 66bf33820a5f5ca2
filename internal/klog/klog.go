// Package klog writes kxboot's log lines where a person can find them after
// the fact: the kernel log (/dev/kmsg, which dmesg and journald show and
// which survives until the next boot) and a terminal. It also reads back the
// last chain decision from the kernel log for kxboot status.
package klog

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/rootfs"
)

// Logger writes each line to the kernel log and to Out.
type Logger struct {
	kmsg io.WriteCloser
	Out  io.Writer
	// echoed: Out is the kernel's console and the kernel prints notices
	// there itself, so a line written to the kernel log reaches it once
	// already.
	echoed bool
}

// Open returns a logger on the machine's /dev/kmsg (skipped when it cannot
// be opened) and out. When out is /dev/console (PID 1's output) and the
// console's log level lets the kernel print kxboot's notices there, the
// lines go to the kernel log only: one copy on the console, with the
// kernel's timestamp.
func Open(fsys rootfs.FS, out io.Writer) *Logger {
	l := &Logger{Out: out}
	if f, err := os.OpenFile(fsys.Path("/dev/kmsg"), os.O_WRONLY|os.O_APPEND, 0); err == nil {
		l.kmsg = f
		l.echoed = isConsole(out) && ConsoleLevel(fsys) > noticeLevel
	}
	return l
}

// noticeLevel is the priority kxboot's lines have in the kernel log.
const noticeLevel = 5

// ConsoleLevel is the console's log level, the first field of
// /proc/sys/kernel/printk: the kernel prints a message on the console when
// its priority is below it. 0 when unreadable.
func ConsoleLevel(fsys rootfs.FS) int {
	s, err := fsys.ReadString("/proc/sys/kernel/printk")
	if err != nil {
		return 0
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0]) // not fmt.Sscan: its scanner costs 48 KB of binary
	return n
}

// isConsole says whether w is the kernel's /dev/console (5:1), which PID 1
// and the init scripts it starts write to.
func isConsole(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return false
	}
	return unix.Major(uint64(st.Rdev)) == 5 && unix.Minor(uint64(st.Rdev)) == 1
}

// Logf writes one line. In the kernel log it has priority 5 (notice), so
// that it shows on a console set to the default log level of most
// distributions only when it matters, and always in dmesg.
func (l *Logger) Logf(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	if l.kmsg != nil {
		// One write is one record; the kernel splits nothing.
		if _, err := l.kmsg.Write([]byte("<" + strconv.Itoa(noticeLevel) + ">" + msg + "\n")); err == nil && l.echoed {
			return
		}
	}
	if l.Out != nil {
		fmt.Fprintln(l.Out, msg)
	}
}

// Close closes the kernel log.
func (l *Logger) Close() {
	if l.kmsg != nil {
		l.kmsg.Close()
	}
}

// ChainPrefix starts every line that records a chain decision.
const ChainPrefix = "kxboot: chain: "

// LastChain returns the last chain decision of this boot from the kernel
// log ("hop: ..." or "boot on: ..."), or "" when there is none.
func LastChain(fsys rootfs.FS) string {
	var last string
	for _, msg := range Messages(fsys) {
		i := strings.Index(msg, ChainPrefix)
		if i < 0 {
			continue
		}
		rest := msg[i+len(ChainPrefix):]
		if strings.HasPrefix(rest, "hop: ") || strings.HasPrefix(rest, "boot on: ") {
			last = rest
		}
	}
	return last
}

// Messages reads the kernel log: /dev/kmsg records are
// "prio,seq,usec,flags;message" with continuation lines starting with a
// space. Reading is non-blocking and stops at the end of the buffer.
func Messages(fsys rootfs.FS) []string {
	fd, err := unix.Open(fsys.Path("/dev/kmsg"), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var data bytes.Buffer
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EPIPE {
			continue // records were overwritten while reading: go on
		}
		if n <= 0 || err != nil {
			break
		}
		data.Write(buf[:n])
	}
	var out []string
	for _, line := range strings.Split(data.String(), "\n") {
		if line == "" || line[0] == ' ' {
			continue
		}
		if _, msg, ok := strings.Cut(line, ";"); ok {
			out = append(out, msg)
		}
	}
	return out
}
