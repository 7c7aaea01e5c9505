package vmdk

import (
	"encoding/binary"
	"errors"
	"io"
	"sort"
	"strings"

	"github.com/vmfs/vmfs/layouts"
)

// Type is the format name.
const Type = "vmdk"

// Cache budgets of one opened VMDK layer.
const (
	gtCacheBytes    = 16 << 20
	grainCacheBytes = 8 << 20
)

type caches struct {
	gts    *lru[[]int64]
	grains *lru[[]byte]
}

func newCaches() *caches {
	return &caches{gts: newLRU[[]int64](gtCacheBytes), grains: newLRU[[]byte](grainCacheBytes)}
}

// extent is one extent of a layer; offsets are relative to its start.
type extent interface {
	readAt(p []byte, off int64) error
	extents(b *layouts.Builder, base, off, n int64) error
	files() []string
}

// Disk is an opened VMDK disk: one descriptor's extents, stacked over its
// parent when it is a delta disk.
type Disk struct {
	name   string
	desc   *Descriptor
	f      layouts.File // the file Open was given
	own    *layer
	parent layouts.Disk
	view   layouts.Disk
}

var _ layouts.Disk = (*Disk)(nil)

func (d *Disk) Size() int64                             { return d.view.Size() }
func (d *Disk) Format() string                          { return Type }
func (d *Disk) ReadAt(p []byte, off int64) (int, error) { return d.view.ReadAt(p, off) }
func (d *Disk) Extents(off, n int64) ([]layouts.Extent, error) {
	return d.view.Extents(off, n)
}

// Chain is this descriptor, then the parent's chain of a delta disk.
func (d *Disk) Chain() []layouts.Layer {
	return append([]layouts.Layer{{File: d.name, Format: Type}}, layouts.Chain(d.parent)...)
}

// Close closes the extent files, the parent chain and the file Open was
// given.
func (d *Disk) Close() error {
	err := d.own.closeAll()
	if d.parent != nil {
		if perr := d.parent.Close(); err == nil {
			err = perr
		}
	}
	if d.f != nil {
		if ferr := d.f.Close(); err == nil {
			err = ferr
		}
	}
	return err
}

// Descriptor is the parsed descriptor of this layer (for a sparse file
// without an embedded descriptor, one made up from its header).
func (d *Disk) Descriptor() *Descriptor { return d.desc }

// CreateType is the descriptor's createType.
func (d *Disk) CreateType() string { return d.desc.CreateType }

// AdapterType is ddb.adapterType ("ide", "lsilogic", "buslogic",
// "legacyESX", "pvscsi"...), or "" when the descriptor has none.
func (d *Disk) AdapterType() string { return d.DDB("adapterType") }

// DDB returns the value of ddb.<key> ("geometry.cylinders", "uuid"...);
// keys match without regard to case, as VMware reads them.
func (d *Disk) DDB(key string) string {
	if v, ok := d.desc.DDB[key]; ok {
		return v
	}
	for k, v := range d.desc.DDB {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// Parent is the parent disk of a delta disk, or nil.
func (d *Disk) Parent() layouts.Disk { return d.parent }

// Files lists the files the disk reads, its own first (the descriptor,
// then each extent file), then its parent's when the parent can list them.
func (d *Disk) Files() []string {
	out := []string{d.name}
	seen := map[string]bool{d.name: true}
	for _, e := range d.own.exts {
		for _, n := range e.x.files() {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	if p, ok := d.parent.(interface{ Files() []string }); ok {
		out = append(out, p.Files()...)
	}
	return out
}

// Open opens f as a VMDK disk: a sparse extent (magic "KDMV" or "COWD")
// with its embedded descriptor, or a text descriptor. It returns an error
// wrapping layouts.ErrWrongType when f is neither. Extent and parent files
// are opened through env. On success the Disk owns f.
func Open(f layouts.File, env *layouts.Env) (layouts.Disk, error) {
	d, err := open(f, env)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func open(f layouts.File, env *layouts.Env) (*Disk, error) {
	name := f.Name()
	head := make([]byte, min(f.Size(), 4096))
	if n, err := f.ReadAt(head, 0); n < len(head) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, errf(name, err, "reading first bytes: %v", err)
	}
	c := newCaches()
	var magic uint32
	if len(head) >= 4 {
		magic = binary.LittleEndian.Uint32(head)
	}
	switch {
	case (magic == kdmvMagic || magic == cowdMagic) && len(head) < sector:
		return nil, errf(name, errFormat, "sparse header truncated to %d bytes", len(head))
	case magic == kdmvMagic:
		m, text, err := openKDMV(f, head[:sector], 0, c)
		if err != nil {
			return nil, err
		}
		desc := &Descriptor{ParentCID: noCID, DDB: map[string]string{}, CreateType: "monolithicSparse"}
		if m.compressed {
			desc.CreateType = "streamOptimized"
		}
		if len(text) > 0 {
			if desc, err = parseDescriptor(name, text); err != nil {
				return nil, err
			}
		}
		if err := checkCreateType(name, desc.CreateType, true); err != nil {
			return nil, err
		}
		l := &layer{exts: []mapped{{start: 0, n: m.size, x: m}}, size: m.size}
		return finish(f, name, desc, l, env)
	case magic == cowdMagic:
		m, err := openCOWD(f, head[:sector], 0, c)
		if err != nil {
			return nil, err
		}
		desc := &Descriptor{ParentCID: noCID, DDB: map[string]string{}, CreateType: "vmfsSparse"}
		l := &layer{exts: []mapped{{start: 0, n: m.size, x: m}}, size: m.size}
		return finish(f, name, desc, l, env)
	case looksLikeDescriptor(head):
		// Text that starts as a descriptor is one, or an error: never a
		// raw disk whose bytes would be the descriptor's text.
		if f.Size() > maxDescriptor {
			return nil, errf(name, errFormat, "descriptor is %s, more than the %s vmfs reads", sizeText(f.Size()), sizeText(maxDescriptor))
		}
	default:
		return nil, errf(name, errWrongType, "not a VMDK file (%d bytes, starting %q)", f.Size(), head[:min(len(head), 24)])
	}
	text := make([]byte, f.Size())
	if err := readFull(f, text, 0); err != nil {
		return nil, errf(name, errFormat, "reading descriptor: %v", err)
	}
	desc, err := parseDescriptor(name, text)
	if err != nil {
		return nil, err
	}
	if err := checkCreateType(name, desc.CreateType, false); err != nil {
		return nil, err
	}
	l, err := openExtents(name, desc, env, c)
	if err != nil {
		return nil, err
	}
	return finish(f, name, desc, l, env)
}

// finish opens the parent of a delta disk and stacks the layer over it.
func finish(f layouts.File, name string, desc *Descriptor, l *layer, env *layouts.Env) (*Disk, error) {
	d := &Disk{name: name, desc: desc, f: f, own: l, view: l}
	hint := desc.ParentFileNameHint
	if hint == "" {
		if desc.ParentCID != noCID {
			l.closeAll()
			return nil, errf(name, errFormat, "delta disk (parentCID=%08x) without parentFileNameHint", desc.ParentCID)
		}
		return d, nil
	}
	parent, err := env.OpenParent(name, hint)
	if err != nil {
		l.closeAll()
		if errors.Is(err, errWrongType) {
			return nil, errf(name, errFormat, "parent %q: %v", hint, err)
		}
		return nil, wrapEnv(err)
	}
	if pd, ok := parent.(*Disk); ok && desc.ParentCID != noCID && pd.desc.HasCID && pd.desc.CID != desc.ParentCID {
		parent.Close()
		l.closeAll()
		return nil, errf(name, errFormat, "parentCID %08x does not match CID %08x of parent %s", desc.ParentCID, pd.desc.CID, pd.name)
	}
	// Holes of the layer read from the parent; flat extents report their
	// file holes as zeros then, never as "ask the parent".
	l.hasParent = true
	d.parent = parent
	d.view = layouts.Stack(l, parent)
	return d, nil
}

// createTypes lists the createType values Open reads.
var createTypes = map[string]bool{
	"monolithicsparse":     true,
	"monolithicflat":       true,
	"twogbmaxextentsparse": true,
	"twogbmaxextentflat":   true,
	"vmfs":                 true,
	"vmfsthin":             true,
	"vmfsthick":            true,
	"vmfspreallocated":     true,
	"vmfseagerzeroedthick": true,
	"vmfssparse":           true,
	"streamoptimized":      true,
	"sesparse":             true,
	"custom":               true,
}

// rawCreateTypes map physical disks or partitions: there is no image to read.
var rawCreateTypes = map[string]bool{
	"fulldevice":                  true,
	"partitioneddevice":           true,
	"vmfsraw":                     true,
	"vmfsrdm":                     true,
	"vmfsrdmp":                    true,
	"vmfsrawdevicemap":            true,
	"vmfspassthroughrawdevicemap": true,
}

func checkCreateType(name, ct string, embedded bool) error {
	lc := strings.ToLower(ct)
	switch {
	case ct == "" && embedded:
		return nil
	case ct == "":
		return errf(name, errFormat, "descriptor has no createType")
	case rawCreateTypes[lc]:
		return errf(name, errUnsupported, "createType %q maps a physical device or raw LUN: not supported", ct)
	case !createTypes[lc]:
		return errf(name, errUnsupported, "unknown createType %q: not supported", ct)
	}
	return nil
}

// maxExtentFiles bounds the distinct files one descriptor names, each held
// open while the disk is: 8192 is twice the files of the largest hosted
// disk (8 TiB in 2 GiB extents).
const maxExtentFiles = 8192

// extentFile is a file named by extent lines, opened once however many
// lines name it, and its sparse header once read.
type extentFile struct {
	f      layouts.File
	fd     int // for flat extents: see seekFD
	sparse *grainMap
}

// openExtents opens the extents a text descriptor lists. Lines that name
// the same file (the same path once symlinks are resolved) share one open
// file, owned by the layer.
func openExtents(name string, desc *Descriptor, env *layouts.Env, c *caches) (*layer, error) {
	if len(desc.Extents) == 0 {
		return nil, errf(name, errFormat, "descriptor lists no extents")
	}
	l := &layer{exts: make([]mapped, 0, len(desc.Extents))}
	fail := func(err error) (*layer, error) {
		l.closeAll()
		return nil, err
	}
	byRef := map[string]*extentFile{}
	byPath := map[string]*extentFile{}
	file := func(ref string) (*extentFile, error) {
		if ef, ok := byRef[ref]; ok {
			return ef, nil
		}
		p, err := env.Resolve(name, ref)
		if err != nil {
			return nil, wrapEnv(err)
		}
		key := env.RealPath(p)
		ef, ok := byPath[key]
		if !ok {
			if len(byPath) == maxExtentFiles {
				return nil, errf(name, errUnsupported, "descriptor names more than %d extent files", maxExtentFiles)
			}
			f, err := env.Open(p)
			if err != nil {
				return nil, wrapEnv(err)
			}
			ef = &extentFile{f: f, fd: seekFD(f)}
			byPath[key] = ef
			l.files = append(l.files, f)
		}
		byRef[ref] = ef
		return ef, nil
	}
	for i, e := range desc.Extents {
		n := e.Sectors * sector
		if n > maxSectors*sector-l.size {
			return fail(errf(name, errFormat, "extent %d: disk size overflows", i+1))
		}
		var x extent
		switch e.Type {
		case "ZERO":
			x = zeroExtent{}
		case "FLAT", "VMFS":
			ef, err := file(e.File)
			if err != nil {
				return fail(err)
			}
			fx, err := newFlat(ef.f, ef.fd, e.Offset*sector, n)
			if err != nil {
				return fail(err)
			}
			x = fx
		case "SPARSE", "VMFSSPARSE", "SESPARSE":
			ef, err := file(e.File)
			if err != nil {
				return fail(err)
			}
			if ef.sparse == nil {
				// Extents of one file read the same grains: one
				// grain map serves them all.
				m, err := openSparseExtent(ef.f, e.Type, int32(i), c)
				if err != nil {
					return fail(err)
				}
				ef.sparse = m
			}
			m := ef.sparse
			if m.size < n {
				return fail(errf(name, errFormat, "extent %d (%s) holds %d sectors, the descriptor says %d", i+1, ef.f.Name(), m.size/sector, e.Sectors))
			}
			x = m
		case "VMFSRAW", "VMFSRDM", "VMFSRDMP":
			return fail(errf(name, errUnsupported, "extent %d is a raw device mapping (%s): not supported", i+1, e.Type))
		default:
			return fail(errf(name, errUnsupported, "extent %d has unknown type %q", i+1, e.Type))
		}
		if n > 0 {
			l.exts = append(l.exts, mapped{start: l.size, n: n, x: x})
			l.size += n
		}
	}
	return l, nil
}

// openSparseExtent opens a sparse extent file named by a descriptor.
func openSparseExtent(f layouts.File, typ string, id int32, c *caches) (*grainMap, error) {
	hdr := make([]byte, sector)
	if err := readFull(f, hdr, 0); err != nil {
		return nil, errf(f.Name(), errFormat, "reading sparse header: %v", err)
	}
	magic := binary.LittleEndian.Uint32(hdr)
	switch {
	case magic == kdmvMagic:
		m, _, err := openKDMV(f, hdr, id, c)
		return m, err
	case magic == cowdMagic:
		return openCOWD(f, hdr, id, c)
	case binary.LittleEndian.Uint64(hdr) == seSparseMagic:
		return openSESparse(f, hdr, id, c)
	}
	return nil, errf(f.Name(), errFormat, "%s extent has no sparse header magic", typ)
}

// mapped places an extent in the layer's virtual disk.
type mapped struct {
	start, n int64
	x        extent
}

// layer is the virtual disk one descriptor describes: its extents end to
// end, and the extent files it opened (the file Open was given is the
// Disk's).
type layer struct {
	exts      []mapped
	files     []layouts.File
	size      int64
	hasParent bool
}

func (l *layer) Size() int64    { return l.size }
func (l *layer) Format() string { return Type }
func (l *layer) Close() error   { return nil } // the Disk closes extents

func (l *layer) closeAll() error {
	var err error
	for _, f := range l.files {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	l.files = nil
	return err
}

// find returns the index of the extent holding off.
func (l *layer) find(off int64) int {
	return sort.Search(len(l.exts), func(i int) bool { return l.exts[i].start+l.exts[i].n > off })
}

func (l *layer) ReadAt(p []byte, off int64) (int, error) {
	n, eof := layouts.CheckRead(l.size, p, off)
	if n == 0 {
		return 0, eof
	}
	q, pos := p[:n], off
	for i := l.find(pos); len(q) > 0 && i < len(l.exts); i++ {
		e := l.exts[i]
		k := min(int64(len(q)), e.start+e.n-pos)
		if err := e.x.readAt(q[:k], pos-e.start); err != nil {
			return 0, err
		}
		q, pos = q[k:], pos+k
	}
	return n, eof
}

func (l *layer) Extents(off, n int64) ([]layouts.Extent, error) {
	off, n, ok := layouts.Clip(l.size, off, n)
	if !ok {
		return nil, nil
	}
	var b layouts.Builder
	end := off + n
	for i := l.find(off); off < end && i < len(l.exts); i++ {
		e := l.exts[i]
		k := min(end, e.start+e.n) - off
		var err error
		if fx, ok := e.x.(*flatExtent); ok {
			err = fx.extentsKind(&b, e.start, off-e.start, k, l.hasParent)
		} else {
			err = e.x.extents(&b, e.start, off-e.start, k)
		}
		if err != nil {
			return nil, err
		}
		off += k
	}
	return b.Extents(), nil
}
