package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/vmfs/vmfs/internal/live"
	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/units"
)

// liveFlags are materialize's flags for the live cutover.
func liveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "live", Usage: "MOUNTPOINT DESTDIR: copy the disks of the running libvirt domains that use the mount into DESTDIR while they run, pivot them onto the copies, point their definitions there and release the mount"},
		&cli.StringFlag{Name: "domain", Usage: "with --live: move this domain only (default: every running domain that uses the mount)"},
		&cli.IntFlag{Name: "bandwidth", Usage: "with --live: limit each disk's copy to N MiB/s (default: no limit)"},
	}
}

// liveTakes are the flags of materialize that --live uses: it copies what
// the running guest sees, so every other flag (translation, overlay,
// source policy, remote source) is refused rather than ignored.
var liveTakes = []string{"live", "domain", "bandwidth", "format", "verify", "force", "progress"}

func notLive(c *cli.Context) error {
	for _, f := range []string{"domain", "bandwidth"} {
		if c.IsSet(f) {
			return usagef("--%s goes with --live", f)
		}
	}
	return nil
}

func liveAction(c *cli.Context) error {
	if err := needArgs(c, 2, "MOUNTPOINT DESTDIR"); err != nil {
		return err
	}
	for _, fl := range c.Command.Flags {
		f := fl.Names()[0]
		if c.IsSet(f) && !slices.Contains(liveTakes, f) {
			return usagef("--%s does not apply to --live (the copies are what the running guest sees)", f)
		}
	}
	switch f := c.String("format"); f {
	case "", "qcow2", "raw":
	default:
		return usagef("--format: --live copies disks as qcow2 or raw, not %q", f)
	}
	if b := c.Int("bandwidth"); b < 0 {
		return usagef("--bandwidth: %d is below 0", b)
	}
	switch p := c.String("progress"); p {
	case "auto", "bar", "json", "none":
	default:
		return usagef("--progress: %q is not auto, bar, json or none", p)
	}
	return runLive(c.Context, liveOptions{
		mountpoint: c.Args().Get(0), dest: c.Args().Get(1),
		domain: c.String("domain"), format: c.String("format"),
		verify: c.Bool("verify"), force: c.Bool("force"), bandwidth: c.Int("bandwidth"),
		progress: c.String("progress"),
	})
}

// liveOptions are the command line of materialize --live, parsed.
type liveOptions struct {
	mountpoint, dest string
	domain, format   string
	verify, force    bool
	bandwidth        int
	progress         string
}

func runLive(ctx context.Context, o liveOptions) error {
	mnt, err := filepath.Abs(o.mountpoint)
	if err != nil {
		return err
	}
	dest, err := filepath.Abs(o.dest)
	if err != nil {
		return err
	}
	typ, err := mount.FSType(mnt)
	if err != nil {
		return err
	}
	if typ != "fuse.vmfs" {
		return fmt.Errorf("%s: not a vmfs mount ('vmfs status' lists them)", mnt)
	}
	kind := o.progress
	if kind == "auto" {
		kind = "none"
		if term.IsTerminal(int(os.Stderr.Fd())) {
			kind = "bar"
		}
	}
	var rep liveReporter
	switch kind {
	case "bar":
		rep = newLiveBars(os.Stderr)
	case "json":
		rep = &liveJSON{w: os.Stdout}
	default:
		rep = liveText{w: os.Stderr}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := live.Run(ctx, live.Options{
		Mountpoint: mnt, Dest: dest, Domain: o.domain, Format: o.format,
		Verify: o.verify, Force: o.force, Bandwidth: o.bandwidth,
		Event:   rep.event,
		Release: func(m string) error { return mount.Stop(m, 30*time.Second) },
	})
	rep.finish()
	if err != nil {
		if errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "interrupted") {
			return fmt.Errorf("interrupted: the copy jobs were ended and their files removed; the guests run on the mount")
		}
		return err
	}
	if kind == "json" {
		return writeEvent(os.Stdout, liveDoneEvent(sum))
	}
	printLiveSummary(os.Stdout, dest, mnt, sum)
	return nil
}

// liveReporter shows the events of a cutover.
type liveReporter interface {
	event(live.Event)
	finish()
}

// liveText prints the steps on stderr, one line each (no progress).
type liveText struct{ w io.Writer }

func (l liveText) event(e live.Event) {
	if s := liveLine(e); s != "" {
		fmt.Fprintln(l.w, "vmfs:", s)
	}
}

func (l liveText) finish() {}

// liveLine is an event as one line of text, "" for progress.
func liveLine(e live.Event) string {
	switch e.Kind {
	case live.EventWarning:
		return "warning: " + e.Message
	case live.EventStart:
		return fmt.Sprintf("%s %s: copying %s to %s (%s)", e.Domain, e.Disk, e.Source, e.Dest, e.Format)
	case live.EventPivot:
		return fmt.Sprintf("%s %s: runs on %s", e.Domain, e.Disk, e.Dest)
	case live.EventPause:
		return fmt.Sprintf("%s: paused for --verify", e.Domain)
	case live.EventResume:
		return fmt.Sprintf("%s: resumed", e.Domain)
	case live.EventRelease:
		if e.Message != "" {
			return "warning: the mount was not released: " + e.Message
		}
	}
	return ""
}

// liveBars draws one bar per disk on a terminal, the other events above.
type liveBars struct {
	w     io.Writer
	disks []string // "domain disk", in start order
	state map[string]*liveBar
	drawn int // lines of bars on the screen
	last  time.Time
}

type liveBar struct {
	done, total int64
	ready       bool
	rate        rateMeter
}

func newLiveBars(w io.Writer) *liveBars { return &liveBars{w: w, state: map[string]*liveBar{}} }

func (b *liveBars) event(e live.Event) {
	key := e.Domain + " " + e.Disk
	switch e.Kind {
	case live.EventProgress:
		st := b.state[key]
		if st == nil {
			return
		}
		st.done, st.total, st.ready = e.Done, e.Total, e.Ready
		if now := time.Now(); now.Sub(b.last) >= 100*time.Millisecond {
			b.last = now
			b.draw()
		}
		return
	case live.EventStart:
		b.disks = append(b.disks, key)
		b.state[key] = &liveBar{rate: rateMeter{start: time.Now()}}
	}
	if s := liveLine(e); s != "" {
		b.clear()
		fmt.Fprintln(b.w, "vmfs:", s)
		b.draw()
	}
}

func (b *liveBars) clear() {
	if b.drawn > 0 {
		fmt.Fprintf(b.w, "\x1b[%dA\x1b[J", b.drawn)
		b.drawn = 0
	}
}

func (b *liveBars) draw() {
	b.clear()
	now := time.Now()
	for _, key := range b.disks {
		st := b.state[key]
		const width = 30
		fill := 0
		if st.total > 0 {
			fill = int(float64(width) * float64(st.done) / float64(st.total))
		}
		d := st.rate.describe(st.done, st.total, now)
		if st.ready {
			d = units.Bytes(st.total) + ", in sync"
		}
		fmt.Fprintf(b.w, "%s [%s%s] %s\n", key, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), d)
		b.drawn++
	}
}

func (b *liveBars) finish() {
	if b.drawn > 0 {
		b.drawn = 0 // leave the last state on the screen
	}
}

// The events of materialize --live --progress=json.
type (
	liveCopyEvent struct {
		SchemaVersion int    `json:"schema_version"`
		Event         string `json:"event"` // copy_start, pivot
		Domain        string `json:"domain"`
		Disk          string `json:"disk"`
		Source        string `json:"source"`
		Dest          string `json:"dest"`
		Format        string `json:"format"`
	}
	liveProgressEvent struct {
		SchemaVersion int     `json:"schema_version"`
		Event         string  `json:"event"` // copy_progress
		Domain        string  `json:"domain"`
		Disk          string  `json:"disk"`
		Done          int64   `json:"done"`
		Total         int64   `json:"total"`
		Ready         bool    `json:"ready"`
		Rate          float64 `json:"rate,omitempty"`
	}
	liveDomainEvent struct {
		SchemaVersion int    `json:"schema_version"`
		Event         string `json:"event"` // pause, resume
		Domain        string `json:"domain"`
	}
	liveReleaseEvent struct {
		SchemaVersion int    `json:"schema_version"`
		Event         string `json:"event"` // release
		Released      bool   `json:"released"`
		Error         string `json:"error,omitempty"`
	}
	liveWarningEvent struct {
		SchemaVersion int    `json:"schema_version"`
		Event         string `json:"event"` // warning
		Code          string `json:"code"`
		Message       string `json:"message"`
	}
	liveDisk struct {
		Domain    string `json:"domain"`
		Disk      string `json:"disk"`
		Source    string `json:"source"`
		Dest      string `json:"dest"`
		Format    string `json:"format"`
		Size      int64  `json:"size"`
		Allocated int64  `json:"allocated"`
	}
	liveDone struct {
		SchemaVersion int        `json:"schema_version"`
		Event         string     `json:"event"` // live_done
		Domains       []string   `json:"domains"`
		Disks         []liveDisk `json:"disks"`
		Definitions   []string   `json:"definitions"`
		Seconds       float64    `json:"seconds"`
		Verified      bool       `json:"verified"`
		PausedSeconds float64    `json:"paused_seconds"`
		Released      bool       `json:"released"`
	}
)

// liveJSON writes the events as JSON lines, progress at most every half
// second per disk.
type liveJSON struct {
	w     io.Writer
	last  map[string]time.Time
	rates map[string]rateMeter
}

func (l *liveJSON) event(e live.Event) {
	if l.last == nil {
		l.last, l.rates = map[string]time.Time{}, map[string]rateMeter{}
	}
	key := e.Domain + " " + e.Disk
	switch e.Kind {
	case live.EventWarning:
		code, msg, ok := strings.Cut(e.Message, ": ")
		if !ok || strings.ToUpper(code) != code || strings.Contains(code, " ") {
			code, msg = "LIVE", e.Message
		}
		writeEvent(l.w, liveWarningEvent{schemaVersion, "warning", code, msg})
	case live.EventStart, live.EventPivot:
		if e.Kind == live.EventStart {
			l.rates[key] = rateMeter{start: time.Now()}
		}
		writeEvent(l.w, liveCopyEvent{schemaVersion, e.Kind, e.Domain, e.Disk, e.Source, e.Dest, e.Format})
	case live.EventProgress:
		now := time.Now()
		if now.Sub(l.last[key]) < 500*time.Millisecond {
			return
		}
		l.last[key] = now
		rate, _ := l.rates[key].rate(e.Done, now)
		writeEvent(l.w, liveProgressEvent{schemaVersion, e.Kind, e.Domain, e.Disk, e.Done, e.Total, e.Ready, rate})
	case live.EventPause, live.EventResume:
		writeEvent(l.w, liveDomainEvent{schemaVersion, e.Kind, e.Domain})
	case live.EventRelease:
		writeEvent(l.w, liveReleaseEvent{schemaVersion, e.Kind, e.Message == "", e.Message})
	}
}

func (l *liveJSON) finish() {}

func liveDoneEvent(sum live.Summary) liveDone {
	d := liveDone{SchemaVersion: schemaVersion, Event: "live_done", Domains: sum.Domains, Disks: []liveDisk{},
		Definitions: sum.Definitions, Seconds: sum.Duration.Seconds(), Verified: sum.Verified,
		PausedSeconds: sum.Paused.Seconds(), Released: sum.Released}
	if d.Definitions == nil {
		d.Definitions = []string{}
	}
	for _, k := range sum.Disks {
		d.Disks = append(d.Disks, liveDisk{k.Domain, k.Disk, k.Source, k.Dest, k.Format, k.Size, k.Allocated})
	}
	return d
}

// printLiveSummary says what a cutover did.
func printLiveSummary(w io.Writer, dest, mnt string, sum live.Summary) {
	downtime := "the guest kept running"
	if sum.Paused > 0 {
		downtime = fmt.Sprintf("paused %s for --verify", sum.Paused.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "moved %s onto %s in %s (%s)\n", strings.Join(sum.Domains, ", "), dest, sum.Duration.Round(time.Millisecond), downtime)
	for _, k := range sum.Disks {
		verified := ""
		if sum.Verified {
			verified = ", verified"
		}
		fmt.Fprintf(w, "disk:       %s %s: %s (%s, %s copied, %s on disk%s)\n", k.Domain, k.Disk, k.Dest, k.Format,
			units.Bytes(k.Size), units.Bytes(k.Allocated), verified)
	}
	for _, d := range sum.Definitions {
		fmt.Fprintf(w, "definition: %s (the domain's definition, naming the copies)\n", d)
	}
	switch {
	case sum.Released:
		fmt.Fprintf(w, "mount:      %s released\n", mnt)
	case sum.ReleaseErr != nil:
		fmt.Fprintf(w, "mount:      %s kept: %v\n", mnt, sum.ReleaseErr)
	}
}
