// Package harness runs kxboot in QEMU guests: it fetches Debian kernels,
// builds the static kxboot binary, writes initramfs archives, boots guests
// with TCG and reads their serial console. The e2e tests and the demo share
// it.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Logf receives progress messages.
type Logf func(format string, args ...any)

// Options describe one guest.
type Options struct {
	Kernel   string        // host path given to -kernel
	Initrd   string        // host path given to -initrd
	Append   string        // the kernel command line
	MemoryMB int           // guest memory; 0 means DefaultMemoryMB
	Timeout  time.Duration // the whole run, after which qemu is killed; 0 means DefaultTimeout
	// ConsoleLog, if set, receives a copy of everything the console prints.
	ConsoleLog string
	// OnLine, if set, is called with each console line as it arrives, from
	// the goroutine that reads the console.
	OnLine func(line string)
}

const (
	// DefaultMemoryMB leaves room for kernel A, an initramfs carrying
	// kernel B and a second initramfs, and the copies kexec makes of them.
	DefaultMemoryMB = 1024
	// DefaultTimeout is generous: a hop takes about 10 s under TCG, but
	// two guests may share two cores with a compiler.
	DefaultTimeout = 2 * time.Minute
)

// Guest is a running QEMU process whose serial console is its stdin and
// stdout.
type Guest struct {
	opts  Options
	cmd   *exec.Cmd
	stdin io.WriteCloser
	start time.Time

	mu      sync.Mutex
	lines   []string
	partial string        // text after the last newline
	changed chan struct{} // closed and replaced when lines or partial change
	stderr  bytes.Buffer

	done    chan struct{} // closed when qemu has exited and its output is read
	waitErr error
}

// Args returns the qemu command line for opts.
func Args(opts Options) []string {
	mem := opts.MemoryMB
	if mem == 0 {
		mem = DefaultMemoryMB
	}
	return []string{
		"-accel", "tcg", // nested KVM does not work on these machines
		"-m", strconv.Itoa(mem),
		"-smp", "1",
		"-nodefaults", "-no-user-config", "-nic", "none",
		"-display", "none", "-monitor", "none",
		"-serial", "stdio", // plain stdio: no mux, so Ctrl-A reaches the guest
		"-no-reboot", // a reset or panic=-1 ends qemu instead of booting A again
		"-kernel", opts.Kernel,
		"-initrd", opts.Initrd,
		"-append", opts.Append,
	}
}

// Start boots a guest.
func Start(opts Options) (*Guest, error) {
	qemu, err := QEMU()
	if err != nil {
		return nil, err
	}
	for _, f := range []string{opts.Kernel, opts.Initrd} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("guest boot file: %w", err)
		}
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	g := &Guest{opts: opts, changed: make(chan struct{}), done: make(chan struct{})}
	g.cmd = exec.CommandContext(ctx, qemu, Args(opts)...)
	g.cmd.Stderr = lockedWriter{&g.mu, &g.stderr}
	g.cmd.WaitDelay = 5 * time.Second
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if g.stdin, err = g.cmd.StdinPipe(); err != nil {
		cancel()
		return nil, err
	}
	var log io.WriteCloser
	if opts.ConsoleLog != "" {
		f, err := os.Create(opts.ConsoleLog)
		if err != nil {
			cancel()
			return nil, err
		}
		log = f
	}
	g.start = time.Now()
	if err := g.cmd.Start(); err != nil {
		cancel()
		if log != nil {
			log.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", qemu, err)
	}
	go func() {
		defer cancel()
		g.read(stdout, log)
		err := g.cmd.Wait()
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("guest timed out after %v and was killed", opts.Timeout)
		} else if err != nil {
			err = fmt.Errorf("qemu: %w", err)
		}
		g.stdin.Close()
		if log != nil {
			log.Close()
		}
		g.mu.Lock()
		g.waitErr = err
		if g.partial != "" { // the last line had no newline
			g.lines = append(g.lines, g.partial)
			g.partial = ""
		}
		g.mu.Unlock()
		close(g.done)
	}()
	return g, nil
}

// read splits the console into lines until qemu closes it.
func (g *Guest) read(r io.Reader, log io.Writer) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if log != nil {
				log.Write(buf[:n])
			}
			g.mu.Lock()
			text := g.partial + strings.ReplaceAll(string(buf[:n]), "\r", "")
			parts := strings.Split(text, "\n")
			complete := parts[:len(parts)-1]
			g.lines = append(g.lines, complete...)
			g.partial = parts[len(parts)-1]
			close(g.changed)
			g.changed = make(chan struct{})
			g.mu.Unlock()
			if g.opts.OnLine != nil {
				for _, l := range complete {
					g.opts.OnLine(l)
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Send writes s to the guest's serial input.
func (g *Guest) Send(s string) error {
	select {
	case <-g.done:
		return errors.New("guest has exited")
	default:
	}
	_, err := io.WriteString(g.stdin, s)
	return err
}

// WaitFor waits until a console line (or the unfinished last line, such as
// a prompt) contains substr, and returns that line. It fails when the
// guest exits first or timeout passes.
func (g *Guest) WaitFor(substr string, timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	next := 0
	for {
		g.mu.Lock()
		for ; next < len(g.lines); next++ {
			if strings.Contains(g.lines[next], substr) {
				l := g.lines[next]
				g.mu.Unlock()
				return l, nil
			}
		}
		if strings.Contains(g.partial, substr) {
			l := g.partial
			g.mu.Unlock()
			return l, nil
		}
		changed := g.changed
		g.mu.Unlock()
		select {
		case <-changed:
		case <-g.done:
			g.mu.Lock()
			found := ""
			for _, l := range g.lines[next:] {
				if strings.Contains(l, substr) {
					found = l
					break
				}
			}
			g.mu.Unlock()
			if found != "" {
				return found, nil
			}
			return "", fmt.Errorf("guest exited (%v) before printing %q", g.Err(), substr)
		case <-deadline.C:
			return "", fmt.Errorf("no console line containing %q within %v", substr, timeout)
		}
	}
}

// Wait waits for qemu to exit (the guest powered off, or Options.Timeout
// passed and it was killed) and returns why it ended, nil for a clean exit.
func (g *Guest) Wait() error {
	<-g.done
	return g.Err()
}

// Err is the outcome of the qemu process; nil while it runs.
func (g *Guest) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waitErr
}

// Kill ends qemu now.
func (g *Guest) Kill() {
	g.cmd.Process.Kill()
	<-g.done
}

// Elapsed is the time since qemu started.
func (g *Guest) Elapsed() time.Duration { return time.Since(g.start) }

// Lines returns the console lines so far, carriage returns removed.
func (g *Guest) Lines() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := append([]string(nil), g.lines...)
	if g.partial != "" {
		l = append(l, g.partial)
	}
	return l
}

// Console returns the console text so far.
func (g *Guest) Console() string { return strings.Join(g.Lines(), "\n") }

// Stderr returns what qemu itself printed to stderr.
func (g *Guest) Stderr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stderr.String()
}

// Run boots a guest and waits for it to end. The console is returned even
// when err is not nil.
func Run(opts Options) (*Guest, error) {
	g, err := Start(opts)
	if err != nil {
		return nil, err
	}
	return g, g.Wait()
}

// Tail returns the last n lines of text.
func Tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
