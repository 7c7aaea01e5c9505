package vmdk

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// TestMapFile: every range MapFile reports holds the same bytes as ReadAt,
// for each subformat with plain grains or flat extents; compressed grains
// never map.
func TestMapFile(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	makeRaw(t, src, 9<<20+512, 7)
	for _, tc := range []struct {
		sub      string
		wantMaps bool
	}{
		{"twoGbMaxExtentSparse", true},
		{"streamOptimized", false},
	} {
		t.Run(tc.sub, func(t *testing.T) {
			img := filepath.Join(dir, tc.sub+".vmdk")
			qemuImg(t, "convert", "-O", "vmdk", "-o", "subformat="+tc.sub, src, img)
			d := openPath(t, img)
			defer d.Close()
			size := d.Size()
			var mapped int64
			for _, step := range []int64{4096, 65536 + 512, 1 << 20} {
				for off := int64(0); off < size; off += step {
					n := min(step, size-off)
					r, ok := layouts.MapFile(d, off, n)
					if !ok {
						continue
					}
					mapped += r.Len
					want := make([]byte, r.Len)
					if _, err := d.ReadAt(want, off); err != nil && err != io.EOF {
						t.Fatal(err)
					}
					got := make([]byte, r.Len)
					if _, err := r.File.ReadAt(got, r.Off); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("offset %d: mapped bytes differ", off)
					}
				}
			}
			if tc.wantMaps != (mapped > 0) {
				t.Errorf("mapped %d bytes; want mapping %v", mapped, tc.wantMaps)
			}
		})
	}
}
