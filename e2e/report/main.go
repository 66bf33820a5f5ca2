// Command report runs go test with -json and prints what a person needs
// from it: one line per package, the whole output of every failed test,
// one line per finished end-to-end case as it ends, and at the end a table
// of the end-to-end cases with their guest boots and wall seconds. The
// suite's cost is read off that table (docs/testing.md keeps the last one).
//
// A case's seconds are the wall time it held a guest slot (logged by the
// e2e helpers, see below), not go test's elapsed time: that one includes
// the wait for a slot, which depends on how many cases run at once. The
// table shows the wait apart.
//
//	go run ./e2e/report [-md FILE] [-json FILE] [-cases REGEXP] -- [go test flags] PACKAGES
//
// It exits with go test's status, or 1 if a test was skipped: a skipped
// case proves nothing, and the suite must not count it as a pass.
//
// A case's guest boots are the kernels its guests started; the e2e helpers
// log them in a line "kxtest-guest: N kernel starts ..." (see
// e2e/main_test.go), which this command adds up per case.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	md := flag.String("md", "", "also write the table of cases, as Markdown, to this file")
	raw := flag.String("json", "", "also write go test's JSON stream to this file")
	cases := flag.String("cases", `/e2e$`, "packages whose tests are cases of the table (a regular expression on the import path)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./e2e/report [-md FILE] [-json FILE] [-cases REGEXP] -- [go test flags] PACKAGES")
		flag.PrintDefaults()
	}
	flag.Parse()
	re, err := regexp.Compile(*cases)
	if err != nil {
		fmt.Fprintf(os.Stderr, "report: -cases %q: %v\n", *cases, err)
		os.Exit(2)
	}
	code, err := run(flag.Args(), re, *md, *raw, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// run runs go test -json with args and reports on out; it returns the exit
// status for the whole run.
func run(args []string, cases *regexp.Regexp, md, raw string, out io.Writer) (int, error) {
	cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 1, err
	}
	var rawFile *os.File
	var in io.Reader = stdout
	if raw != "" {
		if rawFile, err = os.Create(raw); err != nil {
			return 1, err
		}
		defer rawFile.Close()
		in = io.TeeReader(stdout, rawFile)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("go test: %w", err)
	}
	s := newSuite(cases, out)
	if err := s.read(in); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 1, err
	}
	code := 0
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return 1, err
		}
		code = ee.ExitCode()
	}
	table := s.table(time.Since(start))
	fmt.Fprint(out, "\n"+table)
	if md != "" {
		if err := os.WriteFile(md, []byte(table), 0o644); err != nil {
			return 1, err
		}
	}
	if skipped := s.skipped(); len(skipped) > 0 {
		fmt.Fprintf(out, "\nFAIL: %d tests were skipped, and a skipped test proves nothing: %s\n", len(skipped), strings.Join(skipped, ", "))
		if code == 0 {
			code = 1
		}
	}
	if code != 0 {
		fmt.Fprintln(out, "\nFAIL")
	}
	return code, nil
}

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// result is one test's outcome.
type result struct {
	pkg, name string
	action    string   // pass, fail, skip; "" while it runs
	elapsed   float64  // seconds, as go test measured them
	output    []string // its output lines, kept until it ends
	boots     int      // kernels its guests started
	guestSecs float64  // seconds its guests held a slot
}

// suite follows a go test -json stream.
type suite struct {
	cases  *regexp.Regexp
	out    io.Writer
	tests  map[string]*result // by package + " " + name
	order  []string
	pkgOut map[string][]string // package-level output (build errors, panics)
	accels []string            // what the e2e package said of its guests' accelerator
}

func newSuite(cases *regexp.Regexp, out io.Writer) *suite {
	return &suite{cases: cases, out: out, tests: map[string]*result{}, pkgOut: map[string][]string{}}
}

// guestLine is what the e2e helpers log when a case ends; accelLine what
// the e2e package prints once per guest architecture.
var (
	guestLine = regexp.MustCompile(`kxtest-guest: (\d+) kernel starts?, ([0-9.]+) s`)
	accelLine = regexp.MustCompile(`kxtest-accel: \S+ guests run with (.*)`)
)

func (s *suite) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event: go test prints build failures this way.
			fmt.Fprintln(s.out, string(line))
			continue
		}
		s.event(e)
	}
	return sc.Err()
}

func (s *suite) event(e event) {
	if m := accelLine.FindStringSubmatch(e.Output); m != nil {
		s.accels = append(s.accels, strings.TrimSpace(m[0]))
	}
	if e.Test == "" {
		switch e.Action {
		case "output":
			s.pkgOut[e.Package] = append(s.pkgOut[e.Package], e.Output)
		case "pass", "fail", "skip":
			s.packageDone(e)
		}
		return
	}
	key := e.Package + " " + e.Test
	t := s.tests[key]
	if t == nil {
		t = &result{pkg: e.Package, name: e.Test}
		s.tests[key] = t
		s.order = append(s.order, key)
	}
	switch e.Action {
	case "output":
		t.output = append(t.output, e.Output)
		if m := guestLine.FindStringSubmatch(e.Output); m != nil {
			n, _ := strconv.Atoi(m[1])
			secs, _ := strconv.ParseFloat(m[2], 64)
			t.boots += n
			t.guestSecs += secs
		}
	case "pass", "fail", "skip":
		t.action, t.elapsed = e.Action, e.Elapsed
		if e.Action == "fail" {
			for _, l := range t.output {
				fmt.Fprint(s.out, l)
			}
		}
		if s.cases.MatchString(t.pkg) && s.leaf(t) {
			fmt.Fprintf(s.out, "%-4s  %-44s %7.1fs  %s\n", strings.ToUpper(e.Action), t.name, t.cost(), bootsText(t.boots))
		}
		if e.Action != "fail" {
			t.output = nil
		}
	}
}

// packageDone prints a package's line, and its own output if it failed
// outside any test (a build error, a panic, a timeout).
func (s *suite) packageDone(e event) {
	word := map[string]string{"pass": "ok  ", "fail": "FAIL", "skip": "?   "}[e.Action]
	if e.Action == "fail" {
		for _, l := range s.pkgOut[e.Package] {
			if !strings.HasPrefix(l, "FAIL") && !strings.HasPrefix(l, "ok ") {
				fmt.Fprint(s.out, l)
			}
		}
	}
	fmt.Fprintf(s.out, "%s  %s  %.1fs\n", word, e.Package, e.Elapsed)
	delete(s.pkgOut, e.Package)
}

// cost is the case's seconds in a guest slot; for a case without a guest,
// its elapsed time.
func (t *result) cost() float64 {
	if t.guestSecs > 0 {
		return t.guestSecs
	}
	return t.elapsed
}

func bootsText(n int) string {
	switch n {
	case 0:
		return "no guest"
	case 1:
		return "1 kernel start"
	}
	return fmt.Sprintf("%d kernel starts", n)
}

// leaf tells whether t has no subtests.
func (s *suite) leaf(t *result) bool {
	prefix := t.pkg + " " + t.name + "/"
	for _, k := range s.order {
		if strings.HasPrefix(k, prefix) {
			return false
		}
	}
	return true
}

// skipped lists the tests that were skipped, in the order they ran.
func (s *suite) skipped() []string {
	var names []string
	for _, k := range s.order {
		if t := s.tests[k]; t.action == "skip" {
			names = append(names, t.name+" ("+t.pkg+")")
		}
	}
	return names
}

// table is the Markdown table of the cases, costliest first, with the
// sums. A case's cost is the time its guests held a slot (see
// e2e/main_test.go), which does not depend on how many cases wait at
// once; a case without a guest counts its wall time.
func (s *suite) table(wall time.Duration) string {
	var rows []*result
	for _, k := range s.order {
		if t := s.tests[k]; s.cases.MatchString(t.pkg) && s.leaf(t) {
			rows = append(rows, t)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].cost() > rows[j].cost() })
	var b strings.Builder
	b.WriteString("| case | kernel starts | guest seconds | waited for a slot | result |\n|---|---:|---:|---:|---|\n")
	var sum float64
	boots := 0
	for _, t := range rows {
		res := t.action
		if res == "" {
			res = "unfinished"
		}
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.0f | %s |\n", t.name, t.boots, t.cost(), max(t.elapsed-t.cost(), 0), res)
		sum += t.cost()
		boots += t.boots
	}
	fmt.Fprintf(&b, "| **%d cases** | **%d** | **%.0f** | | |\n", len(rows), boots, sum)
	fmt.Fprintf(&b, "\nGuest seconds: the wall time a case held a guest slot. Their sum: %.0f; the whole run took %.0f s.\n", sum, wall.Seconds())
	for _, a := range s.accels {
		fmt.Fprintf(&b, "%s.\n", strings.Replace(strings.TrimPrefix(a, "kxtest-accel: "), "guests run with", "guests ran with", 1))
	}
	return b.String()
}
