package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/vmfs/vmfs/internal/materialize"
	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/internal/units"
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
			if c.IsSet("overlay") && c.Bool("discard-overlay") {
				return usagef("--overlay and --discard-overlay exclude each other")
			}
			so, err := sessionOptions(c)
			if err != nil {
				return err
			}
			return runMaterialize(c.Context, materializeOptions{
				src: c.Args().Get(0), dest: c.Args().Get(1), session: so,
				overlay: c.String("overlay"), discardOverlay: c.Bool("discard-overlay"),
				force: c.Bool("force"), verify: c.Bool("verify"), jobs: c.Int("jobs"),
				progress: c.String("progress"), logLevel: c.String("log-level"),
			})
		},
	}
}

// materializeOptions are the command line of materialize, parsed.
type materializeOptions struct {
	src, dest string
	// session: the shared flags; its Dir is set to DESTDIR.
	session        session.Options
	overlay        string // --overlay, "" when not given
	discardOverlay bool
	force, verify  bool
	jobs           int
	progress       string
	logLevel       string
}

func runMaterialize(ctx context.Context, o materializeOptions) error {
	dest, err := filepath.Abs(o.dest)
	if err != nil {
		return err
	}
	o.session.Dir = dest
	o.session.Translate.Host = hostFacts(ctx, o.session, false)
	s, err := session.Open(o.src, o.session)
	if err != nil {
		return err
	}
	defer s.Close()
	v := s.View
	if err := materialize.CheckProtected(dest, s.Files(), v.Sources); err != nil {
		return err
	}
	for _, w := range v.Warnings {
		fmt.Fprintf(os.Stderr, "vmfs: warning: %s\n", w)
	}
	if o.discardOverlay {
		fmt.Fprintln(os.Stderr, "vmfs: leaving out the overlay (--discard-overlay)")
	} else {
		ov, err := s.UseOverlay(session.OverlayOptions{Dir: o.overlay, Existing: true, DisksOnly: true, Logger: newLogger(o.logLevel)})
		switch {
		case errors.Is(err, session.ErrNoOverlay):
			fmt.Fprintln(os.Stderr, "vmfs: no overlay: writing the source as it is")
		case err != nil:
			return err
		default:
			for _, name := range ov.Edited {
				// Descriptors are made anew for DESTDIR.
				fmt.Fprintf(os.Stderr, "vmfs: warning: edits to %s in the overlay are not carried over (the descriptor is generated for %s)\n", name, dest)
			}
			fmt.Fprintf(os.Stderr, "vmfs: including the writes in overlay %s\n", ov.Dir)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := materialize.Options{Force: o.force, Verify: o.verify, Workers: o.jobs, Protected: v.Sources}
	finish, err := progressReporter(o.progress, &opts)
	if err != nil {
		return err
	}
	files := s.Files()
	sum, err := materialize.Run(ctx, dest, files, opts)
	finish()
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("interrupted; partial files removed, nothing was left under a final name")
		}
		return err
	}
	if o.progress == "json" {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"event": "done", "files": sum.Files, "bytes": sum.Bytes, "written": sum.Written,
			"shared": sum.Shared, "holes_skipped": sum.HolesSkipped, "seconds": sum.Duration.Seconds(), "verified": sum.Verified,
		})
	}
	verified := ""
	if sum.Verified {
		verified = ", verified"
	}
	fmt.Printf("materialized %d files into %s: %s virtual, %s written, %s shared with the source, %s left sparse, %s (%s/s%s)\n",
		sum.Files, dest, units.Bytes(sum.Bytes), units.Bytes(sum.Written), units.Bytes(sum.Shared), units.Bytes(sum.HolesSkipped),
		sum.Duration.Round(time.Millisecond), units.Bytes(int64(sum.Rate())), verified)
	for _, f := range files {
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
