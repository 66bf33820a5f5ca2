package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// need returns the path of a tool the test cannot do without; make test
// installs them (scripts/install-test-deps), so a missing one fails.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is not installed; scripts/install-test-deps installs it", tool)
	}
	return p
}

func TestManPage(t *testing.T) {
	m := newMachine(t)
	page := m.mustRun("help", "--man")
	for _, want := range []string{".TH KXBOOT 8", ".SH COMMANDS", ".SH INIT GLUE", "kxboot reboot \\-\\-prepare", "kxboot watch", "METRICS_DIR", ".SH EXIT STATUS"} {
		if !strings.Contains(page, want) {
			t.Errorf("the man page lacks %q", want)
		}
	}
	// Every command people run, and each of its flags, is in the page.
	for _, d := range describeCommands() {
		if d.Glue {
			continue
		}
		if !strings.Contains(page, `\fBkxboot `+roff(d.Name)+`\fR`) {
			t.Errorf("the man page lacks the command %s", d.Name)
		}
		for _, f := range d.Flags {
			if !f.Glue && !strings.Contains(page, `.B \-\-`+roff(f.Name)) {
				t.Errorf("the man page lacks %s --%s", d.Name, f.Name)
			}
		}
	}
	file := filepath.Join(t.TempDir(), "kxboot.8")
	os.WriteFile(file, []byte(page), 0o644)
	cmd := exec.Command(need(t, "man"), "--warnings", "-l", file)
	cmd.Env = append(os.Environ(), "MANWIDTH=80")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Errorf("man --warnings -l: %v\n%s", err, stderr.String())
	}
	if !regexp.MustCompile(`kxboot\s+load\s+\[--kernel`).Match(out) {
		t.Errorf("man renders no synopsis of load:\n%.2000s", out)
	}
}

func TestCompletionBash(t *testing.T) {
	m := newMachine(t)
	script := m.mustRun("completion", "bash")
	file := filepath.Join(t.TempDir(), "kxboot.bash")
	os.WriteFile(file, []byte(script), 0o644)
	bash := need(t, "bash")
	if out, err := exec.Command(bash, "-n", file).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	complete := func(words ...string) string {
		t.Helper()
		q := make([]string, len(words))
		for i, w := range words {
			q[i] = "'" + w + "'"
		}
		sh := "source " + file + "\ncomplete -p kxboot\nCOMP_WORDS=(" + strings.Join(q, " ") + ")\nCOMP_CWORD=" + itoa(len(words)-1) + "\n_kxboot\necho \"[${COMPREPLY[*]}]\"\n"
		out, err := exec.Command(bash, "-c", sh).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if lines[0] != "complete -F _kxboot kxboot" {
			t.Errorf("complete -p kxboot: %q", lines[0])
		}
		return strings.Trim(lines[len(lines)-1], "[]")
	}
	for _, tt := range []struct {
		words []string
		want  string
	}{
		{[]string{"kxboot", "lo"}, "load"},
		{[]string{"kxboot", "re"}, "reboot reboot-required reset"},
		{[]string{"kxboot", "load", "--sys"}, "--syscall"},
		{[]string{"kxboot", "load", "--syscall", ""}, "auto file load"},
		{[]string{"kxboot", "install", ""}, "chain reboot"},
		{[]string{"kxboot", "install", "chain", "--mo"}, "--mode"},
		{[]string{"kxboot", "reboot", "--p"}, ""}, // --prepare is init glue
		{[]string{"kxboot", "wat"}, ""},           // so is watch
	} {
		if got := complete(tt.words...); got != tt.want {
			t.Errorf("completing %q: %q; want %q", tt.words, got, tt.want)
		}
	}
}

func TestCompletionZshFish(t *testing.T) {
	m := newMachine(t)
	for _, sh := range []struct{ shell, check string }{{"zsh", "-n"}, {"fish", "--no-execute"}} {
		script := m.mustRun("completion", sh.shell)
		file := filepath.Join(t.TempDir(), "kxboot."+sh.shell)
		os.WriteFile(file, []byte(script), 0o644)
		if out, err := exec.Command(need(t, sh.shell), sh.check, file).CombinedOutput(); err != nil {
			t.Errorf("%s %s: %v\n%s", sh.shell, sh.check, err, out)
		}
		if !strings.Contains(script, "load") || strings.Contains(script, "prepare") {
			t.Errorf("%s completion: no load, or the init glue offered", sh.shell)
		}
	}
	if code := m.run("completion", "tcsh"); code != 2 || !strings.Contains(m.err.String(), "bash, zsh or fish") {
		t.Errorf("completion tcsh: exit %d, %q", code, m.err)
	}
}

func itoa(n int) string { return string(rune('0' + n)) }

// TestSynopsesComplete: every flag people use appears in its command's
// synopsis (the init glue is left out of both).
func TestSynopsesComplete(t *testing.T) {
	for _, d := range describeCommands() {
		for _, f := range d.Flags {
			if f.Glue {
				if strings.Contains(d.Synopsis, "--"+f.Name) {
					t.Errorf("kxboot %s: the synopsis %q shows the init glue --%s", d.Name, d.Synopsis, f.Name)
				}
				continue
			}
			if !regexp.MustCompile(`--` + regexp.QuoteMeta(f.Name) + `\b`).MatchString(d.Synopsis) {
				t.Errorf("kxboot %s: the synopsis %q lacks --%s", d.Name, d.Synopsis, f.Name)
			}
		}
	}
}
