package materialize_test

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vmfs/vmfs/internal/materialize"
	"github.com/vmfs/vmfs/internal/testenv"
)

// TestMaterializeMemoryBounded: with the most workers allowed, the peak
// resident memory of vmfs materialize stays within the copy buffers'
// bound plus a margin for the program itself.
func TestMaterializeMemoryBounded(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	src := t.TempDir()
	vmx, _ := sparseVM(t, src, 192)
	dest := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(testenv.BuildVMFS(t), "materialize", "--format", "raw", "--progress", "none",
		"--jobs", "64", vmx, dest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("materialize: %v\n%s", err, out)
	}
	// Maxrss is in KiB on Linux.
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	const margin = 48 << 20
	t.Logf("peak RSS with --jobs 64: %d MiB (bound %d MiB)", peak>>20, (materialize.MaxBufferBytes+margin)>>20)
	if peak > materialize.MaxBufferBytes+margin {
		t.Errorf("peak RSS %d MiB, more than %d MiB of buffers plus %d MiB", peak>>20, materialize.MaxBufferBytes>>20, margin>>20)
	}
}
