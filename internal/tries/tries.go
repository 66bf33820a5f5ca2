// Package tries is the chain boot's memory across boots: which kernel it
// hops into, how many hops in a row have gone unconfirmed, and what went
// wrong last. The provider's kernel is the known-good system; the owner's
// kernel is a try that must confirm itself (kxboot mark-good) before the
// count is cleared. After MaxTries unconfirmed hops in a row the chain boot
// stops and the machine stays on the provider's kernel.
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

// Record is the state of the tries.
type Record struct {
	Version int    `json:"version"`
	Kernel  string `json:"kernel,omitempty"` // the kernel hopped into
	// ID identifies the kernel file, its initrds and the command line of
	// the hop: when any changes, the count starts again.
	ID string `json:"id,omitempty"`
	// Tries is how many hops into ID in a row have not been confirmed.
	Tries int `json:"tries"`
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
// returns the failure it recorded, or nil when nothing was pending.
func Settle(r Record, now time.Time) (Record, *Failure) {
	if !r.Pending {
		return r, nil
	}
	reason := "the kernel never confirmed: it crashed, hung or was reset before kxboot mark-good ran (a power cut counts too)"
	if r.Health != "" {
		reason = "the kernel never confirmed; its last health check said: " + r.Health
	}
	return fail(r, now, reason)
}

// Hop is the record written, durably, before the jump.
func Hop(r Record, kernel, id string, now time.Time, boot string) Record {
	tries := NextTry(r, id)
	r.Kernel, r.ID, r.Tries = kernel, id, tries
	r.Pending, r.HopTime, r.HopBoot, r.Health = true, now, boot, ""
	return r
}

// Confirm clears the count: the running hop is healthy.
func Confirm(r Record, now time.Time) Record {
	r.Tries, r.Pending, r.Health, r.Confirmed = 0, false, "", now
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

// Reset forgets the count, keeping the last failure for the record.
func Reset(r Record) Record {
	r.Tries, r.Pending, r.Health = 0, false, ""
	return r
}
