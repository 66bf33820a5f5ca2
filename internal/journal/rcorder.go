package journal

import (
	"os"
	"path"
	"strings"

	"github.com/kxboot/kxboot/internal/atomicfile"
	"github.com/kxboot/kxboot/internal/rootfs"
)

// bootOrder reads the sysvinit boot order: every link of /etc/rc?.d with
// its target, and the text of insserv's /etc/init.d/.depend.* files.
func bootOrder(fsys rootfs.FS) map[string]string {
	out := map[string]string{}
	links, _ := fsys.Glob("/etc/rc?.d/*")
	for _, l := range links {
		if t, err := os.Readlink(fsys.Path(l)); err == nil {
			out[l] = "link:" + t
		}
	}
	deps, _ := fsys.Glob("/etc/init.d/.depend.*")
	for _, d := range deps {
		if b, err := fsys.ReadFile(d); err == nil {
			out[d] = "file:" + string(b)
		}
	}
	return out
}

// scripts is the set of rc entries by directory and target, numbers aside.
func scripts(order map[string]string) map[string]bool {
	set := map[string]bool{}
	for p, v := range order {
		if strings.HasPrefix(v, "link:") {
			set[path.Dir(p)+" "+v] = true
		}
	}
	return set
}

// restoreBootOrder puts the saved boot order back when the scripts are the
// same ones and only their numbers differ (what insserv's renumbering
// leaves); when another package added or removed a script since, insserv's
// order stays and the report says so.
func (j Journal) restoreBootOrder(saved map[string]string) {
	now := bootOrder(j.FS)
	a, b := scripts(saved), scripts(now)
	same := len(a) == len(b)
	for k := range a {
		same = same && b[k]
	}
	if !same {
		j.Report("the sysvinit boot order changed since install (scripts were added or removed); left /etc/rc?.d as insserv made it")
		return
	}
	for p, v := range now {
		if saved[p] != v && strings.HasPrefix(v, "link:") {
			os.Remove(j.FS.Path(p))
		}
	}
	changed := false
	for p, v := range saved {
		if now[p] == v {
			continue
		}
		changed = true
		if t, ok := strings.CutPrefix(v, "link:"); ok {
			os.Symlink(t, j.FS.Path(p))
		} else if text, ok := strings.CutPrefix(v, "file:"); ok {
			atomicfile.Write(j.FS.Path(p), []byte(text), 0o644)
		}
	}
	if changed {
		j.Report("put the sysvinit boot order back as it was before the install (insserv had renumbered it)")
	}
}
