package vdi

import "github.com/vmfs/vmfs/layouts"

// Format describes VDI to the rest of vmfs (see layouts/formats).
var Format = layouts.Format{
	Name:       Type,
	QEMUNames:  []string{"vdi"},
	Suffixes:   []string{".vdi"},
	Signature:  "VDI signature",
	Open:       Open,
	Synthesize: layouts.OneFile(Type, Synthesize),
	Identity:   identity,
	OVFURI:     "http://www.virtualbox.org/manual/ch12.html#vdi",
}

// identity is the UUID in the header of a VDI image, which a .vbox names
// the image by.
func identity(img layouts.Disk) (string, bool) {
	u, err := ImageUUID(img)
	return u, err == nil
}
