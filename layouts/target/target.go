// Package target synthesizes target disk images from source disks: each
// image is a layouts.Image (a list of segments) computed from the source's
// extent map, so mounting costs in proportion to the metadata, never to the
// disk size.
package target

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/qcow2"
	"github.com/vmfs/vmfs/layouts/vdi"
	"github.com/vmfs/vmfs/layouts/vhd"
	"github.com/vmfs/vmfs/layouts/vhdx"
	"github.com/vmfs/vmfs/layouts/vmdk"
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
	"qcow2": func(src layouts.Disk, _ string, _ Options) ([]File, error) {
		img, err := qcow2.Synthesize(src)
		if err != nil {
			return nil, err
		}
		return []File{{Suffix: ".qcow2", Content: img, Primary: true}}, nil
	},
	"vmdk": func(src layouts.Disk, base string, opts Options) ([]File, error) {
		name := filepath.Base(base)
		switch opts.Subformat {
		case "", "monolithicSparse":
			img, err := vmdk.SynthesizeSparseNamed(src, opts.AdapterType, name+".vmdk")
			if err != nil {
				return nil, err
			}
			return []File{{Suffix: ".vmdk", Content: img, Primary: true}}, nil
		case "monolithicFlat":
			desc, flat, err := vmdk.SynthesizeFlat(src, opts.AdapterType, name+"-flat.vmdk")
			if err != nil {
				return nil, err
			}
			return []File{{Suffix: ".vmdk", Content: desc, Primary: true}, {Suffix: "-flat.vmdk", Content: flat}}, nil
		}
		return nil, checkVariant("vmdk", opts.Subformat)
	},
	"vhdx": func(src layouts.Disk, _ string, _ Options) ([]File, error) {
		img, err := vhdx.Synthesize(src)
		if err != nil {
			return nil, err
		}
		return []File{{Suffix: ".vhdx", Content: img, Primary: true}}, nil
	},
	"vhd": func(src layouts.Disk, _ string, opts Options) ([]File, error) {
		synth := vhd.SynthesizeDynamic
		switch opts.Subformat {
		case "", "dynamic":
		case "fixed":
			synth = vhd.SynthesizeFixed
		default:
			return nil, checkVariant("vhd", opts.Subformat)
		}
		img, err := synth(src)
		if err != nil {
			return nil, err
		}
		return []File{{Suffix: ".vhd", Content: img, Primary: true}}, nil
	},
	"vdi": func(src layouts.Disk, _ string, _ Options) ([]File, error) {
		img, err := vdi.Synthesize(src)
		if err != nil {
			return nil, err
		}
		return []File{{Suffix: ".vdi", Content: img, Primary: true}}, nil
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

// Subformats lists the variants a format takes, its default first; formats
// with one variant have none.
func Subformats(format string) []string {
	switch format {
	case "vmdk":
		return []string{"monolithicSparse", "monolithicFlat"}
	case "vhd":
		return []string{"dynamic", "fixed"}
	}
	return nil
}

// CheckFormat says whether Build makes images of format.
func CheckFormat(format string) error {
	if _, ok := builders[format]; !ok {
		return fmt.Errorf("image format %q is not supported (vmfs makes %s): %w", format, strings.Join(Formats(), ", "), layouts.ErrUnsupported)
	}
	return nil
}

// CheckSubformat says whether subformat ("" for the default) is a variant
// of format.
func CheckSubformat(format, subformat string) error {
	if err := CheckFormat(format); err != nil {
		return err
	}
	return checkVariant(format, subformat)
}

func checkVariant(format, subformat string) error {
	subs := Subformats(format)
	switch {
	case subformat == "" || slices.Contains(subs, subformat):
		return nil
	case len(subs) == 0:
		return fmt.Errorf("%s variant %q is not supported (%s has no variants): %w", format, subformat, format, layouts.ErrUnsupported)
	}
	return fmt.Errorf("%s variant %q is not supported (known: %s): %w", format, subformat, strings.Join(subs, ", "), layouts.ErrUnsupported)
}

// Build makes the target image of src in format.
func Build(format string, src layouts.Disk, base string, opts Options) ([]File, error) {
	if err := CheckSubformat(format, opts.Subformat); err != nil {
		return nil, err
	}
	return builders[format](src, base, opts)
}
