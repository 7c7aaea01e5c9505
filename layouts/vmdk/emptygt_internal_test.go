package vmdk

import (
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// countingFile counts the reads of a source file.
type countingFile struct {
	layouts.File
	reads atomic.Int64
}

func (c *countingFile) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	return c.File.ReadAt(p, off)
}

// TestEmptyGrainTables: the grain tables qemu allocates up front for a big
// sparse disk, all empty, are read once, take nothing of the table cache,
// and a second walk of the disk reads nothing.
func TestEmptyGrainTables(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	p := filepath.Join(t.TempDir(), "big.vmdk")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", p, "64G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v %s", err, out)
	}
	f, err := layouts.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cf := &countingFile{File: f}
	hdr := make([]byte, sector)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		t.Fatal(err)
	}
	c := newCaches()
	m, _, err := openKDMV(cf, hdr, 0, c)
	if err != nil {
		t.Fatal(err)
	}
	walk := func() int64 {
		before := cf.reads.Load()
		var b layouts.Builder
		if err := m.extents(&b, 0, 0, m.size); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Extents() {
			if e.Kind != layouts.Hole {
				t.Fatalf("extent %+v of an empty disk", e)
			}
		}
		return cf.reads.Load() - before
	}
	if n := walk(); n == 0 {
		t.Fatal("the first walk read no grain table")
	}
	var used int64
	for i := range c.gts.shards {
		used += c.gts.shards[i].used
	}
	if used != 0 {
		t.Errorf("empty grain tables take %d bytes of the table cache", used)
	}
	if n := walk(); n != 0 {
		t.Errorf("the second walk read %d times", n)
	}
}
