package layouts

import (
	"errors"
	"io"
	"sync"
)

// VisitFunc walks the runs of [off, end) of a block-mapped disk in order,
// calling fn for each: a run of l bytes at o of kind k. Data runs carry
// fileOff, the offset in the image file of the run's first byte. It
// returns the first error fn returns, unchanged.
type VisitFunc func(off, end int64, fn func(o, l int64, k Kind, fileOff int64) error) error

// MappedDisk serves Size, Close, ReadAt, Extents and MapFile of a disk whose bytes are
// either stored plainly in one image file or not stored at all
// (block-mapped formats such as VHD, VHDX and VDI), from the format's
// visit and readData. A disk embeds one and sets it up with InitMapped
// once it knows its size; the MappedDisk then owns the walk states its
// calls reuse, so that walks do not allocate and nothing of one disk's
// reads outlives the disk.
type MappedDisk struct {
	visit    VisitFunc
	readData func(buf []byte, fileOff int64) error // the format's own errors
	f        File
	size     int64
	walks    sync.Pool // of *mappedWalk
}

// InitMapped sets md up for a disk of size bytes stored in f: visit walks
// its runs, readData reads stored bytes from f at fileOff with the
// format's own errors.
func (md *MappedDisk) InitMapped(f File, size int64, visit VisitFunc, readData func(buf []byte, fileOff int64) error) {
	md.f, md.size, md.visit, md.readData = f, size, visit, readData
}

// Size is the disk's size.
func (md *MappedDisk) Size() int64 { return md.size }

// Close closes the image file.
func (md *MappedDisk) Close() error { return md.f.Close() }

// mappedWalk is the state of one read, Extents or MapFile walk. The
// callbacks are bound once per pooled state.
type mappedWalk struct {
	md   *MappedDisk
	p    []byte
	base int64
	// pending (read) or mapped (MapFile) Data run
	pOff, pLen, pFile int64
	b                 Builder // Extents
	read, mapf, ext   func(o, l int64, k Kind, fileOff int64) error
}

func (md *MappedDisk) getWalk(p []byte, base int64) *mappedWalk {
	w, _ := md.walks.Get().(*mappedWalk)
	if w == nil {
		w = &mappedWalk{md: md}
		w.read, w.mapf, w.ext = w.readRun, w.mapRun, w.extRun
	}
	w.p, w.base = p, base
	w.pOff, w.pLen, w.pFile = base, 0, 0
	return w
}

func (w *mappedWalk) put() {
	w.p, w.b = nil, Builder{}
	w.md.walks.Put(w)
}

func (w *mappedWalk) flush() error {
	if w.pLen == 0 {
		return nil
	}
	err := w.md.readData(w.p[w.pOff-w.base:w.pOff-w.base+w.pLen], w.pFile)
	w.pLen = 0
	return err
}

func (w *mappedWalk) readRun(o, l int64, k Kind, fileOff int64) error {
	if k == Data {
		if w.pLen > 0 && w.pOff+w.pLen == o && w.pFile+w.pLen == fileOff {
			w.pLen += l
			return nil
		}
		if err := w.flush(); err != nil {
			return err
		}
		w.pOff, w.pLen, w.pFile = o, l, fileOff
		return nil
	}
	clear(w.p[o-w.base : o-w.base+l])
	return nil
}

// ReadAt reads the disk: runs that are not Data read as zeros, Data runs
// are read with readData, merged while they are contiguous both in the
// disk and in the file so that a read costs one call per file run. Errors
// are the format's own, returned as they are.
func (md *MappedDisk) ReadAt(p []byte, off int64) (int, error) {
	n, eof := CheckRead(md.size, p, off)
	if n == 0 {
		return 0, eof
	}
	if err := md.readMapped(p[:n], off); err != nil {
		return 0, err
	}
	return n, eof
}

// readMapped fills p, which lies within the disk, from off.
func (md *MappedDisk) readMapped(p []byte, off int64) error {
	w := md.getWalk(p, off)
	defer w.put()
	if err := md.visit(off, off+int64(len(p)), w.read); err != nil {
		return err
	}
	return w.flush()
}

// Extents describes [off, off+n) from the disk's runs.
func (md *MappedDisk) Extents(off, n int64) ([]Extent, error) {
	off, n, ok := Clip(md.size, off, n)
	if !ok {
		return nil, nil
	}
	w := md.getWalk(nil, off)
	defer w.put()
	if err := md.visit(off, off+n, w.ext); err != nil {
		return nil, err
	}
	return w.b.Extents(), nil
}

func (w *mappedWalk) extRun(o, l int64, k Kind, _ int64) error {
	w.b.Add(o, l, k)
	return nil
}

// errStopMap ends a MapFile walk at the first run it cannot join.
var errStopMap = errors.New("layouts: end of file run")

func (w *mappedWalk) mapRun(o, l int64, k Kind, fileOff int64) error {
	if k != Data || o != w.pOff+w.pLen || (w.pLen > 0 && fileOff != w.pFile+w.pLen) {
		return errStopMap
	}
	if w.pLen == 0 {
		w.pFile = fileOff
	}
	w.pLen += l
	return nil
}

// MapFile maps the disk's bytes from off, at most n, to the range of the
// image file holding them: Data runs from off while they are contiguous
// in the file, cut at the file's end (bytes past the end of the file are
// not plain file bytes). ok is false when the file is not a plain file or
// the bytes at off are not Data.
func (md *MappedDisk) MapFile(off, n int64) (r FileRange, ok bool) {
	if off < 0 || n <= 0 || off >= md.size {
		return FileRange{}, false
	}
	n = min(n, md.size-off)
	o, isOS := OSFile(md.f)
	if !isOS {
		return FileRange{}, false
	}
	w := md.getWalk(nil, off)
	err := md.visit(off, off+n, w.mapf)
	start, length := w.pFile, w.pLen
	w.put()
	if err != nil && err != errStopMap {
		return FileRange{}, false
	}
	length = min(length, n, md.f.Size()-start)
	if length <= 0 || start < 0 {
		return FileRange{}, false
	}
	return FileRange{File: o, Off: start, Len: length}, true
}

// ReadZeroTail fills buf from r at off, where r is an image file of size
// bytes whose last block or cluster the file's end may cut: like QEMU,
// bytes past the end of the file read as zeros. err is r's error when the
// read fails otherwise; short is true when r ends before size.
func ReadZeroTail(r io.ReaderAt, buf []byte, off, size int64) (short bool, err error) {
	m, err := r.ReadAt(buf, off)
	if m == len(buf) {
		return false, nil
	}
	if err != nil && err != io.EOF {
		return false, err
	}
	if off+int64(m) < size {
		return true, nil
	}
	clear(buf[m:])
	return false, nil
}

// VisitBitmap calls fn for the runs of [off, end) of a block that starts
// at bstart and whose sectors of unit bytes are present where bits has
// their bit set: present runs are Data at file offset data+o for disk
// offset o, the others Hole. Bits are numbered from the most significant
// bit of each byte when msbFirst (VHD), from the least (VHDX). It returns
// the first error fn returns, unchanged.
func VisitBitmap(bits []byte, msbFirst bool, unit, bstart, off, end, data int64, fn func(o, l int64, k Kind, fileOff int64) error) error {
	// bit s of bits is 1<<(s%8 ^ flip) of its byte
	var flip int64
	if msbFirst {
		flip = 7
	}
	lim := (end - bstart + unit - 1) / unit
	for off < end {
		s := (off - bstart) / unit
		set := bits[s/8]&(1<<(s%8^flip)) != 0
		// extend the run while the bits agree
		e := s + 1
		for e < lim {
			b := bits[e/8]
			if e%8 == 0 && e+8 <= lim && (b == 0xFF && set || b == 0 && !set) {
				e += 8
				continue
			}
			if (b&(1<<(e%8^flip)) != 0) != set {
				break
			}
			e++
		}
		rend := min(bstart+e*unit, end)
		k := Hole
		if set {
			k = Data
		}
		if err := fn(off, rend-off, k, data+off); err != nil {
			return err
		}
		off = rend
	}
	return nil
}

// ReadFull reads exactly len(p) bytes of r at off; a read that ends early
// without an error of its own fails with io.ErrUnexpectedEOF.
func ReadFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
