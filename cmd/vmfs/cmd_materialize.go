package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/vmfs/vmfs/internal/view"
	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/translate"
)

func materializeCommand() *cli.Command {
	return &cli.Command{
		Name:      "materialize",
		Usage:     "write the target VM into DESTDIR: the cutover (sparse, atomic, optionally verified); --live MOUNTPOINT DESTDIR moves running libvirt domains off a mount",
		ArgsUsage: "SRC DESTDIR",
		Flags: append(append(append(translateFlags(), overlayFlags()...),
			&cli.BoolFlag{Name: "discard-overlay", Usage: "leave out the writes made through a mount"},
			&cli.BoolFlag{Name: "force", Usage: "replace existing files in DESTDIR"},
			&cli.BoolFlag{Name: "verify", Usage: "re-read the written files and compare them with the view"},
			&cli.StringFlag{Name: "progress", Value: "auto", Usage: "auto (a bar on a terminal), bar, json or none"},
			&cli.IntFlag{Name: "jobs", Value: materialize.DefaultWorkers(), Usage: fmt.Sprintf("parallel copy workers, 1 to %d", materialize.MaxWorkers)},
		), liveFlags()...),
		Action: func(c *cli.Context) error {
			if c.Bool("live") {
				return liveAction(c)
			}
			if err := notLive(c); err != nil {
				return err
			}
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
	o.session.SpaceDir = spaceDir(dest)
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
		if o.progress == "json" {
			writeEvent(os.Stdout, warningEvent{SchemaVersion: schemaVersion, Event: "warning", Warning: w})
		} else {
			fmt.Fprintf(os.Stderr, "vmfs: warning: %s\n", w)
		}
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
	var virtual int64
	disks := 0
	for _, d := range v.Disks {
		virtual += d.Size()
		disks++
	}
	warnings := ""
	for _, f := range files {
		if f.Name == view.WarningsName(v.Name) {
			warnings = filepath.Join(dest, f.Name)
		}
	}
	if o.progress == "json" {
		return writeEvent(os.Stdout, doneEvent{
			SchemaVersion: schemaVersion, Event: "done", Files: sum.Files, Bytes: sum.Bytes, Written: sum.Written, Shared: sum.Shared, HolesSkipped: sum.HolesSkipped,
			VirtualSize: virtual, Seconds: sum.Duration.Seconds(), Verified: sum.Verified, WarningsFile: warnings,
		})
	}
	printSummary(os.Stdout, dest, sum, virtual, disks, files, warnings)
	return nil
}

// printSummary says what a run wrote: the disks' virtual size, apart from
// the bytes of the files that hold them (a sparse qcow2 of a 2 GiB disk
// may be 400 MiB), then each file by what it is.
func printSummary(w io.Writer, dest string, sum materialize.Summary, virtual int64, disks int, files []viewfile.File, warnings string) {
	verified := ""
	if sum.Verified {
		verified = ", verified"
	}
	fmt.Fprintf(w, "materialized %d files into %s in %s (%s/s%s)\n",
		sum.Files, dest, sum.Duration.Round(time.Millisecond), units.Bytes(int64(sum.Rate())), verified)
	fmt.Fprintf(w, "disks:      %d, %s virtual\n", disks, units.Bytes(virtual))
	shared := ""
	if sum.Shared > 0 {
		shared = ", " + units.Bytes(sum.Shared) + " shared with the source (reflinks)"
	}
	fmt.Fprintf(w, "files:      %s: %s written%s, %s left sparse\n",
		units.Bytes(sum.Bytes), units.Bytes(sum.Written), shared, units.Bytes(sum.HolesSkipped))
	for _, f := range files {
		path := filepath.Join(dest, f.Name)
		switch {
		case f.Disk:
			fmt.Fprintf(w, "disk:       %s\n", path)
		case path == warnings:
			fmt.Fprintf(w, "warnings:   %s\n", path)
		default:
			fmt.Fprintf(w, "descriptor: %s\n", path)
		}
	}
}

// The events of --progress=json, one JSON object a line on stdout.
type (
	progressEvent struct {
		SchemaVersion int    `json:"schema_version"`
		Event         string `json:"event"` // "progress"
		Done          int64  `json:"done"`
		Total         int64  `json:"total"`
		// Rate in bytes per second, from the first second on.
		Rate float64 `json:"rate,omitempty"`
	}
	warningEvent struct {
		SchemaVersion int    `json:"schema_version"`
		Event         string `json:"event"` // "warning"
		translate.Warning
	}
	doneEvent struct {
		SchemaVersion int     `json:"schema_version"`
		Event         string  `json:"event"` // "done"
		Files         int     `json:"files"`
		Bytes         int64   `json:"bytes"`
		Written       int64   `json:"written"`
		Shared        int64   `json:"shared"`
		HolesSkipped  int64   `json:"holes_skipped"`
		VirtualSize   int64   `json:"virtual_size"`
		Seconds       float64 `json:"seconds"`
		Verified      bool    `json:"verified"`
		WarningsFile  string  `json:"warnings_file,omitempty"`
	}
)

// writeEvent writes one event on one line.
func writeEvent(w io.Writer, event any) error {
	return json.NewEncoder(w).Encode(event)
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
		var r rateMeter
		last := time.Time{}
		opts.Progress = func(done, total int64) {
			now := time.Now()
			if bar == nil {
				r.start = now
				// The library fits the bar to the terminal, and keeps
				// its width where the terminal says none.
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionSetWidth(40), progressbar.OptionShowDescriptionAtLineEnd(),
					progressbar.OptionSetElapsedTime(true), progressbar.OptionSetPredictTime(false),
					progressbar.OptionThrottle(100*time.Millisecond))
			}
			if now.Sub(last) >= 100*time.Millisecond || done == total {
				last = now
				bar.Describe(r.describe(done, total, now))
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
		last := time.Time{}
		var r rateMeter
		opts.Progress = func(done, total int64) {
			now := time.Now()
			if r.start.IsZero() {
				r.start = now
			}
			if now.Sub(last) < 500*time.Millisecond && done != total {
				return
			}
			last = now
			rate, _ := r.rate(done, now)
			writeEvent(os.Stdout, progressEvent{SchemaVersion: schemaVersion, Event: "progress", Done: done, Total: total, Rate: rate})
		}
		return func() {}, nil
	}
	return nil, usagef("--progress: %q is not auto, bar, json or none", kind)
}

// rateMeter is the rate of a copy: none in its first second, when a few
// quick chunks (or holes) would make it absurd.
type rateMeter struct {
	start time.Time
}

// rate is bytes per second since start; ok is false in the first second.
func (r rateMeter) rate(done int64, now time.Time) (float64, bool) {
	el := now.Sub(r.start)
	if el < time.Second {
		return 0, false
	}
	return float64(done) / el.Seconds(), true
}

// describe is what the bar shows beside it: "1.2 GiB/2.0 GiB, 310.4
// MiB/s, 3s left".
func (r rateMeter) describe(done, total int64, now time.Time) string {
	d := fmt.Sprintf("%s/%s", units.Bytes(done), units.Bytes(total))
	if rate, ok := r.rate(done, now); ok && rate > 0 {
		left := time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second)
		d += fmt.Sprintf(", %s/s, %s left", units.Bytes(int64(rate)), left)
	}
	return d
}
