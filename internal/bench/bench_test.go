// Package bench runs vmfs side by side with its peers on the same images
// (`make bench`): lazy reads through FUSE, cutover, mount time and memory,
// guest boot. It is test-only and skipped unless VMFS_BENCH=1.
//
// Environment:
//
//	VMFS_BENCH=1             run at all
//	VMFS_BENCH_REPS          repetitions of each measurement (default 3)
//	VMFS_BENCH_RAND          how long each random-read run lasts (default 1s)
//	VMFS_BENCH_ONLY          comma-separated sections: reads,passthrough,remote,vsphere,cutover,reflink,mount,boot,nbd
//	VMFS_BENCH_SOURCES       comma-separated read sources (default all:
//	                         vmdk,stream,qcow2,vhdx,raw)
//	VMFS_BENCH_NO_DOC=1      print the table but leave docs/benchmarks.md alone
//	VMFS_TEST_CACHE          fixtures go to $VMFS_TEST_CACHE/bench-v1
package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type settings struct {
	reps    int
	randDur time.Duration
	only    map[string]bool
	sources map[string]bool
}

func (s settings) want(section string) bool { return len(s.only) == 0 || s.only[section] }

func loadSettings() settings {
	s := settings{reps: 3, randDur: time.Second}
	if n, err := strconv.Atoi(os.Getenv("VMFS_BENCH_REPS")); err == nil && n > 0 {
		s.reps = n
	}
	if d, err := time.ParseDuration(os.Getenv("VMFS_BENCH_RAND")); err == nil && d > 0 {
		s.randDur = d
	}
	s.only = set(os.Getenv("VMFS_BENCH_ONLY"))
	s.sources = set(os.Getenv("VMFS_BENCH_SOURCES"))
	return s
}

// set parses a comma-separated list; nil when empty.
func set(v string) map[string]bool {
	if v == "" {
		return nil
	}
	m := map[string]bool{}
	for _, p := range strings.Split(v, ",") {
		m[strings.TrimSpace(p)] = true
	}
	return m
}

// TestBench is `make bench`'s side-by-side run.
func TestBench(t *testing.T) {
	if os.Getenv("VMFS_BENCH") != "1" {
		t.Skip("set VMFS_BENCH=1 (make bench) to run the benchmarks")
	}
	testenv.NeedCommands(t, "qemu-img", "fusermount3")
	if os.Geteuid() != 0 {
		testenv.Need(t, "the benchmark drops the page cache: run it as root")
	}
	s := loadSettings()
	start := time.Now()
	testenv.BuildVMFS(t)
	fx := buildFixtures(t)
	r := &report{started: time.Now(), settings: s}
	if s.want("reads") {
		t.Run("reads", func(t *testing.T) { benchReads(t, s, fx, r) })
	}
	if s.want("passthrough") {
		t.Run("passthrough", func(t *testing.T) { benchPassthrough(t, s, fx, r) })
	}
	if s.want("remote") {
		t.Run("remote", func(t *testing.T) { benchRemote(t, s, fx, r) })
	}
	if s.want("cutover") {
		t.Run("cutover", func(t *testing.T) { benchCutover(t, s, fx, r) })
	}
	if s.want("reflink") {
		t.Run("reflink", func(t *testing.T) { benchReflink(t, s, r) })
	}
	if s.want("mount") {
		t.Run("mount", func(t *testing.T) { benchMount(t, s, fx, r) })
	}
	if s.want("vsphere") {
		t.Run("vsphere", func(t *testing.T) { benchVSphere(t, s, r) })
	}
	if s.want("boot") {
		t.Run("boot", func(t *testing.T) { benchBoot(t, s, r) })
	}
	r.total = time.Since(start)
	table := r.markdown()
	fmt.Println(table)
	if os.Getenv("VMFS_BENCH_NO_DOC") != "1" {
		if err := writeDoc(filepath.Join(testenv.RepoRoot(t), "docs", "benchmarks.md"), table); err != nil {
			t.Errorf("bench: %v", err)
		}
	}
}

// readStats are one tool's runs on one source.
type readStats struct {
	source, tool       string
	cold, warm, r1, r4 []float64
	err                string
}

func benchReads(t *testing.T, s settings, fx *fixtures, r *report) {
	raw := fixture{Name: "raw", Path: fx.Raw, Format: "raw", Raw: fx.Raw, Size: smallSize}
	type config struct {
		tl tool
		fx fixture
		st *readStats
	}
	var configs []config
	for _, src := range append(append([]fixture{}, fx.Small...), raw) {
		if s.sources != nil && !s.sources[src.Name] {
			continue
		}
		for _, tl := range tools() {
			if !tl.has(src.Name) {
				continue
			}
			st := &readStats{source: src.Name, tool: tl.Name}
			if !tl.available() {
				st.err = "not installed: " + strings.Join(tl.Needs, ", ")
				r.reads = append(r.reads, st)
				continue
			}
			configs = append(configs, config{tl, src, st})
			r.reads = append(r.reads, st)
		}
	}
	buf := make([]byte, seqBlock)
	for rep := 0; rep < s.reps; rep++ {
		for _, c := range configs {
			if c.st.err != "" {
				continue
			}
			phases := []struct {
				name string
				run  func(m *mounted) (float64, error)
				out  *[]float64
			}{
				{"seq-cold", func(m *mounted) (float64, error) {
					if err := dropCaches(); err != nil {
						return 0, err
					}
					return seqRead(m.File, c.fx.Size, buf)
				}, &c.st.cold},
				{"seq-warm", func(m *mounted) (float64, error) { return seqRead(m.File, c.fx.Size, buf) }, &c.st.warm},
				{"rand-1", func(m *mounted) (float64, error) {
					return randRead(m.File, c.fx.Size, 1, s.randDur, uint64(rep))
				}, &c.st.r1},
				{"rand-4", func(m *mounted) (float64, error) {
					return randRead(m.File, c.fx.Size, 4, s.randDur, uint64(rep))
				}, &c.st.r4},
			}
			for _, p := range phases {
				m, err := c.tl.Mount(t, c.fx)
				if err != nil {
					c.st.err = oneLine(err)
					t.Logf("%s on %s: %v", c.tl.Name, c.fx.Name, err)
					break
				}
				v, err := p.run(m)
				if serr := m.stop(); serr != nil {
					t.Errorf("%s on %s: %v", c.tl.Name, c.fx.Name, serr)
				}
				if err != nil {
					c.st.err = oneLine(err)
					t.Errorf("%s on %s: %s: %v", c.tl.Name, c.fx.Name, p.name, err)
					break
				}
				*p.out = append(*p.out, v)
			}
			t.Logf("rep %d %-20s %-7s cold %7.0f warm %7.0f MB/s  rand1 %6.0f rand4 %6.0f /s", rep+1, c.tl.Name, c.fx.Name,
				last(c.st.cold), last(c.st.warm), last(c.st.r1), last(c.st.r4))
		}
	}
}

// cutStats are one tool's runs on one cutover case.
type cutStats struct {
	cas, tool string
	secs      []float64
	size      int64
	same      string
}

func benchCutover(t *testing.T, s settings, fx *fixtures, r *report) {
	vmfs := testenv.BuildVMFS(t)
	type run struct {
		tool string
		cmd  func(out string) *exec.Cmd
		out  func(dir string) string // the output image
	}
	matz := func(src fixture, format string) run {
		return run{"vmfs materialize", func(dir string) *exec.Cmd {
			return exec.Command(vmfs, "materialize", "--to", "qemu", "--format", format, "--progress", "none", src.Path, dir)
		}, func(dir string) string {
			m, _ := filepath.Glob(filepath.Join(dir, "*-disk0."+format))
			if len(m) == 1 {
				return m[0]
			}
			return filepath.Join(dir, "missing-disk0."+format)
		}}
	}
	conv := func(src fixture, format string) run {
		return run{"qemu-img convert", func(dir string) *exec.Cmd {
			return exec.Command("qemu-img", "convert", "-f", src.Format, "-O", format, src.Path, filepath.Join(dir, "out."+format))
		}, func(dir string) string { return filepath.Join(dir, "out."+format) }}
	}
	type cutCase struct {
		name   string
		format string
		runs   []run
		work   string // the output directory
	}
	disk := filepath.Join(fx.Dir, "cutover-out")
	cases := []cutCase{
		{"vmdk → raw", "raw", []run{matz(fx.byName("vmdk"), "raw"), conv(fx.byName("vmdk"), "raw")}, disk},
		{"vmdk → qcow2", "qcow2", []run{matz(fx.byName("vmdk"), "qcow2"), conv(fx.byName("vmdk"), "qcow2")}, disk},
		{"streamOptimized → qcow2", "qcow2", []run{matz(fx.byName("stream"), "qcow2"), conv(fx.byName("stream"), "qcow2")}, disk},
		{"raw → raw", "raw", []run{{"cp --sparse=always", func(dir string) *exec.Cmd {
			return exec.Command("cp", "--sparse=always", fx.Raw, filepath.Join(dir, "out.raw"))
		}, func(dir string) string { return filepath.Join(dir, "out.raw") }}}, disk},
	}
	// The same conversions into tmpfs: on this machine's disk every tool
	// waits for the same write bandwidth; in memory the tools' own work
	// shows.
	if shm := tmpfsDir(6 << 30); shm != "" {
		for _, c := range cases[:3] {
			c.name += " (tmpfs)"
			c.work = shm
			cases = append(cases, c)
		}
		defer os.RemoveAll(shm)
	}
	stats := map[string]*cutStats{}
	for _, c := range cases {
		for _, rn := range c.runs {
			st := &cutStats{cas: c.name, tool: rn.tool}
			stats[c.name+"|"+rn.tool] = st
			r.cutover = append(r.cutover, st)
		}
	}
	for rep := 0; rep < s.reps; rep++ {
		for _, c := range cases {
			work := c.work
			for _, rn := range c.runs {
				st := stats[c.name+"|"+rn.tool]
				os.RemoveAll(work)
				if err := os.MkdirAll(work, 0o755); err != nil {
					t.Fatal(err)
				}
				syscallSync()
				cmd := rn.cmd(work)
				start := time.Now()
				out, err := cmd.CombinedOutput()
				if err == nil {
					err = fsyncFile(rn.out(work))
				}
				d := time.Since(start)
				if err != nil {
					st.same = "failed: " + oneLine(fmt.Errorf("%v %s", err, out))
					t.Errorf("%s: %s: %v: %s", c.name, rn.tool, err, out)
					continue
				}
				st.secs = append(st.secs, d.Seconds())
				if fi, err := os.Stat(rn.out(work)); err == nil {
					st.size = fi.Size()
				}
				if rep == 0 {
					cmp := exec.Command("qemu-img", "compare", "-f", "raw", "-F", c.format, fx.Raw, rn.out(work))
					if o, err := cmp.CombinedOutput(); err != nil {
						st.same = "DIFFERS"
						t.Errorf("%s: %s: output differs from the source: %v %s", c.name, rn.tool, err, o)
					} else {
						st.same = "identical"
					}
				}
				t.Logf("rep %d %-24s %-18s %6.2fs", rep+1, c.name, rn.tool, d.Seconds())
			}
		}
	}
	os.RemoveAll(disk)
}

// tmpfsDir is a directory in /dev/shm when that is a tmpfs with free bytes
// to spare, else "".
func tmpfsDir(free int64) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != 0x01021994 || int64(st.Bavail)*st.Bsize < free {
		return ""
	}
	return "/dev/shm/vmfs-bench-cutover"
}

func syscallSync() { _ = exec.Command("sync").Run() }

func fsyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// mountStats are one tool's mounts of one image.
type mountStats struct {
	image, tool string
	ms          []float64
	hwmKiB      []float64 // VmHWM right after the mount
	readHWMKiB  []float64 // VmHWM after a full sequential read
	readAnonKiB []float64 // RssAnon after it: the memory no other process shares
	err         string
}

func benchMount(t *testing.T, s settings, fx *fixtures, r *report) {
	images := []fixture{
		{Name: "1 TiB sparse VMDK (1 GiB data)", Path: fx.BigVMD, Format: "vmdk", Size: bigSize},
		{Name: "4 GiB VMDK (1.5 GiB data)", Path: fx.byName("vmdk").Path, Format: "vmdk", Size: smallSize},
	}
	var tls []tool
	for _, tl := range tools() {
		if tl.has("vmdk") {
			tls = append(tls, tl)
		}
	}
	stats := map[string]*mountStats{}
	for _, im := range images {
		for _, tl := range tls {
			st := &mountStats{image: im.Name, tool: tl.Name}
			if !tl.available() {
				st.err = "not installed"
			}
			stats[im.Name+"|"+tl.Name] = st
			r.mounts = append(r.mounts, st)
		}
	}
	buf := make([]byte, seqBlock)
	for rep := 0; rep < s.reps; rep++ {
		for _, im := range images {
			for _, tl := range tls {
				st := stats[im.Name+"|"+tl.Name]
				if st.err != "" {
					continue
				}
				start := time.Now()
				m, err := tl.Mount(t, im)
				if err == nil {
					_, err = os.ReadDir(filepath.Dir(m.File))
				}
				d := time.Since(start)
				if err != nil {
					st.err = oneLine(err)
					continue
				}
				st.ms = append(st.ms, float64(d.Microseconds())/1000)
				if m.PID == 0 && m.lookupPID != nil {
					m.PID = m.lookupPID()
				}
				if m.PID > 0 {
					hwm, _ := memKiB(m.PID)
					st.hwmKiB = append(st.hwmKiB, float64(hwm))
					if im.Size <= smallSize {
						if _, err := seqRead(m.File, im.Size, buf); err != nil {
							t.Errorf("%s: %s: %v", im.Name, tl.Name, err)
						}
						ps := procStatus(m.PID)
						st.readHWMKiB = append(st.readHWMKiB, float64(ps["VmHWM"]))
						st.readAnonKiB = append(st.readAnonKiB, float64(ps["RssAnon"]))
					}
				}
				if err := m.stop(); err != nil {
					t.Errorf("%s: %s: %v", im.Name, tl.Name, err)
				}
				t.Logf("rep %d %-32s %-20s ready %7.1f ms", rep+1, im.Name, tl.Name, last(st.ms))
			}
		}
	}
}

// bootStats are the boot times of the test guest.
type bootStats struct {
	local, mount []float64
	note         string
}

func benchBoot(t *testing.T, s settings, r *report) {
	r.boot = &bootStats{}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		r.boot.note = "skipped: qemu-system-x86_64 not installed"
		return
	}
	g := testenv.Guest(t)
	vmx := g.VM(t, testenv.VMLinuxBIOS)
	reps := min(s.reps, 2)
	for rep := 0; rep < reps; rep++ {
		// Local copy: the cutover's output.
		dir := t.TempDir()
		if _, err := testenv.VMFS(t, "materialize", "--format", "raw", "--progress", "none", vmx, dir); err != nil {
			r.boot.note = "failed: " + oneLine(err)
			t.Error(err)
			return
		}
		xml, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
		if len(xml) != 1 {
			t.Fatalf("materialize wrote %d .xml files", len(xml))
		}
		r.boot.local = append(r.boot.local, bootOnce(t, xml[0]))

		mnt := testenv.MountDir(t)
		testenv.Mount(t, "--overlay", t.TempDir(), "--fresh", "--format", "raw", vmx, mnt)
		xml, _ = filepath.Glob(filepath.Join(mnt, "*.xml"))
		if len(xml) != 1 {
			t.Fatalf("the mount shows %d .xml files", len(xml))
		}
		r.boot.mount = append(r.boot.mount, bootOnce(t, xml[0]))
		if err := testenv.Unmount(t, mnt); err != nil {
			t.Error(err)
		}
		t.Logf("rep %d boot local %.2fs mount %.2fs", rep+1, last(r.boot.local), last(r.boot.mount))
	}
	r.boot.note = fmt.Sprintf("linux-bios test guest, QEMU %s, until it powers off", testenv.AccelReal())
}

func bootOnce(t *testing.T, xml string) float64 {
	vm := testenv.BootDomainXML(t, xml, testenv.AccelReal())
	vm.WaitFor(t, testenv.GuestDone, testenv.BootTimeout())
	return vm.WaitExit(t, testenv.BootTimeout()).Seconds()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func last(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return v[len(v)-1]
}

func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

var _ = runtime.NumCPU
