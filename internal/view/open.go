package view

import (
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/bootfacts"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/source"
	"github.com/vmfs/vmfs/translate/targets"
)

// BuildOptions say how to turn a source path into a view.
type BuildOptions struct {
	// To names the target ("libvirt", "qemu", "vmware" ...).
	To string
	Options
}

// Build reads the source VM at src and builds its view for opts.To.
func Build(src string, opts BuildOptions) (*View, error) {
	t, err := targets.Get(opts.To)
	if err != nil {
		return nil, err
	}
	m, err := source.Load(src)
	if err != nil {
		return nil, err
	}
	if opts.BootFacts == nil {
		opts.BootFacts = func(d layouts.Disk) (bootfacts.Facts, error) { return bootfacts.Read(d) }
	}
	v, err := New(m, t, opts.Options)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Inspect reads the source VM and opens its disks without building a
// target: what `vmfs inspect` shows.
func Inspect(src string, env *layouts.Env) (*translate.Machine, []DiskInfo, error) {
	m, err := source.Load(src)
	if err != nil {
		return nil, nil, err
	}
	var infos []DiskInfo
	for _, d := range m.Disks {
		disk, err := openMachineDisk(m, d, env)
		if err != nil {
			return nil, nil, err
		}
		alloc, err := layouts.Allocated(disk)
		info := DiskInfo{Path: d.Path, Format: disk.Format(), VirtualSize: disk.Size(), Allocated: alloc}
		if err == nil {
			info.Boot, err = bootfacts.Read(disk)
		}
		disk.Close()
		if err != nil {
			return nil, nil, diskError(d.Path, err)
		}
		infos = append(infos, info)
	}
	return m, infos, nil
}

// DiskInfo describes one source disk.
type DiskInfo struct {
	Path        string          `json:"path"`
	Format      string          `json:"format"`
	VirtualSize int64           `json:"virtual_size"`
	Allocated   int64           `json:"allocated"`
	Boot        bootfacts.Facts `json:"boot"`
}
