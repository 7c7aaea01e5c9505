package vdi

import (
	"io"
	"testing"

	"github.com/vmfs/vmfs/layouts/internal/readtest"
)

// TestMapFile checks that the file ranges MapFile gives hold the disk's
// bytes, for odd piece sizes.
func TestMapFile(t *testing.T) {
	cases := []struct {
		name  string
		build builder
	}{
		{"static", convert(3_000_000+512, 42, "-o", "static=on")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := openPath(t, c.build(t, t.TempDir()))
			got := make([]byte, d.Size())
			if n, err := d.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt = %d, %v", n, err)
			}
			for _, step := range []int64{4096, 128<<10 + 512, 3 << 20} {
				if readtest.CheckMapFile(t, d, got, step) == 0 {
					t.Fatalf("step %d: nothing mapped", step)
				}
			}
		})
	}
}
