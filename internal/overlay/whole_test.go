package overlay

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/raw"
)

// rawSource writes a raw disk of size bytes under dir: random data with a
// hole of 1 MiB in the middle. It returns the path, its bytes and the disk
// opened read-only.
func rawSource(t *testing.T, dir string, size int64) (string, []byte, layouts.Disk) {
	t.Helper()
	p := filepath.Join(dir, "src.raw")
	content := make([]byte, size)
	fill(rand.New(rand.NewPCG(7, 7)), content)
	clear(content[size/2 : size/2+1<<20])
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	layoutsPunch(t, f, size/2, 1<<20)
	f.Close()
	lf, err := layouts.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	d := raw.New(lf)
	t.Cleanup(func() { d.Close() })
	return p, content, d
}

func layoutsPunch(t *testing.T, f *os.File, off, n int64) {
	t.Helper()
	if err := (refFile{f}).punch(off, n); err != nil {
		t.Fatal(err)
	}
}

func sum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestBackingRefused: a base that is not one whole file, a file with
// writes, and a file system without reflinks get no whole data file, and
// the overlay works as before.
func TestBackingRefused(t *testing.T) {
	mem, _ := testBase(t, 1<<20, 3)
	o := openT(t, t.TempDir(), false)
	defer o.Close()
	if _, err := fileT(t, o, "mem", mem).Backing(); !errors.Is(err, ErrNoBacking) {
		t.Fatalf("in-memory base: %v, want ErrNoBacking", err)
	}

	_, content, src := rawSource(t, t.TempDir(), 4<<20)
	w := fileT(t, o, "written", src)
	if _, err := w.WriteAt([]byte("x"), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Backing(); !errors.Is(err, ErrNoBacking) {
		t.Fatalf("written file: %v, want ErrNoBacking", err)
	}

	// t.TempDir is on the machine's disk or tmpfs: no reflinks, or
	// another file system than the source's. Where it has them, the
	// clone works and the rest is TestWhole's.
	f := fileT(t, o, "plain", src)
	if _, err := f.Backing(); err == nil {
		t.Skip("the temporary directory's file system shares blocks")
	} else if errors.Is(err, ErrNoBacking) {
		t.Fatalf("plain raw base: %v, want a clone error", err)
	}
	if f.Whole() || f.Modified() {
		t.Fatal("a failed clone changed the file's state")
	}
	if _, err := f.WriteAt([]byte("abc"), 4096); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(content)
	copy(want[4096:], "abc")
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatalf("after a failed clone: %s", diffAt(got, want))
	}
}

// TestWhole: on XFS and btrfs, a raw base's data file is a clone of the
// source; writes made to it directly (as the kernel makes them under FUSE
// passthrough) and through the File read back, punch and truncation keep
// the data file the whole content, the flag survives a reopen, only
// written blocks count as the overlay's space, and the source's bytes
// never change.
func TestWhole(t *testing.T) {
	for _, fstype := range []string{"xfs", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			mnt := testenv.ReflinkFS(t, fstype)
			const size = 64 << 20
			p, content, src := rawSource(t, mnt, size)
			before := sum(t, p)
			dir := filepath.Join(mnt, "ovl")
			o := openT(t, dir, false)
			f := fileT(t, o, "disk.raw", src)
			back, err := f.Backing()
			if err != nil {
				t.Fatal(err)
			}
			if !f.Whole() {
				t.Fatal("not whole after Backing")
			}
			if again, err := f.Backing(); err != nil || again != back {
				t.Fatalf("second Backing: %v, %v", again, err)
			}
			ref := newRef(t, content)
			checkSame(t, f, ref)
			if r, ok := layouts.MapFile(f, 100, 1<<20); !ok || r.File != back || r.Off != 100 {
				t.Fatalf("MapFile %+v %v, want the data file", r, ok)
			}
			if used, _, err := o.Usage(); err != nil || used > size/100 {
				t.Fatalf("usage of an unwritten clone: %d bytes (%v), want ≤ 1%% of %d", used, err, size)
			}

			// Writes as the kernel makes them, then through the File.
			blk := bytes.Repeat([]byte{0xa5}, 1<<20)
			for _, off := range []int64{0, 5<<20 + 123, size/2 + 4096} {
				if _, err := back.WriteAt(blk, off); err != nil {
					t.Fatal(err)
				}
				ref.WriteAt(blk, off)
			}
			if _, err := f.WriteAt([]byte("through the file"), 9<<20); err != nil {
				t.Fatal(err)
			}
			ref.WriteAt([]byte("through the file"), 9<<20)
			if err := f.Punch(20<<20+1, 3<<20); err != nil {
				t.Fatal(err)
			}
			if err := ref.punch(20<<20+1, 3<<20); err != nil {
				t.Fatal(err)
			}
			checkSame(t, f, ref)
			if err := f.Truncate(size + 8192); err != nil {
				t.Fatal(err)
			}
			ref.Truncate(size + 8192)
			if _, err := back.WriteAt([]byte("tail"), size+4096); err != nil {
				t.Fatal(err)
			}
			ref.WriteAt([]byte("tail"), size+4096)
			checkSame(t, f, ref)
			if used, _, err := o.Usage(); err != nil || used < 3<<20 || used > 8<<20 {
				t.Fatalf("usage after writing about 3 MiB: %d bytes (%v)", used, err)
			}
			if sum(t, p) != before {
				t.Fatal("the source changed")
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}

			o = openT(t, dir, false)
			defer o.Close()
			f = fileT(t, o, "disk.raw", src)
			if !f.Whole() {
				t.Fatal("whole flag lost on reopen")
			}
			checkSame(t, f, ref)
			if err := f.Truncate(size); err != nil {
				t.Fatal(err)
			}
			ref.Truncate(size)
			checkSame(t, f, ref)
			if sum(t, p) != before {
				t.Fatal("the source changed")
			}
		})
	}
}

// TestWholeUnchangedDropped: a clone nobody wrote to leaves nothing in the
// overlay when it closes; one that was written stays.
func TestWholeUnchangedDropped(t *testing.T) {
	mnt := testenv.ReflinkFS(t, "xfs")
	_, content, src := rawSource(t, mnt, 8<<20)
	dir := filepath.Join(mnt, "ovl")
	o := openT(t, dir, false)
	f := fileT(t, o, "a", src)
	if _, err := f.Backing(); err != nil {
		t.Fatal(err)
	}
	readAll(t, f)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if _, files, _ := o.Usage(); files != 0 {
		t.Fatalf("%d files left by an unwritten clone", files)
	}

	o = openT(t, dir, false)
	f = fileT(t, o, "a", src)
	back, err := f.Backing()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := back.WriteAt([]byte{1}, 0); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openT(t, dir, false)
	defer o.Close()
	f = fileT(t, o, "a", src)
	want := bytes.Clone(content)
	want[0] = 1
	if got := readAll(t, f); !f.Whole() || !bytes.Equal(got, want) {
		t.Fatalf("written clone after reopen: whole %v, %s", f.Whole(), diffAt(got, want))
	}
}
