package view

import (
	"slices"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/bootfacts"
	"github.com/vmfs/vmfs/translate"
)

// Inspect opens the disks of m without building a target, as New would
// (opts.Env, opts.Opened, opts.BootFacts, opts.Preflight, opts.Missing;
// the other options are not used): what `vmfs inspect` shows. A missing
// disk is listed, marked Missing, and not opened. The disks are closed
// again.
func Inspect(m *translate.Machine, opts Options) ([]DiskInfo, error) {
	var infos []DiskInfo
	disks := make([]layouts.Disk, len(m.Disks))
	defer closeAll(disks)
	defer closeAll(opts.Opened)
	for i, d := range m.Disks {
		if slices.Contains(opts.Missing, i) {
			infos = append(infos, DiskInfo{Path: d.Path, Missing: true})
			continue
		}
		var disk layouts.Disk
		if i < len(opts.Opened) && opts.Opened[i] != nil {
			disk, opts.Opened[i] = opts.Opened[i], nil
			sizeWarning(m, d, disk)
		} else {
			var err error
			if disk, err = openMachineDisk(m, d, opts.Env); err != nil {
				return nil, err
			}
		}
		disks[i] = disk
		alloc, err := layouts.Allocated(disk)
		info := DiskInfo{Path: d.Path, Format: disk.Format(), VirtualSize: disk.Size(), Allocated: alloc, Chain: layouts.Chain(disk)}
		if info.Chain == nil {
			info.Chain = []layouts.Layer{}
		}
		if err == nil && opts.BootFacts != nil {
			info.Boot, err = opts.BootFacts(i, disk)
		}
		if err != nil {
			return nil, diskError(d.Path, err)
		}
		infos = append(infos, info)
	}
	if opts.Preflight != nil {
		opts.Preflight(m, disks)
	}
	return infos, nil
}

// closeAll closes the disks of ds that are not nil.
func closeAll(ds []layouts.Disk) {
	for _, d := range ds {
		if d != nil {
			d.Close()
		}
	}
}

// DiskInfo describes one source disk.
type DiskInfo struct {
	Path        string          `json:"path"`
	Format      string          `json:"format"`
	VirtualSize int64           `json:"virtual_size"`
	Allocated   int64           `json:"allocated"`
	Boot        bootfacts.Facts `json:"boot"`
	// Missing: the disk's file is not there (the other fields are empty).
	Missing bool `json:"missing,omitempty"`
	// Chain is the disk's files, newest first: the path, then its
	// parents or backing files.
	Chain []layouts.Layer `json:"chain"`
}
