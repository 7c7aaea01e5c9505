package vmdk

import (
	"bytes"
	"fmt"
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

// TestHoleGrainTables: the tables of a sparse disk that lie in holes of
// its file are known empty from the open, without reading them, and the
// one table written still maps its grains.
func TestHoleGrainTables(t *testing.T) {
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(tool + " not installed")
		}
	}
	p := filepath.Join(t.TempDir(), "big.vmdk")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", p, "64G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v %s", err, out)
	}
	const dataOff, dataLen = 10 << 30, 1 << 20
	if out, err := exec.Command("qemu-io", "-f", "vmdk", "-c", fmt.Sprintf("write -P 0x5a %d %d", dataOff, dataLen), p).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v %s", err, out)
	}
	f, err := layouts.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, sector)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		t.Fatal(err)
	}
	m, _, err := openKDMV(f, hdr, 0, newCaches())
	if err != nil {
		t.Fatal(err)
	}
	var stored, unknown int
	for i, o := range m.gd {
		if o == 0 {
			continue
		}
		stored++
		if !m.isEmpty(int64(i)) {
			unknown++
		}
	}
	// The file system may hold a few tables' worth of the written
	// table's neighbourhood as data: a page, never most of them.
	if stored < 1000 || unknown == 0 || unknown > 8 {
		t.Errorf("%d stored grain tables, %d not known empty after the open; want 1 to 8", stored, unknown)
	}
	var b layouts.Builder
	if err := m.extents(&b, 0, 0, m.size); err != nil {
		t.Fatal(err)
	}
	var data []layouts.Extent
	for _, e := range b.Extents() {
		if e.Kind == layouts.Data {
			data = append(data, e)
		}
	}
	if len(data) != 1 || data[0].Off != dataOff || data[0].Len != dataLen {
		t.Errorf("data extents %+v, want one at %d of %d bytes", data, dataOff, dataLen)
	}
	buf := make([]byte, 4096)
	if err := m.readAt(buf, dataOff+dataLen-4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, bytes.Repeat([]byte{0x5a}, 4096)) {
		t.Error("the written grain does not read back")
	}
}
