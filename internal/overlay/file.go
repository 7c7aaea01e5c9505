package overlay

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/vmfs/vmfs/layouts"
	"golang.org/x/sys/unix"
)

// File is the writable view of one file: base with the overlay's writes on
// top. It is a layouts.Disk and is safe for parallel use.
//
// Lock order: mu, then a chunk's io. Nothing takes mu while holding an io.
type File struct {
	o       *Overlay
	name    string
	key     string
	base    layouts.Disk
	data    *os.File
	fp      [32]byte
	refs    int // under o.mu
	mapPath string

	size      atomic.Int64
	baseLimit atomic.Int64 // base bytes at or past it read as zeros (≤ size, ≤ base size)
	modified  atomic.Bool
	closed    atomic.Bool
	whole     atomic.Bool   // the data file holds every byte (whole.go)
	cloned    bool          // made whole in this session (under syncMu)
	gen       atomic.Uint64 // bumped by every change of the map or size

	mu sync.RWMutex
	t  table

	syncMu   sync.Mutex
	savedGen uint64 // under syncMu
	hasMap   bool   // a map file exists (under syncMu)

	blocks sync.Pool // of *[blockSize]byte: copy-up buffers
}

var _ layouts.Disk = (*File)(nil)

// openFile loads or creates the overlay entry of name. The caller holds
// o.mu.
func (o *Overlay) openFile(name string, base layouts.Disk) (*File, error) {
	key := nameKey(name)
	f := &File{
		o: o, name: name, key: key, base: base, refs: 1,
		mapPath: filepath.Join(o.dir, key+mapExt),
		t:       table{chunks: map[int64]*chunk{}},
	}
	fp, err := fingerprint(base)
	if err != nil {
		return nil, fmt.Errorf("overlay: %s: fingerprint base: %w", name, err)
	}
	f.fp = fp
	m, err := o.loadMap(key, key+mapExt)
	if err != nil {
		return nil, err
	}
	dpath := filepath.Join(o.dir, key+dataExt)
	if m == nil {
		// Nothing synced: whatever a data file holds was never promised.
		f.data, err = os.OpenFile(dpath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("overlay: %w", err)
		}
		f.size.Store(base.Size())
		f.baseLimit.Store(base.Size())
		return f, nil
	}
	if m.baseSize != base.Size() || m.fp != fp || m.name != name {
		return nil, fmt.Errorf("overlay: %s: made for another source (base size %d, now %d; fingerprint differs: %v); start with a fresh overlay to discard it",
			f.mapPath, m.baseSize, base.Size(), m.fp != fp)
	}
	f.data, err = os.OpenFile(dpath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	f.hasMap = true
	f.size.Store(m.size)
	f.baseLimit.Store(m.baseLimit)
	if m.whole {
		f.whole.Store(true)
		f.size.Store(f.wholeSize())
		f.modified.Store(true)
		return f, nil
	}
	f.load(m.runs)
	f.modified.Store(len(m.runs) > 0 || m.size != m.baseSize || m.baseLimit != m.baseSize)
	if err := f.punchPastEnd(); err != nil {
		f.data.Close()
		return nil, err
	}
	if o.unclean && !f.whole.Load() {
		if err := f.reclaim(); err != nil {
			o.log.Warn("overlay: could not free unsynced blocks", "file", name, "err", err)
		}
	}
	return f, nil
}

// load fills the table from the runs of a map file. Whole chunks become
// uniform runs, so memory follows the number of runs, not their length.
func (f *File) load(runs []mrun) {
	t := &f.t
	for _, r := range runs {
		b0, b1 := r.first, r.first+r.count
		c0 := (b0 + chunkBlocks - 1) / chunkBlocks
		c1 := b1 / chunkBlocks
		if c0 >= c1 {
			f.loadBlocks(b0, b1, r.st)
			continue
		}
		f.loadBlocks(b0, c0*chunkBlocks, r.st)
		t.uniAdd(c0, c1, r.st)
		f.loadBlocks(c1*chunkBlocks, b1, r.st)
	}
}

// loadBlocks records blocks [b0, b1), at most two partial chunks, in
// *chunks.
func (f *File) loadBlocks(b0, b1 int64, st state) {
	for b0 < b1 {
		ci := b0 / chunkBlocks
		e := min(b1, (ci+1)*chunkBlocks)
		c := f.t.chunks[ci]
		if c == nil {
			c = newChunk(stBase)
			f.t.chunks[ci] = c
		}
		c.set(int(b0-ci*chunkBlocks), int(e-ci*chunkBlocks), st)
		b0 = e
	}
}

// reclaim frees the blocks of the data file that the map does not mark as
// written (left by writes that were never synced).
func (f *File) reclaim() error {
	fd := int(f.data.Fd())
	end := f.size.Load()
	for pos := int64(0); pos < end; {
		d, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				return nil
			}
			return err
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		b0, b1 := d>>blockShift, (h+blockSize-1)>>blockShift
		var free [][2]int64
		f.mu.RLock()
		f.t.runs(b0, b1, func(x, y int64, st state) {
			if st != stData {
				free = append(free, [2]int64{x, y})
			}
		})
		f.mu.RUnlock()
		for _, r := range free {
			if err := punchData(f.data, r[0]<<blockShift, (r[1]-r[0])<<blockShift); err != nil {
				return err
			}
		}
		pos = h
	}
	return nil
}

// identifier is a base whose bytes are costly to produce (a manifest
// hashes whole disks when first read): it names what identifies it instead.
type identifier interface {
	Identity() []byte
}

// fingerprint identifies a base: its format, size and a few samples.
func fingerprint(base layouts.Disk) ([32]byte, error) {
	h := sha256.New()
	size := base.Size()
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(size))
	h.Write([]byte(base.Format()))
	h.Write(hdr[:])
	if id, ok := base.(identifier); ok {
		h.Write(id.Identity())
		var fp [32]byte
		h.Sum(fp[:0])
		return fp, nil
	}
	const sample = 64 << 10
	buf := make([]byte, sample)
	for _, off := range []int64{0, size / 2 &^ (blockSize - 1), size - sample} {
		off = max(off, 0)
		n := min(sample, size-off)
		if n <= 0 {
			continue
		}
		if _, err := base.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			return [32]byte{}, err
		}
		h.Write(buf[:n])
	}
	var fp [32]byte
	h.Sum(fp[:0])
	return fp, nil
}

// Size is the file's current size.
func (f *File) Size() int64 {
	if f.whole.Load() {
		return f.wholeSize()
	}
	return f.size.Load()
}

// Format is the base's format: the overlay changes bytes, not the layout.
func (f *File) Format() string { return f.base.Format() }

// Modified reports whether anything was written, punched or truncated
// (in this session or a synced earlier one).
func (f *File) Modified() bool { return f.modified.Load() }

// Close releases this handle; the last one syncs the file and closes it.
func (f *File) Close() error { return f.o.release(f) }

func (f *File) close() error {
	if f.closed.Load() {
		return nil
	}
	err := f.Sync()
	f.closed.Store(true)
	if err == nil && !f.hasMap {
		// Never changed: leave nothing behind.
		os.Remove(f.data.Name())
	}
	if err == nil && f.cloned && f.unchangedClone() {
		// Made whole in this session and never written: the clone
		// says nothing the source does not.
		os.Remove(f.mapPath)
		os.Remove(f.data.Name())
	}
	if cerr := f.data.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("overlay: %s: %w", f.name, cerr)
	}
	return err
}

func (f *File) errClosed() error {
	return fmt.Errorf("overlay: %s: %w", f.name, fs.ErrClosed)
}

// zeroBlock is read-only.
var zeroBlock [blockSize]byte

// ReadAt reads the merged view. It keeps the io.ReaderAt contract.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if f.closed.Load() {
		return 0, f.errClosed()
	}
	if f.whole.Load() {
		return f.wholeRead(p, off)
	}
	n, eof := layouts.CheckRead(f.size.Load(), p, off)
	if n == 0 {
		return 0, eof
	}
	p = p[:n]
	end := off + int64(n)
	var (
		runSt    state
		runStart = off
		ioErr    error
	)
	flush := func(to int64) {
		if ioErr == nil && to > runStart {
			ioErr = f.readRun(p[runStart-off:to-off], runStart, runSt)
		}
		runStart = to
	}
	f.states(off, end, func(a, _ int64, st state) bool {
		if st != runSt {
			flush(a)
			runSt = st
		}
		return ioErr == nil
	})
	flush(end)
	if ioErr != nil {
		return 0, ioErr
	}
	return n, eof
}

// states calls fn for the ranges [a, b) of [off, end) in order, each of
// one state: the part of a uniform chunk, or of one block of a chunk that
// holds blocks. It stops where fn returns false and returns the start of
// that range, else end.
func (f *File) states(off, end int64, fn func(a, b int64, st state) bool) int64 {
	for pos := off; pos < end; {
		ci := pos >> chunkShift
		ce := min(end, (ci+1)<<chunkShift)
		f.mu.RLock()
		c, st := f.t.lookup(ci)
		f.mu.RUnlock()
		if c == nil {
			if !fn(pos, ce, st) {
				return pos
			}
			pos = ce
			continue
		}
		for pos < ce {
			be := min(ce, (pos>>blockShift+1)<<blockShift)
			if !fn(pos, be, c.state(int(pos>>blockShift-ci*chunkBlocks))) {
				return pos
			}
			pos = be
		}
	}
	return end
}

func (f *File) readRun(buf []byte, off int64, st state) error {
	switch st {
	case stZero:
		clear(buf)
		return nil
	case stData:
		return f.readData(buf, off)
	}
	return f.readBase(buf, off)
}

func (f *File) readData(buf []byte, off int64) error {
	n, err := f.data.ReadAt(buf, off)
	if err == io.EOF {
		// The data file may end inside the last written block; it is
		// zero past the size.
		clear(buf[n:])
		return nil
	}
	if err != nil {
		return fmt.Errorf("overlay: %s: read data file: %w", f.name, err)
	}
	return nil
}

// readBase reads base bytes, zeros at or past baseLimit.
func (f *File) readBase(buf []byte, off int64) error {
	limit := f.baseLimit.Load()
	inside := 0
	if off < limit {
		inside = int(min(int64(len(buf)), limit-off))
		n, err := f.base.ReadAt(buf[:inside], off)
		if err != nil && !(err == io.EOF && n == inside) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("overlay: %s: read base: %w", f.name, err)
		}
	}
	clear(buf[inside:])
	return nil
}

// WriteAt writes p at off, extending the file when it reaches past the end.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if f.closed.Load() {
		return 0, f.errClosed()
	}
	if off < 0 {
		return 0, fmt.Errorf("overlay: %s: negative offset %d", f.name, off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off > maxSize || int64(len(p)) > maxSize-off {
		return 0, fmt.Errorf("overlay: %s: write at %d+%d past the largest size %d: %w", f.name, off, len(p), int64(maxSize), unix.EFBIG)
	}
	if f.whole.Load() {
		return f.wholeWrite(p, off)
	}
	end := off + int64(len(p))
	pos := off
	var err error
	for pos < end {
		ce := min(end, (pos>>chunkShift+1)<<chunkShift)
		if err = f.writeChunk(p[pos-off:ce-off], pos, false); err != nil {
			break
		}
		pos = ce
	}
	if pos > off {
		f.modified.Store(true)
		f.grow(pos)
		f.gen.Add(1)
	}
	return int(pos - off), err
}

// grow raises the size to at least end.
func (f *File) grow(end int64) {
	for {
		s := f.size.Load()
		if s >= end || f.size.CompareAndSwap(s, end) {
			return
		}
	}
}

// writeChunk writes p, which lies inside one chunk, at off. With zero set,
// p is zeros and blocks already reading as zeros are left alone.
func (f *File) writeChunk(p []byte, off int64, zero bool) error {
	ci := off >> chunkShift
	c, st := f.lockedChunk(ci, func(st state) bool { return st == stData || zero && st == stZero })
	if c == nil {
		if st == stData {
			// Every block is written: no copy-up, no map change.
			return f.writeData(p, off)
		}
		return nil
	}
	err := f.writeLocked(c, ci, p, off, zero)
	c.io.Unlock()
	return err
}

// lockedChunk returns the chunk of ci with its io lock held, made from the
// uniform state of ci when there is none yet, unless uniform(st) says that
// state needs no chunk: then it returns nil and st.
func (f *File) lockedChunk(ci int64, uniform func(st state) bool) (*chunk, state) {
	for {
		f.mu.RLock()
		c, st := f.t.lookup(ci)
		f.mu.RUnlock()
		if c == nil {
			if uniform(st) {
				return nil, st
			}
			c = f.materialize(ci)
		}
		c.io.Lock()
		if !c.dead {
			return c, st
		}
		c.io.Unlock()
	}
}

// materialize returns the *chunk of ci, making one (from its uniform run,
// or empty) if needed.
func (f *File) materialize(ci int64) *chunk {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, st := f.t.lookup(ci)
	if c != nil {
		return c
	}
	if st != stBase {
		f.t.uniRemove(ci, ci+1)
	}
	c = newChunk(st)
	f.t.chunks[ci] = c
	return c
}

// writeLocked writes p at off inside chunk ci, copying up partial blocks
// that are not yet written. The caller holds c.io.
func (f *File) writeLocked(c *chunk, ci int64, p []byte, off int64, zero bool) error {
	end := off + int64(len(p))
	b0, b1 := off>>blockShift, (end-1)>>blockShift // inclusive
	first := ci * chunkBlocks
	partial := func(b int64) bool { return off > b<<blockShift || end < (b+1)<<blockShift }
	st0 := c.state(int(b0 - first))
	if zero && b0 == b1 && st0 == stZero {
		return nil
	}
	headCopy := partial(b0) && st0 != stData
	tailCopy := b1 != b0 && partial(b1) && c.state(int(b1-first)) != stData
	mstart, mend := off, end
	if headCopy {
		if err := f.copyUp(b0, st0, p, off); err != nil {
			return err
		}
		mstart = min(end, (b0+1)<<blockShift)
	}
	if tailCopy {
		if err := f.copyUp(b1, c.state(int(b1-first)), p, off); err != nil {
			return err
		}
		mend = b1 << blockShift
	}
	if mstart < mend {
		if err := f.writeData(p[mstart-off:mend-off], mstart); err != nil {
			return err
		}
	}
	c.set(int(b0-first), int(b1-first)+1, stData)
	return nil
}

// copyUp writes block b: its current content (base or zeros) with the part
// of p (written at off) that falls in it.
func (f *File) copyUp(b int64, st state, p []byte, off int64) error {
	bp, _ := f.blocks.Get().(*[blockSize]byte)
	if bp == nil {
		bp = new([blockSize]byte)
	}
	defer f.blocks.Put(bp)
	buf := bp[:]
	bs := b << blockShift
	if st == stBase {
		if err := f.readBase(buf, bs); err != nil {
			return err
		}
	} else {
		clear(buf)
	}
	lo, hi := max(off, bs), min(off+int64(len(p)), bs+blockSize)
	copy(buf[lo-bs:hi-bs], p[lo-off:hi-off])
	return f.writeData(buf, bs)
}

func (f *File) writeData(p []byte, off int64) error {
	if _, err := f.data.WriteAt(p, off); err != nil {
		return fmt.Errorf("overlay: %s: write data file at %d: %w", f.name, off, err)
	}
	return nil
}

// punchData frees [off, off+n) of a data file; it reads as zeros after.
func punchData(d *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	err := unix.Fallocate(int(d.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return nil // space is not freed, but the map says zeros
	}
	return err
}

// Punch makes [off, off+n) read as zeros and frees overlay space where
// whole blocks are concerned (fallocate punch-hole and zero-range).
func (f *File) Punch(off, n int64) error {
	if f.closed.Load() {
		return f.errClosed()
	}
	if f.whole.Load() {
		return f.wholePunch(off, n)
	}
	size := f.size.Load()
	off, n, ok := layouts.Clip(size, off, n)
	if !ok {
		return nil
	}
	end := off + n
	f.modified.Store(true)
	defer f.gen.Add(1)
	// Whole blocks [fb, lb); the block holding the end of the file is
	// whole when the range reaches the end, since its tail reads as zeros.
	fb := (off + blockSize - 1) >> blockShift
	lb := end >> blockShift
	if end == size {
		lb = blocksOf(size)
	}
	if fb >= lb {
		return f.zeroBytes(off, end)
	}
	if err := f.zeroBytes(off, fb<<blockShift); err != nil {
		return err
	}
	if err := f.zeroBytes(min(lb<<blockShift, end), end); err != nil {
		return err
	}
	c0 := (fb + chunkBlocks - 1) / chunkBlocks
	c1 := lb / chunkBlocks
	if c0 >= c1 {
		if err := f.zeroBlocks(fb, min(lb, (fb/chunkBlocks+1)*chunkBlocks)); err != nil {
			return err
		}
		if lb/chunkBlocks != fb/chunkBlocks {
			return f.zeroBlocks(lb/chunkBlocks*chunkBlocks, lb)
		}
		return nil
	}
	if err := f.zeroBlocks(fb, c0*chunkBlocks); err != nil {
		return err
	}
	if err := f.zeroBlocks(c1*chunkBlocks, lb); err != nil {
		return err
	}
	return f.zeroChunks(c0, c1)
}

// zeroBytes writes zeros over [a, b), less than two blocks.
func (f *File) zeroBytes(a, b int64) error {
	for a < b {
		e := min(b, (a>>chunkShift+1)<<chunkShift, a+blockSize)
		if err := f.writeChunk(zeroBlock[:e-a], a, true); err != nil {
			return err
		}
		a = e
	}
	return nil
}

// zeroBlocks marks blocks [b0, b1), inside one chunk, as zeros.
func (f *File) zeroBlocks(b0, b1 int64) error {
	if b0 >= b1 {
		return nil
	}
	ci := b0 / chunkBlocks
	c, _ := f.lockedChunk(ci, func(st state) bool { return st == stZero })
	if c == nil {
		return nil
	}
	c.set(int(b0-ci*chunkBlocks), int(b1-ci*chunkBlocks), stZero)
	err := punchData(f.data, b0<<blockShift, (b1-b0)<<blockShift)
	c.io.Unlock()
	if err != nil {
		return fmt.Errorf("overlay: %s: punch data file: %w", f.name, err)
	}
	return nil
}

// zeroChunks makes chunks [c0, c1) a uniform run of zeros.
func (f *File) zeroChunks(c0, c1 int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.t.keys(c0, c1) {
		f.kill(k)
	}
	f.t.uniAdd(c0, c1, stZero)
	if err := punchData(f.data, c0<<chunkShift, (c1-c0)<<chunkShift); err != nil {
		return fmt.Errorf("overlay: %s: punch data file: %w", f.name, err)
	}
	return nil
}

// kill drops chunk k from the table. The caller holds mu.
func (f *File) kill(k int64) {
	c := f.t.chunks[k]
	c.io.Lock()
	c.dead = true
	c.io.Unlock()
	delete(f.t.chunks, k)
}

// Truncate changes the size. Bytes past the old size read as zeros after
// growing; nothing of base past the smallest size ever set shows again.
func (f *File) Truncate(size int64) error {
	if f.closed.Load() {
		return f.errClosed()
	}
	if size < 0 || size > maxSize {
		return fmt.Errorf("overlay: %s: truncate to %d: %w", f.name, size, unix.EINVAL)
	}
	// A shrink is persisted before the data past the new end is freed,
	// so that a crash never finds a synced map pointing at freed blocks.
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.whole.Load() {
		return f.wholeTruncate(size)
	}
	f.modified.Store(true)
	f.gen.Add(1)
	old := f.size.Load()
	if size >= old {
		st, err := f.data.Stat()
		if err != nil {
			return fmt.Errorf("overlay: %s: %w", f.name, err)
		}
		if st.Size() < size {
			if err := f.data.Truncate(size); err != nil {
				return fmt.Errorf("overlay: %s: grow data file: %w", f.name, err)
			}
		}
		f.size.Store(size)
		return nil
	}
	if size < f.baseLimit.Load() {
		f.baseLimit.Store(size)
	}
	nb := blocksOf(size)
	cfull := nb / chunkBlocks // chunks [0, cfull) stay whole
	t := &f.t
	if nb%chunkBlocks != 0 {
		// The chunk holding the new end keeps its blocks below nb.
		c, st := t.lookup(cfull)
		if c == nil && st != stBase {
			t.uniRemove(cfull, cfull+1)
			c = newChunk(st)
			t.chunks[cfull] = c
		}
		if c != nil {
			c.io.Lock()
			c.set(int(nb-cfull*chunkBlocks), chunkBlocks, stBase)
			c.io.Unlock()
		}
		cfull++
	}
	t.uniRemove(cfull, maxSize>>chunkShift+1)
	for k := range t.chunks {
		if k >= cfull {
			f.kill(k)
		}
	}
	f.size.Store(size)
	serr := f.syncLocked(true)
	// Free what lies past the end, zeroing the tail of the last block
	// (also when the map could not be written: the view must stay right).
	if err := f.punchPastEnd(); err != nil {
		return err
	}
	return serr
}

// punchPastEnd frees the data file past the size; the tail of the last
// block reads as zeros after, as a later growth needs.
func (f *File) punchPastEnd() error {
	st, err := f.data.Stat()
	if err != nil {
		return fmt.Errorf("overlay: %s: %w", f.name, err)
	}
	if size := f.size.Load(); st.Size() > size {
		if err := punchData(f.data, size, st.Size()-size); err != nil {
			return fmt.Errorf("overlay: %s: punch data file: %w", f.name, err)
		}
	}
	return nil
}

// Extents describes the merged view: written blocks are Data, punched ones
// Zero, the rest comes from base (Hole past what base contributes).
func (f *File) Extents(off, n int64) ([]layouts.Extent, error) {
	if f.closed.Load() {
		return nil, f.errClosed()
	}
	if f.whole.Load() {
		off, n, ok := layouts.Clip(f.wholeSize(), off, n)
		if !ok {
			return nil, nil
		}
		return layouts.FileExtents(int(f.data.Fd()), "overlay: "+f.name, off, off+n)
	}
	size := f.size.Load()
	off, n, ok := layouts.Clip(size, off, n)
	if !ok {
		return nil, nil
	}
	end := off + n
	type brun struct {
		a, b int64
		st   state
	}
	var runs []brun
	f.mu.RLock()
	f.t.runs(off>>blockShift, (end-1)>>blockShift+1, func(b0, b1 int64, st state) {
		runs = append(runs, brun{max(b0<<blockShift, off), min(b1<<blockShift, end), st})
	})
	f.mu.RUnlock()
	limit := f.baseLimit.Load()
	var b layouts.Builder
	for _, r := range runs {
		switch r.st {
		case stData:
			b.Add(r.a, r.b-r.a, layouts.Data)
		case stZero:
			b.Add(r.a, r.b-r.a, layouts.Zero)
		default:
			if r.a < limit {
				e := min(r.b, limit)
				err := layouts.Walk(f.base, r.a, e-r.a, func(x layouts.Extent) error {
					b.Add(x.Off, x.Len, x.Kind)
					return nil
				})
				if err != nil {
					return nil, fmt.Errorf("overlay: %s: base extents: %w", f.name, err)
				}
			}
			if r.b > limit {
				s := max(r.a, limit)
				b.Add(s, r.b-s, layouts.Hole)
			}
		}
	}
	return b.Extents(), nil
}

// Sync is the durability point: when it returns, the data written before
// the call and the map that describes it are on stable storage.
func (f *File) Sync() error {
	if f.closed.Load() {
		return f.errClosed()
	}
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	return f.syncLocked(false)
}

// syncLocked does Sync; the caller holds syncMu, and mu if muHeld.
func (f *File) syncLocked(muHeld bool) error {
	if f.whole.Load() {
		// Writes the kernel made past the end grew the data file.
		if n := f.wholeSize(); n != f.size.Load() {
			f.size.Store(n)
			f.gen.Add(1)
		}
	}
	gen := f.gen.Load()
	var m *mapState
	if gen != f.savedGen {
		if muHeld {
			m = f.snapshot()
		} else {
			f.mu.Lock()
			m = f.snapshot()
			f.mu.Unlock()
		}
	}
	// Data first: every block the snapshot marks written was written
	// before the snapshot was taken.
	if err := unix.Fdatasync(int(f.data.Fd())); err != nil {
		return fmt.Errorf("overlay: %s: sync data file: %w", f.name, err)
	}
	if m == nil {
		return nil
	}
	if err := f.writeMap(m); err != nil {
		return err
	}
	f.savedGen = gen
	f.hasMap = true
	return nil
}

// snapshot compacts chunks that became uniform and returns the map to
// persist. The caller holds mu.
func (f *File) snapshot() *mapState {
	t := &f.t
	for k, c := range t.chunks {
		if !c.io.TryLock() {
			continue
		}
		if st, ok := c.uniform(); ok {
			c.dead = true
			delete(t.chunks, k)
			t.uniAdd(k, k+1, st)
		}
		c.io.Unlock()
	}
	m := &mapState{
		size:      f.size.Load(),
		baseSize:  f.base.Size(),
		baseLimit: f.baseLimit.Load(),
		fp:        f.fp,
		name:      f.name,
	}
	if f.whole.Load() {
		m.whole = true
		m.baseLimit = min(m.baseLimit, m.size)
		m.runs = wholeRuns(m.size)
		return m
	}
	t.runs(0, blocksOf(m.size), func(b0, b1 int64, st state) {
		if st != stBase {
			m.runs = append(m.runs, mrun{b0, b1 - b0, st})
		}
	})
	return m
}

// writeMap replaces the map file atomically and durably.
func (f *File) writeMap(m *mapState) error {
	tmp := f.mapPath + tmpExt
	w, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("overlay: %s: write map: %w", f.name, err)
	}
	_, err = w.Write(encodeMap(m))
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.mapPath)
	}
	if err == nil {
		err = syncDir(f.o.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("overlay: %s: write map: %w", f.name, err)
	}
	return nil
}
