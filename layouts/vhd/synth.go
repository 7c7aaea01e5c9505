package vhd

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/blockmap"
)

// Layout of a synthesized dynamic VHD file (Virtual Hard Disk Image Format
// Specification 1.0):
//
//	0     footer copy (512)
//	512   dynamic disk header (1024)
//	1536  BAT, one big-endian sector number per block, padded to 512
//	then  per allocated block: sector bitmap (512, all ones) + 2 MiB data,
//	      the data 4 KiB-aligned (3.5 KiB of hole between blocks)
//	end   footer (512)
//
// A fixed VHD is the virtual disk followed by the footer.
const (
	synthSector    = 512
	synthBlockSize = 2 << 20
	synthBitmapLen = 512 // (2 MiB / 512) bits, padded to a sector
	synthBATOff    = 1536
	synthAlign     = 4096
	// synthStride is the room of one stored block: its bitmap, its data
	// and the padding (a hole) that keeps the next block's data aligned.
	synthStride = (synthBitmapLen + synthBlockSize + synthAlign - 1) / synthAlign * synthAlign
	// synthMaxSize is the largest virtual size readers accept: qemu
	// refuses images above 0xff000000 sectors (2040 GiB), and a dynamic
	// VHD's 32-bit BAT sector numbers cannot reach far past 2 TiB anyway.
	synthMaxSize = 0xff000000 * synthSector

	synthTypeFixed   = 2
	synthTypeDynamic = 3
)

// synthBitmap is the sector bitmap of every stored block: all sectors
// present. Shared, never written.
var synthBitmap = func() []byte {
	b := make([]byte, synthBitmapLen)
	for i := range b {
		b[i] = 0xff
	}
	return b
}()

// SynthesizeDynamic builds a dynamic VHD image of src with 2 MiB blocks:
// the source's allocated blocks are stored, the others are left out of the
// BAT. A source whose size is not a multiple of 512 is rounded up to one;
// the added tail reads as zeros.
func SynthesizeDynamic(src layouts.Disk) (*layouts.Image, error) {
	vsize, err := synthSize(src)
	if err != nil {
		return nil, err
	}
	m, err := blockmap.Build(src, synthBlockSize)
	if err != nil {
		return nil, fmt.Errorf("vhd: %w", err)
	}
	entries := (vsize + synthBlockSize - 1) / synthBlockSize
	batLen := (entries*4 + synthSector - 1) / synthSector * synthSector
	// Blocks start where the first block's data falls on a 4 KiB boundary,
	// and each takes synthStride bytes, so every block's data stays
	// aligned, as Hyper-V lays them out.
	blocksOff := (synthBATOff+batLen+synthBitmapLen+synthAlign-1)/synthAlign*synthAlign - synthBitmapLen
	l := &synthLayout{m: m, entries: entries, blocksOff: blocksOff}
	footerOff := synthBATOff + batLen
	if n := m.Count(); n > 0 {
		footerOff = blocksOff + (n-1)*synthStride + synthBitmapLen + synthBlockSize
	}

	seed, err := synthSeed(src, m)
	if err != nil {
		return nil, err
	}
	footer := synthFooter(vsize, synthTypeDynamic, synthSector, seed)
	segs := make([]layouts.Segment, 0, 4+2*m.Count())
	segs = append(segs,
		layouts.BytesAt(0, footer),
		layouts.BytesAt(synthSector, synthDynHeader(entries)),
		layouts.Segment{Off: synthBATOff, Len: batLen, Kind: layouts.SegGen, Gen: l.gen},
	)
	err = m.Runs(0, m.Blocks(), func(r blockmap.Run) error {
		for i := int64(0); i < r.Count; i++ {
			at := l.blocksOff + (r.Index+i)*synthStride
			segs = append(segs, layouts.BytesAt(at, synthBitmap), layouts.Segment{
				Off: at + synthBitmapLen, Len: synthBlockSize, Kind: layouts.SegSource,
				Src: src, SrcOff: (r.First + i) * synthBlockSize,
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	segs = append(segs, layouts.BytesAt(footerOff, footer))
	return layouts.NewImage("vhd", footerOff+synthSector, segs)
}

// SynthesizeFixed builds a fixed VHD image of src: the virtual disk, holes
// kept as holes, then the footer. A source whose size is not a multiple of
// 512 is rounded up to one; the added tail reads as zeros.
func SynthesizeFixed(src layouts.Disk) (*layouts.Image, error) {
	vsize, err := synthSize(src)
	if err != nil {
		return nil, err
	}
	seed, err := synthSeed(src, nil)
	if err != nil {
		return nil, err
	}
	footer := synthFooter(vsize, synthTypeFixed, ^uint64(0), seed)
	return layouts.NewImage("vhd", vsize+synthSector, []layouts.Segment{
		{Off: 0, Len: vsize, Kind: layouts.SegSource, Src: src, SrcSparse: true},
		layouts.BytesAt(vsize, footer),
	})
}

func synthSize(src layouts.Disk) (int64, error) {
	if src.Size() <= 0 {
		return 0, fmt.Errorf("vhd: source is empty: %w", layouts.ErrUnsupported)
	}
	vsize := (src.Size() + synthSector - 1) / synthSector * synthSector
	if vsize > synthMaxSize {
		return 0, fmt.Errorf("vhd: source size %d exceeds the 2040 GiB limit of the format: %w", src.Size(), layouts.ErrUnsupported)
	}
	return vsize, nil
}

// synthLayout is what the BAT generator needs.
type synthLayout struct {
	m         *blockmap.Map
	entries   int64
	blocksOff int64 // file offset of the first stored block's bitmap
}

// gen fills p with the BAT bytes from rel: the sector number of each stored
// block's bitmap, 0xffffffff for blocks not stored and for the padding.
func (l *synthLayout) gen(p []byte, rel int64) error {
	l.m.Table32(p, rel, l.entries, binary.BigEndian, func(i int64) uint32 {
		return uint32((l.blocksOff + i*synthStride) / synthSector)
	})
	return nil
}

// synthFooter is the 512-byte hard disk footer.
//
// The creator application is "win " (Hyper-V): qemu takes the size of such
// images from Current Size, as Hyper-V and VirtualBox always do, instead of
// from the CHS geometry, which cannot express most sizes exactly.
func synthFooter(vsize int64, diskType uint32, dataOff uint64, seed [32]byte) []byte {
	f := make([]byte, synthSector)
	copy(f, "conectix")
	binary.BigEndian.PutUint32(f[8:], 2)           // Features: reserved bit set
	binary.BigEndian.PutUint32(f[12:], 0x00010000) // File Format Version
	binary.BigEndian.PutUint64(f[16:], dataOff)
	// Time Stamp (24) stays 0 so that the same source gives the same bytes.
	copy(f[28:], "win ")
	binary.BigEndian.PutUint32(f[32:], 0x000a0000) // Creator Version
	copy(f[36:], "Wi2k")                           // Creator Host OS
	binary.BigEndian.PutUint64(f[40:], uint64(vsize))
	binary.BigEndian.PutUint64(f[48:], uint64(vsize))
	c, h, s := synthCHS(vsize / synthSector)
	binary.BigEndian.PutUint16(f[56:], c)
	f[58], f[59] = h, s
	binary.BigEndian.PutUint32(f[60:], diskType)
	id := sha256.Sum256(append(seed[:], "unique id"...))
	copy(f[68:84], id[:16])
	f[68+6] = f[68+6]&0x0f | 0x40 // version 4 style
	f[68+8] = f[68+8]&0x3f | 0x80
	binary.BigEndian.PutUint32(f[64:], synthChecksum(f))
	return f
}

// synthDynHeader is the 1024-byte dynamic disk header.
func synthDynHeader(entries int64) []byte {
	h := make([]byte, 1024)
	copy(h, "cxsparse")
	binary.BigEndian.PutUint64(h[8:], ^uint64(0)) // Data Offset: unused
	binary.BigEndian.PutUint64(h[16:], synthBATOff)
	binary.BigEndian.PutUint32(h[24:], 0x00010000) // Header Version
	binary.BigEndian.PutUint32(h[28:], uint32(entries))
	binary.BigEndian.PutUint32(h[32:], synthBlockSize)
	binary.BigEndian.PutUint32(h[36:], synthChecksum(h))
	return h
}

// synthChecksum is the one's complement of the byte sum, taken while the
// checksum field is zero.
func synthChecksum(b []byte) uint32 {
	var sum uint32
	for _, c := range b {
		sum += uint32(c)
	}
	return ^sum
}

// synthCHS computes the geometry as the specification's appendix does.
func synthCHS(sectors int64) (uint16, uint8, uint8) {
	sectors = min(sectors, 65535*16*255)
	var spt, heads, cth int64
	if sectors >= 65535*16*63 {
		spt, heads = 255, 16
		cth = sectors / spt
	} else {
		spt = 17
		cth = sectors / spt
		heads = max((cth+1023)/1024, 4)
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = sectors / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = sectors / spt
		}
	}
	return uint16(cth / heads), uint8(heads), uint8(spt)
}

// synthSeed hashes what identifies the source (its size, format, allocation
// when known, and first 64 KiB, which hold its partition table) so that the
// unique id is the same each time the same source is synthesized.
func synthSeed(src layouts.Disk, m *blockmap.Map) ([32]byte, error) {
	s, err := blockmap.Seed(fmt.Sprintf("vmfs vhd %d %s\n", src.Size(), src.Format()), src, m)
	if err != nil {
		return s, fmt.Errorf("vhd: reading source: %w", err)
	}
	return s, nil
}
