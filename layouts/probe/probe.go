// Package probe opens a disk image of any supported format, trying each
// format in turn while it answers layouts.ErrWrongType, raw last.
package probe

import (
	"errors"
	"fmt"
	"os"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/qcow2"
	"github.com/vmfs/vmfs/layouts/raw"
	"github.com/vmfs/vmfs/layouts/vdi"
	"github.com/vmfs/vmfs/layouts/vhd"
	"github.com/vmfs/vmfs/layouts/vhdx"
	"github.com/vmfs/vmfs/layouts/vmdk"
)

// Format is one source layout that probing knows.
type Format struct {
	Name string
	// Open opens f as this format. It returns an error wrapping
	// layouts.ErrWrongType, and nothing else, when f is not of the format.
	// On success the disk owns f; on error f stays open for the next try.
	Open func(f layouts.File, env *layouts.Env) (layouts.Disk, error)
}

// Formats are tried in order; raw always matches and comes last.
var Formats = []Format{
	{Name: qcow2.Type, Open: qcow2.Open},
	{Name: vdi.Type, Open: vdi.Open},
	{Name: vmdk.Type, Open: vmdk.Open},
	{Name: vhdx.Type, Open: vhdx.Open},
	{Name: vhd.Type, Open: vhd.Open}, // footer at the end only: just before raw
	{Name: "unsupported", Open: refuseKnown},
	{Name: raw.Type, Open: raw.Open},
}

// Open opens path read-only and probes its format. path and the references
// inside it are opened under env's policy, and recorded in env.Sources (a
// nil env allows the file's own directory only, and no device).
func Open(path string, env *layouts.Env) (layouts.Disk, error) {
	env = withOpener(env)
	f, err := env.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: disk file is missing", path)
		}
		return nil, err
	}
	d, err := OpenFile(f, env)
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

// OpenFile probes f, an already opened file.
func OpenFile(f layouts.File, env *layouts.Env) (layouts.Disk, error) {
	env = withOpener(env)
	for _, ft := range Formats {
		d, err := ft.Open(f, env)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, layouts.ErrWrongType) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: unknown disk format", f.Name())
}

func withOpener(env *layouts.Env) *layouts.Env {
	if env == nil {
		env = &layouts.Env{}
	}
	if env.OpenDisk == nil {
		e := *env
		e.OpenDisk = Open
		env = &e
	}
	return env
}
