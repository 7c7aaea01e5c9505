package qcow2

import (
	"os"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/internal/readtest"
)

// TestMapFile checks that the file ranges MapFile gives hold the disk's
// bytes, and that compressed clusters are never mapped.
func TestMapFile(t *testing.T) {
	cases := []struct {
		name string
		size int64
		opts string
	}{
		{"v2-4k", 3_000_000 + 512, "compat=0.10,cluster_size=4096"},
		{"extended-l2", 4_000_000 + 512, "compat=1.1,extended_l2=on,cluster_size=128k"},
	}
	open := func(path string) (layouts.Disk, error) { return testOpen(path, testEnv()) }
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			readtest.MapFileConverted(t, c.size, int64(i+60), "qcow2", c.opts, open)
		})
	}
	t.Run("compressed", func(t *testing.T) {
		dir := t.TempDir()
		raw := dir + "/src.raw"
		// Text compresses: every stored cluster is a compressed one.
		data := []byte(strings.Repeat("compressible text of a qcow2 cluster\n", 2_000_000/37))
		if err := os.WriteFile(raw, data, 0o644); err != nil {
			t.Fatal(err)
		}
		img := dir + "/c.qcow2"
		readtest.QemuImg(t, "convert", "-c", "-f", "raw", "-O", "qcow2", raw, img)
		d, err := testOpen(img, testEnv())
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		exts, err := d.Extents(0, d.Size())
		if err != nil || len(exts) == 0 || exts[0].Kind != layouts.Data {
			t.Fatalf("extents %v, %v: want data", exts, err)
		}
		for off := int64(0); off < d.Size(); off += 64 << 10 {
			if r, ok := layouts.MapFile(d, off, 64<<10); ok {
				t.Fatalf("compressed cluster at %d mapped to %+v", off, r)
			}
		}
	})
}
