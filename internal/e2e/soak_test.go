package e2e

// Soak: 32 goroutines read and write one mounted disk at random offsets
// and sizes (unaligned included), with some fsyncs, for a while; each owns
// a disjoint region of the disk, so the final content is known exactly: a
// reference written the same way. The vmfs process's RSS is sampled
// throughout and must not grow.
//
//	VMFS_SOAK=1                the long run (`make soak`), default 3m
//	VMFS_SOAK_DURATION=90s     how long (any Go duration)
//
// Without VMFS_SOAK the test runs for 20 s (5 s with -short).

import (
	"bytes"
	"errors"
	"fmt"
	mrand "math/rand"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/testenv"
)

const (
	soakWorkers  = 32
	soakDiskSize = 40<<20 + 7*512 // owned regions, then a read-only tail
	soakRegion   = 1 << 20        // per worker
	soakMaxIO    = 192 << 10
	// soakRSSBound is the peak RSS the vmfs process may reach (KiB), and
	// soakRSSGrowth how much the last quarter's peak may exceed the first
	// quarter's.
	soakRSSBound  = 256 << 10
	soakRSSGrowth = 64 << 10
)

func soakDuration(t *testing.T) time.Duration {
	if d, err := time.ParseDuration(os.Getenv("VMFS_SOAK_DURATION")); err == nil && d > 0 {
		return d
	}
	if os.Getenv("VMFS_SOAK") == "1" {
		return 3 * time.Minute
	}
	if testing.Short() {
		return 5 * time.Second
	}
	return 20 * time.Second
}

// soakRaw is the source disk: random data, zero runs, unaligned size.
func soakRaw() []byte {
	b := make([]byte, soakDiskSize)
	r := mrand.New(mrand.NewSource(1))
	for off := 0; off < len(b); off += 96 << 10 {
		if (off/(96<<10))%4 != 1 {
			r.Read(b[off:min(off+(96<<10), len(b))])
		}
	}
	return b
}

// procRSS is the resident set of pid in KiB.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

type soakStats struct {
	reads, writes, syncs, tailReads atomic.Int64
	readBytes, writeBytes           atomic.Int64
}

func TestSoak(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	dur := soakDuration(t)
	t0 := time.Now()
	phase := func(what string) { t.Logf("%v: %s", time.Since(t0).Round(time.Millisecond), what) }
	raw := soakRaw()
	ref := bytes.Clone(raw)
	dir := t.TempDir()
	writeFile(t, dir+"/disk-flat.raw", raw)
	qemuImg(t, dir, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", "disk-flat.raw", "disk.vmdk")
	os.Remove(dir + "/disk-flat.raw")
	vmx := writeVMX(t, dir, "vm.vmx", "disk.vmdk")
	sourceUnchanged(t, dir)
	overlay := t.TempDir()
	mnt := uniqueMountDir(t)
	testenv.Mount(t, "--to", "libvirt", "--format", "raw", "--overlay", overlay, vmx, mnt)
	disk := mountedDisk(t, mnt, "raw")
	phase("mounted")
	st, ok := mount.Lookup(mnt)
	if !ok || st.PID == 0 {
		t.Fatalf("no registry record for %s", mnt)
	}

	// RSS sampler.
	var rssMu sync.Mutex
	var samples []int64
	stopRSS := make(chan struct{})
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if kb, err := procRSS(st.PID); err == nil {
				rssMu.Lock()
				samples = append(samples, kb)
				rssMu.Unlock()
			}
			select {
			case <-stopRSS:
				return
			case <-tick.C:
			}
		}
	}()

	var stats soakStats
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	errs := make(chan error, soakWorkers)
	for w := 0; w < soakWorkers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			if err := soakWorker(w, disk, raw, ref, deadline, &stats); err != nil {
				errs <- fmt.Errorf("worker %d: %w", w, err)
			}
		}(w)
	}
	wg.Wait()
	close(stopRSS)
	<-rssDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	ops := stats.reads.Load() + stats.writes.Load() + stats.syncs.Load() + stats.tailReads.Load()
	secs := dur.Seconds()
	t.Logf("soak %v, %d workers: %d ops (%.0f ops/s): %d writes (%.1f MiB), %d reads (%.1f MiB), %d tail reads, %d fsyncs",
		dur, soakWorkers, ops, float64(ops)/secs, stats.writes.Load(), float64(stats.writeBytes.Load())/(1<<20),
		stats.reads.Load(), float64(stats.readBytes.Load())/(1<<20), stats.tailReads.Load(), stats.syncs.Load())

	compareWhole := func(when string) {
		t.Helper()
		got, err := os.ReadFile(disk)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if len(got) != len(ref) {
			t.Fatalf("%s: disk is %d bytes, want %d", when, len(got), len(ref))
		}
		if !bytes.Equal(got, ref) {
			for i := range got {
				if got[i] != ref[i] {
					t.Fatalf("%s: disk differs from the reference first at byte %d (worker %d's region)", when, i, i/soakRegion)
				}
			}
		}
	}
	phase("soaked")
	compareWhole("end of the soak")
	phase("compared")

	rssMu.Lock()
	s := append([]int64(nil), samples...)
	rssMu.Unlock()
	if len(s) >= 8 {
		q := len(s) / 4
		first, last, peak := maxOf(s[:q]), maxOf(s[len(s)-q:]), maxOf(s)
		t.Logf("vmfs RSS: %d samples, first quarter peak %d KiB, last quarter peak %d KiB, peak %d KiB", len(s), first, last, peak)
		if peak > soakRSSBound {
			t.Errorf("vmfs RSS peaked at %d KiB, bound %d KiB", peak, soakRSSBound)
		}
		if last > first+soakRSSGrowth {
			t.Errorf("vmfs RSS grew from %d KiB to %d KiB during the soak", first, last)
		}
	} else {
		t.Logf("vmfs RSS: only %d samples", len(s))
	}

	// Everything was written through the mount: it survives a remount.
	if err := testenv.Unmount(t, mnt); err != nil {
		t.Fatal(err)
	}
	phase("unmounted")
	checkDaemonLog(t, mnt)
	testenv.Mount(t, "--to", "libvirt", "--format", "raw", "--overlay", overlay, vmx, mnt)
	phase("remounted")
	disk = mountedDisk(t, mnt, "raw")
	compareWhole("after a remount")
	phase("compared again")
}

func maxOf(s []int64) int64 {
	m := s[0]
	for _, v := range s[1:] {
		m = max(m, v)
	}
	return m
}

// soakWorker writes and reads its own region of the disk through one
// descriptor (and reads the never-written tail) until deadline, keeping
// ref's copy of its region in step and checking every read against it.
func soakWorker(w int, disk string, raw, ref []byte, deadline time.Time, st *soakStats) error {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	r := mrand.New(mrand.NewSource(int64(1000 + w)))
	base := w * soakRegion
	tail := soakWorkers * soakRegion
	buf := make([]byte, soakMaxIO)
	// Random sizes, a third of them sector-aligned.
	ioSize := func() int {
		n := 1 + r.Intn(soakMaxIO)
		if r.Intn(3) == 0 {
			n = (n + 511) &^ 511
		}
		return min(n, soakMaxIO)
	}
	for time.Now().Before(deadline) {
		switch op := r.Intn(100); {
		case op < 45: // write
			n := min(ioSize(), soakRegion)
			off := base + r.Intn(soakRegion-n+1)
			p := buf[:n]
			r.Read(p)
			if _, err := f.WriteAt(p, int64(off)); err != nil {
				return fmt.Errorf("write %d bytes at %d: %w", n, off, err)
			}
			copy(ref[off:off+n], p)
			st.writes.Add(1)
			st.writeBytes.Add(int64(n))
		case op < 85: // read back own region
			n := min(ioSize(), soakRegion)
			off := base + r.Intn(soakRegion-n+1)
			p := buf[:n]
			if _, err := f.ReadAt(p, int64(off)); err != nil {
				return fmt.Errorf("read %d bytes at %d: %w", n, off, err)
			}
			if !bytes.Equal(p, ref[off:off+n]) {
				return fmt.Errorf("read %d bytes at %d: differs from what was written", n, off)
			}
			st.reads.Add(1)
			st.readBytes.Add(int64(n))
		case op < 97: // read the tail nobody writes, up to the disk's end
			n := ioSize()
			off := tail + r.Intn(len(raw)-tail)
			n = min(n, len(raw)-off)
			p := buf[:n]
			if _, err := f.ReadAt(p, int64(off)); err != nil {
				return fmt.Errorf("read %d bytes at %d: %w", n, off, err)
			}
			if !bytes.Equal(p, raw[off:off+n]) {
				return fmt.Errorf("read %d bytes at %d (never written): differs from the source", n, off)
			}
			st.tailReads.Add(1)
			st.readBytes.Add(int64(n))
		default:
			if err := f.Sync(); err != nil {
				return fmt.Errorf("fsync: %w", err)
			}
			st.syncs.Add(1)
		}
	}
	return nil
}
