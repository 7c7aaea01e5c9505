package fusefs

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
)

// memWritable is Writable content held in memory.
type memWritable struct {
	mu sync.Mutex
	b  []byte
}

func (m *memWritable) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := layouts.CheckRead(int64(len(m.b)), p, off)
	copy(p[:n], m.b[off:])
	return n, err
}

func (m *memWritable) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memWritable) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.b))
}

func (m *memWritable) Extents(off, n int64) ([]layouts.Extent, error) {
	return []layouts.Extent{{Off: off, Len: min(n, m.Size()-off), Kind: layouts.Data}}, nil
}

func (m *memWritable) Truncate(size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if size <= int64(len(m.b)) {
		m.b = m.b[:size]
	} else {
		m.b = append(m.b, make([]byte, size-int64(len(m.b)))...)
	}
	return nil
}

func (m *memWritable) Punch(off, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.b[off:min(off+n, int64(len(m.b)))])
	return nil
}

func (m *memWritable) Sync() error    { return nil }
func (m *memWritable) Format() string { return "raw" }
func (m *memWritable) Close() error   { return nil }

// TestKeepCacheNeverStale: opens keep the kernel's page cache of a file
// (FOPEN_KEEP_CACHE), which is right only because every change goes
// through the mount. After a write, a hole punched and a truncation made
// through one descriptor, a descriptor opened before and one opened after
// read the new bytes, never the cached old ones.
func TestKeepCacheNeverStale(t *testing.T) {
	orig := make([]byte, 1<<20)
	rand.Read(orig)
	m := &memWritable{b: bytes.Clone(orig)}
	mnt := mountTest(t, []viewfile.File{{Name: "disk.raw", Content: m, Mode: 0o600}}, Options{})
	path := filepath.Join(mnt, "disk.raw")
	open := func() *os.File {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	read := func(f *os.File, off, n int64) []byte {
		b := make([]byte, n)
		k, err := f.ReadAt(b, off)
		if int64(k) != n {
			t.Fatalf("read %d at %d: %d bytes, %v", n, off, k, err)
		}
		return b
	}
	early := open()
	if !bytes.Equal(read(early, 0, 256<<10), orig[:256<<10]) {
		t.Fatal("first read differs from the content")
	}
	w := open()
	patch := bytes.Repeat([]byte{0x5a}, 4096)
	if _, err := w.WriteAt(patch, 8192); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(orig)
	copy(want[8192:], patch)
	check := func(what string, size int64) {
		t.Helper()
		for name, f := range map[string]*os.File{"opened before": early, "opened after": open()} {
			if got := read(f, 0, size); !bytes.Equal(got, want[:size]) {
				i := 0
				for i < len(got) && got[i] == want[i] {
					i++
				}
				t.Errorf("after %s, a descriptor %s reads stale bytes from %d", what, name, i)
			}
		}
	}
	check("a write", 256<<10)
	if err := unix.Fallocate(int(w.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4096, 8192); err != nil {
		t.Fatal(err)
	}
	clear(want[4096 : 4096+8192])
	check("a punched hole", 256<<10)
	if err := w.Truncate(128 << 10); err != nil {
		t.Fatal(err)
	}
	want = want[:128<<10]
	check("a truncation", 128<<10)
	if n, _ := early.ReadAt(make([]byte, 4096), 200<<10); n != 0 {
		t.Errorf("after a truncation to 128 KiB, %d bytes read at 200 KiB", n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !bytes.Equal(m.b, want) {
		t.Error("the content does not hold what was written")
	}
}
