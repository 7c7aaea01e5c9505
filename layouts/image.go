package layouts

import (
	"fmt"
	"io"
	"sort"
)

// SegmentKind says where a segment's bytes come from.
type SegmentKind uint8

const (
	// SegBytes: bytes held in memory (headers, small tables, descriptors).
	SegBytes SegmentKind = iota
	// SegGen: bytes computed when read (large tables such as L2 tables or
	// BATs), so that they are never held for the whole disk.
	SegGen
	// SegSource: a range of a source disk.
	SegSource
)

// Segment is one piece of a synthesized image file. Ranges of the file that
// no segment covers read as zeros and are holes.
type Segment struct {
	Off  int64 // offset in the image file
	Len  int64
	Kind SegmentKind

	Bytes []byte // SegBytes: exactly Len bytes

	// SegGen: fill p with the segment's bytes starting at rel, the offset
	// relative to the segment's start. Must be safe for parallel calls.
	Gen func(p []byte, rel int64) error

	Src    Disk  // SegSource: the source disk
	SrcOff int64 // SegSource: offset in Src of the segment's first byte
	// SrcSparse: report the source's own holes and zeros inside this
	// segment as holes (for raw-like mappings); otherwise the whole
	// segment is Data (an allocated cluster keeps its zeros).
	SrcSparse bool
}

// End is the offset just past the segment.
func (s Segment) End() int64 { return s.Off + s.Len }

// Image is a file made of an ordered list of non-overlapping segments. It is
// a Disk: reads are served from the segments, holes between them read as
// zeros, and Extents reports segments as Data and gaps as Hole.
type Image struct {
	format string
	size   int64
	segs   []Segment
}

// NewImage checks that segs are in order, do not overlap, and fit in size.
func NewImage(format string, size int64, segs []Segment) (*Image, error) {
	var prev int64
	for i, s := range segs {
		if s.Len < 0 || s.Off < prev || s.End() > size {
			return nil, fmt.Errorf("%s image: segment %d [%d,+%d) out of order or past end %d", format, i, s.Off, s.Len, size)
		}
		if s.Kind == SegBytes && int64(len(s.Bytes)) != s.Len {
			return nil, fmt.Errorf("%s image: segment %d holds %d bytes, wants %d", format, i, len(s.Bytes), s.Len)
		}
		prev = s.End()
	}
	return &Image{format: format, size: size, segs: segs}, nil
}

// Bytes is an in-memory file: a generated descriptor, say.
func Bytes(format string, b []byte) *Image {
	img, _ := NewImage(format, int64(len(b)), []Segment{BytesAt(0, b)})
	return img
}

// BytesAt is the segment of b, held in memory, at off of an image.
func BytesAt(off int64, b []byte) Segment {
	return Segment{Off: off, Len: int64(len(b)), Kind: SegBytes, Bytes: b}
}

func (m *Image) Size() int64         { return m.size }
func (m *Image) Format() string      { return m.format }
func (m *Image) Close() error        { return nil }
func (m *Image) Segments() []Segment { return m.segs }

// first returns the index of the first segment that ends after off.
func (m *Image) first(off int64) int {
	return sort.Search(len(m.segs), func(i int) bool { return m.segs[i].End() > off })
}

func (m *Image) ReadAt(p []byte, off int64) (int, error) {
	n, eof := CheckRead(m.size, p, off)
	if n == 0 {
		return 0, eof
	}
	end := off + int64(n)
	pos := off
	for i := m.first(off); i < len(m.segs) && pos < end; i++ {
		s := m.segs[i]
		if s.Off >= end {
			break
		}
		if s.Off > pos {
			clear(p[pos-off : s.Off-off])
			pos = s.Off
		}
		stop := min(end, s.End())
		buf := p[pos-off : stop-off]
		rel := pos - s.Off
		switch s.Kind {
		case SegBytes:
			copy(buf, s.Bytes[rel:])
		case SegGen:
			if err := s.Gen(buf, rel); err != nil {
				return 0, err
			}
		case SegSource:
			if err := readParent(s.Src, buf, s.SrcOff+rel); err != nil {
				return 0, err
			}
		}
		pos = stop
	}
	if pos < end {
		clear(p[pos-off : end-off])
	}
	return n, eof
}

func (m *Image) Extents(off, n int64) ([]Extent, error) {
	off, n, ok := Clip(m.size, off, n)
	if !ok {
		return nil, nil
	}
	end := off + n
	var b Builder
	pos := off
	for i := m.first(off); i < len(m.segs) && pos < end; i++ {
		s := m.segs[i]
		if s.Off >= end {
			break
		}
		if s.Off > pos {
			b.Add(pos, s.Off-pos, Hole)
			pos = s.Off
		}
		stop := min(end, s.End())
		if s.Kind == SegSource && s.SrcSparse {
			delta := s.Off - s.SrcOff
			exts, err := s.Src.Extents(pos-delta, stop-pos)
			if err != nil {
				return nil, err
			}
			covered := pos
			for _, e := range exts {
				k := Hole
				if e.Kind == Data {
					k = Data
				}
				b.Add(e.Off+delta, e.Len, k)
				covered = e.End() + delta
			}
			b.Add(covered, stop-covered, Hole) // past the source's end
		} else if s.Len > 0 {
			b.Add(pos, stop-pos, Data)
		}
		pos = stop
	}
	b.Add(pos, end-pos, Hole)
	return b.Extents(), nil
}

// Section returns the Disk d seen as a plain file: the raw target image.
// Holes and zero extents of d are holes of the file.
func Section(format string, d Disk) *Image {
	img, _ := NewImage(format, d.Size(), []Segment{{Off: 0, Len: d.Size(), Kind: SegSource, Src: d, SrcSparse: true}})
	return img
}

var _ io.ReaderAt = (*Image)(nil)
var _ Disk = (*Image)(nil)
