package materialize_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/materialize"
	"github.com/vmfs/vmfs/internal/testenv"
)

// TestMaterializeMemoryBounded: with the most workers allowed, the peak
// resident memory of vmfs materialize stays within the copy buffers'
// bound plus a margin for the program itself. How many buffers are in use
// at once depends on timing (TestRunBuffersBounded pins it down); this
// checks what the process really holds.
func TestMaterializeMemoryBounded(t *testing.T) {
	// A bare disk whose 512 MiB are all stored: enough chunks for every
	// worker to hold a full buffer at once. They are zeros, which are
	// read but not written: the output stays sparse.
	src := filepath.Join(t.TempDir(), "big.img")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 4<<20)
	for range 128 {
		if _, err := f.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// What the binary itself takes (its runtime, its mapped pages, the
	// packages' initialisation) grows with the binary, not with the work:
	// measure it on a small materialize, and bound the big one by it plus
	// the buffers.
	small := filepath.Join(t.TempDir(), "small.img")
	if err := os.WriteFile(small, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	base := peakRSS(t, "--jobs", "1", small, filepath.Join(t.TempDir(), "out"))
	hwm := peakRSS(t, "--jobs", "64", src, filepath.Join(t.TempDir(), "out"))
	const margin = 48 << 20
	bound := base + materialize.MaxBufferBytes + margin
	t.Logf("peak RSS with --jobs 64: %d MiB (bound %d MiB: %d MiB for the binary itself)", hwm>>20, bound>>20, base>>20)
	if hwm > bound {
		t.Errorf("peak RSS %d MiB, more than the binary's own %d MiB, %d MiB of buffers and %d MiB", hwm>>20, base>>20, materialize.MaxBufferBytes>>20, margin>>20)
	}
}

// peakRSS runs vmfs materialize --format raw with args and returns the
// peak resident set of its process.
func peakRSS(t *testing.T, args ...string) int64 {
	t.Helper()
	cmd := exec.Command(testenv.BuildVMFS(t), append([]string{"materialize", "--format", "raw", "--progress", "none"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The rusage of wait4 would count the test's own memory, which the
	// child had until it called exec: read the child's high-water mark
	// while it runs instead.
	done := make(chan struct{})
	peak := make(chan int64)
	go func() {
		var hwm int64
		for {
			hwm = max(hwm, vmHWM(cmd.Process.Pid))
			select {
			case <-done:
				peak <- hwm
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	hwm := <-peak
	if err != nil {
		t.Fatalf("materialize: %v\n%s", err, out.String())
	}
	if hwm == 0 {
		t.Fatal("no VmHWM read from /proc")
	}
	return hwm
}

// vmHWM is the peak resident set of process pid in bytes, 0 when unknown.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
