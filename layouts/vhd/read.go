package vhd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/raw"
)

// Type is the format name.
const Type = "vhd"

const (
	sectorSize = 512
	footerSize = 512
	headerSize = 1024

	diskFixed   = 2
	diskDynamic = 3
	diskDiff    = 4

	batUnused = 0xFFFFFFFF

	// maxGeometry is the CHS geometry 65535/16/255 in sectors.
	maxGeometry = 65535 * 16 * 255
	// minBlockSize is the smallest block size read (8 sectors).
	minBlockSize = 4096
	// maxBlockSize bounds the block size a header may claim.
	maxBlockSize = 1 << 30
	// maxSize bounds the virtual size (the BAT addresses 2^32 sectors of
	// blocks; anything past 2^48 bytes is hostile).
	maxSize = 1 << 48

	// batPageEntries is how many BAT entries are read and cached together.
	batPageEntries = 4096
)

var (
	cookieFooter = []byte("conectix")
	cookieHeader = []byte("cxsparse")
)

// footer is the parsed hard disk footer.
type footer struct {
	dataOffset  uint64
	creatorApp  [4]byte
	currentSize uint64
	cyls        uint16
	heads       uint8
	spt         uint8
	diskType    uint32
	uniqueID    [16]byte
}

// header is the parsed dynamic disk header.
type header struct {
	tableOffset uint64
	maxEntries  uint32
	blockSize   uint32
	parentID    [16]byte
	parentName  []byte // UTF-16BE, 512 bytes
	locators    [8]locator
}

type locator struct {
	code   uint32
	space  uint32
	length uint32
	offset uint64
}

// Disk is a fixed or dynamic VHD, or the top layer of a differencing one.
type Disk struct {
	// Size and Close (of f); ReadAt, Extents and MapFile of dynamic and
	// differencing disks
	layouts.MappedDisk

	f    layouts.File
	name string
	ft   footer
	size int64

	fixed *raw.Disk // fixed disks: the data is the file

	blockSize  int64
	bitmapSize int64
	sectPerBlk int64
	batOff     int64
	nblocks    int64 // BAT entries covering size
	pages      []atomic.Pointer[batPage]
}

// batPage is a cached piece of the BAT with the sector bitmaps of its
// blocks, each read on first use.
type batPage struct {
	entries []uint32
	bitmaps []atomic.Pointer[bitmap]
}

// bitmap is one block's sector bitmap; full means every bit is set.
type bitmap struct {
	full bool
	bits []byte
}

func (d *Disk) errf(format string, a ...any) error {
	return fmt.Errorf("vhd: %s: "+format, append([]any{d.name}, a...)...)
}

// Open opens f as a VHD. It returns an error wrapping layouts.ErrWrongType
// when f holds no VHD footer. A differencing disk is returned stacked over
// its parent, opened through env.
func Open(f layouts.File, env *layouts.Env) (layouts.Disk, error) {
	d, hd, err := openTop(f)
	if err != nil {
		return nil, err
	}
	if d.ft.diskType != diskDiff {
		return d, nil
	}
	parent, err := d.openParent(hd, env)
	if err != nil {
		return nil, err
	}
	return layouts.Stack(d, parent), nil
}

// openTop parses f without opening a parent.
func openTop(f layouts.File) (*Disk, *header, error) {
	name := f.Name()
	fsize := f.Size()
	if fsize < footerSize {
		return nil, nil, fmt.Errorf("vhd: %s: too short for a footer: %w", name, layouts.ErrWrongType)
	}
	var tail, head [footerSize]byte
	if err := layouts.ReadFull(f, tail[:], fsize-footerSize); err != nil {
		return nil, nil, fmt.Errorf("vhd: %s: reading footer: %w", name, err)
	}
	if err := layouts.ReadFull(f, head[:], 0); err != nil {
		return nil, nil, fmt.Errorf("vhd: %s: reading footer copy: %w", name, err)
	}
	tailCookie := bytes.Equal(tail[:8], cookieFooter)
	headCookie := bytes.Equal(head[:8], cookieFooter)
	if !tailCookie && !headCookie {
		// Virtual PC before 2004 wrote a 511-byte footer.
		var old [8]byte
		if fsize >= footerSize+1 && layouts.ReadFull(f, old[:], fsize-footerSize+1) == nil && bytes.Equal(old[:], cookieFooter) {
			return nil, nil, fmt.Errorf("vhd: %s: 511-byte footer of Virtual PC before 2004: %w", name, layouts.ErrUnsupported)
		}
		return nil, nil, fmt.Errorf("vhd: %s: no conectix footer: %w", name, layouts.ErrWrongType)
	}
	var ft footer
	switch {
	case tailCookie && checksumOK(tail[:], 64):
		ft = parseFooter(tail[:])
	case headCookie && checksumOK(head[:], 64) && isSparse(parseFooter(head[:]).diskType):
		ft = parseFooter(head[:])
	case tailCookie:
		return nil, nil, fmt.Errorf("vhd: %s: footer checksum mismatch and no valid copy at the start: %w", name, layouts.ErrFormat)
	default:
		if fsize < 1024 {
			// A lone "conectix" at offset 0 of a tiny file: not a VHD.
			return nil, nil, fmt.Errorf("vhd: %s: no conectix footer: %w", name, layouts.ErrWrongType)
		}
		return nil, nil, fmt.Errorf("vhd: %s: footer copy at the start has a bad checksum and the end holds no footer: %w", name, layouts.ErrFormat)
	}
	d := &Disk{f: f, name: name, ft: ft}
	size, err := virtualSize(&ft)
	if err != nil {
		return nil, nil, d.errf("%v: %w", err, layouts.ErrFormat)
	}
	d.size = size
	d.InitMapped(f, size, d.visit, d.readData)
	switch ft.diskType {
	case diskFixed:
		if !tailCookie {
			return nil, nil, d.errf("fixed disk without a footer at the end: %w", layouts.ErrFormat)
		}
		if size > fsize-footerSize {
			return nil, nil, d.errf("fixed disk of %d bytes in a file of %d: %w", size, fsize, layouts.ErrFormat)
		}
		d.fixed = raw.New(f)
		return d, nil, nil
	case diskDynamic, diskDiff:
		hd, err := d.readHeader()
		if err != nil {
			return nil, nil, err
		}
		return d, hd, nil
	}
	return nil, nil, d.errf("disk type %d: %w", ft.diskType, layouts.ErrUnsupported)
}

func isSparse(t uint32) bool { return t == diskDynamic || t == diskDiff }

// checksumOK checks the one's complement sum of b, the 4 bytes at csOff
// counted as zero.
func checksumOK(b []byte, csOff int) bool {
	return checksum(b, csOff) == binary.BigEndian.Uint32(b[csOff:])
}

func checksum(b []byte, csOff int) uint32 {
	var sum uint32
	for i, c := range b {
		if i >= csOff && i < csOff+4 {
			continue
		}
		sum += uint32(c)
	}
	return ^sum
}

func parseFooter(b []byte) footer {
	var ft footer
	ft.dataOffset = binary.BigEndian.Uint64(b[16:])
	copy(ft.creatorApp[:], b[28:32])
	ft.currentSize = binary.BigEndian.Uint64(b[48:])
	ft.cyls = binary.BigEndian.Uint16(b[56:])
	ft.heads = b[58]
	ft.spt = b[59]
	ft.diskType = binary.BigEndian.Uint32(b[60:])
	copy(ft.uniqueID[:], b[68:84])
	return ft
}

// virtualSize decides the disk size as qemu-img does (see the package
// documentation).
func virtualSize(ft *footer) (int64, error) {
	chs := uint64(ft.cyls) * uint64(ft.heads) * uint64(ft.spt)
	sectors := chs
	switch string(ft.creatorApp[:]) {
	case "win ", "qem2", "d2v ", "CTXS", "tap\x00":
		sectors = ft.currentSize / sectorSize
	}
	if chs == maxGeometry {
		sectors = ft.currentSize / sectorSize
	}
	if sectors > maxSize/sectorSize {
		return 0, fmt.Errorf("absurd disk size %d sectors", sectors)
	}
	return int64(sectors) * sectorSize, nil
}

func (d *Disk) readHeader() (*header, error) {
	fsize := d.f.Size()
	off := d.ft.dataOffset
	if off > uint64(fsize) || uint64(fsize)-off < headerSize {
		return nil, d.errf("dynamic header at %d lies past end of file: %w", off, layouts.ErrFormat)
	}
	var b [headerSize]byte
	if err := layouts.ReadFull(d.f, b[:], int64(off)); err != nil {
		return nil, d.errf("reading dynamic header: %w", err)
	}
	if !bytes.Equal(b[:8], cookieHeader) {
		return nil, d.errf("dynamic header at %d lacks its cxsparse cookie: %w", off, layouts.ErrFormat)
	}
	if !checksumOK(b[:], 36) {
		return nil, d.errf("dynamic header checksum mismatch: %w", layouts.ErrFormat)
	}
	hd := &header{
		tableOffset: binary.BigEndian.Uint64(b[16:]),
		maxEntries:  binary.BigEndian.Uint32(b[28:]),
		blockSize:   binary.BigEndian.Uint32(b[32:]),
		parentName:  append([]byte(nil), b[64:576]...),
	}
	copy(hd.parentID[:], b[40:56])
	for i := range hd.locators {
		e := b[576+24*i:]
		hd.locators[i] = locator{
			code:   binary.BigEndian.Uint32(e[0:]),
			space:  binary.BigEndian.Uint32(e[4:]),
			length: binary.BigEndian.Uint32(e[8:]),
			offset: binary.BigEndian.Uint64(e[16:]),
		}
	}
	bs := uint64(hd.blockSize)
	if bs == 0 || bs > maxBlockSize || bs&(bs-1) != 0 {
		return nil, d.errf("dynamic header block size %d is not a power of two up to %d: %w", bs, maxBlockSize, layouts.ErrFormat)
	}
	if bs < minBlockSize {
		// The specification pads a bitmap of under 8 bits to a sector;
		// qemu reads such blocks without one. Refuse rather than guess.
		return nil, d.errf("dynamic header block size %d is below %d: %w", bs, minBlockSize, layouts.ErrUnsupported)
	}
	d.blockSize = int64(bs)
	d.sectPerBlk = d.blockSize / sectorSize
	d.bitmapSize = (d.sectPerBlk/8 + sectorSize - 1) &^ (sectorSize - 1)
	d.nblocks = (d.size + d.blockSize - 1) / d.blockSize
	if d.nblocks > int64(hd.maxEntries) {
		return nil, d.errf("block allocation table of %d entries is too small for %d blocks: %w", hd.maxEntries, d.nblocks, layouts.ErrFormat)
	}
	if hd.tableOffset > uint64(fsize) || uint64(fsize)-hd.tableOffset < uint64(d.nblocks)*4 {
		return nil, d.errf("block allocation table (%d entries at %d) runs past end of file: %w", d.nblocks, hd.tableOffset, layouts.ErrFormat)
	}
	d.batOff = int64(hd.tableOffset)
	d.pages = make([]atomic.Pointer[batPage], (d.nblocks+batPageEntries-1)/batPageEntries)
	return hd, nil
}

// page returns the BAT page holding block i (i < nblocks).
func (d *Disk) page(i int64) (*batPage, error) {
	pg := i / batPageEntries
	if p := d.pages[pg].Load(); p != nil {
		return p, nil
	}
	first := pg * batPageEntries
	n := min(int64(batPageEntries), d.nblocks-first)
	buf := make([]byte, n*4)
	if err := layouts.ReadFull(d.f, buf, d.batOff+first*4); err != nil {
		return nil, d.errf("reading block allocation table: %w", err)
	}
	p := &batPage{entries: make([]uint32, n), bitmaps: make([]atomic.Pointer[bitmap], n)}
	for j := range p.entries {
		p.entries[j] = binary.BigEndian.Uint32(buf[4*j:])
	}
	if !d.pages[pg].CompareAndSwap(nil, p) {
		p = d.pages[pg].Load()
	}
	return p, nil
}

// blockLen is how many bytes of the virtual disk block i covers.
func (d *Disk) blockLen(i int64) int64 {
	return min(d.blockSize, d.size-i*d.blockSize)
}

// block returns where block i's bitmap starts in the file (-1 when
// unallocated), checked against the file size, and its BAT page.
func (d *Disk) block(i int64) (int64, *batPage, error) {
	p, err := d.page(i)
	if err != nil {
		return 0, nil, err
	}
	e := p.entries[i%batPageEntries]
	if e == batUnused {
		return -1, p, nil
	}
	off := int64(e) * sectorSize
	need := d.bitmapSize + d.blockLen(i)
	if off+need > d.f.Size() {
		return 0, nil, d.errf("block %d at %d runs past end of file: %w", i, off, layouts.ErrFormat)
	}
	return off, p, nil
}

func (d *Disk) bitmap(p *batPage, i, off int64) (*bitmap, error) {
	slot := &p.bitmaps[i%batPageEntries]
	if bm := slot.Load(); bm != nil {
		return bm, nil
	}
	nbytes := (d.blockLen(i)/sectorSize + 7) / 8
	buf := make([]byte, nbytes)
	if err := layouts.ReadFull(d.f, buf, off); err != nil {
		return nil, d.errf("reading sector bitmap of block %d: %w", i, err)
	}
	bm := &bitmap{bits: buf, full: true}
	nsect := (d.blockLen(i) + sectorSize - 1) / sectorSize
	for s := int64(0); s < nsect; s++ {
		if buf[s/8]&(0x80>>(s%8)) == 0 {
			bm.full = false
			break
		}
	}
	if bm.full {
		bm.bits = nil
	}
	slot.Store(bm)
	return bm, nil
}

// visit calls fn for the runs of [off, end) in order: Data runs carry the
// file offset of their first byte.
func (d *Disk) visit(off, end int64, fn func(off, n int64, k layouts.Kind, foff int64) error) error {
	for off < end {
		i := off / d.blockSize
		bstart := i * d.blockSize
		bend := min(bstart+d.blockLen(i), end)
		boff, pg, err := d.block(i)
		if err != nil {
			return err
		}
		if boff < 0 {
			if err := fn(off, bend-off, layouts.Hole, 0); err != nil {
				return err
			}
			off = bend
			continue
		}
		data := boff + d.bitmapSize - bstart // file offset = data + virtual offset
		bm, err := d.bitmap(pg, i, boff)
		if err != nil {
			return err
		}
		if bm.full {
			if err := fn(off, bend-off, layouts.Data, data+off); err != nil {
				return err
			}
			off = bend
			continue
		}
		if err := layouts.VisitBitmap(bm.bits, true, sectorSize, bstart, off, bend, data, fn); err != nil {
			return err
		}
		off = bend
	}
	return nil
}

// Format is "vhd".
func (d *Disk) Format() string { return Type }

// Chain is this layer; Open stacks the parent under it.
func (d *Disk) Chain() []layouts.Layer { return []layouts.Layer{{File: d.name, Format: Type}} }

// UniqueID is the footer's unique id, which differencing children name as
// their parent id.
func (d *Disk) UniqueID() [16]byte { return d.ft.uniqueID }

// ReadAt reads the virtual disk; holes read as zeros.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	if d.fixed == nil {
		return d.MappedDisk.ReadAt(p, off)
	}
	n, eof := layouts.CheckRead(d.size, p, off)
	if n == 0 {
		return 0, eof
	}
	if _, err := d.fixed.ReadAt(p[:n], off); err != nil && err != io.EOF {
		return 0, fmt.Errorf("vhd: %s: %w", d.name, err)
	}
	return n, eof
}

// readData reads a run of stored sectors.
func (d *Disk) readData(buf []byte, foff int64) error {
	if err := layouts.ReadFull(d.f, buf, foff); err != nil {
		return d.errf("reading data at %d: %w", foff, err)
	}
	return nil
}

// Extents describes [off, off+n): allocated sectors are Data, the rest
// holes.
func (d *Disk) Extents(off, n int64) ([]layouts.Extent, error) {
	if d.fixed == nil {
		return d.MappedDisk.Extents(off, n)
	}
	off, n, ok := layouts.Clip(d.size, off, n)
	if !ok {
		return nil, nil
	}
	return d.fixed.Extents(off, n)
}

// MapFile says where the disk's bytes from off lie in the file: the whole
// of a fixed disk, runs of allocated sectors contiguous in the file of a
// dynamic or differencing one.
func (d *Disk) MapFile(off, n int64) (layouts.FileRange, bool) {
	if d.fixed == nil {
		return d.MappedDisk.MapFile(off, n)
	}
	if off < 0 || n <= 0 || off >= d.size {
		return layouts.FileRange{}, false
	}
	return d.fixed.MapFile(off, min(n, d.size-off))
}

var (
	_ layouts.Disk       = (*Disk)(nil)
	_ layouts.FileMapper = (*Disk)(nil)
)
