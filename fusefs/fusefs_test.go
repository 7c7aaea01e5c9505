package fusefs

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/raw"
)

// sparseImage is a 16 MiB image with data at [1 MiB, 2 MiB) and
// [10 MiB, 10 MiB + 4 KiB) and holes elsewhere.
func sparseImage(t *testing.T) (*layouts.Image, []byte) {
	return sparseImageWith(t, 1<<20)
}

// sparseImageWith is sparseImage with first bytes of data at 1 MiB.
func sparseImageWith(t *testing.T, first int) (*layouts.Image, []byte) {
	t.Helper()
	a := make([]byte, first)
	b := make([]byte, 4096)
	rand.Read(a)
	rand.Read(b)
	img, err := layouts.NewImage("test", 16<<20, []layouts.Segment{
		{Off: 1 << 20, Len: int64(len(a)), Kind: layouts.SegBytes, Bytes: a},
		{Off: 10 << 20, Len: int64(len(b)), Kind: layouts.SegBytes, Bytes: b},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 16<<20)
	copy(want[1<<20:], a)
	copy(want[10<<20:], b)
	return img, want
}

// mountTest mounts entries in a temporary directory and unmounts in cleanup,
// also when the test fails.
func mountTest(t *testing.T, entries []viewfile.File, opts Options) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting with allow_other needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	dir := t.TempDir()
	srv, err := Mount(dir, entries, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		srv.Wait()
	})
	return dir
}

func TestMountReadSeekAndPermissions(t *testing.T) {
	img, want := sparseImage(t)
	desc := layouts.Bytes("text", []byte("<domain/>\n"))
	smallData := make([]byte, 256<<10)
	rand.Read(smallData)
	dir := mountTest(t, []viewfile.File{
		{Name: "vm.xml", Content: desc, Mode: 0o600},
		{Name: "small.raw", Content: layouts.Bytes("raw", smallData), Mode: 0o600},
		{Name: "vm-disk0.raw", Content: img, Mode: 0o600},
	}, Options{UID: 0, GID: 0, DirMode: 0o710})

	got, err := os.ReadFile(filepath.Join(dir, "vm-disk0.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("disk content differs")
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o710 {
		t.Errorf("root mode %v, want 0710", st.Mode().Perm())
	}

	f, err := os.Open(filepath.Join(dir, "vm-disk0.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The io.ReaderAt contract, on a small file (TestReader reads byte
	// by byte in places).
	small, err := os.Open(filepath.Join(dir, "small.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if err := iotest.TestReader(small, smallData); err != nil {
		t.Errorf("TestReader: %v", err)
	}
	fd := int(f.Fd())
	for _, tc := range []struct {
		name   string
		off    int64
		whence int
		want   int64
		errno  error
	}{
		{"data from 0", 0, unix.SEEK_DATA, 1 << 20, nil},
		{"hole inside data", 1 << 20, unix.SEEK_HOLE, 2 << 20, nil},
		{"data after first", 2 << 20, unix.SEEK_DATA, 10 << 20, nil},
		{"hole after last", 10 << 20, unix.SEEK_HOLE, 10<<20 + 4096, nil},
		{"no data at the tail", 11 << 20, unix.SEEK_DATA, 0, syscall.ENXIO},
		{"hole at the tail", 11 << 20, unix.SEEK_HOLE, 11 << 20, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := unix.Seek(fd, tc.off, tc.whence)
			if tc.errno != nil {
				if !errors.Is(err, tc.errno) {
					t.Fatalf("got %d, %v; want %v", got, err, tc.errno)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}

	// Read-only content: writes are refused, chown and chmod work (libvirt
	// relabels disks before it starts QEMU).
	if _, err := os.OpenFile(filepath.Join(dir, "vm-disk0.raw"), os.O_RDWR, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("open for writing: %v, want EROFS", err)
	}
	if err := os.Chown(filepath.Join(dir, "vm-disk0.raw"), 64055, 64055); err != nil {
		t.Errorf("chown: %v", err)
	}
	var sst syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "vm-disk0.raw"), &sst); err != nil || sst.Uid != 64055 {
		t.Errorf("after chown: uid %d, %v", sst.Uid, err)
	}
	if sst.Blocks*512 < 1<<20 || sst.Blocks*512 > 2<<20 {
		t.Errorf("allocated %d bytes, want about 1 MiB + 4 KiB", sst.Blocks*512)
	}
}

func TestNodeErrno(t *testing.T) {
	f := &file{name: "x", opts: &Options{Logger: nil}}
	f.opts.Logger = discardLogger()
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{syscall.ENOSPC, syscall.ENOSPC},
		{errors.New("grain table corrupt"), syscall.EIO},
		{os.ErrNotExist, syscall.ENOENT},
	} {
		if got := f.errno("read", tc.err); got != tc.want {
			t.Errorf("errno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestLseekWithoutMount(t *testing.T) {
	img, _ := sparseImage(t)
	f := &file{content: img, opts: &Options{Logger: discardLogger()}}
	off, errno := f.Lseek(context.Background(), nil, 0, 3)
	if errno != 0 || off != 1<<20 {
		t.Fatalf("SEEK_DATA: %d %v", off, errno)
	}
	_, errno = f.Lseek(context.Background(), nil, 16<<20, 3)
	if errno != syscall.ENXIO {
		t.Fatalf("SEEK_DATA past end: %v", errno)
	}
}

// TestSpliceFromRawSource: reads of ranges that are plain file ranges are
// spliced from the source file; the bytes must be the same.
func TestSpliceFromRawSource(t *testing.T) {
	want := make([]byte, 8<<20+3*512)
	rand.Read(want[1<<20 : 5<<20])
	_, d := rawSource(t, want)
	dir := mountTest(t, []viewfile.File{{Name: "d.raw", Content: layouts.Section("raw", d), Mode: 0o600}}, Options{})
	f, err := os.Open(filepath.Join(dir, "d.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(want)+4096)
	n, err := io.ReadFull(f, got)
	if n != len(want) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read %d, %v", n, err)
	}
	if !bytes.Equal(got[:n], want) {
		t.Fatal("spliced content differs")
	}
	// Unaligned reads at the tail.
	buf := make([]byte, 1000)
	if n, _ := f.ReadAt(buf, int64(len(want))-700); n != 700 || !bytes.Equal(buf[:700], want[len(want)-700:]) {
		t.Fatalf("tail read %d", n)
	}
}

// TestSpliceCachePerMount: each mount asks the kernel about its own source
// files; a file whose cache is gone (nil: not built by a mount) is never
// spliced.
func TestSpliceCachePerMount(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	r := layouts.FileRange{File: f, Off: 0, Len: 4096}
	var a, b spliceCache
	if !a.spliceable(r) {
		t.Fatal("a range of a regular file on a local file system is not spliced")
	}
	if _, ok := b.m.Load(f); ok {
		t.Fatal("a mount's answer shows in another mount's cache")
	}
	if (*spliceCache)(nil).spliceable(r) {
		t.Fatal("spliced without a cache")
	}
	if a.spliceable(layouts.FileRange{File: f, Off: 1 << 20, Len: 4096}) {
		t.Fatal("a range past the end of the file is spliced")
	}
}

// TestRootListingAndReadOnly: the root lists "." and ".." before the
// files, in the view's order; a ReadOnly mount is ro in /proc/mounts and
// refuses writes, a writable one is rw.
func TestRootListingAndReadOnly(t *testing.T) {
	for _, ro := range []bool{false, true} {
		t.Run(map[bool]string{false: "rw", true: "ro"}[ro], func(t *testing.T) {
			dir := mountTest(t, []viewfile.File{
				{Name: "vm.xml", Content: layouts.Bytes("text", []byte("<domain/>\n")), Mode: 0o600},
				{Name: "a-disk0.raw", Content: layouts.Bytes("raw", make([]byte, 4096)), Mode: 0o600},
			}, Options{ReadOnly: ro, DirMode: 0o700})
			f, err := os.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// os.ReadDir leaves out "." and ".."; getdents does not.
			buf := make([]byte, 4096)
			n, err := unix.Getdents(int(f.Fd()), buf)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for b := buf[:n]; len(b) > 0; {
				reclen := int(b[16]) | int(b[17])<<8
				name := b[19:reclen]
				if i := bytes.IndexByte(name, 0); i >= 0 {
					name = name[:i]
				}
				names = append(names, string(name))
				b = b[reclen:]
			}
			if want := []string{".", "..", "vm.xml", "a-disk0.raw"}; !slices.Equal(names, want) {
				t.Errorf("root lists %q, want %q", names, want)
			}
			opts := mountOptionsOf(t, dir)
			if got := slices.Contains(opts, "ro"); got != ro {
				t.Errorf("/proc/mounts options %q: ro is %v, want %v", opts, got, ro)
			}
			if !ro {
				return
			}
			if _, err := os.OpenFile(filepath.Join(dir, "a-disk0.raw"), os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
				t.Errorf("open for writing: %v, want EROFS", err)
			}
		})
	}
}

// mountOptionsOf is the option list /proc/mounts gives mountpoint.
func mountOptionsOf(t *testing.T, mountpoint string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == mountpoint {
			return strings.Split(f[3], ",")
		}
	}
	t.Fatalf("%s is not in /proc/mounts", mountpoint)
	return nil
}

// rawSource writes data to a file and opens it as a raw disk, closed at
// cleanup: after the unmount, as cleanups run last first, since the kernel
// may still be reading ahead when a test returns.
func rawSource(t *testing.T, data []byte) (string, layouts.Disk) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src.raw")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	lf, err := layouts.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	d := raw.New(lf)
	t.Cleanup(func() { d.Close() })
	return p, d
}
