package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/internal/units"
	"github.com/vmfs/vmfs/internal/view"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "describe the source VM, its disks and what a translation would change",
		ArgsUsage: "SRC",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "machine-readable output"},
			&cli.StringSliceFlag{Name: "allow-path", Usage: "let disk references reach files under DIR (repeatable)"},
			allowDeviceFlag(),
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "SRC"); err != nil {
				return err
			}
			devs, err := allowDevices(c)
			if err != nil {
				return err
			}
			return runInspect(inspectOptions{
				src:  c.Args().Get(0),
				env:  &layouts.Env{AllowDirs: c.StringSlice("allow-path"), AllowDevices: devs},
				json: c.Bool("json"),
			})
		},
	}
}

// inspectOptions are the command line of inspect, parsed.
type inspectOptions struct {
	src  string
	env  *layouts.Env
	json bool
}

func runInspect(o inspectOptions) error {
	m, disks, err := session.Inspect(o.src, o.env)
	if err != nil {
		return err
	}
	if o.json {
		return printInspectJSON(os.Stdout, m, disks)
	}
	printInspect(os.Stdout, m, disks)
	return nil
}

// inspectJSON is inspect's --json document: the machine's keys, then the
// disks as opened.
type inspectJSON struct {
	SchemaVersion int `json:"schema_version"`
	*translate.Machine
	DiskInfo []view.DiskInfo `json:"disk_info"`
}

func printInspectJSON(w io.Writer, m *translate.Machine, disks []view.DiskInfo) error {
	return writeJSON(w, inspectJSON{SchemaVersion: schemaVersion, Machine: jsonMachine(m), DiskInfo: nonNil(disks)})
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
		if table == "" {
			table = "-"
		}
		bus := fmt.Sprintf("%s:%d:%d", d.Bus, d.ControllerIndex, d.Unit)
		if d.Controller != "" {
			bus += " " + d.Controller
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", i, bus,
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
