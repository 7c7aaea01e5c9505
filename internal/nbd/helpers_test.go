package nbd_test

import (
	"bytes"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// memExport is an export in memory: data, then a hole at the end half.
type memExport struct {
	name string
	data []byte
}

func (m memExport) Name() string { return m.name }
func (m memExport) Size() int64  { return int64(len(m.data)) }
func (m memExport) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	return bytes.NewReader(m.data).ReadAt(p, off)
}
func (m memExport) Extents(off, n int64) ([]layouts.Extent, error) {
	var b layouts.Builder
	half := int64(len(m.data)) / 2
	end := min(off+n, int64(len(m.data)))
	if off < half {
		b.Add(off, min(end, half)-off, layouts.Data)
	}
	if end > half {
		s := max(off, half)
		b.Add(s, end-s, layouts.Hole)
	}
	return b.Extents(), nil
}

type syscallStat struct{}

// used is the bytes a file occupies on disk.
func (syscallStat) used(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}
