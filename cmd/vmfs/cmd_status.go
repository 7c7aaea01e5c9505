package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/convert"
	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/servestat"
	"github.com/vmfs/vmfs/internal/units"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Aliases:   []string{"list"},
		Usage:     "list vmfs mounts (source, target, overlay, state) and running servers (clients, bytes served, errors)",
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
	var servers []servestat.Record
	if o.mountpoint == "" {
		if servers, err = servestat.List(); err != nil {
			return err
		}
	}
	entries := make([]statusEntry, len(all))
	for i, s := range all {
		entries[i].Status = s
		// A conversion is recorded in the overlay: it is there as long
		// as the writes are.
		entries[i].Converted, _ = convert.ReadMarker(s.Overlay)
	}
	if o.json {
		return writeJSON(os.Stdout, statusJSON{SchemaVersion: schemaVersion, Mounts: entries, Servers: nonNil(servers)})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MOUNTPOINT\tSTATE\tTARGET\tFORMAT\tSOURCE\tOVERLAY\tHOLDS")
	for _, e := range entries {
		s := e.Status
		state := "serving"
		switch {
		case !s.Alive && s.Mounted:
			state = "stale (vmfs unmount cleans it)"
		case !s.Alive:
			state = "gone"
		case s.ReadOnly:
			state = "serving, read-only"
		}
		if e.Converted != nil {
			state += ", converted"
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
		if len(s.Passthrough) > 0 && s.Alive {
			fmt.Printf("%s: served by FUSE passthrough: %s\n", s.Mountpoint, strings.Join(s.Passthrough, ", "))
		}
	}
	for _, s := range all {
		if s.Remote != nil {
			fmt.Printf("%s: remote source %s: %s\n", s.Mountpoint, s.Source, remoteStatsLine(*s.Remote))
		}
	}
	if len(servers) == 0 {
		return nil
	}
	fmt.Println()
	fmt.Fprintln(tw, "SERVER\tPID\tVMS\tCLIENTS\tCONNECTIONS\tSERVED\tWRITTEN\tERRORS\tREFUSED")
	for _, r := range servers {
		for _, l := range r.Serving {
			fmt.Fprintf(tw, "%s://%s\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%d\n", l.Protocol, l.Addr, r.PID, len(r.VMs),
				l.Clients, l.Connections, units.Bytes(l.BytesRead), units.Bytes(l.BytesWritten), l.Errors, l.Refused)
		}
	}
	return tw.Flush()
}

// statusJSON is status's --json document.
type statusJSON struct {
	SchemaVersion int           `json:"schema_version"`
	Mounts        []statusEntry `json:"mounts"`
	// Servers are the running `vmfs serve` processes.
	Servers []servestat.Record `json:"servers"`
}

// statusEntry is one mount and, when its overlay holds one, the
// conversion vmfs convert made.
type statusEntry struct {
	mount.Status
	Converted *convert.Marker `json:"converted,omitempty"`
}
