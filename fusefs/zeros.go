package fusefs

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/layouts"
)

// minZeroSplice is the smallest read spliced from a mount's zero file:
// below it, clearing a buffer costs less than the splice's extra system
// calls.
const minZeroSplice = 32 << 10

// newZeroFile makes an in-memory file of maxRequest zero bytes. A read that
// falls wholly in a hole or a zero range is spliced from it: the kernel
// moves page references instead of this process clearing a buffer and
// copying it out (holes are most of a sparse disk's sequential read). Each
// mount has its own, closed when the mount stops serving; nil (no memfd in
// this kernel) means holes are read into a buffer.
func newZeroFile() *os.File {
	fd, err := unix.MemfdCreate("vmfs-zeros", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), "vmfs-zeros")
	// Written, not truncated: splicing a hole of a memfd would allocate
	// its pages on every read.
	if _, err := f.WriteAt(make([]byte, maxRequest), 0); err != nil {
		f.Close()
		return nil
	}
	_, _ = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL)
	return f
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
