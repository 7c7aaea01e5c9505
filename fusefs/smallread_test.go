package fusefs

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// TestReadReplyKinds: a read of a plain file range below minSplice is
// answered with the bytes as one vector (one writev, no splice attempt),
// a larger one by splice; both carry the source's bytes, and a small read
// the source can no longer fill fails with EIO rather than coming back
// short.
func TestReadReplyKinds(t *testing.T) {
	want := make([]byte, 1<<20)
	rand.Read(want)
	p, d := rawSource(t, want)
	f := &file{name: "d.raw", content: d, opts: &Options{Logger: discardLogger()}, splice: &spliceCache{}}
	type vector interface {
		Slices() ([][]byte, fuse.Status)
	}
	type fd interface{ Seekable() (uintptr, int64, int) }
	for _, tc := range []struct {
		off, n  int64
		spliced bool
	}{
		{8192, 4096, false},
		{12345, 100, false},
		{65536, minSplice - 512, false},
		{65536, minSplice, true},
		{0, 256 << 10, true},
	} {
		dest := make([]byte, tc.n)
		res, errno := f.Read(context.Background(), nil, dest, tc.off)
		if errno != 0 {
			t.Fatalf("read %d at %d: %v", tc.n, tc.off, errno)
		}
		switch r := res.(type) {
		case vector:
			if tc.spliced {
				t.Errorf("read %d at %d: bytes, want a splice", tc.n, tc.off)
			}
			v, _ := r.Slices()
			if len(v) != 1 || !bytes.Equal(v[0], want[tc.off:tc.off+tc.n]) {
				t.Errorf("read %d at %d: wrong bytes", tc.n, tc.off)
			}
		case fd:
			if !tc.spliced {
				t.Errorf("read %d at %d: spliced, want bytes in one vector", tc.n, tc.off)
			}
			if _, off, n := r.Seekable(); off != tc.off || int64(n) != tc.n {
				t.Errorf("read %d at %d: splices %d at %d", tc.n, tc.off, n, off)
			}
		default:
			t.Errorf("read %d at %d: reply of type %T", tc.n, tc.off, res)
		}
	}
	// The source shrinks under the view: the range is still mapped, the
	// pread comes back short, and the read fails instead.
	if err := os.Truncate(p, 4096); err != nil {
		t.Fatal(err)
	}
	if _, errno := f.Read(context.Background(), nil, make([]byte, 4096), 8192); errno != syscall.EIO {
		t.Errorf("small read past the shrunk source's end: %v, want EIO", errno)
	}
}
