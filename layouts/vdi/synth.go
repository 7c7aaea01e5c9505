package vdi

import (
	"encoding/binary"
	"fmt"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/blockmap"
)

// Layout of a synthesized dynamic VDI file (VirtualBox VDI 1.1, as
// VirtualBox itself lays it out):
//
//	0      pre-header (text, signature, version) and header (0x190 bytes)
//	1 MiB  block map: one little-endian uint32 per block, 0xffffffff when
//	       the block is not allocated
//	then   data, from the next MiB: allocated blocks packed in source order
const (
	synthSector     = 512
	synthBlockSize  = 1 << 20
	synthMapOff     = 1 << 20
	synthHeaderSize = 0x190
	synthUnalloc    = 0xffffffff
	synthDynamic    = 1 // image type "normal" (dynamic)
	// synthMaxBlocks keeps the block map within what readers accept (qemu
	// caps it so that the map stays below 2 GiB).
	synthMaxBlocks = (1<<31 - synthSector) / 4
)

// Synthesize builds a dynamic VDI image of src with 1 MiB blocks: the
// source's allocated blocks are stored, the others are unallocated. A source
// whose size is not a multiple of 512 is rounded up to one; the added tail
// reads as zeros.
func Synthesize(src layouts.Disk) (*layouts.Image, error) {
	if src.Size() <= 0 {
		return nil, fmt.Errorf("vdi: source is empty: %w", layouts.ErrUnsupported)
	}
	vsize := (src.Size() + synthSector - 1) / synthSector * synthSector
	blocks := (vsize + synthBlockSize - 1) / synthBlockSize
	if blocks > synthMaxBlocks {
		return nil, fmt.Errorf("vdi: source size %d needs more than %d blocks: %w", src.Size(), synthMaxBlocks, layouts.ErrUnsupported)
	}
	m, err := blockmap.Build(src, synthBlockSize)
	if err != nil {
		return nil, fmt.Errorf("vdi: %w", err)
	}
	dataOff := (synthMapOff + blocks*4 + synthBlockSize - 1) / synthBlockSize * synthBlockSize
	l := &synthLayout{m: m, blocks: blocks}

	seed, err := synthSeed(src, m)
	if err != nil {
		return nil, err
	}
	segs := []layouts.Segment{
		layouts.BytesAt(0, synthHeader(vsize, blocks, m.Count(), dataOff, seed)),
		{Off: synthMapOff, Len: blocks * 4, Kind: layouts.SegGen, Gen: l.gen},
	}
	err = m.Runs(0, m.Blocks(), func(r blockmap.Run) error {
		segs = append(segs, layouts.Segment{
			Off: dataOff + r.Index*synthBlockSize, Len: r.Count * synthBlockSize, Kind: layouts.SegSource,
			Src: src, SrcOff: r.First * synthBlockSize,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return layouts.NewImage("vdi", dataOff+m.Count()*synthBlockSize, segs)
}

// synthLayout is what the block map generator needs.
type synthLayout struct {
	m      *blockmap.Map
	blocks int64
}

// gen fills p with the block map bytes from rel: each allocated block's
// index in the data area, 0xffffffff for the others.
func (l *synthLayout) gen(p []byte, rel int64) error {
	l.m.Table32(p, rel, l.blocks, binary.LittleEndian, func(i int64) uint32 { return uint32(i) })
	return nil
}

// synthHeader is the pre-header and the version 1.1 header, 0x48+0x190
// bytes.
func synthHeader(vsize, blocks, allocated, dataOff int64, seed [32]byte) []byte {
	h := make([]byte, 0x48+synthHeaderSize)
	copy(h, "<<< Oracle VM VirtualBox Disk Image >>>\n")
	le32 := func(at int, v uint32) { binary.LittleEndian.PutUint32(h[at:], v) }
	le32(0x40, 0xbeda107f) // signature
	le32(0x44, 0x00010001) // version 1.1
	le32(0x48, synthHeaderSize)
	le32(0x4c, synthDynamic)
	// flags (0x50) 0; comment (0x54, 256 bytes) empty.
	le32(0x154, synthMapOff)
	le32(0x158, uint32(dataOff))
	// Legacy geometry (0x15c cylinders, heads, sectors) 0: not set.
	le32(0x168, synthSector)
	binary.LittleEndian.PutUint64(h[0x170:], uint64(vsize))
	le32(0x178, synthBlockSize)
	// block extra (0x17c) 0.
	le32(0x180, uint32(blocks))
	le32(0x184, uint32(allocated))
	create := blockmap.SeedID(seed, "create")
	modify := blockmap.SeedID(seed, "modify")
	copy(h[0x188:], create[:])
	copy(h[0x198:], modify[:])
	// linkage (0x1a8) and parent (0x1b8) zero: no parent.
	// LCHS geometry (0x1c8): not calculated, sector size 512.
	le32(0x1d4, synthSector)
	return h
}

// synthSeed hashes what identifies the source (its size, format, allocation
// and first 64 KiB, which hold its partition table) so that UUIDs are the
// same each time the same source is synthesized.
func synthSeed(src layouts.Disk, m *blockmap.Map) ([32]byte, error) {
	s, err := blockmap.Seed(fmt.Sprintf("vmfs vdi %d %s %d\n", src.Size(), src.Format(), m.Count()), src, m)
	if err != nil {
		return s, fmt.Errorf("vdi: reading source: %w", err)
	}
	return s, nil
}
