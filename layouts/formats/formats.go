// Package formats is the registry of disk formats: the one list, in probe
// order, of the layouts.Format values the format packages export. Probing,
// target images, QEMU's and OVF's names of the formats, the command line's
// help and docs/formats.md read it. Adding a format is its package and one
// line in All.
package formats

import (
	"slices"
	"sort"
	"strings"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/qcow2"
	"github.com/vmfs/vmfs/layouts/raw"
	"github.com/vmfs/vmfs/layouts/vdi"
	"github.com/vmfs/vmfs/layouts/vhd"
	"github.com/vmfs/vmfs/layouts/vhdx"
	"github.com/vmfs/vmfs/layouts/vmdk"
)

// All lists the formats in the order probing tries them: those with a
// header first, VHD (a footer only) after them, and raw, which opens any
// file, last. Each call returns a new slice.
func All() []layouts.Format {
	return []layouts.Format{
		qcow2.Format,
		vdi.Format,
		vmdk.Format,
		vhdx.Format,
		vhd.Format,
		raw.Format,
	}
}

// ByName is the format vmfs calls name.
func ByName(name string) (layouts.Format, bool) {
	for _, f := range All() {
		if f.Name == name {
			return f, true
		}
	}
	return layouts.Format{}, false
}

// ByQEMUName is the format QEMU calls name ("vpc" for VHD).
func ByQEMUName(name string) (layouts.Format, bool) {
	for _, f := range All() {
		if slices.Contains(f.QEMUNames, name) {
			return f, true
		}
	}
	return layouts.Format{}, false
}

// Targets names the formats vmfs writes, sorted.
func Targets() []string {
	var out []string
	for _, f := range All() {
		if f.Synthesize != nil {
			out = append(out, f.Name)
		}
	}
	sort.Strings(out)
	return out
}

// Env returns env with the registry's openers filled in where env lacks
// them: open for parent disks, and the QEMU names of backing formats. A
// nil env gets the defaults.
func Env(env *layouts.Env, open func(path string, env *layouts.Env) (layouts.Disk, error)) *layouts.Env {
	if env != nil && env.OpenDisk != nil && env.FormatByQEMUName != nil {
		return env
	}
	e := layouts.Env{}
	if env != nil {
		e = *env
	}
	if e.OpenDisk == nil {
		e.OpenDisk = open
	}
	if e.FormatByQEMUName == nil {
		e.FormatByQEMUName = ByQEMUName
	}
	return &e
}

// SubformatHelp describes the variants of the formats that have some,
// for --subformat's help: "a|b (vmdk), c|d (vhd)".
func SubformatHelp() string {
	var parts []string
	for _, f := range All() {
		if len(f.Subformats) > 0 {
			parts = append(parts, strings.Join(f.Subformats, "|")+" ("+f.Name+")")
		}
	}
	return strings.Join(parts, ", ")
}
