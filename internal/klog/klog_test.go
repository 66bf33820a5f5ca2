package klog

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/kxboot/kxboot/internal/rootfs/rootfstest"
)

func TestLogfWritesKmsgAndOut(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{"/dev/kmsg": ""}, nil)
	var out bytes.Buffer
	l := Open(fsys, &out)
	l.Logf("kxboot: chain: boot on: %s\n", "because")
	l.Close()
	b, _ := os.ReadFile(fsys.Path("/dev/kmsg"))
	if string(b) != "<5>kxboot: chain: boot on: because\n" {
		t.Errorf("kmsg got %q", b)
	}
	if out.String() != "kxboot: chain: boot on: because\n" {
		t.Errorf("out got %q", out.String())
	}
}

func TestLastChain(t *testing.T) {
	kmsg := strings.Join([]string{
		"6,1,100,-;Linux version 6.1.0-55-cloud-amd64",
		" SUBSYSTEM=cpu",
		"5,420,2000000,-;kxboot: chain: hop: booting /boot/vmlinuz-B",
		"5,421,2100000,-;kxboot: chain: loaded /boot/vmlinuz-B with kexec_file_load; command line: x",
		"5,422,7100000,-;kxboot: chain: boot on: a key was pressed on ttyS0 during the 5 s abort window",
		"6,423,7200000,-;systemd[1]: started",
		"",
	}, "\n")
	fsys := rootfstest.Tree(t, map[string]string{"/dev/kmsg": kmsg}, nil)
	if got, want := LastChain(fsys), "boot on: a key was pressed on ttyS0 during the 5 s abort window"; got != want {
		t.Errorf("LastChain = %q; want %q", got, want)
	}
	if got := LastChain(rootfstest.New(t)); got != "" {
		t.Errorf("LastChain without a kernel log = %q", got)
	}
}

// TestLogfOnceOnTheConsole: where the kernel prints kxboot's notices on the
// console itself, a line written to the kernel log is not written there a
// second time; where it cannot write the kernel log, it still writes out.
func TestLogfOnceOnTheConsole(t *testing.T) {
	fsys := rootfstest.Tree(t, map[string]string{"/dev/kmsg": "", "/proc/sys/kernel/printk": "7\t4\t1\t7\n"}, nil)
	if n := ConsoleLevel(fsys); n != 7 {
		t.Errorf("ConsoleLevel = %d; want 7", n)
	}
	var out bytes.Buffer
	l := Open(fsys, &out)
	if l.echoed {
		t.Error("a buffer is not the console")
	}
	l.echoed = true // as on /dev/console with console_loglevel 7
	l.Logf("kxboot: chain: jumping into %s", "/boot/vmlinuz-B")
	if out.Len() != 0 {
		t.Errorf("the console got a second copy: %q", out.String())
	}
	l.Close()
	b, _ := os.ReadFile(fsys.Path("/dev/kmsg"))
	if string(b) != "<5>kxboot: chain: jumping into /boot/vmlinuz-B\n" {
		t.Errorf("kmsg got %q", b)
	}
	l.Logf("kxboot: chain: after the kernel log closed") // the write fails
	if out.String() != "kxboot: chain: after the kernel log closed\n" {
		t.Errorf("with the kernel log gone, out got %q", out.String())
	}
	null, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isConsole(&out) || isConsole(null) {
		t.Error("isConsole takes a buffer or /dev/null (1:3) for /dev/console (5:1)")
	}
}
