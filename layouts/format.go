package layouts

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Format describes one disk format: the one value each format package
// exports, and all that the rest of vmfs knows of the format. The formats
// are listed, in probe order, by layouts/formats.
type Format struct {
	// Name is vmfs's name of the format: Disk.Format, --format, and the
	// suffix of the images it synthesizes.
	Name string
	// QEMUNames are QEMU's names of the format (qemu-img -f, libvirt's
	// driver type, a qcow2 header's backing format): the first is the one
	// vmfs writes, the others are accepted when read.
	QEMUNames []string
	// Suffixes are the file name endings, lower case, that claim a file
	// for the format: such a file that Open does not recognize is refused
	// rather than read as raw.
	Suffixes []string
	// RawNames, when set, picks out names that end in one of Suffixes but
	// are raw all the same (VMDK's flat extents).
	RawNames func(name string) bool
	// Signature names what Open looks for, for errors about files that
	// lack it.
	Signature string
	// Fallback marks the format that opens any file (raw): probing tries
	// it last, once the claimed names are refused.
	Fallback bool
	// Open opens f as this format. It returns an error wrapping
	// ErrWrongType, and nothing else, when f is not of the format. On
	// success the disk owns f; on error f stays open for the next try.
	Open func(f File, env *Env) (Disk, error)
	// Synthesize makes the files of a target image of src (see Build); nil
	// when vmfs does not write the format.
	Synthesize func(src Disk, base string, opts SynthOptions) ([]TargetFile, error)
	// Subformats are the variants Synthesize makes, its default first;
	// nil when it makes one.
	Subformats []string
	// SplitSubformats are the variants that make more than one file per
	// disk (a descriptor and its extent).
	SplitSubformats []string
	// Identity reads, from a synthesized image, the identifier that a
	// descriptor must repeat (a .vbox names a VDI by its header's UUID);
	// nil when the format has none.
	Identity func(img Disk) (id string, ok bool)
	// OVFURI is the ovf:format URI that names the format in an OVF
	// descriptor; "" when there is none.
	OVFURI string
}

// TargetFile is one file of a target image. Most formats make one file;
// VMDK monolithicFlat makes a descriptor and an extent.
type TargetFile struct {
	// Suffix is appended to the disk's base name: ".qcow2", "-flat.vmdk".
	Suffix  string
	Content Disk
	// Primary is the file a descriptor names.
	Primary bool
}

// SynthOptions tune a target image.
type SynthOptions struct {
	// AdapterType for VMDK descriptors: "ide", "lsilogic", "buslogic",
	// "legacyESX", "pvscsi".
	AdapterType string
	// Subformat chooses a variant ("monolithicSparse", "monolithicFlat",
	// "fixed", "dynamic"); "" is the format's default.
	Subformat string
}

// QEMUName is the name QEMU knows the format by.
func (f Format) QEMUName() string {
	if len(f.QEMUNames) == 0 {
		return f.Name
	}
	return f.QEMUNames[0]
}

// ClaimsName says whether a file of that name must be of the format.
func (f Format) ClaimsName(name string) bool {
	if !slices.Contains(f.Suffixes, strings.ToLower(filepath.Ext(name))) {
		return false
	}
	return f.RawNames == nil || !f.RawNames(name)
}

// CheckSubformat says whether subformat ("" for the default) is a variant
// that Synthesize makes.
func (f Format) CheckSubformat(subformat string) error {
	switch {
	case subformat == "" || slices.Contains(f.Subformats, subformat):
		return nil
	case len(f.Subformats) == 0:
		return fmt.Errorf("%s variant %q is not supported (%s has no variants): %w", f.Name, subformat, f.Name, ErrUnsupported)
	}
	return fmt.Errorf("%s variant %q is not supported (known: %s): %w", f.Name, subformat, strings.Join(f.Subformats, ", "), ErrUnsupported)
}

// Build makes the target image of src in the format, after checking the
// subformat asked. The names of the files a descriptor refers to (VMDK
// monolithicFlat) are derived from base, the primary file's path without
// its suffix.
func (f Format) Build(src Disk, base string, opts SynthOptions) ([]TargetFile, error) {
	if f.Synthesize == nil {
		return nil, fmt.Errorf("vmfs does not write %s images: %w", f.Name, ErrUnsupported)
	}
	if err := f.CheckSubformat(opts.Subformat); err != nil {
		return nil, err
	}
	return f.Synthesize(src, base, opts)
}

// OneFile is the target image of formats that make one file: the image
// synth makes of src, named base+"."+name.
func OneFile(name string, synth func(Disk) (*Image, error)) func(Disk, string, SynthOptions) ([]TargetFile, error) {
	return func(src Disk, _ string, _ SynthOptions) ([]TargetFile, error) {
		img, err := synth(src)
		if err != nil {
			return nil, err
		}
		return []TargetFile{{Suffix: "." + name, Content: img, Primary: true}}, nil
	}
}
