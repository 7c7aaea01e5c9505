package vhdx

import (
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/internal/readtest"
)

// TestMapFile checks that the file ranges MapFile gives hold the disk's
// bytes.
func TestMapFile(t *testing.T) {
	cases := []struct {
		name string
		size int64
		opts string
	}{
		{"dynamic-1M", 5_000_000 + 512, "subformat=dynamic,block_size=1M"},
		{"fixed-1M", 3_000_000 + 512, "subformat=fixed,block_size=1M,log_size=1M"},
	}
	open := func(path string) (layouts.Disk, error) { return openPath(path, testEnv()) }
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			readtest.MapFileConverted(t, c.size, int64(i+40), "vhdx", c.opts, open)
		})
	}
}
