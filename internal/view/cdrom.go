package view

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
)

// WarnCDROMRefused: an ISO image a descriptor names is outside what the
// path policy lets a source reach (or a device not allowed): the drive is
// left empty rather than handing the file to the target's hypervisor.
const WarnCDROMRefused = "SOURCE_CDROM_REFUSED"

// policeCDROMs holds the images of m's CD-ROMs to the path policy its
// disks are held to: a descriptor that names its ISO by a path must not
// make the generated VM read a host file (a hostile .vmx naming
// /etc/shadow as an ISO, or a host disk). Descriptors whose disks the
// policy confines to the VM's directory (vmx, vbox, ovf) confine their
// ISOs the same way; every source is held to the device policy. A refused
// image leaves its drive empty, with a warning. An image that is missing
// is the parsers' business (they warn and leave the drive empty).
func policeCDROMs(m *translate.Machine, env *layouts.Env) {
	for i := range m.CDROMs {
		c := &m.CDROMs[i]
		if c.Path == "" {
			continue
		}
		p, err := filepath.Abs(c.Path)
		if err != nil {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			continue // missing: left as the parser decided
		}
		var reason error
		switch m.SourceFormat {
		case "vmx", "vbox", "ovf":
			_, reason = env.Resolve(m.Source, p)
		default:
			if st.Mode()&os.ModeDevice != 0 || !st.Mode().IsRegular() {
				_, reason = env.Resolve(p, p)
			}
		}
		if reason == nil || !errors.Is(reason, layouts.ErrRefused) {
			continue
		}
		msg := strings.TrimSuffix(reason.Error(), ": "+layouts.ErrRefused.Error())
		m.Warn(WarnCDROMRefused, "CD-ROM %d: %s: the drive is left empty", i, msg)
		c.Path = ""
	}
}
