// Package target synthesizes target disk images from source disks: each
// image is a layouts.Image (a list of segments) computed from the source's
// extent map, so mounting costs in proportion to the metadata, never to the
// disk size.
package target

import (
	"fmt"
	"sort"

	"github.com/vmfs/vmfs/layouts"
)

// File is one file of a target image. Most formats make one file; VMDK
// monolithicFlat makes a descriptor and an extent.
type File struct {
	// Suffix is appended to the disk's base name: ".qcow2", "-flat.vmdk".
	Suffix  string
	Content layouts.Disk
	// Primary is the file a descriptor names.
	Primary bool
}

// Options tune a target image.
type Options struct {
	// AdapterType for VMDK descriptors: "ide", "lsilogic", "buslogic",
	// "legacyESX", "pvscsi".
	AdapterType string
	// Subformat chooses a variant ("monolithicSparse", "monolithicFlat",
	// "fixed", "dynamic"); "" is the format's default.
	Subformat string
}

// Builder makes the files of one target format from a source disk. The
// names of the files a descriptor refers to (VMDK monolithicFlat) are
// derived from base, the primary file's name without its suffix.
type Builder func(src layouts.Disk, base string, opts Options) ([]File, error)

// builders maps each target format to the synthesizer of its package.
var builders = map[string]Builder{
	"raw": func(src layouts.Disk, _ string, _ Options) ([]File, error) {
		return []File{{Suffix: ".raw", Content: layouts.Section("raw", src), Primary: true}}, nil
	},
}

// Formats lists the target formats known.
func Formats() []string {
	var out []string
	for f := range builders {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// Build makes the target image of src in format.
func Build(format string, src layouts.Disk, base string, opts Options) ([]File, error) {
	b, ok := builders[format]
	if !ok {
		return nil, fmt.Errorf("target format %q is not supported (supported: %v)", format, Formats())
	}
	return b(src, base, opts)
}
