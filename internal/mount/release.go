package mount

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A mount outlives its unmount where another mount namespace holds a copy
// of it: libvirt starts every QEMU in a namespace of its own, copied from
// the host's, so each domain started while a vmfs mount exists keeps that
// mount (whether or not it uses it), and on a host whose root mount is
// private the unmount does not propagate there. The kernel keeps the FUSE
// connection up while any copy exists, and the serving process, waiting
// for the connection to end, never exits. Release ends such a connection
// once no file of the mount is open anywhere, by aborting it: the copies
// left in other namespaces then fail with ENOTCONN, which nothing notices
// since nothing uses them.

// Conn is a mount's FUSE connection, known by the device number of the
// mount (the number under /sys/fs/fuse/connections).
type Conn struct {
	dev uint64 // st_dev of the mount's root
}

// ConnOf returns the connection of the FUSE mount at mountpoint.
func ConnOf(mountpoint string) (Conn, error) {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return Conn{}, fmt.Errorf("%s: %w", mountpoint, err)
	}
	return Conn{dev: st.Dev}, nil
}

// ID is the connection's number in fusectl: the kernel's device number.
func (c Conn) ID() uint64 {
	return uint64(unix.Major(c.dev))<<20 | uint64(unix.Minor(c.dev))
}

// devString is the device as /proc/PID/mountinfo writes it.
func (c Conn) devString() string {
	return fmt.Sprintf("%d:%d", unix.Major(c.dev), unix.Minor(c.dev))
}

// Abort aborts the connection through fusectl: every request fails, the
// serving process's reads end, and every copy of the mount is dead. Where
// fusectl is not mounted it is mounted for the write, in a mount namespace
// of this thread's own, so that nobody else sees it.
func (c Conn) Abort() error {
	rel := filepath.Join(strconv.FormatUint(c.ID(), 10), "abort")
	if err := os.WriteFile(filepath.Join("/sys/fs/fuse/connections", rel), []byte("1"), 0); err == nil {
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		// The thread is left locked: it ends with the goroutine, and its
		// namespace with it.
		runtime.LockOSThread()
		errc <- abortPrivately(rel)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("aborting FUSE connection %d: %w", c.ID(), err)
	}
	return nil
}

func abortPrivately(rel string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("private mounts: %w", err)
	}
	dir, err := os.MkdirTemp("", "vmfs-fusectl-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := unix.Mount("fusectl", dir, "fusectl", 0, ""); err != nil {
		return fmt.Errorf("mounting fusectl: %w", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	return os.WriteFile(filepath.Join(dir, rel), []byte("1"), 0)
}

// Holders names the processes that have a file of the connection's mount
// open (in any mount namespace), as "comm (pid N)". It reads /proc only: no
// file of the mount is touched.
func (c Conn) Holders() []string {
	want := c.devString()
	procs, _ := os.ReadDir("/proc")
	byNS := map[string]map[string]bool{} // mount namespace → ids of the mount's copies
	var out []string
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		dir := filepath.Join("/proc", p.Name())
		ns, err := os.Readlink(filepath.Join(dir, "ns", "mnt"))
		if err != nil {
			continue
		}
		ids, ok := byNS[ns]
		if !ok {
			ids = mountIDs(filepath.Join(dir, "mountinfo"), want)
			byNS[ns] = ids
		}
		if len(ids) == 0 {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join(dir, "fdinfo"))
		for _, fd := range fds {
			if ids[fdMountID(filepath.Join(dir, "fdinfo", fd.Name()))] {
				comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
				out = append(out, fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid))
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// mountIDs returns the ids of the mounts of device dev in a mountinfo file.
func mountIDs(path, dev string) map[string]bool {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	ids := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && fields[2] == dev {
			ids[fields[0]] = true
		}
	}
	return ids
}

func fdMountID(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "mnt_id:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// BusyError is a mount that was not released because files of it are open.
type BusyError struct {
	Mountpoint string
	Open       int64
	Holders    []string
}

func (e *BusyError) Error() string {
	who := ""
	if len(e.Holders) > 0 {
		who = " by " + strings.Join(e.Holders, ", ")
	}
	return fmt.Sprintf("%s: busy (%d file(s) of the mount open%s): stop them, or the VM, first ('vmfs materialize --live' moves a running libvirt domain off the mount)",
		e.Mountpoint, e.Open, who)
}

// Server is what serves a mount (go-fuse's *fuse.Server).
type Server interface {
	Unmount() error
	Wait()
}

// abortAfter is how long Release lets an unmount end by itself before it
// looks for copies of the mount elsewhere.
const abortAfter = 300 * time.Millisecond

// releaseGrace is how long Release waits for the releases of files that
// no process holds any more.
const releaseGrace = 2 * time.Second

// Release ends the mount at mountpoint that srv serves, in the serving
// process: it refuses while opens (the files of the mount open now) is
// above zero, unmounts, and, where the connection stays up because
// another mount namespace holds a copy of the mount, aborts the
// connection once no file is open. It returns when srv's request loops
// have ended, or with the error that keeps the mount serving.
func Release(srv Server, mountpoint string, conn Conn, opens func() int64, log *slog.Logger) error {
	// The kernel sends a file's release after close(2) has returned, so a
	// file its last holder has just closed may still count as open: when
	// no process holds a file of the mount, wait a moment for the releases
	// in flight rather than refuse a mount that is about to be idle.
	for deadline := time.Now().Add(releaseGrace); ; time.Sleep(10 * time.Millisecond) {
		n := opens()
		if n == 0 {
			break
		}
		if holders := conn.Holders(); len(holders) > 0 || time.Now().After(deadline) {
			return &BusyError{Mountpoint: mountpoint, Open: n, Holders: holders}
		}
	}
	done := make(chan error, 1)
	if here, _ := IsMounted(mountpoint); here {
		go func() { done <- srv.Unmount() }()
	} else {
		// Unmounted here already (by umount): only copies are left.
		go func() { srv.Wait(); done <- nil }()
	}
	t := time.NewTimer(abortAfter)
	defer t.Stop()
	aborted, waiting := false, false
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
		}
		if m, _ := IsMounted(mountpoint); m || aborted {
			if aborted {
				return fmt.Errorf("%s: FUSE connection %d aborted, but its requests did not end", mountpoint, conn.ID())
			}
			t.Reset(100 * time.Millisecond) // the unmount retries
			continue
		}
		if n := opens(); n > 0 {
			if !waiting {
				log.Warn("unmounted here, but files of the mount are open in another mount namespace: serving them until they are closed",
					"open", n, "by", strings.Join(conn.Holders(), ", "))
				waiting = true
			}
			t.Reset(500 * time.Millisecond)
			continue
		}
		log.Info("the mount lives on in another mount namespace (a copy a QEMU started by libvirt keeps); no file is open: aborting its FUSE connection",
			"conn", conn.ID())
		if err := conn.Abort(); err != nil {
			return err
		}
		aborted = true
		t.Reset(10 * time.Second)
	}
}

// busyPath is where a serving process that refused to unmount says why,
// for Stop to read.
func busyPath(mountpoint string) string {
	return strings.TrimSuffix(recordPath(mountpoint), ".json") + ".busy"
}

// Refused records why the serving process of mountpoint did not unmount,
// for the `vmfs unmount` waiting for it.
func Refused(mountpoint string, err error) {
	os.WriteFile(busyPath(mountpoint), []byte(oneLine(err.Error())+"\n"), 0o600)
}
