package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// ErrLibvirtLost: libvirt stopped answering (libvirtd restarted or
// stopped) while a cutover needed it.
var ErrLibvirtLost = errors.New("libvirt does not answer")

// lostError is a virsh failure that says libvirt is not there.
type lostError struct{ msg string }

func (e *lostError) Error() string        { return e.msg }
func (e *lostError) Is(target error) bool { return target == ErrLibvirtLost }

// virsh runs the virsh client on the default connection (root's
// qemu:///system, or $LIBVIRT_DEFAULT_URI).
type virsh struct {
	bin string
}

func newVirsh() (virsh, error) {
	bin, err := exec.LookPath("virsh")
	if err != nil {
		return virsh{}, fmt.Errorf("virsh not found (Debian package libvirt-clients): %w", err)
	}
	return virsh{bin: bin}, nil
}

// lostMarkers are what virsh says when the daemon is not there or went
// away in the middle of a call.
var lostMarkers = []string{
	"failed to connect to the hypervisor",
	"end of file while reading data",
	"cannot recv data",
	"broken pipe",
	"connection reset by peer",
	"no connection driver available",
	"client socket is closed",
	"is libvirtd running",
}

// run runs virsh with args and returns its stdout. The error holds the
// command and virsh's own message on one line; one that says libvirt is
// not there wraps ErrLibvirtLost.
func (v virsh) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, v.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = os.Environ()
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	msg := oneLine(strings.TrimPrefix(strings.TrimSpace(stderr.String()), "error: "))
	if msg == "" {
		msg = err.Error()
	}
	low := strings.ToLower(msg)
	for _, m := range lostMarkers {
		if strings.Contains(low, m) {
			return "", &lostError{fmt.Sprintf("virsh %s: %s", args[0], msg)}
		}
	}
	return "", fmt.Errorf("virsh %s: %s", args[0], msg)
}

// oneLine joins the lines of s, dropping virsh's repeated "error: ".
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "error: "))
		if l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, ": ")
}

// jobInfo is what `virsh blockjob --raw` says of a disk's job.
type jobInfo struct {
	Active   bool // a job runs on the disk
	Type     string
	Cur, End int64
}

// Ready says whether a copy job is in sync: libvirt reports cur == end
// only once the job reached its mirroring phase.
func (j jobInfo) Ready() bool { return j.Active && j.End > 0 && j.Cur == j.End }

// parseJobInfo reads the output of `virsh blockjob DOM DISK --raw`: empty
// when no job runs, else " type=Block Copy", " cur=N", " end=N" lines.
func parseJobInfo(out string) (jobInfo, error) {
	var j jobInfo
	for _, line := range strings.Split(out, "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		j.Active = true
		switch k {
		case "type":
			j.Type = val
		case "cur", "end":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				return jobInfo{}, fmt.Errorf("virsh blockjob: bad %s %q", k, val)
			}
			if k == "cur" {
				j.Cur = n
			} else {
				j.End = n
			}
		}
	}
	return j, nil
}

func (v virsh) jobInfo(ctx context.Context, dom, disk string) (jobInfo, error) {
	out, err := v.run(ctx, "blockjob", dom, disk, "--raw")
	if err != nil {
		return jobInfo{}, err
	}
	return parseJobInfo(out)
}
