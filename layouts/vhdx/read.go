package vhdx

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vmfs/vmfs/layouts"
)

// Type is the format name.
const Type = "vhdx"

const (
	kib = 1 << 10
	mib = 1 << 20

	header1Off  = 64 * kib
	header2Off  = 128 * kib
	headerSize  = 4 * kib
	region1Off  = 192 * kib
	region2Off  = 256 * kib
	regionSize  = 64 * kib
	metaMaxHead = 64 * kib
	maxEntries  = 2047

	// maxVirtualSize is the largest disk the specification allows (64 TiB).
	maxVirtualSize = 64 << 40
	// maxMetaItem bounds the bytes read for one metadata item.
	maxMetaItem = 1 * mib
	// batPageEntries is how many BAT entries are read and cached together.
	batPageEntries = 4096
	// chunkSectors is how many sectors one sector bitmap block covers.
	chunkSectors = 1 << 23
)

// Payload and sector bitmap block states.
const (
	stNotPresent       = 0
	stUndefined        = 1
	stZero             = 2
	stUnmapped         = 3
	stFullyPresent     = 6
	stPartiallyPresent = 7
	sbPresent          = 6
)

type guid [16]byte

// mustGUID parses the textual form into the on-disk (mixed-endian) layout.
func mustGUID(s string) guid {
	g, ok := parseGUID(s)
	if !ok {
		panic("bad guid " + s)
	}
	return g
}

func parseGUID(s string) (guid, bool) {
	var g guid
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "{"), "}")
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, false
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		return g, false
	}
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g, true
}

func (g guid) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(g[0:]),
		binary.LittleEndian.Uint16(g[4:]), binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

var (
	regionBAT      = mustGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
	regionMetadata = mustGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")

	metaFileParams   = mustGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	metaDiskSize     = mustGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	metaPage83       = mustGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
	metaLogicalSect  = mustGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	metaPhysicalSect = mustGUID("CDA348C7-445D-4471-9CC9-E9885251C556")
	metaParentLoc    = mustGUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")

	locatorVHDX = mustGUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcOK checks the CRC-32C of b, the 4 bytes at 4 counted as zero.
func crcOK(b []byte) bool {
	want := binary.LittleEndian.Uint32(b[4:])
	var zero [4]byte
	c := crc32.Update(0, castagnoli, b[:4])
	c = crc32.Update(c, castagnoli, zero[:])
	c = crc32.Update(c, castagnoli, b[8:])
	return c == want
}

// hdr is the parsed current header.
type hdr struct {
	seq       uint64
	fileWrite guid
	dataWrite guid
	logGUID   guid
	logLength uint32
	logOffset uint64
}

// Disk is a fixed or dynamic VHDX, or the top layer of a differencing one.
// Its Size, Close (of its file), ReadAt (holes read as zeros), Extents and
// MapFile (runs of present sectors contiguous in the file) are those of its
// MappedDisk.
type Disk struct {
	layouts.MappedDisk
	f    layouts.File
	name string
	h    hdr

	size       int64
	blockSize  int64
	logical    int64
	physical   int64
	hasParent  bool
	leaveAlloc bool
	chunkRatio int64
	nblocks    int64
	batOff     int64
	batLen     int64 // entries present in the BAT region
	locator    []byte

	pages   []atomic.Pointer[[]uint64]
	bitmaps sync.Map // block index -> []byte (sector bits, LSB first)
}

func (d *Disk) errf(format string, a ...any) error {
	return fmt.Errorf("vhdx: %s: "+format, append([]any{d.name}, a...)...)
}

// Open opens f as a VHDX. It returns an error wrapping layouts.ErrWrongType
// when f does not start with "vhdxfile". A differencing disk is returned
// stacked over its parent, opened through env.
func Open(f layouts.File, env *layouts.Env) (layouts.Disk, error) {
	d, err := openTop(f)
	if err != nil {
		return nil, err
	}
	if !d.hasParent {
		return d, nil
	}
	parent, err := d.openParent(env)
	if err != nil {
		return nil, err
	}
	return layouts.Stack(d, parent), nil
}

func openTop(f layouts.File) (*Disk, error) {
	name := f.Name()
	var sig [8]byte
	if f.Size() < 8 || layouts.ReadFull(f, sig[:], 0) != nil || string(sig[:]) != "vhdxfile" {
		return nil, fmt.Errorf("vhdx: %s: no vhdxfile signature: %w", name, layouts.ErrWrongType)
	}
	d := &Disk{f: f, name: name}
	if f.Size() < 1*mib {
		return nil, d.errf("file of %d bytes is too short for the header section: %w", f.Size(), layouts.ErrFormat)
	}
	if err := d.readHeaders(); err != nil {
		return nil, err
	}
	if err := d.checkLog(); err != nil {
		return nil, err
	}
	batOff, batLen, metaOff, metaLen, err := d.readRegions()
	if err != nil {
		return nil, err
	}
	if err := d.readMetadata(metaOff, metaLen); err != nil {
		return nil, err
	}
	if err := d.setupBAT(batOff, batLen); err != nil {
		return nil, err
	}
	d.InitMapped(f, d.size, d.visit, d.readData)
	return d, nil
}

func (d *Disk) readHeaders() error {
	var best *hdr
	buf := make([]byte, headerSize)
	for _, off := range []int64{header1Off, header2Off} {
		if err := layouts.ReadFull(d.f, buf, off); err != nil {
			return d.errf("reading header at %d: %w", off, err)
		}
		if string(buf[:4]) != "head" || !crcOK(buf) {
			continue
		}
		if v := binary.LittleEndian.Uint16(buf[66:]); v != 1 {
			continue
		}
		h := &hdr{
			seq:       binary.LittleEndian.Uint64(buf[8:]),
			logLength: binary.LittleEndian.Uint32(buf[68:]),
			logOffset: binary.LittleEndian.Uint64(buf[72:]),
		}
		copy(h.fileWrite[:], buf[16:32])
		copy(h.dataWrite[:], buf[32:48])
		copy(h.logGUID[:], buf[48:64])
		if best == nil || h.seq > best.seq {
			best = h
		}
	}
	if best == nil {
		return d.errf("neither header has a valid signature, version and checksum: %w", layouts.ErrFormat)
	}
	d.h = *best
	return nil
}

// checkLog refuses an image whose log holds entries to replay.
func (d *Disk) checkLog() error {
	if d.h.logGUID == (guid{}) {
		return nil
	}
	off, n := int64(d.h.logOffset), int64(d.h.logLength)
	if d.h.logOffset%mib != 0 || n%mib != 0 || n == 0 || d.h.logOffset > uint64(d.f.Size()) || off+n > d.f.Size() || off+n < off {
		return d.errf("log (%d bytes at %d) is misplaced: %w", n, off, layouts.ErrFormat)
	}
	head := make([]byte, 64)
	buf := make([]byte, 64*kib)
	for pos := int64(0); pos < n; pos += 4 * kib {
		if err := layouts.ReadFull(d.f, head, off+pos); err != nil {
			return d.errf("reading log: %w", err)
		}
		if string(head[:4]) != "loge" || !bytes.Equal(head[32:48], d.h.logGUID[:]) {
			continue
		}
		length := int64(binary.LittleEndian.Uint32(head[8:]))
		if length < 4*kib || length%(4*kib) != 0 {
			continue
		}
		if pos+length > n {
			// wraps around the circular log: count it, to be safe
			return d.logErr()
		}
		// CRC-32C over the whole entry, the checksum field as zero
		var zero [4]byte
		c := crc32.Update(0, castagnoli, head[:4])
		c = crc32.Update(c, castagnoli, zero[:])
		c = crc32.Update(c, castagnoli, head[8:])
		for done := int64(64); done < length; {
			m := min(int64(len(buf)), length-done)
			if err := layouts.ReadFull(d.f, buf[:m], off+pos+done); err != nil {
				return d.errf("reading log: %w", err)
			}
			c = crc32.Update(c, castagnoli, buf[:m])
			done += m
		}
		if c == binary.LittleEndian.Uint32(head[4:]) {
			return d.logErr()
		}
	}
	return nil
}

func (d *Disk) logErr() error {
	return d.errf("log holds entries that must be replayed first (open the image read-write in Hyper-V or run qemu-img check -r all on a copy): %w", layouts.ErrUnsupported)
}

func (d *Disk) readRegions() (batOff, batLen, metaOff, metaLen int64, err error) {
	buf := make([]byte, regionSize)
	var lastErr error
	for _, off := range []int64{region1Off, region2Off} {
		if err := layouts.ReadFull(d.f, buf, off); err != nil {
			return 0, 0, 0, 0, d.errf("reading region table: %w", err)
		}
		if string(buf[:4]) != "regi" || !crcOK(buf) {
			lastErr = d.errf("region tables have a bad signature or checksum: %w", layouts.ErrFormat)
			continue
		}
		count := binary.LittleEndian.Uint32(buf[8:])
		if count > maxEntries {
			lastErr = d.errf("region table claims %d entries: %w", count, layouts.ErrFormat)
			continue
		}
		batOff, batLen, metaOff, metaLen = 0, 0, 0, 0
		for i := 0; i < int(count); i++ {
			e := buf[16+32*i:]
			var id guid
			copy(id[:], e[:16])
			foff := binary.LittleEndian.Uint64(e[16:])
			flen := uint64(binary.LittleEndian.Uint32(e[24:]))
			required := binary.LittleEndian.Uint32(e[28:])&1 != 0
			if foff%mib != 0 || foff < mib || flen == 0 || flen%mib != 0 || foff > uint64(d.f.Size()) || uint64(d.f.Size())-foff < flen {
				return 0, 0, 0, 0, d.errf("region %s (%d bytes at %d) lies outside the file: %w", id, flen, foff, layouts.ErrFormat)
			}
			switch id {
			case regionBAT:
				batOff, batLen = int64(foff), int64(flen)
			case regionMetadata:
				metaOff, metaLen = int64(foff), int64(flen)
			default:
				if required {
					return 0, 0, 0, 0, d.errf("required region %s is unknown: %w", id, layouts.ErrUnsupported)
				}
			}
		}
		if batLen == 0 || metaLen == 0 {
			return 0, 0, 0, 0, d.errf("region table lacks the BAT or metadata region: %w", layouts.ErrFormat)
		}
		return batOff, batLen, metaOff, metaLen, nil
	}
	return 0, 0, 0, 0, lastErr
}

func (d *Disk) readMetadata(off, n int64) error {
	tlen := min(n, int64(metaMaxHead))
	tbl := make([]byte, tlen)
	if err := layouts.ReadFull(d.f, tbl, off); err != nil {
		return d.errf("reading metadata table: %w", err)
	}
	if string(tbl[:8]) != "metadata" {
		return d.errf("metadata table lacks its signature: %w", layouts.ErrFormat)
	}
	count := int(binary.LittleEndian.Uint16(tbl[10:]))
	if count > maxEntries || 32+32*int64(count) > tlen {
		return d.errf("metadata table claims %d entries: %w", count, layouts.ErrFormat)
	}
	items := map[guid][]byte{}
	for i := 0; i < count; i++ {
		e := tbl[32+32*i:]
		var id guid
		copy(id[:], e[:16])
		ioff := int64(binary.LittleEndian.Uint32(e[16:]))
		ilen := int64(binary.LittleEndian.Uint32(e[20:]))
		required := binary.LittleEndian.Uint32(e[24:])&4 != 0
		switch id {
		case metaFileParams, metaDiskSize, metaPage83, metaLogicalSect, metaPhysicalSect, metaParentLoc:
		default:
			if required {
				return d.errf("required metadata item %s is unknown: %w", id, layouts.ErrUnsupported)
			}
			continue
		}
		if ilen == 0 {
			continue
		}
		if ioff < 64*kib || ilen > maxMetaItem || ioff+ilen > n {
			return d.errf("metadata item %s (%d bytes at %d) lies outside the metadata region: %w", id, ilen, ioff, layouts.ErrFormat)
		}
		b := make([]byte, ilen)
		if err := layouts.ReadFull(d.f, b, off+ioff); err != nil {
			return d.errf("reading metadata item %s: %w", id, err)
		}
		items[id] = b
	}
	need := func(id guid, what string, n int) ([]byte, error) {
		b, ok := items[id]
		if !ok || len(b) < n {
			return nil, d.errf("metadata item %s is missing or short: %w", what, layouts.ErrFormat)
		}
		return b, nil
	}
	fp, err := need(metaFileParams, "file parameters", 8)
	if err != nil {
		return err
	}
	ds, err := need(metaDiskSize, "virtual disk size", 8)
	if err != nil {
		return err
	}
	ls, err := need(metaLogicalSect, "logical sector size", 4)
	if err != nil {
		return err
	}
	ps, err := need(metaPhysicalSect, "physical sector size", 4)
	if err != nil {
		return err
	}
	bs := int64(binary.LittleEndian.Uint32(fp[0:]))
	flags := binary.LittleEndian.Uint32(fp[4:])
	d.leaveAlloc = flags&1 != 0
	d.hasParent = flags&2 != 0
	if bs < mib || bs > 256*mib || bs&(bs-1) != 0 {
		return d.errf("block size %d is not a power of two between 1 MiB and 256 MiB: %w", bs, layouts.ErrFormat)
	}
	d.blockSize = bs
	d.logical = int64(binary.LittleEndian.Uint32(ls))
	d.physical = int64(binary.LittleEndian.Uint32(ps))
	if d.logical != 512 && d.logical != 4096 {
		return d.errf("logical sector size %d is neither 512 nor 4096: %w", d.logical, layouts.ErrFormat)
	}
	if d.physical != 512 && d.physical != 4096 {
		return d.errf("physical sector size %d is neither 512 nor 4096: %w", d.physical, layouts.ErrFormat)
	}
	size := binary.LittleEndian.Uint64(ds)
	if size > maxVirtualSize {
		return d.errf("virtual disk size %d exceeds 64 TiB: %w", size, layouts.ErrFormat)
	}
	d.size = int64(size)
	if d.hasParent {
		loc, err := need(metaParentLoc, "parent locator", 20)
		if err != nil {
			return err
		}
		d.locator = loc
	}
	return nil
}

func (d *Disk) setupBAT(off, n int64) error {
	d.chunkRatio = chunkSectors * d.logical / d.blockSize
	d.nblocks = (d.size + d.blockSize - 1) / d.blockSize
	// entries needed: every payload entry, and for differencing disks the
	// sector bitmap entry of every chunk.
	need := int64(0)
	if d.nblocks > 0 {
		need = d.nblocks + (d.nblocks-1)/d.chunkRatio
		if d.hasParent {
			chunks := (d.nblocks + d.chunkRatio - 1) / d.chunkRatio
			need = chunks * (d.chunkRatio + 1)
		}
	}
	if need*8 > n {
		return d.errf("BAT region of %d bytes is too small for %d entries: %w", n, need, layouts.ErrFormat)
	}
	d.batOff = off
	d.pages = make([]atomic.Pointer[[]uint64], (need+batPageEntries-1)/batPageEntries)
	d.batLen = need
	return nil
}

// batEntry returns BAT entry i (i < batLen).
func (d *Disk) batEntry(i int64) (uint64, error) {
	pg := i / batPageEntries
	if p := d.pages[pg].Load(); p != nil {
		return (*p)[i%batPageEntries], nil
	}
	first := pg * batPageEntries
	n := min(int64(batPageEntries), d.batLen-first)
	buf := make([]byte, n*8)
	if err := layouts.ReadFull(d.f, buf, d.batOff+first*8); err != nil {
		return 0, d.errf("reading BAT: %w", err)
	}
	page := make([]uint64, n)
	for j := range page {
		page[j] = binary.LittleEndian.Uint64(buf[8*j:])
	}
	d.pages[pg].Store(&page)
	return page[i%batPageEntries], nil
}

func (d *Disk) blockLen(i int64) int64 {
	return min(d.blockSize, d.size-i*d.blockSize)
}

// block returns the state of payload block i and its file offset (checked
// to hold the block's bytes inside the file).
func (d *Disk) block(i int64) (uint64, int64, error) {
	e, err := d.batEntry(i + i/d.chunkRatio)
	if err != nil {
		return 0, 0, err
	}
	st := e & 7
	switch st {
	case stNotPresent, stUndefined, stZero, stUnmapped:
		return st, 0, nil
	case stFullyPresent, stPartiallyPresent:
		if st == stPartiallyPresent && !d.hasParent {
			return 0, 0, d.errf("payload block %d is partially present in a disk without parent: %w", i, layouts.ErrFormat)
		}
		off := int64(e >> 20 << 20)
		if off < mib || off > d.f.Size() || d.f.Size()-off < d.blockLen(i) {
			return 0, 0, d.errf("payload block %d at %d runs past end of file: %w", i, off, layouts.ErrFormat)
		}
		return st, off, nil
	}
	return 0, 0, d.errf("payload block %d has invalid state %d: %w", i, st, layouts.ErrFormat)
}

// bitmap returns block i's sector bits from its chunk's sector bitmap block.
func (d *Disk) bitmap(i int64) ([]byte, error) {
	if v, ok := d.bitmaps.Load(i); ok {
		return v.([]byte), nil
	}
	chunk := i / d.chunkRatio
	e, err := d.batEntry(chunk*(d.chunkRatio+1) + d.chunkRatio)
	if err != nil {
		return nil, err
	}
	if e&7 != sbPresent {
		return nil, d.errf("payload block %d is partially present but sector bitmap block %d is not (state %d): %w", i, chunk, e&7, layouts.ErrFormat)
	}
	sbOff := int64(e >> 20 << 20)
	if sbOff < mib || sbOff > d.f.Size() || d.f.Size()-sbOff < mib {
		return nil, d.errf("sector bitmap block %d at %d runs past end of file: %w", chunk, sbOff, layouts.ErrFormat)
	}
	sectors := d.blockSize / d.logical
	first := (i % d.chunkRatio) * sectors
	bits := make([]byte, sectors/8)
	if err := layouts.ReadFull(d.f, bits, sbOff+first/8); err != nil {
		return nil, d.errf("reading sector bitmap block %d: %w", chunk, err)
	}
	v, _ := d.bitmaps.LoadOrStore(i, bits)
	return v.([]byte), nil
}

// visit calls fn for the runs of [off, end) in order: Data runs carry the
// file offset of their first byte.
func (d *Disk) visit(off, end int64, fn func(off, n int64, k layouts.Kind, foff int64) error) error {
	for off < end {
		i := off / d.blockSize
		bstart := i * d.blockSize
		bend := min(bstart+d.blockLen(i), end)
		st, boff, err := d.block(i)
		if err != nil {
			return err
		}
		switch st {
		case stNotPresent:
			err = fn(off, bend-off, layouts.Hole, 0)
		case stUndefined, stZero, stUnmapped:
			err = fn(off, bend-off, layouts.Zero, 0)
		case stFullyPresent:
			err = fn(off, bend-off, layouts.Data, boff+off-bstart)
		case stPartiallyPresent:
			var bits []byte
			bits, err = d.bitmap(i)
			if err != nil {
				return err
			}
			err = layouts.VisitBitmap(bits, false, d.logical, bstart, off, bend, boff-bstart, fn)
		}
		if err != nil {
			return err
		}
		off = bend
	}
	return nil
}

// Format is "vhdx".
func (d *Disk) Format() string { return Type }

// Chain is this layer; Open stacks the parent under it.
func (d *Disk) Chain() []layouts.Layer { return []layouts.Layer{{File: d.name, Format: Type}} }

// DataWriteGUID is the header's data write GUID, which differencing
// children name as their parent linkage.
func (d *Disk) DataWriteGUID() [16]byte { return d.h.dataWrite }

// BlockSize is the payload block size.
func (d *Disk) BlockSize() int64 { return d.blockSize }

// LogicalSectorSize is the logical sector size (512 or 4096).
func (d *Disk) LogicalSectorSize() int64 { return d.logical }

// PhysicalSectorSize is the physical sector size (512 or 4096).
func (d *Disk) PhysicalSectorSize() int64 { return d.physical }

// readData reads a run of stored sectors.
func (d *Disk) readData(buf []byte, foff int64) error {
	if err := layouts.ReadFull(d.f, buf, foff); err != nil {
		return d.errf("reading data at %d: %w", foff, err)
	}
	return nil
}

var (
	_ layouts.Disk       = (*Disk)(nil)
	_ layouts.FileMapper = (*Disk)(nil)
)
