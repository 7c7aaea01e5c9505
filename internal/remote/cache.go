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
	DefaultBlockSize = 16 << 10
	DefaultChunkSize = 1 << 20
	DefaultReadAhead = 8 << 20
	DefaultInFlight  = 4
	DefaultAttempts  = 5
	DefaultBackoff   = 200 * time.Millisecond
	DefaultTimeout   = 60 * time.Second
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
	// CacheSize bounds the cached blocks, in bytes (at least two chunks
	// are kept). Memory is bounded by CacheSize plus one chunk per
	// request in flight, whatever the file's size.
	CacheSize int64
	// BlockSize is the unit of caching: a random read fetches the blocks
	// it touches, no more.
	BlockSize int64
	// ChunkSize is the most one request asks for (a multiple of
	// BlockSize): sequential reads and read-ahead fetch whole chunks.
	ChunkSize int64
	// ReadAhead is how far ahead of a sequential read chunks are fetched,
	// in bytes (-1: not at all).
	ReadAhead int64
	// Attempts is how many times a range is requested before its read
	// fails; Backoff the first wait between attempts (it doubles).
	Attempts int
	Backoff  time.Duration
	// Timeout bounds one request, body included: a server that stops
	// sending fails the attempt (transient) rather than hang the read.
	Timeout time.Duration
	// Limiter caps the requests in flight (nil: a Limiter of its own).
	Limiter *Limiter
	// Stats, when set, is counted into (a Store's readers share one).
	Stats *Stats
	// Logger takes one line per read that failed for good.
	Logger *slog.Logger
}

func (o CacheOptions) withDefaults() CacheOptions {
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = max(DefaultChunkSize, o.BlockSize)
	}
	o.ChunkSize = max(o.ChunkSize/o.BlockSize, 1) * o.BlockSize
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	o.CacheSize = max(o.CacheSize, 2*o.ChunkSize)
	if o.ReadAhead == 0 {
		o.ReadAhead = DefaultReadAhead
	}
	// What is read ahead must stay cached until it is read.
	o.ReadAhead = min(max(o.ReadAhead, 0), max(o.CacheSize/2-o.ChunkSize, 0))
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
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
	held   int64 // bytes of the buffers that cached blocks keep alive
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	blocks map[int64]*block
	lru    *list.List // done blocks, most recent first
	// streams are the last reads' streams: a read near the end of one
	// continues it (reads of several streams, and those of one stream
	// that the kernel issues in parallel and that arrive out of order,
	// each find theirs).
	streams [8]stream
	next    int
}

// stream is a run of nearby reads: the span they cover and the bytes
// they read.
type stream struct {
	start, end, bytes int64
}

// block is one block of the file, being fetched until done is closed.
type block struct {
	idx  int64
	done chan struct{}
	data []byte
	err  error
	elem *list.Element
	buf  *buffer // the request's buffer data is part of
}

// buffer is what one request read: its blocks are slices of it, and it
// counts against the cache's size while any of them is cached.
type buffer struct {
	size int64
	live int
}

// NewCached reads obj through a cache shaped by o.
func NewCached(obj Object, o CacheOptions) *Cached {
	o = o.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Cached{obj: obj, o: o, ctx: ctx, cancel: cancel, blocks: map[int64]*block{}, lru: list.New()}
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
	c.held = 0
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
	seq := c.sequential(off, off+int64(want))
	bl := make([]*block, last-first+1)
	for i := first; i <= last; i++ {
		if b, ok := c.blocks[i]; ok {
			if b.elem != nil {
				c.lru.MoveToFront(b.elem)
			}
			c.o.Stats.CacheHits.Add(1)
			bl[i-first] = b
		} else {
			c.o.Stats.CacheMisses.Add(1)
		}
	}
	lo, hi := first, last
	if seq {
		// A sequential read fetches whole chunks, and the chunks of the
		// read-ahead window after it.
		cb := c.o.ChunkSize / bs
		lo = first / cb * cb
		hi = ((last+c.o.ReadAhead/bs)/cb+1)*cb - 1
	}
	hi = min(hi, (size-1)/bs)
	c.fetchMissing(lo, hi)
	for i := first; i <= last; i++ {
		bl[i-first] = c.blocks[i]
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

// sequential says whether a read of off..end belongs to a stream of
// reads: it starts within two chunks of one, and the stream's reads,
// this one too, are dense (they read at least half of the span they
// cover, and four blocks): random reads that land near each other are
// sparse and start no read-ahead. It records the read (c.mu held).
func (c *Cached) sequential(off, end int64) bool {
	near := 2 * c.o.ChunkSize
	for i := range c.streams {
		s := &c.streams[i]
		if s.end > 0 && off >= s.start-near && off <= s.end+near {
			s.start, s.end = min(s.start, off), max(s.end, end)
			s.bytes += end - off
			return s.bytes >= 4*c.o.BlockSize && 2*s.bytes >= s.end-s.start
		}
	}
	c.streams[c.next] = stream{start: off, end: end, bytes: end - off}
	c.next = (c.next + 1) % len(c.streams)
	return false
}

// fetchMissing starts fetching the blocks from..to that are neither
// cached nor being fetched, one request per run of them, no run longer
// than a chunk nor crossing a chunk's end (c.mu held).
func (c *Cached) fetchMissing(from, to int64) {
	cb := c.o.ChunkSize / c.o.BlockSize
	var run []*block
	flush := func() {
		if len(run) > 0 {
			go c.fetch(run)
			run = nil
		}
	}
	for i := from; i <= to; i++ {
		if _, ok := c.blocks[i]; ok {
			flush()
			continue
		}
		b := &block{idx: i, done: make(chan struct{})}
		c.blocks[i] = b
		run = append(run, b)
		if (i+1)%cb == 0 {
			flush()
		}
	}
	flush()
}

// fetch reads the consecutive blocks of run in one request, retrying
// transient errors with back-off.
func (c *Cached) fetch(run []*block) {
	bs := c.o.BlockSize
	off := run[0].idx * bs
	n := min(int64(len(run))*bs, c.obj.Size()-off)
	var buf []byte
	err := c.fetchRange(&buf, n, off)
	c.mu.Lock()
	defer c.mu.Unlock()
	held := &buffer{size: int64(len(buf))}
	for k, b := range run {
		switch {
		case c.blocks[b.idx] != b:
			// Close dropped it meanwhile.
			b.err = cmpErr(err, fmt.Errorf("%s: closed", c.Name()))
		case err != nil:
			// Not cached: the next read asks again.
			delete(c.blocks, b.idx)
			b.err = err
		default:
			lo := int64(k) * bs
			b.data, b.buf = buf[lo:min(lo+bs, n)], held
			b.elem = c.lru.PushFront(b)
			if held.live++; held.live == 1 {
				c.held += held.size
			}
		}
		close(b.done)
	}
	// Evict the least recently used blocks until the buffers still
	// alive fit the cache: a buffer is freed with its last block.
	for c.held > c.o.CacheSize && c.lru.Len() > 0 {
		old := c.lru.Back().Value.(*block)
		c.lru.Remove(old.elem)
		delete(c.blocks, old.idx)
		if old.buf.live--; old.buf.live == 0 {
			c.held -= old.buf.size
		}
	}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// fetchRange reads n bytes at off from the object into *buf (allocated
// once a request may run, so that waiting requests hold no memory): each
// attempt is one request under the limiter; a transient error is retried
// after a wait that doubles; once the attempts are spent (or at once for
// an error that is not transient) the error wraps syscall.EIO and is
// logged, once.
func (c *Cached) fetchRange(buf *[]byte, n, off int64) error {
	wait := c.o.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		err = c.request(buf, n, off)
		if err == nil || c.ctx.Err() != nil {
			break
		}
		if !IsTransient(err) || attempt >= c.o.Attempts {
			c.o.Stats.Errors.Add(1)
			err = fmt.Errorf("%s: reading %d bytes at %d: %w (%d attempt(s)): %w", c.Name(), n, off, syscall.EIO, attempt, err)
			c.o.Logger.Error("remote read failed", "file", c.Name(), "offset", off, "length", n, "attempts", attempt, "err", err)
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

func (c *Cached) request(buf *[]byte, n, off int64) error {
	if err := c.o.Limiter.acquire(c.ctx); err != nil {
		return err
	}
	defer c.o.Limiter.release()
	if *buf == nil {
		*buf = make([]byte, n)
	}
	p := *buf
	c.o.Stats.Requests.Add(1)
	ctx, cancel := context.WithTimeout(c.ctx, c.o.Timeout)
	defer cancel()
	k, err := c.obj.ReadRange(ctx, p, off)
	if err != nil && ctx.Err() == context.DeadlineExceeded && c.ctx.Err() == nil {
		err = Transient(fmt.Errorf("no answer within %v: %w", c.o.Timeout, err))
	}
	c.o.Stats.BytesFetched.Add(int64(k))
	if err != nil && !(errors.Is(err, io.EOF) && k == len(p)) {
		return err
	}
	if k != len(p) {
		return fmt.Errorf("%s: %d bytes at %d came back as %d", c.Name(), len(p), off, k)
	}
	return nil
}
