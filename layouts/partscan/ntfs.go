package partscan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"

	"github.com/vmfs/vmfs/layouts"
)

// NTFS volume facts.
const (
	// NTFSDirty: the $Volume's dirty flag is set: Windows did not shut
	// the volume down cleanly (a crash, a forced power-off) or scheduled
	// a chkdsk.
	NTFSDirty = "ntfs-dirty"
	// Hibernated: the volume's root holds a hiberfil.sys that starts
	// with the signature of an image to resume from ("hibr", "HIBR"):
	// Windows is hibernated, Fast Startup's shutdown included.
	Hibernated = "hibernated"
)

// Bounds of what an NTFS volume makes Scan read.
const (
	maxIndexAlloc = 16 << 20 // the root directory's index blocks
	maxRuns       = 4096     // data runs of one attribute
)

var le = binary.LittleEndian

// isNTFS says whether b, a volume's boot sector, is NTFS's.
func isNTFS(b []byte) bool { return len(b) >= 11 && bytes.Equal(b[3:11], []byte("NTFS    ")) }

// ntfs is an NTFS volume on a disk, read as far as Scan needs: its MFT
// records, the runs of an attribute, the root directory's index.
type ntfs struct {
	d                   layouts.Disk
	start, cluster, rec int64
	mft                 []run // the MFT's own runs, from record 0
}

// run is a range of clusters of an attribute: lcn < 0 for a sparse run.
type run struct{ vcn, lcn, n int64 }

func openNTFS(d layouts.Disk, start int64, bs []byte) (*ntfs, error) {
	bps := int64(le.Uint16(bs[11:]))
	if bps < 256 || bps > 4096 || bps&(bps-1) != 0 {
		return nil, fmt.Errorf("ntfs: %d bytes per sector", bps)
	}
	cluster := int64(bs[13]) * bps
	if bs[13] > 0x80 {
		if 256-int(bs[13]) > 21 {
			return nil, fmt.Errorf("ntfs: sectors per cluster byte %#x", bs[13])
		}
		cluster = 1 << (256 - int(bs[13]))
	}
	if cluster == 0 || cluster > 2<<20 {
		return nil, fmt.Errorf("ntfs: cluster of %d bytes", cluster)
	}
	v := &ntfs{d: d, start: start, cluster: cluster}
	switch c := int8(bs[64]); {
	case c > 0:
		v.rec = int64(c) * cluster
	case c < 0 && -int(c) <= 16:
		v.rec = 1 << -int(c)
	}
	if v.rec < 512 || v.rec > 64<<10 {
		return nil, fmt.Errorf("ntfs: MFT record of %d bytes", v.rec)
	}
	lcn := le.Uint64(bs[48:])
	if lcn >= uint64(d.Size()/cluster) {
		return nil, fmt.Errorf("ntfs: MFT at cluster %d lies past the disk's end", lcn)
	}
	// Record 0, $MFT, at the boot sector's cluster; its $DATA places the
	// others.
	v.mft = []run{{vcn: 0, lcn: int64(lcn), n: (v.rec + cluster - 1) / cluster}}
	r0, err := v.record(0)
	if err != nil {
		return nil, err
	}
	a := attr(r0, 0x80, "")
	if a == nil || a[8] == 0 {
		return nil, fmt.Errorf("ntfs: $MFT has no non-resident $DATA")
	}
	if v.mft, err = runs(a); err != nil {
		return nil, fmt.Errorf("ntfs: $MFT: %w", err)
	}
	return v, nil
}

// read reads len(b) bytes at offset off of an attribute with runs rs.
func (v *ntfs) read(rs []run, b []byte, off int64) error {
	for len(b) > 0 {
		vcn, in := off/v.cluster, off%v.cluster
		var r *run
		for i := range rs {
			if vcn >= rs[i].vcn && vcn < rs[i].vcn+rs[i].n {
				r = &rs[i]
				break
			}
		}
		if r == nil {
			return fmt.Errorf("ntfs: offset %d lies past the attribute's runs", off)
		}
		n := min(int64(len(b)), (r.vcn+r.n-vcn)*v.cluster-in)
		if r.lcn < 0 {
			clear(b[:n])
		} else {
			p := v.start + (r.lcn+vcn-r.vcn)*v.cluster + in
			if p < 0 || p+n > v.d.Size() {
				return fmt.Errorf("ntfs: cluster %d lies past the disk's end", r.lcn+vcn-r.vcn)
			}
			if _, err := v.d.ReadAt(b[:n], p); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("ntfs: reading at %d: %w", p, err)
			}
		}
		b, off = b[n:], off+n
	}
	return nil
}

// record reads MFT record n, its update sequence undone.
func (v *ntfs) record(n int64) ([]byte, error) {
	b := make([]byte, v.rec)
	if err := v.read(v.mft, b, n*v.rec); err != nil {
		return nil, fmt.Errorf("ntfs: MFT record %d: %w", n, err)
	}
	if !bytes.Equal(b[:4], []byte("FILE")) {
		return nil, fmt.Errorf("ntfs: MFT record %d is not a FILE record", n)
	}
	if err := fixup(b); err != nil {
		return nil, fmt.Errorf("ntfs: MFT record %d: %w", n, err)
	}
	return b, nil
}

// fixup undoes the update sequence of a FILE or INDX record b: the last
// two bytes of each 512-byte stride hold the sequence number, their own
// bytes are in the array.
func fixup(b []byte) error {
	usa, n := int(le.Uint16(b[4:])), int(le.Uint16(b[6:]))
	if n < 1 || usa+2*n > len(b) || (n-1)*512 > len(b) {
		return fmt.Errorf("update sequence of %d at %d", n, usa)
	}
	for i := 1; i < n; i++ {
		p := i*512 - 2
		if !bytes.Equal(b[p:p+2], b[usa:usa+2]) {
			return fmt.Errorf("record is torn (update sequence mismatch)")
		}
		copy(b[p:p+2], b[usa+2*i:usa+2*i+2])
	}
	return nil
}

// attr is the first attribute of type typ and name name in record rec,
// nil when none (or when the record's attributes are damaged).
func attr(rec []byte, typ uint32, name string) []byte {
	for a := int(le.Uint16(rec[20:])); a+24 <= len(rec); {
		t, alen := le.Uint32(rec[a:]), int(le.Uint32(rec[a+4:]))
		if t == 0xFFFFFFFF || alen < 24 || a+alen > len(rec) {
			return nil
		}
		b := rec[a : a+alen]
		if t == typ && attrName(b) == name {
			return b
		}
		a += alen
	}
	return nil
}

func attrName(a []byte) string {
	n, off := int(a[9]), int(le.Uint16(a[10:]))
	if n == 0 || off+2*n > len(a) {
		return ""
	}
	return utf16String(a[off : off+2*n])
}

func utf16String(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = le.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// resident is the content of a resident attribute a.
func resident(a []byte) ([]byte, error) {
	if a[8] != 0 {
		return nil, fmt.Errorf("attribute %#x is not resident", le.Uint32(a))
	}
	n, off := int(le.Uint32(a[16:])), int(le.Uint16(a[20:]))
	if off+n > len(a) {
		return nil, fmt.Errorf("attribute %#x: %d bytes at %d overrun it", le.Uint32(a), n, off)
	}
	return a[off : off+n], nil
}

// runs decodes the run list of a non-resident attribute a.
func runs(a []byte) ([]run, error) {
	if len(a) < 64 || a[8] == 0 {
		return nil, fmt.Errorf("attribute %#x is not non-resident", le.Uint32(a))
	}
	p := int(le.Uint16(a[32:]))
	var out []run
	var vcn, lcn int64
	for p < len(a) && a[p] != 0 && len(out) < maxRuns {
		ls, os := int(a[p]&0x0F), int(a[p]>>4)
		if ls == 0 || ls > 8 || os > 8 || p+1+ls+os > len(a) {
			return nil, fmt.Errorf("data run at %d is damaged", p)
		}
		n := int64(0)
		for i := ls - 1; i >= 0; i-- {
			n = n<<8 | int64(a[p+1+i])
		}
		if n <= 0 {
			return nil, fmt.Errorf("data run at %d has %d clusters", p, n)
		}
		r := run{vcn: vcn, lcn: -1, n: n}
		if os > 0 {
			d := int64(int8(a[p+ls+os])) // sign from the top byte
			for i := os - 2; i >= 0; i-- {
				d = d<<8 | int64(a[p+1+ls+i])
			}
			lcn += d
			if lcn < 0 {
				return nil, fmt.Errorf("data run at %d points before the volume", p)
			}
			r.lcn = lcn
		}
		out = append(out, r)
		vcn += n
		p += 1 + ls + os
	}
	return out, nil
}

// dirty reads the dirty flag of $Volume's $VOLUME_INFORMATION.
func (v *ntfs) dirty() (bool, error) {
	r, err := v.record(3)
	if err != nil {
		return false, err
	}
	a := attr(r, 0x70, "")
	if a == nil {
		return false, fmt.Errorf("ntfs: the $Volume record has no $VOLUME_INFORMATION")
	}
	c, err := resident(a)
	if err != nil || len(c) < 12 {
		return false, fmt.Errorf("ntfs: $VOLUME_INFORMATION of %d bytes", len(c))
	}
	return le.Uint16(c[10:])&1 != 0, nil
}

// hibernated looks up hiberfil.sys in the root directory (record 5) and
// reads the first bytes of its data.
func (v *ntfs) hibernated() (bool, error) {
	root, err := v.record(5)
	if err != nil {
		return false, err
	}
	ir := attr(root, 0x90, "$I30")
	if ir == nil {
		return false, fmt.Errorf("ntfs: the root directory has no $INDEX_ROOT")
	}
	c, err := resident(ir)
	if err != nil || len(c) < 32 {
		return false, fmt.Errorf("ntfs: the root's $INDEX_ROOT is damaged")
	}
	ref, found := findEntry(c[16:], "hiberfil.sys")
	if !found {
		if ia := attr(root, 0xA0, "$I30"); ia != nil {
			blk := int64(le.Uint32(c[8:]))
			if ref, found, err = v.findInAllocation(ia, blk, "hiberfil.sys"); err != nil {
				return false, err
			}
		}
	}
	if !found {
		return false, nil
	}
	rec, err := v.record(ref)
	if err != nil {
		return false, err
	}
	data := attr(rec, 0x80, "")
	if data == nil {
		return false, nil
	}
	head := make([]byte, 4)
	if data[8] == 0 {
		c, err := resident(data)
		if err != nil {
			return false, err
		}
		copy(head, c)
	} else {
		rs, err := runs(data)
		if err != nil {
			return false, fmt.Errorf("ntfs: hiberfil.sys: %w", err)
		}
		if len(rs) == 0 {
			return false, nil
		}
		if err := v.read(rs, head, 0); err != nil {
			return false, err
		}
	}
	// "hibr" is a hibernation image Windows will resume from (ntfs-3g
	// refuses such a volume); "wake" is one it resumed from already.
	return strings.EqualFold(string(head), "hibr"), nil
}

// findInAllocation scans the root's index blocks (of blk bytes) for name.
func (v *ntfs) findInAllocation(ia []byte, blk int64, name string) (int64, bool, error) {
	if blk < 512 || blk > 64<<10 {
		return 0, false, fmt.Errorf("ntfs: index blocks of %d bytes", blk)
	}
	rs, err := runs(ia)
	if err != nil {
		return 0, false, fmt.Errorf("ntfs: the root's $INDEX_ALLOCATION: %w", err)
	}
	var size int64
	for _, r := range rs {
		size += r.n * v.cluster
	}
	size = min(size, maxIndexAlloc)
	b := make([]byte, blk)
	for off := int64(0); off+blk <= size; off += blk {
		if err := v.read(rs, b, off); err != nil {
			return 0, false, err
		}
		if !bytes.Equal(b[:4], []byte("INDX")) || fixup(b) != nil {
			continue // an unused block
		}
		if ref, ok := findEntry(b[24:], name); ok {
			return ref, true, nil
		}
	}
	return 0, false, nil
}

// findEntry looks through the index entries after the index header h
// for a file named name (case-insensitively, as Windows names match) and
// returns its MFT record number.
func findEntry(h []byte, name string) (int64, bool) {
	if len(h) < 16 {
		return 0, false
	}
	end := min(int(le.Uint32(h[4:])), len(h))
	for p := int(le.Uint32(h[0:])); p+16 <= end; {
		elen, klen, flags := int(le.Uint16(h[p+8:])), int(le.Uint16(h[p+10:])), le.Uint16(h[p+12:])
		if flags&2 != 0 || elen < 16 || p+elen > end {
			return 0, false
		}
		if k := h[p+16 : p+16+min(klen, elen-16)]; len(k) >= 66 {
			n := int(k[64])
			if 66+2*n <= len(k) && strings.EqualFold(utf16String(k[66:66+2*n]), name) {
				return int64(le.Uint64(h[p:]) & (1<<48 - 1)), true
			}
		}
		p += elen
	}
	return 0, false
}
