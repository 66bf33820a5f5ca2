package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// stream is a go test -json run of two packages: e2e with a parent case,
// two subtests (one failed) and a skipped case; and a unit package.
const stream = `{"Action":"start","Package":"example/e2e"}
{"Action":"run","Package":"example/e2e","Test":"TestChain"}
{"Action":"run","Package":"example/e2e","Test":"TestChain/systemd"}
{"Action":"output","Package":"example/e2e","Test":"TestChain/systemd","Output":"    main_test.go:90: kxtest-guest: 7 kernel starts, 101.5 s in a guest slot\n"}
{"Action":"pass","Package":"example/e2e","Test":"TestChain/systemd","Elapsed":104.2}
{"Action":"run","Package":"example/e2e","Test":"TestChain/openrc"}
{"Action":"output","Package":"example/e2e","Test":"TestChain/openrc","Output":"    chain_test.go:12: boot 3 came up on \"x\"\n"}
{"Action":"output","Package":"example/e2e","Test":"TestChain/openrc","Output":"    main_test.go:90: kxtest-guest: 3 kernel starts, 40.0 s in a guest slot\n"}
{"Action":"fail","Package":"example/e2e","Test":"TestChain/openrc","Elapsed":45}
{"Action":"fail","Package":"example/e2e","Test":"TestChain","Elapsed":150}
{"Action":"run","Package":"example/e2e","Test":"TestQuick"}
{"Action":"output","Package":"example/e2e","Test":"TestQuick","Output":"    quick_test.go:3: skipped\n"}
{"Action":"skip","Package":"example/e2e","Test":"TestQuick","Elapsed":0}
{"Action":"output","Package":"example/e2e","Output":"kxtest-accel: amd64 guests run with tcg (/dev/kvm: no such file)\n"}
{"Action":"fail","Package":"example/e2e","Elapsed":151}
{"Action":"start","Package":"example/unit"}
{"Action":"run","Package":"example/unit","Test":"TestX"}
{"Action":"pass","Package":"example/unit","Test":"TestX","Elapsed":0.1}
{"Action":"pass","Package":"example/unit","Elapsed":0.3}
`

func TestSuite(t *testing.T) {
	var out strings.Builder
	s := newSuite(regexp.MustCompile(`/e2e$`), &out)
	if err := s.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"PASS  TestChain/systemd                              101.5s  7 kernel starts\n", // guest seconds, not elapsed
		"boot 3 came up on", // a failed test's output is shown
		"FAIL  TestChain/openrc",
		"SKIP  TestQuick",
		"FAIL  example/e2e  151.0s\n",
		"ok    example/unit  0.3s\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the running output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "TestX") || strings.Contains(got, "PASS  TestChain 150") {
		t.Errorf("the running output has a unit test or a parent case:\n%s", got)
	}

	table := s.table(200 * time.Second)
	rows := strings.Split(table, "\n")
	for _, want := range []string{
		"| TestChain/systemd | 7 | 101.5 | 3 | pass |",
		"| TestChain/openrc | 3 | 40.0 | 5 | fail |",
		"| TestQuick | 0 | 0.0 | 0 | skip |",
		"| **3 cases** | **10** | **142** | | |",
	} {
		if !strings.Contains(table, want+"\n") {
			t.Errorf("the table lacks the row %q:\n%s", want, table)
		}
	}
	if !strings.HasPrefix(rows[2], "| TestChain/systemd ") || !strings.HasPrefix(rows[3], "| TestChain/openrc ") {
		t.Errorf("the table is not ordered costliest first:\n%s", table)
	}
	if !strings.Contains(table, "guests ran with tcg (/dev/kvm: no such file)") {
		t.Errorf("the table does not name the accelerator:\n%s", table)
	}
	if sk := s.skipped(); len(sk) != 1 || sk[0] != "TestQuick (example/e2e)" {
		t.Errorf("skipped: %q", sk)
	}
}
