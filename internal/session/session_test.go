package session

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vmfs/vmfs/internal/overlay"
	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/probe"
)

// bareDisk writes a sparse raw disk with some data and returns its path.
func bareDisk(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bare.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(8 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("session bytes"), 1<<20); err != nil {
		t.Fatal(err)
	}
	return p
}

// contents reads every file whole.
func contents(t *testing.T, files []viewfile.File) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range files {
		b, err := io.ReadAll(io.NewSectionReader(f.Content, 0, f.Content.Size()))
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		out[f.Name] = b
	}
	return out
}

// openOpens counts, by path, the disks opened through env.
type openCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *openCounter) env() *layouts.Env {
	c.n = map[string]int{}
	return &layouts.Env{OpenDisk: func(p string, e *layouts.Env) (layouts.Disk, error) {
		abs, _ := filepath.Abs(p)
		c.mu.Lock()
		c.n[abs]++
		c.mu.Unlock()
		return probe.Open(p, e)
	}}
}

// TestBareDiskOpenedOnce: a bare disk is opened once per session (to make
// its machine, then served as it is), for mount, materialize and inspect.
func TestBareDiskOpenedOnce(t *testing.T) {
	src := bareDisk(t)
	var c openCounter
	s, err := Open(src, Options{To: "libvirt", Format: "qcow2", Dir: "/mnt/view", Env: c.env()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := c.n[src]; got != 1 {
		t.Errorf("Open opened %s %d times, want 1", src, got)
	}
	if got := len(s.View.Disks); got != 1 {
		t.Fatalf("%d disks", got)
	}
	if _, err := Inspect(src, c.env(), ""); err != nil {
		t.Fatal(err)
	}
	if got := c.n[src]; got != 1 {
		t.Errorf("Inspect opened %s %d times, want 1", src, got)
	}
}

// TestMountAndMaterializeSeeTheSameFiles: the files a mount serves and
// those materialize writes are the same list: same names, same bytes,
// the disks' writes taken from the one overlay, wrapped once.
func TestMountAndMaterializeSeeTheSameFiles(t *testing.T) {
	src := bareDisk(t)
	ovDir := filepath.Join(t.TempDir(), "overlay")
	for _, to := range []string{"libvirt", "ovf"} {
		t.Run(to, func(t *testing.T) {
			opts := Options{To: to, Format: "raw", Dir: "/mnt/view"}
			dir := filepath.Join(ovDir, to)

			// The files without an overlay.
			plain, err := Open(src, opts)
			if err != nil {
				t.Fatal(err)
			}
			before := contents(t, plain.Files())
			plain.Close()

			// The mount writes through its files.
			m, err := Open(src, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			if _, err := m.UseOverlay(OverlayOptions{Dir: dir}); err != nil {
				t.Fatal(err)
			}
			if _, err := m.UseOverlay(OverlayOptions{Dir: dir}); err == nil {
				t.Error("a second UseOverlay wrapped the files again")
			}
			mfiles := m.Files()
			for _, f := range mfiles {
				if !f.Disk {
					continue
				}
				b, _ := io.ReadAll(io.NewSectionReader(f.Content, 0, f.Content.Size()))
				if !bytes.Equal(b, before[f.Name]) {
					t.Errorf("%s: the overlay changed bytes before any write", f.Name)
				}
			}
			var disk string
			for _, f := range mfiles {
				if _, ok := f.Content.(*overlay.File); !ok {
					t.Errorf("%s is served as %T, not from the overlay", f.Name, f.Content)
				}
				if f.Disk {
					disk = f.Name
					w := f.Content.(*overlay.File)
					if _, err := w.WriteAt([]byte("written through the mount"), 4096); err != nil {
						t.Fatal(err)
					}
				}
			}
			served := contents(t, m.Files())
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}

			// Materialize reads the same overlay.
			w, err := Open(src, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			if _, err := w.UseOverlay(OverlayOptions{Dir: dir, Existing: true, DisksOnly: true}); err != nil {
				t.Fatal(err)
			}
			written := contents(t, w.Files())
			if !slices.Equal(viewfile.Names(w.Files()), viewfile.Names(mfiles)) {
				t.Errorf("materialize names %q, the mount %q", viewfile.Names(w.Files()), viewfile.Names(mfiles))
			}
			if !equalContents(written, served) {
				t.Error("materialize and the mount differ in bytes")
			}
			if !bytes.Contains(written[disk], []byte("written through the mount")) {
				t.Errorf("%s lacks the mount's write", disk)
			}
			if to == "ovf" {
				// The manifest hashes the disk as served, once wrapped.
				sum := sha256.Sum256(written[disk])
				mf := string(written["bare.mf"])
				if !strings.Contains(mf, "SHA256("+disk+")= "+hex.EncodeToString(sum[:])) {
					t.Errorf("manifest does not hash the served %s:\n%s", disk, mf)
				}
			}
		})
	}
}

func equalContents(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestUseOverlayExisting: materialize's overlay must exist: none at the
// default place is ErrNoOverlay, a named one missing is an error naming
// it; an overlay made for other files is refused.
func TestUseOverlayExisting(t *testing.T) {
	src := bareDisk(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	s, err := Open(src, Options{To: "libvirt", Format: "raw", Dir: "/mnt/view"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.UseOverlay(OverlayOptions{Existing: true, DisksOnly: true}); !errors.Is(err, ErrNoOverlay) {
		t.Errorf("default place: %v, want ErrNoOverlay", err)
	}
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := s.UseOverlay(OverlayOptions{Dir: missing, Existing: true}); err == nil || err.Error() != missing+": overlay not found" {
		t.Errorf("named: %v", err)
	}

	// An overlay written through a qcow2 view holds a file the raw view
	// lacks.
	dir := filepath.Join(t.TempDir(), "ov")
	q, err := Open(src, Options{To: "libvirt", Format: "qcow2", Dir: "/mnt/view"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.UseOverlay(OverlayOptions{Dir: dir}); err != nil {
		q.Close()
		t.Fatal(err)
	}
	for _, f := range q.Files() {
		if f.Disk {
			f.Content.(*overlay.File).WriteAt([]byte("x"), 0)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = s.UseOverlay(OverlayOptions{Dir: dir, Existing: true, DisksOnly: true})
	var fe *ForeignError
	if !errors.As(err, &fe) || !slices.Equal(fe.Names, []string{"bare-disk0.qcow2"}) {
		t.Errorf("foreign overlay: %v", err)
	}
}

// TestBareDiskUnderThePolicy: the bare disk is opened once, under the
// session's policy: a backing file in an --allow-path directory is
// reached, and refused without it.
func TestBareDiskUnderThePolicy(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	root := t.TempDir()
	base, top := filepath.Join(root, "base"), filepath.Join(root, "top")
	os.Mkdir(base, 0o755)
	os.Mkdir(top, 0o755)
	if err := os.WriteFile(filepath.Join(base, "base.raw"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(top, "top.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", "../base/base.raw", "-F", "raw", src).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	if s, err := Open(src, Options{To: "libvirt", Format: "raw", Dir: "/mnt/view"}); err == nil {
		s.Close()
		t.Fatal("a backing file outside the disk's directory was reached without --allow-path")
	} else if !errors.Is(err, layouts.ErrRefused) {
		t.Fatalf("without --allow-path: %v, want a refusal", err)
	}
	s, err := Open(src, Options{To: "libvirt", Format: "raw", Dir: "/mnt/view", Env: &layouts.Env{AllowDirs: []string{base}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.View.Sources.Paths(); !slices.Contains(got, filepath.Join(base, "base.raw")) {
		t.Errorf("sources %q lack the backing file", got)
	}
}

// TestOverlayOutsideTheSource: an overlay directory that holds a source
// file (named directly or through a symlink) is refused before anything is
// created in it; one elsewhere is used.
func TestOverlayOutsideTheSource(t *testing.T) {
	src := bareDisk(t)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Dir(src), link); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"source folder": filepath.Dir(src), "symlink to it": link} {
		t.Run(name, func(t *testing.T) {
			s, err := Open(src, Options{To: "libvirt", Format: "qcow2", Dir: "/mnt/view"})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = s.UseOverlay(OverlayOptions{Dir: dir})
			if !errors.Is(err, layouts.ErrRefused) || !strings.Contains(err.Error(), src) {
				t.Fatalf("UseOverlay(%s) = %v, want a refusal naming %s", dir, err, src)
			}
			ents, _ := os.ReadDir(filepath.Dir(src))
			if len(ents) != 1 {
				t.Errorf("the source folder holds %d entries after the refusal, want only the disk", len(ents))
			}
		})
	}
	s, err := Open(src, Options{To: "libvirt", Format: "qcow2", Dir: "/mnt/view"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.UseOverlay(OverlayOptions{Dir: t.TempDir()}); err != nil {
		t.Fatalf("an overlay outside the source: %v", err)
	}
}
