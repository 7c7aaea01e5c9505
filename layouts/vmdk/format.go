package vmdk

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vmfs/vmfs/layouts"
)

// Format describes VMDK to the rest of vmfs (see layouts/formats).
var Format = layouts.Format{
	Name:       Type,
	QEMUNames:  []string{"vmdk"},
	Suffixes:   []string{".vmdk"},
	RawNames:   FlatExtentName,
	Signature:  "sparse header or descriptor",
	Open:       Open,
	Synthesize: synthesize,
	Subformats: []string{"monolithicSparse", "monolithicFlat"},
	// monolithicFlat is a descriptor and its -flat extent.
	SplitSubformats: []string{"monolithicFlat"},
	OVFURI:          "http://www.vmware.com/interfaces/specifications/vmdk.html#sparse",
}

// synthesize makes a monolithicSparse image, or a monolithicFlat
// descriptor and its extent, named after base.
func synthesize(src layouts.Disk, base string, opts layouts.SynthOptions) ([]layouts.TargetFile, error) {
	name := filepath.Base(base)
	switch opts.Subformat {
	case "", "monolithicSparse":
		img, err := SynthesizeSparseNamed(src, opts.AdapterType, name+".vmdk")
		if err != nil {
			return nil, err
		}
		return []layouts.TargetFile{{Suffix: ".vmdk", Content: img, Primary: true}}, nil
	case "monolithicFlat":
		desc, flat, err := SynthesizeFlat(src, opts.AdapterType, name+"-flat.vmdk")
		if err != nil {
			return nil, err
		}
		return []layouts.TargetFile{{Suffix: ".vmdk", Content: desc, Primary: true}, {Suffix: "-flat.vmdk", Content: flat}}, nil
	}
	return nil, fmt.Errorf("vmdk variant %q is not supported: %w", opts.Subformat, layouts.ErrUnsupported)
}

// FlatExtentName says whether name is that of a flat extent file
// (NAME-flat.vmdk of monolithicFlat and vmfs, NAME-fNNN.vmdk of
// twoGbMaxExtentFlat), whose bytes are the raw disk and which has no VMDK
// structure of its own: such a file is not claimed by its suffix.
func FlatExtentName(name string) bool {
	base := strings.ToLower(filepath.Base(name))
	stem, ok := strings.CutSuffix(base, ".vmdk")
	if !ok {
		return false
	}
	if strings.HasSuffix(stem, "-flat") {
		return true
	}
	i := strings.LastIndex(stem, "-f")
	if i < 0 || len(stem)-(i+2) != 3 {
		return false
	}
	for _, c := range stem[i+2:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
