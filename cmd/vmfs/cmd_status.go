package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/mount"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Aliases:   []string{"list"},
		Usage:     "list vmfs mounts: source, target, overlay, state",
		ArgsUsage: "[MOUNTPOINT]",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "machine-readable output"}},
		Action: func(c *cli.Context) error {
			all, err := mount.List()
			if err != nil {
				return err
			}
			if c.NArg() == 1 {
				s, ok := mount.Lookup(c.Args().Get(0))
				if !ok {
					return fmt.Errorf("%s: no vmfs mount recorded there", c.Args().Get(0))
				}
				all = []mount.Status{s}
			}
			if c.Bool("json") {
				if all == nil {
					all = []mount.Status{}
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(all)
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
					holds = human(s.OverlayBytes)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Mountpoint, state, s.Target, s.Format, s.Source, ov, holds)
			}
			return tw.Flush()
		},
	}
}
