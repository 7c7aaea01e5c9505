package nbd

import "github.com/vmfs/vmfs/layouts"

// DiskExport offers the virtual bytes of d under name.
func DiskExport(name string, d layouts.Disk) Export { return diskExport{name, d} }

type diskExport struct {
	name string
	layouts.Disk
}

func (e diskExport) Name() string { return e.name }
