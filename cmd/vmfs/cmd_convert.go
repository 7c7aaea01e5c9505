package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/convert"
	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/units"
)

// convertOptions are the command line of convert, parsed.
type convertOptions struct {
	mountpoint string
	virtioWin  string
	out, errw  io.Writer
}

func convertCommand() *cli.Command {
	return &cli.Command{
		Name:  "convert",
		Usage: "make the guest of a writable --devices virtio mount ready for its devices, in the overlay (virt-v2v-in-place)",
		Description: "Runs virt-v2v-in-place against the mount's own libvirt descriptor, so every write\n" +
			"lands in the mount's overlay and the source stays as it was: drivers and initramfs\n" +
			"for virtio. A Linux guest's NICs keep the names its network\n" +
			"configuration uses (a systemd .link file per NIC, matching the MAC). The mount\n" +
			"is then shown as converted by vmfs status; mount --fresh discards the conversion.\n" +
			"Refused: a read-only mount, a running guest, a guest libguestfs cannot inspect,\n" +
			"Windows without --virtio-win.",
		ArgsUsage: "MOUNTPOINT",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "virtio-win", Usage: "the virtio-win drivers for a Windows guest: an `ISO` or a directory (virt-v2v's VIRTIO_WIN)"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "MOUNTPOINT"); err != nil {
				return err
			}
			return runConvert(c.Context, convertOptions{
				mountpoint: c.Args().Get(0), virtioWin: c.String("virtio-win"),
				out: os.Stdout, errw: os.Stderr,
			})
		},
	}
}

// runConvert converts, printing each step on errw as it starts and the
// summary on out. virt-v2v's whole output goes to a log beside the
// mount's (named in the summary and in an error).
func runConvert(ctx context.Context, o convertOptions) error {
	logPath := strings.TrimSuffix(mount.LogPath(absOr(o.mountpoint)), ".log") + ".convert.log"
	var engineLog io.Writer
	if err := os.MkdirAll(mount.RegistryDir(), 0o700); err == nil {
		if f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
			defer f.Close()
			engineLog = f
		}
	}
	start := time.Now()
	res, err := convert.Run(ctx, convert.Options{
		Mountpoint: o.mountpoint, VirtioWin: o.virtioWin, NoKVM: convert.NoKVM(),
		EngineLog: engineLog,
		Progress: func(s string) {
			fmt.Fprintf(o.errw, "vmfs: convert: [%5.0fs] %s\n", time.Since(start).Seconds(), s)
		},
	})
	if err != nil {
		if res != nil && engineLog != nil {
			return fmt.Errorf("%w (virt-v2v's output: %s)", err, logPath)
		}
		if engineLog != nil {
			os.Remove(logPath)
		}
		return err
	}
	printConversion(o.out, res, logPath)
	return nil
}

// printConversion is the summary: what changed, and how long each stage
// took.
func printConversion(w io.Writer, r *convert.Result, logPath string) {
	fmt.Fprintf(w, "converted %s: %s (%s) on %s, in %s\n", r.Mountpoint, r.Guest.Display(), r.Guest.Type,
		r.Guest.Roots[0], r.Total.Round(100*time.Millisecond))
	fmt.Fprintln(w, "changed:")
	for _, p := range r.Pins {
		fmt.Fprintf(w, "  NIC %s keeps the name %s: %s written\n", p.MAC, p.Name, p.File)
	}
	for _, n := range r.Engine.Notes {
		fmt.Fprintf(w, "  virt-v2v: %s\n", n)
	}
	fmt.Fprintf(w, "  the guest was converted to run on virtio devices: the descriptor %s names them\n", r.Descriptor)
	fmt.Fprintf(w, "  overlay: %s before, %s after; the source is unchanged\n", units.Bytes(r.OverlayBefore), units.Bytes(r.OverlayAfter))
	for _, n := range r.NICNotes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, n := range r.Engine.Warnings {
		fmt.Fprintf(w, "warning: virt-v2v: %s\n", n)
	}
	fmt.Fprintln(w, "stages:")
	fmt.Fprintf(w, "  %-52s %8s\n", "inspection and NIC names (libguestfs appliance)", secs(r.Inspect))
	fmt.Fprintf(w, "  %-52s %8s\n", "  of which the appliance's start", secs(r.Launch))
	for _, s := range r.Engine.Stages {
		fmt.Fprintf(w, "  %-52s %8s\n", "virt-v2v: "+s.Name, secs(s.Took))
	}
	fmt.Fprintf(w, "  %-52s %8s\n", "virt-v2v in all", secs(r.Engine.Elapsed))
	fmt.Fprintf(w, "virt-v2v's output: %s\n", logPath)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
