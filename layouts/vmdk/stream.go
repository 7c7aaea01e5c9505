package vmdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"

	"github.com/klauspost/compress/zlib"
)

// inflater is a reusable zlib reader, pooled by the extent that uses it.
type inflater struct {
	src bytes.Reader
	zr  io.ReadCloser
}

// grainData returns the inflated grain gi of a compressed extent, whose
// grain table entry points at byte e. Inflated grains are kept in a bounded
// cache.
func (m *grainMap) grainData(gi, e int64) ([]byte, error) {
	k := cacheKey{m.id, gi}
	if g, ok := m.grains.get(k); ok {
		return g, nil
	}
	out := make([]byte, m.grain)
	if err := m.inflateGrain(gi, e, out); err != nil {
		return nil, err
	}
	m.grains.put(k, out, int64(len(out)))
	return out, nil
}

// readGrain fills p, the whole grain gi, without going through the cache
// when the grain is not there: a sequential reader reads each grain once.
func (m *grainMap) readGrain(gi, e int64, p []byte) error {
	if g, ok := m.grains.get(cacheKey{m.id, gi}); ok {
		copy(p, g)
		return nil
	}
	return m.inflateGrain(gi, e, p)
}

// inflateGrain inflates grain gi, stored at byte e, into out (one grain
// long). A grain that inflates beyond the grain size is an error, as is one
// that ends before the disk does.
func (m *grainMap) inflateGrain(gi, e int64, out []byte) error {
	// A compressed grain never needs more than twice the grain size.
	limit := 2*m.grain + sector
	bp, _ := m.bufs.Get().(*[]byte)
	if bp == nil || int64(cap(*bp)) < limit {
		b := make([]byte, limit)
		bp = &b
	}
	defer m.bufs.Put(bp)
	buf := (*bp)[:min(limit, m.fileSize-e)]
	// Most grains compress to less than a grain plus a page: read that
	// much first, the rest only when the marker says the grain is longer
	// (data that does not compress).
	first := buf
	if m.markers {
		first = buf[:min(int64(len(buf)), m.grain+4096)]
	}
	if err := readFull(m.f, first, e); err != nil {
		return errf(m.name, errFormat, "reading compressed grain %d: %v", gi, err)
	}
	data := buf
	if m.markers {
		if len(first) < 12 {
			return errf(m.name, errFormat, "compressed grain %d at byte %d is truncated", gi, e)
		}
		lba := binary.LittleEndian.Uint64(buf)
		n := int64(binary.LittleEndian.Uint32(buf[8:]))
		if n > 0 && 12+n > int64(len(first)) && 12+n <= int64(len(buf)) {
			if err := readFull(m.f, buf[len(first):12+n], e+int64(len(first))); err != nil {
				return errf(m.name, errFormat, "reading compressed grain %d: %v", gi, err)
			}
		}
		if n == 0 || n > int64(len(buf))-12 {
			return errf(m.name, errFormat, "compressed grain %d at byte %d: size %d runs past end of file or grain limit", gi, e, n)
		}
		if lba != uint64(gi*m.grain/sector) {
			return errf(m.name, errFormat, "compressed grain %d at byte %d is marked for sector %d, want %d", gi, e, lba, gi*m.grain/sector)
		}
		data = buf[12 : 12+n]
	}
	inf, _ := m.inflaters.Get().(*inflater)
	if inf == nil {
		inf = new(inflater)
	}
	defer m.inflaters.Put(inf)
	inf.src.Reset(data)
	var err error
	if inf.zr == nil {
		inf.zr, err = zlib.NewReader(&inf.src)
	} else {
		err = inf.zr.(zlib.Resetter).Reset(&inf.src, nil)
	}
	if err != nil {
		inf.zr = nil
		return errf(m.name, errFormat, "compressed grain %d at byte %d: %v", gi, e, err)
	}
	n, err := io.ReadFull(inf.zr, out)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return errf(m.name, errFormat, "compressed grain %d at byte %d: %v", gi, e, err)
	}
	if err == nil {
		// The grain is full: the stream must end here (and its checksum
		// is checked on the way).
		var one [1]byte
		k, err := inf.zr.Read(one[:])
		if k > 0 {
			return errf(m.name, errFormat, "compressed grain %d at byte %d inflates beyond the grain size of %d bytes", gi, e, m.grain)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return errf(m.name, errFormat, "compressed grain %d at byte %d: %v", gi, e, err)
		}
	}
	if want := min(m.grain, m.size-gi*m.grain); int64(n) < want {
		return errf(m.name, errFormat, "compressed grain %d at byte %d inflates to %d bytes, want %d", gi, e, n, want)
	}
	clear(out[n:])
	return nil
}
