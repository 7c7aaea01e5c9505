package fusefs

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
)

// slowExtents is a disk whose first extent lookup takes a while, as the
// grain-table walk of a big sparse disk does.
type slowExtents struct {
	*layouts.Image
	delay time.Duration
	once  sync.Once
}

func (s *slowExtents) Extents(off, n int64) ([]layouts.Extent, error) {
	s.once.Do(func() { time.Sleep(s.delay) })
	return s.Image.Extents(off, n)
}

// TestAllocatedCountedFromMount: the allocated bytes are counted from the
// mount on, so a stat some time after it gets the true st_blocks even
// where the count takes longer than a stat waits for it.
func TestAllocatedCountedFromMount(t *testing.T) {
	img, _ := sparseImage(t)
	d := &slowExtents{Image: img, delay: 3 * allocatedWait}
	mnt := mountTest(t, []viewfile.File{{Name: "disk.raw", Content: d, Mode: 0o600}}, Options{ReadOnly: true})
	time.Sleep(5 * allocatedWait)
	st, err := os.Stat(filepath.Join(mnt, "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Sys().(*syscall.Stat_t).Blocks*512, int64(1<<20+4096); got != want {
		t.Errorf("st_blocks × 512 = %d on the first stat, want %d", got, want)
	}
}
