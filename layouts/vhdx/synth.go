package vhdx

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"unicode/utf16"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/blockmap"
)

// Layout of a synthesized VHDX file (VHDX Format Specification v1.00):
//
//	0        file type identifier ("vhdxfile" + creator)
//	64 KiB   header 1            128 KiB  header 2
//	192 KiB  region table 1      256 KiB  region table 2
//	1 MiB    log (1 MiB, empty: the headers' log GUID is zero)
//	2 MiB    metadata region (1 MiB): table, then the items at 64 KiB
//	3 MiB    BAT region (whole MiBs)
//	then     payload blocks, packed in source order, each MiB-aligned
const (
	synthMiB          = 1 << 20
	synthSector       = 512  // logical sector size
	synthPhysSector   = 4096 // physical sector size
	synthLogOff       = 1 * synthMiB
	synthLogLen       = 1 * synthMiB
	synthMetaOff      = 2 * synthMiB
	synthMetaLen      = 1 * synthMiB
	synthBATOff       = 3 * synthMiB
	synthMaxSize      = 64 << 40 // the format's limit on the virtual size
	synthMinBlock     = 1 * synthMiB
	synthMaxBlock     = 256 * synthMiB
	synthTargetBlocks = 1 << 20 // grow the block size beyond this many blocks

	synthFullyPresent = 6 // PAYLOAD_BLOCK_FULLY_PRESENT
)

// synthBlockSize picks the payload block size for a virtual size.
//
// 1 MiB, the smallest the format allows, unless the disk would need more
// than 2^20 blocks (above 1 TiB), then the smallest power of two that keeps
// it at 2^20 blocks (an 8 MiB BAT, which readers such as qemu load whole).
// Small blocks keep the image's allocation close to the source's: every
// block that holds any source data is stored whole, so with Hyper-V's
// default of 32 MiB a source with scattered 64 KiB clusters would grow up to
// 512-fold when materialized. Blocks of 1 MiB also coincide with the format's
// 1 MiB alignment, so payload blocks pack with no gaps.
func synthBlockSize(vsize int64) int64 {
	bs := int64(synthMinBlock)
	for bs < synthMaxBlock && (vsize+bs-1)/bs > synthTargetBlocks {
		bs *= 2
	}
	return bs
}

// synthLayout is what the BAT generator needs.
type synthLayout struct {
	m          *blockmap.Map
	blockSize  int64
	chunkRatio int64 // payload blocks per sector bitmap block
	dataBlocks int64
	batEntries int64
	payloadOff int64 // file offset of the first payload block
}

// entry returns the BAT index of payload block b: after every chunkRatio
// payload entries comes one sector bitmap entry.
func (l *synthLayout) entry(b int64) int64 { return b + b/l.chunkRatio }

// blockAtOrAfter returns the first payload block whose BAT index is at or
// after entry e.
func (l *synthLayout) blockAtOrAfter(e int64) int64 {
	chunk, within := e/(l.chunkRatio+1), e%(l.chunkRatio+1)
	if within == l.chunkRatio {
		return (chunk + 1) * l.chunkRatio
	}
	return chunk*l.chunkRatio + within
}

// gen fills p with the BAT bytes from rel: FULLY_PRESENT entries for
// allocated blocks, zero (NOT_PRESENT) for the rest and for the sector
// bitmap entries, which a disk without a parent does not use.
func (l *synthLayout) gen(p []byte, rel int64) error {
	clear(p)
	end := rel + int64(len(p))
	b0 := l.blockAtOrAfter(rel / 8)
	b1 := min(l.blockAtOrAfter((end+7)/8), l.dataBlocks)
	if b1 <= b0 {
		return nil
	}
	return l.m.Runs(b0, b1-b0, func(r blockmap.Run) error {
		for i := int64(0); i < r.Count; i++ {
			v := uint64(l.payloadOff+(r.Index+i)*l.blockSize) | synthFullyPresent
			pos := l.entry(r.First+i)*8 - rel
			if pos >= 0 && pos+8 <= int64(len(p)) {
				binary.LittleEndian.PutUint64(p[pos:], v)
				continue
			}
			var e [8]byte
			binary.LittleEndian.PutUint64(e[:], v)
			for j := int64(0); j < 8; j++ {
				if k := pos + j; k >= 0 && k < int64(len(p)) {
					p[k] = e[j]
				}
			}
		}
		return nil
	})
}

// Synthesize builds a dynamic VHDX image of src: generated headers, region
// tables, metadata and BAT, and the source's allocated blocks as payload.
// A source whose size is not a multiple of 512 is rounded up to one; the
// added tail reads as zeros.
func Synthesize(src layouts.Disk) (*layouts.Image, error) {
	vsize := (src.Size() + synthSector - 1) / synthSector * synthSector
	if src.Size() <= 0 {
		return nil, fmt.Errorf("vhdx: source is empty: %w", layouts.ErrUnsupported)
	}
	if vsize > synthMaxSize {
		return nil, fmt.Errorf("vhdx: source size %d exceeds the 64 TiB limit of the format: %w", src.Size(), layouts.ErrUnsupported)
	}
	bs := synthBlockSize(vsize)
	m, err := blockmap.Build(src, bs)
	if err != nil {
		return nil, fmt.Errorf("vhdx: %w", err)
	}
	l := &synthLayout{
		m:          m,
		blockSize:  bs,
		chunkRatio: (1 << 23) * synthSector / bs,
		dataBlocks: (vsize + bs - 1) / bs,
	}
	l.batEntries = l.dataBlocks + (l.dataBlocks-1)/l.chunkRatio
	batLen := (l.batEntries*8 + synthMiB - 1) / synthMiB * synthMiB
	l.payloadOff = synthBATOff + batLen
	size := l.payloadOff + m.Count()*bs

	seed, err := synthSeed(src, m)
	if err != nil {
		return nil, err
	}
	fileWrite, dataWrite, page83 := blockmap.SeedID(seed, "file write"), blockmap.SeedID(seed, "data write"), blockmap.SeedID(seed, "page83")

	segs := []layouts.Segment{
		layouts.BytesAt(0, synthIdentifier()),
		layouts.BytesAt(64<<10, synthHeader(1, fileWrite, dataWrite)),
		layouts.BytesAt(128<<10, synthHeader(2, fileWrite, dataWrite)),
	}
	rt := synthRegionTable(batLen)
	segs = append(segs, layouts.BytesAt(192<<10, rt), layouts.BytesAt(256<<10, rt))
	table, items := synthMetadata(bs, vsize, page83)
	segs = append(segs, layouts.BytesAt(synthMetaOff, table), layouts.BytesAt(synthMetaOff+64<<10, items))
	segs = append(segs, layouts.Segment{Off: synthBATOff, Len: l.batEntries * 8, Kind: layouts.SegGen, Gen: l.gen})
	err = m.Runs(0, m.Blocks(), func(r blockmap.Run) error {
		segs = append(segs, layouts.Segment{
			Off: l.payloadOff + r.Index*bs, Len: r.Count * bs, Kind: layouts.SegSource,
			Src: src, SrcOff: r.First * bs,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return layouts.NewImage("vhdx", size, segs)
}

// synthIdentifier is the file type identifier: signature and creator, the
// rest of its 64 KiB zero.
func synthIdentifier() []byte {
	creator := utf16.Encode([]rune("vmfs"))
	b := make([]byte, 8+2*len(creator))
	copy(b, "vhdxfile")
	for i, c := range creator {
		binary.LittleEndian.PutUint16(b[8+2*i:], c)
	}
	return b
}

// synthHeader is one 4 KiB header; its CRC-32C covers all 4 KiB.
func synthHeader(seq uint64, fileWrite, dataWrite [16]byte) []byte {
	h := make([]byte, 4096)
	copy(h, "head")
	binary.LittleEndian.PutUint64(h[8:], seq)
	copy(h[16:], fileWrite[:])
	copy(h[32:], dataWrite[:])
	// LogGuid (48) stays zero: the log is empty. LogVersion (64) is 0.
	binary.LittleEndian.PutUint16(h[66:], 1) // Version
	binary.LittleEndian.PutUint32(h[68:], synthLogLen)
	binary.LittleEndian.PutUint64(h[72:], synthLogOff)
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(h, castagnoli))
	return h
}

// synthRegionTable returns the used head of a 64 KiB region table (the rest
// is zero); its CRC-32C covers all 64 KiB.
func synthRegionTable(batLen int64) []byte {
	rt := make([]byte, 64<<10)
	copy(rt, "regi")
	binary.LittleEndian.PutUint32(rt[8:], 2) // EntryCount
	entry := func(at int, guid [16]byte, off, n int64) {
		copy(rt[at:], guid[:])
		binary.LittleEndian.PutUint64(rt[at+16:], uint64(off))
		binary.LittleEndian.PutUint32(rt[at+24:], uint32(n))
		binary.LittleEndian.PutUint32(rt[at+28:], 1) // Required
	}
	entry(16, regionBAT, synthBATOff, batLen)
	entry(48, regionMetadata, synthMetaOff, synthMetaLen)
	binary.LittleEndian.PutUint32(rt[4:], crc32.Checksum(rt, castagnoli))
	return append([]byte(nil), rt[:80]...) // do not keep the 64 KiB alive
}

// synthMetadata returns the used head of the metadata table and the items
// it points to, stored from 64 KiB into the metadata region.
func synthMetadata(bs, vsize int64, page83 [16]byte) (table, items []byte) {
	const (
		isVirtualDisk = 2
		isRequired    = 4
	)
	type item struct {
		guid  [16]byte
		flags uint32
		data  []byte
	}
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	list := []item{
		{metaFileParams, isRequired, binary.LittleEndian.AppendUint32(le32(uint32(bs)), 0)},
		{metaDiskSize, isVirtualDisk | isRequired, binary.LittleEndian.AppendUint64(nil, uint64(vsize))},
		{metaPage83, isVirtualDisk | isRequired, page83[:]},
		{metaLogicalSect, isVirtualDisk | isRequired, le32(synthSector)},
		{metaPhysicalSect, isVirtualDisk | isRequired, le32(synthPhysSector)},
	}
	table = make([]byte, 32+32*len(list))
	copy(table, "metadata")
	binary.LittleEndian.PutUint16(table[10:], uint16(len(list)))
	for i, it := range list {
		e := table[32+32*i:]
		copy(e, it.guid[:])
		binary.LittleEndian.PutUint32(e[16:], uint32(64<<10+len(items)))
		binary.LittleEndian.PutUint32(e[20:], uint32(len(it.data)))
		binary.LittleEndian.PutUint32(e[24:], it.flags)
		items = append(items, it.data...)
	}
	return table, items
}

// synthSeed hashes what identifies the source (its size, format, allocation
// and first 64 KiB, which hold its partition table) so that GUIDs are the
// same each time the same source is synthesized.
func synthSeed(src layouts.Disk, m *blockmap.Map) ([32]byte, error) {
	s, err := blockmap.Seed(fmt.Sprintf("vmfs vhdx %d %s %d %d\n", src.Size(), src.Format(), m.BlockSize(), m.Count()), src, m)
	if err != nil {
		return s, fmt.Errorf("vhdx: reading source: %w", err)
	}
	return s, nil
}
