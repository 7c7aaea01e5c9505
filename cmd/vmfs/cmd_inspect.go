package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
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

type inspectJSON struct {
	*translate.Machine
	DiskInfo []view.DiskInfo `json:"disk_info"`
}

func printInspectJSON(w io.Writer, m *translate.Machine, disks []view.DiskInfo) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if m.Warnings == nil {
		m.Warnings = []translate.Warning{}
	}
	return enc.Encode(inspectJSON{Machine: m, DiskInfo: disks})
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
		fmt.Fprintf(tw, "%d\t%s:%d:%d %s\t%s\t%s\t%s\t%s\t%s\n", i, d.Bus, d.ControllerIndex, d.Unit, d.Controller,
			info.Format, units.Bytes(info.VirtualSize), units.Bytes(info.Allocated), table, d.Path)
	}
	tw.Flush()
	for _, cd := range m.CDROMs {
		img := cd.Path
		if img == "" {
			img = "(empty)"
		}
		fmt.Fprintf(w, "cdrom:     %s:%d:%d %s\n", cd.Bus, cd.ControllerIndex, cd.Unit, img)
	}
	for _, n := range m.NICs {
		fmt.Fprintf(w, "nic:       %s mac=%s network=%s (%s)\n", n.Model, n.MAC, n.Network, n.Type)
	}
	for _, wr := range m.Warnings {
		fmt.Fprintf(w, "warning:   %s\n", wr)
	}
}
