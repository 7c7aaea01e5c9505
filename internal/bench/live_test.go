package bench

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/testenv"
)

// tickWatch notes when each new count of the counting guest appears on
// its serial port, to measure the guest's downtime: the longest gap
// between two counts, less the guest's own interval.
type tickWatch struct {
	mu    sync.Mutex
	last  time.Time
	seen  int
	gap   time.Duration
	stop  chan struct{}
	done  chan struct{}
	reads func() string
}

func watchTicks(reads func() string) *tickWatch {
	w := &tickWatch{reads: reads, stop: make(chan struct{}), done: make(chan struct{}), last: time.Now(), seen: -1}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			n := testenv.LastCount(w.reads())
			now := time.Now()
			w.mu.Lock()
			if n != w.seen {
				if w.seen >= 0 {
					w.gap = max(w.gap, now.Sub(w.last))
				}
				w.seen, w.last = n, now
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// end stops the watch and returns the longest gap between counts.
func (w *tickWatch) end() time.Duration {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return max(w.gap, time.Since(w.last))
}

// TestBenchLive compares, on the same VM (the counting guest with a 1 GiB
// disk holding 512 MiB, booted from a mount under libvirt), a live
// cutover with the stop + materialize + start it replaces: the time of
// each and the guest's downtime in each. VMFS_BENCH_LIVE=1 (make
// bench-live) runs it.
func TestBenchLive(t *testing.T) {
	if os.Getenv("VMFS_BENCH_LIVE") != "1" {
		t.Skip("set VMFS_BENCH_LIVE=1 (make bench-live) to run it")
	}
	g := testenv.Guest(t)
	testenv.StartLibvirt(t)
	accel := testenv.AccelReal()
	vmx := g.CounterVM(t, func(raw string) {
		// 1 GiB, with 512 MiB of data: the guest's 64 MiB (about 11 MiB
		// of it used) and random data from 128 MiB on.
		f, err := os.OpenFile(raw, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(1 << 30); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4<<20)
		for off := int64(128 << 20); off < 128<<20+500<<20; off += int64(len(buf)) {
			rand.Read(buf)
			if _, err := f.WriteAt(buf, off); err != nil {
				t.Fatal(err)
			}
		}
	})
	vmfs := testenv.BuildVMFS(t)
	run := func(args ...string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		out, err := exec.Command(vmfs, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("vmfs %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), time.Since(start)
	}
	dest := func() string {
		d := filepath.Join(t.TempDir(), "dest")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		testenv.Traversable(t, d)
		return d
	}
	boot := func(overlay string) (string, *testenv.Domain) {
		mnt := testenv.Mount(t, "--to", "libvirt", "--format", "qcow2", "--overlay", overlay, vmx, testenv.MountDir(t))
		xmls, _ := filepath.Glob(filepath.Join(mnt, "*.xml"))
		d := testenv.StartDomain(t, xmls[0], accel)
		d.WaitFor(t, testenv.CounterTick+"5", testenv.BootTimeout())
		return mnt, d
	}

	// Live.
	mnt, d := boot(t.TempDir())
	w := watchTicks(d.Output)
	out, liveTime := run("materialize", "--live", mnt, dest())
	time.Sleep(2 * time.Second) // counts after the cutover
	liveGap := w.end()
	t.Logf("live cutover:\n%s", out)
	if testenv.IsMounted(mnt) {
		t.Errorf("%s still mounted after the live cutover", mnt)
	}
	testenv.Virsh("destroy", d.Name)

	// Stop, materialize, start.
	overlay := t.TempDir()
	mnt, d = boot(overlay)
	stopped := time.Now()
	if _, err := testenv.Virsh("destroy", d.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.Command(vmfs, "unmount", mnt).CombinedOutput(); err != nil {
		t.Fatal(err)
	}
	dst := dest()
	mout, matTime := run("materialize", "--to", "libvirt", "--format", "qcow2", "--domain-type", "qemu", "--overlay", overlay, vmx, dst)
	xmls, _ := filepath.Glob(filepath.Join(dst, "*.xml"))
	d2 := testenv.StartDomain(t, xmls[0], accel)
	d2.WaitFor(t, testenv.CounterTick, testenv.BootTimeout())
	down := time.Since(stopped)
	t.Logf("materialize:\n%s", mout)

	report := fmt.Sprintf(`| cutover of the counting guest (1 GiB disk, 512 MiB of data, qcow2, %s) | time | guest downtime |
| --- | --- | --- |
| materialize --live (copy while it runs, pivot, release the mount) | %.1f s | none (longest gap between its counts %.2f s; it counts every 0.5 s) |
| stop + materialize + start | %.1f s (materialize %.1f s) | %.1f s (from the stop to its first count on the copy) |
`, accel, liveTime.Seconds(), liveGap.Seconds(), down.Seconds(), matTime.Seconds(), down.Seconds())
	t.Logf("\n%s", report)
	if p := os.Getenv("VMFS_BENCH_LIVE_OUT"); p != "" {
		os.WriteFile(p, []byte(report), 0o644)
	}
}
