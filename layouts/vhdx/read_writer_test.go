package vhdx

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"testing"
	"unicode/utf16"
)

// A test-side VHDX writer for what qemu-img cannot make: differencing disks,
// partial blocks, zero/unmapped states, 4 KiB sectors, pending logs.

type xspec struct {
	data      []byte
	blockSize int64
	logical   int64
	// state gives each payload block's state; nil: FULLY_PRESENT for
	// blocks holding non-zero bytes, NOT_PRESENT for the others.
	state   func(block int64) uint64
	present func(sector int64) bool // sectors of PARTIALLY_PRESENT blocks
	// parent
	hasParent bool
	dataWrite guid
	linkage   string
	relPath   string
	absPath   string
	// log
	logGUID  guid
	logEntry bool
	badCRC   bool
}

func putCRC(b []byte) {
	binary.LittleEndian.PutUint32(b[4:], 0)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b, castagnoli))
}

func utf16LE(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

func buildX(s xspec) []byte {
	if s.logical == 0 {
		s.logical = 512
	}
	size := int64(len(s.data))
	nblocks := (size + s.blockSize - 1) / s.blockSize
	cr := chunkSectors * s.logical / s.blockSize
	chunks := (nblocks + cr - 1) / cr
	entries := chunks * (cr + 1)
	const logOff, metaOff, batOff = 1 * mib, 2 * mib, 3 * mib
	batLen := (entries*8 + mib - 1) / mib * mib
	file := make([]byte, batOff+batLen)
	copy(file, "vhdxfile")
	copy(file[8:], utf16LE("vmfs test"))
	for i, seq := range []uint64{1, 2} {
		h := file[header1Off+int64(i)*64*kib:][:headerSize]
		copy(h, "head")
		binary.LittleEndian.PutUint64(h[8:], seq)
		copy(h[16:], []byte("filewriteguid..."))
		copy(h[32:], s.dataWrite[:])
		copy(h[48:], s.logGUID[:])
		binary.LittleEndian.PutUint16(h[66:], 1)
		binary.LittleEndian.PutUint32(h[68:], mib)
		binary.LittleEndian.PutUint64(h[72:], logOff)
		putCRC(h)
	}
	for _, off := range []int64{region1Off, region2Off} {
		r := file[off : off+regionSize]
		copy(r, "regi")
		binary.LittleEndian.PutUint32(r[8:], 2)
		copy(r[16:], regionBAT[:])
		binary.LittleEndian.PutUint64(r[32:], batOff)
		binary.LittleEndian.PutUint32(r[40:], uint32(batLen))
		binary.LittleEndian.PutUint32(r[44:], 1)
		copy(r[48:], regionMetadata[:])
		binary.LittleEndian.PutUint64(r[64:], metaOff)
		binary.LittleEndian.PutUint32(r[72:], mib)
		binary.LittleEndian.PutUint32(r[76:], 1)
		putCRC(r)
	}
	// metadata
	m := file[metaOff : metaOff+mib]
	copy(m, "metadata")
	type item struct {
		id    guid
		data  []byte
		flags uint32
	}
	fp := make([]byte, 8)
	binary.LittleEndian.PutUint32(fp, uint32(s.blockSize))
	if s.hasParent {
		binary.LittleEndian.PutUint32(fp[4:], 2)
	}
	u64 := func(v uint64) []byte { b := make([]byte, 8); binary.LittleEndian.PutUint64(b, v); return b }
	u32 := func(v uint32) []byte { b := make([]byte, 4); binary.LittleEndian.PutUint32(b, v); return b }
	items := []item{
		{metaFileParams, fp, 4},
		{metaDiskSize, u64(uint64(size)), 6},
		{metaPage83, []byte("0123456789abcdef"), 6},
		{metaLogicalSect, u32(uint32(s.logical)), 6},
		{metaPhysicalSect, u32(4096), 6},
	}
	if s.hasParent {
		var kv [][2]string
		kv = append(kv, [2]string{"parent_linkage", s.linkage})
		if s.relPath != "" {
			kv = append(kv, [2]string{"relative_path", s.relPath})
		}
		if s.absPath != "" {
			kv = append(kv, [2]string{"absolute_win32_path", s.absPath})
		}
		loc := make([]byte, 20+12*len(kv))
		copy(loc, locatorVHDX[:])
		binary.LittleEndian.PutUint16(loc[18:], uint16(len(kv)))
		for i, p := range kv {
			k, v := utf16LE(p[0]), utf16LE(p[1])
			e := loc[20+12*i:]
			binary.LittleEndian.PutUint32(e[0:], uint32(len(loc)))
			binary.LittleEndian.PutUint16(e[8:], uint16(len(k)))
			loc = append(loc, k...)
			e = loc[20+12*i:]
			binary.LittleEndian.PutUint32(e[4:], uint32(len(loc)))
			binary.LittleEndian.PutUint16(e[10:], uint16(len(v)))
			loc = append(loc, v...)
		}
		items = append(items, item{metaParentLoc, loc, 6})
	}
	binary.LittleEndian.PutUint16(m[10:], uint16(len(items)))
	pos := int64(64 * kib)
	for i, it := range items {
		e := m[32+32*i:]
		copy(e, it.id[:])
		binary.LittleEndian.PutUint32(e[16:], uint32(pos))
		binary.LittleEndian.PutUint32(e[20:], uint32(len(it.data)))
		binary.LittleEndian.PutUint32(e[24:], it.flags)
		copy(m[pos:], it.data)
		pos += int64(len(it.data))
	}
	// log
	if s.logEntry {
		l := file[logOff : logOff+4*kib]
		copy(l, "loge")
		binary.LittleEndian.PutUint32(l[8:], 4*kib)
		binary.LittleEndian.PutUint64(l[16:], 1)
		copy(l[32:], s.logGUID[:])
		binary.LittleEndian.PutUint64(l[48:], uint64(len(file)))
		binary.LittleEndian.PutUint64(l[56:], uint64(len(file)))
		putCRC(l)
		if s.badCRC {
			l[100] ^= 1
		}
	}
	// blocks
	state := s.state
	if state == nil {
		state = func(b int64) uint64 {
			blk := s.data[b*s.blockSize : min((b+1)*s.blockSize, size)]
			if bytes.Equal(blk, make([]byte, len(blk))) {
				return stNotPresent
			}
			return stFullyPresent
		}
	}
	sb := map[int64][]byte{}
	spb := s.blockSize / s.logical
	for b := int64(0); b < nblocks; b++ {
		st := state(b)
		e := st
		if st == stFullyPresent || st == stPartiallyPresent {
			off := int64(len(file))
			blk := make([]byte, s.blockSize)
			n := copy(blk, s.data[b*s.blockSize:min((b+1)*s.blockSize, size)])
			for i := n; i < len(blk); i++ {
				blk[i] = 0xEE
			}
			if st == stPartiallyPresent {
				c := b / cr
				if sb[c] == nil {
					sb[c] = make([]byte, mib)
				}
				for i := int64(0); i < spb; i++ {
					sec := b*spb + i
					if sec*s.logical < size && s.present(sec) {
						bit := (b%cr)*spb + i
						sb[c][bit/8] |= 1 << (bit % 8)
					} else {
						for j := i * s.logical; j < (i+1)*s.logical; j++ {
							blk[j] = 0xEE
						}
					}
				}
			}
			file = append(file, blk...)
			e |= uint64(off)
		}
		binary.LittleEndian.PutUint64(file[batOff+8*(b+b/cr):], e)
	}
	for c := int64(0); c < chunks; c++ {
		if sb[c] == nil {
			continue
		}
		off := int64(len(file))
		file = append(file, sb[c]...)
		binary.LittleEndian.PutUint64(file[batOff+8*(c*(cr+1)+cr):], sbPresent|uint64(off))
	}
	return file
}

func writeX(t testing.TB, path string, s xspec) {
	t.Helper()
	if err := os.WriteFile(path, buildX(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
