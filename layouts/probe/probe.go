// Package probe opens a disk image of any supported format, trying each
// format in turn while it answers layouts.ErrWrongType, raw last.
//
// Raw is a fallback for files whose name does not say otherwise: a file
// named as a format (disk.vmdk, disk.qcow2 ...) that holds none of that
// format's structures is refused, not served as a raw disk. A disk smaller
// than one sector is refused whatever its format.
package probe

import (
	"errors"
	"fmt"
	"os"
	"strings"

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
	// ClaimsName says whether a file of that name must be of this format,
	// and Signature names what Open looks for: a claimed file that Open
	// does not recognize is refused rather than served as raw.
	ClaimsName func(name string) bool
	Signature  string
}

// Formats are tried in order; raw always matches and comes last.
var Formats = []Format{
	{Name: qcow2.Type, Open: qcow2.Open, ClaimsName: qcow2.ClaimsName, Signature: qcow2.Signature},
	{Name: vdi.Type, Open: vdi.Open, ClaimsName: vdi.ClaimsName, Signature: vdi.Signature},
	{Name: vmdk.Type, Open: vmdk.Open, ClaimsName: vmdk.ClaimsName, Signature: vmdk.Signature},
	{Name: vhdx.Type, Open: vhdx.Open, ClaimsName: vhdx.ClaimsName, Signature: vhdx.Signature},
	// Footer at the end only: just before raw.
	{Name: vhd.Type, Open: vhd.Open, ClaimsName: vhd.ClaimsName, Signature: vhd.Signature},
	{Name: "unsupported", Open: refuseKnown},
	// Last, for files refuseNamed lets through.
	{Name: raw.Type, Open: raw.Open},
}

// SectorSize is the smallest disk: a file shorter than one sector is not a
// disk, and a disk whose size is not a multiple of it gets a warning.
const SectorSize = 512

// WarnPartialSector is the stable code of the warning SizeWarning gives.
const WarnPartialSector = "DISK_PARTIAL_SECTOR"

// SizeWarning says, for a disk whose size is not a multiple of SectorSize,
// what its user should know; ok is false for other disks.
func SizeWarning(d layouts.Disk) (code, message string, ok bool) {
	rest := d.Size() % SectorSize
	if rest == 0 {
		return "", "", false
	}
	return WarnPartialSector, fmt.Sprintf("size %d bytes is not a multiple of %d: its last sector holds only %d bytes, which guests may not read",
		d.Size(), SectorSize, rest), true
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
		if ft.Name == raw.Type {
			if err := refuseNamed(f, Formats); err != nil {
				return nil, err
			}
		}
		d, err := ft.Open(f, env)
		if err == nil {
			if d.Size() < SectorSize {
				// The disk owns f now: closing it closes f, and closing
				// f again after this error does no harm.
				size := d.Size()
				d.Close()
				return nil, tooSmall(f.Name(), d.Format(), size)
			}
			return d, nil
		}
		if !errors.Is(err, layouts.ErrWrongType) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: unknown disk format", f.Name())
}

func tooSmall(name, format string, size int64) error {
	if format == raw.Type {
		return fmt.Errorf("%s: %d bytes, smaller than one %d-byte sector: not a disk: %w", name, size, SectorSize, layouts.ErrFormat)
	}
	return fmt.Errorf("%s: %s disk of %d bytes, smaller than one %d-byte sector: not a disk: %w", name, format, size, SectorSize, layouts.ErrFormat)
}

// refuseNamed refuses f, which none of formats recognized, when its name
// says it is of one of them: a file that claims a format it does not hold
// is a corrupt image of it. Block devices are raw whatever their name.
func refuseNamed(f layouts.File, formats []Format) error {
	if o, ok := layouts.OSFile(f); ok {
		if st, err := o.Stat(); err == nil && st.Mode()&os.ModeDevice != 0 {
			return nil
		}
	}
	for _, ft := range formats {
		if ft.ClaimsName != nil && ft.ClaimsName(f.Name()) {
			return fmt.Errorf("%s: not a %s image (no %s found): refusing to serve it as raw: %w",
				f.Name(), strings.ToUpper(ft.Name), ft.Signature, layouts.ErrFormat)
		}
	}
	return nil
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
