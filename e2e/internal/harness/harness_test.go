package harness

import (
	"reflect"
	"sort"
	"testing"
)

func TestVersionLess(t *testing.T) {
	got := []string{"6.1.0-56-cloud-amd64", "6.1.0-9-cloud-amd64", "6.1.0-47-cloud-amd64", "6.1.0-100-cloud-amd64"}
	sort.Slice(got, func(i, j int) bool { return versionLess(got[i], got[j]) })
	want := []string{"6.1.0-9-cloud-amd64", "6.1.0-47-cloud-amd64", "6.1.0-56-cloud-amd64", "6.1.0-100-cloud-amd64"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q; want %q", got, want)
	}
}

func TestParse(t *testing.T) {
	r := Parse([]string{
		"[    0.1] Linux version 6.1.0-55",
		"KXTEST stage: 1",
		"KXTEST release: 6.1.0-55-cloud-amd64",
		"KXTEST load.out: Loaded",
		"KXTEST load.err: warning: a: b",
		"KXTEST load.rc: 0",
		"KXTEST empty:",
		"[    0.0] Linux version 6.1.0-56",
		"[    1.5] random: crng initKXTEST stage: 2",
		"KXTEST release: 6.1.0-56-cloud-amd64",
		`KXTEST cmdline: a kxtest.words="a b  c"`,
	})
	if got, _ := r.Stage("1").Get("release"); got != "6.1.0-55-cloud-amd64" {
		t.Errorf("stage 1 release: got %q", got)
	}
	if got, _ := r.Stage("2").Get("release"); got != "6.1.0-56-cloud-amd64" {
		t.Errorf("stage 2 release: got %q", got)
	}
	if got, _ := r.Get("cmdline"); got != `a kxtest.words="a b  c"` {
		t.Errorf("cmdline: got %q", got)
	}
	if got, ok := r.Get("empty"); !ok || got != "" {
		t.Errorf("empty: got %q, %v; want \"\", true", got, ok)
	}
	s := r.Stage("1").Step("load")
	want := Step{Name: "load", Out: []string{"Loaded"}, Err: []string{"warning: a: b"}, RC: 0, Started: true}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("step load: got %+v; want %+v", s, want)
	}
	if s := r.Step("exec"); s.Started || s.RC != -1 {
		t.Errorf("step exec never ran: got %+v", s)
	}
}
