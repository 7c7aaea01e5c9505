package fusefs

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/layouts"
)

// zeroFile is an in-memory file of maxRequest zero bytes. A read that
// falls wholly in a hole or a zero range is spliced from it: the kernel
// moves page references instead of this process clearing a buffer and
// copying it out (holes are most of a sparse disk's sequential read).
var zeroFile struct {
	once sync.Once
	f    *os.File
}

// minZeroSplice is the smallest read spliced from zeroFile: below it,
// clearing a buffer costs less than the splice's extra system calls.
const minZeroSplice = 32 << 10

func zeros() *os.File {
	zeroFile.once.Do(func() {
		fd, err := unix.MemfdCreate("vmfs-zeros", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			return
		}
		f := os.NewFile(uintptr(fd), "vmfs-zeros")
		// Written, not truncated: splicing a hole of a memfd would
		// allocate its pages on every read.
		if _, err := f.WriteAt(make([]byte, maxRequest), 0); err != nil {
			f.Close()
			return
		}
		_, _ = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL)
		zeroFile.f = f
	})
	return zeroFile.f
}

// zeroRange says whether [off, off+n) of d reads as zeros throughout,
// according to its extent map.
func zeroRange(d layouts.Disk, off, n int64) bool {
	exts, err := d.Extents(off, n)
	if err != nil || len(exts) != 1 {
		return false
	}
	e := exts[0]
	return e.Kind != layouts.Data && e.Off <= off && e.End() >= off+n
}
