package blockmap

import (
	"crypto/sha256"
	"encoding/binary"
	"io"

	"github.com/vmfs/vmfs/layouts"
)

// Entries fills p with the bytes found at offset rel of a table of
// size-byte entries (size at most 8), the kind of table a target format
// maps its blocks with. fill writes whole entries: buf holds len(buf)/size
// entries starting at entry first. Ragged edges go through a scratch entry,
// so aligned reads are generated in place.
func Entries(p []byte, rel int64, size int64, fill func(buf []byte, first int64)) {
	if r := rel % size; r != 0 {
		var tmp [8]byte
		fill(tmp[:size], rel/size)
		n := copy(p, tmp[r:size])
		p = p[n:]
		rel += int64(n)
	}
	if full := int64(len(p)) / size * size; full > 0 {
		fill(p[:full], rel/size)
		p = p[full:]
		rel += full
	}
	if len(p) > 0 {
		var tmp [8]byte
		fill(tmp[:size], rel/size)
		copy(p, tmp[:size])
	}
}

// Seed hashes what identifies a source, so that the ids a target format
// derives from it are the same each time the same source is synthesized:
// header (the format's own line), the allocation runs of m when m is not
// nil, and the source's first 64 KiB, which hold its partition table. A
// read error of the source is returned as is.
func Seed(header string, src layouts.Disk, m *Map) ([32]byte, error) {
	h := sha256.New()
	io.WriteString(h, header)
	if m != nil {
		var rb [24]byte
		_ = m.Runs(0, m.Blocks(), func(r Run) error {
			binary.LittleEndian.PutUint64(rb[0:], uint64(r.First))
			binary.LittleEndian.PutUint64(rb[8:], uint64(r.Count))
			binary.LittleEndian.PutUint64(rb[16:], uint64(r.Index))
			h.Write(rb[:])
			return nil
		})
	}
	head := make([]byte, min(src.Size(), 64<<10))
	if _, err := src.ReadAt(head, 0); err != nil && err != io.EOF {
		return [32]byte{}, err
	}
	h.Write(head)
	var s [32]byte
	h.Sum(s[:0])
	return s, nil
}

// SeedID derives a version 4 style UUID from seed and purpose (what the
// id names: "create", "file write", ...), its third field little-endian
// as VDI and VHDX store it.
func SeedID(seed [32]byte, purpose string) [16]byte {
	h := sha256.New()
	h.Write(seed[:])
	h.Write([]byte(purpose))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[7] = u[7]&0x0f | 0x40 // version
	u[8] = u[8]&0x3f | 0x80 // variant
	return u
}

// Table32 fills p with the bytes found at offset rel of a table of 4-byte
// entries in order, one per block for the first entries blocks (the block
// maps of VHD and VDI): the entry of an allocated block is val of its
// packed index, every other entry, and any padding past entries, is
// 0xffffffff.
func (m *Map) Table32(p []byte, rel, entries int64, order binary.ByteOrder, val func(index int64) uint32) {
	for i := range p {
		p[i] = 0xff
	}
	end := rel + int64(len(p))
	b0 := rel / 4
	b1 := min((end+3)/4, entries)
	if b1 <= b0 {
		return
	}
	_ = m.Runs(b0, b1-b0, func(r Run) error {
		for i := int64(0); i < r.Count; i++ {
			v := val(r.Index + i)
			pos := (r.First+i)*4 - rel
			if pos >= 0 && pos+4 <= int64(len(p)) {
				order.PutUint32(p[pos:], v)
				continue
			}
			var e [4]byte
			order.PutUint32(e[:], v)
			for j := int64(0); j < 4; j++ {
				if k := pos + j; k >= 0 && k < int64(len(p)) {
					p[k] = e[j]
				}
			}
		}
		return nil
	})
}
