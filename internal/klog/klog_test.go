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
