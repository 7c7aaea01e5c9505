// Package target synthesizes target disk images from source disks: each
// image is a layouts.Image (a list of segments) computed from the source's
// extent map, so mounting costs in proportion to the metadata, never to the
// disk size. The formats and their synthesizers come from layouts/formats.
package target

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/formats"
)

// File is one file of a target image.
type File = layouts.TargetFile

// Options tune a target image.
type Options = layouts.SynthOptions

// Formats lists the target formats known, sorted.
func Formats() []string { return formats.Targets() }

// Subformats lists the variants a format takes, its default first; formats
// with one variant have none.
func Subformats(format string) []string {
	f, _ := lookup(format)
	return f.Subformats
}

func lookup(format string) (layouts.Format, bool) {
	f, ok := formats.ByName(format)
	if !ok || f.Synthesize == nil {
		return layouts.Format{}, false
	}
	return f, true
}

// CheckFormat says whether Build makes images of format.
func CheckFormat(format string) error {
	if _, ok := lookup(format); !ok {
		return fmt.Errorf("image format %q is not supported (vmfs makes %s): %w", format, strings.Join(Formats(), ", "), layouts.ErrUnsupported)
	}
	return nil
}

// CheckSubformat says whether subformat ("" for the default) is a variant
// of format.
func CheckSubformat(format, subformat string) error {
	f, ok := lookup(format)
	if !ok {
		return CheckFormat(format)
	}
	return f.CheckSubformat(subformat)
}

// CheckOneFile says whether each disk in format and subformat is one
// file, for a target whose descriptor names each disk by one file; why
// is the target's reason, for the error.
func CheckOneFile(format, subformat, why string) error {
	f, ok := lookup(format)
	if !ok || why == "" || !slices.Contains(f.SplitSubformats, subformat) {
		return nil
	}
	return fmt.Errorf("%s %s makes more than one file per disk and %s: choose another variant (%s)",
		format, subformat, why, strings.Join(slices.DeleteFunc(slices.Clone(f.Subformats), func(s string) bool { return slices.Contains(f.SplitSubformats, s) }), ", "))
}

// Build makes the target image of src in format. The names of the files a
// descriptor refers to (VMDK monolithicFlat) are derived from base, the
// primary file's name without its suffix.
func Build(format string, src layouts.Disk, base string, opts Options) ([]File, error) {
	f, ok := lookup(format)
	if !ok {
		return nil, CheckFormat(format)
	}
	return f.Build(src, base, opts)
}
