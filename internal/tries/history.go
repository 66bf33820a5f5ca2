package tries

import (
	"bytes"
	"encoding/json"
	"os"
	"time"

	"github.com/kxboot/kxboot/internal/atomicfile"
)

// Entry is one line of the history.
type Entry struct {
	Time    time.Time `json:"time"`
	Boot    string    `json:"boot,omitempty"`    // boot id of the boot that wrote it
	Running string    `json:"running,omitempty"` // release of the kernel that wrote it
	Kernel  string    `json:"kernel,omitempty"`  // the kernel hopped into (or to be)
	// Event is hop, boot-on, abort, fallback, confirmed, failed or reset.
	Event string `json:"event"`
	// Entry is which entry a hop booted: once, configured, known-good.
	Entry  string `json:"entry,omitempty"`
	Try    int    `json:"try,omitempty"`
	Max    int    `json:"max,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// History bounds: past MaxHistory bytes the file is cut to its newest
// KeepHistory bytes of whole lines.
const (
	MaxHistory  = 256 << 10
	KeepHistory = 128 << 10
)

// Append adds one line to the history and fsyncs it. The history is
// append-only; a power cut in the middle of an append can leave a partial
// last line, which ReadHistory passes over.
func (s Store) Append(e Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	return s.writable(func() error {
		if err := os.MkdirAll(s.FS.Path(Dir), 0o755); err != nil {
			return err
		}
		p := s.FS.Path(HistoryPath)
		if st, err := os.Stat(p); err == nil && st.Size()+int64(len(line)) > MaxHistory {
			if err := trim(p); err != nil {
				return err
			}
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(line); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// trim keeps the newest KeepHistory bytes of whole lines, atomically.
func trim(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if len(b) > KeepHistory {
		b = b[len(b)-KeepHistory:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return atomicfile.Write(p, b, 0o644)
}

// ReadHistory returns the history, oldest first; lines that do not parse
// (a partial line after a power cut) are left out.
func (s Store) ReadHistory() ([]Entry, error) {
	b, err := s.FS.ReadFile(HistoryPath)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e Entry
		if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &e) != nil || e.Event == "" {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}
