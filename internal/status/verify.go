package status

import (
	"fmt"

	"github.com/kxboot/kxboot/internal/bootstate"
	"github.com/kxboot/kxboot/internal/tries"
)

// The exit codes of kxboot verify, a contract for fleet tools.
const (
	VerifyOK          = 0 // the expected kernel runs (and is confirmed, when asked)
	VerifyWrong       = 1 // another kernel runs, and it is no fallback of kxboot's
	VerifyUnconfirmed = 2 // the expected kernel runs but has not confirmed (yet)
	VerifyFellBack    = 3 // kxboot fell back: the chain boot stopped, or the known-good or the provider's kernel runs instead
	VerifyUnknown     = 4 // cannot tell, for the reason given
)

// VerifyNames are the verdicts' names, by exit code, for --json.
var VerifyNames = [...]string{"ok", "wrong-kernel", "unconfirmed", "fell-back", "unknown"}

// Want is what kxboot verify expects: a release, or a kernel file (Kernel,
// with KernelRelease its release when it could be read), and whether the
// kernel must be confirmed.
type Want struct {
	Release          string
	Kernel           string
	KernelRelease    string
	RequireConfirmed bool
	// SameFile says whether two in-machine paths name one file (a link
	// and its target); nil compares the paths as written.
	SameFile func(a, b string) bool
}

func (w Want) same(a, b string) bool {
	if a == b {
		return true
	}
	return w.SameFile != nil && w.SameFile(a, b)
}

// Verdict is kxboot verify's answer: an exit code and one sentence.
type Verdict struct {
	Code int    `json:"code"`
	Name string `json:"verdict"`
	Line string `json:"message"`
}

func verdict(code int, f string, a ...any) Verdict {
	return Verdict{Code: code, Name: VerifyNames[code], Line: fmt.Sprintf(f, a...)}
}

// Verify says whether the machine runs what w expects. It only reads r.
func Verify(r Report, w Want) Verdict {
	if r.Release == "" {
		return verdict(VerifyUnknown, "cannot tell which kernel runs: the running release is unknown (is /proc mounted?)")
	}
	hop := r.Via.ByHop()
	wanted, match := w.Release, r.Release == w.Release
	if w.Kernel != "" {
		wanted = w.Kernel
		switch {
		case hop && r.Expected != nil:
			match = w.same(r.Expected.Kernel, w.Kernel)
		case w.KernelRelease == "":
			return verdict(VerifyUnknown, "cannot tell whether %s runs: this boot did not come through kxboot, and the release of %s cannot be read", w.Kernel, w.Kernel)
		default:
			match = r.Release == w.KernelRelease
		}
	}
	if !match {
		if why := fellBack(r); why != "" {
			return verdict(VerifyFellBack, "fell back: %s runs, not %s: %s", r.Release, wanted, why)
		}
		return verdict(VerifyWrong, "wrong kernel: %s runs (came by %s), not %s", r.Release, r.Via, wanted)
	}
	if !w.RequireConfirmed {
		return verdict(VerifyOK, "ok: %s runs (came by %s)", r.Release, r.Via)
	}
	switch {
	case r.Confirmed:
		return verdict(VerifyOK, "ok: %s runs (came by %s) and was confirmed healthy at %s", r.Release, r.Via, r.ConfirmedAt.Local().Format("2006-01-02 15:04:05"))
	case r.TriesErr != "":
		return verdict(VerifyUnknown, "cannot tell whether %s is confirmed: %s", r.Release, r.TriesErr)
	case !hop:
		return verdict(VerifyUnconfirmed, "not confirmed: %s runs, but this boot came by %s, not through a hop of kxboot's, so nothing confirms it", r.Release, r.Via)
	case r.Tries != nil && r.Tries.Pending:
		return verdict(VerifyUnconfirmed, "not confirmed yet: %s runs, try %d of %s, waiting for kxboot mark-good%s", r.Release, r.Tries.Tries, r.Tries.Kernel, health(r.Tries))
	case r.Tries != nil && hopFailed(r.Tries):
		return verdict(VerifyUnconfirmed, "not confirmed: %s runs, but its try failed: %s", r.Release, r.Tries.Failure.Reason)
	}
	return verdict(VerifyUnconfirmed, "not confirmed: %s runs, but the try record holds no confirmation of this boot", r.Release)
}

// hopFailed says whether the record's last hop failed (its failure is
// not an older try's).
func hopFailed(t *tries.Record) bool {
	return t.Failure != nil && !t.Failure.Time.Before(t.HopTime)
}

func health(t *tries.Record) string {
	if t.Health != "" {
		return " (its health check said: " + t.Health + ")"
	}
	return ""
}

// fellBack says why the running kernel is a fallback of kxboot's, or ""
// when it is not one: the chain boot stopped, the known-good entry runs,
// or the last hop did not come back and the firmware brought this kernel.
func fellBack(r Report) string {
	switch {
	case r.Fallback != "":
		return "the chain boot stopped: " + r.Fallback
	case r.Entry == tries.KnownGood:
		return "the last known-good kernel runs: " + r.EntryWhy
	}
	t := r.Tries
	if r.Via != bootstate.Firmware || t == nil || t.Kernel == "" || t.HopBoot == r.BootID {
		return ""
	}
	switch {
	case t.Pending:
		return fmt.Sprintf("the hop into %s (try %d) did not come back; the firmware brought this kernel", t.Kernel, t.Tries)
	case hopFailed(t):
		return fmt.Sprintf("the hop into %s (try %d) failed: %s", t.Failure.Kernel, t.Failure.Try, t.Failure.Reason)
	}
	return ""
}
