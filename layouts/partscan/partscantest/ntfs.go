// Package partscantest builds the volumes the pre-flight tests scan: an
// NTFS volume reduced to the structures layouts/partscan reads.
package partscantest

import (
	"encoding/binary"
	"unicode/utf16"
)

// The NTFS volumes below are laid out as Windows lays one out, reduced
// to what Scan reads: 512-byte sectors, 4 KiB clusters, 1 KiB MFT records
// from cluster 4 (record 0 $MFT, 3 $Volume, 5 the root directory, 10
// hiberfil.sys), the hibernation file's data at cluster 12.

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return b
}

// residentAttr is an attribute of type typ named name holding content.
func residentAttr(typ uint32, name string, content []byte) []byte {
	le := binary.LittleEndian
	n := utf16le(name)
	off := (24 + len(n) + 7) &^ 7
	a := make([]byte, (off+len(content)+7)&^7)
	le.PutUint32(a[0:], typ)
	le.PutUint32(a[4:], uint32(len(a)))
	a[9] = byte(len(n) / 2)
	le.PutUint16(a[10:], 24)
	copy(a[24:], n)
	le.PutUint32(a[16:], uint32(len(content)))
	le.PutUint16(a[20:], uint16(off))
	copy(a[off:], content)
	return a
}

// nonResidentAttr is an unnamed attribute of type typ in one run of n
// clusters from lcn.
func nonResidentAttr(typ uint32, lcn, n byte) []byte { return namedNonResident(typ, "", lcn, n) }

func namedNonResident(typ uint32, name string, lcn, n byte) []byte {
	le := binary.LittleEndian
	nm := utf16le(name)
	runs := (64 + len(nm) + 7) &^ 7
	a := make([]byte, runs+8)
	le.PutUint32(a[0:], typ)
	le.PutUint32(a[4:], uint32(len(a)))
	a[8] = 1
	a[9] = byte(len(nm) / 2)
	le.PutUint16(a[10:], 64)
	copy(a[64:], nm)
	le.PutUint16(a[32:], uint16(runs))
	copy(a[runs:], []byte{0x11, n, lcn, 0})
	return a
}

// record is a 1 KiB FILE record holding attrs, its update sequence
// applied (torn: one stride's number wrong).
func record(torn bool, attrs ...[]byte) []byte {
	le := binary.LittleEndian
	r := make([]byte, 1024)
	copy(r, "FILE")
	le.PutUint16(r[4:], 48)
	le.PutUint16(r[6:], 3)
	le.PutUint16(r[20:], 56)
	p := 56
	for _, a := range attrs {
		p += copy(r[p:], a)
	}
	le.PutUint32(r[p:], 0xFFFFFFFF)
	le.PutUint16(r[48:], 7)
	copy(r[50:52], r[510:512])
	copy(r[52:54], r[1022:1024])
	le.PutUint16(r[510:], 7)
	le.PutUint16(r[1022:], 7)
	if torn {
		le.PutUint16(r[1022:], 8)
	}
	return r
}

// indexRoot is the root's $INDEX_ROOT content listing names, each a file
// whose record is 10.
func indexRoot(names ...string) []byte {
	le := binary.LittleEndian
	var entries []byte
	for _, name := range names {
		n := utf16le(name)
		key := make([]byte, 66+len(n))
		key[64] = byte(len(n) / 2)
		key[65] = 1 // Win32 namespace
		copy(key[66:], n)
		e := make([]byte, (16+len(key)+7)&^7)
		le.PutUint64(e[0:], 10|1<<48)
		le.PutUint16(e[8:], uint16(len(e)))
		le.PutUint16(e[10:], uint16(len(key)))
		copy(e[16:], key)
		entries = append(entries, e...)
	}
	last := make([]byte, 16)
	le.PutUint16(last[8:], 16)
	le.PutUint16(last[12:], 2)
	entries = append(entries, last...)
	c := make([]byte, 32, 32+len(entries))
	le.PutUint32(c[0:], 0x30) // indexes $FILE_NAME
	le.PutUint32(c[8:], 4096) // index block size
	le.PutUint32(c[16:], 16)  // entries after the 16-byte header
	le.PutUint32(c[20:], uint32(16+len(entries)))
	le.PutUint32(c[24:], uint32(16+len(entries)))
	return append(c, entries...)
}

// NTFSVolume returns the first 64 KiB of an NTFS volume whose $Volume
// has flags, whose root lists hiberfil.sys when hiber is not nil, that
// file's data starting with hiber; with inBlock, the root's entries are
// in an index block rather than in its record.
func NTFSVolume(flags uint16, torn bool, hiber []byte, inBlock bool) []byte {
	le := binary.LittleEndian
	v := make([]byte, 64<<10)
	copy(v, "\xeb\x52\x90NTFS    ")
	le.PutUint16(v[11:], 512)
	v[13] = 8
	le.PutUint64(v[48:], 4)
	v[64] = 0xF6
	mft := v[4*4096:]
	copy(mft[0:], record(false, nonResidentAttr(0x80, 4, 4)))
	vol := make([]byte, 12)
	vol[8], vol[9] = 3, 1
	le.PutUint16(vol[10:], flags)
	copy(mft[3*1024:], record(torn, residentAttr(0x70, "", vol)))
	names := []string{"$MFT", "bootmgr"}
	if hiber != nil {
		names = append(names, "HIBERFIL.SYS")
	}
	if inBlock && hiber != nil {
		// A root too large for its record: the entries are in an INDX
		// block at cluster 13.
		copy(mft[5*1024:], record(false, residentAttr(0x90, "$I30", indexRoot("$MFT")), namedNonResident(0xA0, "$I30", 13, 1)))
		blk := v[13*4096 : 14*4096]
		copy(blk, "INDX")
		le.PutUint16(blk[4:], 40)
		le.PutUint16(blk[6:], 9)
		// The index header at 24, its entries at 64, past the update
		// sequence array at 40.
		entries := indexRoot(names...)[32:]
		le.PutUint32(blk[24:], 40)
		le.PutUint32(blk[28:], uint32(40+len(entries)))
		le.PutUint32(blk[32:], uint32(4096-24))
		copy(blk[64:], entries)
		le.PutUint16(blk[40:], 5)
		for i := 1; i < 9; i++ {
			copy(blk[40+2*i:], blk[i*512-2:i*512])
			le.PutUint16(blk[i*512-2:], 5)
		}
	} else {
		copy(mft[5*1024:], record(false, residentAttr(0x90, "$I30", indexRoot(names...))))
	}
	copy(mft[10*1024:], record(false, nonResidentAttr(0x80, 12, 1)))
	copy(v[12*4096:], hiber)
	return v
}
