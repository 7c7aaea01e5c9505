package fusefs

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/overlay"
	"github.com/vmfs/vmfs/internal/viewfile"
)

// TestZeroSplice reads a sparse image with large requests, which splice
// its holes from the zero file, before and after writes land in a hole
// and in a zero run: the bytes must follow the writes, not the map the
// source had.
func TestZeroSplice(t *testing.T) {
	// Data at [1 MiB, 4 MiB), which holds whole read requests, and at
	// [10 MiB, +4 KiB); holes elsewhere.
	img, want := sparseImageWith(t, 3<<20)
	ov, err := overlay.Open(t.TempDir(), overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ov.Close() }) // after the unmount
	of, err := ov.File("d.raw", img)
	if err != nil {
		t.Fatal(err)
	}
	dir := mountTest(t, []viewfile.File{{Name: "d.raw", Content: of, Mode: 0o600}}, Options{})
	path := filepath.Join(dir, "d.raw")
	check := func(step string) {
		t.Helper()
		for _, size := range []int{maxRequest, 64 << 10} {
			checkReads(t, path, want, size, step)
		}
	}
	check("before writes")
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{5 << 20, 12<<20 + 777} {
		b := make([]byte, 3000)
		rand.Read(b)
		if _, err := f.WriteAt(b, int64(off)); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], b)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	check("after writes")
}

// checkReads reads path with requests of size bytes, the mount's page
// cache dropped first, and compares with want.
func checkReads(t *testing.T, path string, want []byte, size int, step string) {
	t.Helper()
	{
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// Drop the mount's cached pages, so the reads reach vmfs.
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		buf := make([]byte, size)
		for off := 0; off < len(want); {
			n, err := f.ReadAt(buf, int64(off))
			copy(got[off:], buf[:n])
			off += n
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s, %d-byte reads: read at %d: %v", step, size, off, err)
			}
		}
		if i := firstDiffAt(got, want); i >= 0 {
			t.Fatalf("%s, %d-byte reads: byte %d is %#x, want %#x", step, size, i, got[i], want[i])
		}
	}
}

func firstDiffAt(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// TestZeroFileGoesWithMount: each mount has its own zero file, and it is
// closed once the mount stops serving (none stays open in the process).
func TestZeroFileGoesWithMount(t *testing.T) {
	img, want := sparseImageWith(t, 3<<20)
	before := zeroFiles(t)
	for i := 0; i < 2; i++ {
		if os.Geteuid() != 0 {
			t.Skip("mounting with allow_other needs root")
		}
		dir := t.TempDir()
		srv, err := Mount(dir, []viewfile.File{{Name: "d.raw", Content: img, Mode: 0o600}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := zeroFiles(t); got != before+1 {
			srv.Unmount()
			t.Fatalf("mount %d: %d zero files open, want %d", i, got, before+1)
		}
		checkReads(t, filepath.Join(dir, "d.raw"), want, maxRequest, "mounted")
		if err := srv.Unmount(); err != nil {
			t.Fatal(err)
		}
		srv.Wait()
		var got int
		for try := 0; try < 100; try++ { // closed by a goroutine once Wait returns
			if got = zeroFiles(t); got == before {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got != before {
			t.Fatalf("after unmount %d: %d zero files open, want %d", i, got, before)
		}
	}
}

// zeroFiles counts this process's open zero files.
func zeroFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(l, "/memfd:vmfs-zeros") {
			n++
		}
	}
	return n
}
