// Package mount keeps the lifecycle of a vmfs mount: checking the
// mountpoint, running in the background, signalling readiness, unmounting
// (also a mount whose process died), and the registry behind `vmfs status`.
package mount

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmfs/vmfs/internal/overlay"
	"github.com/vmfs/vmfs/internal/remote"
)

// MountpointOptions say what else a mountpoint is checked against.
type MountpointOptions struct {
	// Sources are the files the mount will read (resolved paths): the
	// mountpoint must not be, or be above, a directory holding one, as the
	// mount would hide it.
	Sources []string
	// NonEmpty allows a mountpoint that holds files (which the mount
	// hides until it is unmounted).
	NonEmpty bool
}

// CheckMountpoint says whether dir can take a new mount: it must exist, be a
// directory, not be mounted on already, not hide a source file, and be
// empty unless opts.NonEmpty. A stale FUSE mount (its process died) is
// reported as such.
func CheckMountpoint(dir string, opts MountpointOptions) error {
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, syscall.ENOTCONN) {
			return fmt.Errorf("%s: stale mount (its vmfs process is gone): run 'vmfs unmount %s' first", dir, dir)
		}
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: mountpoint does not exist", dir)
		}
		return fmt.Errorf("%s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: mountpoint is not a directory", dir)
	}
	mounted, err := IsMounted(dir)
	if err != nil {
		return err
	}
	if mounted {
		return fmt.Errorf("%s: mountpoint is already in use", dir)
	}
	if src, ok := hides(dir, st, opts.Sources); ok {
		return fmt.Errorf("%s: mounting here would hide the source file %s: choose a mountpoint outside the source's directories", dir, src)
	}
	if !opts.NonEmpty {
		f, err := os.Open(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		names, err := f.Readdirnames(1)
		f.Close()
		if len(names) > 0 {
			return fmt.Errorf("%s: mountpoint is not empty (the mount would hide its files; use --nonempty to mount over them)", dir)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	return nil
}

// hides returns the first of sources that a mount on dir (with stat st)
// would hide: one under dir, by resolved path, or one with dir among its
// parent directories (by device and inode: another path to dir counts).
func hides(dir string, st os.FileInfo, sources []string) (string, bool) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		real = dir
	}
	if abs, err := filepath.Abs(real); err == nil {
		real = abs
	}
	for _, src := range sources {
		if !filepath.IsAbs(src) {
			// A remote source's file, by URL: nothing here to hide.
			continue
		}
		if real == "/" || strings.HasPrefix(src, real+string(filepath.Separator)) {
			return src, true
		}
		for d := filepath.Dir(src); ; d = filepath.Dir(d) {
			if dst, err := os.Stat(d); err == nil && os.SameFile(st, dst) {
				return src, true
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return "", false
}

// IsMounted says whether dir is a mountpoint, from /proc/self/mountinfo.
func IsMounted(dir string) (bool, error) {
	t, err := FSType(dir)
	return t != "", err
}

// FSType is the file system type of the topmost mount at dir ("fuse.vmfs"
// for a vmfs mount), "" where dir is no mountpoint.
func FSType(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	typ := ""
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescape(fields[4]) == abs {
			typ = "?"
			for i := 5; i+1 < len(fields); i++ {
				if fields[i] == "-" {
					typ = fields[i+1]
					break
				}
			}
		}
	}
	return typ, sc.Err()
}

// unescape undoes the octal escapes of mountinfo paths (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Unmount unmounts dir, lazily when it is busy or stale, and falls back to
// fusermount3 for unprivileged users.
func Unmount(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	mounted, err := IsMounted(abs)
	if err != nil {
		return err
	}
	if !mounted {
		return fmt.Errorf("%s: not mounted", dir)
	}
	err = syscall.Unmount(abs, 0)
	if errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("%s: busy (a process still uses the mount; stop it, or the VM, first)", dir)
	}
	if err != nil && !errors.Is(err, syscall.EPERM) {
		// A stale mount may refuse a plain unmount: detach it.
		if derr := syscall.Unmount(abs, syscall.MNT_DETACH); derr == nil {
			err = nil
		}
	}
	if errors.Is(err, syscall.EPERM) {
		out, ferr := exec.Command("fusermount3", "-u", abs).CombinedOutput()
		if ferr != nil {
			return fmt.Errorf("%s: unmount: %s", dir, strings.TrimSpace(string(out)))
		}
		err = nil
	}
	if err != nil {
		return fmt.Errorf("%s: unmount: %w", dir, err)
	}
	Forget(abs)
	return nil
}

// ReadyEnv names the environment variable that tells a daemon child which
// file descriptor to report readiness on.
const ReadyEnv = "VMFS_READY_FD"

// Daemonize starts this program again with args in a new session, detached
// from the terminal, and waits until the child reports that the mount
// serves (nil) or fails (the child's error). logPath receives the child's
// output.
func Daemonize(args []string, logPath string, timeout time.Duration) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("daemon log %s: %w", logPath, err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), ReadyEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return err
	}
	w.Close()
	done := make(chan string, 1)
	go func() {
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			line = strings.TrimSpace(line)
			if msg, ok := strings.CutPrefix(line, "warn: "); ok {
				fmt.Fprintln(os.Stderr, "vmfs: warning:", msg)
				continue
			}
			if msg, ok := strings.CutPrefix(line, "info: "); ok {
				fmt.Fprintln(os.Stderr, "vmfs:", msg)
				continue
			}
			if line != "" || err != nil {
				done <- line
				return
			}
		}
	}()
	select {
	case line := <-done:
		if line == "ok" {
			cmd.Process.Release()
			return nil
		}
		cmd.Wait()
		if msg, ok := strings.CutPrefix(line, "error: "); ok {
			return errors.New(msg)
		}
		return fmt.Errorf("the mount process exited before serving (see %s)", logPath)
	case <-time.After(timeout):
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("the mount process did not become ready within %s (see %s)", timeout, logPath)
	}
}

// IsDaemonChild says whether this process was started by Daemonize.
func IsDaemonChild() bool { return os.Getenv(ReadyEnv) != "" }

// Reporter passes what a mount has to tell its user while it starts: to the
// parent waiting in Daemonize (which prints it on the user's terminal), or,
// in the foreground and once readiness was reported, to out.
type Reporter struct {
	out    io.Writer
	ready  *os.File // the pipe to the waiting parent, until Ready
	daemon bool
}

// NewReporter takes the readiness pipe Daemonize gave this process, if it
// did (the variable naming it is cleared, so that programs this one starts
// do not write to the pipe), and reports to out otherwise.
func NewReporter(out io.Writer) *Reporter {
	r := &Reporter{out: out}
	if fd, err := strconv.Atoi(os.Getenv(ReadyEnv)); err == nil && fd > 2 {
		r.ready = os.NewFile(uintptr(fd), "ready")
		r.daemon = r.ready != nil
	}
	os.Unsetenv(ReadyEnv)
	return r
}

// Daemon says whether this process was started by Daemonize.
func (r *Reporter) Daemon() bool { return r.daemon }

// Warn passes a warning on.
func (r *Reporter) Warn(warning string) {
	if r.ready != nil {
		fmt.Fprintf(r.ready, "warn: %s\n", oneLine(warning))
		return
	}
	fmt.Fprintln(r.out, "vmfs: warning:", warning)
}

// Info passes a message on.
func (r *Reporter) Info(msg string) {
	if r.ready != nil {
		fmt.Fprintf(r.ready, "info: %s\n", oneLine(msg))
		return
	}
	fmt.Fprintln(r.out, "vmfs:", msg)
}

// Ready reports the outcome to a waiting parent, if there is one, and
// closes the pipe: err nil means the mount serves. Later calls do nothing.
func (r *Reporter) Ready(err error) {
	f := r.ready
	if f == nil {
		return
	}
	r.ready = nil
	defer f.Close()
	if err != nil {
		fmt.Fprintf(f, "error: %s\n", oneLine(err.Error()))
		return
	}
	fmt.Fprintln(f, "ok")
}

// Exit is what a daemon does last. After a clean unmount (err nil) it
// removes its log (logPath, the file its output goes to) when nothing was
// written to it; the log of a failed mount, or one holding warnings or
// errors, stays for the user to read. Only the file that is really this
// process's output is removed. Outside a daemon Exit does nothing.
func (r *Reporter) Exit(logPath string, err error) {
	if !r.daemon || err != nil {
		return
	}
	f, ok := r.out.(interface{ Stat() (os.FileInfo, error) })
	if !ok {
		return
	}
	mine, err := f.Stat()
	if err != nil || mine.Size() != 0 {
		return
	}
	if st, err := os.Lstat(logPath); err == nil && os.SameFile(st, mine) {
		os.Remove(logPath)
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// Record is what the registry keeps of a mount.
type Record struct {
	Mountpoint string    `json:"mountpoint"`
	Source     string    `json:"source"`
	Target     string    `json:"target"`
	Format     string    `json:"format"`
	Overlay    string    `json:"overlay,omitempty"`
	ReadOnly   bool      `json:"read_only"`
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	// Passthrough names the files the kernel serves by FUSE passthrough.
	Passthrough []string `json:"passthrough,omitempty"`
	// Remote, for a remote source, counts what its reads fetched (the
	// mount rewrites the record every few seconds).
	Remote *remote.StatsSnapshot `json:"remote,omitempty"`
}

// RegistryDir holds one JSON file per live mount ($VMFS_RUN_DIR when set).
func RegistryDir() string {
	if d := os.Getenv("VMFS_RUN_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/run/vmfs"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "vmfs")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("vmfs-%d", os.Getuid()))
}

func recordPath(mountpoint string) string {
	return filepath.Join(RegistryDir(), strings.ReplaceAll(strings.TrimPrefix(mountpoint, "/"), "/", "_")+".json")
}

// LogPath is where a daemon mount's output goes.
func LogPath(mountpoint string) string {
	return strings.TrimSuffix(recordPath(mountpoint), ".json") + ".log"
}

// Remember registers a live mount.
func Remember(r Record) error {
	if err := os.MkdirAll(RegistryDir(), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(recordPath(r.Mountpoint), b, 0o600)
}

// Forget drops a mount from the registry.
func Forget(mountpoint string) { os.Remove(recordPath(mountpoint)) }

// Status is a registered mount and whether it still serves.
type Status struct {
	Record
	Alive   bool `json:"alive"`
	Mounted bool `json:"mounted"`
	// OverlayBytes is the space the overlay's files add on disk (what a
	// clone still shares with its source is not counted).
	OverlayBytes int64 `json:"overlay_bytes"`
}

// List returns the registered mounts.
func List() ([]Status, error) {
	ents, err := os.ReadDir(RegistryDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Status
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(RegistryDir(), e.Name()))
		if err != nil {
			continue
		}
		var s Status
		if json.Unmarshal(b, &s.Record) != nil {
			continue
		}
		s.Alive = processAlive(s.PID)
		s.Mounted, _ = IsMounted(s.Mountpoint)
		if s.Overlay != "" {
			s.OverlayBytes, _, _ = overlay.DirUsage(s.Overlay)
		}
		out = append(out, s)
	}
	return out, nil
}

// Lookup returns the registered mount at mountpoint.
func Lookup(mountpoint string) (Status, bool) {
	abs, _ := filepath.Abs(mountpoint)
	all, _ := List()
	for _, s := range all {
		if s.Mountpoint == abs {
			return s, true
		}
	}
	return Status{}, false
}

// processAlive says whether pid runs. A process that exited but was not
// reaped yet (a zombie: a daemon's parent is init, or whatever subreaper
// the machine has, which may reap late) has stopped serving: it counts as
// gone.
func processAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc: the signal test is all there is
	}
	// The state follows the parenthesised command name, which may itself
	// hold parentheses: take the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	st := b[i+2]
	return st != 'Z' && st != 'X'
}

// Stop unmounts a mount served by a live vmfs process by asking the process
// (SIGTERM), so that it flushes its overlay before it exits, and waits for
// it. The process refuses while files of the mount are open, and says so
// at once (the error names who holds them); otherwise it ends the mount
// also where copies of it live on in other mount namespaces (see
// Release). A mount with no live process is unmounted directly, and the
// record of a process that is gone is dropped, mounted or not.
func Stop(mountpoint string, timeout time.Duration) error {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return err
	}
	s, ok := Lookup(abs)
	mounted, _ := IsMounted(abs)
	if !ok || !s.Alive {
		if mounted {
			return Unmount(abs)
		}
		if ok {
			Forget(abs) // its process is gone, and so is the mount
			return nil
		}
		return fmt.Errorf("%s: not mounted", mountpoint)
	}
	busy := busyPath(abs)
	os.Remove(busy)
	if err := syscall.Kill(s.PID, syscall.SIGTERM); err != nil {
		if mounted {
			return Unmount(abs)
		}
		Forget(abs)
		return nil
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !processAlive(s.PID) {
			if m, _ := IsMounted(abs); m {
				return Unmount(abs)
			}
			Forget(abs)
			return nil
		}
		if b, err := os.ReadFile(busy); err == nil {
			os.Remove(busy)
			return errors.New(strings.TrimSpace(string(b)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m, _ := IsMounted(abs); m {
		return fmt.Errorf("%s: busy (a process still uses the mount; stop it, or the VM, first)", mountpoint)
	}
	return fmt.Errorf("%s: unmounted, but vmfs process %d did not exit within %s", mountpoint, s.PID, timeout)
}

// ProcessAlive says whether pid runs and is not a zombie, as List decides
// for a mount's process.
func ProcessAlive(pid int) bool { return processAlive(pid) }
