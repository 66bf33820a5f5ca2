// Package harness runs kxboot in QEMU guests: it fetches Debian kernels,
// builds the static kxboot binary, writes initramfs archives, boots guests
// with TCG and reads their serial console. The e2e tests and the demo share
// it.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Logf receives progress messages.
type Logf func(format string, args ...any)

// Options describe one guest.
type Options struct {
	Arch     Arch          // the guest's architecture; the zero Arch is AMD64
	Accel    string        // "kvm" or "tcg"; "" lets Start ask Accel
	CPU      string        // qemu's -cpu model; "" for qemu's default (host under KVM)
	Kernel   string        // host path given to -kernel
	Initrd   string        // host path given to -initrd; "" for none
	Append   string        // the kernel command line
	Boot     BootPath      // what starts Kernel; the zero value is qemu's own loader
	MemoryMB int           // guest memory; 0 means DefaultMemoryMB
	Timeout  time.Duration // the whole run, after which qemu is killed; 0 means DefaultTimeout
	// Disk, if set, is a raw disk image attached as a virtio drive: the
	// guest's /dev/vda. The guest writes to it.
	Disk string
	// NVMe attaches Disk as an NVMe drive instead (/dev/nvme0n1), whose
	// driver Debian's cloud kernels have built in: such a guest needs no
	// initramfs to mount its root.
	NVMe bool
	// Disk2, with NVMe, is a second raw disk image attached as a second
	// NVMe drive (/dev/nvme1n1): another root file system, as an A/B
	// scheme's second slot.
	Disk2 string
	// Reboot makes a reboot inside the guest (or a panic or triple fault
	// that resets the machine) boot Kernel again on the same disk, as a
	// provider's forced kernel comes back. Without it a reset ends qemu.
	// Start does it by starting qemu again with the same arguments when
	// QMP says the guest reset: under TCG a reset inside one qemu process
	// made later boots several times slower (soft lockups in
	// clear_page_rep), on these machines.
	Reboot bool
	// InPlaceReset, with Reboot, leaves out -no-reboot instead, so qemu
	// resets the machine itself, in the same process.
	InPlaceReset bool
	// Watchdog adds QEMU's i6300esb PCI watchdog (on the PC's PCI bus on
	// amd64, on the virt machine's PCIe on arm64), whose timeout
	// resets the machine (-action watchdog=reset, QEMU's default, said
	// out loud). Guest.Watchdogs counts the times it fired, from QMP.
	// Use it with Reboot and InPlaceReset: the chip keeps its "the
	// watchdog caused the last reset" bit over an in-place reset only,
	// as a real one does, and that bit is what the next kernel reads.
	Watchdog bool
	// MaxKernels, if not 0, kills qemu when more kernels than that have
	// started (see Guest.Kernels): a reboot loop ends at once instead of
	// at Timeout.
	MaxKernels int
	// ConsoleLog, if set, receives a copy of everything the console prints.
	ConsoleLog string
	// SSHPort, if not 0, gives the guest a virtio NIC on QEMU's user-mode
	// network and forwards this port of the host's 127.0.0.1 (only) to
	// the guest's port 22; without it the guest has no network.
	SSHPort int
	// OnLine, if set, is called with each console line as it arrives, from
	// the goroutine that reads the console.
	OnLine func(line string)
}

// BootPath is what starts the guest's kernel. It belongs to the guest, not
// to its Arch: both paths boot the same kernels, kxboot binary, busybox and
// console, which the harness and the tests cache by GOARCH.
type BootPath string

const (
	// BootQEMU: qemu loads -kernel, -initrd and -append itself. On
	// arm64's virt machine it enters the Image directly with a device
	// tree it made (memory nodes, /chosen with bootargs and the initrd);
	// on amd64 SeaBIOS runs qemu's linuxboot option ROM. The default: a
	// guest that does not choose gets the qemu command line it had before
	// BootPath existed, byte for byte.
	BootQEMU BootPath = ""
	// BootUEFI: the architecture's UEFI firmware (Arch.UEFI, edk2) runs
	// first, reads -kernel, -initrd and -append through fw_cfg and starts
	// the kernel's EFI stub, the way arm64 servers boot. ACPI stays on
	// (the virt machine's default with firmware), so the stub hands the
	// kernel a device tree holding only /chosen, and RAM is described by
	// the EFI memory map alone. edk2 adds "initrd=initrd" to the command
	// line when there is an initrd. The firmware costs about 1 s per
	// firmware boot under TCG (docs/testing.md).
	BootUEFI BootPath = "uefi"
)

const (
	// DefaultMemoryMB leaves room for kernel A, an initramfs carrying
	// kernel B and a second initramfs, and the copies kexec makes of them.
	DefaultMemoryMB = 1024
	// DefaultTimeout is generous: a hop takes about 10 s under TCG, but
	// two guests may share two cores with a compiler.
	DefaultTimeout = 2 * time.Minute
)

// Guest is a running QEMU guest whose serial console is qemu's stdin and
// stdout. With Options.Reboot one guest may be several qemu processes in
// turn, one per firmware boot; its console is one stream.
type Guest struct {
	opts   Options
	qemu   string
	ctx    context.Context
	cancel context.CancelFunc
	log    io.WriteCloser // Options.ConsoleLog, or nil
	qmpDir string         // holds the QMP socket, with Options.Reboot
	start  time.Time

	mu      sync.Mutex
	cmd     *exec.Cmd      // the qemu process running now
	stdin   io.WriteCloser // its standard input
	lines   []string
	partial string        // text after the last newline
	changed chan struct{} // closed and replaced when lines or partial change
	stderr  bytes.Buffer
	kernels []string   // the release of each "Linux version" banner
	tagged  int        // how many complete lines carry Tag
	whens   []*trigger // SendWhen's pending triggers
	limit   error      // why qemu was killed early, if it was
	killed  bool       // Kill was called
	resets  int        // firmware resets: qemu started again, or reset itself
	wdogs   int        // QMP WATCHDOG events: the watchdog fired

	done    chan struct{} // closed when qemu has exited for good and its output is read
	waitErr error
}

// Args returns the qemu command line for opts, without the QMP socket
// that Start adds when opts.Reboot is set; $KXBOOT_E2E_MONITOR
// (MonitorEnv) adds a monitor socket.
func Args(opts Options) []string {
	mem := opts.MemoryMB
	if mem == 0 {
		mem = DefaultMemoryMB
	}
	accel := opts.Accel
	if accel == "" {
		accel = "tcg"
	}
	args := append([]string(nil), opts.Arch.orAMD64().Machine...)
	args = append(args, "-accel", accel)
	switch {
	case opts.CPU != "":
		args = append(args, "-cpu", opts.CPU)
	case accel == "kvm":
		args = append(args, "-cpu", "host")
	}
	args = append(args,
		"-m", strconv.Itoa(mem),
		"-smp", "1",
		"-nodefaults", "-no-user-config", "-nic", nic(opts.SSHPort),
		"-display", "none", "-monitor", debugMonitor(),
		"-serial", "stdio", // plain stdio: no mux, so Ctrl-A reaches the guest
	)
	if !opts.Reboot || !opts.InPlaceReset {
		// A reset or panic=-1 ends qemu instead of booting A again in
		// the same process; with Reboot, Start then starts qemu again.
		args = append(args, "-no-reboot")
	}
	if opts.Watchdog {
		args = append(args, "-device", "i6300esb", "-action", "watchdog=reset")
	}
	if opts.Boot == BootUEFI {
		args = append(args, "-bios", opts.Arch.orAMD64().UEFI)
	}
	args = append(args, "-kernel", opts.Kernel)
	if opts.Initrd != "" {
		args = append(args, "-initrd", opts.Initrd)
	}
	args = append(args, "-append", opts.Append)
	if opts.Disk != "" {
		// A comma in a file name is doubled in qemu's option syntax.
		// cache=unsafe: the disk is a throwaway copy, and a guest's flush
		// must not wait behind the host's writeback (a cold run builds
		// images beside running guests, and there an fdatasync stalled
		// for minutes until the guest's NVMe driver gave up on the disk).
		// A guest's reset, power cut or crash keeps every write it made:
		// they are in the host's page cache, never lost with the qemu
		// process.
		file := "file=" + strings.ReplaceAll(opts.Disk, ",", ",,") + ",format=raw,cache=unsafe"
		if opts.NVMe {
			args = append(args, "-drive", file+",if=none,id=root", "-device", "nvme,drive=root,serial=kxtest")
			if opts.Disk2 != "" {
				args = append(args, "-drive", "file="+strings.ReplaceAll(opts.Disk2, ",", ",,")+",format=raw,cache=unsafe,if=none,id=root2", "-device", "nvme,drive=root2,serial=kxtest2")
			}
		} else {
			args = append(args, "-drive", file+",if=virtio")
		}
	}
	return args
}

// nic is the -nic option: none, or user-mode networking with port 22
// forwarded from the host's loopback.
func nic(sshPort int) string {
	if sshPort == 0 {
		return "none"
	}
	return fmt.Sprintf("user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:%d-:22", sshPort)
}

// Start boots a guest.
func Start(opts Options) (*Guest, error) {
	opts.Arch = opts.Arch.orAMD64()
	qemu, err := QEMU(opts.Arch)
	if err != nil {
		return nil, err
	}
	if err := opts.Arch.checkBoot(opts.Boot); err != nil {
		return nil, err
	}
	if opts.Disk2 != "" && !opts.NVMe {
		return nil, fmt.Errorf("Disk2 is a second NVMe drive: set NVMe too")
	}
	for i, f := range []string{opts.Kernel, opts.Initrd, opts.Disk, opts.Disk2} {
		if f == "" && i > 0 {
			continue // no initrd, no disk
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("guest boot file: %w", err)
		}
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Accel == "" {
		opts.Accel = Accel(opts.Arch, opts.Kernel).Name
	}
	g := &Guest{opts: opts, qemu: qemu, changed: make(chan struct{}), done: make(chan struct{})}
	g.ctx, g.cancel = context.WithTimeout(context.Background(), opts.Timeout)
	if opts.ConsoleLog != "" {
		f, err := os.Create(opts.ConsoleLog)
		if err != nil {
			g.cancel()
			return nil, err
		}
		g.log = f
	}
	if opts.Reboot {
		// Short: a socket's path has at most 107 bytes.
		if g.qmpDir, err = os.MkdirTemp("", "kxqmp"); err != nil {
			g.cleanup()
			return nil, err
		}
	}
	g.start = time.Now()
	p, err := g.launch()
	if err != nil {
		g.cleanup()
		return nil, err
	}
	go g.supervise(p)
	return g, nil
}

// cleanup releases what Start took, once no qemu runs.
func (g *Guest) cleanup() {
	g.cancel()
	if g.log != nil {
		g.log.Close()
	}
	if g.qmpDir != "" {
		os.RemoveAll(g.qmpDir)
	}
}

// process is one qemu process of a guest.
type process struct {
	cmd    *exec.Cmd
	stdout io.Reader
	exited chan struct{} // closed once cmd.Wait has returned
	reason chan string   // with Reboot: the reason of qemu's last SHUTDOWN event, once QMP is closed
}

// launch starts a qemu process and makes it the guest's current one.
func (g *Guest) launch() (*process, error) {
	args := Args(g.opts)
	sock := ""
	if g.qmpDir != "" {
		sock = filepath.Join(g.qmpDir, "qmp.sock")
		os.Remove(sock)
		args = append(args, "-qmp", "unix:"+sock+",server=on,wait=off")
	}
	cmd := exec.CommandContext(g.ctx, g.qemu, args...)
	cmd.Stderr = lockedWriter{&g.mu, &g.stderr}
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = dieWithUs()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", g.qemu, err)
	}
	g.mu.Lock()
	g.cmd, g.stdin = cmd, stdin
	g.mu.Unlock()
	p := &process{cmd: cmd, stdout: stdout, exited: make(chan struct{})}
	if sock != "" {
		p.reason = make(chan string, 1)
		go g.watchQMP(sock, p)
	}
	return p, nil
}

// supervise reads the console of each qemu process in turn. With Reboot, a
// process that ended because the guest reset is followed by a new one: the
// firmware boots the same kernel again on the same disk.
func (g *Guest) supervise(p *process) {
	for {
		g.read(p.stdout)
		err := p.cmd.Wait()
		close(p.exited)
		reason := ""
		if p.reason != nil {
			reason = <-p.reason
		}
		g.mu.Lock()
		g.stdin.Close()
		if g.partial != "" { // the last line had no newline
			g.lines = append(g.lines, g.partial)
			g.scan([]string{g.partial})
			g.partial = ""
			close(g.changed)
			g.changed = make(chan struct{})
		}
		limit, killed := g.limit, g.killed
		g.mu.Unlock()

		if err == nil && reason == "guest-reset" && limit == nil && !killed && g.ctx.Err() == nil {
			np, lerr := g.launch()
			if lerr == nil {
				g.mu.Lock()
				g.resets++
				g.mu.Unlock()
				p = np
				continue
			}
			err = fmt.Errorf("starting qemu again after the guest reset: %w", lerr)
		} else if limit != nil {
			err = limit
		} else if killed {
			err = errors.New("qemu was killed by the test")
		} else if g.ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("guest timed out after %v and was killed", g.opts.Timeout)
		} else if err != nil {
			err = fmt.Errorf("qemu: %w", err)
		}
		g.cleanup()
		g.mu.Lock()
		g.waitErr = err
		g.mu.Unlock()
		close(g.done)
		return
	}
}

// watchQMP connects to qemu's QMP socket and sends p.reason the reason of
// the last SHUTDOWN event once qemu closes it ("" if none came); RESET
// events (qemu resetting in place, with InPlaceReset) are counted.
func (g *Guest) watchQMP(sock string, p *process) {
	reason := ""
	defer func() { p.reason <- reason }()
	var conn net.Conn
	for {
		var err error
		if conn, err = net.Dial("unix", sock); err == nil {
			break
		}
		select {
		case <-p.exited:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	defer conn.Close()
	dec := json.NewDecoder(conn)
	var greeting map[string]any
	if err := dec.Decode(&greeting); err != nil {
		return
	}
	if _, err := io.WriteString(conn, `{"execute":"qmp_capabilities"}`+"\n"); err != nil {
		return
	}
	for {
		var msg struct {
			Event string `json:"event"`
			Data  struct {
				Guest  bool   `json:"guest"`
				Reason string `json:"reason"`
			} `json:"data"`
		}
		if err := dec.Decode(&msg); err != nil {
			return // qemu has closed the socket: it is ending
		}
		switch msg.Event {
		case "SHUTDOWN":
			reason = msg.Data.Reason
		case "WATCHDOG":
			g.mu.Lock()
			g.wdogs++
			g.mu.Unlock()
		case "RESET":
			if msg.Data.Guest {
				g.mu.Lock()
				g.resets++
				g.mu.Unlock()
			}
		}
	}
}

// read splits the console into lines until qemu closes it.
func (g *Guest) read(r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if g.log != nil {
				g.log.Write(buf[:n])
			}
			g.mu.Lock()
			text := g.partial + strings.ReplaceAll(string(buf[:n]), "\r", "")
			parts := strings.Split(text, "\n")
			complete := parts[:len(parts)-1]
			g.lines = append(g.lines, complete...)
			g.partial = parts[len(parts)-1]
			g.scan(complete)
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
	g.mu.Lock()
	stdin := g.stdin
	g.mu.Unlock()
	_, err := io.WriteString(stdin, s)
	return err
}

// Resets returns how many times the machine went through its firmware
// again: a reboot (or a panic or triple fault) that brought the provider's
// kernel back.
func (g *Guest) Resets() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.resets
}

// Watchdogs returns how many times the guest's watchdog fired (QMP's
// WATCHDOG event), with Options.Watchdog and Reboot.
func (g *Guest) Watchdogs() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.wdogs
}

// Hops returns how many kernels started without a firmware reset before
// them: the kexec hops so far, on every architecture. (Without Reboot a
// reset ends qemu, so every later kernel is a hop.)
func (g *Guest) Hops() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.kernels) == 0 {
		return 0
	}
	return len(g.kernels) - 1 - g.resets
}

// Accel is the accelerator the guest runs with.
func (g *Guest) Accel() string { return g.opts.Accel }

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

// Kill ends qemu now, for good.
func (g *Guest) Kill() {
	g.mu.Lock()
	g.killed = true
	g.mu.Unlock()
	g.cancel() // kills the qemu that runs and keeps another from starting
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

// bannerRE matches the kernel's first console line: "Linux version
// RELEASE (builder) ...", after a printk time stamp or not.
var bannerRE = regexp.MustCompile(`(?:^|\] )Linux version (\S+) \(`)

// KernelStarts returns the release of every kernel that started on the
// console lines, in order: one banner per boot, whether it came from
// firmware (qemu's -kernel) or from kexec.
func KernelStarts(lines []string) []string {
	var rels []string
	for _, l := range lines {
		if m := bannerRE.FindStringSubmatch(l); m != nil {
			rels = append(rels, m[1])
		}
	}
	return rels
}

// trigger is a pending SendWhen.
type trigger struct {
	substr, keys string
	sent         chan struct{}
}

// scan looks at new complete lines (and the unfinished last one) for
// banners, tagged lines and triggers. g.mu is held.
func (g *Guest) scan(complete []string) {
	for _, l := range complete {
		if m := bannerRE.FindStringSubmatch(l); m != nil {
			g.kernels = append(g.kernels, m[1])
			if max := g.opts.MaxKernels; max > 0 && len(g.kernels) > max && g.limit == nil {
				g.limit = fmt.Errorf("guest started kernel number %d (%s); the limit is %d: killed it", len(g.kernels), m[1], max)
				g.cmd.Process.Kill()
			}
		}
		if strings.Contains(l, Tag) {
			g.tagged++
		}
	}
	if len(g.whens) == 0 {
		return
	}
	pending := g.whens[:0]
	for _, t := range g.whens {
		hit := strings.Contains(g.partial, t.substr)
		for _, l := range complete {
			hit = hit || strings.Contains(l, t.substr)
		}
		if !hit {
			pending = append(pending, t)
			continue
		}
		go func(t *trigger) {
			g.Send(t.keys)
			close(t.sent)
		}(t)
	}
	g.whens = pending
}

// Kernels returns the release of every kernel that has started so far,
// from the "Linux version" banners on the console: a reset into kernel A
// and a kexec hop into B each add one. Tests prove "exactly one hop" with
// it. The banner is printed at KERN_NOTICE: keep "quiet" and loglevel<6
// off the command line.
func (g *Guest) Kernels() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.kernels...)
}

// SendWhen sends keys to the serial console as soon as a line that the
// console prints from now on (the unfinished last line too: a prompt)
// contains substr, once. The returned channel is closed once they are
// sent. It does not block: the test may wait for something else
// meanwhile, such as the next boot's report.
func (g *Guest) SendWhen(substr, keys string) <-chan struct{} {
	t := &trigger{substr: substr, keys: keys, sent: make(chan struct{})}
	g.mu.Lock()
	g.whens = append(g.whens, t)
	g.mu.Unlock()
	return t.sent
}

// WaitReport waits until the tagged lines of the console satisfy cond, and
// returns their report. It fails when the guest exits first or timeout
// passes; the report so far is returned in every case.
func (g *Guest) WaitReport(cond func(r *Report) bool, timeout time.Duration) (*Report, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := -1
	for {
		g.mu.Lock()
		tagged, changed := g.tagged, g.changed
		g.mu.Unlock()
		if tagged != seen {
			seen = tagged
			if r := Parse(g.Lines()); cond(r) {
				return r, nil
			}
		}
		select {
		case <-changed:
		case <-g.done:
			r := Parse(g.Lines())
			if cond(r) {
				return r, nil
			}
			return r, fmt.Errorf("guest exited (%v) before it reported that", g.Err())
		case <-deadline.C:
			return Parse(g.Lines()), fmt.Errorf("not reported within %v", timeout)
		}
	}
}

// WaitBoot waits for the runner's report of boot n (see runner.go): the
// lines from "stage: n" to "script: ...", printed before boot-n.sh runs.
// It returns that stage's report.
func (g *Guest) WaitBoot(n int, timeout time.Duration) (*Report, error) {
	return g.waitStage(n, "script", "the runner's report of boot", timeout)
}

// WaitEnd waits until the runner of boot n has reported "end: ACTION",
// after boot-n.sh, and returns that stage's report.
func (g *Guest) WaitEnd(n int, timeout time.Duration) (*Report, error) {
	return g.waitStage(n, "end", "the end of boot", timeout)
}

// waitStage waits until stage n has reported key.
func (g *Guest) waitStage(n int, key, what string, timeout time.Duration) (*Report, error) {
	stage := strconv.Itoa(n)
	r, err := g.WaitReport(func(r *Report) bool {
		_, ok := r.Stage(stage).Get(key)
		return ok
	}, timeout)
	if err != nil {
		return r.Stage(stage), fmt.Errorf("%s %d: %w (boots reported: %v; kernels started: %v)", what, n, err, r.All("boot"), g.Kernels())
	}
	return r.Stage(stage), nil
}

// MonitorEnv names a Unix socket path for qemu's human monitor, for
// looking inside a guest while a test runs (info registers, info jit,
// xp /20i ADDR), e.g. with socat - UNIX-CONNECT:PATH. Only for one guest
// at a time (go test -run one case): a second qemu cannot bind the path.
const MonitorEnv = "KXBOOT_E2E_MONITOR"

func debugMonitor() string {
	if p := os.Getenv(MonitorEnv); p != "" {
		return "unix:" + p + ",server,nowait"
	}
	return "none"
}
