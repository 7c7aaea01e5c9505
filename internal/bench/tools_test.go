package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/testenv"
)

// mounted is one disk shown as a file by some tool.
type mounted struct {
	File string // the disk as a regular file
	PID  int    // the serving process (0: unknown)
	// lookupPID finds PID when it costs a command (called once the
	// mount is timed), or is nil.
	lookupPID func() int
	stop      func() error
}

// tool shows a fixture as a file: vmfs or one of its peers.
type tool struct {
	Name    string
	Needs   []string
	Formats []string // fixture names it is run on
	Mount   func(t *testing.T, fx fixture) (*mounted, error)
}

func (tl tool) has(name string) bool {
	for _, f := range tl.Formats {
		if f == name {
			return true
		}
	}
	return false
}

func (tl tool) available() bool {
	for _, c := range tl.Needs {
		if _, err := exec.LookPath(c); err != nil {
			return false
		}
	}
	return true
}

var allFormats = []string{"vmdk", "stream", "qcow2", "vhdx"}

// tools returns vmfs first, then its peers, then the ceiling.
func tools() []tool {
	return []tool{
		{Name: "vmfs", Needs: []string{"fusermount3"}, Formats: allFormats, Mount: mountVMFS},
		{Name: "qemu-storage-daemon", Needs: []string{"qemu-storage-daemon"}, Formats: allFormats, Mount: mountQSD},
		{Name: "vmdkmount", Needs: []string{"vmdkmount", "fusermount3"}, Formats: []string{"vmdk", "stream"}, Mount: mountVmdkmount},
		{Name: "nbdfuse+qemu-nbd", Needs: []string{"nbdfuse", "qemu-nbd", "fusermount3"}, Formats: []string{"vmdk"}, Mount: mountNbdfuse},
		{Name: "xmount (raw input)", Needs: []string{"xmount", "fusermount3"}, Formats: []string{"raw"}, Mount: mountXmount},
		{Name: "raw file (ceiling)", Formats: []string{"raw"}, Mount: func(t *testing.T, fx fixture) (*mounted, error) {
			return &mounted{File: fx.Path, stop: func() error { return nil }}, nil
		}},
	}
}

// mountVMFS mounts fx read-only as raw with `vmfs mount --daemon`.
func mountVMFS(t *testing.T, fx fixture) (*mounted, error) {
	mnt := testenv.MountDir(t)
	if _, err := testenv.TryMount(t, "--read-only", "--format", "raw", fx.Path, mnt); err != nil {
		return nil, err
	}
	m := &mounted{stop: func() error { return testenv.Unmount(t, mnt) }}
	disks, _ := filepath.Glob(filepath.Join(mnt, "*-disk0.raw"))
	if len(disks) != 1 {
		m.stop()
		return nil, fmt.Errorf("vmfs mount of %s shows %d disks", fx.Path, len(disks))
	}
	m.File = disks[0]
	// Listed with its size, as the peers' files are waited for.
	if st, err := os.Stat(m.File); err != nil || st.Size() != fx.Size {
		m.stop()
		return nil, fmt.Errorf("vmfs mount of %s: disk %s: size %v, want %d (%v)", fx.Path, m.File, sizeOf(st), fx.Size, err)
	}
	// The daemon's pid is asked for after the clock stops: `vmfs
	// status` is one more process start, not part of mounting.
	m.lookupPID = func() int { return vmfsPID(t, mnt) }
	return m, nil
}

// vmfsPID is the pid of the daemon serving mnt, from `vmfs status --json`.
func vmfsPID(t *testing.T, mnt string) int {
	out, err := testenv.VMFS(t, "status", "--json", mnt)
	if err != nil {
		return 0
	}
	var recs struct {
		Mounts []struct {
			Mountpoint string `json:"mountpoint"`
			PID        int    `json:"pid"`
		} `json:"mounts"`
	}
	if json.Unmarshal(out, &recs) != nil {
		return 0
	}
	for _, r := range recs.Mounts {
		if r.Mountpoint == mnt {
			return r.PID
		}
	}
	return 0
}

// mountQSD exports fx with qemu-storage-daemon's FUSE export, whose
// mountpoint is a regular file.
func mountQSD(t *testing.T, fx fixture) (*mounted, error) {
	dir := t.TempDir()
	file := filepath.Join(dir, "disk.img")
	pidf := filepath.Join(dir, "qsd.pid")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command("qemu-storage-daemon",
		"--blockdev", "driver=file,node-name=file0,filename="+fx.Path+",read-only=on",
		"--blockdev", "driver="+fx.Format+",node-name=disk0,file=file0,read-only=on",
		"--export", "type=fuse,id=exp0,node-name=disk0,mountpoint="+file,
		"--pidfile", pidf, "--daemonize")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("qemu-storage-daemon: %v: %s", err, out)
	}
	b, _ := os.ReadFile(pidf)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	stop := func() error {
		if pid > 0 {
			if p, err := os.FindProcess(pid); err == nil {
				p.Signal(os.Interrupt)
			}
		}
		if !waitGone(pid, file, 10*time.Second) {
			exec.Command("fusermount3", "-u", "-z", file).Run()
			return fmt.Errorf("qemu-storage-daemon %d did not exit", pid)
		}
		return nil
	}
	if err := waitSize(file, fx.Size, 10*time.Second); err != nil {
		stop()
		return nil, err
	}
	return &mounted{File: file, PID: pid, stop: stop}, nil
}

// mountVmdkmount mounts fx with libvmdk's vmdkmount (which daemonizes).
func mountVmdkmount(t *testing.T, fx fixture) (*mounted, error) {
	dir := testenv.MountDir(t)
	if out, err := exec.Command("vmdkmount", fx.Path, dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("vmdkmount: %v: %s", err, out)
	}
	return fuseDir(dir, filepath.Join(dir, "vmdk1"), fx.Size, nil)
}

// mountXmount mounts the raw image through xmount (raw in, raw out).
func mountXmount(t *testing.T, fx fixture) (*mounted, error) {
	dir := testenv.MountDir(t)
	if out, err := exec.Command("xmount", "--in", "raw", fx.Path, "--out", "raw", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("xmount: %v: %s", err, out)
	}
	base := strings.TrimSuffix(filepath.Base(fx.Path), filepath.Ext(fx.Path))
	return fuseDir(dir, filepath.Join(dir, base+".dd"), fx.Size, nil)
}

// mountNbdfuse serves fx with qemu-nbd and shows it with nbdfuse, which
// starts qemu-nbd itself on a private socket.
func mountNbdfuse(t *testing.T, fx fixture) (*mounted, error) {
	dir := testenv.MountDir(t)
	cmd := exec.Command("nbdfuse", "-r", dir, "[", "qemu-nbd", "-r", "-f", fx.Format, fx.Path, "]")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	wait := func() error {
		select {
		case <-done:
			return nil
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("nbdfuse did not exit")
		}
	}
	return fuseDir(dir, filepath.Join(dir, "nbd"), fx.Size, wait)
}

// fuseDir waits until file (inside the FUSE mount dir) has size bytes and
// returns it with a stop that unmounts dir and then runs wait.
func fuseDir(dir, file string, size int64, wait func() error) (*mounted, error) {
	pid := 0
	stop := func() error {
		var err error
		if testenv.IsMounted(dir) {
			if out, e := exec.Command("fusermount3", "-u", dir).CombinedOutput(); e != nil {
				err = fmt.Errorf("fusermount3 -u %s: %v %s", dir, e, out)
				exec.Command("fusermount3", "-u", "-z", dir).Run()
			}
		}
		if wait != nil {
			if e := wait(); e != nil && err == nil {
				err = e
			}
		}
		if pid > 0 && !waitGone(pid, "", 10*time.Second) {
			// Slow to exit on a loaded machine (vmdkmount once took over
			// 10 s): end it rather than leave it behind.
			if p, e := os.FindProcess(pid); e == nil {
				p.Kill()
			}
			if !waitGone(pid, "", 5*time.Second) && err == nil {
				err = fmt.Errorf("process %d still running after unmount and SIGKILL", pid)
			}
		}
		return err
	}
	if err := waitSize(file, size, 10*time.Second); err != nil {
		stop()
		return nil, err
	}
	pid = pidServing(dir)
	return &mounted{File: file, PID: pid, stop: stop}, nil
}

func waitSize(file string, size int64, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		fi, err := os.Stat(file)
		if err == nil && fi.Size() == size {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("size %d, want %d", fi.Size(), size)
			}
			return fmt.Errorf("%s not served after %v: %v", file, d, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitGone waits until pid has exited and path (if any) is no longer a
// mountpoint.
func waitGone(pid int, path string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		alive := false
		if pid > 0 {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
				// A zombie child counts as gone.
				f := strings.Fields(string(b))
				alive = len(f) < 3 || f[2] != "Z"
			}
		}
		if !alive && (path == "" || !testenv.IsMounted(path)) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pidServing finds the process whose command line names dir (the peers
// that daemonize do not say their pid).
func pidServing(dir string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == dir {
				return pid
			}
		}
	}
	return 0
}

// memKiB reads VmHWM and VmRSS of pid in KiB.
func memKiB(pid int) (hwm, rss int64) {
	m := procStatus(pid)
	return m["VmHWM"], m["VmRSS"]
}

// procStatus reads the kB figures of /proc/pid/status (-1 each when the
// process is gone).
func procStatus(pid int) map[string]int64 {
	out := map[string]int64{"VmHWM": -1, "VmRSS": -1, "RssAnon": -1}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.HasSuffix(v, " kB") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err == nil {
			out[k] = n
		}
	}
	return out
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return -1
	}
	return st.Size()
}
