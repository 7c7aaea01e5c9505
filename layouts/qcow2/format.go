package qcow2

import "github.com/vmfs/vmfs/layouts"

// Format describes QCOW2 to the rest of vmfs (see layouts/formats).
var Format = layouts.Format{
	Name:       Type,
	QEMUNames:  []string{"qcow2"},
	Suffixes:   []string{".qcow2"},
	Signature:  "QFI magic",
	Open:       Open,
	Synthesize: layouts.OneFile(Type, Synthesize),
	OVFURI:     "http://www.gnome.org/~markmc/qcow-image-format.html",
}
