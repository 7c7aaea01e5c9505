package remote

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of a Cached.
const (
	DefaultCacheSize = 64 << 20
	DefaultBlockSize = 1 << 20
	DefaultReadAhead = 4
	DefaultInFlight  = 4
	DefaultAttempts  = 5
	DefaultBackoff   = 200 * time.Millisecond
	maxBackoff       = 5 * time.Second
)

// Limiter caps the requests in flight to one host; the Cached readers of
// one Store share one.
type Limiter struct{ ch chan struct{} }

// NewLimiter lets n requests run at once (n < 1: DefaultInFlight).
func NewLimiter(n int) *Limiter {
	if n < 1 {
		n = DefaultInFlight
	}
	return &Limiter{ch: make(chan struct{}, n)}
}

func (l *Limiter) acquire(ctx context.Context) error {
	select {
	case l.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Limiter) release() { <-l.ch }

// Stats count what the Cached readers sharing them did. Safe for
// concurrent use.
type Stats struct {
	BytesFetched atomic.Int64
	Requests     atomic.Int64
	CacheHits    atomic.Int64
	CacheMisses  atomic.Int64
	Retries      atomic.Int64
	Errors       atomic.Int64
}

// StatsSnapshot is Stats at one moment, as status shows them.
type StatsSnapshot struct {
	BytesFetched int64 `json:"bytes_fetched"`
	Requests     int64 `json:"requests"`
	CacheHits    int64 `json:"cache_hits"`
	CacheMisses  int64 `json:"cache_misses"`
	Retries      int64 `json:"retries"`
	Errors       int64 `json:"errors"`
}

// Snapshot reads s (nil: zeros).
func (s *Stats) Snapshot() StatsSnapshot {
	if s == nil {
		return StatsSnapshot{}
	}
	return StatsSnapshot{
		BytesFetched: s.BytesFetched.Load(), Requests: s.Requests.Load(),
		CacheHits: s.CacheHits.Load(), CacheMisses: s.CacheMisses.Load(),
		Retries: s.Retries.Load(), Errors: s.Errors.Load(),
	}
}

// CacheOptions shape a Cached; zero fields take the defaults.
type CacheOptions struct {
	// CacheSize bounds the cached blocks, in bytes (at least two blocks
	// are kept). Memory is bounded by CacheSize plus one block per
	// request in flight, whatever the file's size.
	CacheSize int64
	// BlockSize is the unit of fetching and caching.
	BlockSize int64
	// ReadAhead is how many blocks a sequential read fetches ahead (-1:
	// none).
	ReadAhead int
	// Attempts is how many times a block is requested before its read
	// fails; Backoff the first wait between attempts (it doubles).
	Attempts int
	Backoff  time.Duration
	// Limiter caps the requests in flight (nil: a Limiter of its own).
	Limiter *Limiter
	// Stats, when set, is counted into (a Store's readers share one).
	Stats *Stats
	// Logger takes one line per read that failed for good.
	Logger *slog.Logger
}

func (o CacheOptions) withDefaults() CacheOptions {
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.ReadAhead == 0 {
		o.ReadAhead = DefaultReadAhead
	}
	if o.ReadAhead < 0 {
		o.ReadAhead = 0
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Limiter == nil {
		o.Limiter = NewLimiter(DefaultInFlight)
	}
	if o.Stats == nil {
		o.Stats = &Stats{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Cached reads an Object through a bounded block cache. It is an
// io.ReaderAt safe for parallel calls and a layouts.File.
type Cached struct {
	obj    Object
	o      CacheOptions
	max    int // blocks kept
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	blocks  map[int64]*block
	lru     *list.List // done blocks, most recent first
	lastEnd int64      // where the last read ended: the next sequential offset
}

// block is one block of the file, being fetched until done is closed.
type block struct {
	idx  int64
	done chan struct{}
	data []byte
	err  error
	elem *list.Element
}

// NewCached reads obj through a cache shaped by o.
func NewCached(obj Object, o CacheOptions) *Cached {
	o = o.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	max := int(o.CacheSize / o.BlockSize)
	if max < 2 {
		max = 2
	}
	// Blocks read ahead must stay until they are read.
	o.ReadAhead = min(o.ReadAhead, max/2)
	return &Cached{obj: obj, o: o, max: max, ctx: ctx, cancel: cancel, blocks: map[int64]*block{}, lru: list.New(), lastEnd: -1}
}

func (c *Cached) Size() int64   { return c.obj.Size() }
func (c *Cached) Name() string  { return c.obj.Name() }
func (c *Cached) Stats() *Stats { return c.o.Stats }

// Close drops the cache and cancels the requests in flight.
func (c *Cached) Close() error {
	c.cancel()
	c.mu.Lock()
	c.blocks = map[int64]*block{}
	c.lru.Init()
	c.mu.Unlock()
	return nil
}

// ReadAt reads len(p) bytes at off, from the cache or the remote.
func (c *Cached) ReadAt(p []byte, off int64) (int, error) {
	size := c.obj.Size()
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", c.Name(), off)
	}
	if off >= size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	want := len(p)
	if int64(want) > size-off {
		want = int(size - off)
	}
	bs := c.o.BlockSize
	first, last := off/bs, (off+int64(want)-1)/bs
	c.mu.Lock()
	seq := off == c.lastEnd
	c.lastEnd = off + int64(want)
	bl := make([]*block, 0, last-first+1)
	for i := first; i <= last; i++ {
		bl = append(bl, c.get(i, true))
	}
	if seq || first == 0 {
		for i := last + 1; i <= last+int64(c.o.ReadAhead) && i*bs < size; i++ {
			c.get(i, false)
		}
	}
	c.mu.Unlock()
	n := 0
	for _, b := range bl {
		select {
		case <-b.done:
		case <-c.ctx.Done():
			return n, fmt.Errorf("%s: closed", c.Name())
		}
		if b.err != nil {
			return n, b.err
		}
		start := b.idx * bs
		lo := max(off, start) - start
		hi := min(off+int64(want), start+int64(len(b.data))) - start
		if hi <= lo {
			return n, fmt.Errorf("%s: block %d is short (%d bytes): %w", c.Name(), b.idx, len(b.data), syscall.EIO)
		}
		n += copy(p[n:], b.data[lo:hi])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// get returns block i, starting its fetch when it is not cached (c.mu
// held). demand: a read waits for it (counted as a hit or a miss).
func (c *Cached) get(i int64, demand bool) *block {
	if b, ok := c.blocks[i]; ok {
		if b.elem != nil {
			c.lru.MoveToFront(b.elem)
		}
		if demand {
			c.o.Stats.CacheHits.Add(1)
		}
		return b
	}
	if demand {
		c.o.Stats.CacheMisses.Add(1)
	}
	b := &block{idx: i, done: make(chan struct{})}
	c.blocks[i] = b
	go c.fetch(b)
	return b
}

// fetch reads block b, retrying transient errors with back-off.
func (c *Cached) fetch(b *block) {
	bs := c.o.BlockSize
	off := b.idx * bs
	n := min(bs, c.obj.Size()-off)
	buf := make([]byte, n)
	err := c.fetchRange(buf, off)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.blocks[b.idx]; cur != b {
		// Close dropped it meanwhile.
		b.err = cmpErr(err, fmt.Errorf("%s: closed", c.Name()))
		close(b.done)
		return
	}
	if err != nil {
		// Not cached: the next read asks again.
		delete(c.blocks, b.idx)
		b.err = err
		close(b.done)
		return
	}
	b.data = buf
	b.elem = c.lru.PushFront(b)
	close(b.done)
	for c.lru.Len() > c.max {
		old := c.lru.Back().Value.(*block)
		c.lru.Remove(old.elem)
		delete(c.blocks, old.idx)
	}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// fetchRange reads p at off from the object: each attempt is one request
// under the limiter; a transient error is retried after a wait that
// doubles; once the attempts are spent (or at once for an error that is
// not transient) the error wraps syscall.EIO and is logged, once.
func (c *Cached) fetchRange(p []byte, off int64) error {
	wait := c.o.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		err = c.request(p, off)
		if err == nil || c.ctx.Err() != nil {
			break
		}
		if !IsTransient(err) || attempt >= c.o.Attempts {
			c.o.Stats.Errors.Add(1)
			err = fmt.Errorf("%s: reading %d bytes at %d: %w (%d attempt(s)): %w", c.Name(), len(p), off, syscall.EIO, attempt, err)
			c.o.Logger.Error("remote read failed", "file", c.Name(), "offset", off, "length", len(p), "attempts", attempt, "err", err)
			return err
		}
		c.o.Stats.Retries.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
		wait = min(2*wait, maxBackoff)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.Name(), err)
	}
	return nil
}

func (c *Cached) request(p []byte, off int64) error {
	if err := c.o.Limiter.acquire(c.ctx); err != nil {
		return err
	}
	defer c.o.Limiter.release()
	c.o.Stats.Requests.Add(1)
	n, err := c.obj.ReadRange(c.ctx, p, off)
	c.o.Stats.BytesFetched.Add(int64(n))
	if err != nil && !(errors.Is(err, io.EOF) && n == len(p)) {
		return err
	}
	if n != len(p) {
		return fmt.Errorf("%s: %d bytes at %d came back as %d", c.Name(), len(p), off, n)
	}
	return nil
}
