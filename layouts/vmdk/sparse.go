package vmdk

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/layouts"
)

// Decoded grain table entries: a positive value is the byte offset of the
// grain in the extent file.
const (
	gteHole int64 = 0
	gteZero int64 = -1
)

const (
	sector = 512
	// maxGrainSectors bounds a grain (64 MiB), maxPerGT a grain table, so
	// that no header can make a single allocation large.
	maxGrainSectors = 1 << 17
	maxPerGT        = 1 << 16
	// maxCompressedGrainSectors bounds compressed grains (2 MiB; VMware
	// and qemu write 64 KiB).
	maxCompressedGrainSectors = 1 << 12
)

// grainMap is a sparse extent: a grain directory of grain tables of grain
// entries. Hosted sparse (KDMV), streamOptimized, vmfsSparse (COWD) and
// seSparse differ in their headers and entry encodings only.
type grainMap struct {
	f     layouts.File
	name  string
	id    int32
	size  int64 // virtual bytes of the extent
	grain int64 // bytes per grain
	perGT int64 // entries per grain table
	gd    []int64
	// empty has a bit set for each grain table found to hold no grain:
	// a big sparse disk's many empty tables cost one bit each, not a
	// cache entry, and walking them again reads nothing.
	empty    []atomic.Uint64
	entry    int // bytes per raw grain table entry: 4 or 8
	fileSize int64

	// decode turns a raw entry into a byte offset, gteHole or gteZero.
	decode func(raw uint64) (int64, error)

	compressed bool
	markers    bool

	gts       *lru[[]int64]
	grains    *lru[[]byte]
	bufs      sync.Pool // compressed input buffers
	rawBufs   sync.Pool // raw grain table buffers
	inflaters sync.Pool // of *inflater
}

// gtSpan is the virtual bytes one grain table covers.
func (m *grainMap) gtSpan() int64 { return m.grain * m.perGT }

// checkGD validates the grain directory geometry against the file, before
// anything is allocated from it.
func (m *grainMap) checkGeometry(what string, numGD int64) error {
	if m.grain <= 0 || m.grain > maxGrainSectors*sector {
		return errf(m.name, errFormat, "%s: grain size %d bytes out of range", what, m.grain)
	}
	if m.perGT <= 0 || m.perGT > maxPerGT {
		return errf(m.name, errFormat, "%s: %d entries per grain table out of range", what, m.perGT)
	}
	need := (m.size + m.gtSpan() - 1) / m.gtSpan()
	if numGD < need {
		return errf(m.name, errFormat, "%s: grain directory has %d entries, capacity needs %d", what, numGD, need)
	}
	return nil
}

// readGD reads numGD entries of entSize bytes at byte offset off, mapping
// each through gtOff (which returns the grain table's byte offset or 0).
func (m *grainMap) readGD(off, numGD int64, entSize int, gtOff func(uint64) (int64, error)) error {
	gdBytes := numGD * int64(entSize)
	if off <= 0 || numGD < 0 || numGD > m.fileSize/int64(entSize) || off > m.fileSize-gdBytes {
		return errf(m.name, errFormat, "grain directory (%d entries at byte %d) runs past end of file", numGD, off)
	}
	raw := make([]byte, gdBytes)
	if err := readFull(m.f, raw, off); err != nil {
		return errf(m.name, errFormat, "reading grain directory: %v", err)
	}
	m.gd = make([]int64, numGD)
	m.empty = make([]atomic.Uint64, (numGD+63)/64)
	gtBytes := m.perGT * int64(m.entry)
	for i := range m.gd {
		var v uint64
		if entSize == 4 {
			v = uint64(binary.LittleEndian.Uint32(raw[i*4:]))
		} else {
			v = binary.LittleEndian.Uint64(raw[i*8:])
		}
		if v == 0 {
			continue
		}
		o, err := gtOff(v)
		if err != nil {
			return errf(m.name, errFormat, "grain table %d: %v", i, err)
		}
		if o <= 0 || o > m.fileSize-gtBytes {
			if int64(i)*m.gtSpan() >= m.size {
				continue // beyond the capacity: never used
			}
			return errf(m.name, errFormat, "grain table %d points past end of file", i)
		}
		m.gd[i] = o
	}
	m.markHoleTables()
	return nil
}

// markHoleTables marks empty every grain table that lies wholly in a hole
// of the extent file: a hole reads as zeros, an empty table. qemu and
// VMware allocate all tables of a sparse disk up front (32 768, 64 MiB for
// 1 TiB) but write only those that gain a grain, so asking the file system
// where its data lies (two lseeks per data run) spares reading the rest:
// walking the disk then costs in proportion to the metadata written.
func (m *grainMap) markHoleTables() {
	f, ok := layouts.OSFile(m.f)
	if !ok || len(m.gd) == 0 {
		return
	}
	fd := int(f.Fd())
	gtBytes := m.perGT * int64(m.entry)
	order := make([]int32, 0, len(m.gd))
	for i, o := range m.gd {
		if o != 0 {
			order = append(order, int32(i))
		}
	}
	if !slices.IsSortedFunc(order, func(a, b int32) int { return cmp.Compare(m.gd[a], m.gd[b]) }) {
		slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(m.gd[a], m.gd[b]) })
	}
	// The bitmap is not shared yet: built in plain words, stored at the end.
	bits := make([]uint64, len(m.empty))
	defer func() {
		for w, v := range bits {
			if v != 0 {
				m.empty[w].Or(v)
			}
		}
	}()
	// [dataOff, dataEnd) is the file's data run last asked about.
	dataOff, dataEnd := int64(-1), int64(-1)
	for _, i := range order {
		o := m.gd[i]
		if o >= dataEnd {
			d, err := unix.Seek(fd, o, unix.SEEK_DATA)
			if err == unix.ENXIO {
				d = m.fileSize // no data from o on
			} else if err != nil {
				return // no SEEK_DATA here: tables are read as before
			}
			dataOff, dataEnd = d, d
			if d < m.fileSize {
				h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
				if err != nil {
					return
				}
				dataEnd = h
			}
		}
		if o+gtBytes <= dataOff {
			bits[i/64] |= 1 << (i % 64)
		}
	}
}

func (m *grainMap) isEmpty(gti int64) bool {
	return m.empty != nil && m.empty[gti/64].Load()&(1<<(gti%64)) != 0
}

func (m *grainMap) setEmpty(gti int64) {
	if m.empty != nil {
		m.empty[gti/64].Or(1 << (gti % 64))
	}
}

// gtBatch bounds how many grain tables one read loads ahead when they are
// stored next to each other (extent walks read every table in turn).
const gtBatch = 32

// table returns the decoded grain table gti, or nil when it is not
// allocated or holds no allocated grain.
func (m *grainMap) table(gti int64) ([]int64, error) {
	return m.tableAhead(gti, 1)
}

// tableAhead is table, loading up to ahead tables from gti with one read
// when they are contiguous in the file and not cached yet.
func (m *grainMap) tableAhead(gti, ahead int64) ([]int64, error) {
	if gti < 0 || gti >= int64(len(m.gd)) || m.gd[gti] == 0 || m.isEmpty(gti) {
		return nil, nil
	}
	k := cacheKey{m.id, gti}
	if gt, ok := m.gts.get(k); ok {
		if len(gt) == 0 {
			return nil, nil
		}
		return gt, nil
	}
	gtBytes := m.perGT * int64(m.entry)
	n := int64(1)
	for n < min(ahead, gtBatch) && gti+n < int64(len(m.gd)) && m.gd[gti+n] == m.gd[gti]+n*gtBytes {
		if m.isEmpty(gti + n) {
			break
		}
		if _, ok := m.gts.get(cacheKey{m.id, gti + n}); ok {
			break
		}
		n++
	}
	bp, _ := m.rawBufs.Get().(*[]byte)
	if bp == nil || int64(cap(*bp)) < n*gtBytes {
		b := make([]byte, max(n, gtBatch)*gtBytes)
		bp = &b
	}
	defer m.rawBufs.Put(bp)
	raw := (*bp)[:n*gtBytes]
	if err := readFull(m.f, raw, m.gd[gti]); err != nil {
		return nil, errf(m.name, errFormat, "reading grain table %d: %v", gti, err)
	}
	var first []int64
	for i := range n {
		gt, err := m.decodeGT(gti+i, raw[i*gtBytes:(i+1)*gtBytes])
		if err != nil {
			return nil, err
		}
		if gt == nil {
			m.setEmpty(gti + i)
		} else {
			m.gts.put(cacheKey{m.id, gti + i}, gt, int64(len(gt))*8+64)
		}
		if i == 0 {
			first = gt
		}
	}
	return first, nil
}

// decodeGT decodes and checks the raw grain table gti; nil means every
// entry is unallocated.
func (m *grainMap) decodeGT(gti int64, raw []byte) ([]int64, error) {
	if allZeroBytes(raw) {
		// Most tables of a big sparse disk (qemu allocates them all up
		// front) hold no grain: skip the per-entry loop.
		return nil, nil
	}
	var gt []int64
	for j := int64(0); j < m.perGT; j++ {
		var v uint64
		if m.entry == 4 {
			v = uint64(binary.LittleEndian.Uint32(raw[j*4:]))
		} else {
			v = binary.LittleEndian.Uint64(raw[j*8:])
		}
		if v == 0 {
			continue
		}
		start := (gti*m.perGT + j) * m.grain
		if start >= m.size {
			break // entries past the capacity are never read
		}
		o, err := m.decode(v)
		if err != nil {
			return nil, errf(m.name, errFormat, "grain table %d entry %d: %v", gti, j, err)
		}
		if o > 0 {
			need := min(m.grain, m.size-start)
			if m.compressed {
				need = 1
			}
			if o > m.fileSize-need {
				return nil, errf(m.name, errFormat, "grain table %d entry %d points past end of file", gti, j)
			}
		}
		if o == gteHole {
			continue
		}
		if gt == nil {
			gt = make([]int64, m.perGT)
		}
		gt[j] = o
	}
	return gt, nil
}

// allZeroBytes reports whether b holds only zeros, comparing in blocks.
func allZeroBytes(b []byte) bool {
	var zero [4096]byte
	for len(b) > 0 {
		n := min(len(b), len(zero))
		if !bytes.Equal(b[:n], zero[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// readAt fills p from the extent's virtual offset off; [off, off+len(p))
// lies inside the extent.
func (m *grainMap) readAt(p []byte, off int64) error {
	// A run of grains contiguous in the file is read with one pread.
	var run []byte
	var runFile, runLen int64
	flush := func() error {
		if runLen == 0 {
			return nil
		}
		err := readFull(m.f, run[:runLen], runFile)
		runLen = 0
		if err != nil {
			return errf(m.name, errFormat, "reading grains at byte %d: %v", runFile, err)
		}
		return nil
	}
	for len(p) > 0 {
		gti := off / m.gtSpan()
		gt, err := m.table(gti)
		if err != nil {
			return err
		}
		gtEnd := (gti + 1) * m.gtSpan()
		for len(p) > 0 && off < gtEnd {
			gi := off / m.grain
			in := off - gi*m.grain
			n := min(int64(len(p)), m.grain-in)
			e := gteHole
			if gt != nil {
				e = gt[gi-gti*m.perGT]
			}
			switch {
			case e <= 0:
				if err := flush(); err != nil {
					return err
				}
				clear(p[:n])
			case m.compressed:
				if err := flush(); err != nil {
					return err
				}
				if in == 0 && n == m.grain {
					if err := m.readGrain(gi, e, p[:n]); err != nil {
						return err
					}
					break
				}
				g, err := m.grainData(gi, e)
				if err != nil {
					return err
				}
				copy(p[:n], g[in:in+n])
			default:
				fo := e + in
				if runLen > 0 && runFile+runLen == fo {
					runLen += n
				} else {
					if err := flush(); err != nil {
						return err
					}
					run, runFile, runLen = p, fo, n
				}
			}
			p = p[n:]
			off += n
		}
	}
	return flush()
}

// extents adds the kinds of [off, off+n) of the extent, shifted by base.
func (m *grainMap) extents(b *layouts.Builder, base, off, n int64) error {
	end := off + n
	for off < end {
		gti := off / m.gtSpan()
		gtEnd := min((gti+1)*m.gtSpan(), end)
		gt, err := m.tableAhead(gti, (end-off+m.gtSpan()-1)/m.gtSpan())
		if err != nil {
			return err
		}
		if gt == nil {
			b.Add(base+off, gtEnd-off, layouts.Hole)
			off = gtEnd
			continue
		}
		for off < gtEnd {
			gi := off / m.grain
			gEnd := min((gi+1)*m.grain, gtEnd)
			k := layouts.Data
			switch gt[gi-gti*m.perGT] {
			case gteHole:
				k = layouts.Hole
			case gteZero:
				k = layouts.Zero
			}
			b.Add(base+off, gEnd-off, k)
			off = gEnd
		}
	}
	return nil
}

func (m *grainMap) files() []string { return []string{m.f.Name()} }

// readFull reads exactly len(p) bytes at off.
func readFull(f io.ReaderAt, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("file ends after %d of %d bytes at byte %d", n, len(p), off)
	}
	return err
}

// Hosted sparse extent header ("KDMV"), little endian.
const (
	kdmvMagic    = 0x564d444b // "KDMV"
	gdAtEnd      = 0xffffffffffffffff
	flagNewline  = 1 << 0
	flagRGD      = 1 << 1
	flagZeroGTE  = 1 << 2
	flagCompress = 1 << 16
	flagMarkers  = 1 << 17
)

type kdmvHeader struct {
	version, flags       uint32
	capacity, grainSize  uint64
	descOffset, descSize uint64
	perGT                uint32
	rgdOffset, gdOffset  uint64
	overhead             uint64
	nl1, sp, cr, nl2     byte
	compressAlgorithm    uint16
}

func parseKDMV(b []byte) kdmvHeader {
	le := binary.LittleEndian
	return kdmvHeader{
		version:           le.Uint32(b[4:]),
		flags:             le.Uint32(b[8:]),
		capacity:          le.Uint64(b[12:]),
		grainSize:         le.Uint64(b[20:]),
		descOffset:        le.Uint64(b[28:]),
		descSize:          le.Uint64(b[36:]),
		perGT:             le.Uint32(b[44:]),
		rgdOffset:         le.Uint64(b[48:]),
		gdOffset:          le.Uint64(b[56:]),
		overhead:          le.Uint64(b[64:]),
		nl1:               b[73],
		sp:                b[74],
		cr:                b[75],
		nl2:               b[76],
		compressAlgorithm: le.Uint16(b[77:]),
	}
}

// openKDMV opens a hosted sparse extent whose first sector is hdr. It
// returns the extent and the embedded descriptor text, if any.
func openKDMV(f layouts.File, hdr []byte, id int32, c *caches) (*grainMap, []byte, error) {
	name := f.Name()
	fileSize := f.Size()
	h := parseKDMV(hdr)
	if h.version == 0 || h.version > 3 {
		return nil, nil, errf(name, errUnsupported, "sparse header version %d not supported", h.version)
	}
	if h.flags&flagNewline != 0 && (h.nl1 != '\n' || h.sp != ' ' || h.cr != '\r' || h.nl2 != '\n') {
		return nil, nil, errf(name, errFormat, "sparse header newline check bytes damaged (file copied in text mode?)")
	}
	// The embedded descriptor comes from the first header.
	var desc []byte
	if h.descOffset > 0 && h.descSize > 0 {
		if h.descOffset >= uint64(fileSize)/sector {
			return nil, nil, errf(name, errFormat, "embedded descriptor at sector %d lies past end of file", h.descOffset)
		}
		off := int64(h.descOffset) * sector
		n := min(int64(min(h.descSize, maxDescriptor/sector))*sector, fileSize-off)
		desc = make([]byte, n)
		if err := readFull(f, desc, off); err != nil {
			return nil, nil, errf(name, errFormat, "reading embedded descriptor: %v", err)
		}
		if h.descSize > maxDescriptor/sector && n == maxDescriptor && bytes.IndexByte(desc, 0) < 0 {
			// The text goes on past the limit: reading part of it
			// would be a guess.
			return nil, nil, errf(name, errFormat, "embedded descriptor is longer than the %s vmfs reads", sizeText(maxDescriptor))
		}
	}
	if h.flags&flagMarkers != 0 {
		if err := checkEOS(f); err != nil {
			return nil, nil, err
		}
	}
	if h.gdOffset == gdAtEnd {
		fh, err := readFooter(f)
		if err != nil {
			return nil, nil, err
		}
		h = fh
	}
	compressed := h.flags&flagCompress != 0
	if compressed && h.compressAlgorithm != 1 {
		return nil, nil, errf(name, errUnsupported, "compression algorithm %d not supported", h.compressAlgorithm)
	}
	if compressed && h.grainSize > maxCompressedGrainSectors {
		// Inflated grains are held in memory: refuse sizes no writer uses.
		return nil, nil, errf(name, errUnsupported, "compressed grains of %d sectors not supported (at most %d)", h.grainSize, maxCompressedGrainSectors)
	}
	if h.capacity > maxSectors {
		return nil, nil, errf(name, errFormat, "capacity of %d sectors overflows", h.capacity)
	}
	if h.grainSize == 0 || h.grainSize > maxGrainSectors {
		return nil, nil, errf(name, errFormat, "grain size of %d sectors out of range", h.grainSize)
	}
	if h.perGT == 0 || h.perGT > maxPerGT {
		return nil, nil, errf(name, errFormat, "%d entries per grain table out of range", h.perGT)
	}
	m := &grainMap{
		f: f, name: name, id: id,
		size:       int64(h.capacity) * sector,
		grain:      int64(h.grainSize) * sector,
		perGT:      int64(h.perGT),
		entry:      4,
		fileSize:   fileSize,
		compressed: compressed,
		markers:    h.flags&flagMarkers != 0,
		gts:        c.gts,
		grains:     c.grains,
	}
	// Entry 1 marks a zero grain (flagZeroGTE); no grain can live in the
	// header's sector, so it is read as zeros whatever the flag says.
	m.decode = func(v uint64) (int64, error) {
		switch v {
		case 0:
			return gteHole, nil
		case 1:
			return gteZero, nil
		}
		return int64(v) * sector, nil
	}
	numGD := (m.size + m.gtSpan() - 1) / m.gtSpan()
	if h.gdOffset > uint64(fileSize)/sector {
		return nil, nil, errf(name, errFormat, "grain directory at sector %d lies past end of file", h.gdOffset)
	}
	if numGD == 0 {
		return m, desc, nil
	}
	if err := m.readGD(int64(h.gdOffset)*sector, numGD, 4, func(v uint64) (int64, error) {
		return int64(v) * sector, nil
	}); err != nil {
		return nil, nil, err
	}
	return m, desc, nil
}

// Stream-optimized markers.
const (
	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3
)

// checkEOS checks that a stream-optimized file ends with an end-of-stream
// marker, so that a truncated stream is refused rather than read in part.
func checkEOS(f layouts.File) error {
	size := f.Size()
	var b [sector]byte
	if size%sector != 0 || size < 2*sector {
		return errf(f.Name(), errFormat, "stream-optimized file of %d bytes is not a whole number of sectors (truncated?)", size)
	}
	if err := readFull(f, b[:], size-sector); err != nil {
		return errf(f.Name(), errFormat, "reading end-of-stream marker: %v", err)
	}
	le := binary.LittleEndian
	if le.Uint64(b[:]) != 0 || le.Uint32(b[8:]) != 0 || le.Uint32(b[12:]) != markerEOS {
		return errf(f.Name(), errFormat, "stream-optimized file does not end with an end-of-stream marker (truncated?)")
	}
	return nil
}

// readFooter reads the footer of a streamOptimized extent: a footer marker,
// a copy of the header with the real grain directory offset, and an
// end-of-stream marker, in the last three sectors.
func readFooter(f layouts.File) (kdmvHeader, error) {
	name := f.Name()
	size := f.Size()
	if size < 4*sector {
		return kdmvHeader{}, errf(name, errFormat, "grain directory is at the end but the footer is missing (file truncated?)")
	}
	b := make([]byte, 3*sector)
	if err := readFull(f, b, size-3*sector); err != nil {
		return kdmvHeader{}, errf(name, errFormat, "reading footer: %v", err)
	}
	le := binary.LittleEndian
	marker, eos, hdr := b[:sector], b[2*sector:], b[sector:2*sector]
	if le.Uint32(marker[8:]) != 0 || le.Uint32(marker[12:]) != markerFooter ||
		le.Uint32(eos[8:]) != 0 || le.Uint32(eos[12:]) != markerEOS || le.Uint32(hdr) != kdmvMagic {
		return kdmvHeader{}, errf(name, errFormat, "grain directory is at the end but the footer is missing or damaged (file truncated?)")
	}
	h := parseKDMV(hdr)
	if h.gdOffset == gdAtEnd {
		return kdmvHeader{}, errf(name, errFormat, "footer has no grain directory offset")
	}
	return h, nil
}
