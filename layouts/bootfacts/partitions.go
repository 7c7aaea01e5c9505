package bootfacts

import (
	"bytes"
	"fmt"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/vmfs/vmfs/layouts"
)

// Partition is one entry of a disk's partition table.
type Partition struct {
	Index int   // from 1, as the table numbers it
	Start int64 // byte offset on the disk
	Size  int64 // bytes
}

// Partitions reads the partition table of d (GPT or MBR, within Window)
// and returns its entries that have a type; none for a disk without a
// table. The table is read as Read reads it.
func Partitions(d layouts.Disk) (parts []Partition, err error) {
	buf, err := tableBytes(d)
	if err != nil || buf == nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			parts, err = nil, fmt.Errorf("bootfacts: partition table parser failed (%v): %w", r, layouts.ErrFormat)
		}
	}()
	for _, ss := range []int{512, 4096} {
		if len(buf) < 2*ss || !bytes.Equal(buf[ss:ss+8], []byte("EFI PART")) {
			continue
		}
		if err := checkGPTHeader(buf, ss); err != nil {
			return nil, err
		}
		t, err := gpt.Read(newView(buf), ss, ss)
		if err != nil {
			return nil, fmt.Errorf("bootfacts: gpt: %v: %w", err, layouts.ErrFormat)
		}
		for i, p := range t.Partitions {
			if p.Type == gpt.Unused || p.End < p.Start {
				continue
			}
			parts = append(parts, Partition{Index: i + 1, Start: int64(p.Start) * int64(ss), Size: int64(p.End-p.Start+1) * int64(ss)})
		}
		return parts, nil
	}
	if buf[510] != 0x55 || buf[511] != 0xAA || !validMBR(buf) {
		return nil, nil
	}
	t, err := mbr.Read(newView(buf), 512, 512)
	if err != nil {
		return nil, nil
	}
	for i, p := range t.Partitions {
		if p.Type == mbr.Empty || p.Size == 0 {
			continue
		}
		parts = append(parts, Partition{Index: i + 1, Start: int64(p.Start) * 512, Size: int64(p.Size) * 512})
	}
	return parts, nil
}
