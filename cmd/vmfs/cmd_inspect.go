package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/internal/units"
	"github.com/vmfs/vmfs/internal/view"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/targets"
)

func inspectCommand() *cli.Command {
	var flags []cli.Flag
	for _, f := range translateFlags() {
		if slices.Contains(f.Names(), "to") {
			// No default: without --to, inspect shows the source only.
			f = &cli.StringFlag{Name: "to", Usage: targets.Help() + " to preview (default: none, the source alone)"}
		}
		flags = append(flags, f)
	}
	return &cli.Command{
		Name:      "inspect",
		Usage:     "describe the source VM, its disks, the pre-flight report and (--to) what a translation would give",
		ArgsUsage: "SRC",
		Flags: append(flags,
			&cli.BoolFlag{Name: "json", Usage: "machine-readable output"},
			&cli.StringFlag{Name: "dest", Usage: "preview materialize into DIR: files as written there, disks' data compared with its free space (default: preview a mount)"},
		),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "SRC"); err != nil {
				return err
			}
			if c.String("to") == "" {
				for _, f := range []string{"format", "subformat", "devices", "network-map", "domain-type", "network-fallback"} {
					if c.IsSet(f) {
						return usagef("--%s previews a translation: give --to too", f)
					}
				}
			}
			so, err := sessionOptions(c)
			if err != nil {
				return err
			}
			dest := c.String("dest")
			if dest != "" {
				if dest, err = filepath.Abs(dest); err != nil {
					return err
				}
				if st, err := os.Stat(dest); err != nil || !st.IsDir() {
					return usagef("--dest %s: not a directory", c.String("dest"))
				}
			}
			return runInspect(c.Context, inspectOptions{src: c.Args().Get(0), session: so, dest: dest, json: c.Bool("json")})
		},
	}
}

// inspectOptions are the command line of inspect, parsed.
type inspectOptions struct {
	src string
	// session: the translation flags; its To is "" without --to.
	session session.Options
	// dest: preview materialize into this directory ("": a mount).
	dest string
	json bool
}

func runInspect(ctx context.Context, o inspectOptions) error {
	in, err := session.InspectRemote(o.src, o.session.Env, o.dest, o.session.Remote)
	if err != nil {
		return err
	}
	var pv *preview
	if o.session.To != "" {
		if pv, err = previewTarget(ctx, o); err != nil {
			return err
		}
		// The warnings are the translation's: the source's, the
		// pre-flight report and the mapping's, as a mount prints them.
		in.Machine.Warnings = pv.warnings
	}
	if o.json {
		return printInspectJSON(os.Stdout, in, pv)
	}
	printInspect(os.Stdout, in.Machine, in.Disks)
	printPreview(os.Stdout, in, pv)
	return nil
}

// preview is what --to shows: the files the target gets.
type preview struct {
	To       string          `json:"to"`
	Format   string          `json:"format"`
	Dir      string          `json:"dir"`
	Firmware string          `json:"firmware"`
	Files    []previewFile   `json:"files"`
	Mapping  *previewMapping `json:"mapping"`
	warnings []translate.Warning
}

// previewMapping is the hardware the mapping gave the target.
type previewMapping struct {
	Devices     string         `json:"devices"`
	DomainType  string         `json:"domain_type,omitempty"`
	MachineType string         `json:"machine_type,omitempty"`
	Video       string         `json:"video,omitempty"`
	Drives      []previewDrive `json:"drives"`
	Controllers []previewCtl   `json:"controllers"`
	NICs        []previewNIC   `json:"nics"`
}

type previewDrive struct {
	Kind       string `json:"kind"` // "disk" or "cdrom"
	Index      int    `json:"index"`
	Bus        string `json:"bus"`
	Model      string `json:"model,omitempty"`
	Dev        string `json:"dev,omitempty"`
	Controller int    `json:"controller"`
	Unit       int    `json:"unit"`
	Path       string `json:"path,omitempty"`
	Omitted    bool   `json:"omitted,omitempty"`
}

type previewCtl struct {
	Bus   string `json:"bus"`
	Index int    `json:"index"`
	Model string `json:"model,omitempty"`
}

type previewNIC struct {
	Model   string `json:"model,omitempty"`
	Network string `json:"network,omitempty"`
	User    bool   `json:"user_mode,omitempty"`
	Omitted bool   `json:"omitted,omitempty"`
}

// mappingOf is what translate.Map decides for v, as the target's Emit
// decided it (Map is deterministic: same machine, disks, options, caps).
func mappingOf(v *view.View, opts translate.Options) (*previewMapping, error) {
	mp, err := translate.Map(v.Machine, v.TargetDisks, opts, v.Target.Caps())
	if err != nil {
		return nil, err
	}
	pm := &previewMapping{Devices: mp.Devices, DomainType: mp.DomainType, MachineType: mp.Machine, Video: mp.Video,
		Drives: []previewDrive{}, Controllers: []previewCtl{}, NICs: []previewNIC{}}
	for _, d := range mp.Drives {
		kind := "disk"
		if d.CDROM {
			kind = "cdrom"
		}
		pm.Drives = append(pm.Drives, previewDrive{Kind: kind, Index: d.Index, Bus: string(d.Bus), Model: d.Model, Dev: d.Dev,
			Controller: d.Controller, Unit: d.Unit, Path: d.Path, Omitted: d.Omit})
	}
	for _, c := range mp.Controllers {
		pm.Controllers = append(pm.Controllers, previewCtl{Bus: string(c.Bus), Index: c.Index, Model: c.Model})
	}
	for _, n := range mp.NICs {
		pm.NICs = append(pm.NICs, previewNIC{Model: n.Model, Network: n.Network, User: n.User, Omitted: n.Omit})
	}
	return pm, nil
}

type previewFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Format is the disk image's format; "" for a descriptor.
	Format string `json:"format,omitempty"`
}

// previewTarget builds the view a mount (or, with a destination, a
// materialize) of the same options builds, through the session, and
// closes it without serving it.
func previewTarget(ctx context.Context, o inspectOptions) (*preview, error) {
	so := o.session
	mount := o.dest == ""
	so.Dir = o.dest
	if mount {
		// A mount's files are named from its mountpoint; none is given.
		so.Dir = "/MOUNTPOINT"
	} else {
		so.SpaceDir = o.dest
	}
	so.Translate.Host = hostFacts(ctx, so, mount)
	s, err := session.Open(o.src, so)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	v := s.View
	pv := &preview{To: so.To, Format: v.Format, Dir: so.Dir, Firmware: string(v.Machine.Firmware), Files: []previewFile{}, warnings: slices.Clone(v.Warnings)}
	for _, f := range s.Files() {
		pf := previewFile{Name: f.Name, Size: f.Content.Size()}
		if f.Disk {
			pf.Format = v.Format
		}
		pv.Files = append(pv.Files, pf)
	}
	if pv.warnings == nil {
		pv.warnings = []translate.Warning{}
	}
	if pv.Mapping, err = mappingOf(v, so.Translate); err != nil {
		return nil, err
	}
	return pv, nil
}

// inspectJSON is inspect's --json document: the machine's keys, then the
// disks as opened.
type inspectJSON struct {
	SchemaVersion int `json:"schema_version"`
	*translate.Machine
	DiskInfo []view.DiskInfo         `json:"disk_info"`
	Missing  []translate.MissingDisk `json:"missing"`
	Target   *preview                `json:"target,omitempty"`
}

func printInspectJSON(w io.Writer, in *session.Inspection, pv *preview) error {
	return writeJSON(w, inspectJSON{SchemaVersion: schemaVersion, Machine: jsonMachine(in.Machine),
		DiskInfo: nonNil(in.Disks), Missing: nonNil(in.Missing), Target: pv})
}

// printPreview prints what is missing and, with --to, the target's files.
func printPreview(w io.Writer, in *session.Inspection, pv *preview) {
	for _, d := range in.Missing {
		fmt.Fprintf(w, "missing:   disk %d on %s: %s\n", d.Index, d.Where, d.Path)
	}
	if pv == nil {
		return
	}
	fmt.Fprintf(w, "\ntarget:    %s (%s disks, %s firmware) in %s\n", pv.To, pv.Format, orUnknown(pv.Firmware), pv.Dir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tSIZE\tFORMAT")
	for _, f := range pv.Files {
		format := f.Format
		if format == "" {
			format = "descriptor"
			if strings.HasSuffix(f.Name, ".warnings.txt") {
				format = "warnings"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, units.Bytes(f.Size), format)
	}
	tw.Flush()
	mp := pv.Mapping
	machine := strings.TrimSpace(mp.DomainType + " " + mp.MachineType)
	if machine != "" {
		fmt.Fprintf(w, "machine:   %s, devices %s\n", machine, mp.Devices)
	} else {
		fmt.Fprintf(w, "devices:   %s\n", mp.Devices)
	}
	for _, c := range mp.Controllers {
		fmt.Fprintln(w, strings.TrimSpace(fmt.Sprintf("controller: %s%d %s", c.Bus, c.Index, c.Model)))
	}
	for _, d := range mp.Drives {
		where := fmt.Sprintf("%s:%d:%d", d.Bus, d.Controller, d.Unit)
		if d.Dev != "" {
			where += " (" + d.Dev + ")"
		}
		if d.Omitted {
			where = "left out"
		}
		fmt.Fprintln(w, strings.TrimSpace(fmt.Sprintf("%-10s %d on %s %s", d.Kind+":", d.Index, where, d.Model)))
	}
	for i, n := range mp.NICs {
		switch {
		case n.Omitted:
			fmt.Fprintf(w, "nic:       %d left out\n", i)
		case n.User:
			fmt.Fprintf(w, "nic:       %d %s on user-mode networking\n", i, n.Model)
		case n.Network != "":
			fmt.Fprintf(w, "nic:       %d %s on network %s\n", i, n.Model, n.Network)
		default:
			fmt.Fprintln(w, strings.TrimSpace(fmt.Sprintf("nic:       %d %s", i, n.Model)))
		}
	}
}

// spaceDir is the directory whose free space the pre-flight report
// compares the disks with, for a materialize into dest: dest when it is
// a directory, its parent when dest is yet to be made, "" for a device.
func spaceDir(dest string) string {
	st, err := os.Stat(dest)
	switch {
	case err == nil && st.IsDir():
		return dest
	case errors.Is(err, fs.ErrNotExist):
		return filepath.Dir(dest)
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// jsonMachine is a copy of m whose lists are empty, not nil: JSON shows
// [] where there is nothing, never null.
func jsonMachine(m *translate.Machine) *translate.Machine {
	c := *m
	c.Disks, c.CDROMs, c.NICs = nonNil(c.Disks), nonNil(c.CDROMs), nonNil(c.NICs)
	c.Serials, c.Warnings = nonNil(c.Serials), nonNil(c.Warnings)
	return &c
}

// nonNil is s, or an empty slice when s is nil.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func printInspect(w io.Writer, m *translate.Machine, disks []view.DiskInfo) {
	fmt.Fprintf(w, "name:      %s\n", m.Name)
	fmt.Fprintf(w, "source:    %s (%s)\n", m.Source, m.SourceFormat)
	if m.UUID != "" {
		fmt.Fprintf(w, "uuid:      %s\n", m.UUID)
	}
	cpus := fmt.Sprintf("%d", m.CPUs)
	if m.CoresPerSocket > 0 {
		cpus += fmt.Sprintf(" (%d cores per socket)", m.CoresPerSocket)
	}
	fmt.Fprintf(w, "cpus:      %s\n", cpus)
	fmt.Fprintf(w, "memory:    %d MiB\n", m.MemoryMiB)
	fw := string(m.Firmware)
	if fw == "" {
		fw = "unknown"
	}
	if m.SecureBoot {
		fw += " (secure boot)"
	}
	fmt.Fprintf(w, "firmware:  %s\n", fw)
	if m.GuestOS != "" {
		fmt.Fprintf(w, "guest os:  %s\n", m.GuestOS)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nDISK\tBUS\tFORMAT\tVIRTUAL\tALLOCATED\tTABLE\tFILE")
	for i, d := range m.Disks {
		info := disks[i]
		table := info.Boot.Table
		if info.Boot.HasESP {
			table += "+esp"
		}
		if info.Missing {
			fmt.Fprintf(tw, "%d\t%s\tmissing\t-\t-\t-\t%s\n", i, busText(d), d.Path)
			continue
		}
		if table == "" {
			table = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", i, busText(d),
			info.Format, units.Bytes(info.VirtualSize), units.Bytes(info.Allocated), table, d.Path)
	}
	tw.Flush()
	for i, info := range disks {
		if len(info.Chain) > 1 {
			fmt.Fprintf(w, "chain:     disk %d: %s\n", i, chainText(info.Chain))
		}
	}
	for _, cd := range m.CDROMs {
		img := cd.Path
		if img == "" {
			img = "(empty)"
		}
		fmt.Fprintf(w, "cdrom:     %s:%d:%d %s\n", cd.Bus, cd.ControllerIndex, cd.Unit, img)
	}
	for _, n := range m.NICs {
		fmt.Fprintf(w, "nic:       %s\n", nicText(n))
	}
	for _, wr := range m.Warnings {
		fmt.Fprintf(w, "warning:   %s\n", wr)
	}
}

// busText is where a disk sits: "scsi:0:1 pvscsi", the controller only
// when the source states it.
func busText(d translate.Disk) string {
	bus := fmt.Sprintf("%s:%d:%d", d.Bus, d.ControllerIndex, d.Unit)
	if d.Controller != "" {
		bus += " " + d.Controller
	}
	return bus
}

// nicText describes n with the fields the source states, none empty:
// "e1000e mac=00:50:56:aa:bb:cc network=default (network)".
func nicText(n translate.NIC) string {
	var parts []string
	model := n.Model
	if model == "" {
		model = "(model not stated)"
	}
	parts = append(parts, model)
	if n.MAC != "" {
		parts = append(parts, "mac="+n.MAC)
	}
	if n.Network != "" {
		parts = append(parts, "network="+n.Network)
	}
	if n.Type != "" {
		parts = append(parts, "("+n.Type+")")
	}
	return strings.Join(parts, " ")
}

// chainText is a backing chain, newest first: "top.qcow2 (qcow2) <- base.vmdk (vmdk)".
func chainText(chain []layouts.Layer) string {
	parts := make([]string, len(chain))
	for i, l := range chain {
		parts[i] = fmt.Sprintf("%s (%s)", l.File, l.Format)
	}
	return strings.Join(parts, " <- ")
}
