package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// The map file of one overlay file records which 4 KiB blocks of the data
// file hold written data and which were punched (read as zeros), together
// with the file's size and the identity of the base it was made for.
//
// Layout (little endian):
//
//	0   magic      [8]byte "VMFSOVL\x00"
//	8   version    uint32 (1)
//	12  blockShift uint32 (12)
//	16  size       int64  virtual size of the file
//	24  baseSize   int64  size of the base the overlay was made for
//	32  baseLimit  int64  base bytes at or past this offset read as zeros
//	40  fingerprint [32]byte of the base
//	72  nameLen    uint32
//	76  flags      uint32: bit 0 whole (the data file holds every byte,
//	               and the runs are one written run over the whole size)
//	80  runCount   uint64
//	88  name       [nameLen]byte
//	    runs       runCount × {first uint64, count uint64, state uint8}
//	    crc        uint32 CRC-32C of everything before it
//
// Runs are sorted, do not overlap, and lie inside the blocks of size.
const (
	mapMagic     = "VMFSOVL\x00"
	mapVersion   = 1
	mapHeaderLen = 88
	mapRunLen    = 17
	maxNameLen   = 4096
	// maxSize bounds the virtual size of an overlay file (an exabyte):
	// block arithmetic never overflows below it.
	maxSize = 1 << 60
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errMap is wrapped by every map decoding error.
var errMap = errors.New("damaged map")

// mrun is a run of blocks in one state, as stored in the map file.
type mrun struct {
	first, count int64
	st           state
}

// mapState is the decoded content of a map file.
type mapState struct {
	size, baseSize, baseLimit int64
	fp                        [32]byte
	name                      string
	runs                      []mrun
	whole                     bool
}

const flagWhole = 1

func blocksOf(size int64) int64 { return (size + blockSize - 1) >> blockShift }

// encodeMap serializes m.
func encodeMap(m *mapState) []byte {
	b := make([]byte, mapHeaderLen, mapHeaderLen+len(m.name)+len(m.runs)*mapRunLen+4)
	copy(b, mapMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], mapVersion)
	le.PutUint32(b[12:], blockShift)
	le.PutUint64(b[16:], uint64(m.size))
	le.PutUint64(b[24:], uint64(m.baseSize))
	le.PutUint64(b[32:], uint64(m.baseLimit))
	copy(b[40:72], m.fp[:])
	le.PutUint32(b[72:], uint32(len(m.name)))
	if m.whole {
		le.PutUint32(b[76:], flagWhole)
	}
	le.PutUint64(b[80:], uint64(len(m.runs)))
	b = append(b, m.name...)
	var r [mapRunLen]byte
	for _, run := range m.runs {
		le.PutUint64(r[0:], uint64(run.first))
		le.PutUint64(r[8:], uint64(run.count))
		r[16] = byte(run.st)
		b = append(b, r[:]...)
	}
	return le.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeMap parses and checks a map file. Errors wrap errMap and name the
// structure at fault; the caller adds the file name. Memory allocated is
// bounded by len(b).
func decodeMap(b []byte) (*mapState, error) {
	if len(b) < mapHeaderLen+4 {
		return nil, fmt.Errorf("map of %d bytes is shorter than its header: %w", len(b), errMap)
	}
	le := binary.LittleEndian
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), le.Uint32(b[len(b)-4:]); got != want {
		return nil, fmt.Errorf("checksum mismatch (stored %08x, computed %08x): %w", want, got, errMap)
	}
	if string(b[:8]) != mapMagic {
		return nil, fmt.Errorf("bad magic: %w", errMap)
	}
	if v := le.Uint32(b[8:]); v != mapVersion {
		return nil, fmt.Errorf("version %d not supported: %w", v, errMap)
	}
	if s := le.Uint32(b[12:]); s != blockShift {
		return nil, fmt.Errorf("block shift %d not supported: %w", s, errMap)
	}
	m := &mapState{
		size:      int64(le.Uint64(b[16:])),
		baseSize:  int64(le.Uint64(b[24:])),
		baseLimit: int64(le.Uint64(b[32:])),
	}
	copy(m.fp[:], b[40:72])
	if m.size < 0 || m.size > maxSize || m.baseSize < 0 || m.baseSize > maxSize {
		return nil, fmt.Errorf("size %d or base size %d out of range: %w", m.size, m.baseSize, errMap)
	}
	if m.baseLimit < 0 || m.baseLimit > m.size || m.baseLimit > m.baseSize {
		return nil, fmt.Errorf("base limit %d past size %d or base size %d: %w", m.baseLimit, m.size, m.baseSize, errMap)
	}
	nameLen := int64(le.Uint32(b[72:]))
	if nameLen > maxNameLen {
		return nil, fmt.Errorf("bad name length %d: %w", nameLen, errMap)
	}
	flags := le.Uint32(b[76:])
	if flags&^flagWhole != 0 {
		return nil, fmt.Errorf("unknown flags %#x: %w", flags, errMap)
	}
	m.whole = flags&flagWhole != 0
	count := le.Uint64(b[80:])
	rest := int64(len(body)) - mapHeaderLen - nameLen
	if rest < 0 || count > uint64(rest)/mapRunLen || int64(count)*mapRunLen != rest {
		return nil, fmt.Errorf("%d runs do not fit the %d bytes of the map: %w", count, len(b), errMap)
	}
	m.name = string(body[mapHeaderLen : mapHeaderLen+nameLen])
	blocks := blocksOf(m.size)
	m.runs = make([]mrun, 0, count)
	var prevEnd int64
	for i := range int64(count) {
		r := body[mapHeaderLen+nameLen+i*mapRunLen:]
		first, n, st := le.Uint64(r), le.Uint64(r[8:]), state(r[16])
		if st != stData && st != stZero {
			return nil, fmt.Errorf("run %d has state %d: %w", i, st, errMap)
		}
		if n == 0 || first < uint64(prevEnd) || first > uint64(blocks) || n > uint64(blocks)-first {
			return nil, fmt.Errorf("run %d (blocks %d+%d) overlaps or lies past the %d blocks of the file: %w", i, first, n, blocks, errMap)
		}
		m.runs = append(m.runs, mrun{first: int64(first), count: int64(n), st: st})
		prevEnd = int64(first + n)
	}
	if m.whole && !slices.Equal(m.runs, wholeRuns(m.size)) {
		return nil, fmt.Errorf("whole file whose runs are not one written run over its %d blocks: %w", blocks, errMap)
	}
	return m, nil
}
