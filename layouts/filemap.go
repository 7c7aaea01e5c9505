package layouts

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// FileRange is a range of a plain file that holds a range of a disk byte
// for byte: what splice and copy_file_range can move without a copy
// through user space.
type FileRange struct {
	File *os.File
	Off  int64
	Len  int64
}

// FileMapper is implemented by disks that can say where their bytes lie in
// a plain file (raw images, flat extents, uncompressed grains).
type FileMapper interface {
	// MapFile returns the file range holding the disk's bytes from off:
	// at most n bytes, fewer where the run stops being one plain file
	// range. ok is false when the bytes at off are not a plain file range
	// (generated, compressed, zero, or past the end).
	MapFile(off, n int64) (r FileRange, ok bool)
}

// MapFile asks d for the file range behind [off, off+n), if d can tell.
func MapFile(d Disk, off, n int64) (FileRange, bool) {
	m, ok := d.(FileMapper)
	if !ok || off < 0 || n <= 0 || off >= d.Size() {
		return FileRange{}, false
	}
	n = min(n, d.Size()-off)
	r, ok := m.MapFile(off, n)
	if !ok || r.Len <= 0 || r.Len > n || r.File == nil {
		return FileRange{}, false
	}
	return r, true
}

// MapFile of an image maps ranges of source segments through their source.
func (m *Image) MapFile(off, n int64) (FileRange, bool) {
	i := m.first(off)
	if i == len(m.segs) {
		return FileRange{}, false
	}
	s := m.segs[i]
	if s.Kind != SegSource || s.Off > off {
		return FileRange{}, false
	}
	rel := off - s.Off
	srcOff := s.SrcOff + rel
	if srcOff >= s.Src.Size() {
		return FileRange{}, false
	}
	return MapFile(s.Src, srcOff, min(n, s.End()-off, s.Src.Size()-srcOff))
}

// MapFile of a chain maps through the layer that holds off.
func (s *stacked) MapFile(off, n int64) (FileRange, bool) {
	exts, err := s.top.Extents(off, n)
	if err != nil || len(exts) == 0 {
		return FileRange{}, false
	}
	e := exts[0]
	n = min(n, e.End()-off)
	switch e.Kind {
	case Data:
		return MapFile(s.top, off, n)
	case Hole:
		return MapFile(s.parent, off, n)
	}
	return FileRange{}, false
}

// PastEOF reports [pos, end) of a file in which SEEK_DATA found no data
// after pos: a hole up to the file's end, and data beyond it. A file that
// shrank under a mount no longer holds what lies past its end, and
// reporting that range as a hole would serve zeros where a read must fail.
// shift turns file offsets into the disk offsets b holds; hole is the kind
// of the file's holes. It returns the new position, end.
func PastEOF(b *Builder, fd int, pos, end, shift int64, hole Kind) int64 {
	size := end
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		size = max(pos, min(end, st.Size))
	}
	if size > pos {
		b.Add(pos+shift, size-pos, hole)
	}
	if end > size {
		b.Add(size+shift, end-size, Data)
	}
	return end
}

// FileExtents describes [off, end) of the plain file fd by its data and
// holes as the file system reports them (SEEK_DATA, SEEK_HOLE); where it
// cannot tell, the range is data. what names the file in errors.
func FileExtents(fd int, what string, off, end int64) ([]Extent, error) {
	var b Builder
	pos := off
	for pos < end {
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) { // no data after pos
				pos = PastEOF(&b, fd, pos, end, 0, Hole)
				break
			}
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				b.Add(pos, end-pos, Data)
				pos = end
				break
			}
			return nil, fmt.Errorf("%s: seek data: %w", what, err)
		}
		if data >= end {
			break
		}
		b.Add(pos, data-pos, Hole)
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("%s: seek hole: %w", what, err)
		}
		hole = min(hole, end)
		if hole <= data {
			hole = end
		}
		b.Add(data, hole-data, Data)
		pos = hole
	}
	b.Add(pos, end-pos, Hole)
	return b.Extents(), nil
}

// WholeFile returns the plain file whose bytes are all of d's, from offset 0
// and of the same length, if d is one (a raw source served raw, a flat
// extent served as raw). FUSE passthrough serves such a disk: it maps a
// whole file, offsets unchanged, so a range inside a file does not qualify.
func WholeFile(d Disk) (*os.File, bool) {
	n := d.Size()
	if n <= 0 {
		return nil, false
	}
	r, ok := MapFile(d, 0, n)
	if !ok || r.Off != 0 || r.Len != n {
		return nil, false
	}
	var st unix.Stat_t
	if unix.Fstat(int(r.File.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != n {
		return nil, false
	}
	return r.File, true
}
