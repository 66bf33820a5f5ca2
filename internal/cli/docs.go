package cli

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kxboot/kxboot/internal/config"
)

// The man page and the shell completions are made from the command table
// and each command's own flag set, as kxboot help and --help are: they
// cannot drift from the commands. describeCommands runs every command with
// Env.describe set, so that each hands over its flag set at parse time and
// runs nothing.

// cmdDoc is one command (or one job of install) as the man page and the
// completions show it.
type cmdDoc struct {
	Name     string // "load", "install chain"
	Summary  string
	Synopsis string
	About    string
	Flags    []flagDoc
	Words    []string // the words that come first: uninstall chain|reboot, slot list|set-next
	Glue     bool
}

// flagDoc is one flag of a command.
type flagDoc struct {
	Name, Usage, Default string
	Bool, Glue           bool
}

// fileFlags take a path; dirFlags a directory; valueFlags one of a few words.
var (
	fileFlags  = map[string]bool{"kernel": true, "initrd": true, "binary": true, "expect-kernel": true}
	dirFlags   = map[string]bool{"textfile-dir": true}
	valueFlags = map[string][]string{"syscall": {"auto", "file", "load"}, "mode": {"auto", "wrapper", "systemd", "sysvinit", "openrc"}}
	// leadWords are the words a command takes before its flags.
	leadWords = map[string][]string{
		"install":    {"chain", "reboot"},
		"uninstall":  {"chain", "reboot"},
		"slot":       {"list", "set-next"},
		"completion": {"bash", "zsh", "fish"},
	}
)

// describeCommands returns every command, sorted by name, install as its
// two jobs.
func describeCommands() []cmdDoc {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var docs []cmdDoc
	for _, n := range names {
		runs := [][]string{nil}
		if n == "install" {
			runs = [][]string{{"chain"}, {"reboot"}}
		}
		for _, args := range runs {
			var got *flagSet
			env := &Env{Stdout: io.Discard, Stderr: io.Discard, describe: func(fs flagSet) { got = &fs }}
			commands[n].run(env, args)
			d := cmdDoc{Name: n, Summary: commands[n].summary, Glue: commands[n].glue}
			if n != "install" {
				d.Words = leadWords[n]
			}
			if got != nil {
				d.Name, d.Synopsis, d.About = got.Name(), got.synopsis, got.about
				got.VisitAll(func(f *flag.Flag) {
					b, _ := f.Value.(interface{ IsBoolFlag() bool })
					fd := flagDoc{Name: f.Name, Usage: f.Usage, Default: shownDefault(f), Bool: b != nil && b.IsBoolFlag(), Glue: strings.HasPrefix(f.Usage, glueUsage)}
					d.Flags = append(d.Flags, fd)
				})
			}
			docs = append(docs, d)
		}
	}
	return docs
}

// shownDefault is the default a flag's help names: none for an empty,
// false or zero default, or where the usage says its default itself.
func shownDefault(f *flag.Flag) string {
	if f.DefValue == "" || f.DefValue == "false" || f.DefValue == "0" || strings.Contains(f.Usage, "default") {
		return ""
	}
	return f.DefValue
}

// glueLine names the init glue, commands and flags, in one line:
// "watch, and reboot --armed, --jump, --prepare".
func glueLine(docs []cmdDoc) string {
	var cmds, flags []string
	for _, d := range docs {
		if d.Glue {
			cmds = append(cmds, d.Name)
			continue
		}
		var fs []string
		for _, f := range d.Flags {
			if f.Glue {
				fs = append(fs, "--"+f.Name)
			}
		}
		if len(fs) > 0 {
			flags = append(flags, d.Name+" "+strings.Join(fs, ", "))
		}
	}
	return strings.Join(append(cmds, "and "+strings.Join(flags, "; ")), ", ")
}

// roff escapes text for a man page line.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffText writes a paragraph of plain text: each line escaped, the
// indented lines of a list kept on their own.
func roffText(w io.Writer, text string) {
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if t := strings.TrimSpace(l); t == "" {
			fmt.Fprintln(w, ".PP")
		} else if strings.HasPrefix(l, " ") {
			fmt.Fprintf(w, ".br\n%s\n", roff(t))
		} else {
			fmt.Fprintln(w, roff(l))
		}
	}
}

// manPage writes kxboot(8).
func manPage(w io.Writer) {
	docs := describeCommands()
	fmt.Fprintf(w, ".TH KXBOOT 8 \"\" \"kxboot %s\" \"System Administration\"\n", roff(version()))
	fmt.Fprintln(w, ".SH NAME\nkxboot \\- boot the kernel you choose through kexec")
	fmt.Fprintln(w, ".SH SYNOPSIS\n.B kxboot\n.I command\n.RI [ flags ]")
	fmt.Fprintln(w, ".SH DESCRIPTION")
	roffText(w, `kxboot has two jobs. The chain boot: where a provider or a board boots its
own kernel, kxboot hops at every boot into the kernel the owner chose, as
PID 1 or as the earliest service of systemd, sysvinit or OpenRC, with a loop
guard, an abort window on the console and a fallback to the last kernel that
confirmed, or to the provider's, when the owner's kernel fails. The fast
reboot: reboot goes through kexec into the next kernel, skipping the
firmware; poweroff never does.
It refuses a config, kernel or initrd that someone other than root could
have written.`)
	fmt.Fprintln(w, ".SH COMMANDS")
	var glue []string
	for _, d := range docs {
		if d.Glue {
			glue = append(glue, d.Name)
			continue
		}
		fmt.Fprintf(w, ".TP\n\\fBkxboot %s\\fR \\fI%s\\fR\n", roff(d.Name), roff(d.Synopsis))
		about := d.About
		if about == "" {
			about = d.Summary
		}
		roffText(w, about)
		var flags []flagDoc
		for _, f := range d.Flags {
			if f.Glue {
				glue = append(glue, d.Name+" --"+f.Name)
				continue
			}
			flags = append(flags, f)
		}
		if len(flags) > 0 {
			fmt.Fprintln(w, ".RS")
			for _, f := range flags {
				arg := ""
				if !f.Bool {
					arg = " " + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
				}
				fmt.Fprintf(w, ".TP\n.B \\-\\-%s%s\n%s", roff(f.Name), roff(arg), roff(f.Usage))
				if f.Default != "" {
					fmt.Fprintf(w, " (default %s)", roff(f.Default))
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w, ".RE")
		}
	}
	fmt.Fprintln(w, ".SH INIT GLUE")
	roffText(w, "Run by what kxboot install puts in place (units, init scripts, the init\nwrapper), not by people:")
	for _, g := range glue {
		fmt.Fprintf(w, ".br\n.B kxboot %s\n", roff(g))
	}
	fmt.Fprintln(w, ".SH CONFIGURATION")
	roffText(w, `/etc/default/kxboot holds KEY="value" lines with # comments, read
without a shell; flags override it. Its absence is meaningful: the recipe
files of the hand-made setups kxboot replaces are read then. The keys:`)
	fmt.Fprintf(w, ".br\n%s\n", roff(strings.Join(config.Keys(), ", ")))
	fmt.Fprintln(w, ".br\nand SLOT_<NAME>_KERNEL, _INITRD, _CMDLINE, _ROOT for A/B slots. The README\nsays what each does.")
	fmt.Fprintln(w, ".SH EXIT STATUS")
	roffText(w, `0 done; 1 the command failed, with one sentence on standard error that
names the file, the cause and the fix; 2 a mistake in the command line.
kxboot verify: 0 as expected, 1 another kernel runs, 2 not confirmed, 3
fell back, 4 cannot tell. kxboot reboot-required: 0 a reboot would boot
another kernel, 1 not, 4 cannot tell.`)
	fmt.Fprintln(w, ".SH FILES")
	for _, f := range [][2]string{
		{"/etc/default/kxboot", "the configuration"},
		{"/var/lib/kxboot/tries", "the try record of the chain boot"},
		{"/var/lib/kxboot/history", "one line per hop, abort, confirmation, failure and fallback"},
		{"/var/lib/kxboot/install.json, install-reboot.json", "what kxboot install changed, for kxboot uninstall"},
	} {
		fmt.Fprintf(w, ".TP\n.I %s\n%s\n", roff(f[0]), roff(f[1]))
	}
	fmt.Fprintln(w, ".SH SEE ALSO\n.BR kexec (8),\n.BR systemctl (1),\n.BR dmesg (1)")
}

// completion writes the completion script for shell.
func completion(w io.Writer, shell string) error {
	docs := describeCommands()
	switch shell {
	case "bash":
		bashCompletion(w, docs)
	case "zsh":
		zshCompletion(w, docs)
	case "fish":
		fishCompletion(w, docs)
	default:
		return fmt.Errorf("%w: kxboot completion takes bash, zsh or fish, not %q", errUsage, shell)
	}
	return nil
}

// visible returns the flags people use, as --name.
func visible(d cmdDoc) []string {
	var out []string
	for _, f := range d.Flags {
		if !f.Glue {
			out = append(out, "--"+f.Name)
		}
	}
	return out
}

// topLevel returns the commands people run.
func topLevel(docs []cmdDoc) []string {
	var out []string
	for _, d := range docs {
		n, _, _ := strings.Cut(d.Name, " ")
		if !d.Glue && (len(out) == 0 || out[len(out)-1] != n) {
			out = append(out, n)
		}
	}
	return out
}

func bashCompletion(w io.Writer, docs []cmdDoc) {
	fmt.Fprintf(w, "# bash completion for kxboot (kxboot completion bash)\n_kxboot() {\n")
	fmt.Fprintf(w, "\tlocal cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\" opts=\n")
	fmt.Fprintf(w, "\tif [ \"$COMP_CWORD\" -eq 1 ]; then\n\t\tCOMPREPLY=($(compgen -W '%s' -- \"$cur\"))\n\t\treturn\n\tfi\n", strings.Join(topLevel(docs), " "))
	fmt.Fprintf(w, "\tcase \"$prev\" in\n")
	var files, dirs []string
	for f := range fileFlags {
		files = append(files, "--"+f)
	}
	for f := range dirFlags {
		dirs = append(dirs, "--"+f)
	}
	sort.Strings(files)
	sort.Strings(dirs)
	fmt.Fprintf(w, "\t%s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", strings.Join(files, "|"))
	fmt.Fprintf(w, "\t%s) COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n", strings.Join(dirs, "|"))
	for _, f := range []string{"mode", "syscall"} {
		fmt.Fprintf(w, "\t--%s) COMPREPLY=($(compgen -W '%s' -- \"$cur\")); return ;;\n", f, strings.Join(valueFlags[f], " "))
	}
	fmt.Fprintf(w, "\tesac\n\tcase \"${COMP_WORDS[1]}\" in\n")
	for _, d := range docs {
		if d.Glue || strings.HasPrefix(d.Name, "install ") {
			continue
		}
		opts := visible(d)
		if len(d.Words) > 0 {
			fmt.Fprintf(w, "\t%s) [ \"$COMP_CWORD\" -eq 2 ] && opts='%s' || opts='%s' ;;\n", d.Name, strings.Join(d.Words, " "), strings.Join(opts, " "))
		} else {
			fmt.Fprintf(w, "\t%s) opts='%s' ;;\n", d.Name, strings.Join(opts, " "))
		}
	}
	fmt.Fprintf(w, "\tinstall)\n\t\tif [ \"$COMP_CWORD\" -eq 2 ]; then opts='chain reboot'\n\t\telse case \"${COMP_WORDS[2]}\" in\n")
	for _, d := range docs {
		if job, ok := strings.CutPrefix(d.Name, "install "); ok {
			fmt.Fprintf(w, "\t\t\t%s) opts='%s' ;;\n", job, strings.Join(visible(d), " "))
		}
	}
	fmt.Fprintf(w, "\t\tesac; fi ;;\n\tesac\n\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n}\ncomplete -F _kxboot kxboot\n")
}

// shortUsage is the first clause of a usage, for a completion's
// description, with the characters the shells' syntax uses taken out.
func shortUsage(s string) string {
	s, _, _ = strings.Cut(s, ";")
	s, _, _ = strings.Cut(s, " (")
	return strings.NewReplacer("'", "", "[", "(", "]", ")", ":", " ", "\\", "").Replace(s)
}

func zshCompletion(w io.Writer, docs []cmdDoc) {
	fmt.Fprintf(w, "#compdef kxboot\n# zsh completion for kxboot (kxboot completion zsh)\n_kxboot() {\n\tlocal -a cmds\n\tcmds=(\n")
	seen := map[string]bool{}
	for _, d := range docs {
		n, _, _ := strings.Cut(d.Name, " ")
		if d.Glue || seen[n] {
			continue
		}
		seen[n] = true
		fmt.Fprintf(w, "\t\t'%s:%s'\n", n, shortUsage(d.Summary))
	}
	fmt.Fprintf(w, "\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe command cmds\n\t\treturn\n\tfi\n\tlocal key=$words[2]\n")
	fmt.Fprintf(w, "\t[[ $key == install ]] && (( CURRENT > 3 )) && key=\"install $words[3]\"\n\tcase $key in\n")
	for _, d := range docs {
		if d.Glue {
			continue
		}
		var specs []string
		for _, f := range d.Flags {
			if f.Glue {
				continue
			}
			spec := fmt.Sprintf("'--%s[%s]", f.Name, shortUsage(f.Usage))
			switch {
			case f.Bool:
			case fileFlags[f.Name]:
				spec += ":file:_files"
			case dirFlags[f.Name]:
				spec += ":directory:_files -/"
			case valueFlags[f.Name] != nil:
				spec += fmt.Sprintf(":%s:(%s)", f.Name, strings.Join(valueFlags[f.Name], " "))
			default:
				spec += ":value: "
			}
			specs = append(specs, spec+"'")
		}
		words := d.Words
		if d.Name == "install" {
			words = []string{"chain", "reboot"}
		}
		switch {
		case len(words) > 0 && len(specs) > 0:
			fmt.Fprintf(w, "\t%s) (( CURRENT == 3 )) && _values word %s || _arguments %s ;;\n", d.Name, strings.Join(words, " "), strings.Join(specs, " "))
		case len(words) > 0:
			fmt.Fprintf(w, "\t%s) (( CURRENT == 3 )) && _values word %s ;;\n", d.Name, strings.Join(words, " "))
		case len(specs) == 0:
			continue
		default:
			fmt.Fprintf(w, "\t'%s') _arguments %s ;;\n", d.Name, strings.Join(specs, " "))
		}
	}
	fmt.Fprintf(w, "\tinstall) _values job chain reboot ;;\n\tesac\n}\n_kxboot \"$@\"\n")
}

func fishCompletion(w io.Writer, docs []cmdDoc) {
	fmt.Fprintf(w, "# fish completion for kxboot (kxboot completion fish)\ncomplete -c kxboot -f\n")
	seen := map[string]bool{}
	for _, d := range docs {
		n, job, _ := strings.Cut(d.Name, " ")
		if d.Glue {
			continue
		}
		if !seen[n] {
			seen[n] = true
			fmt.Fprintf(w, "complete -c kxboot -n __fish_use_subcommand -a %s -d '%s'\n", n, shortUsage(d.Summary))
		}
		cond := "__fish_seen_subcommand_from " + n
		if job != "" {
			cond += "; and __fish_seen_subcommand_from " + job
		}
		words := d.Words
		if n == "install" && !seen["install words"] {
			seen["install words"] = true
			words = []string{"chain", "reboot"}
		}
		if len(words) > 0 {
			fmt.Fprintf(w, "complete -c kxboot -n '__fish_seen_subcommand_from %s; and not __fish_seen_subcommand_from %s' -a '%s'\n", n, strings.Join(words, " "), strings.Join(words, " "))
		}
		for _, f := range d.Flags {
			if f.Glue {
				continue
			}
			extra := ""
			switch {
			case f.Bool:
			case fileFlags[f.Name] || dirFlags[f.Name]:
				extra = " -r -F"
			case valueFlags[f.Name] != nil:
				extra = fmt.Sprintf(" -x -a '%s'", strings.Join(valueFlags[f.Name], " "))
			default:
				extra = " -x"
			}
			fmt.Fprintf(w, "complete -c kxboot -n '%s' -l %s%s -d '%s'\n", cond, f.Name, extra, shortUsage(f.Usage))
		}
	}
}
