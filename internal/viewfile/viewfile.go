// Package viewfile holds the one type every consumer of a view reads: a
// file of the target VM. The view makes them, the session wraps them in
// the overlay, fusefs serves them and materialize writes them; the type
// lives apart so that each of them imports it without importing the
// others.
package viewfile

import (
	"io/fs"

	"github.com/vmfs/vmfs/layouts"
)

// File is one file of the target VM.
type File struct {
	Name    string
	Content layouts.Disk
	Mode    fs.FileMode
	// Disk is true for disk image files (and their extents), false for
	// descriptors and reports. materialize writes disks first, so that a
	// descriptor under its final name means its disks are complete.
	Disk bool
}

// Names lists the names of files, in order.
func Names(files []File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Name
	}
	return out
}
