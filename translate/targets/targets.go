// Package targets lists the descriptor generators that --to names.
package targets

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/hyperv"
	"github.com/vmfs/vmfs/translate/libvirt"
	"github.com/vmfs/vmfs/translate/ovf"
	"github.com/vmfs/vmfs/translate/qemu"
	"github.com/vmfs/vmfs/translate/vbox"
	"github.com/vmfs/vmfs/translate/vmx"
)

// all holds one entry per target. Other targets (ovf, vbox ...) add their
// line here.
var all = []translate.Target{
	hyperv.Target{},
	libvirt.Target{},
	ovf.Target{},
	qemu.Target{},
	vbox.Target{},
	vmx.Target{},
}

// Get returns the target named name ("libvirt", "qemu", "vmware" ...).
func Get(name string) (translate.Target, error) {
	for _, t := range all {
		if strings.EqualFold(t.Name(), name) {
			return t, nil
		}
	}
	return nil, fmt.Errorf("unknown target %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Names lists the target names, sorted.
func Names() []string {
	out := make([]string, 0, len(all))
	for _, t := range all {
		out = append(out, t.Name())
	}
	sort.Strings(out)
	return out
}
