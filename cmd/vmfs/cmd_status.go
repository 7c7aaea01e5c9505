package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/units"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Aliases:   []string{"list"},
		Usage:     "list vmfs mounts: source, target, overlay, state",
		ArgsUsage: "[MOUNTPOINT]",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "machine-readable output"}},
		Action: func(c *cli.Context) error {
			o := statusOptions{json: c.Bool("json")}
			if c.NArg() == 1 {
				o.mountpoint = c.Args().Get(0)
			}
			return runStatus(o)
		},
	}
}

// statusOptions are the command line of status, parsed.
type statusOptions struct {
	mountpoint string // "": every mount
	json       bool
}

func runStatus(o statusOptions) error {
	all, err := mount.List()
	if err != nil {
		return err
	}
	if o.mountpoint != "" {
		s, ok := mount.Lookup(o.mountpoint)
		if !ok {
			return fmt.Errorf("%s: no vmfs mount recorded there", o.mountpoint)
		}
		all = []mount.Status{s}
	}
	if o.json {
		return writeJSON(os.Stdout, statusJSON{SchemaVersion: schemaVersion, Mounts: nonNil(all)})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MOUNTPOINT\tSTATE\tTARGET\tFORMAT\tSOURCE\tOVERLAY\tHOLDS")
	for _, s := range all {
		state := "serving"
		switch {
		case !s.Alive && s.Mounted:
			state = "stale (vmfs unmount cleans it)"
		case !s.Alive:
			state = "gone"
		case s.ReadOnly:
			state = "serving, read-only"
		}
		ov, holds := s.Overlay, "-"
		if ov == "" {
			ov = "-"
		} else {
			holds = units.Bytes(s.OverlayBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Mountpoint, state, s.Target, s.Format, s.Source, ov, holds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range all {
		if s.Remote != nil {
			fmt.Printf("%s: remote source %s: %s\n", s.Mountpoint, s.Source, remoteStatsLine(*s.Remote))
		}
	}
	return nil
}

// statusJSON is status's --json document.
type statusJSON struct {
	SchemaVersion int            `json:"schema_version"`
	Mounts        []mount.Status `json:"mounts"`
}
