package harness

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Kernel is one Debian kernel image kept in the cache.
type Kernel struct {
	Arch    Arch
	Release string // uname -r, e.g. 6.1.0-56-cloud-amd64
	Image   string // host path of vmlinuz
	Config  string // host path of the kernel's config, "" if the package had none
}

// Short is the release without the flavour: "6.1.0-56".
func (k Kernel) Short() string {
	return strings.TrimSuffix(k.Release, "-"+k.Arch.orAMD64().KernelFlavour)
}

// DefaultCache is where kernels are kept between runs.
const DefaultCache = "/var/cache/kxboot-e2e"

// CacheDir is $KXBOOT_E2E_CACHE or DefaultCache.
func CacheDir() string {
	if d := os.Getenv("KXBOOT_E2E_CACHE"); d != "" {
		return d
	}
	return DefaultCache
}

// packagePattern matches the Debian 12 kernel packages of a flavour; the
// hop needs two releases that differ only in the ABI number so uname -r
// tells them apart.
func packagePattern(flavour string) string {
	return `^linux-image-(6\.1\.0-[0-9]+-` + regexp.QuoteMeta(flavour) + `)$`
}

// Kernels returns two kernels of arch, older first: A boots the guest (the
// provider's kernel), B is the one kxboot hops into. Two kernels already in
// the cache are used as they are; otherwise the two newest packages that
// apt knows are downloaded. A file lock keeps concurrent runs (tests, demo)
// from downloading at once.
func Kernels(arch Arch, logf Logf) (a, b Kernel, err error) {
	arch = arch.orAMD64()
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return a, b, fmt.Errorf("kernel cache: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return a, b, err
	}
	defer unlock()

	have, err := cached(dir, arch)
	if err != nil {
		return a, b, err
	}
	if len(have) < 2 {
		releases, err := newestPackages(arch, logf)
		if err != nil {
			return a, b, err
		}
		for _, rel := range releases {
			if _, ok := have[rel]; ok {
				continue
			}
			logf("downloading Debian package linux-image-%s into %s", rel, dir)
			if err := download(dir, rel, arch); err != nil {
				return a, b, err
			}
		}
		if have, err = cached(dir, arch); err != nil {
			return a, b, err
		}
		if len(have) < 2 {
			return a, b, fmt.Errorf("kernel cache %s holds %d kernels after download; want 2", dir, len(have))
		}
	}
	rels := make([]string, 0, len(have))
	for r := range have {
		rels = append(rels, r)
	}
	sort.Slice(rels, func(i, j int) bool { return versionLess(rels[i], rels[j]) })
	a, b = have[rels[len(rels)-2]], have[rels[len(rels)-1]]
	return a, b, nil
}

// cached lists the kernels of arch in dir by release.
func cached(dir string, arch Arch) (map[string]Kernel, error) {
	images, err := filepath.Glob(filepath.Join(dir, "vmlinuz-*-"+arch.KernelFlavour))
	if err != nil {
		return nil, err
	}
	m := map[string]Kernel{}
	for _, img := range images {
		rel := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		k := Kernel{Arch: arch, Release: rel, Image: img}
		if c := filepath.Join(dir, "config-"+rel); exists(c) {
			k.Config = c
		}
		m[rel] = k
	}
	return m, nil
}

// newestPackages asks apt for the two newest kernel releases of arch,
// refreshing apt's lists once if it knows none.
func newestPackages(arch Arch, logf Logf) ([]string, error) {
	pattern := packagePattern(arch.KernelFlavour)
	re := regexp.MustCompile(pattern)
	search := func() ([]string, error) {
		out, err := exec.Command("apt-cache", "search", "--names-only", pattern).Output()
		if err != nil {
			return nil, fmt.Errorf("apt-cache search: %w", err)
		}
		var rels []string
		for _, line := range strings.Split(string(out), "\n") {
			name, _, _ := strings.Cut(line, " ")
			if m := re.FindStringSubmatch(name); m != nil {
				rels = append(rels, m[1])
			}
		}
		return rels, nil
	}
	rels, err := search()
	if err != nil {
		return nil, err
	}
	if len(rels) < 2 {
		logf("apt-cache knows %d cloud kernels; running apt-get update", len(rels))
		if out, err := exec.Command("apt-get", "update").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get update: %w\n%s", err, out)
		}
		if rels, err = search(); err != nil {
			return nil, err
		}
	}
	if len(rels) < 2 {
		fix := ""
		if !arch.Native() {
			fix = fmt.Sprintf("; apt lists %s packages only after, as root: dpkg --add-architecture %s && apt-get update", arch.GOARCH, arch.GOARCH)
		}
		return nil, fmt.Errorf("apt-cache search found %d linux-image-6.1.0-N-%s packages; want at least 2%s", len(rels), arch.KernelFlavour, fix)
	}
	sort.Slice(rels, func(i, j int) bool { return versionLess(rels[i], rels[j]) })
	return rels[len(rels)-2:], nil
}

// download fetches linux-image-REL of arch and keeps only its
// boot/vmlinuz-REL and boot/config-REL. Files land under a temporary name
// and are renamed, so an interrupted download leaves nothing that looks
// like a kernel.
func download(dir, rel string, arch Arch) error {
	work, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	pkg := "linux-image-" + rel
	deb, err := aptDownload(work, pkg, arch)
	if err != nil {
		return err
	}
	got, err := extractDeb(deb, work, map[string]string{
		"boot/vmlinuz-" + rel: "vmlinuz-" + rel,
		"boot/config-" + rel:  "config-" + rel,
	})
	if err != nil {
		return err
	}
	if got["vmlinuz-"+rel] == "" {
		return fmt.Errorf("%s has no boot/vmlinuz-%s", deb, rel)
	}
	// The config first: the image's presence is what marks a kernel cached.
	for _, base := range []string{"config-" + rel, "vmlinuz-" + rel} {
		if tmp := got[base]; tmp != "" {
			if err := os.Rename(tmp, filepath.Join(dir, base)); err != nil {
				return err
			}
		}
	}
	return nil
}

// aptDownload fetches the package pkg of arch into dir with apt-get
// download and returns the path of its .deb.
func aptDownload(dir, pkg string, arch Arch) (string, error) {
	cmd := exec.Command("apt-get", "download", pkg+":"+arch.GOARCH)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s:%s: %w\n%s", pkg, arch.GOARCH, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*_"+arch.GOARCH+".deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s:%s left %d .deb files in %s; want 1", pkg, arch.GOARCH, len(debs), dir)
	}
	return debs[0], nil
}

// extractDeb writes the regular files of the package deb named in want
// (path in the package -> base name) into dir, and returns the host path
// of each one it found, by base name.
func extractDeb(deb, dir string, want map[string]string) (map[string]string, error) {
	got := map[string]string{}
	err := walkDeb(deb, func(name string, r io.Reader) error {
		base, ok := want[name]
		if !ok {
			return nil
		}
		got[base] = filepath.Join(dir, base)
		return writeFrom(got[base], r)
	})
	if err != nil {
		return nil, err
	}
	return got, nil
}

// walkDeb calls fn with each regular file of the package deb (its path
// without "./") and a reader of its contents.
func walkDeb(deb string, fn func(name string, r io.Reader) error) error {
	x := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	pipe, err := x.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	x.Stderr = &stderr
	if err := x.Start(); err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	tr := tar.NewReader(pipe)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err == nil && h.Typeflag == tar.TypeReg {
			err = fn(path.Clean(strings.TrimPrefix(h.Name, "./")), tr)
		}
		if err != nil {
			x.Process.Kill()
			x.Wait()
			return fmt.Errorf("reading %s: %w", deb, err)
		}
	}
	if err := x.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", deb, err, stderr.String())
	}
	return nil
}

func writeFrom(name string, r io.Reader) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// lockDir takes an exclusive flock on dir/.lock until the returned
// function is called.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kernel cache lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("kernel cache lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// versionLess orders release strings by their numbers: 6.1.0-9 < 6.1.0-10.
func versionLess(a, b string) bool {
	pa, pb := splitNumbers(a), splitNumbers(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, y := pa[i], pb[i]
		nx, ex := strconv.Atoi(x)
		ny, ey := strconv.Atoi(y)
		switch {
		case ex == nil && ey == nil && nx != ny:
			return nx < ny
		case (ex != nil || ey != nil) && x != y:
			return x < y
		}
	}
	return len(pa) < len(pb)
}

// splitNumbers cuts s into runs of digits and runs of other characters.
func splitNumbers(s string) []string {
	var parts []string
	for s != "" {
		digit := s[0] >= '0' && s[0] <= '9'
		i := 1
		for i < len(s) && (s[i] >= '0' && s[i] <= '9') == digit {
			i++
		}
		parts = append(parts, s[:i])
		s = s[i:]
	}
	return parts
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return !errors.Is(err, os.ErrNotExist)
}
