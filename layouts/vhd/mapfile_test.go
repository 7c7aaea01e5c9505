package vhd

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
		{"dynamic", 5_000_000 + 512, "subformat=dynamic"},
		{"fixed", 3_000_000 + 512, "subformat=fixed"},
	}
	open := func(path string) (layouts.Disk, error) { return openPath(path, testEnv()) }
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			readtest.MapFileConverted(t, c.size, int64(i+40), "vpc", c.opts, open)
		})
	}
}
