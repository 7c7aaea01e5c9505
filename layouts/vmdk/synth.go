package vmdk

// Synthesis of VMDK images from any source disk: monolithicSparse (a hosted
// sparse extent with its descriptor embedded) and monolithicFlat (a
// descriptor file naming a flat extent that is the source itself).
//
// monolithicSparse layout, in 512-byte sectors, as qemu-img lays it out:
//
//	0          sparse extent header
//	1..20      embedded descriptor
//	21         redundant grain directory, then all its grain tables
//	gdOffset   grain directory, then all its grain tables
//	overHead   grains (64 KiB), the source's allocated ones packed in order
//
// Every grain table exists (the grain directory points at all of them), but
// only those covering data are segments; the others are holes of the file
// and read as zeros, which is what an empty grain table holds. Grain
// directories and grain tables are generated on each read from the block
// map, so memory follows the source's extent count, never its size.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/blockmap"
)

const (
	synthSector     = 512
	synthGrainSecs  = 128 // 64 KiB grains
	synthGrainSize  = synthGrainSecs * synthSector
	synthGTEs       = 512 // entries per grain table
	synthGTSecs     = synthGTEs * 4 / synthSector
	synthDescOffset = 1
	synthDescSecs   = 20
	synthRGDOffset  = synthDescOffset + synthDescSecs
	// Sparse extent flags: valid newline detection test, redundant grain
	// table in use.
	synthFlags = 1<<0 | 1<<1
	// synthMaxSectors bounds every sector number stored in a 32-bit grain
	// directory or grain table entry.
	synthMaxSectors = int64(1) << 32
)

// synthAdapters are the adapter types written into ddb.adapterType.
var synthAdapters = []string{"ide", "lsilogic", "buslogic", "legacyESX", "pvscsi"}

// synthRun is count consecutive grain tables from table first that cover
// data.
type synthRun struct {
	first, count int64
}

type synthSparse struct {
	bm         *blockmap.Map
	gtCount    int64
	gdSecs     int64
	gdOffset   int64 // sectors
	grainStart int64 // sectors: overHead
	gtRuns     []synthRun
}

// SynthesizeSparse builds a monolithicSparse VMDK of src whose embedded
// descriptor names the extent "disk.vmdk"; see SynthesizeSparseNamed.
func SynthesizeSparse(src layouts.Disk, adapterType string) (*layouts.Image, error) {
	return SynthesizeSparseNamed(src, adapterType, "disk.vmdk")
}

// SynthesizeSparseNamed builds a monolithicSparse VMDK of src. name is the
// file name the embedded descriptor gives the extent (the file itself).
// adapterType is one of "ide" (the default when empty), "lsilogic",
// "buslogic", "legacyESX", "pvscsi". The source's Data grains are allocated
// and packed; holes and zero extents stay unallocated. The capacity is src's
// size rounded up to a sector. The same source gives the same bytes.
func SynthesizeSparseNamed(src layouts.Disk, adapterType, name string) (*layouts.Image, error) {
	adapterType, err := synthAdapter(adapterType)
	if err != nil {
		return nil, err
	}
	capacity, err := synthCapacity(src)
	if err != nil {
		return nil, err
	}
	if capacity >= synthMaxSectors {
		// Hosted sparse extents stop short of 2 TiB: their grain tables
		// hold 32-bit sector numbers.
		return nil, fmt.Errorf("vmdk: synthesize: capacity of %d sectors is beyond a sparse extent's 2 TiB: %w", capacity, layouts.ErrUnsupported)
	}
	s := &synthSparse{}
	s.gtCount = (capacity + synthGTEs*synthGrainSecs - 1) / (synthGTEs * synthGrainSecs)
	s.gdSecs = (s.gtCount*4 + synthSector - 1) / synthSector
	s.gdOffset = synthRGDOffset + s.gdSecs + s.gtCount*synthGTSecs
	meta := s.gdOffset + s.gdSecs + s.gtCount*synthGTSecs
	s.grainStart = (meta + synthGrainSecs - 1) / synthGrainSecs * synthGrainSecs
	if s.grainStart > synthMaxSectors {
		return nil, fmt.Errorf("vmdk: synthesize: capacity of %d sectors needs grain tables past the 32-bit sector offsets: %w", capacity, layouts.ErrUnsupported)
	}
	bm, err := blockmap.Build(src, synthGrainSize)
	if err != nil {
		return nil, fmt.Errorf("vmdk: synthesize: reading the %s source's extents: %w", src.Format(), err)
	}
	s.bm = bm
	end := s.grainStart + bm.Count()*synthGrainSecs
	if end > synthMaxSectors {
		return nil, fmt.Errorf("vmdk: synthesize: sparse extent of %d sectors exceeds the 32-bit grain offsets: %w", end, layouts.ErrUnsupported)
	}

	err = bm.Runs(0, bm.Blocks(), func(r blockmap.Run) error {
		first := r.First / synthGTEs
		last := (r.First + r.Count - 1) / synthGTEs
		if n := len(s.gtRuns); n > 0 {
			prev := &s.gtRuns[n-1]
			pend := prev.first + prev.count
			first = max(first, pend)
			if first > last {
				return nil
			}
			if first == pend {
				prev.count += last - first + 1
				return nil
			}
		}
		s.gtRuns = append(s.gtRuns, synthRun{first: first, count: last - first + 1})
		return nil
	})
	if err != nil {
		return nil, err
	}

	if err := synthCheckName(name); err != nil {
		return nil, err
	}
	cid, err := synthCID(src, bm)
	if err != nil {
		return nil, err
	}
	desc := synthDescriptor(cid, "monolithicSparse",
		fmt.Sprintf("RW %d SPARSE \"%s\"", capacity, name), capacity, adapterType)
	if len(desc) > synthDescSecs*synthSector {
		return nil, fmt.Errorf("vmdk: synthesize: descriptor of %d bytes exceeds its %d sectors: %w", len(desc), synthDescSecs, layouts.ErrUnsupported)
	}

	head := make([]byte, synthSector+len(desc))
	le := binary.LittleEndian
	le.PutUint32(head[0:], 0x564d444b) // "KDMV"
	le.PutUint32(head[4:], 1)
	le.PutUint32(head[8:], synthFlags)
	le.PutUint64(head[12:], uint64(capacity))
	le.PutUint64(head[20:], synthGrainSecs)
	le.PutUint64(head[28:], synthDescOffset)
	le.PutUint64(head[36:], synthDescSecs)
	le.PutUint32(head[44:], synthGTEs)
	le.PutUint64(head[48:], synthRGDOffset)
	le.PutUint64(head[56:], uint64(s.gdOffset))
	le.PutUint64(head[64:], uint64(s.grainStart))
	head[72] = 0 // uncleanShutdown
	head[73], head[74], head[75], head[76] = '\n', ' ', '\r', '\n'
	// head[77:79] compressAlgorithm 0; padding zero.
	copy(head[synthSector:], desc)

	segs := make([]layouts.Segment, 0, 3+2*len(s.gtRuns)+bm.NumRuns())
	segs = append(segs, layouts.BytesAt(0, head))
	for _, gd := range []int64{synthRGDOffset, s.gdOffset} {
		gts := gd + s.gdSecs // first grain table of this copy
		segs = append(segs, layouts.Segment{
			Off: gd * synthSector, Len: s.gtCount * 4, Kind: layouts.SegGen, Gen: synthGDGen(gts),
		})
		for _, r := range s.gtRuns {
			segs = append(segs, layouts.Segment{
				Off: (gts + r.first*synthGTSecs) * synthSector, Len: r.count * synthGTSecs * synthSector,
				Kind: layouts.SegGen, Gen: s.gtGen(r.first * synthGTEs),
			})
		}
	}
	err = bm.Runs(0, bm.Blocks(), func(r blockmap.Run) error {
		segs = append(segs, layouts.Segment{
			Off: (s.grainStart + r.Index*synthGrainSecs) * synthSector, Len: r.Count * synthGrainSize,
			Kind: layouts.SegSource, Src: src, SrcOff: r.First * synthGrainSize,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return layouts.NewImage("vmdk", end*synthSector, segs)
}

// SynthesizeFlat builds a monolithicFlat VMDK of src: desc is the
// descriptor, naming flatName as its one FLAT extent, and flat is that
// extent, the source seen as a plain file (its holes stay holes), padded
// with zeros to a whole sector.
func SynthesizeFlat(src layouts.Disk, adapterType, flatName string) (desc *layouts.Image, flat *layouts.Image, err error) {
	adapterType, err = synthAdapter(adapterType)
	if err != nil {
		return nil, nil, err
	}
	if err := synthCheckName(flatName); err != nil {
		return nil, nil, err
	}
	capacity, err := synthCapacity(src)
	if err != nil {
		return nil, nil, err
	}
	if capacity > (1<<63-1)/synthSector {
		return nil, nil, fmt.Errorf("vmdk: synthesize: capacity of %d sectors does not fit a file: %w", capacity, layouts.ErrUnsupported)
	}
	cid, err := synthCID(src, nil)
	if err != nil {
		return nil, nil, err
	}
	text := synthDescriptor(cid, "monolithicFlat",
		fmt.Sprintf("RW %d FLAT \"%s\" 0", capacity, flatName), capacity, adapterType)
	if src.Size()%synthSector == 0 {
		flat = layouts.Section("raw", src)
	} else {
		flat, err = layouts.NewImage("raw", capacity*synthSector, []layouts.Segment{
			{Off: 0, Len: src.Size(), Kind: layouts.SegSource, Src: src, SrcSparse: true},
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return layouts.Bytes("vmdk", []byte(text)), flat, nil
}

// synthCapacity is src's size in sectors, rounded up. An empty disk is
// refused: an extent of 0 sectors is one qemu cannot open.
func synthCapacity(src layouts.Disk) (int64, error) {
	size := src.Size()
	if size <= 0 {
		return 0, fmt.Errorf("vmdk: synthesize: the %s source is empty, and a VMDK extent of 0 sectors cannot be opened: %w", src.Format(), layouts.ErrUnsupported)
	}
	capacity := size / synthSector
	if size%synthSector != 0 {
		capacity++
	}
	return capacity, nil
}

// synthCheckName refuses extent file names a descriptor line cannot hold:
// empty ones, and those with a double quote or a control character.
func synthCheckName(name string) error {
	bad := name == ""
	for _, r := range name {
		if r == '"' || r < 0x20 || r == 0x7f {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("vmdk: synthesize: extent name %q cannot be written in a descriptor: %w", name, layouts.ErrUnsupported)
	}
	return nil
}

func synthAdapter(a string) (string, error) {
	if a == "" {
		return "ide", nil
	}
	for _, k := range synthAdapters {
		if a == k {
			return a, nil
		}
	}
	return "", fmt.Errorf("vmdk: synthesize: adapter type %q (known: %s): %w", a, strings.Join(synthAdapters, ", "), layouts.ErrUnsupported)
}

// synthDescriptor writes a descriptor as qemu-img does: version 1, no
// parent, hardware version 4, geometry with 63 sectors per track and 16
// heads for IDE, 255 otherwise.
func synthDescriptor(cid uint32, createType, extent string, capacity int64, adapterType string) string {
	heads := int64(255)
	if adapterType == "ide" {
		heads = 16
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Disk DescriptorFile\nversion=1\nCID=%08x\nparentCID=ffffffff\ncreateType=%q\n\n", cid, createType)
	fmt.Fprintf(&b, "# Extent description\n%s\n\n", extent)
	fmt.Fprintf(&b, "# The Disk Data Base\n#DDB\n\n")
	fmt.Fprintf(&b, "ddb.virtualHWVersion = \"4\"\n")
	fmt.Fprintf(&b, "ddb.geometry.cylinders = \"%d\"\n", capacity/(63*heads))
	fmt.Fprintf(&b, "ddb.geometry.heads = \"%d\"\n", heads)
	fmt.Fprintf(&b, "ddb.geometry.sectors = \"63\"\n")
	fmt.Fprintf(&b, "ddb.adapterType = %q\n", adapterType)
	fmt.Fprintf(&b, "ddb.toolsVersion = \"2147483647\"\n")
	return b.String()
}

// synthCIDHead is how much of each end of the source the content ID
// hashes: the partition tables (MBR, GPT and its backup) with their disk and
// partition identifiers.
const synthCIDHead = 64 << 10

// synthCIDExtents bounds the part of a flat source whose extents the
// content ID hashes, so that a huge flat disk is not walked whole.
const synthCIDExtents = 2 << 40

// synthCID derives the content ID from the source instead of drawing it at
// random, so the same source gives the same descriptor: a hash of the size,
// the allocated block runs (bm; when nil, the extents of the first 2 TiB)
// and the first and last 64 KiB. It is never ffffffff, the value meaning
// "no parent".
func synthCID(src layouts.Disk, bm *blockmap.Map) (uint32, error) {
	h := fnv.New32a()
	var b [24]byte
	size := src.Size()
	binary.LittleEndian.PutUint64(b[:], uint64(size))
	h.Write(b[:8])
	if bm != nil {
		bm.Runs(0, bm.Blocks(), func(r blockmap.Run) error {
			binary.LittleEndian.PutUint64(b[0:], uint64(r.First))
			binary.LittleEndian.PutUint64(b[8:], uint64(r.Count))
			h.Write(b[:16])
			return nil
		})
	} else {
		err := layouts.Walk(src, 0, min(size, synthCIDExtents), func(e layouts.Extent) error {
			binary.LittleEndian.PutUint64(b[0:], uint64(e.Off))
			binary.LittleEndian.PutUint64(b[8:], uint64(e.Len))
			binary.LittleEndian.PutUint64(b[16:], uint64(e.Kind))
			h.Write(b[:24])
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("vmdk: synthesize: reading the %s source's extents: %w", src.Format(), err)
		}
	}
	buf := make([]byte, min(size, synthCIDHead))
	for _, off := range []int64{0, size - int64(len(buf))} {
		if _, err := src.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("vmdk: synthesize: reading the %s source at %d: %w", src.Format(), off, err)
		}
		h.Write(buf)
	}
	cid := h.Sum32()
	if cid == 0xffffffff {
		cid = 0xfffffffe
	}
	return cid, nil
}

// synthGDGen generates a grain directory whose grain tables are stored one
// after another from sector gts.
func synthGDGen(gts int64) func(p []byte, rel int64) error {
	return func(p []byte, rel int64) error {
		blockmap.Entries(p, rel, 4, func(buf []byte, first int64) {
			sec := uint32(gts + first*synthGTSecs)
			for j := 0; j+4 <= len(buf); j += 4 {
				binary.LittleEndian.PutUint32(buf[j:], sec)
				sec += synthGTSecs
			}
		})
		return nil
	}
}

// gtGen returns the generator of a run of consecutive grain tables whose
// first entry maps grain first: entry e maps grain first+e.
func (s *synthSparse) gtGen(first int64) func(p []byte, rel int64) error {
	return func(p []byte, rel int64) error {
		blockmap.Entries(p, rel, 4, func(buf []byte, e int64) {
			clear(buf)
			g0 := first + e
			s.bm.Runs(g0, int64(len(buf)/4), func(r blockmap.Run) error {
				b := buf[(r.First-g0)*4 : (r.First-g0+r.Count)*4]
				sec := uint32(s.grainStart + r.Index*synthGrainSecs)
				for j := 0; j < len(b); j += 4 {
					binary.LittleEndian.PutUint32(b[j:], sec)
					sec += synthGrainSecs
				}
				return nil
			})
		})
		return nil
	}
}
