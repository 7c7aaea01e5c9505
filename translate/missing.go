package translate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmfs/vmfs/layouts"
)

// WarnDiskMissing: a disk the descriptor names is not there (inspect
// shows the machine anyway; mount and materialize refuse it).
const WarnDiskMissing = "SOURCE_DISK_MISSING"

// MissingDisk is a disk of a machine whose file is not there.
type MissingDisk struct {
	Index int    `json:"index"`
	Path  string `json:"path"`
	Where string `json:"where"` // "scsi0:0"
}

// MissingDisks are the disks of m, read from files (not from an archive),
// whose file does not exist. Other errors (a permission denied) are the
// opening's to report.
func MissingDisks(m *Machine) []MissingDisk { return MissingDisksIn(m, nil) }

// MissingDisksIn is MissingDisks among env's files (a remote source's
// are looked for in its remote tree).
func MissingDisksIn(m *Machine, env *layouts.Env) []MissingDisk {
	var out []MissingDisk
	for i, d := range m.Disks {
		if d.Open != nil {
			continue
		}
		if _, err := env.Stat(d.Path); err != nil && errors.Is(err, os.ErrNotExist) {
			out = append(out, MissingDisk{Index: i, Path: d.Path, Where: fmt.Sprintf("%s%d:%d", d.Bus, d.ControllerIndex, d.Unit)})
		}
	}
	return out
}

// CheckDisks returns an error naming the first disk of m whose file is
// missing or cannot be looked at: the one check of the parsers' disks,
// which mount and materialize make and inspect does not.
func CheckDisks(m *Machine) error { return CheckDisksIn(m, nil) }

// CheckDisksIn is CheckDisks among env's files.
func CheckDisksIn(m *Machine, env *layouts.Env) error {
	for _, d := range m.Disks {
		if d.Open != nil {
			continue
		}
		if _, err := env.Stat(d.Path); err != nil {
			name := m.relName(d.Path)
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s: %s: disk %s on %s%d:%d is missing", m.SourceFormat, m.Source, name, d.Bus, d.ControllerIndex, d.Unit)
			}
			return fmt.Errorf("%s: %s: disk %s: %w", m.SourceFormat, m.Source, name, err)
		}
	}
	return nil
}

// WarnMissing warns, on m, of each disk in missing.
func (m *Machine) WarnMissing(missing []MissingDisk) {
	for _, d := range missing {
		m.Warn(WarnDiskMissing, "disk %s on %s is missing: it is shown without its contents; mount and materialize refuse the machine", m.relName(d.Path), d.Where)
	}
}

// relName is p relative to the descriptor's directory when inside it.
func (m *Machine) relName(p string) string {
	if m.Source == "" {
		return p
	}
	rel, err := filepath.Rel(filepath.Dir(m.Source), p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return p
	}
	return rel
}
