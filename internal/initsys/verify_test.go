package initsys

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// These tests hand the generated units and scripts to the tools that will
// read them on a real machine (systemd-analyze verify, dash, busybox sh,
// checkbashisms), so that a mistake the line-by-line tests retype along
// with the generator is still caught.

// vendorUnitDirs are the directories systemd installs its own units into,
// on machines with and without a merged /usr. The verification searches
// only these besides the temporary directory: the host's /etc and /run hold
// its administrator's units and drop-ins (even a kxboot-chain.service.d of
// a kxboot installed on the developer's machine), which must not change
// what the test sees.
var vendorUnitDirs = []string{"/usr/lib/systemd/system", "/lib/systemd/system"}

// unitTypes are the suffixes of systemd unit names, used to recognise an
// output line that is about some unit.
const unitTypes = `service|socket|target|mount|automount|swap|path|timer|slice|scope|device`

var (
	// hostFileLine is a systemd-analyze message about a line of a unit file,
	// "/usr/lib/systemd/system/foo.service:12: ...".
	hostFileLine = regexp.MustCompile(`^(/\S+\.(?:` + unitTypes + `)):\d+: `)
	// hostUnitLine is a message about a unit by name, "foo.service: ...".
	hostUnitLine = regexp.MustCompile(`^([^\s/:]+\.(?:` + unitTypes + `)): `)
	// hostBadUnitLine is the summary systemd-analyze prints for a unit it
	// refused, "Unit foo.service has a bad unit file setting.".
	hostBadUnitLine = regexp.MustCompile(`^Unit ([^\s/]+\.(?:` + unitTypes + `)) `)
	// analyzeVersion is the first line of `systemd-analyze --version`.
	analyzeVersion = regexp.MustCompile(`^systemd (\d+)`)
)

// verifyResult is what one run of systemd-analyze verify said, sorted:
// problems in our units (or that cannot be attributed to anything but the
// run itself), and warnings about the host's own unit files.
type verifyResult struct {
	problems []string
	hostOnly []string
	output   string
}

// systemdAnalyze returns the path of systemd-analyze, skipping the test when
// the machine has none: that is the one case in which the units cannot be
// checked by the real tool.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed on this machine, so the generated systemd units cannot be verified by it")
	}
	return tool
}

// verifyArgs are the arguments of the verification, chosen by trying them
// against systemd 252 as root and as nobody, with no systemd running:
// --man=no, because our Documentation= is an https address and whether man
// pages exist is a property of the host, not of our units; --generators=no,
// because generators need privileges and turn the host's own configuration
// (fstab, the kernel command line) into units, which our units do not
// depend on;
// --recursive-errors=yes (systemd 250 and later), so that the exit status
// also reflects the units our units pull in. Without it verify exits 0
// after an unknown key, and with "no" it does not even report a Requires=
// on a unit that does not exist.
func verifyArgs(t *testing.T, tool string, units []string) []string {
	t.Helper()
	args := []string{"verify", "--man=no", "--generators=no"}
	out, err := exec.Command(tool, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", tool, err)
	}
	m := analyzeVersion.FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s --version printed no version: %q", tool, out)
	}
	if v, _ := strconv.Atoi(string(m[1])); v >= 250 {
		args = append(args, "--recursive-errors=yes")
	}
	return append(args, units...)
}

// verify runs systemd-analyze verify on unit files that all sit in dir,
// together with the host's targets they are enabled in (given by name, so
// that the targets' start transactions, which pull our units in through
// dir's .wants links, are checked for ordering cycles too), and sorts its
// output with classify.
func verify(t *testing.T, tool, dir string, ours, targets []string) verifyResult {
	t.Helper()
	var units []string
	for _, name := range ours {
		units = append(units, filepath.Join(dir, name))
	}
	cmd := exec.Command(tool, verifyArgs(t, tool, append(units, targets...))...)
	cmd.Dir = dir
	// The log settings are pinned so that a developer's SYSTEMD_LOG_LEVEL
	// or SYSTEMD_LOG_TARGET cannot silence the warnings the test reads;
	// SYSTEMD_UNIT_PATH without a trailing colon replaces the default
	// search path (verify still puts dir first).
	cmd.Env = append(os.Environ(),
		"SYSTEMD_UNIT_PATH="+strings.Join(vendorUnitDirs, ":"),
		"SYSTEMD_LOG_LEVEL=info",
		"SYSTEMD_LOG_TARGET=console",
		"SYSTEMD_LOG_COLOR=0",
		"SYSTEMD_LOG_LOCATION=0",
		"SYSTEMD_LOG_TIME=0",
	)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running %s: %v", tool, err)
	}
	code := 0
	if err != nil {
		code = exit.ExitCode()
	}
	return classify(string(out), code, dir, ours)
}

// classify sorts the output and exit status of systemd-analyze verify, run
// on our units in dir. Each line that names one of our units, or our
// directory, is a problem. A line about another unit file is the host's: it
// is unavoidable, because verify must load the host's sysinit.target,
// multi-user.target and the rest for our dependencies to resolve, and the
// test can neither fix nor avoid them, so such lines are only logged. Any
// other line (a failure of the tool itself) is a problem, and so is a
// failing exit status that no line explains.
func classify(out string, code int, dir string, ours []string) verifyResult {
	r := verifyResult{output: out}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		if mentionsOurs(line, dir, ours) {
			r.problems = append(r.problems, line)
			continue
		}
		if hostFileLine.MatchString(line) || hostUnitLine.MatchString(line) || hostBadUnitLine.MatchString(line) {
			r.hostOnly = append(r.hostOnly, line)
			continue
		}
		r.problems = append(r.problems, "unattributed: "+line)
	}
	if code != 0 && len(r.problems) == 0 && len(r.hostOnly) == 0 {
		r.problems = append(r.problems, "exit status "+strconv.Itoa(code)+" with no output")
	}
	return r
}

// mentionsOurs says whether an output line names one of our units, by unit
// name or by the directory they were written to.
func mentionsOurs(line, dir string, ours []string) bool {
	if strings.Contains(line, dir) {
		return true
	}
	for _, name := range ours {
		if strings.Contains(line, name) {
			return true
		}
	}
	return false
}

// fakeBinary writes an executable that stands in for kxboot, because verify
// refuses a unit whose ExecStart= names a file that is missing or not
// executable, and units run "<bin> chain" and the like.
func fakeBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin", "kxboot")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// writeUnit writes a unit under its real name in a directory of its own, so
// that two variants of one unit never shadow each other in the search path,
// and enables it the way the adapter does, with a link in wants (a
// "<target>.wants" directory), so that the target's transaction includes it.
func writeUnit(t *testing.T, top, sub, name, wants, text string) string {
	t.Helper()
	dir := filepath.Join(top, sub)
	if err := os.MkdirAll(filepath.Join(dir, wants), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..", name), filepath.Join(dir, wants, name)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// wantsTarget is the target a ".wants" directory belongs to.
func wantsTarget(wants string) string {
	return strings.TrimSuffix(wants, ".wants")
}

// needsBootComplete gives dir a stand-in boot-complete.target when the
// host's systemd (older than 240) has none: kxboot writes the unit that
// requires it only where the target exists, so its absence on the test
// machine says nothing about our unit.
func needsBootComplete(t *testing.T, dir string) {
	t.Helper()
	for _, d := range vendorUnitDirs {
		if _, err := os.Stat(filepath.Join(d, "boot-complete.target")); err == nil {
			return
		}
	}
	t.Log("the host's systemd has no boot-complete.target; verifying against a stand-in")
	stub := "[Unit]\nDescription=Stand-in for systemd's boot-complete.target\n"
	if err := os.WriteFile(filepath.Join(dir, "boot-complete.target"), []byte(stub), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestUnitsVerify checks every generated systemd unit, in every variant,
// with systemd-analyze verify, and shows with deliberately broken units
// that the check reports what is wrong.
func TestUnitsVerify(t *testing.T) {
	// The sorting of verify's output needs no tool, and is checked first
	// on lines of the shapes systemd 252 prints, so that a host's warnings
	// are shown to be set aside and everything else to count.
	t.Run("classify", func(t *testing.T) {
		dir := "/tmp/kxboot-units"
		ours := []string{"kxboot-chain.service"}
		host := classify("/usr/lib/systemd/system/foo.service:3: Unknown key 'X' in section [Unit], ignoring.\n"+
			"bar.service: Command /usr/bin/bar is not executable: No such file or directory\n"+
			"Unit baz.service has a bad unit file setting.\n", 1, dir, ours)
		if len(host.problems) != 0 || len(host.hostOnly) != 3 {
			t.Errorf("warnings about host units: problems %q, set aside %q", host.problems, host.hostOnly)
		}
		for _, out := range []string{
			"/tmp/kxboot-units/kxboot-chain.service:9: Unknown key 'Typo' in section [Service], ignoring.\n",
			"sysinit.target: Found ordering cycle on kxboot-chain.service/start\n",
			"Failed to initialize manager: Permission denied\n",
		} {
			if r := classify(out, 0, dir, ours); len(r.problems) != 1 {
				t.Errorf("%q was not counted as a problem", out)
			}
		}
		if r := classify("", 1, dir, ours); len(r.problems) != 1 {
			t.Errorf("a failing exit status without output was not counted as a problem")
		}
	})

	tool := systemdAnalyze(t)
	top := t.TempDir()
	bin := fakeBinary(t, top)

	// The .wants directories are the adapter's own, so that the test
	// enables each unit where an install does.
	chainWants := path.Base(SystemdWants)
	confirmWants := path.Base(ConfirmWants)
	rebootWants := path.Base(path.Dir(RebootWants))
	units := []struct {
		sub, name, wants, text string
		bootComplete           bool
	}{
		{"chain", path.Base(SystemdUnit), chainWants, systemdUnit(bin, "/boot"), false},
		{"confirm-without-boot-complete", path.Base(ConfirmUnit), confirmWants, confirmUnit(bin, false), false},
		{"confirm-with-boot-complete", path.Base(ConfirmUnit), confirmWants, confirmUnit(bin, true), true},
		{"reboot", path.Base(RebootUnit), rebootWants, rebootUnit(bin), false},
	}
	for _, u := range units {
		t.Run(u.sub, func(t *testing.T) {
			dir := writeUnit(t, top, u.sub, u.name, u.wants, u.text)
			if u.bootComplete {
				needsBootComplete(t, dir)
			}
			r := verify(t, tool, dir, []string{u.name}, []string{wantsTarget(u.wants)})
			for _, line := range r.hostOnly {
				t.Logf("ignored, about the host's own units: %s", line)
			}
			if len(r.problems) > 0 {
				t.Errorf("systemd-analyze verify reports %s:\n%s\nunit:\n%s", u.name, strings.Join(r.problems, "\n"), u.text)
			}
		})
	}

	// The broken units are generated ones with one deliberate mistake
	// each, and each must come back as a problem naming our unit, with the
	// tool's own words for the mistake.
	broken := []struct {
		sub, name, wants, text, want string
	}{
		{"unknown-key", path.Base(RebootUnit), rebootWants,
			strings.Replace(rebootUnit(bin), "[Service]\n", "[Service]\nTypo=1\n", 1),
			"Unknown key 'Typo'"},
		{"unknown-section", path.Base(ConfirmUnit), confirmWants,
			strings.Replace(confirmUnit(bin, false), "[Service]\n", "[Servise]\n", 1),
			"Unknown section 'Servise'"},
		{"missing-binary", path.Base(SystemdUnit), chainWants,
			systemdUnit(filepath.Join(top, "no-such-dir", "kxboot"), "/boot"),
			"is not executable"},
		{"missing-required-target", path.Base(ConfirmUnit), confirmWants,
			strings.ReplaceAll(confirmUnit(bin, true), "boot-complete.target", "kxboot-no-such.target"),
			"kxboot-no-such.target not found"},
		// A chain unit ordered both before and after sysinit.target is
		// only a cycle in the transaction of the target that wants it.
		// systemd names the cycle from either end, whichever job it meets
		// first ("sysinit.target: Found ordering cycle on
		// kxboot-chain.service/start" or the other way round), so only
		// the words are asked for; that the line names our unit is what
		// put it among the problems.
		{"ordering-cycle", path.Base(SystemdUnit), chainWants,
			strings.Replace(systemdUnit(bin, "/boot"), "\nConflicts=", "\nAfter=sysinit.target\nConflicts=", 1),
			"Found ordering cycle on "},
	}
	for _, b := range broken {
		t.Run("broken-"+b.sub, func(t *testing.T) {
			dir := writeUnit(t, top, "broken-"+b.sub, b.name, b.wants, b.text)
			r := verify(t, tool, dir, []string{b.name}, []string{wantsTarget(b.wants)})
			if len(r.problems) == 0 {
				t.Fatalf("systemd-analyze verify found nothing wrong in a deliberately broken %s; output:\n%s", b.name, r.output)
			}
			if !strings.Contains(strings.Join(r.problems, "\n"), b.want) {
				t.Errorf("systemd-analyze verify did not say %q about the broken %s; it said:\n%s", b.want, b.name, strings.Join(r.problems, "\n"))
			}
			for _, line := range r.problems {
				t.Logf("reported as it should be: %s", line)
			}
		})
	}
}

// shellParser is one way of parsing a script without running it.
type shellParser struct {
	name string
	argv []string // the script's path is appended
}

// shellParsers are the parsers found on this machine: dash (Debian's
// /bin/sh) and busybox sh (the ash of small systems and of Alpine's
// OpenRC), both of which only parse with -n; /bin/sh when neither exists.
func shellParsers() []shellParser {
	var ps []shellParser
	if p, err := exec.LookPath("dash"); err == nil {
		ps = append(ps, shellParser{"dash -n", []string{p, "-n"}})
	}
	if p, err := exec.LookPath("busybox"); err == nil {
		// A busybox may be built without its shell, and then has nothing to
		// parse with.
		if list, err := exec.Command(p, "--list").Output(); err == nil && regexp.MustCompile(`(?m)^sh$`).Match(list) {
			ps = append(ps, shellParser{"busybox sh -n", []string{p, "sh", "-n"}})
		}
	}
	if len(ps) == 0 {
		if p, err := exec.LookPath("sh"); err == nil {
			ps = append(ps, shellParser{"sh -n", []string{p, "-n"}})
		}
	}
	return ps
}

// generatedScript is one script kxboot writes, with the name it is
// installed under and the interpreter its first line must name.
type generatedScript struct {
	variant, name, shebang, text string
	lsb                          bool
}

// generatedScripts are all the scripts of all adapters, in every variant.
func generatedScripts(bin string) []generatedScript {
	var ss []generatedScript
	ss = append(ss, generatedScript{"systemd-shutdown-hook", path.Base(ShutdownHook), "#!/bin/sh", shutdownHook(bin), false})
	for _, late := range []bool{false, true} {
		v := "early"
		if late {
			v = "late"
		}
		ss = append(ss,
			generatedScript{"sysvinit-chain-" + v, path.Base(ChainScript), "#!/bin/sh", sysvinitScript(bin, late), true},
			generatedScript{"openrc-chain-" + v, path.Base(ChainScript), "#!/sbin/openrc-run", openrcScript(bin, late), false})
	}
	return append(ss,
		generatedScript{"sysvinit-confirm", path.Base(ConfirmScript), "#!/bin/sh", sysvinitConfirmScript(bin), true},
		generatedScript{"sysvinit-reboot", path.Base(RebootScript), "#!/bin/sh", sysvinitRebootScript(bin), true},
		generatedScript{"sysvinit-reboot-jump", path.Base(JumpScript), "#!/bin/sh", sysvinitJumpScript(bin), true},
		generatedScript{"openrc-confirm", path.Base(ConfirmScript), "#!/sbin/openrc-run", openrcConfirmScript(bin), false},
		generatedScript{"openrc-reboot", path.Base(RebootScript), "#!/sbin/openrc-run", openrcRebootScript(bin), false},
		generatedScript{"openrc-reboot-jump", path.Base(JumpScript), "#!/sbin/openrc-run", openrcJumpScript(bin), false},
		generatedScript{"openrc-shutdown-jump", path.Base(JumpScript), "#!/sbin/openrc-run", openrcShutdownJumpScript(bin), false},
	)
}

// parseScript writes a script under its installed name, so that the tools'
// messages name it, and returns what each parser said about it, one entry
// per parser that rejected it.
func parseScript(t *testing.T, dir, name, text string, parsers []shellParser) []string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	var failures []string
	for _, p := range parsers {
		argv := append(append([]string(nil), p.argv...), file)
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("running %s: %v", p.name, err)
		}
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			failures = append(failures, p.name+": "+strings.TrimSpace(string(out))+" ("+errString(err)+")")
		}
	}
	return failures
}

// errString is an error's text, or "exit status 0".
func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// lsbKeys are the header fields the LSB defines, with Debian's X-
// extensions that insserv reads.
var lsbKeys = map[string]bool{
	"Provides": true, "Required-Start": true, "Required-Stop": true,
	"Should-Start": true, "Should-Stop": true, "X-Start-Before": true,
	"X-Stop-After": true, "X-Interactive": true, "Default-Start": true,
	"Default-Stop": true, "Short-Description": true, "Description": true,
}

// lsbLine is a header line: "# Key:" alone, or followed by spaces and a
// value that starts with something other than a space.
var lsbLine = regexp.MustCompile(`^# ([A-Za-z-]+):(?: +(\S.*))?$`)

// lsbHeaderProblems checks the LSB header of an init script installed as
// name: one block between the markers, made only of well-formed lines with
// known keys, each once, without trailing whitespace, runlevels that exist,
// and a Provides that is the script's own name (update-rc.d and insserv
// look the script up by it).
func lsbHeaderProblems(name, script string) []string {
	var problems []string
	lines := strings.Split(script, "\n")
	begin, end := -1, -1
	for i, l := range lines {
		switch l {
		case "### BEGIN INIT INFO":
			if begin >= 0 {
				problems = append(problems, "a second ### BEGIN INIT INFO")
			}
			begin = i
		case "### END INIT INFO":
			if end >= 0 {
				problems = append(problems, "a second ### END INIT INFO")
			}
			end = i
		}
	}
	if begin < 0 || end < begin {
		return append(problems, "no ### BEGIN INIT INFO ... ### END INIT INFO block")
	}
	seen := map[string]bool{}
	for _, l := range lines[begin+1 : end] {
		if l != strings.TrimRight(l, " \t") {
			problems = append(problems, "trailing whitespace: "+strconv.Quote(l))
			continue
		}
		m := lsbLine.FindStringSubmatch(l)
		if m == nil {
			problems = append(problems, "not a header line: "+strconv.Quote(l))
			continue
		}
		key, value := m[1], m[2]
		if !lsbKeys[key] {
			problems = append(problems, "unknown key: "+strconv.Quote(l))
		}
		if seen[key] {
			problems = append(problems, "key given twice: "+key)
		}
		seen[key] = true
		switch key {
		case "Provides":
			if value != name {
				problems = append(problems, "Provides is "+strconv.Quote(value)+", not the script's name "+strconv.Quote(name))
			}
		case "Default-Start", "Default-Stop":
			for _, level := range strings.Fields(value) {
				if len(level) != 1 || !strings.Contains("S0123456", level) {
					problems = append(problems, key+" names runlevel "+strconv.Quote(level)+", which does not exist")
				}
			}
		}
	}
	if !seen["Provides"] {
		problems = append(problems, "no Provides")
	}
	return problems
}

// TestScriptsParse parses every generated shell script with the shells
// found on this machine (and checkbashisms when it is installed), checks
// their first lines and the sysvinit scripts' LSB headers, and shows with
// deliberately broken input that both checks report what is wrong.
func TestScriptsParse(t *testing.T) {
	top := t.TempDir()
	scripts := generatedScripts("/usr/local/sbin/kxboot")

	// The header checks need no tool, so they run everywhere.
	for _, s := range scripts {
		t.Run("header/"+s.variant, func(t *testing.T) {
			if first, _, _ := strings.Cut(s.text, "\n"); first != s.shebang {
				t.Errorf("%s starts with %q, want %q", s.name, first, s.shebang)
			}
			if !s.lsb {
				return
			}
			if p := lsbHeaderProblems(s.name, s.text); len(p) > 0 {
				t.Errorf("LSB header of %s:\n%s\nscript:\n%s", s.name, strings.Join(p, "\n"), s.text)
			}
		})
	}
	t.Run("header/broken", func(t *testing.T) {
		// A header with trailing blanks, a misspelt key, a runlevel that
		// does not exist and someone else's Provides: each must be named.
		bad := "#!/bin/sh\n### BEGIN INIT INFO\n# Provides:          kxboot-other\n# Required-Start: \n# Provide:           x\n# Default-Start:     2 9\n### END INIT INFO\n"
		p := strings.Join(lsbHeaderProblems("kxboot-chain", bad), "\n")
		for _, want := range []string{"trailing whitespace", "unknown key", `runlevel "9"`, `Provides is "kxboot-other"`} {
			if !strings.Contains(p, want) {
				t.Errorf("the LSB header check did not report %q in a deliberately broken header; it said:\n%s", want, p)
			}
		}
	})

	parsers := shellParsers()
	if len(parsers) == 0 {
		// This is no reason to skip: a machine without any sh cannot run
		// the scripts either, and the test must not pass silently there.
		t.Fatal("neither dash, busybox nor sh is installed on this machine, so the generated scripts cannot be parsed")
	}
	// checkbashisms reads an openrc-run script only when forced (-f), since
	// its first line names no shell; the body is plain sh all the same.
	var checkers []shellParser
	if p, err := exec.LookPath("checkbashisms"); err == nil {
		checkers = append(checkers, shellParser{"checkbashisms -f", []string{p, "-f"}})
	} else {
		t.Log("checkbashisms is not installed; the scripts are parsed by the shells alone")
	}

	for _, s := range scripts {
		t.Run("parse/"+s.variant, func(t *testing.T) {
			// An openrc-run script's first line is a comment to sh, and
			// the rest is sh functions and assignments, so sh parses the
			// whole file as it would the body.
			if f := parseScript(t, filepath.Join(top, s.variant), s.name, s.text, append(append([]shellParser(nil), parsers...), checkers...)); len(f) > 0 {
				t.Errorf("%s rejected:\n%s\nscript:\n%s", s.name, strings.Join(f, "\n"), s.text)
			}
		})
	}
	t.Run("parse/broken", func(t *testing.T) {
		// A generated script whose case is never closed must be rejected by
		// every shell.
		bad := strings.Replace(sysvinitScript("/usr/local/sbin/kxboot", false), "esac\n", "", 1)
		f := parseScript(t, filepath.Join(top, "broken"), path.Base(ChainScript), bad, parsers)
		if len(f) != len(parsers) {
			t.Fatalf("of %d shells, only %d rejected a script with an unclosed case:\n%s", len(parsers), len(f), strings.Join(f, "\n"))
		}
		for _, line := range f {
			t.Logf("rejected as it should be: %s", line)
		}
	})
}
