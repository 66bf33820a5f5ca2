package status

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// MetricsFile is the name of the textfile kxboot metrics writes, for the
// node exporter's textfile collector.
const MetricsFile = "kxboot.prom"

// WriteMetrics writes the report in the Prometheus text format (version
// 0.0.4): one family per fact, each with its HELP and TYPE, names
// prefixed kxboot_, seconds and timestamps in seconds.
func WriteMetrics(w io.Writer, r Report) error {
	var b strings.Builder
	family := func(name, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	}
	gauge := func(name, help string, v float64) {
		family(name, help)
		fmt.Fprintf(&b, "%s %s\n", name, number(v))
	}
	family("kxboot_boot_info", "How this boot came (via: firmware, chain, fast-reboot, kexec), the running release and the entry booted; always 1.")
	fmt.Fprintf(&b, "kxboot_boot_info{via=%s,release=%s,entry=%s} 1\n", label(string(r.Via)), label(r.Release), label(r.Entry))
	expected := ""
	if r.Expected != nil {
		expected = r.Expected.Release
	}
	family("kxboot_expected_info", "The release kxboot's last hop or fast reboot loaded (empty when unknown); always 1.")
	fmt.Fprintf(&b, "kxboot_expected_info{release=%s} 1\n", label(expected))
	gauge("kxboot_confirmed", "1 when this boot is a hop of kxboot's that kxboot mark-good confirmed.", bool01(r.Confirmed))
	gauge("kxboot_fallback_active", "1 when kxboot fell back: the chain boot stopped, or the known-good or the provider's kernel runs after a failed hop.", bool01(fellBack(r) != ""))
	unconfirmed, maxTries := 0, r.MaxTries
	if r.Tries != nil {
		unconfirmed = r.Tries.Tries
	}
	gauge("kxboot_tries_unconfirmed", "Hops in a row into the same kernel that have not confirmed.", float64(unconfirmed))
	gauge("kxboot_max_tries", "MAX_TRIES: unconfirmed hops before the chain boot stops (0 never stops).", float64(maxTries))
	gauge("kxboot_reboot_required", "1 when the next reboot would boot another kernel than the running one.", bool01(r.RebootRequired))
	gauge("kxboot_state_error", "1 when the config or the try record cannot be read (see kxboot status).", bool01(r.ConfigErr != "" || r.TriesErr != ""))
	family("kxboot_installed", "1 when the job (chain, reboot) is installed.")
	fmt.Fprintf(&b, "kxboot_installed{job=\"chain\"} %s\nkxboot_installed{job=\"reboot\"} %s\n", number(bool01(r.Installed != "")), number(bool01(r.FastReboot != "")))
	if t := r.Tries; t != nil {
		stamp := func(name, help string, at time.Time) {
			if !at.IsZero() {
				gauge(name, help, float64(at.UnixMilli())/1000)
			}
		}
		stamp("kxboot_last_hop_timestamp_seconds", "When kxboot last hopped or loaded a kernel at a reboot (Unix time).", t.HopTime)
		stamp("kxboot_last_confirmed_timestamp_seconds", "When a hop last confirmed (Unix time).", t.Confirmed)
		if t.Failure != nil {
			stamp("kxboot_last_failure_timestamp_seconds", "When a hop last failed (Unix time).", t.Failure.Time)
		}
		if t.Good != nil {
			family("kxboot_known_good_info", "The last known-good kernel, which the chain boot falls back to; always 1.")
			fmt.Fprintf(&b, "kxboot_known_good_info{kernel=%s,release=%s} 1\n", label(t.Good.Kernel), label(t.Good.Release))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func number(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// label quotes a label value as the text format wants: backslash, double
// quote and newline escaped.
func label(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}
