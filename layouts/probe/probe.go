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
	"github.com/vmfs/vmfs/layouts/formats"
)

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

// OpenFile probes f, an already opened file, with the formats of
// layouts/formats in their order. Before the fallback (raw), files of a
// kind vmfs knows but does not read are refused, and so are files whose
// name claims a format that did not recognize them.
func OpenFile(f layouts.File, env *layouts.Env) (layouts.Disk, error) {
	env = withOpener(env)
	all := formats.All()
	for _, ft := range all {
		if ft.Fallback {
			if err := refuseKnown(f); !errors.Is(err, layouts.ErrWrongType) {
				return nil, err
			}
			if err := refuseNamed(f, all); err != nil {
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
				return nil, tooSmall(f.Name(), ft, size)
			}
			return d, nil
		}
		if !errors.Is(err, layouts.ErrWrongType) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: unknown disk format", f.Name())
}

func tooSmall(name string, format layouts.Format, size int64) error {
	if format.Fallback {
		return fmt.Errorf("%s: %d bytes, smaller than one %d-byte sector: not a disk: %w", name, size, SectorSize, layouts.ErrFormat)
	}
	return fmt.Errorf("%s: %s disk of %d bytes, smaller than one %d-byte sector: not a disk: %w", name, format.Name, size, SectorSize, layouts.ErrFormat)
}

// refuseNamed refuses f, which none of formats recognized, when its name
// says it is of one of them: a file that claims a format it does not hold
// is a corrupt image of it. Block devices are raw whatever their name.
func refuseNamed(f layouts.File, all []layouts.Format) error {
	if o, ok := layouts.OSFile(f); ok {
		if st, err := o.Stat(); err == nil && st.Mode()&os.ModeDevice != 0 {
			return nil
		}
	}
	for _, ft := range all {
		if ft.ClaimsName(f.Name()) {
			return fmt.Errorf("%s: not a %s image (no %s found): refusing to serve it as raw: %w",
				f.Name(), strings.ToUpper(ft.Name), ft.Signature, layouts.ErrFormat)
		}
	}
	return nil
}

func withOpener(env *layouts.Env) *layouts.Env { return formats.Env(env, Open) }
