package vhd

import (
	"fmt"

	"github.com/vmfs/vmfs/layouts"
)

// Format describes VHD to the rest of vmfs (see layouts/formats). QEMU
// calls it vpc, after Virtual PC.
var Format = layouts.Format{
	Name:       Type,
	QEMUNames:  []string{"vpc"},
	Suffixes:   []string{".vhd", ".avhd"},
	Signature:  "conectix footer",
	Open:       Open,
	Synthesize: synthesize,
	Subformats: []string{"dynamic", "fixed"},
	OVFURI:     "http://go.microsoft.com/fwlink/?LinkId=137171",
}

func synthesize(src layouts.Disk, base string, opts layouts.SynthOptions) ([]layouts.TargetFile, error) {
	synth := SynthesizeDynamic
	switch opts.Subformat {
	case "", "dynamic":
	case "fixed":
		synth = SynthesizeFixed
	default:
		return nil, fmt.Errorf("vhd variant %q is not supported: %w", opts.Subformat, layouts.ErrUnsupported)
	}
	return layouts.OneFile(Type, synth)(src, base, opts)
}
