package vdi

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/vmfs/vmfs/layouts"
)

// Type is the format name.
const Type = "vdi"

const (
	signature = 0xbeda107f
	version11 = 0x00010001

	// Image types.
	typeNormal = 1 // dynamic
	typeFixed  = 2 // static
	typeUndo   = 3
	typeDiff   = 4

	// Block map entries that are not block numbers.
	blockFree = 0xffffffff // not allocated: reads as zeros (or from the parent)
	blockZero = 0xfffffffe // allocated as zeros

	headerSize   = 0x48 + 0x190 // pre-header and version 1.1 header
	minBlockSize = 512
	maxBlockSize = 256 << 20
	// maxMapBytes bounds the block map held in memory (64 MiB: 16 Mi
	// blocks, 16 TiB of 1 MiB blocks).
	maxMapBytes = 64 << 20
)

// Disk is an open VDI image.
type Disk struct {
	// Size, Close (of f), ReadAt (unallocated and zero blocks read as
	// zeros; it may be called in parallel), Extents (unallocated blocks
	// are Hole, zero blocks Zero, stored ones Data) and MapFile (runs of
	// stored blocks contiguous in the file, up to its end)
	layouts.MappedDisk
	f         layouts.File
	name      string
	size      int64
	blockSize int64
	blockBits uint
	extra     int64 // cbBlockExtra: bytes before each block's data
	dataOff   int64
	imageType uint32
	bmap      []uint32
	fileSize  int64
	// The header's UUIDs, as stored (see uuidString).
	uuidCreate, uuidModify, uuidLinkage, uuidParentModify [16]byte
}

func errf(name, format string, args ...any) error {
	return fmt.Errorf("vdi: %s: "+format, append([]any{name}, args...)...)
}

// Open opens f as a VDI image. It returns an error wrapping
// layouts.ErrWrongType when f has no VDI signature. A differencing image
// is returned stacked over its parent, found by UUID next to it and opened
// through env (see openParent). On success the disk owns f.
func Open(f layouts.File, env *layouts.Env) (layouts.Disk, error) {
	d, err := open(f)
	if err != nil {
		return nil, err
	}
	if d.imageType != typeDiff {
		return d, nil
	}
	parent, err := d.openParent(env)
	if err != nil {
		return nil, err
	}
	return layouts.Stack(d, parent), nil
}

func open(f layouts.File) (*Disk, error) {
	name := f.Name()
	var b [headerSize]byte
	n, err := f.ReadAt(b[:], 0)
	if n < 0x48 || binary.LittleEndian.Uint32(b[0x40:]) != signature {
		if err != nil && err != io.EOF && n < 0x48 {
			return nil, errf(name, "reading header: %v", err)
		}
		return nil, errf(name, "no vdi signature: %w", layouts.ErrWrongType)
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[0x44:]); v != version11 {
		return nil, errf(name, "header version %d.%d is not supported: %w", v>>16, v&0xffff, layouts.ErrUnsupported)
	}
	if n < headerSize {
		return nil, errf(name, "header truncated at %d bytes: %w", n, layouts.ErrFormat)
	}
	d := &Disk{f: f, name: name, fileSize: f.Size()}
	cbHeader := le.Uint32(b[0x48:])
	d.imageType = le.Uint32(b[0x4c:])
	offBlocks := int64(le.Uint32(b[0x154:]))
	d.dataOff = int64(le.Uint32(b[0x158:]))
	cbDisk := le.Uint64(b[0x170:])
	cbBlock := le.Uint32(b[0x178:])
	d.extra = int64(le.Uint32(b[0x17c:]))
	cBlocks := int64(le.Uint32(b[0x180:]))
	copy(d.uuidCreate[:], b[0x188:])
	copy(d.uuidModify[:], b[0x198:])
	copy(d.uuidLinkage[:], b[0x1a8:])
	copy(d.uuidParentModify[:], b[0x1b8:])

	if cbHeader < 0x180 {
		return nil, errf(name, "header size %d too small for version 1.1: %w", cbHeader, layouts.ErrFormat)
	}
	switch d.imageType {
	case typeNormal, typeFixed, typeDiff:
	case typeUndo:
		return nil, errf(name, "undo image: %w", layouts.ErrUnsupported)
	default:
		return nil, errf(name, "image type %d: %w", d.imageType, layouts.ErrFormat)
	}
	if cbBlock < minBlockSize || cbBlock > maxBlockSize || cbBlock&(cbBlock-1) != 0 {
		return nil, errf(name, "block size %d is not a power of two in %d..%d: %w", cbBlock, minBlockSize, maxBlockSize, layouts.ErrFormat)
	}
	d.blockSize = int64(cbBlock)
	for d.blockBits = 0; int64(1)<<d.blockBits < d.blockSize; d.blockBits++ {
	}
	if d.extra > 0 && d.extra > maxBlockSize {
		return nil, errf(name, "block extra size %d is too large: %w", d.extra, layouts.ErrFormat)
	}
	if cbDisk > 1<<62 || uint64(cBlocks)<<d.blockBits < cbDisk {
		return nil, errf(name, "disk size %d does not fit %d blocks of %d bytes: %w", cbDisk, cBlocks, cbBlock, layouts.ErrFormat)
	}
	d.size = int64(cbDisk)
	mapBytes := cBlocks * 4
	if mapBytes > maxMapBytes {
		return nil, errf(name, "block map of %d entries is too large: %w", cBlocks, layouts.ErrFormat)
	}
	if offBlocks < 0x48 || offBlocks > d.fileSize || d.fileSize-offBlocks < mapBytes {
		return nil, errf(name, "block map at %#x (%d entries) points past end of file: %w", offBlocks, cBlocks, layouts.ErrFormat)
	}
	if d.dataOff > d.fileSize {
		return nil, errf(name, "data offset %#x points past end of file: %w", d.dataOff, layouts.ErrFormat)
	}
	// Only the blocks the virtual size needs are kept.
	need := (d.size + d.blockSize - 1) >> d.blockBits
	raw := make([]byte, need*4)
	if _, err := f.ReadAt(raw, offBlocks); err != nil && err != io.EOF {
		return nil, errf(name, "reading block map: %v", err)
	}
	d.bmap = make([]uint32, need)
	for i := range d.bmap {
		d.bmap[i] = le.Uint32(raw[i*4:])
	}
	d.InitMapped(f, d.size, d.visit, d.readData)
	return d, nil
}

func (d *Disk) Format() string { return Type }

// Chain is this layer; Open stacks the parent under it.
func (d *Disk) Chain() []layouts.Layer { return []layouts.Layer{{File: d.name, Format: Type}} }

// BlockSize is the image's block size in bytes.
func (d *Disk) BlockSize() int64 { return d.blockSize }

// Static reports whether the image is fixed (preallocated).
func (d *Disk) Static() bool { return d.imageType == typeFixed }

// block maps block i: its kind and, for data, the file offset of its data.
func (d *Disk) block(i int64) (layouts.Kind, int64, error) {
	e := d.bmap[i]
	switch e {
	case blockFree:
		return layouts.Hole, 0, nil
	case blockZero:
		return layouts.Zero, 0, nil
	}
	off := d.dataOff + int64(e)*(d.blockSize+d.extra) + d.extra
	if off >= d.fileSize {
		return 0, 0, errf(d.name, "block map entry %d (block %d) points past end of file: %w", i, e, layouts.ErrFormat)
	}
	return layouts.Data, off, nil
}

// run maps the run starting at pos, at most limit bytes: consecutive blocks
// of one kind (and, for data, contiguous in the file).
func (d *Disk) run(pos, limit int64) (int64, layouts.Kind, int64, error) {
	i := pos >> d.blockBits
	in := pos & (d.blockSize - 1)
	kind, off, err := d.block(i)
	if err != nil {
		return 0, 0, 0, err
	}
	n := d.blockSize - in
	for j := i + 1; j < int64(len(d.bmap)) && n < limit; j++ {
		k2, off2, err := d.block(j)
		if err != nil || k2 != kind || (kind == layouts.Data && off2 != off+(j-i)*(d.blockSize+d.extra)) {
			break
		}
		if kind == layouts.Data && d.extra != 0 {
			break
		}
		n += d.blockSize
	}
	if kind == layouts.Data {
		off += in
	}
	return min(n, limit), kind, off, nil
}

// visit calls fn for the runs of [off, end) in order: Data runs carry the
// file offset of their first byte.
func (d *Disk) visit(off, end int64, fn func(o, l int64, k layouts.Kind, host int64) error) error {
	for pos := off; pos < end; {
		m, kind, host, err := d.run(pos, end-pos)
		if err != nil {
			return err
		}
		if err := fn(pos, m, kind, host); err != nil {
			return err
		}
		pos += m
	}
	return nil
}

// readData reads stored bytes; like QEMU, the part of a block past the end
// of the file reads as zeros.
func (d *Disk) readData(buf []byte, host int64) error {
	short, err := layouts.ReadZeroTail(d.f, buf, host, d.fileSize)
	if err != nil {
		return errf(d.name, "reading block data at %#x: %v", host, err)
	}
	if short {
		return errf(d.name, "short read of block data at %#x: %w", host, io.ErrUnexpectedEOF)
	}
	return nil
}

var (
	_ layouts.Disk       = (*Disk)(nil)
	_ layouts.FileMapper = (*Disk)(nil)
)
