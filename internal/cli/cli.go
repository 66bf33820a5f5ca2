// Package cli is kxboot's command line: each command parses its flags and
// calls the packages below it. Run takes its I/O and machine from an Env so
// that tests drive every command against a temp root and a fake loader.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kxboot/kxboot/internal/config"
	"github.com/kxboot/kxboot/internal/initwrap"
	"github.com/kxboot/kxboot/internal/journal"
	"github.com/kxboot/kxboot/internal/kexec"
	"github.com/kxboot/kxboot/internal/mounts"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// Version is set at build time with -ldflags "-X github.com/kxboot/kxboot/internal/cli.Version=v1.2.3".
var Version = ""

// Env is the machine and the terminal a command runs against.
type Env struct {
	FS     rootfs.FS
	Engine *kexec.Engine
	Stdout io.Writer
	Stderr io.Writer
	Euid   func() int
	Mounts mounts.Sys
	Runner journal.Runner // the distribution's tools; nil runs them for real
	// describe, when set, receives each command's flag set instead of
	// running the command (docs.go).
	describe func(flagSet)
}

// Main runs kxboot on the real machine. As PID 1 it is the init wrapper and
// never returns; started as init by someone else it passes the call on to
// the original init.
func Main(args []string) int {
	e := kexec.New()
	switch {
	case os.Getpid() == 1:
		initwrap.Run(initwrap.Env{
			FS: e.FS, Mounts: mounts.Native{}, Engine: e, Console: os.Stdout,
			Args: os.Args, Environ: os.Environ(), Exec: unix.Exec,
			Hang: func() { select {} },
		})
		select {} // PID 1 never exits
	case filepath.Base(os.Args[0]) == "init":
		err := initwrap.PassThrough(e.FS, os.Args, os.Environ(), unix.Exec)
		fmt.Fprintf(os.Stderr, "kxboot: %v\n", err)
		return 1
	}
	return Run(args, &Env{FS: e.FS, Engine: e, Stdout: os.Stdout, Stderr: os.Stderr, Euid: os.Geteuid, Mounts: mounts.Native{}})
}

type command struct {
	summary string
	run     func(env *Env, args []string) error
	// glue: run by kxboot's own init glue, not by people; help leaves it
	// out and names it in one line.
	glue bool
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"chain":           {"chain boot now: hop into the configured kernel, or boot on and say why (--dry-run explains)", runChain, false},
		"install":         {"install the chain boot (kxboot install chain [--mode M]) or the fast reboot (kxboot install reboot)", runInstall, false},
		"uninstall":       {"undo kxboot install exactly: both jobs, or kxboot uninstall chain|reboot", runUninstall, false},
		"reboot":          {"reboot cleanly now, through kexec when installed (--firmware: once through the firmware; --dry-run)", runReboot, false},
		"load":            {"load a kernel for the next kexec (--dry-run shows what, and touches nothing)", runLoad, false},
		"unload":          {"drop the loaded kernel", runUnload, false},
		"exec":            {"jump into the loaded kernel now, without a clean shutdown (needs --force)", runExec, false},
		"status":          {"the running kernel, whether it came through kxboot, what is loaded, the config in force", runStatus, false},
		"doctor":          {"check whether kexec will work here, and say why not (read-only)", runDoctor, false},
		"version":         {"print the version", runVersion, false},
		"mark-good":       {"confirm the kernel kxboot hopped into as healthy (runs HEALTH_CMD first)", runMarkGood, false},
		"mark-bad":        {"record that the kernel kxboot hopped into failed, and reboot through the firmware", runMarkBad, false},
		"reset":           {"forget the count of unconfirmed tries, so the next boot hops again", runReset, false},
		"slot":            {"the slots of an A/B scheme: list them, or set-next NAME to try one once", runSlot, false},
		"history":         {"show each hop, abort, confirmation, failure and fallback [--json]", runHistory, false},
		"verify":          {"say whether the expected kernel runs and confirmed, for fleet tools (exit 0 ok, 1 wrong, 2 unconfirmed, 3 fell back, 4 unknown)", runVerify, false},
		"reboot-required": {"exit 0 when the next reboot would boot another kernel than the running one (kured's sentinel)", runRebootRequired, false},
		"metrics":         {"the boot state as Prometheus metrics (--textfile-dir DIR for the node exporter)", runMetrics, false},
		"watch":           {"the deadline watcher the chain boot starts on the owner's kernel", runWatch, true},
		"help":            {"list the commands (--man: the manual page)", runHelp, false},
		"completion":      {"print the shell completion for bash, zsh or fish (kxboot completion bash)", runCompletion, false},
	}
}

// glueUsage starts the usage of a flag that only kxboot's init glue uses.
const glueUsage = "(init glue)"

// errUsage marks a mistake in the command line itself (exit status 2).
var errUsage = errors.New("usage")

// exitError carries an exit status with no further message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Run runs one command and returns the exit status.
func Run(args []string, env *Env) int {
	if len(args) == 0 {
		runHelp(env, nil)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "--help", "-help":
		name = "help"
	case "-v", "--version", "-version":
		name = "version"
	}
	cmd, ok := commands[name]
	if !ok {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		fmt.Fprintf(env.Stderr, "kxboot: unknown command %q%s; run kxboot help for the list\n", name, didYouMean(name, names, ""))
		return 2
	}
	err := cmd.run(env, args[1:])
	var code exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if err != errUsage { // a usage mistake that says which
			msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
			if !strings.HasPrefix(msg, "kxboot ") {
				msg = "kxboot: " + msg
			}
			fmt.Fprintln(env.Stderr, msg)
		}
		return 2
	case errors.As(err, &code):
		return int(code)
	}
	fmt.Fprintf(env.Stderr, "kxboot: %v\n", err)
	return 1
}

func runHelp(env *Env, args []string) error {
	fs := newFlags(env, "help", "[--man]", "List the commands, or with --man print the manual page kxboot(8) (roff), made from the same table.")
	asMan := fs.Bool("man", false, "print the manual page kxboot(8) in roff (man -l - shows it)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *asMan {
		manPage(env.Stdout)
		return nil
	}
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(env.Stdout, "kxboot boots the kernel you choose through kexec.\n\nUsage: kxboot <command> [flags]\n\nCommands:\n")
	for _, n := range names {
		if commands[n].glue {
			continue
		}
		fmt.Fprintf(env.Stdout, "  %-15s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(env.Stdout, "\nRun kxboot <command> --help for the flags of a command.\n")
	fmt.Fprintf(env.Stdout, "Configuration: /etc/default/kxboot, KEY=\"value\" lines with the keys\n  %s\n  and SLOT_<NAME>_KERNEL|INITRD|CMDLINE|ROOT; flags override it (README: Configuration).\n", strings.Join(config.Keys(), " "))
	fmt.Fprintf(env.Stdout, "Init glue, run by what kxboot install puts in place: %s.\n", glueLine(describeCommands()))
	return nil
}

func runCompletion(env *Env, args []string) error {
	fs := newFlags(env, "completion", "bash|zsh|fish",
		`Print the completion script for a shell. The packages install them; by hand:
  kxboot completion bash > /etc/bash_completion.d/kxboot
  kxboot completion zsh > /usr/local/share/zsh/site-functions/_kxboot
  kxboot completion fish > /etc/fish/completions/kxboot.fish`)
	var shell string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		shell, args = args[0], args[1:]
	}
	if err := fs.parse(args); err != nil {
		return err
	}
	if shell == "" {
		return fmt.Errorf("%w: kxboot completion takes bash, zsh or fish", errUsage)
	}
	return completion(env.Stdout, shell)
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func runVersion(env *Env, args []string) error {
	fs := newFlags(env, "version", "", "Print kxboot's version.")
	if err := fs.parse(args); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "kxboot %s\n", version())
	return nil
}

// flagSet is a command's flags, with the terminal its --help goes to.
type flagSet struct {
	*flag.FlagSet
	env      *Env
	synopsis string
	about    string
}

// newFlags makes a flag set whose --help prints the command's usage.
func newFlags(env *Env, name, synopsis, about string) flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: kxboot %s %s\n\n%s\n", name, synopsis, about)
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprintf(out, "\nFlags:\n")
			var glue []string
			fs.VisitAll(func(f *flag.Flag) {
				if strings.HasPrefix(f.Usage, glueUsage) {
					glue = append(glue, "--"+f.Name)
					return
				}
				def := ""
				if d := shownDefault(f); d != "" {
					def = fmt.Sprintf(" (default %s)", d)
				}
				fmt.Fprintf(out, "  --%-10s %s%s\n", f.Name, f.Usage, def)
			})
			if len(glue) > 0 {
				fmt.Fprintf(out, "\nInit glue, run by what kxboot install puts in place: %s.\n", strings.Join(glue, ", "))
			}
		}
	}
	return flagSet{fs, env, synopsis, about}
}

// parse parses flags; --help goes to stdout and ends the command with
// status 0; stray arguments are a usage error.
func (fs flagSet) parse(args []string) error {
	if fs.env.describe != nil {
		// Collecting the commands' usage for the man page and the
		// completions: nothing runs.
		fs.env.describe(fs)
		return flag.ErrHelp
	}
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(fs.env.Stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	// Go's flag package would print its own message and the whole usage;
	// kxboot says one sentence with the fix instead.
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(fs.env.Stderr)
	if err != nil {
		return fmt.Errorf("%w: kxboot %s: %s; run kxboot %s --help for its flags", errUsage, fs.Name(), fs.explain(err), fs.Name())
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "kxboot %s: unexpected argument %q; flags look like --kernel /boot/vmlinuz\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

// explain turns an error of Go's flag package into kxboot's words.
func (fs flagSet) explain(err error) string {
	msg := err.Error()
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	switch {
	case strings.HasPrefix(msg, "flag provided but not defined: "):
		name := strings.TrimLeft(strings.TrimPrefix(msg, "flag provided but not defined: "), "-")
		return fmt.Sprintf("unknown flag --%s%s", name, didYouMean(name, names, "--"))
	case strings.HasPrefix(msg, "flag needs an argument: "):
		name := strings.TrimLeft(strings.TrimPrefix(msg, "flag needs an argument: "), "-")
		return fmt.Sprintf("--%s needs a value (--%s VALUE)", name, name)
	case strings.HasPrefix(msg, "invalid boolean value "), strings.HasPrefix(msg, "invalid value "):
		// invalid value "x" for flag -n: parse error
		if i := strings.Index(msg, " for flag -"); i >= 0 {
			name, _, _ := strings.Cut(msg[i+len(" for flag -"):], ":")
			return fmt.Sprintf("--%s does not take %s", name, strings.TrimPrefix(strings.TrimPrefix(msg[:i], "invalid boolean value "), "invalid value "))
		}
		if i := strings.Index(msg, " for -"); i >= 0 {
			name, _, _ := strings.Cut(msg[i+len(" for -"):], ":")
			return fmt.Sprintf("--%s is a switch and takes no value (write --%s, or --%s=false)", name, name, name)
		}
	case strings.HasPrefix(msg, "bad flag syntax: "):
		return fmt.Sprintf("%q is not a flag; flags look like --kernel /boot/vmlinuz", strings.TrimPrefix(msg, "bad flag syntax: "))
	}
	return msg
}

// didYouMean names the closest of names to s, " (did you mean PREFIX+NAME?)",
// when one is close enough to be a slip of the keyboard, else "".
func didYouMean(s string, names []string, prefix string) string {
	best, bestD := "", 3
	for _, n := range names {
		d := config.Distance(s, n)
		if strings.HasPrefix(n, s) && len(s) >= 3 {
			d = min(d, 1)
		}
		if d < bestD || d == bestD && n < best {
			best, bestD = n, d
		}
	}
	if best == "" || bestD > max(1, len(s)/3) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s%s?)", prefix, best)
}

// listFlag collects a repeated flag in order; "a b" in one flag is two items.
type listFlag struct{ items *[]string }

func (l listFlag) String() string {
	if l.items == nil {
		return ""
	}
	return strings.Join(*l.items, " ")
}

func (l listFlag) Set(s string) error {
	if *l.items == nil {
		*l.items = []string{}
	}
	*l.items = append(*l.items, strings.Fields(s)...)
	return nil
}

// optString records whether a string flag was given at all.
type optString struct{ p **string }

func (o optString) String() string {
	if o.p == nil || *o.p == nil {
		return ""
	}
	return **o.p
}

func (o optString) Set(s string) error { *o.p = &s; return nil }
