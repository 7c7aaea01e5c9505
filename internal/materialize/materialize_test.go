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

	"github.com/vmfs/vmfs/layouts"
)

func testFiles(t *testing.T) ([]File, []byte) {
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
	return []File{
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
