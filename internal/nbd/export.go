package nbd

import (
	"io"

	"github.com/vmfs/vmfs/layouts"
)

// DiskExport offers the virtual bytes of d under name.
func DiskExport(name string, d layouts.Disk) Export { return diskExport{name, d} }

type diskExport struct {
	name string
	layouts.Disk
}

func (e diskExport) Name() string { return e.name }

// WritableDisk is a disk that takes writes: the overlay's view of a file
// of the session (internal/overlay.File), never a source disk.
type WritableDisk interface {
	layouts.Disk
	io.WriterAt
	// Punch makes [off, off+n) read as zeros.
	Punch(off, n int64) error
	// Sync makes the writes so far durable.
	Sync() error
}

// Writable is an Export that takes NBD_CMD_WRITE, WRITE_ZEROES, TRIM and
// FLUSH.
type Writable interface {
	Export
	io.WriterAt
	Punch(off, n int64) error
	Sync() error
}

// WritableExport offers d under name, writable.
func WritableExport(name string, d WritableDisk) Writable { return writableExport{name, d} }

type writableExport struct {
	name string
	WritableDisk
}

func (e writableExport) Name() string { return e.name }
