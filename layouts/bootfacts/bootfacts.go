// Package bootfacts reads what a disk's partition table says about booting
// it: GPT or MBR, and whether it holds an EFI System Partition or a BIOS
// boot partition. Tables are parsed with go-diskfs, on a bounded window of
// the first MiBs of the disk, after the GPT header's sizes have been checked
// against that window.
package bootfacts

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/vmfs/vmfs/layouts"
)

// Facts are what a disk's partition table says about booting it. They
// are layouts' own: a disk's facts, read without knowing the machine
// around it; translate's mapping step decides the firmware from them.
type Facts struct {
	Table     string `json:"table"`         // "gpt", "mbr", "" when none was found
	HasESP    bool   `json:"has_esp"`       // a GPT EFI System Partition
	HasBIOSBP bool   `json:"has_bios_boot"` // a GPT BIOS boot partition
}

// Partition type GUIDs.
const (
	ESPType      = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	BIOSBootType = "21686148-6449-6E6F-744E-656564454649"
)

// Window is how much of the start of the disk is read: the MBR, the
// primary GPT header and its entry array must lie inside it.
const Window = 1 << 20

// maxEntries bounds the GPT entry array (the specification's minimum is
// 128 entries; tools never write more than a few hundred).
const maxEntries = 4096

// Read returns the boot facts of d. A disk without a partition table gives
// empty facts and no error; a GPT that is corrupt gives an error wrapping
// layouts.ErrFormat.
func Read(d layouts.Disk) (facts Facts, err error) {
	buf, err := tableBytes(d)
	if err != nil || buf == nil {
		return facts, err
	}
	return FromBytes(buf)
}

// tableBytes reads the start of d that holds its partition table: nil
// for a disk smaller than a sector.
func tableBytes(d layouts.Disk) ([]byte, error) {
	limit := min(d.Size(), Window)
	if limit < 512 {
		return nil, nil
	}
	// The usual table (MBR, GPT header, 128 entries) lies in the first
	// 32 KiB; read more only when a GPT header places its entries further.
	buf, err := readStart(d, min(limit, firstRead))
	if err != nil {
		return nil, err
	}
	for _, ss := range []int{512, 4096} {
		if len(buf) < 2*ss || !bytes.Equal(buf[ss:ss+8], []byte("EFI PART")) {
			continue
		}
		h := buf[ss : ss+92]
		end := binary.LittleEndian.Uint64(h[72:80])*uint64(ss) +
			uint64(binary.LittleEndian.Uint32(h[80:84]))*uint64(binary.LittleEndian.Uint32(h[84:88]))
		if end > uint64(len(buf)) {
			return readStart(d, limit)
		}
		break
	}
	return buf, nil
}

// firstRead is what Read reads first.
const firstRead = 64 << 10

func readStart(d layouts.Disk, n int64) ([]byte, error) {
	buf := make([]byte, n)
	if _, err := d.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("bootfacts: %s: reading the partition table: %w", d.Format(), err)
	}
	return buf, nil
}

// FromBytes reads the boot facts from the first bytes of a disk.
func FromBytes(b []byte) (facts Facts, err error) {
	defer func() {
		// go-diskfs is a third-party parser fed hostile bytes: a panic in
		// it must not take the process down.
		if r := recover(); r != nil {
			facts, err = Facts{}, fmt.Errorf("bootfacts: partition table parser failed (%v): %w", r, layouts.ErrFormat)
		}
	}()
	if len(b) < 512 {
		return facts, nil
	}
	for _, ss := range []int{512, 4096} {
		if len(b) < 2*ss || !bytes.Equal(b[ss:ss+8], []byte("EFI PART")) {
			continue
		}
		if err := checkGPTHeader(b, ss); err != nil {
			return facts, err
		}
		t, err := gpt.Read(newView(b), ss, ss)
		if err != nil {
			return facts, fmt.Errorf("bootfacts: gpt: %v: %w", err, layouts.ErrFormat)
		}
		facts.Table = "gpt"
		for _, p := range t.Partitions {
			switch strings.ToUpper(string(p.Type)) {
			case ESPType:
				facts.HasESP = true
			case BIOSBootType:
				facts.HasBIOSBP = true
			}
		}
		return facts, nil
	}
	if b[510] != 0x55 || b[511] != 0xAA {
		return facts, nil
	}
	t, err := mbr.Read(newView(b), 512, 512)
	if err != nil {
		return facts, nil // a boot signature alone (a VBR, a floppy image) is no table
	}
	for _, p := range t.Partitions {
		if p.Type == mbr.Type(0xEE) {
			// Protective MBR but no valid GPT header at LBA 1.
			return facts, fmt.Errorf("bootfacts: protective MBR without a GPT header: %w", layouts.ErrFormat)
		}
	}
	if !validMBR(b) {
		return facts, nil
	}
	facts.Table = "mbr"
	return facts, nil
}

// validMBR requires at least one partition entry with a type, a boot flag
// of 0x00 or 0x80 on every entry, and sizes inside 32-bit LBAs.
func validMBR(b []byte) bool {
	any := false
	for i := 0; i < 4; i++ {
		e := b[446+16*i : 446+16*(i+1)]
		if e[0] != 0 && e[0] != 0x80 {
			return false
		}
		if e[4] != 0 && binary.LittleEndian.Uint32(e[12:16]) > 0 {
			any = true
		}
	}
	return any
}

// checkGPTHeader validates the sizes of the GPT header at LBA 1 that
// go-diskfs trusts: the entry array must be of a sane shape and lie inside
// the window.
func checkGPTHeader(b []byte, ss int) error {
	h := b[ss : ss+92]
	first := binary.LittleEndian.Uint64(h[72:80])
	count := binary.LittleEndian.Uint32(h[80:84])
	size := binary.LittleEndian.Uint32(h[84:88])
	switch {
	case size < 128 || size > 4096 || size&(size-1) != 0:
		return fmt.Errorf("bootfacts: gpt: entry size %d is not a power of two from 128 to 4096: %w", size, layouts.ErrFormat)
	case count == 0 || count > maxEntries:
		return fmt.Errorf("bootfacts: gpt: %d partition entries (limit %d): %w", count, maxEntries, layouts.ErrFormat)
	case first < 2 || first > uint64(len(b)/ss):
		return fmt.Errorf("bootfacts: gpt: entry array at LBA %d is outside the first %d bytes: %w", first, len(b), layouts.ErrFormat)
	case first*uint64(ss)+uint64(count)*uint64(size) > uint64(len(b)):
		return fmt.Errorf("bootfacts: gpt: entry array (LBA %d, %d entries of %d bytes) ends outside the first %d bytes: %w", first, count, size, len(b), layouts.ErrFormat)
	}
	return nil
}

// view is the go-diskfs backend.File over an in-memory window.
type view struct {
	*bytes.Reader
	size int64
}

func newView(b []byte) *view { return &view{bytes.NewReader(b), int64(len(b))} }

func (v *view) Stat() (fs.FileInfo, error) { return info{v.size}, nil }
func (v *view) Close() error               { return nil }

type info struct{ size int64 }

func (i info) Name() string       { return "disk" }
func (i info) Size() int64        { return i.size }
func (i info) Mode() fs.FileMode  { return 0o444 }
func (i info) ModTime() time.Time { return time.Time{} }
func (i info) IsDir() bool        { return false }
func (i info) Sys() any           { return nil }
