package materialize

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
)

func testFiles(t *testing.T) ([]viewfile.File, []byte) {
	t.Helper()
	a := make([]byte, 3<<20)
	rand.Read(a)
	clear(a[1<<20 : 2<<20]) // a zero run inside data: must stay a hole
	img, err := layouts.NewImage("test", 64<<20, []layouts.Segment{
		{Off: 5 << 20, Len: int64(len(a)), Kind: layouts.SegBytes, Bytes: a},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 64<<20)
	copy(want[5<<20:], a)
	return []viewfile.File{
		{Name: "vm.xml", Content: layouts.Bytes("text", []byte("<domain/>")), Disk: false},
		{Name: "vm-disk0.raw", Content: img, Disk: true},
	}, want
}

func TestRunSparseAndVerified(t *testing.T) {
	files, want := testFiles(t)
	dir := t.TempDir()
	sum, err := Run(context.Background(), dir, files, Options{Verify: true, ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "vm-disk0.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("content differs")
	}
	var st syscall.Stat_t
	syscall.Stat(filepath.Join(dir, "vm-disk0.raw"), &st)
	if alloc := st.Blocks * 512; alloc > 3<<20 {
		t.Errorf("allocated %d bytes, want at most 2 MiB + slack (sparse)", alloc)
	}
	if sum.Written != 2<<20+9 || !sum.Verified {
		t.Errorf("summary %+v", sum)
	}
	// A second run refuses to overwrite without Force.
	if _, err := Run(context.Background(), dir, files, Options{}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second run: %v, want an 'exists' error", err)
	}
	if _, err := Run(context.Background(), dir, files, Options{Force: true}); err != nil {
		t.Errorf("forced run: %v", err)
	}
}

// failing is a disk whose reads fail past 6 MiB.
type failing struct{ layouts.Disk }

func (f failing) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > 6<<20 {
		return 0, syscall.EIO
	}
	return f.Disk.ReadAt(p, off)
}

func TestRunFailureLeavesNoFinalFile(t *testing.T) {
	files, _ := testFiles(t)
	files[1].Content = failing{files[1].Content}
	dir := t.TempDir()
	if _, err := Run(context.Background(), dir, files, Options{ChunkSize: 1 << 20}); err == nil {
		t.Fatal("want an error")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestRunCancelled(t *testing.T) {
	files, _ := testFiles(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	_, err := Run(ctx, dir, files, Options{})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("got %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

// TestRunAfterInterruptedRename: a run killed while renaming its files into
// place leaves a journal; the next run replaces those files without Force,
// and removes the journal.
func TestRunAfterInterruptedRename(t *testing.T) {
	files, want := testFiles(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vm-disk0.raw"), want, 0o644)
	os.WriteFile(filepath.Join(dir, journalName), []byte("vm-disk0.raw\nvm.xml\n"), 0o644)
	if _, err := Run(context.Background(), dir, files, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, journalName)); err == nil {
		t.Error("journal left behind")
	}
	// Without a journal, an existing file is not replaced.
	if _, err := Run(context.Background(), dir, files, Options{}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("got %v, want an 'exists' error", err)
	}
}

// TestRunProtectsSources checks that no run writes over a source file,
// Force or not: not under a final name, a temporary name, through a
// symlinked DESTDIR or a hard link; and that the source keeps its bytes.
func TestRunProtectsSources(t *testing.T) {
	files, _ := testFiles(t)
	for _, c := range []struct {
		name string
		// setup makes the source files in src and returns DESTDIR and
		// the source that must be named.
		setup func(t *testing.T, src string) (dest, victim string)
	}{
		{"final name", func(t *testing.T, src string) (string, string) {
			return src, filepath.Join(src, "vm.xml")
		}},
		{"temporary name", func(t *testing.T, src string) (string, string) {
			return src, filepath.Join(src, ".vm-disk0.raw"+partialSuffix)
		}},
		{"symlinked DESTDIR", func(t *testing.T, src string) (string, string) {
			link := filepath.Join(t.TempDir(), "dest")
			if err := os.Symlink(src, link); err != nil {
				t.Fatal(err)
			}
			return link, filepath.Join(src, "vm-disk0.raw")
		}},
		{"hard link", func(t *testing.T, src string) (string, string) {
			dest := t.TempDir()
			if err := os.Link(filepath.Join(src, "vm-disk0.raw"), filepath.Join(dest, "vm.xml")); err != nil {
				t.Fatal(err)
			}
			return dest, filepath.Join(src, "vm-disk0.raw")
		}},
		{"temporary name a symlink to the source", func(t *testing.T, src string) (string, string) {
			dest := t.TempDir()
			if err := os.Symlink(filepath.Join(src, "vm.xml"), filepath.Join(dest, ".vm.xml"+partialSuffix)); err != nil {
				t.Fatal(err)
			}
			return dest, filepath.Join(src, "vm.xml")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := t.TempDir()
			for _, n := range []string{"vm.xml", "vm-disk0.raw", ".vm-disk0.raw" + partialSuffix} {
				if err := os.WriteFile(filepath.Join(src, n), []byte("source "+n), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			dest, victim := c.setup(t, src)
			protected := &layouts.Sources{}
			if err := protected.Add(victim); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(victim)
			for _, force := range []bool{false, true} {
				_, err := Run(context.Background(), dest, files, Options{Force: force, Protected: protected})
				if err == nil || !strings.Contains(err.Error(), "would replace the source file "+victim) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("force=%v: %v, want one line naming %s", force, err, victim)
				}
				if after, _ := os.ReadFile(victim); !bytes.Equal(after, before) {
					t.Fatalf("force=%v: %s changed", force, victim)
				}
			}
		})
	}
	// Beside the source, under other names, a run goes ahead.
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "old.vmx"), []byte("source"), 0o644)
	protected := &layouts.Sources{}
	protected.Add(filepath.Join(src, "old.vmx"))
	if _, err := Run(context.Background(), src, files, Options{Protected: protected}); err != nil {
		t.Fatalf("writing beside the source: %v", err)
	}
}
