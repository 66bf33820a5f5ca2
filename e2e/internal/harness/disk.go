package harness

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// NewDisk copies the image into dir, sparsely, and returns the copy's path:
// a disk of the test's own that the guest may write.
func NewDisk(img *DiskImage, dir string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("NewDisk: no directory")
	}
	dst := filepath.Join(dir, img.Flavour+".img")
	out, err := exec.Command("cp", "--reflink=auto", "--sparse=always", img.Path, dst).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("copying %s: %w: %s", img.Path, err, out)
	}
	if err := os.Chmod(dst, 0o644); err != nil {
		return "", err
	}
	return dst, nil
}

// GuestFile is a file for Inject to write into a disk, owned by root.
// Exactly one of Data, HostPath, Target, Dir and Absent gives what it
// holds.
type GuestFile struct {
	Path     string      // absolute path in the guest; no white space or quotes
	Mode     fs.FileMode // permission bits, 0o4755 style; 0 means 0644, or 0755 for a directory
	Data     []byte      // contents
	HostPath string      // or: contents copied from this host file
	Target   string      // or: a symbolic link to Target
	Dir      bool        // or: a directory
	Absent   bool        // or: nothing: a file or link there is removed
}

// Inject writes files into the ext4 file system of disk with debugfs -w,
// without mounting it (the disk must not be in use by a guest). Missing
// parent directories are made (mode 0755, root's); an existing file or
// link at a path is replaced. Every file ends owned by uid and gid 0 with
// the mode asked for. Paths are resolved the way the guest would, through
// symbolic links such as /sbin -> usr/sbin.
func Inject(disk string, files ...GuestFile) error {
	tmp, err := os.MkdirTemp("", "kxtest-inject-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var cmds []string
	made := map[string]bool{} // directories this call makes
	for i, f := range files {
		if err := checkGuestPath(f.Path); err != nil {
			return err
		}
		kinds := 0
		for _, set := range []bool{f.Data != nil, f.HostPath != "", f.Target != "", f.Dir, f.Absent} {
			if set {
				kinds++
			}
		}
		if kinds > 1 {
			return fmt.Errorf("guest file %s: give only one of Data, HostPath, Target, Dir and Absent", f.Path)
		}
		if f.Absent {
			switch t, err := debugfsType(disk, f.Path); {
			case err != nil:
				return err
			case t == "regular" || t == "symlink":
				cmds = append(cmds, at(f.Path, "rm")...)
			case t != "":
				return fmt.Errorf("guest file %s: there is a %s there, not a file to remove", f.Path, t)
			}
			continue
		}
		// Parents, from the top.
		var parents []string
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if made[d] {
				continue
			}
			t, err := debugfsType(disk, d)
			if err != nil {
				return err
			}
			switch t {
			case "":
				cmds = append(cmds, at(d, "mkdir")...)
				cmds = append(cmds, "sif "+d+" mode 040755", "sif "+d+" uid 0", "sif "+d+" gid 0")
				made[d] = true
			case "directory", "symlink":
			default:
				return fmt.Errorf("guest file %s: %s is a %s, not a directory", f.Path, d, t)
			}
		}
		t := ""
		if !made[path.Dir(f.Path)] {
			if t, err = debugfsType(disk, f.Path); err != nil {
				return err
			}
		}
		mode := f.Mode
		if f.Dir {
			if mode == 0 {
				mode = 0o755
			}
			switch t {
			case "":
				cmds = append(cmds, at(f.Path, "mkdir")...)
			case "directory":
			default:
				return fmt.Errorf("guest directory %s: there is a %s there", f.Path, t)
			}
			made[f.Path] = true
			cmds = append(cmds, fmt.Sprintf("sif %s mode 0%o", f.Path, 0o40000|unixPerm(mode)))
		} else {
			switch t {
			case "":
			case "regular", "symlink":
				cmds = append(cmds, at(f.Path, "rm")...)
			default:
				return fmt.Errorf("guest file %s: there is a %s there", f.Path, t)
			}
			if f.Target != "" {
				if strings.ContainsAny(f.Target, " \t\n\"'\\") {
					return fmt.Errorf("guest link %s: the target %q has white space or quotes", f.Path, f.Target)
				}
				cmds = append(cmds, at(f.Path, "symlink", f.Target)...)
			} else {
				src := f.HostPath
				if src == "" {
					src = filepath.Join(tmp, strconv.Itoa(i))
					if err := os.WriteFile(src, f.Data, 0o600); err != nil {
						return err
					}
				} else if fi, err := os.Stat(src); err != nil {
					return fmt.Errorf("guest file %s: %w", f.Path, err)
				} else if !fi.Mode().IsRegular() {
					return fmt.Errorf("guest file %s: %s is not a regular file", f.Path, src)
				}
				if mode == 0 {
					mode = 0o644
				}
				cmds = append(cmds, at(f.Path, "write", debugfsQuote(src))...)
				cmds = append(cmds, fmt.Sprintf("sif %s mode 0%o", f.Path, 0o100000|unixPerm(mode)))
			}
		}
		cmds = append(cmds, "sif "+f.Path+" uid 0", "sif "+f.Path+" gid 0")
	}

	script := filepath.Join(tmp, "cmds")
	if err := os.WriteFile(script, []byte(strings.Join(cmds, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(sbin("debugfs"), "-w", "-f", script, disk)
	cmd.Env = append(os.Environ(), "DEBUGFS_PAGER=__none__")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil {
		return fmt.Errorf("debugfs -w %s: %w\n%s%s", disk, err, out, stderr.String())
	}
	// debugfs exits 0 whatever its commands did: any message but its
	// banner is a failure.
	var problems []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "debugfs ") {
			problems = append(problems, l)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("debugfs -w %s:\n%s\ncommands:\n%s", disk, strings.Join(problems, "\n"), strings.Join(cmds, "\n"))
	}
	// And check that each file is there, or gone.
	for _, f := range files {
		t, err := debugfsType(disk, f.Path)
		if err != nil {
			return err
		}
		want := "regular"
		switch {
		case f.Dir:
			want = "directory"
		case f.Target != "":
			want = "symlink"
		case f.Absent:
			want = ""
		}
		if t != want {
			return fmt.Errorf("after debugfs, %s in %s is %q; want %s", f.Path, disk, t, want)
		}
	}
	return nil
}

// at returns the debugfs commands that run op on the guest path p: from
// p's directory, since debugfs's mkdir, rm, write and symlink do not follow
// a symbolic link that is the last directory of the path (/sbin/x), while
// cd follows every link in "DIR/.". For write the host file comes first.
func at(p, op string, arg ...string) []string {
	dir, base := path.Split(p)
	cd := "cd " + dir + "."
	switch op {
	case "write":
		return []string{cd, "write " + arg[0] + " " + base, "cd /"}
	case "symlink":
		return []string{cd, "symlink " + base + " " + arg[0], "cd /"}
	}
	return []string{cd, op + " " + base, "cd /"}
}

// checkGuestPath accepts clean absolute paths that debugfs's command
// parser takes as one word.
func checkGuestPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("guest path %q: want a clean absolute path below /", p)
	}
	if strings.ContainsAny(p, " \t\n\"'\\") {
		return fmt.Errorf("guest path %q: white space and quotes are not supported", p)
	}
	return nil
}

// debugfsQuote quotes a host path for debugfs's parser.
func debugfsQuote(p string) string {
	if !strings.ContainsAny(p, " \t\"") {
		return p
	}
	return `"` + strings.ReplaceAll(p, `"`, `\"`) + `"`
}

// unixPerm converts the permission bits of m to their Unix values. The
// setuid, setgid and sticky bits count whether given as Go's mode bits or
// as Unix's (0o4755).
func unixPerm(m fs.FileMode) uint32 {
	u := uint32(m & 0o7777)
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// debugfsType returns the type debugfs's stat gives for p in disk
// ("regular", "directory", "symlink", ...), or "" if p does not exist.
// The last component is not followed.
func debugfsType(disk, p string) (string, error) {
	cmd := exec.Command(sbin("debugfs"), "-R", "stat "+p, disk)
	cmd.Env = append(os.Environ(), "DEBUGFS_PAGER=__none__")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("debugfs -R 'stat %s' %s: %w: %s", p, disk, err, stderr.String())
	}
	for _, l := range strings.Split(string(out), "\n") {
		if _, rest, ok := strings.Cut(l, "Type: "); ok && strings.HasPrefix(l, "Inode:") {
			if t := strings.Fields(rest); len(t) > 0 {
				return t[0], nil
			}
		}
	}
	if strings.Contains(stderr.String(), "File not found") {
		return "", nil
	}
	return "", fmt.Errorf("debugfs -R 'stat %s' %s: no type in its answer: %s%s", p, disk, out, stderr.String())
}
