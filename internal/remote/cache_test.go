package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

// memObject is an Object over bytes that counts requests and can fail.
type memObject struct {
	data     []byte
	requests atomic.Int64
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	// fail, when it returns an error, fails the request.
	fail func(n int64) error
	slow time.Duration
}

func (m *memObject) Name() string { return "mem://object" }
func (m *memObject) Size() int64  { return int64(len(m.data)) }
func (m *memObject) ReadRange(ctx context.Context, p []byte, off int64) (int, error) {
	n := m.requests.Add(1)
	cur := m.inFlight.Add(1)
	defer m.inFlight.Add(-1)
	for {
		old := m.maxSeen.Load()
		if cur <= old || m.maxSeen.CompareAndSwap(old, cur) {
			break
		}
	}
	if m.slow > 0 {
		time.Sleep(m.slow)
	}
	if m.fail != nil {
		if err := m.fail(n); err != nil {
			return 0, err
		}
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	k := copy(p, m.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func pattern(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestCachedReaderContract: parallel-safe ReadAt with io.ReaderAt's EOF
// rules, over blocks that do not divide the file.
func TestCachedReaderContract(t *testing.T) {
	data := pattern(1<<20 + 12345)
	c := NewCached(&memObject{data: data}, CacheOptions{BlockSize: 64 << 10, CacheSize: 256 << 10})
	t.Cleanup(func() { c.Close() })
	if err := iotest.TestReader(io.NewSectionReader(c, 0, c.Size()), data); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for range 200 {
				off := r.Int64N(int64(len(data)))
				n := r.IntN(200 << 10)
				buf := make([]byte, n)
				k, err := c.ReadAt(buf, off)
				want := min(n, len(data)-int(off))
				if k != want || !bytes.Equal(buf[:k], data[off:off+int64(k)]) {
					t.Errorf("ReadAt(%d, %d) = %d, %v: wrong bytes", n, off, k, err)
					return
				}
				if k < n && err != io.EOF {
					t.Errorf("short read at %d without io.EOF: %v", off, err)
				}
			}
		}()
	}
	wg.Wait()
}

// TestCachedBounded: reading a file many times the cache's size keeps
// at most the cache's blocks, and never more requests in flight than
// the limiter allows.
func TestCachedBounded(t *testing.T) {
	data := pattern(64 << 20)
	obj := &memObject{data: data}
	const bs, cache = 256 << 10, 4 << 20
	c := NewCached(obj, CacheOptions{BlockSize: bs, CacheSize: cache, ReadAhead: 1 << 20, Limiter: NewLimiter(3)})
	t.Cleanup(func() { c.Close() })
	buf := make([]byte, 128<<10)
	for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
		if _, err := c.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
			t.Fatalf("wrong bytes at %d", off)
		}
		c.mu.Lock()
		// Every buffer a cached block keeps alive, once.
		bufs := map[*buffer]bool{}
		held := int64(0)
		for _, b := range c.blocks {
			if b.buf != nil && !bufs[b.buf] {
				bufs[b.buf] = true
				held += b.buf.size
			}
		}
		c.mu.Unlock()
		if held > cache {
			t.Fatalf("at %d the cache holds %d bytes, more than its %d", off, held, cache)
		}
	}
	if m := obj.maxSeen.Load(); m > 3 {
		t.Errorf("%d requests in flight at once, limit 3", m)
	}
	st := c.Stats().Snapshot()
	if st.BytesFetched != int64(len(data)) {
		t.Errorf("fetched %d bytes of a %d-byte file read once", st.BytesFetched, len(data))
	}
	// Sequential reads fetch whole chunks, read ahead.
	if chunks := int64(len(data)) / DefaultChunkSize; st.Requests > chunks+4 {
		t.Errorf("%d requests for %d chunks read in sequence", st.Requests, chunks)
	}
}

// TestCachedRepeatedReadsHit: the same random 4 KiB reads, repeated, are
// served from the cache without a request.
func TestCachedRepeatedReadsHit(t *testing.T) {
	data := pattern(8 << 20)
	obj := &memObject{data: data}
	c := NewCached(obj, CacheOptions{BlockSize: 64 << 10, CacheSize: 16 << 20, ReadAhead: -1})
	t.Cleanup(func() { c.Close() })
	r := rand.New(rand.NewPCG(3, 4))
	offs := make([]int64, 100)
	for i := range offs {
		offs[i] = r.Int64N(int64(len(data))-4096) &^ 4095
	}
	buf := make([]byte, 4096)
	for _, o := range offs {
		c.ReadAt(buf, o)
	}
	before := obj.requests.Load()
	for _, o := range offs {
		if _, err := c.ReadAt(buf, o); err != nil || !bytes.Equal(buf, data[o:o+4096]) {
			t.Fatalf("read at %d: %v", o, err)
		}
	}
	if after := obj.requests.Load(); after != before {
		t.Errorf("repeated reads made %d requests", after-before)
	}
}

// TestCachedRetries: transient errors are retried and the bytes are
// right; an error that is not transient, or transient errors past the
// attempts, give EIO, and a later read asks again.
func TestCachedRetries(t *testing.T) {
	data := pattern(1 << 20)
	for _, tc := range []struct {
		name    string
		fail    func(n int64) error
		wantEIO bool
		retries int64
	}{
		{"two transient", func(n int64) error {
			if n <= 2 {
				return Transient(errors.New("connection reset"))
			}
			return nil
		}, false, 2},
		{"always transient", func(int64) error { return Transient(errors.New("503")) }, true, 2},
		{"not transient", func(int64) error { return errors.New("403 Forbidden") }, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &memObject{data: data, fail: tc.fail}
			c := NewCached(obj, CacheOptions{BlockSize: 64 << 10, Attempts: 3, Backoff: time.Millisecond, ReadAhead: -1})
			t.Cleanup(func() { c.Close() })
			buf := make([]byte, 4096)
			_, err := c.ReadAt(buf, 100)
			if tc.wantEIO {
				if !errors.Is(err, syscall.EIO) {
					t.Fatalf("err = %v, want EIO", err)
				}
				obj.fail = nil
				if _, err := c.ReadAt(buf, 100); err != nil || !bytes.Equal(buf, data[100:4196]) {
					t.Fatalf("read after the fault: %v", err)
				}
			} else if err != nil || !bytes.Equal(buf, data[100:4196]) {
				t.Fatalf("err = %v", err)
			}
			if got := c.Stats().Retries.Load(); got != tc.retries {
				t.Errorf("retries = %d, want %d", got, tc.retries)
			}
		})
	}
}

// TestCachedShortObject: an object that returns fewer bytes than its
// size promised is an error, never short data served as whole.
func TestCachedShortObject(t *testing.T) {
	obj := &lyingObject{memObject{data: pattern(100 << 10)}}
	c := NewCached(obj, CacheOptions{BlockSize: 64 << 10, Attempts: 1})
	t.Cleanup(func() { c.Close() })
	buf := make([]byte, 8192)
	if _, err := c.ReadAt(buf, 120<<10); !errors.Is(err, syscall.EIO) {
		t.Fatalf("err = %v, want EIO", err)
	}
}

type lyingObject struct{ memObject }

func (l *lyingObject) Size() int64 { return int64(len(l.data)) * 2 }

func TestTransient(t *testing.T) {
	base := errors.New("x")
	err := fmt.Errorf("wrapped: %w", Transient(base))
	if !IsTransient(err) || !errors.Is(err, base) || !errors.Is(err, ErrTransient) {
		t.Fatal("Transient lost a mark")
	}
	if IsTransient(base) || Transient(nil) != nil {
		t.Fatal("unmarked error is transient")
	}
}

// TestCachedStreams: random reads, some landing near each other, fetch
// only their blocks; a stream read out of order (as the kernel's
// parallel read-ahead arrives) still fetches whole chunks ahead.
func TestCachedStreams(t *testing.T) {
	data := pattern(64 << 20)
	obj := &memObject{data: data}
	const bs = 16 << 10
	c := NewCached(obj, CacheOptions{BlockSize: bs, CacheSize: 32 << 20})
	t.Cleanup(func() { c.Close() })
	r := rand.New(rand.NewPCG(5, 6))
	buf := make([]byte, 4096)
	const reads = 500
	for range reads {
		off := r.Int64N(int64(len(data))/4096) * 4096
		if _, err := c.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+4096]) {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	if got := c.Stats().BytesFetched.Load(); got > reads*bs*11/10 {
		t.Errorf("%d random 4 KiB reads fetched %d bytes: read-ahead ran", reads, got)
	}
	c2 := NewCached(obj, CacheOptions{BlockSize: bs, CacheSize: 32 << 20})
	t.Cleanup(func() { c2.Close() })
	piece := make([]byte, 128<<10)
	const window = 8 // pieces that may arrive in any order
	for base := int64(0); base < 32<<20; base += window * int64(len(piece)) {
		order := r.Perm(window)
		for _, k := range order {
			off := base + int64(k*len(piece))
			if _, err := c2.ReadAt(piece, off); err != nil || !bytes.Equal(piece, data[off:off+int64(len(piece))]) {
				t.Fatalf("read at %d: %v", off, err)
			}
		}
	}
	st := c2.Stats().Snapshot()
	if chunks := int64(32<<20) / DefaultChunkSize; st.Requests > chunks*2 {
		t.Errorf("%d requests for %d chunks read in shuffled order", st.Requests, chunks)
	}
	if st.CacheHits == 0 {
		t.Error("read-ahead never served a read")
	}
}
