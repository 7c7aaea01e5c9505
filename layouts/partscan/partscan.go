// Package partscan looks at the start of each partition of a disk for
// what a migration must know before the disk is moved: a volume encrypted
// with LUKS or BitLocker, whose contents the target can read only with
// its key, and an NTFS volume left unclean (its dirty flag). It reads the
// partition table as bootfacts does (go-diskfs on a bounded window), one
// sector per partition, and for NTFS one MFT record.
package partscan

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/bootfacts"
)

// Kinds of volume Scan recognizes.
const (
	LUKS      = "luks"      // "LUKS\xba\xbe" at the volume's start (LUKS1 and LUKS2)
	BitLocker = "bitlocker" // "-FVE-FS-" at offset 3 of the volume's boot sector
)

// Finding is an encrypted volume seen on a disk.
type Finding struct {
	// Partition is the table's number of the partition, 0 for a volume
	// that fills the whole disk (no partition table).
	Partition int    `json:"partition"`
	Start     int64  `json:"start"`
	Kind      string `json:"kind"`
}

// Scan returns the encrypted and the unclean NTFS volumes of d: on each
// partition of its table, or on the whole disk when it has none. An NTFS
// volume whose structures cannot be read is an error, with the findings
// made before it.
func Scan(d layouts.Disk) ([]Finding, error) {
	parts, err := bootfacts.Partitions(d)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		parts = []bootfacts.Partition{{Index: 0, Start: 0, Size: d.Size()}}
	}
	var out []Finding
	buf := make([]byte, 512)
	for _, p := range parts {
		if p.Start < 0 || p.Start+int64(len(buf)) > d.Size() {
			continue
		}
		if _, err := d.ReadAt(buf, p.Start); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("partscan: %s: reading partition %d at %d: %w", d.Format(), p.Index, p.Start, err)
		}
		if k := Kind(buf); k != "" {
			out = append(out, Finding{Partition: p.Index, Start: p.Start, Kind: k})
		}
		if isNTFS(buf) {
			fs, err := scanNTFS(d, p, buf)
			out = append(out, fs...)
			if err != nil {
				return out, fmt.Errorf("partscan: %s: partition %d: %w", d.Format(), p.Index, err)
			}
		}
	}
	return out, nil
}

// Kind says which encrypted volume b, the first bytes of a volume,
// starts, or "".
func Kind(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("LUKS\xba\xbe")):
		return LUKS
	case len(b) >= 11 && bytes.Equal(b[3:11], []byte("-FVE-FS-")):
		return BitLocker
	}
	return ""
}

// scanNTFS reads the dirty flag and looks for a hibernation file on the
// NTFS volume of partition p, whose boot sector is bs.
func scanNTFS(d layouts.Disk, p bootfacts.Partition, bs []byte) ([]Finding, error) {
	v, err := openNTFS(d, p.Start, bs)
	if err != nil {
		return nil, err
	}
	var out []Finding
	dirty, err := v.dirty()
	if err != nil {
		return nil, err
	}
	if dirty {
		out = append(out, Finding{Partition: p.Index, Start: p.Start, Kind: NTFSDirty})
	}
	hib, err := v.hibernated()
	if err != nil {
		return out, err
	}
	if hib {
		out = append(out, Finding{Partition: p.Index, Start: p.Start, Kind: Hibernated})
	}
	return out, nil
}
