// Package tries is the chain boot's memory across boots: which kernel it
// hops into, how many hops in a row have gone unconfirmed, and what went
// wrong last. Every hop (at boot, or by a fast reboot) is a try that must
// confirm itself (kxboot mark-good) before the count is cleared; a
// confirmed hop becomes the last known-good entry. After MaxTries
// unconfirmed hops in a row the owner's kernel is given up: the chain boot
// hops into the last known-good entry instead, itself counted, and when
// that fails too the machine stays on the provider's kernel. A one-shot
// entry (kxboot chain --once, kxboot reboot --once) is the next hop only.
//
// The record is one small file, replaced atomically (temp file, fsync,
// rename, fsync of the directory) and carrying a SHA-256 of its contents,
// so a power cut at any instant leaves the old record or the new one, and
// anything else is recognised as damaged rather than believed.
package tries

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Paths of the state kxboot keeps.
const (
	Dir         = "/var/lib/kxboot"
	RecordPath  = Dir + "/tries"
	HistoryPath = Dir + "/history"
)

// The entries a hop can boot, in the order the chain boot considers them.
const (
	Once       = "once"       // a one-shot kernel, asked for by --once
	Configured = "configured" // the owner's kernel: KERNEL= or the newest installed
	KnownGood  = "known-good" // the last hop that was confirmed
)

// Boot is what a hop loads: the files, the exact command line, and the
// identity of the three together.
type Boot struct {
	// Slot names the slot this entry boots, and Root the device of its
	// root file system, which holds Kernel and Initrds (mounted
	// read-only to load them); both "" for a kernel of this machine.
	Slot    string   `json:"slot,omitempty"`
	Root    string   `json:"root,omitempty"`
	Kernel  string   `json:"kernel"`
	Initrds []string `json:"initrds,omitempty"`
	Cmdline string   `json:"cmdline,omitempty"`
	Release string   `json:"release,omitempty"`
	ID      string   `json:"id,omitempty"`
}

// Good is the last known-good entry: a hop that was confirmed.
type Good struct {
	Boot
	Confirmed time.Time `json:"confirmed"`
}

// GaveUp is the owner's kernel after it used up its tries: while its
// identity stays the same, the chain boot goes to the known-good entry.
type GaveUp struct {
	Kernel string    `json:"kernel"`
	ID     string    `json:"id"`
	Tries  int       `json:"tries"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// OneShot is a kernel asked for once: the next hop boots it (with the
// initrds found beside it, or those named, and the usual command line),
// and the one after goes back to the usual entry.
type OneShot struct {
	Slot    string    `json:"slot,omitempty"` // a slot to boot once (kxboot slot set-next), instead of Kernel
	Kernel  string    `json:"kernel,omitempty"`
	Initrds []string  `json:"initrds,omitempty"` // nil: those found beside the kernel
	By      string    `json:"by"`                // the command that asked, for the history
	Asked   time.Time `json:"asked"`
}

// Record is the state of the tries.
type Record struct {
	Version int    `json:"version"`
	Kernel  string `json:"kernel,omitempty"` // the kernel hopped into
	// Entry is which entry the last hop booted (Once, Configured,
	// KnownGood), and Why the decision's reason; Boot what it loaded.
	Entry string `json:"entry,omitempty"`
	Why   string `json:"why,omitempty"`
	Boot  *Boot  `json:"boot,omitempty"`
	// ID identifies the kernel file, its initrds and the command line of
	// the hop: when any changes, the count starts again.
	ID string `json:"id,omitempty"`
	// Tries is how many hops into ID in a row have not been confirmed,
	// of at most Max (the hop's decision's; 0 when not recorded).
	Tries int `json:"tries"`
	Max   int `json:"max,omitempty"`
	// Pending says the last hop is neither confirmed nor failed yet.
	Pending bool      `json:"pending"`
	HopTime time.Time `json:"hop_time,omitzero"`
	HopBoot string    `json:"hop_boot,omitempty"` // boot id of the boot that hopped
	// Watchdog says kxboot armed the hardware watchdog for this hop, so
	// the confirmation stops it again (unless the init took it over).
	Watchdog bool `json:"watchdog,omitempty"`
	// Health is what the last failed health check said during the
	// pending try.
	Health    string    `json:"health,omitempty"`
	Confirmed time.Time `json:"confirmed,omitzero"`
	Failure   *Failure  `json:"last_failure,omitempty"`
	// Good is the last known-good entry, GaveUp the owner's kernel that
	// used up its tries, Next a one-shot kernel for the next hop.
	Good   *Good    `json:"known_good,omitempty"`
	GaveUp *GaveUp  `json:"gave_up,omitempty"`
	Next   *OneShot `json:"once,omitempty"`
}

// Failure is the last failed try.
type Failure struct {
	Time   time.Time `json:"time"`
	Kernel string    `json:"kernel"`
	Try    int       `json:"try"`
	Reason string    `json:"reason"`
}

// version is the record format.
const version = 1

// envelope is the file: the record as written, and its checksum.
type envelope struct {
	Record json.RawMessage `json:"record"`
	SHA256 string          `json:"sha256"`
}

// Encode is the file's contents for r.
func Encode(r Record) []byte {
	r.Version = version
	body, _ := json.Marshal(r) // a Record always marshals
	sum := sha256.Sum256(body)
	out, _ := json.Marshal(envelope{Record: body, SHA256: hex.EncodeToString(sum[:])})
	return append(out, '\n')
}

// ErrDamaged marks a record that exists but cannot be believed.
var ErrDamaged = errors.New("damaged try record")

// Decode reads a record file's contents.
func Decode(b []byte) (Record, error) {
	var r Record
	var e envelope
	if err := json.Unmarshal(bytes.TrimSpace(b), &e); err != nil || len(e.Record) == 0 {
		return r, fmt.Errorf("%w: it is not kxboot's JSON (%d bytes)", ErrDamaged, len(b))
	}
	sum := sha256.Sum256(e.Record)
	if hex.EncodeToString(sum[:]) != e.SHA256 {
		return r, fmt.Errorf("%w: its checksum does not match its contents", ErrDamaged)
	}
	if err := json.Unmarshal(e.Record, &r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	if r.Version != version {
		return r, fmt.Errorf("%w: format version %d, this kxboot reads %d", ErrDamaged, r.Version, version)
	}
	if r.Tries < 0 {
		return r, fmt.Errorf("%w: a negative count of tries", ErrDamaged)
	}
	return r, nil
}

// Exhausted says whether the hop into id has used up max tries; max 0
// never stops.
func Exhausted(r Record, id string, max int) bool {
	return max > 0 && r.ID == id && r.Tries >= max
}

// NextTry is the number the next hop into id would carry.
func NextTry(r Record, id string) int {
	if r.ID != id {
		return 1
	}
	return r.Tries + 1
}

// Settle closes a try that was left pending: the provider's kernel is
// running again, so the hop before it ended without a confirmation. It
// returns the failure it recorded, or nil when nothing was pending. cause,
// when not "", is what is known to have ended the try (the watchdog reset
// the machine); the reason then says it instead of the guesses.
func Settle(r Record, now time.Time, cause string) (Record, *Failure) {
	if !r.Pending {
		return r, nil
	}
	reason := "the kernel never confirmed: it crashed, hung or was reset before kxboot mark-good ran (a power cut counts too)"
	switch {
	case cause != "" && r.Health != "":
		reason = "the kernel never confirmed: " + cause + "; its last health check said: " + r.Health
	case cause != "":
		reason = "the kernel never confirmed: " + cause
	case r.Health != "":
		reason = "the kernel never confirmed; its last health check said: " + r.Health
	}
	return fail(r, now, reason)
}

// Hop is the record written, durably, before the jump into b, booted as
// entry for the reason why. A one-shot kernel is used up by its hop.
func Hop(r Record, b Boot, entry, why string, now time.Time, boot string) Record {
	tries := NextTry(r, b.ID)
	r.Kernel, r.ID, r.Tries = b.Kernel, b.ID, tries
	r.Entry, r.Why, r.Boot = entry, why, &b
	r.Pending, r.HopTime, r.HopBoot, r.Health = true, now, boot, ""
	if entry == Once {
		r.Next = nil
	}
	return r
}

// GiveUp records that the owner's kernel (kernel, id) used up its tries,
// so that the next hops go to the known-good entry until its identity
// changes or kxboot reset.
func GiveUp(r Record, kernel, id string, tries int, reason string, now time.Time) Record {
	r.GaveUp = &GaveUp{Kernel: kernel, ID: id, Tries: tries, Reason: reason, Time: now}
	return r
}

// GivenUp says whether the hop into id is given up: it used up max tries
// now, or did before the chain boot went to the known-good entry.
func GivenUp(r Record, id string, max int) bool {
	return Exhausted(r, id, max) || (max > 0 && r.GaveUp != nil && r.GaveUp.ID == id)
}

// Confirm clears the count: the running hop is healthy, and becomes the
// last known-good entry.
func Confirm(r Record, now time.Time) Record {
	r.Tries, r.Pending, r.Health, r.Confirmed = 0, false, "", now
	if r.Boot != nil && r.Boot.ID == r.ID {
		r.Good = &Good{Boot: *r.Boot, Confirmed: now}
	}
	if r.GaveUp != nil && r.GaveUp.ID == r.ID {
		r.GaveUp = nil // the given-up kernel was tried again, and is well
	}
	return r
}

// Fail records that the pending try failed, and why.
func Fail(r Record, now time.Time, reason string) (Record, *Failure) {
	return fail(r, now, reason)
}

func fail(r Record, now time.Time, reason string) (Record, *Failure) {
	f := &Failure{Time: now, Kernel: r.Kernel, Try: r.Tries, Reason: reason}
	r.Pending, r.Health, r.Failure = false, "", f
	return r, f
}

// Reset forgets the count and the given-up kernel, keeping the last
// failure and the known-good entry for the record.
func Reset(r Record) Record {
	r.Tries, r.Pending, r.Health, r.GaveUp = 0, false, "", nil
	return r
}
