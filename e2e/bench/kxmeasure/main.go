// Command kxmeasure runs a command and prints, on one line, what the load
// benchmark (go run ./e2e/bench -load) compares: its wall time in ms, its
// peak resident memory in KiB (ru_maxrss, which is the child's VmHWM), its
// user and system CPU in ms and its exit status. The command's stdout is
// dropped; its stderr passes through.
//
//	kxmeasure kexec -c -l /boot/vmlinuz --initrd=/boot/initrd.img
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kxmeasure COMMAND [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if cmd.ProcessState == nil {
		fmt.Fprintf(os.Stderr, "kxmeasure: %v\n", err)
		os.Exit(2)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	ms := func(tv syscall.Timeval) float64 { return float64(tv.Sec)*1e3 + float64(tv.Usec)/1e3 }
	fmt.Printf("%.2f %d %.1f %.1f %d\n", float64(wall.Microseconds())/1e3, ru.Maxrss, ms(ru.Utime), ms(ru.Stime), cmd.ProcessState.ExitCode())
}
