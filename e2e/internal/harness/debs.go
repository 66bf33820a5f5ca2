package harness

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Deb is a Debian package file kept on the host for a guest to install.
type Deb struct {
	Package string
	Version string
	Path    string // host path of the .deb
}

// Debs returns the .deb files that installing pkgs in a guest of img
// takes: pkgs themselves and every dependency (Depends and Pre-Depends,
// first alternative) that the image does not have installed. The guest has
// no network, so the caller injects them and runs dpkg -i on all of them
// at once. They are fetched with apt-get download from the host's sources
// into CacheDir()/debs and kept there, checked against apt's SHA-256.
// Versions in the dependencies are not compared: the image comes from the
// same suite as the host's sources.
func Debs(img *DiskImage, logf Logf, pkgs ...string) ([]Deb, error) {
	installed, err := imagePackages(img)
	if err != nil {
		return nil, err
	}
	names, err := resolveDeps(pkgs, installed)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(CacheDir(), "debs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("package cache: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var debs []Deb
	for _, name := range names {
		d, err := cachedDeb(dir, name, logf)
		if err != nil {
			return nil, err
		}
		debs = append(debs, d)
	}
	return debs, nil
}

// imagePackages reads the list of installed packages that the image's
// recipe leaves in /var/lib/kxtest/packages, through debugfs.
func imagePackages(img *DiskImage) (map[string]bool, error) {
	const list = "/var/lib/kxtest/packages"
	cmd := exec.Command(sbin("debugfs"), "-R", "cat "+list, img.Path)
	cmd.Env = append(os.Environ(), "DEBUGFS_PAGER=__none__")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("debugfs -R 'cat %s' %s: %w: %s", list, img.Path, err, stderr.String())
	}
	have := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// "ii  NAME VERSION": ${db:Status-Abbrev} is three characters.
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "ii" {
			have[f[1]] = true
		}
	}
	if len(have) == 0 {
		return nil, fmt.Errorf("%s in %s lists no installed package: the image is damaged; remove %s to build it again", list, img.Path, img.Dir)
	}
	return have, nil
}

// aptDepends asks apt-cache for the hard dependencies of one package, as
// groups of alternatives; a virtual package's alternatives are its
// providers.
func aptDepends(pkg string) ([][]string, error) {
	out, err := exec.Command("apt-cache", "depends", "--no-recommends", "--no-suggests", "--no-conflicts",
		"--no-breaks", "--no-replaces", "--no-enhances", pkg).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache depends %s: %w (run apt-get update if apt does not know it)", pkg, err)
	}
	var groups [][]string
	var cur []string
	more := false // the last dependency line began with "|": an alternative follows
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "    "): // a provider of the virtual package above
			p := strings.TrimSpace(l)
			if more {
				cur = append(cur, p)
			} else if len(groups) > 0 {
				groups[len(groups)-1] = append(groups[len(groups)-1], p)
			}
		case strings.HasPrefix(l, " "): // "  Depends: X", or " |Depends: X" before an alternative
			t := strings.TrimSpace(l)
			alt := strings.HasPrefix(t, "|")
			t = strings.TrimPrefix(t, "|")
			kind, name, ok := strings.Cut(t, ": ")
			if !ok || (kind != "Depends" && kind != "PreDepends") {
				more = false
				continue
			}
			if !strings.HasPrefix(name, "<") { // <virtual>: only its providers count
				cur = append(cur, name)
			}
			more = alt
			if !alt {
				groups = append(groups, cur)
				cur = nil
			}
		}
	}
	return groups, nil
}

// resolveDeps returns pkgs and the packages they need that installed
// lacks, sorted.
func resolveDeps(pkgs []string, installed map[string]bool) ([]string, error) {
	chosen := map[string]bool{}
	queue := append([]string(nil), pkgs...)
	for _, p := range pkgs {
		chosen[p] = true
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		groups, err := aptDepends(p)
		if err != nil {
			return nil, err
		}
	group:
		for _, g := range groups {
			if len(g) == 0 {
				continue
			}
			for _, alt := range g {
				if installed[alt] || chosen[alt] {
					continue group
				}
			}
			chosen[g[0]] = true
			queue = append(queue, g[0])
		}
	}
	names := make([]string, 0, len(chosen))
	for n := range chosen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// cachedDeb returns the candidate version of pkg from dir, downloading it
// first if dir lacks it. The file lands under a temporary name and is
// renamed once its hash matches apt's.
func cachedDeb(dir, pkg string, logf Logf) (Deb, error) {
	out, err := exec.Command("apt-get", "download", "--print-uris", pkg).CombinedOutput()
	if err != nil {
		return Deb{}, fmt.Errorf("apt-get download --print-uris %s: %w: %s (run apt-get update if apt does not know it)", pkg, err, strings.TrimSpace(string(out)))
	}
	// 'URL' FILE SIZE SHA256:HEX
	var file, sum string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 4 && strings.HasPrefix(f[0], "'") && strings.HasPrefix(f[3], "SHA256:") {
			file, sum = f[1], strings.TrimPrefix(f[3], "SHA256:")
		}
	}
	if file == "" || strings.ContainsAny(file, "/\\") {
		return Deb{}, fmt.Errorf("apt-get download --print-uris %s gave no file with a SHA-256: %s", pkg, out)
	}
	name, _ := url.PathUnescape(file)
	parts := strings.Split(strings.TrimSuffix(name, ".deb"), "_")
	if len(parts) != 3 || parts[0] != pkg {
		return Deb{}, fmt.Errorf("apt-get download --print-uris %s: unexpected file name %q", pkg, file)
	}
	d := Deb{Package: pkg, Version: parts[1], Path: filepath.Join(dir, file)}
	if got, err := fileSHA256(d.Path); err == nil && got == sum {
		return d, nil
	}

	work, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return Deb{}, err
	}
	defer os.RemoveAll(work)
	logf("downloading Debian package %s %s into %s", pkg, d.Version, dir)
	cmd := exec.Command("apt-get", "download", pkg+"="+d.Version)
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		return Deb{}, fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, out)
	}
	tmp := filepath.Join(work, file)
	got, err := fileSHA256(tmp)
	if err != nil {
		return Deb{}, fmt.Errorf("apt-get download %s left no %s: %w", pkg, file, err)
	}
	if got != sum {
		return Deb{}, fmt.Errorf("apt-get download %s: %s has SHA-256 %s; apt says %s", pkg, file, got, sum)
	}
	if err := os.Rename(tmp, d.Path); err != nil {
		return Deb{}, err
	}
	return d, nil
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
