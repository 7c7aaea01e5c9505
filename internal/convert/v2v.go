package convert

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Stage is one step virt-v2v reports ("[  31.1] Inspecting the source").
type Stage struct {
	Name string
	// Start is when it began, in seconds from virt-v2v's start as it
	// says; Took is the time to the next stage (or to the end).
	Start float64
	Took  time.Duration
}

// Engine is what virt-v2v said during a conversion, parsed.
type Engine struct {
	Stages   []Stage
	Warnings []string // "virt-v2v-in-place: warning: ..." (joined lines)
	Notes    []string // its other messages ("This guest has virtio drivers installed.")
	Elapsed  time.Duration
}

var (
	stageLine = regexp.MustCompile(`^\[\s*([0-9]+(?:\.[0-9]+)?)\] (.+)$`)
	toolLine  = regexp.MustCompile(`^virt-v2v(?:-in-place)?: (.*)$`)
)

// parser turns virt-v2v's output into an Engine, a line at a time.
// Messages may continue on following lines (an error's explanation, a
// wrapped warning): a line that is not a stage or a new message belongs
// to the message before it, until a blank line.
type parser struct {
	e       Engine
	last    *string // the message lines are appended to
	lastErr []string
	inErr   bool
}

func (p *parser) line(l string) (stage *Stage) {
	l = strings.TrimRight(l, "\r")
	if m := stageLine.FindStringSubmatch(l); m != nil {
		p.last, p.inErr = nil, false
		t, _ := strconv.ParseFloat(m[1], 64)
		p.e.Stages = append(p.e.Stages, Stage{Name: m[2], Start: t})
		return &p.e.Stages[len(p.e.Stages)-1]
	}
	if m := toolLine.FindStringSubmatch(l); m != nil {
		msg := m[1]
		p.inErr = false
		switch {
		case strings.HasPrefix(msg, "warning: "):
			p.e.Warnings = append(p.e.Warnings, strings.TrimPrefix(msg, "warning: "))
			p.last = &p.e.Warnings[len(p.e.Warnings)-1]
		case strings.HasPrefix(msg, "error: "):
			p.lastErr = []string{strings.TrimPrefix(msg, "error: ")}
			p.last, p.inErr = nil, true
		default:
			p.e.Notes = append(p.e.Notes, msg)
			p.last = &p.e.Notes[len(p.e.Notes)-1]
		}
		return nil
	}
	t := strings.TrimSpace(l)
	switch {
	case t == "":
		p.last = nil
	case p.inErr:
		p.lastErr = append(p.lastErr, t)
	case p.last != nil:
		*p.last += " " + t
	}
	return nil
}

// finish sets each stage's duration from the next stage's start.
func (p *parser) finish(total time.Duration) {
	p.e.Elapsed = total
	for i := range p.e.Stages {
		end := total.Seconds()
		if i+1 < len(p.e.Stages) {
			end = p.e.Stages[i+1].Start
		}
		if d := end - p.e.Stages[i].Start; d > 0 {
			p.e.Stages[i].Took = time.Duration(d * float64(time.Second))
		}
	}
}

// errorText is virt-v2v's error, the first sentence of its explanation
// that says what was found, on one line: the "If reporting bugs" advice
// and the boilerplate are left out.
func (p *parser) errorText() string {
	var keep []string
	for _, l := range p.lastErr {
		if strings.HasPrefix(l, "If reporting bugs") || strings.HasPrefix(l, "virt-v2v") && strings.Contains(l, "-v -x") {
			break
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, " ")
}

// RunV2V runs virt-v2v-in-place on the libvirt XML descriptor xml, for
// the root device root, with env added to this process's environment.
// onStage is called as each stage starts. Its combined output is copied
// to log when log is not nil.
func RunV2V(ctx context.Context, xml, root string, env []string, log io.Writer, onStage func(Stage)) (Engine, error) {
	if _, err := exec.LookPath("virt-v2v-in-place"); err != nil {
		return Engine{}, errors.New("virt-v2v-in-place is not installed (Debian 12: packages virt-v2v, nbdkit and libnbd-bin)")
	}
	for _, c := range []string{"nbdkit", "nbdinfo"} {
		// virt-v2v 2.2 needs both, and Debian's package pulls in neither.
		if _, err := exec.LookPath(c); err != nil {
			return Engine{}, fmt.Errorf("%s is not installed: virt-v2v-in-place needs it (Debian packages nbdkit, libnbd-bin)", c)
		}
	}
	args := []string{"-i", "libvirtxml"}
	if root != "" {
		args = append(args, "--root", root)
	}
	args = append(args, xml)
	cmd := exec.CommandContext(ctx, "virt-v2v-in-place", args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 30 * time.Second
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Engine{}, fmt.Errorf("virt-v2v-in-place: %w", err)
	}
	waited := make(chan error, 1)
	go func() { err := cmd.Wait(); w.Close(); waited <- err }()
	var p parser
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if log != nil {
			fmt.Fprintln(log, sc.Text())
		}
		if st := p.line(sc.Text()); st != nil && onStage != nil {
			onStage(*st)
		}
	}
	io.Copy(io.Discard, r)
	err := <-waited
	p.finish(time.Since(start))
	if err != nil {
		if ctx.Err() != nil {
			return p.e, fmt.Errorf("virt-v2v-in-place: %w", ctx.Err())
		}
		if msg := p.errorText(); msg != "" {
			return p.e, fmt.Errorf("virt-v2v-in-place: %s", msg)
		}
		return p.e, fmt.Errorf("virt-v2v-in-place: %v", err)
	}
	return p.e, nil
}
