package materialize

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
)

// inflight is a disk of data that reads as zeros and records the largest
// sum of buffers its concurrent ReadAt calls were given.
type inflight struct {
	size     int64
	mu       sync.Mutex
	now, max int64
}

func (d *inflight) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	d.now += int64(len(p))
	d.max = max(d.max, d.now)
	d.mu.Unlock()
	clear(p)
	time.Sleep(2 * time.Millisecond) // let the workers overlap
	d.mu.Lock()
	d.now -= int64(len(p))
	d.mu.Unlock()
	n, eof := layouts.CheckRead(d.size, p, off)
	return n, eof
}
func (d *inflight) Size() int64    { return d.size }
func (d *inflight) Format() string { return "test" }
func (d *inflight) Close() error   { return nil }
func (d *inflight) Extents(off, n int64) ([]layouts.Extent, error) {
	off, n, ok := layouts.Clip(d.size, off, n)
	if !ok {
		return nil, nil
	}
	return []layouts.Extent{{Off: off, Len: n, Kind: layouts.Data}}, nil
}

// TestRunBuffersBounded: however many workers, the copy buffers in use at
// once stay within MaxBufferBytes.
func TestRunBuffersBounded(t *testing.T) {
	for _, tc := range []struct {
		workers int
		chunk   int64
	}{
		{MaxWorkers, 0},
		{MaxWorkers, MaxChunkSize},
		{8, MaxChunkSize},
		{1, 0},
	} {
		d := &inflight{size: 512 << 20}
		files := []viewfile.File{{Name: "disk.raw", Content: d, Disk: true}}
		opts := Options{Workers: tc.workers, ChunkSize: tc.chunk, SkipSpaceCheck: true}
		if _, err := Run(context.Background(), t.TempDir(), files, opts); err != nil {
			t.Fatalf("%d workers, chunk %d: %v", tc.workers, tc.chunk, err)
		}
		if d.max > MaxBufferBytes {
			t.Errorf("%d workers, chunk %d: %d bytes of buffers in use at once, more than %d", tc.workers, tc.chunk, d.max, MaxBufferBytes)
		}
		if d.max == 0 {
			t.Errorf("%d workers, chunk %d: nothing read", tc.workers, tc.chunk)
		}
	}
}

// TestRunRefusesUnboundedOptions: out-of-range workers or chunk sizes are
// refused, not clamped or taken as they come.
func TestRunRefusesUnboundedOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Workers: 100000}, "100000 workers: want 1 to 64"},
		{Options{Workers: -3}, "-3 workers: want 1 to 64"},
		{Options{ChunkSize: 1 << 40}, "chunk size 1099511627776"},
		{Options{ChunkSize: -1}, "chunk size -1"},
		{Options{ChunkSize: 1000}, "chunk size 1000"},
	} {
		files := []viewfile.File{{Name: "disk.raw", Content: &inflight{size: 1 << 20}, Disk: true}}
		dir := t.TempDir()
		_, err := Run(context.Background(), dir, files, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.opts, err, tc.want)
		}
	}
}
