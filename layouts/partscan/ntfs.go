package partscan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmfs/vmfs/layouts"
)

// NTFS volume facts.
const (
	// NTFSDirty: the $Volume's dirty flag is set: Windows did not shut
	// the volume down cleanly (a crash, a forced power-off) or scheduled
	// a chkdsk.
	NTFSDirty = "ntfs-dirty"
)

// isNTFS says whether b, a volume's boot sector, is NTFS's.
func isNTFS(b []byte) bool { return len(b) >= 11 && bytes.Equal(b[3:11], []byte("NTFS    ")) }

// ntfsDirty reads the dirty flag of the NTFS volume at start on d, whose
// boot sector is bs: from the $VOLUME_INFORMATION attribute of MFT record
// 3 ($Volume). It reads one MFT record.
func ntfsDirty(d layouts.Disk, start int64, bs []byte) (bool, error) {
	le := binary.LittleEndian
	bps := int64(le.Uint16(bs[11:]))
	if bps < 256 || bps > 4096 || bps&(bps-1) != 0 {
		return false, fmt.Errorf("ntfs: %d bytes per sector", bps)
	}
	cluster := int64(bs[13]) * bps
	if bs[13] > 0x80 {
		if 256-int(bs[13]) > 21 {
			return false, fmt.Errorf("ntfs: sectors per cluster byte %#x", bs[13])
		}
		cluster = 1 << (256 - int(bs[13]))
	}
	if cluster == 0 || cluster > 2<<20 {
		return false, fmt.Errorf("ntfs: cluster of %d bytes", cluster)
	}
	var rec int64
	switch c := int8(bs[64]); {
	case c > 0:
		rec = int64(c) * cluster
	case c < 0 && -int(c) <= 16:
		rec = 1 << -int(c)
	}
	if rec < 512 || rec > 64<<10 {
		return false, fmt.Errorf("ntfs: MFT record of %d bytes", rec)
	}
	lcn := le.Uint64(bs[48:])
	if lcn >= uint64(d.Size()/cluster) {
		return false, fmt.Errorf("ntfs: MFT at cluster %d lies past the disk's end", lcn)
	}
	off := start + int64(lcn)*cluster + 3*rec
	if off+rec > d.Size() {
		return false, fmt.Errorf("ntfs: $Volume record at %d lies past the disk's end", off)
	}
	b := make([]byte, rec)
	if _, err := d.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("ntfs: reading the $Volume record at %d: %w", off, err)
	}
	if !bytes.Equal(b[:4], []byte("FILE")) {
		return false, fmt.Errorf("ntfs: MFT record 3 at %d is not a FILE record", off)
	}
	// Undo the update sequence: the last two bytes of each 512-byte
	// stride hold the sequence number; their bytes are in the array.
	usa, n := int64(le.Uint16(b[4:])), int64(le.Uint16(b[6:]))
	if n < 1 || usa+2*n > rec || (n-1)*512 > rec {
		return false, fmt.Errorf("ntfs: $Volume record: update sequence of %d at %d", n, usa)
	}
	for i := int64(1); i < n; i++ {
		p := i*512 - 2
		if !bytes.Equal(b[p:p+2], b[usa:usa+2]) {
			return false, fmt.Errorf("ntfs: $Volume record is torn (update sequence mismatch)")
		}
		copy(b[p:p+2], b[usa+2*i:usa+2*i+2])
	}
	for a := int64(le.Uint16(b[20:])); a+24 <= rec; {
		typ, alen := le.Uint32(b[a:]), int64(le.Uint32(b[a+4:]))
		if typ == 0xFFFFFFFF {
			break
		}
		if alen < 24 || a+alen > rec {
			return false, fmt.Errorf("ntfs: $Volume record: attribute of %d bytes at %d", alen, a)
		}
		if typ == 0x70 && b[a+8] == 0 { // $VOLUME_INFORMATION, resident
			clen, coff := int64(le.Uint32(b[a+16:])), int64(le.Uint16(b[a+20:]))
			if clen < 12 || coff+clen > alen {
				return false, fmt.Errorf("ntfs: $VOLUME_INFORMATION of %d bytes", clen)
			}
			return le.Uint16(b[a+coff+10:])&1 != 0, nil
		}
		a += alen
	}
	return false, fmt.Errorf("ntfs: the $Volume record has no $VOLUME_INFORMATION")
}
