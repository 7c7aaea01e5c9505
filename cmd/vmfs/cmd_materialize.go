package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/vmfs/vmfs/internal/materialize"
	"github.com/vmfs/vmfs/internal/overlay"
	"github.com/vmfs/vmfs/internal/view"
	"github.com/vmfs/vmfs/layouts"
)

func materializeCommand() *cli.Command {
	return &cli.Command{
		Name:      "materialize",
		Usage:     "write the target VM into DESTDIR: the cutover (sparse, atomic, optionally verified)",
		ArgsUsage: "SRC DESTDIR",
		Flags: append(append(translateFlags(), overlayFlags()...),
			&cli.BoolFlag{Name: "discard-overlay", Usage: "leave out the writes made through a mount"},
			&cli.BoolFlag{Name: "force", Usage: "replace existing files in DESTDIR"},
			&cli.BoolFlag{Name: "verify", Usage: "re-read the written files and compare them with the view"},
			&cli.StringFlag{Name: "progress", Value: "auto", Usage: "auto (a bar on a terminal), bar, json or none"},
			&cli.IntFlag{Name: "jobs", Value: materialize.DefaultWorkers(), Usage: fmt.Sprintf("parallel copy workers, 1 to %d", materialize.MaxWorkers)},
		),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 2, "SRC DESTDIR"); err != nil {
				return err
			}
			return runMaterialize(c, c.Args().Get(0), c.Args().Get(1))
		},
	}
}

func runMaterialize(c *cli.Context, src, dest string) error {
	dest, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	if c.IsSet("overlay") && c.Bool("discard-overlay") {
		return usagef("--overlay and --discard-overlay exclude each other")
	}
	bo, err := buildOptions(c, dest)
	if err != nil {
		return err
	}
	bo.Translate.Host = hostFacts(c, bo.To, false)
	v, err := view.Build(src, bo)
	if err != nil {
		return err
	}
	defer v.Close()
	files := slices.Clone(v.Files)
	if err := materialize.CheckProtected(dest, files, v.Sources); err != nil {
		return err
	}
	for _, w := range v.Warnings {
		fmt.Fprintf(os.Stderr, "vmfs: warning: %s\n", w)
	}
	if !c.Bool("discard-overlay") {
		dir := c.String("overlay")
		if dir == "" {
			if dir, err = defaultOverlayDir(src, bo); err != nil {
				return err
			}
		}
		if _, err := os.Stat(dir); err == nil {
			ov, err := overlay.Open(dir, overlay.Options{Logger: logger(c)})
			if err != nil {
				return err
			}
			defer ov.Close()
			var names []string
			for _, f := range v.Files {
				names = append(names, f.Name)
			}
			foreign, err := ov.Foreign(names)
			if err != nil {
				return err
			}
			if len(foreign) > 0 {
				return fmt.Errorf("%s: the overlay holds writes to %s, which this view does not have: materialize with the --to, --format and --subformat of the mount (or --discard-overlay)", dir, joinNames(foreign))
			}
			for i, f := range v.Files {
				of, err := ov.File(f.Name, f.Content)
				if err != nil {
					return err
				}
				if !f.Disk {
					// Descriptors are made anew for DESTDIR.
					if of.Modified() {
						fmt.Fprintf(os.Stderr, "vmfs: warning: edits to %s in the overlay are not carried over (the descriptor is generated for %s)\n", f.Name, dest)
					}
					continue
				}
				files[i].Content = of
			}
			contents := make([]layouts.Disk, len(files))
			for i := range files {
				contents[i] = files[i].Content
			}
			v.Bind(contents)
			fmt.Fprintf(os.Stderr, "vmfs: including the writes in overlay %s\n", dir)
		} else if c.IsSet("overlay") {
			return fmt.Errorf("%s: overlay not found", dir)
		} else {
			fmt.Fprintln(os.Stderr, "vmfs: no overlay: writing the source as it is")
		}
	} else {
		fmt.Fprintln(os.Stderr, "vmfs: leaving out the overlay (--discard-overlay)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := materialize.Options{Force: c.Bool("force"), Verify: c.Bool("verify"), Workers: c.Int("jobs"), Protected: v.Sources}
	finish, err := progressReporter(c.String("progress"), &opts)
	if err != nil {
		return err
	}
	sum, err := materialize.Run(ctx, dest, files, opts)
	finish()
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("interrupted; partial files removed, nothing was left under a final name")
		}
		return err
	}
	if c.String("progress") == "json" {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"event": "done", "files": sum.Files, "bytes": sum.Bytes, "written": sum.Written,
			"holes_skipped": sum.HolesSkipped, "seconds": sum.Duration.Seconds(), "verified": sum.Verified,
		})
	}
	verified := ""
	if sum.Verified {
		verified = ", verified"
	}
	fmt.Printf("materialized %d files into %s: %s virtual, %s written, %s left sparse, %s (%s/s%s)\n",
		sum.Files, dest, human(sum.Bytes), human(sum.Written), human(sum.HolesSkipped),
		sum.Duration.Round(time.Millisecond), human(int64(sum.Rate())), verified)
	for _, f := range v.Files {
		if !f.Disk {
			fmt.Printf("descriptor: %s\n", filepath.Join(dest, f.Name))
		}
	}
	return nil
}

// progressReporter installs the progress callback of the chosen kind and
// returns what ends it.
func progressReporter(kind string, opts *materialize.Options) (func(), error) {
	if kind == "auto" {
		kind = "none"
		if term.IsTerminal(int(os.Stderr.Fd())) {
			kind = "bar"
		}
	}
	switch kind {
	case "none":
		return func() {}, nil
	case "bar":
		var bar *progressbar.ProgressBar
		opts.Progress = func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionShowBytes(true), progressbar.OptionSetPredictTime(true),
					progressbar.OptionSetDescription("materialize"), progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionUseIECUnits(true), progressbar.OptionFullWidth())
			}
			bar.Set64(done)
		}
		return func() {
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(os.Stderr)
			}
		}, nil
	case "json":
		enc := json.NewEncoder(os.Stdout)
		last := time.Time{}
		start := time.Now()
		opts.Progress = func(done, total int64) {
			if time.Since(last) < 500*time.Millisecond && done != total {
				return
			}
			last = time.Now()
			enc.Encode(map[string]any{"event": "progress", "done": done, "total": total,
				"rate": float64(done) / max(time.Since(start).Seconds(), 1e-9)})
		}
		return func() {}, nil
	}
	return nil, usagef("--progress: %q is not auto, bar, json or none", kind)
}
