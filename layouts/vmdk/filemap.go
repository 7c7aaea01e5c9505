package vmdk

import "github.com/vmfs/vmfs/layouts"

// fileMapper is an extent that can say where its bytes lie in a plain file.
type fileMapper interface {
	mapFile(off, n int64) (layouts.FileRange, bool)
}

// MapFile says where the disk's bytes from off lie in a plain file: flat
// extents and runs of uncompressed grains that are contiguous in the file.
func (d *Disk) MapFile(off, n int64) (layouts.FileRange, bool) {
	return layouts.MapFile(d.view, off, n)
}

func (l *layer) MapFile(off, n int64) (layouts.FileRange, bool) {
	i := l.find(off)
	if i == len(l.exts) {
		return layouts.FileRange{}, false
	}
	e := l.exts[i]
	m, ok := e.x.(fileMapper)
	if !ok {
		return layouts.FileRange{}, false
	}
	return m.mapFile(off-e.start, min(n, e.start+e.n-off))
}

func (x *flatExtent) mapFile(off, n int64) (layouts.FileRange, bool) {
	f, ok := layouts.OSFile(x.f)
	if !ok || x.fd < 0 || off >= x.n {
		return layouts.FileRange{}, false
	}
	return layouts.FileRange{File: f, Off: x.base + off, Len: min(n, x.n-off)}, true
}

// mapFile follows allocated, uncompressed grains while they are contiguous
// in the file.
func (m *grainMap) mapFile(off, n int64) (layouts.FileRange, bool) {
	f, ok := layouts.OSFile(m.f)
	if !ok || m.compressed {
		return layouts.FileRange{}, false
	}
	var start, length int64
	for length < n {
		pos := off + length
		gti := pos / m.gtSpan()
		gt, err := m.table(gti)
		if err != nil || gt == nil {
			break
		}
		gi := pos / m.grain
		e := gt[gi-gti*m.perGT]
		if e <= 0 {
			break
		}
		in := pos - gi*m.grain
		fo := e + in
		if length == 0 {
			start = fo
		} else if start+length != fo {
			break
		}
		length += min(n-length, m.grain-in)
	}
	if length == 0 || start+length > m.fileSize {
		return layouts.FileRange{}, false
	}
	return layouts.FileRange{File: f, Off: start, Len: length}, true
}

var _ layouts.FileMapper = (*Disk)(nil)
