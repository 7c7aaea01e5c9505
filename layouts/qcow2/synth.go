package qcow2

// Synthesis of a qcow2 version 3 image (compat 1.1) from any source disk.
//
// File layout, every part cluster aligned:
//
//	cluster 0      header (112 bytes) and the header extension end marker
//	L1 table       l1_size entries
//	refcount table one entry per refcount block
//	refcount blocks 16-bit refcounts, one per host cluster in use (all 1)
//	L2 tables      one per L1 entry whose 512 MiB span holds data, packed
//	data clusters  the source's allocated clusters, packed in guest order
//
// Only the header is held in memory. The L1 table, refcount table, refcount
// blocks and L2 tables are segments whose bytes are generated on each read
// from the block map, which holds runs of allocated clusters: memory follows
// the source's extent count, never its size. Each run of consecutive
// allocated clusters is one source segment, so a large read of the data
// area becomes one source read per run.

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/blockmap"
)

const (
	synthClusterBits = 16
	synthClusterSize = 1 << synthClusterBits
	synthL2Entries   = synthClusterSize / 8 // 8-byte L2 entries
	synthRBEntries   = synthClusterSize / 2 // refcount_order 4: 16-bit refcounts
	synthRTEntries   = synthClusterSize / 8 // 8-byte refcount table entries
	synthHeaderLen   = 112                  // version 3 header with compression_type and padding
	synthCopied      = uint64(1) << 63      // QCOW_OFLAG_COPIED: refcount is exactly 1
	// synthMaxL1 is the largest L1 table qemu opens (32 MiB of entries).
	synthMaxL1 = (32 << 20) / 8
	// synthMaxHost bounds host offsets: L1 and L2 entries hold bits 9-55.
	synthMaxHost = int64(1) << 56
)

// synthRun is count consecutive table slots for consecutive indices from
// first (L1 indices that have an L2 table), the first stored at slot.
type synthRun struct {
	first, count, slot int64
}

// synthImage holds what the generators need; it is read-only once built.
type synthImage struct {
	bm      *blockmap.Map
	l1Size  int64
	l1Off   int64
	rtOff   int64
	rbOff   int64
	rbCount int64
	l2Off   int64
	dataOff int64
	hosts   int64 // host clusters in use: each has refcount 1
	l2Runs  []synthRun
}

// Synthesize builds a qcow2 image of src: version 3, 64 KiB clusters,
// 16-bit refcounts, no backing file, no features. The source's Data
// clusters are allocated and packed; holes and zero extents stay
// unallocated (they read as zeros). The virtual size is src's size rounded
// up to a 512-byte sector, as qemu counts disk sizes in sectors. The same
// source gives the same bytes.
func Synthesize(src layouts.Disk) (*layouts.Image, error) {
	const maxSize = synthMaxL1 * synthL2Entries * synthClusterSize
	if src.Size() < 0 || src.Size() > maxSize {
		return nil, fmt.Errorf("qcow2: synthesize: virtual size %d is outside what an L1 table of %d entries maps (%d): %w", src.Size(), synthMaxL1, int64(maxSize), layouts.ErrUnsupported)
	}
	vsize := (src.Size() + 511) &^ 511
	clusters := (vsize + synthClusterSize - 1) / synthClusterSize
	l1Size := (clusters + synthL2Entries - 1) / synthL2Entries
	bm, err := blockmap.Build(src, synthClusterSize)
	if err != nil {
		return nil, fmt.Errorf("qcow2: synthesize: reading the %s source's extents: %w", src.Format(), err)
	}
	s := &synthImage{bm: bm, l1Size: l1Size}

	// L1 indices that need an L2 table, as runs (at most one per block run).
	var l2Count int64
	err = bm.Runs(0, bm.Blocks(), func(r blockmap.Run) error {
		first := r.First / synthL2Entries
		last := (r.First + r.Count - 1) / synthL2Entries
		if n := len(s.l2Runs); n > 0 {
			prev := &s.l2Runs[n-1]
			end := prev.first + prev.count
			if first < end {
				first = end
			}
			if first > last {
				return nil
			}
			if first == end {
				prev.count += last - first + 1
				l2Count += last - first + 1
				return nil
			}
		}
		s.l2Runs = append(s.l2Runs, synthRun{first: first, count: last - first + 1, slot: l2Count})
		l2Count += last - first + 1
		return nil
	})
	if err != nil {
		return nil, err
	}

	l1Clusters := (l1Size*8 + synthClusterSize - 1) / synthClusterSize
	data := bm.Count()
	// The refcount blocks count every host cluster, themselves included:
	// grow them until the layout is stable.
	rtClusters, rbCount := int64(1), int64(1)
	for {
		hosts := 1 + l1Clusters + rtClusters + rbCount + l2Count + data
		nrb := (hosts + synthRBEntries - 1) / synthRBEntries
		nrt := (nrb + synthRTEntries - 1) / synthRTEntries
		if nrb <= rbCount && nrt <= rtClusters {
			s.hosts = hosts
			break
		}
		rbCount, rtClusters = max(rbCount, nrb), max(rtClusters, nrt)
	}
	if s.hosts > synthMaxHost/synthClusterSize {
		return nil, fmt.Errorf("qcow2: synthesize: image of %d clusters exceeds the largest host offset: %w", s.hosts, layouts.ErrUnsupported)
	}
	s.rbCount = rbCount
	s.l1Off = synthClusterSize
	s.rtOff = s.l1Off + l1Clusters*synthClusterSize
	s.rbOff = s.rtOff + rtClusters*synthClusterSize
	s.l2Off = s.rbOff + rbCount*synthClusterSize
	s.dataOff = s.l2Off + l2Count*synthClusterSize

	hdr := make([]byte, synthHeaderLen+8) // header, then the end-of-extensions marker
	be := binary.BigEndian
	be.PutUint32(hdr[0:], 0x514649fb) // "QFI\xfb"
	be.PutUint32(hdr[4:], 3)
	be.PutUint32(hdr[20:], synthClusterBits)
	be.PutUint64(hdr[24:], uint64(vsize))
	be.PutUint32(hdr[36:], uint32(l1Size))
	be.PutUint64(hdr[40:], uint64(s.l1Off))
	be.PutUint64(hdr[48:], uint64(s.rtOff))
	be.PutUint32(hdr[56:], uint32(rtClusters))
	be.PutUint32(hdr[96:], 4) // refcount_order
	be.PutUint32(hdr[100:], synthHeaderLen)
	// hdr[104] compression_type 0 (zlib); features, snapshots, backing: 0.

	segs := make([]layouts.Segment, 0, 4+len(s.l2Runs)+bm.NumRuns())
	segs = append(segs, layouts.BytesAt(0, hdr))
	if l1Size > 0 {
		segs = append(segs, layouts.Segment{Off: s.l1Off, Len: l1Size * 8, Kind: layouts.SegGen, Gen: s.genL1})
	}
	segs = append(segs,
		layouts.Segment{Off: s.rtOff, Len: rbCount * 8, Kind: layouts.SegGen, Gen: s.genRT},
		layouts.Segment{Off: s.rbOff, Len: s.hosts * 2, Kind: layouts.SegGen, Gen: synthGenRB},
	)
	for _, r := range s.l2Runs {
		segs = append(segs, layouts.Segment{
			Off: s.l2Off + r.slot*synthClusterSize, Len: r.count * synthClusterSize,
			Kind: layouts.SegGen, Gen: s.l2Gen(r.first * synthL2Entries),
		})
	}
	err = bm.Runs(0, bm.Blocks(), func(r blockmap.Run) error {
		segs = append(segs, layouts.Segment{
			Off: s.dataOff + r.Index*synthClusterSize, Len: r.Count * synthClusterSize,
			Kind: layouts.SegSource, Src: src, SrcOff: r.First * synthClusterSize,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return layouts.NewImage("qcow2", s.hosts*synthClusterSize, segs)
}

// genL1 generates the L1 table: entry i points to the L2 table of the
// i-th 512 MiB span of the disk, or is 0 when that span holds no data.
func (s *synthImage) genL1(p []byte, rel int64) error {
	blockmap.Entries(p, rel, 8, func(buf []byte, first int64) {
		clear(buf)
		end := first + int64(len(buf)/8)
		i := sort.Search(len(s.l2Runs), func(i int) bool { return s.l2Runs[i].first+s.l2Runs[i].count > first })
		for ; i < len(s.l2Runs) && s.l2Runs[i].first < end; i++ {
			r := s.l2Runs[i]
			for e := max(r.first, first); e < min(r.first+r.count, end); e++ {
				off := s.l2Off + (r.slot+e-r.first)*synthClusterSize
				binary.BigEndian.PutUint64(buf[(e-first)*8:], uint64(off)|synthCopied)
			}
		}
	})
	return nil
}

// genRT generates the refcount table: entry i points to refcount block i.
func (s *synthImage) genRT(p []byte, rel int64) error {
	blockmap.Entries(p, rel, 8, func(buf []byte, first int64) {
		for j := 0; j+8 <= len(buf); j += 8 {
			binary.BigEndian.PutUint64(buf[j:], uint64(s.rbOff+(first+int64(j/8))*synthClusterSize))
		}
	})
	return nil
}

// synthGenRB generates the refcount blocks. The segment covers exactly the
// entries of the host clusters in use, each 1; the rest of the last block
// lies outside it and reads as zeros.
func synthGenRB(p []byte, rel int64) error {
	for len(p) > 0 {
		n := copy(p, synthOnes[rel&1:])
		p = p[n:]
		rel += int64(n)
	}
	return nil
}

// synthOnes is a run of big-endian 16-bit refcounts of 1, plus one byte so
// that a copy may start on either byte of an entry.
var synthOnes = func() []byte {
	b := make([]byte, 4096+1)
	for i := 1; i < len(b); i += 2 {
		b[i] = 1
	}
	return b
}()

// l2Gen returns the generator of a run of consecutive L2 tables whose first
// entry maps guest cluster first: entry e maps guest cluster first+e.
func (s *synthImage) l2Gen(first int64) func(p []byte, rel int64) error {
	return func(p []byte, rel int64) error {
		blockmap.Entries(p, rel, 8, func(buf []byte, e int64) {
			clear(buf)
			c0 := first + e
			s.bm.Runs(c0, int64(len(buf)/8), func(r blockmap.Run) error {
				b := buf[(r.First-c0)*8 : (r.First-c0+r.Count)*8]
				host := uint64(s.dataOff+r.Index*synthClusterSize) | synthCopied
				for j := 0; j < len(b); j += 8 {
					binary.BigEndian.PutUint64(b[j:], host)
					host += synthClusterSize
				}
				return nil
			})
		})
		return nil
	}
}
