package overlay

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

const crashEnv = "VMFS_OVERLAY_CRASH_DIR"

// crashPlan is what the crashing child does, computed the same way by the
// parent: writes and punches, a truncate and Sync; more writes, a shrinking
// truncate (which persists the map itself); more writes, then SIGKILL.
type crashOp struct {
	off   int64
	data  []byte
	punch int64 // punch this many bytes instead of writing
}

const crashSize = 6<<20 + 321

const crashShrinkTo = crashSize - 3<<19 + 77

func crashPlan() (before, middle, after []crashOp, truncTo int64) {
	r := rand.New(rand.NewPCG(42, 42))
	mk := func(n int) []crashOp {
		var ops []crashOp
		for range n {
			off := r.Int64N(crashSize + 100000)
			if r.IntN(5) == 0 {
				ops = append(ops, crashOp{off: off, punch: 1 + r.Int64N(2<<20)})
				continue
			}
			b := make([]byte, 1+r.IntN(200<<10))
			fill(r, b)
			ops = append(ops, crashOp{off: off, data: b})
		}
		return ops
	}
	before = mk(40)
	truncTo = crashSize + 50000
	middle = mk(20)
	after = mk(40)
	return
}

func applyOps(t testing.TB, f interface {
	WriteAt([]byte, int64) (int, error)
	Punch(int64, int64) error
}, ops []crashOp) {
	t.Helper()
	for _, op := range ops {
		var err error
		if op.punch > 0 {
			err = f.Punch(op.off, op.punch)
		} else {
			_, err = f.WriteAt(op.data, op.off)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// memFile is an in-memory oracle with the same operations.
type memFile struct{ b []byte }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	copy(m.b[off:], p)
	return len(p), nil
}

func (m *memFile) Punch(off, n int64) error {
	if off < int64(len(m.b)) {
		clear(m.b[off:min(off+n, int64(len(m.b)))])
	}
	return nil
}

func (m *memFile) truncate(n int64) {
	if n < int64(len(m.b)) {
		m.b = m.b[:n]
	} else {
		m.b = append(m.b, make([]byte, n-int64(len(m.b)))...)
	}
}

// TestCrashChild is the child of TestCrash; it does nothing on its own.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("run by TestCrash")
	}
	base, _ := testBase(t, crashSize, 77)
	o := openT(t, dir, false)
	f := fileT(t, o, "crash.img", base)
	before, middle, after, truncTo := crashPlan()
	applyOps(t, f, before)
	if err := f.Truncate(truncTo); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	applyOps(t, f, middle)
	if err := f.Truncate(crashShrinkTo); err != nil {
		t.Fatal(err)
	}
	applyOps(t, f, after)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// TestCrash kills a child after a Sync and more writes: the reopen is
// unclean, has everything synced, and every block reads either as synced or
// as later written, never anything else.
func TestCrash(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
	base, content := testBase(t, crashSize, 77)
	before, middle, after, truncTo := crashPlan()
	synced := &memFile{b: bytes.Clone(content)}
	applyOps(t, synced, before)
	synced.truncate(truncTo)
	applyOps(t, synced, middle)
	synced.truncate(crashShrinkTo)
	later := &memFile{b: bytes.Clone(synced.b)}
	applyOps(t, later, after)

	o := openT(t, dir, false)
	defer o.Close()
	if !o.Unclean() {
		t.Fatal("Unclean() false after SIGKILL")
	}
	f := fileT(t, o, "crash.img", base)
	if f.Size() != int64(len(synced.b)) {
		t.Fatalf("size %d, want the synced %d", f.Size(), len(synced.b))
	}
	got := readAll(t, f)
	// Blocks untouched after the Sync must be exactly as synced; touched
	// ones may be either version, block by block.
	touched := map[int64]bool{}
	for _, op := range after {
		n := int64(len(op.data)) + op.punch
		for b := op.off >> blockShift; b <= (op.off+n-1)>>blockShift; b++ {
			touched[b] = true
		}
	}
	var either int
	for off := int64(0); off < int64(len(got)); off += blockSize {
		end := min(off+blockSize, int64(len(got)))
		g, s := got[off:end], synced.b[off:end]
		if bytes.Equal(g, s) {
			continue
		}
		if touched[off>>blockShift] && end <= int64(len(later.b)) && bytes.Equal(g, later.b[off:end]) {
			either++
			continue
		}
		t.Fatalf("block %d is neither the synced nor the later version (touched after sync: %v): %s",
			off>>blockShift, touched[off>>blockShift], diffAt(g, s))
	}
	t.Logf("%d blocks hold later unsynced writes, the rest is as synced", either)
	checkExtents(t, f, got)
}
