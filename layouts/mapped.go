package layouts

import (
	"errors"
	"sync"
)

// Mapped is a disk whose bytes are either stored plainly in one image file
// or not stored at all (block-mapped formats such as VHD, VHDX and VDI).
// Such a disk implements ReadAt, Extents and MapFile with ReadMapped,
// ExtentsMapped and MapFileMapped over its Mapped view.
type Mapped interface {
	// Visit walks the runs of [off, end) in order, calling fn for each: a
	// run of l bytes at o of kind k. Data runs carry fileOff, the offset
	// in the image file of the run's first byte. Visit returns the first
	// error fn returns, unchanged.
	Visit(off, end int64, fn func(o, l int64, k Kind, fileOff int64) error) error
	// ReadData reads stored bytes from the image file at fileOff, with
	// the format's own errors.
	ReadData(buf []byte, fileOff int64) error
}

// mappedWalk is the state of one ReadMapped or MapFileMapped walk. The
// callbacks are bound once per pooled state, so that walks do not allocate.
type mappedWalk struct {
	m    Mapped
	p    []byte
	base int64
	// pending (ReadMapped) or mapped (MapFileMapped) Data run
	pOff, pLen, pFile int64
	b                 Builder // ExtentsMapped
	read, mapf, ext   func(o, l int64, k Kind, fileOff int64) error
}

var mappedWalks = sync.Pool{New: func() any {
	w := new(mappedWalk)
	w.read, w.mapf, w.ext = w.readRun, w.mapRun, w.extRun
	return w
}}

func getWalk(m Mapped, p []byte, base int64) *mappedWalk {
	w := mappedWalks.Get().(*mappedWalk)
	w.m, w.p, w.base = m, p, base
	w.pOff, w.pLen, w.pFile = base, 0, 0
	return w
}

func (w *mappedWalk) put() {
	w.m, w.p, w.b = nil, nil, Builder{}
	mappedWalks.Put(w)
}

func (w *mappedWalk) flush() error {
	if w.pLen == 0 {
		return nil
	}
	err := w.m.ReadData(w.p[w.pOff-w.base:w.pOff-w.base+w.pLen], w.pFile)
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

// ReadMapped fills p with m's bytes from off: runs that are not Data read
// as zeros, Data runs are read with ReadData, merged while they are
// contiguous both in the disk and in the file so that a read costs one
// call per file run. p must lie within the disk (see CheckRead). Errors
// are m's own, returned as they are.
func ReadMapped(m Mapped, p []byte, off int64) error {
	w := getWalk(m, p, off)
	defer w.put()
	if err := m.Visit(off, off+int64(len(p)), w.read); err != nil {
		return err
	}
	return w.flush()
}

// ExtentsMapped describes [off, off+n) of m from its runs. The range must
// lie within the disk (see Clip).
func ExtentsMapped(m Mapped, off, n int64) ([]Extent, error) {
	w := getWalk(m, nil, off)
	defer w.put()
	if err := m.Visit(off, off+n, w.ext); err != nil {
		return nil, err
	}
	return w.b.Extents(), nil
}

func (w *mappedWalk) extRun(o, l int64, k Kind, _ int64) error {
	w.b.Add(o, l, k)
	return nil
}

// errStopMap ends a MapFileMapped walk at the first run it cannot join.
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

// MapFileMapped maps m's bytes from off, at most n, to the range of f (m's
// image file, of fileSize bytes) holding them: Data runs from off while
// they are contiguous in the file, cut at fileSize (bytes past the end of
// the file are not plain file bytes). ok is false when f is not a plain
// file or the bytes at off are not Data. The range must lie within the
// disk.
func MapFileMapped(m Mapped, f File, fileSize, off, n int64) (r FileRange, ok bool) {
	o, isOS := OSFile(f)
	if !isOS || n <= 0 {
		return FileRange{}, false
	}
	w := getWalk(m, nil, off)
	err := m.Visit(off, off+n, w.mapf)
	start, length := w.pFile, w.pLen
	w.put()
	if err != nil && err != errStopMap {
		return FileRange{}, false
	}
	length = min(length, n, fileSize-start)
	if length <= 0 || start < 0 {
		return FileRange{}, false
	}
	return FileRange{File: o, Off: start, Len: length}, true
}
