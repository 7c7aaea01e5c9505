// Package targets lists the descriptor generators that --to names: one
// line per target, in the order the --to help shows them. Everything else
// vmfs knows of a target (its default format, file names, options, the
// group a mount lets in) is asked of the listed value.
package targets

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/hyperv"
	"github.com/vmfs/vmfs/translate/kubevirt"
	"github.com/vmfs/vmfs/translate/libvirt"
	"github.com/vmfs/vmfs/translate/ovf"
	"github.com/vmfs/vmfs/translate/proxmox"
	"github.com/vmfs/vmfs/translate/qemu"
	"github.com/vmfs/vmfs/translate/vbox"
	"github.com/vmfs/vmfs/translate/vmx"
)

// all holds one entry per target; adding a target is its package and one
// line here. Nothing writes it: All hands out copies.
var all = [...]translate.Target{
	libvirt.Target{},
	qemu.Target{},
	vmx.Target{},
	vbox.Target{},
	ovf.Target{},
	hyperv.Target{},
	proxmox.Target{},
	kubevirt.Target{},
}

// All lists the targets in the order of the --to help.
func All() []translate.Target { return append([]translate.Target(nil), all[:]...) }

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

// Help is the usage of the --to flag.
func Help() string {
	names := make([]string, len(all))
	for i, t := range all {
		names[i] = t.Name()
	}
	return "target: " + strings.Join(names, ", ")
}

// Table is the README's table of targets, in Markdown.
func Table() string {
	var b strings.Builder
	b.WriteString("| `--to` | writes | descriptor files | disk files | default disk format | options it acts on | group a mount lets in |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	m := &translate.Machine{Name: "NAME"}
	for _, t := range all {
		var descs []string
		for _, d := range t.Descriptors() {
			descs = append(descs, "`NAME"+d+"`")
		}
		var opts []string
		for _, o := range translate.Takes(t.Caps()) {
			opts = append(opts, "`--"+string(o)+"`")
		}
		group := "-"
		if g := t.Group(); g != "" {
			group = "`" + g + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | `%s.FORMAT`, `%s.FORMAT` … | %s | %s | %s |\n",
			t.Name(), t.Usage(), strings.Join(descs, ", "), t.DiskName(m, 0), t.DiskName(m, 1),
			t.DefaultFormat(), orDash(strings.Join(opts, ", ")), group)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
