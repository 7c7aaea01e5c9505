package qcow2

import (
	"encoding/binary"
	"io"
	"sync"

	"github.com/vmfs/vmfs/layouts"
)

const (
	offsetMask     = 0x00fffffffffffe00 // host offset bits 9..55 of L1/L2 entries
	flagCompressed = 1 << 62
	flagZero       = 1 << 0
	flagCopied     = 1 << 63
)

// maxCachedL2 bounds the memory the L2 table cache holds.
const maxCachedL2 = 16 << 20

// cache keeps a bounded number of values, tables or clusters of one
// cluster size, evicting one at random when full. Values are made outside
// the lock; the lock only guards the map.
type cache[K comparable, V any] struct {
	mu  sync.Mutex
	m   map[K]V
	max int
}

// init sizes c to hold budget bytes of values of clusterSize bytes, at
// least four.
func (c *cache[K, V]) init(budget, clusterSize int64) {
	c.m = make(map[K]V)
	c.max = max(4, int(budget/clusterSize))
}

func (c *cache[K, V]) get(k K) V {
	c.mu.Lock()
	v := c.m[k]
	c.mu.Unlock()
	return v
}

func (c *cache[K, V]) put(k K, v V) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		for old := range c.m { // evict one at random
			delete(c.m, old)
			break
		}
	}
	c.m[k] = v
	c.mu.Unlock()
}

// l2Table returns the L2 table for L1 entry l1i, or nil if none is
// allocated.
func (d *Disk) l2Table(l1i int64) ([]uint64, error) {
	off := d.l1[l1i] & offsetMask
	if off == 0 {
		return nil, nil
	}
	if t := d.l2.get(off); t != nil {
		return t, nil
	}
	if off&uint64(d.clusterSize-1) != 0 {
		return nil, errf(d.name, "L2 table %d at %#x is not cluster aligned: %w", l1i, off, layouts.ErrFormat)
	}
	if off >= uint64(d.f.Size()) || uint64(d.f.Size())-off < uint64(d.clusterSize) {
		return nil, errf(d.name, "L2 table %d at %#x points past end of file: %w", l1i, off, layouts.ErrFormat)
	}
	buf := make([]byte, d.clusterSize)
	if _, err := d.f.ReadAt(buf, int64(off)); err != nil && err != io.EOF {
		return nil, errf(d.name, "reading L2 table %d: %v", l1i, err)
	}
	t := make([]uint64, d.clusterSize/8)
	for i := range t {
		t[i] = binary.BigEndian.Uint64(buf[i*8:])
	}
	d.l2.put(off, t)
	return t, nil
}

// run is a stretch of the virtual disk, starting at the offset asked, with
// one status.
type run struct {
	n          int64
	kind       layouts.Kind
	compressed bool
	host       int64 // file (or data file) offset of the first byte, for data
}

// classify decodes a standard (not extended) L2 entry.
func (d *Disk) classify(e uint64, l2i int64) (layouts.Kind, bool, int64, error) {
	if e&flagCompressed != 0 {
		if d.data != d.f {
			return 0, false, 0, errf(d.name, "cluster %d is compressed in an image with an external data file: %w", l2i, layouts.ErrFormat)
		}
		if err := d.checkCompressed(e, l2i); err != nil {
			return 0, false, 0, err
		}
		return layouts.Data, true, 0, nil
	}
	if e&flagZero != 0 {
		return layouts.Zero, false, 0, nil
	}
	host := e & offsetMask
	if host == 0 && !d.hostZeroOK(e) {
		return layouts.Hole, false, 0, nil
	}
	if err := d.checkHost(host, l2i); err != nil {
		return 0, false, 0, err
	}
	return layouts.Data, false, int64(host), nil
}

// checkCompressed checks that a compressed cluster descriptor starts
// inside the file.
func (d *Disk) checkCompressed(e uint64, cluster int64) error {
	x := 62 - (d.clusterBits - 8)
	host := e & (1<<x - 1)
	if host == 0 || host >= uint64(d.f.Size()) {
		return errf(d.name, "compressed cluster %d at %#x points past end of file: %w", cluster, host, layouts.ErrFormat)
	}
	return nil
}

// hostZeroOK: with an external data file, host offset 0 is a real
// cluster when the copied flag is set.
func (d *Disk) hostZeroOK(e uint64) bool {
	return d.data != d.f && e&flagCopied != 0
}

func (d *Disk) checkHost(host uint64, cluster int64) error {
	if host&uint64(d.clusterSize-1) != 0 {
		return errf(d.name, "L2 entry of cluster %d: host offset %#x is not cluster aligned: %w", cluster, host, layouts.ErrFormat)
	}
	if host >= uint64(d.dataSize) {
		return errf(d.name, "L2 entry of cluster %d points past end of %s: %w", cluster, d.data.Name(), layouts.ErrFormat)
	}
	return nil
}

// lookup maps the run that starts at pos, at most limit bytes long.
func (d *Disk) lookup(pos, limit int64) (run, error) {
	c := pos >> d.clusterBits
	l1i := c >> d.l2Bits
	coverEnd := (l1i + 1) << (d.l2Bits + d.clusterBits)
	limit = min(limit, coverEnd-pos)
	if l1i >= int64(len(d.l1)) {
		return run{}, errf(d.name, "offset %d is beyond the L1 table: %w", pos, layouts.ErrFormat)
	}
	t, err := d.l2Table(l1i)
	if err != nil {
		return run{}, err
	}
	if t == nil {
		return run{n: limit, kind: layouts.Hole}, nil
	}
	idx := c & (1<<d.l2Bits - 1)
	in := pos & (d.clusterSize - 1)
	if d.extL2 {
		return d.lookupExt(t, c, idx, in, limit)
	}
	kind, comp, host, err := d.classify(t[idx], c)
	if err != nil {
		return run{}, err
	}
	r := run{n: d.clusterSize - in, kind: kind, compressed: comp}
	if kind == layouts.Data && !comp {
		r.host = host + in
	}
	for j := idx + 1; j < int64(len(t)) && r.n < limit; j++ {
		k2, c2, h2, err := d.classify(t[j], c+j-idx)
		if err != nil {
			if r.n > 0 {
				break // report the error when the reader gets there
			}
			return run{}, err
		}
		if k2 != kind || c2 != comp {
			break
		}
		if kind == layouts.Data && !comp && h2 != host+(j-idx)<<d.clusterBits {
			break
		}
		r.n += d.clusterSize
	}
	r.n = min(r.n, limit)
	return r, nil
}

// lookupExt maps a run inside one cluster of an image with extended L2
// entries (32 subclusters each with an allocation and a zero bit).
func (d *Disk) lookupExt(t []uint64, c, idx, in, limit int64) (run, error) {
	e, bm := t[2*idx], t[2*idx+1]
	limit = min(limit, d.clusterSize-in)
	if e&flagCompressed != 0 {
		if d.data != d.f {
			return run{}, errf(d.name, "cluster %d is compressed in an image with an external data file: %w", c, layouts.ErrFormat)
		}
		if err := d.checkCompressed(e, c); err != nil {
			return run{}, err
		}
		return run{n: limit, kind: layouts.Data, compressed: true}, nil
	}
	host := e & offsetMask
	alloc, zero := uint32(bm), uint32(bm>>32)
	if alloc&zero != 0 {
		return run{}, errf(d.name, "extended L2 entry of cluster %d marks subclusters both allocated and zero: %w", c, layouts.ErrFormat)
	}
	if alloc != 0 {
		if host == 0 && !d.hostZeroOK(e) {
			return run{}, errf(d.name, "extended L2 entry of cluster %d has allocated subclusters but no host offset: %w", c, layouts.ErrFormat)
		}
		if err := d.checkHost(host, c); err != nil {
			return run{}, err
		}
	}
	sub := d.clusterSize / 32
	status := func(i int64) layouts.Kind {
		switch {
		case alloc>>i&1 != 0:
			return layouts.Data
		case zero>>i&1 != 0:
			return layouts.Zero
		}
		return layouts.Hole
	}
	si := in / sub
	kind := status(si)
	n := (si+1)*sub - in
	for j := si + 1; j < 32 && n < limit && status(j) == kind; j++ {
		n += sub
	}
	r := run{n: min(n, limit), kind: kind}
	if kind == layouts.Data {
		r.host = int64(host) + in
	}
	return r, nil
}

// ReadAt reads the image's own layer: holes read as zeros.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	n, eof := layouts.CheckRead(d.size, p, off)
	if n == 0 {
		return 0, eof
	}
	end := off + int64(n)
	for pos := off; pos < end; {
		r, err := d.lookup(pos, end-pos)
		if err != nil {
			return 0, err
		}
		buf := p[pos-off : pos-off+r.n]
		switch {
		case r.kind != layouts.Data:
			clear(buf)
		case r.compressed:
			if err := d.readCompressed(buf, pos); err != nil {
				return 0, err
			}
		default:
			if err := d.readData(buf, r.host); err != nil {
				return 0, err
			}
		}
		pos += r.n
	}
	return n, eof
}

// readData reads stored clusters. Like QEMU, bytes of a cluster that lie
// past the end of the file read as zeros.
func (d *Disk) readData(buf []byte, host int64) error {
	short, err := layouts.ReadZeroTail(d.data, buf, host, d.dataSize)
	if err != nil {
		return errf(d.name, "reading cluster data at %#x: %v", host, err)
	}
	if short {
		return errf(d.name, "short read of cluster data at %#x: %w", host, io.ErrUnexpectedEOF)
	}
	return nil
}

// Extents reports the image's own layer: Hole where the backing file (or
// zeros) shows through, Zero for zero clusters, Data for stored clusters
// (compressed ones included).
func (d *Disk) Extents(off, n int64) ([]layouts.Extent, error) {
	off, n, ok := layouts.Clip(d.size, off, n)
	if !ok {
		return nil, nil
	}
	var b layouts.Builder
	end := off + n
	for pos := off; pos < end; {
		r, err := d.lookup(pos, end-pos)
		if err != nil {
			return nil, err
		}
		b.Add(pos, r.n, r.kind)
		pos += r.n
	}
	return b.Extents(), nil
}

// MapFile says where the image's own bytes from off lie in a plain file:
// a run of stored, uncompressed clusters that are contiguous in the data
// file. Bytes of a cluster past the end of the data file read as zeros, so
// the range stops at the end of the file.
func (d *Disk) MapFile(off, n int64) (layouts.FileRange, bool) {
	f, ok := layouts.OSFile(d.data)
	if !ok || off < 0 || n <= 0 || off >= d.size {
		return layouts.FileRange{}, false
	}
	r, err := d.lookup(off, min(n, d.size-off))
	if err != nil || r.kind != layouts.Data || r.compressed || r.host >= d.dataSize {
		return layouts.FileRange{}, false
	}
	return layouts.FileRange{File: f, Off: r.host, Len: min(r.n, d.dataSize-r.host)}, true
}
