package overlay

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The file system's map of a file's blocks (FS_IOC_FIEMAP), used to tell
// which blocks of a whole data file it still shares with its source.

const (
	fsIocFiemap     = 0xc020660b // _IOWR('f', 11, struct fiemap)
	fiemapFlagSync  = 0x1
	fiemapExtLast   = 0x1
	fiemapExtShared = 0x2000
	fiemapHeaderLen = 32
	fiemapExtentLen = 56
	fiemapBatch     = 256
	// maxExtents bounds what is read of one file's map.
	maxExtents = 1 << 20
)

type fextent struct {
	logical, physical, length int64
	flags                     uint32
}

// fileExtents lists f's extents; with sync, after flushing its dirty pages
// (so that blocks written but not yet allocated have their place).
func fileExtents(f *os.File, sync bool) ([]fextent, error) {
	buf := make([]byte, fiemapHeaderLen+fiemapBatch*fiemapExtentLen)
	le := binary.LittleEndian
	var out []fextent
	var start uint64
	for {
		clear(buf[:fiemapHeaderLen])
		le.PutUint64(buf[0:], start)
		le.PutUint64(buf[8:], ^uint64(0)-start)
		if sync {
			le.PutUint32(buf[16:], fiemapFlagSync)
		}
		le.PutUint32(buf[24:], fiemapBatch)
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
			return nil, fmt.Errorf("%s: fiemap: %w", f.Name(), e)
		}
		n := int(le.Uint32(buf[20:]))
		if n == 0 {
			return out, nil
		}
		last := false
		for i := range n {
			e := buf[fiemapHeaderLen+i*fiemapExtentLen:]
			x := fextent{
				logical:  int64(le.Uint64(e[0:])),
				physical: int64(le.Uint64(e[8:])),
				length:   int64(le.Uint64(e[16:])),
				flags:    le.Uint32(e[40:]),
			}
			out = append(out, x)
			last = x.flags&fiemapExtLast != 0
			start = uint64(x.logical + x.length)
		}
		if last || len(out) >= maxExtents {
			return out, nil
		}
	}
}

// unsharedBytes is how many bytes of f's extents no other file shares.
func unsharedBytes(f *os.File) (int64, error) {
	exts, err := fileExtents(f, false)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range exts {
		if e.flags&fiemapExtShared == 0 {
			n += e.length
		}
	}
	return n, nil
}
