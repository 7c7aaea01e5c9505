package convert

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Drive is one disk of the guest as libguestfs opens it.
type Drive struct {
	Path   string
	Format string // qemu format name: qcow2, raw, vmdk...
}

// Fish is one guestfish process, one libguestfs appliance: commands are
// written to its standard input, each followed by an echo of a marker
// that ends its output. guestfish reading a pipe exits at the first
// command that fails, so a failure is the process ending before the
// marker, with the error on its standard error.
type Fish struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *syncBuffer
	n      int
	done   chan struct{}
	closed bool
	// Launch is how long the appliance took to start (the run command).
	Launch time.Duration
}

// syncBuffer is a bytes.Buffer written by exec's copier and read here.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartFish starts guestfish on drives (read-only when ro) with env added
// to this process's environment, and launches the appliance.
func StartFish(ctx context.Context, drives []Drive, ro bool, env []string) (*Fish, error) {
	if _, err := exec.LookPath("guestfish"); err != nil {
		return nil, errors.New("guestfish is not installed (Debian package libguestfs-tools)")
	}
	args := []string{}
	if ro {
		args = append(args, "--ro")
	}
	for _, d := range drives {
		if d.Format != "" {
			args = append(args, "--format="+d.Format)
		}
		args = append(args, "-a", d.Path)
	}
	cmd := exec.CommandContext(ctx, "guestfish", args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	f := &Fish{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = f.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	f.in, f.out = in, bufio.NewReader(out)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("guestfish: %w", err)
	}
	go func() { cmd.Wait(); close(f.done) }()
	start := time.Now()
	if _, err := f.Do("run"); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting the libguestfs appliance: %w", err)
	}
	f.Launch = time.Since(start)
	return f, nil
}

// quote makes s one guestfish argument.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\#!<>|&;$`\n") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// Do runs one command and returns its output lines.
func (f *Fish) Do(args ...string) ([]string, error) {
	f.n++
	marker := fmt.Sprintf("VMFS-FISH-END-%d", f.n)
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = quote(a)
	}
	line := strings.Join(q, " ")
	if _, err := fmt.Fprintf(f.in, "%s\necho %s\n", line, marker); err != nil {
		return nil, f.failed(args[0], err)
	}
	var lines []string
	for {
		l, err := f.out.ReadString('\n')
		if err != nil {
			return nil, f.failed(args[0], err)
		}
		l = strings.TrimSuffix(l, "\n")
		if l == marker {
			return lines, nil
		}
		lines = append(lines, l)
	}
}

// failed is the error of a command after which guestfish stopped: what
// libguestfs said, on one line.
func (f *Fish) failed(cmd string, err error) error {
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
	}
	msg := strings.TrimSpace(f.stderr.String())
	if msg == "" {
		return fmt.Errorf("guestfish %s: %v", cmd, err)
	}
	var keep []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		l = strings.TrimPrefix(l, "*stdin*:")
		if l == "" || strings.HasPrefix(l, "(in guestfish") {
			continue
		}
		keep = append(keep, l)
	}
	return fmt.Errorf("guestfish %s: %s", cmd, strings.Join(keep, " "))
}

// Close ends guestfish (and its appliance), waiting for it.
func (f *Fish) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	fmt.Fprintln(f.in, "exit")
	f.in.Close()
	select {
	case <-f.done:
	case <-time.After(60 * time.Second):
		f.cmd.Process.Kill()
		<-f.done
	}
	if f.cmd.ProcessState != nil && !f.cmd.ProcessState.Success() {
		return fmt.Errorf("guestfish: %s: %s", f.cmd.ProcessState, strings.TrimSpace(f.stderr.String()))
	}
	return nil
}

// Bool runs a command that answers true or false.
func (f *Fish) Bool(args ...string) (bool, error) {
	out, err := f.Do(args...)
	if err != nil {
		return false, err
	}
	if len(out) != 1 || (out[0] != "true" && out[0] != "false") {
		return false, fmt.Errorf("guestfish %s: unexpected answer %q", args[0], strings.Join(out, "\n"))
	}
	return out[0] == "true", nil
}

// One runs a command that answers one line.
func (f *Fish) One(args ...string) (string, error) {
	out, err := f.Do(args...)
	if err != nil {
		return "", err
	}
	if len(out) != 1 {
		return "", fmt.Errorf("guestfish %s: %d lines where one was expected", args[0], len(out))
	}
	return out[0], nil
}

// ReadFile downloads a guest file through a local temporary file (cat
// would not say where a file without a final newline ends), at most max
// bytes.
func (f *Fish) ReadFile(guestPath string, max int64) (string, error) {
	size, err := f.One("filesize", guestPath)
	if err != nil {
		return "", err
	}
	var n int64
	if _, err := fmt.Sscan(size, &n); err != nil || n > max {
		return "", fmt.Errorf("guest file %s: size %s is over the %d bytes read of such a file", guestPath, size, max)
	}
	tmp, err := os.CreateTemp("", "vmfs-convert-")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if _, err := f.Do("download", guestPath, tmp.Name()); err != nil {
		return "", err
	}
	b, err := os.ReadFile(tmp.Name())
	return string(b), err
}

// WriteFile uploads content to the guest path (mode 0644), through a
// local temporary file.
func (f *Fish) WriteFile(guestPath, content string) error {
	tmp, err := os.CreateTemp("", "vmfs-convert-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if _, err := f.Do("upload", tmp.Name(), guestPath); err != nil {
		return err
	}
	_, err = f.Do("chmod", "0644", guestPath)
	return err
}
