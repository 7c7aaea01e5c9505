package raw

import "github.com/vmfs/vmfs/layouts"

// Format describes raw images to the rest of vmfs (see layouts/formats):
// any file opens as raw, so probing tries it last. QEMU's "file" backing
// format names a raw file too.
var Format = layouts.Format{
	Name:      Type,
	QEMUNames: []string{"raw", "file"},
	Fallback:  true,
	Open:      Open,
	Synthesize: func(src layouts.Disk, _ string, _ layouts.SynthOptions) ([]layouts.TargetFile, error) {
		return []layouts.TargetFile{{Suffix: ".raw", Content: layouts.Section(Type, src), Primary: true}}, nil
	},
}
