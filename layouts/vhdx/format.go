package vhdx

import "github.com/vmfs/vmfs/layouts"

// Format describes VHDX to the rest of vmfs (see layouts/formats).
var Format = layouts.Format{
	Name:       Type,
	QEMUNames:  []string{"vhdx"},
	Suffixes:   []string{".vhdx", ".avhdx"},
	Signature:  "vhdxfile signature",
	Open:       Open,
	Synthesize: layouts.OneFile(Type, Synthesize),
}
