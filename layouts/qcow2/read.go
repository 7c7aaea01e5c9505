package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/raw"
)

// Type is the format name.
const Type = "qcow2"

const magic = "QFI\xfb"

// Limits taken from what QEMU accepts, so that a hostile header cannot make
// us allocate or read more than a real image could need.
const (
	minClusterBits  = 9
	maxClusterBits  = 21
	maxL1Bytes      = 32 << 20 // QEMU's limit for the L1 table
	maxBackingName  = 1023
	maxExtensionLen = 64 << 10
	maxExtensions   = 256
)

// Incompatible feature bits (version 3).
const (
	incDirty      = 1 << 0
	incCorrupt    = 1 << 1
	incDataFile   = 1 << 2
	incCompress   = 1 << 3
	incExtendedL2 = 1 << 4
	incKnown      = incDirty | incCorrupt | incDataFile | incCompress | incExtendedL2
)

// Header extension types.
const (
	extEnd        = 0x00000000
	extBackingFmt = 0xe2792aca
	extDataFile   = 0x44415441
)

// header holds the fields of the qcow2 header that reading needs.
type header struct {
	version      uint32
	backingOff   uint64
	backingLen   uint32
	clusterBits  uint32
	size         uint64
	cryptMethod  uint32
	l1Size       uint32
	l1Off        uint64
	nbSnapshots  uint32
	incompatible uint64
	autoclear    uint64
	headerLen    uint32
	compression  uint8
	backingFmt   string
	dataFile     string
	hasDataFile  bool
}

// Disk is an open qcow2 image (one layer: holes are what the backing file,
// if any, would supply; Open stacks it).
type Disk struct {
	f        layouts.File
	data     layouts.File // where data clusters live: f or the external data file
	dataSize int64
	name     string
	h        header

	size        int64
	clusterBits uint
	clusterSize int64
	extL2       bool
	// l2Bits: log2 of entries per L2 table.
	l2Bits uint
	l1     []uint64
	l2     cache[uint64, []uint64] // decoded L2 tables by file offset

	zcache  cache[int64, []byte] // decompressed clusters by number
	libOnce sync.Once
	lib     compressedReader
	libErr  error
	dec     decoders
}

func errf(name, format string, args ...any) error {
	return fmt.Errorf("qcow2: %s: "+format, append([]any{name}, args...)...)
}

// Open opens f as a qcow2 image. A backing file is opened through env and
// stacked under the image; an external data file is opened through env.
// On success the returned disk owns f.
func Open(f layouts.File, env *layouts.Env) (layouts.Disk, error) {
	d, err := openLayer(f, env)
	if err != nil {
		return nil, err
	}
	if d.h.backingOff == 0 {
		return d, nil
	}
	parent, err := d.openBacking(env)
	if err != nil {
		d.closeExtras()
		return nil, err
	}
	return layouts.Stack(d, parent), nil
}

// OpenLayer opens f as a single qcow2 layer without its backing file: holes
// read as zeros. The disk owns f on success.
func OpenLayer(f layouts.File, env *layouts.Env) (*Disk, error) {
	return openLayer(f, env)
}

func openLayer(f layouts.File, env *layouts.Env) (*Disk, error) {
	name := f.Name()
	var buf [512]byte
	n, err := f.ReadAt(buf[:], 0)
	if n < 4 || string(buf[:4]) != magic {
		if err != nil && err != io.EOF && n < 4 {
			return nil, errf(name, "reading header: %v", err)
		}
		return nil, errf(name, "no qcow2 magic: %w", layouts.ErrWrongType)
	}
	h, err := parseHeader(name, buf[:n], f.Size())
	if err != nil {
		return nil, err
	}
	d := &Disk{f: f, data: f, dataSize: f.Size(), name: name, h: h}
	if err := d.readExtensions(); err != nil {
		return nil, err
	}
	if err := d.setup(); err != nil {
		return nil, err
	}
	if d.h.incompatible&incDataFile != 0 {
		if d.h.dataFile == "" {
			return nil, errf(name, "external data file is not named in the header: %w", layouts.ErrUnsupported)
		}
		df, err := env.OpenRef(name, d.h.dataFile)
		if err != nil {
			return nil, fmt.Errorf("qcow2: external data file: %w", err)
		}
		d.data = df
		d.dataSize = df.Size()
	}
	return d, nil
}

func parseHeader(name string, b []byte, fileSize int64) (header, error) {
	var h header
	if len(b) < 72 {
		return h, errf(name, "header truncated at %d bytes: %w", len(b), layouts.ErrFormat)
	}
	be := binary.BigEndian
	h.version = be.Uint32(b[4:])
	if h.version < 2 {
		return h, errf(name, "qcow version %d (not qcow2) is not supported: %w", h.version, layouts.ErrUnsupported)
	}
	if h.version > 3 {
		return h, errf(name, "qcow2 version %d is not supported: %w", h.version, layouts.ErrUnsupported)
	}
	h.backingOff = be.Uint64(b[8:])
	h.backingLen = be.Uint32(b[16:])
	h.clusterBits = be.Uint32(b[20:])
	h.size = be.Uint64(b[24:])
	h.cryptMethod = be.Uint32(b[32:])
	h.l1Size = be.Uint32(b[36:])
	h.l1Off = be.Uint64(b[40:])
	h.nbSnapshots = be.Uint32(b[60:])
	h.headerLen = 72
	if h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits {
		return h, errf(name, "header: cluster_bits %d outside %d..%d: %w", h.clusterBits, minClusterBits, maxClusterBits, layouts.ErrFormat)
	}
	clusterSize := uint64(1) << h.clusterBits
	if h.version == 3 {
		if len(b) < 104 {
			return h, errf(name, "version 3 header truncated at %d bytes: %w", len(b), layouts.ErrFormat)
		}
		h.incompatible = be.Uint64(b[72:])
		h.autoclear = be.Uint64(b[88:])
		h.headerLen = be.Uint32(b[100:])
		if h.headerLen < 104 || uint64(h.headerLen) > clusterSize || int64(h.headerLen) > fileSize {
			return h, errf(name, "header: header_length %d is invalid: %w", h.headerLen, layouts.ErrFormat)
		}
		if h.headerLen > 104 {
			if len(b) < 105 {
				return h, errf(name, "header truncated: %w", layouts.ErrFormat)
			}
			h.compression = b[104]
		}
	}
	if h.cryptMethod != 0 {
		method := map[uint32]string{1: "aes", 2: "luks"}[h.cryptMethod]
		if method == "" {
			method = fmt.Sprintf("method %d", h.cryptMethod)
		}
		return h, errf(name, "encrypted image (%s): %w", method, layouts.ErrUnsupported)
	}
	if unk := h.incompatible &^ incKnown; unk != 0 {
		return h, errf(name, "unknown incompatible feature bits %#x: %w", unk, layouts.ErrUnsupported)
	}
	if h.incompatible&incCompress == 0 {
		h.compression = 0
	}
	if h.compression > 1 {
		return h, errf(name, "compression type %d: %w", h.compression, layouts.ErrUnsupported)
	}
	if h.size > 1<<62 {
		return h, errf(name, "header: virtual size %d is too large: %w", h.size, layouts.ErrFormat)
	}
	if h.backingOff != 0 {
		if h.backingLen == 0 || h.backingLen > maxBackingName {
			return h, errf(name, "header: backing file name length %d outside 1..%d: %w", h.backingLen, maxBackingName, layouts.ErrFormat)
		}
		if h.backingOff > uint64(fileSize) || uint64(fileSize)-h.backingOff < uint64(h.backingLen) {
			return h, errf(name, "header: backing file name points past end of file: %w", layouts.ErrFormat)
		}
	}
	return h, nil
}

// readExtensions reads the header extensions (backing format, data file
// name) and the backing file name. They must lie in the first cluster.
func (d *Disk) readExtensions() error {
	h := &d.h
	// Like QEMU: extensions end at the backing file name, if there is
	// one, or at the end of the first cluster.
	end := min(int64(1)<<h.clusterBits, d.f.Size())
	if h.backingOff != 0 && int64(h.backingOff) < end {
		end = int64(h.backingOff)
	}
	buf := make([]byte, max(end-int64(h.headerLen), 0))
	if _, err := d.f.ReadAt(buf, int64(h.headerLen)); err != nil && err != io.EOF {
		return errf(d.name, "reading header extensions: %v", err)
	}
	for i := 0; len(buf) >= 8; i++ {
		if i >= maxExtensions {
			return errf(d.name, "more than %d header extensions: %w", maxExtensions, layouts.ErrFormat)
		}
		typ := binary.BigEndian.Uint32(buf)
		n := int64(binary.BigEndian.Uint32(buf[4:]))
		if typ == extEnd {
			break
		}
		if n > maxExtensionLen || n > int64(len(buf)-8) {
			return errf(d.name, "header extension %#x of %d bytes runs past the header area: %w", typ, n, layouts.ErrFormat)
		}
		data := buf[8 : 8+n]
		switch typ {
		case extBackingFmt:
			h.backingFmt = string(bytes.TrimRight(data, "\x00"))
		case extDataFile:
			h.dataFile = string(bytes.TrimRight(data, "\x00"))
		}
		adv := min(8+(n+7)&^7, int64(len(buf)))
		buf = buf[adv:]
	}
	return nil
}

func (d *Disk) setup() error {
	h := &d.h
	d.size = int64(h.size)
	d.clusterBits = uint(h.clusterBits)
	d.clusterSize = 1 << d.clusterBits
	d.extL2 = h.incompatible&incExtendedL2 != 0
	entryBits := uint(3)
	if d.extL2 {
		entryBits = 4
		if d.clusterBits < 14 {
			return errf(d.name, "extended L2 entries need clusters of at least 16 KiB, have %d: %w", d.clusterSize, layouts.ErrFormat)
		}
	}
	d.l2Bits = d.clusterBits - entryBits
	coverBits := d.clusterBits + d.l2Bits
	need := uint64(0)
	if h.size > 0 {
		need = (h.size-1)>>coverBits + 1
	}
	if uint64(h.l1Size) < need {
		return errf(d.name, "L1 table has %d entries, the virtual size needs %d: %w", h.l1Size, need, layouts.ErrFormat)
	}
	if uint64(h.l1Size)*8 > maxL1Bytes {
		return errf(d.name, "L1 table of %d entries is too large: %w", h.l1Size, layouts.ErrFormat)
	}
	if need > 0 {
		if h.l1Off == 0 || h.l1Off&uint64(d.clusterSize-1) != 0 {
			return errf(d.name, "L1 table offset %#x is not cluster aligned: %w", h.l1Off, layouts.ErrFormat)
		}
		if h.l1Off > uint64(d.f.Size()) || uint64(d.f.Size())-h.l1Off < uint64(h.l1Size)*8 {
			return errf(d.name, "L1 table at %#x (%d entries) points past end of file: %w", h.l1Off, h.l1Size, layouts.ErrFormat)
		}
		buf := make([]byte, need*8)
		if _, err := d.f.ReadAt(buf, int64(h.l1Off)); err != nil && err != io.EOF {
			return errf(d.name, "reading L1 table: %v", err)
		}
		d.l1 = make([]uint64, need)
		for i := range d.l1 {
			d.l1[i] = binary.BigEndian.Uint64(buf[i*8:])
		}
	}
	d.l2.init(maxCachedL2, d.clusterSize)
	d.zcache.init(maxCachedClusters, d.clusterSize)
	return nil
}

func (d *Disk) openBacking(env *layouts.Env) (layouts.Disk, error) {
	buf := make([]byte, d.h.backingLen)
	if _, err := d.f.ReadAt(buf, int64(d.h.backingOff)); err != nil && err != io.EOF {
		return nil, errf(d.name, "reading backing file name: %v", err)
	}
	ref := string(buf)
	if bytes.IndexByte(buf, 0) >= 0 {
		return nil, errf(d.name, "backing file name %q holds a NUL byte: %w", ref, layouts.ErrFormat)
	}
	if strings.HasPrefix(ref, "json:") || strings.Contains(ref, "://") {
		return nil, errf(d.name, "backing file %q is a qemu protocol or JSON specification, not a file: %w", ref, layouts.ErrUnsupported)
	}
	// The header names the backing file's format as QEMU does.
	var want layouts.Format
	if d.h.backingFmt != "" {
		var ok bool
		switch {
		case env != nil && env.FormatByQEMUName != nil:
			want, ok = env.FormatByQEMUName(d.h.backingFmt)
		case slices.Contains(raw.Format.QEMUNames, d.h.backingFmt):
			// Without the registry a raw backing file is still read: it
			// needs no opener.
			want, ok = raw.Format, true
		}
		if !ok {
			return nil, errf(d.name, "backing file %q has format %q: %w", ref, d.h.backingFmt, layouts.ErrUnsupported)
		}
	}
	if want.Fallback {
		// Raw was asked for: do not probe (a raw backing file may well
		// hold a guest-written header of another format).
		p, err := env.Resolve(d.name, ref)
		if err != nil {
			return nil, fmt.Errorf("qcow2: backing file: %w", err)
		}
		f, err := env.Open(p)
		if err != nil {
			return nil, errf(d.name, "backing file %q: %w", ref, err)
		}
		parent, err := want.Open(f, env)
		if err != nil {
			f.Close()
			return nil, errf(d.name, "backing file %q: %w", ref, err)
		}
		return parent, nil
	}
	parent, err := env.OpenParent(d.name, ref)
	if err != nil {
		return nil, fmt.Errorf("qcow2: backing file: %w", err)
	}
	if want.Name != "" && parent.Format() != want.Name {
		got := parent.Format()
		parent.Close()
		return nil, errf(d.name, "backing file %q is %s but the header says %s: %w", ref, got, d.h.backingFmt, layouts.ErrFormat)
	}
	return parent, nil
}

// BackingFile is the backing file name recorded in the header ("" if none).
func (d *Disk) BackingFile() string {
	if d.h.backingOff == 0 {
		return ""
	}
	buf := make([]byte, d.h.backingLen)
	if _, err := d.f.ReadAt(buf, int64(d.h.backingOff)); err != nil && err != io.EOF {
		return ""
	}
	return string(buf)
}

func (d *Disk) Size() int64    { return d.size }
func (d *Disk) Format() string { return Type }

// Chain is this layer; Open stacks the backing file under it.
func (d *Disk) Chain() []layouts.Layer { return []layouts.Layer{{File: d.name, Format: Type}} }

// ClusterSize is the image's cluster size in bytes.
func (d *Disk) ClusterSize() int64 { return d.clusterSize }

// closeExtras closes what the disk opened itself, leaving f open.
func (d *Disk) closeExtras() error {
	var err error
	if d.data != d.f {
		err = d.data.Close()
	}
	if d.lib != nil {
		d.lib.Close()
		d.dec.close()
	}
	return err
}

// Close closes the image file and its external data file.
func (d *Disk) Close() error { return errors.Join(d.closeExtras(), d.f.Close()) }

var _ layouts.Disk = (*Disk)(nil)
