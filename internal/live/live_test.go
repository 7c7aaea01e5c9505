package live

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// liveRun is one `vmfs materialize --live` running.
type liveRun struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	events chan map[string]any
	lines  []string // stdout
	mu     sync.Mutex
	done   chan struct{}
	code   int
}

// startLive starts vmfs materialize --live with args, env added.
func startLive(t *testing.T, env []string, args ...string) *liveRun {
	t.Helper()
	bin := testenv.BuildVMFS(t)
	r := &liveRun{events: make(chan map[string]any, 1000), done: make(chan struct{})}
	r.cmd = exec.Command(bin, append([]string{"materialize", "--live"}, args...)...)
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stderr = &r.stderr
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, sc.Text())
			r.mu.Unlock()
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				select {
				case r.events <- ev:
				default:
				}
			}
		}
		err := r.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			r.code = -1
		}
		close(r.events)
		close(r.done)
	}()
	return r
}

// waitCopying waits for the first progress event of a copy not yet in sync.
func (r *liveRun) waitCopying(t *testing.T) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-r.events:
			if !ok {
				t.Fatalf("vmfs exited (%d) before copying: %s", r.code, r.stderr.String())
			}
			if ev["event"] == "copy_progress" {
				if ev["ready"] == true {
					t.Fatalf("the copy was in sync at once (the bandwidth limit did not hold): %v", ev)
				}
				return
			}
		case <-timeout:
			t.Fatalf("no copy_progress event within a minute: %s", r.stderr.String())
		}
	}
}

// wait waits for vmfs to exit and returns its exit code and stderr.
func (r *liveRun) wait(t *testing.T) (int, string) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("vmfs materialize --live did not end: %s", r.stderr.String())
	}
	return r.code, r.stderr.String()
}

func (r *liveRun) stdout() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// vm is the guest under test: a libvirt domain started from the mount.
type vm struct {
	g     *testenv.Guests
	dom   *testenv.Domain
	mnt   string
	disk  string // the domain's disk file in the mount
	start int    // the count when the test began
}

func (v *vm) virsh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := testenv.Virsh(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// onMount checks what every failure must leave: the guest running on the
// mount and still counting, no pivot, and no file under a final name in
// dest. It returns whether a copy job is still active (one that the
// failed run could not end).
func (v *vm) onMount(t *testing.T, dest string) bool {
	t.Helper()
	if st := strings.TrimSpace(v.virsh(t, "domstate", v.dom.Name)); st != "running" {
		t.Fatalf("domain %s is %q, want running", v.dom.Name, st)
	}
	if bl := v.virsh(t, "domblklist", v.dom.Name); !strings.Contains(bl, v.disk) {
		t.Fatalf("domblklist does not name the mount's disk %s:\n%s", v.disk, bl)
	}
	ents, _ := os.ReadDir(dest)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			t.Errorf("%s holds %s after the failure", dest, e.Name())
		}
	}
	n := testenv.LastCount(v.dom.Output())
	deadline := time.Now().Add(time.Minute)
	for testenv.LastCount(v.dom.Output()) < n+2 {
		if time.Now().After(deadline) {
			t.Fatalf("the guest stopped counting at %d:\n%s", n, tailOf(v.dom.Output()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	info, err := testenv.Virsh("blockjob", v.dom.Name, "sda", "--raw")
	return err == nil && strings.Contains(info, "cur=")
}

func tailOf(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

// oneLineError checks that stderr ends in one error line holding want.
func oneLineError(t *testing.T, code int, stderr, want string) {
	t.Helper()
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	var j struct{ Error string }
	if json.Unmarshal([]byte(last), &j) == nil && j.Error != "" {
		last = "vmfs: " + j.Error // --progress=json: the error as JSON
	}
	if !strings.HasPrefix(last, "vmfs: ") || !strings.Contains(last, want) {
		t.Fatalf("last line of stderr is %q, want a one-line error holding %q; stderr:\n%s", last, want, stderr)
	}
}

// smallFS mounts a tmpfs of size bytes, traversable by QEMU.
func smallFS(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)+",mode=0777"); err != nil {
		testenv.Need(t, "cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	testenv.Traversable(t, dir)
	return dir
}

// destDir is a new empty DESTDIR QEMU can reach.
func destDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "dest")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.Traversable(t, d)
	return d
}

// proxy forwards a unix socket to libvirt's, and can drop every
// connection as libvirtd going away does.
type proxy struct {
	path  string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t *testing.T) *proxy {
	t.Helper()
	p := &proxy{path: filepath.Join(t.TempDir(), "libvirt.sock")}
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	t.Cleanup(p.stop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", "/run/libvirt/libvirt-sock")
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
}

// TestLiveCutover starts the counting guest under libvirt from a mount,
// makes each failure happen to a cutover in turn (the destination fills
// up, the copy job is aborted, vmfs is interrupted or killed, libvirt goes
// away), each of
// which must leave the guest running on the mount, then moves it for real
// with --verify, and checks the guest runs on the copy, the definitions
// name only DESTDIR, the mount and its process are gone, the guest's
// writes land on the copy, and a new boot starts from it.
func TestLiveCutover(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Linux under libvirt")
	}
	if os.Geteuid() != 0 {
		testenv.Need(t, "root (libvirt's system daemon, FUSE, tmpfs)")
	}
	testenv.NeedCommands(t, "qemu-img", "virsh")
	g := testenv.Guest(t)
	testenv.StartLibvirt(t)
	began := time.Now()
	vmx := g.CounterVM(t, nil)
	srcDir := filepath.Dir(vmx)
	srcBefore := testenv.SHA256Tree(t, srcDir)
	// QEMU's mount namespace is a copy of the host's made when it starts:
	// DESTDIRs on their own file systems are mounted before.
	full := smallFS(t, 8<<20)
	mnt := testenv.MountDir(t)
	testenv.Mount(t, "--to", "libvirt", "--format", "qcow2", "--overlay", t.TempDir(), vmx, mnt)
	rec, ok := mount.Lookup(mnt)
	if !ok {
		t.Fatalf("no registry record for %s", mnt)
	}
	xmls, _ := filepath.Glob(filepath.Join(mnt, "*.xml"))
	if len(xmls) != 1 {
		t.Fatalf("%s: %d domain XMLs", mnt, len(xmls))
	}
	disks, _ := filepath.Glob(filepath.Join(mnt, "*.qcow2"))
	if len(disks) != 1 {
		t.Fatalf("%s: %d disks", mnt, len(disks))
	}
	v := &vm{g: g, mnt: mnt, disk: disks[0]}
	v.dom = testenv.StartDomain(t, xmls[0], testenv.AccelReal())
	v.dom.WaitFor(t, testenv.CounterTick+"2", testenv.BootTimeout())
	t.Logf("booted from the mount in %v", time.Since(began).Round(time.Millisecond))

	t.Run("unknown-domain", func(t *testing.T) {
		dest := destDir(t)
		code, stderr := startLive(t, nil, "--domain", "no-such-domain", mnt, dest).wait(t)
		oneLineError(t, code, stderr, "domain no-such-domain is not running, or uses no file of the mount")
		v.onMount(t, dest)
		// A DESTDIR that was not there is not made when nothing moves.
		fresh := filepath.Join(t.TempDir(), "new")
		code, stderr = startLive(t, nil, "--domain", "no-such-domain", mnt, fresh).wait(t)
		oneLineError(t, code, stderr, "domain no-such-domain is not running, or uses no file of the mount")
		if _, err := os.Stat(fresh); err == nil {
			t.Errorf("%s was made by a run that moved nothing", fresh)
		}
	})
	t.Run("destination-full", func(t *testing.T) {
		code, stderr := startLive(t, nil, mnt, full).wait(t)
		oneLineError(t, code, stderr, "no space left on "+full)
		if v.onMount(t, full) {
			t.Errorf("a copy job is still running after the failure")
		}
	})
	t.Run("job-aborted", func(t *testing.T) {
		dest := destDir(t)
		r := startLive(t, nil, "--bandwidth", "1", "--progress", "json", mnt, dest)
		r.waitCopying(t)
		v.virsh(t, "blockjob", v.dom.Name, "sda", "--abort")
		code, stderr := r.wait(t)
		oneLineError(t, code, stderr, "ended before it was in sync")
		if v.onMount(t, dest) {
			t.Errorf("a copy job is still running after the failure")
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		dest := destDir(t)
		r := startLive(t, nil, "--bandwidth", "1", "--progress", "json", mnt, dest)
		r.waitCopying(t)
		r.cmd.Process.Signal(syscall.SIGTERM)
		code, stderr := r.wait(t)
		oneLineError(t, code, stderr, "interrupted")
		if v.onMount(t, dest) {
			t.Errorf("a copy job is still running after the interrupt")
		}
	})
	dest := destDir(t) // the next runs all go to this one
	t.Run("vmfs-killed", func(t *testing.T) {
		r := startLive(t, nil, "--bandwidth", "1", "--progress", "json", mnt, dest)
		r.waitCopying(t)
		r.cmd.Process.Signal(syscall.SIGKILL)
		r.wait(t)
		if !v.onMount(t, dest) {
			t.Errorf("the copy job is gone with vmfs: expected it to run on in libvirt")
		}
	})
	t.Run("libvirt-lost", func(t *testing.T) {
		p := startProxy(t)
		r := startLive(t, []string{"LIBVIRT_DEFAULT_URI=qemu+unix:///system?socket=" + p.path},
			"--bandwidth", "1", "--progress", "json", mnt, dest)
		r.waitCopying(t)
		p.stop()
		code, stderr := r.wait(t)
		oneLineError(t, code, stderr, "libvirt stopped answering")
		if !v.onMount(t, dest) {
			t.Errorf("the copy job is gone: expected it to run on in libvirt, out of vmfs's reach")
		}
	})
	t.Run("libvirtd-restarted", func(t *testing.T) {
		// Stops the libvirtd other test processes share: only when asked.
		if os.Getenv("VMFS_TEST_RESTART_LIBVIRTD") != "1" {
			t.Skip("restarts the shared libvirtd: VMFS_TEST_RESTART_LIBVIRTD=1 runs it")
		}
		r := startLive(t, nil, "--bandwidth", "1", "--progress", "json", mnt, dest)
		r.waitCopying(t)
		out, err := exec.Command("pidof", "libvirtd").Output()
		if err != nil {
			t.Fatalf("pidof libvirtd: %v", err)
		}
		for _, f := range strings.Fields(string(out)) {
			pid, _ := strconv.Atoi(f)
			syscall.Kill(pid, syscall.SIGTERM)
		}
		code, stderr := r.wait(t)
		oneLineError(t, code, stderr, "libvirt stopped answering")
		testenv.ReviveLibvirt(t)
		if !v.onMount(t, dest) {
			t.Errorf("the copy job did not survive libvirtd's restart")
		}
	})
	t.Run("cutover", func(t *testing.T) {
		before := testenv.LastCount(v.dom.Output())
		r := startLive(t, nil, "--verify", "--domain", v.dom.Name, "--progress", "json", mnt, dest)
		code, stderr := r.wait(t)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		schema := eventSchema(t)
		var done map[string]any
		for _, line := range r.stdout() {
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(line))
			if err != nil {
				t.Fatalf("not JSON: %q", line)
			}
			if err := schema.Validate(doc); err != nil {
				t.Errorf("event %s: %v", line, err)
			}
			var ev map[string]any
			json.Unmarshal([]byte(line), &ev)
			if ev["event"] == "live_done" {
				done = ev
			}
		}
		if done == nil || done["verified"] != true || done["released"] != true {
			t.Fatalf("live_done: %v\nstdout:\n%s\nstderr:\n%s", done, strings.Join(r.stdout(), "\n"), stderr)
		}
		copyPath := filepath.Join(dest, strings.TrimSuffix(filepath.Base(v.disk), ".qcow2")+".qcow2")
		if st := strings.TrimSpace(v.virsh(t, "domstate", v.dom.Name)); st != "running" {
			t.Fatalf("domain %s is %q after the cutover", v.dom.Name, st)
		}
		for _, which := range [][]string{{"domblklist", v.dom.Name}, {"dumpxml", v.dom.Name}, {"dumpxml", "--inactive", v.dom.Name}} {
			out := v.virsh(t, which...)
			if strings.Contains(out, mnt) {
				t.Errorf("virsh %s still names the mount %s:\n%s", strings.Join(which, " "), mnt, out)
			}
			if !strings.Contains(out, copyPath) {
				t.Errorf("virsh %s does not name the copy %s:\n%s", strings.Join(which, " "), copyPath, out)
			}
		}
		if _, err := os.Stat(filepath.Join(dest, v.dom.Name+".xml")); err != nil {
			t.Errorf("no definition written into DESTDIR: %v", err)
		}
		// Released: gone from the kernel's list, its process gone, its
		// record gone.
		if b, _ := os.ReadFile("/proc/mounts"); strings.Contains(string(b), " "+mnt+" ") {
			t.Errorf("%s still in /proc/mounts", mnt)
		}
		if alive(rec.PID) {
			t.Errorf("the mount's vmfs process %d still runs", rec.PID)
		}
		if _, ok := mount.Lookup(mnt); ok {
			t.Errorf("the registry still has a record of %s", mnt)
		}
		// The guest writes on, to the copy.
		c1 := g.DiskCount(t, copyPath, "qcow2")
		if c1 < before {
			t.Errorf("the copy holds count %d, the guest had printed %d before the cutover", c1, before)
		}
		deadline := time.Now().Add(time.Minute)
		for g.DiskCount(t, copyPath, "qcow2") < c1+2 {
			if time.Now().After(deadline) {
				t.Fatalf("the count on the copy stays at %d:\n%s", c1, tailOf(v.dom.Output()))
			}
			time.Sleep(200 * time.Millisecond)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(copyPath, &st); err == nil && st.Blocks*512 > 32<<20 {
			t.Errorf("%s: %d bytes allocated for a 64 MiB disk of mostly zeros", copyPath, st.Blocks*512)
		}
		testenv.CheckSame(t, "source "+srcDir, srcBefore, testenv.SHA256Tree(t, srcDir))

		// A new boot starts from the copy: it reads the count the
		// guest left there.
		v.virsh(t, "destroy", v.dom.Name)
		last := g.DiskCount(t, copyPath, "qcow2")
		v.virsh(t, "start", v.dom.Name)
		v.dom.WaitFor(t, testenv.CounterBoot+strconv.Itoa(last), testenv.BootTimeout())
		v.dom.WaitFor(t, testenv.CounterTick+strconv.Itoa(last+1), testenv.BootTimeout())
	})
	t.Logf("whole test: %v", time.Since(began).Round(time.Millisecond))
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || (b[i+2] != 'Z' && b[i+2] != 'X')
}

func eventSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	s, err := c.Compile(filepath.Join(testenv.RepoRoot(t), "docs", "vmfs.schema.json") + "#/$defs/event")
	if err != nil {
		t.Fatal(err)
	}
	return s
}
