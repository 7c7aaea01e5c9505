package fusefs

import (
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/internal/viewfile"
)

func fileSHA(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func qemuImgT(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestPassthrough: on a read-only mount, a raw view that is one whole source
// file (a raw source, a monolithicFlat VMDK's extent) is served by the
// kernel from the source (no read reaches this process) and reads equal the
// source; a view that is not one file (qcow2, sparse VMDK) and a writable
// mount keep the normal path.
func TestPassthrough(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting with allow_other needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("no qemu-img")
	}
	tmp := t.TempDir()
	data := make([]byte, 8<<20)
	rand.Read(data[:3<<20])
	rand.Read(data[6<<20:])
	src := filepath.Join(tmp, "src.raw")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	flat := filepath.Join(tmp, "flat.vmdk")
	sparse := filepath.Join(tmp, "sparse.vmdk")
	qc := filepath.Join(tmp, "d.qcow2")
	qemuImgT(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", src, flat)
	qemuImgT(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", src, sparse)
	qemuImgT(t, "convert", "-f", "raw", "-O", "qcow2", src, qc)
	for _, c := range []struct {
		name, src, fmt      string
		readOnly, off, pass bool
	}{
		{"raw read-only", src, "raw", true, false, true},
		{"flat vmdk read-only", flat, "vmdk", true, false, true},
		{"sparse vmdk", sparse, "vmdk", true, false, false},
		{"qcow2", qc, "qcow2", true, false, false},
		{"raw writable", src, "raw", false, false, false},
		{"raw read-only, passthrough off", src, "raw", true, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			hashes := map[string][32]byte{}
			srcFiles, _ := filepath.Glob(filepath.Join(tmp, "*"))
			for _, p := range srcFiles {
				hashes[p] = fileSHA(t, p)
			}
			s, err := session.Open(c.src, session.Options{To: "qemu", Format: "raw", Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			var disk viewfile.File
			for _, e := range s.Files() {
				if e.Content.Size() == int64(len(data)) {
					disk = e
				}
			}
			if disk.Content == nil {
				t.Fatalf("no disk of %d bytes in the view", len(data))
			}
			var reads atomic.Int64
			var notices []string
			srv, err := Mount(dir, []viewfile.File{disk}, Options{
				ReadOnly: c.readOnly, Passthrough: !c.off, reads: &reads,
				Notice: func(m string) { notices = append(notices, m) },
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := srv.Unmount(); err != nil {
					syscall.Unmount(dir, syscall.MNT_DETACH)
				}
				srv.Wait()
			})
			if c.pass && len(notices) > 0 {
				t.Skipf("passthrough unavailable here: %v", notices)
			}
			p := filepath.Join(dir, disk.Name)
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, f)
			f.Close()
			if err != nil || n != int64(len(data)) {
				t.Fatalf("read %d of %d: %v", n, len(data), err)
			}
			if got := reads.Load(); c.pass != (got == 0) {
				t.Errorf("%d reads reached the daemon; passthrough wanted %v", got, c.pass)
			}
			qemuImgT(t, "compare", "-f", "raw", "-F", c.fmt, p, c.src)
			for path, h := range hashes {
				if fileSHA(t, path) != h {
					t.Errorf("source %s changed", path)
				}
			}
		})
	}
}

// TestPassthroughWritable: on a writable mount whose overlay lies on the
// source's file system with reflinks, a raw view that is one whole source
// file is served by passthrough from the overlay's clone of it: reads and
// writes never reach this process, what was written reads back (also after
// a new mount, served through vmfs), the source's bytes never change. On a
// file system without reflinks the mount says why it cannot, and serves
// reads and writes through vmfs.
func TestPassthroughWritable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting with allow_other needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	testenv.NeedCommands(t, "qemu-img")
	for _, c := range []struct {
		name string
		fs   string // "" is the test's temporary directory (no reflinks)
		flat bool
		pass bool
	}{
		{"raw on xfs", "xfs", false, true},
		{"flat vmdk on btrfs", "btrfs", true, true},
		{"raw without reflinks", "", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			if c.fs != "" {
				tmp = testenv.ReflinkFS(t, c.fs)
			} else if sharesBlocks(t, tmp) {
				t.Skip("the temporary directory's file system shares blocks")
			}
			data := make([]byte, 8<<20)
			rand.Read(data[:3<<20])
			rand.Read(data[6<<20:])
			raw := filepath.Join(tmp, "src.raw")
			if err := os.WriteFile(raw, data, 0o644); err != nil {
				t.Fatal(err)
			}
			src := raw
			if c.flat {
				src = filepath.Join(tmp, "flat.vmdk")
				qemuImgT(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", raw, src)
				os.Remove(raw)
			}
			hashes := map[string][32]byte{}
			srcFiles, _ := filepath.Glob(filepath.Join(tmp, "*"))
			for _, p := range srcFiles {
				hashes[p] = fileSHA(t, p)
			}
			ovl := filepath.Join(tmp, "overlay")
			want := append([]byte(nil), data...)
			mountRW := func(pass bool) (string, *atomic.Int64, *atomic.Int64, []string, func()) {
				dir := filepath.Join(t.TempDir(), "mnt")
				os.Mkdir(dir, 0o755)
				s, err := session.Open(src, session.Options{To: "qemu", Format: "raw", Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.UseOverlay(session.OverlayOptions{Dir: ovl}); err != nil {
					s.Close()
					t.Fatal(err)
				}
				var disk viewfile.File
				for _, e := range s.Files() {
					if e.Content.Size() == int64(len(data)) {
						disk = e
					}
				}
				var reads, writes atomic.Int64
				var notices []string
				srv, err := Mount(dir, []viewfile.File{disk}, Options{
					Passthrough: pass, reads: &reads, writes: &writes,
					Notice: func(m string) { notices = append(notices, m) },
				})
				if err != nil {
					s.Close()
					t.Fatal(err)
				}
				done := false
				stop := func() {
					if done {
						return
					}
					done = true
					if err := srv.Unmount(); err != nil {
						syscall.Unmount(dir, syscall.MNT_DETACH)
					}
					srv.Wait()
					if err := s.Close(); err != nil {
						t.Errorf("closing the session: %v", err)
					}
				}
				t.Cleanup(stop)
				return filepath.Join(dir, disk.Name), &reads, &writes, notices, stop
			}

			p, reads, writes, notices, stop := mountRW(true)
			if c.pass && (len(notices) != 1 || !strings.Contains(notices[0], "read and written by FUSE passthrough")) {
				if len(notices) > 0 && strings.Contains(notices[0], "unavailable") {
					t.Skipf("passthrough unavailable here: %v", notices)
				}
				t.Fatalf("notices %q on a file system with reflinks, want one saying passthrough serves the disk", notices)
			}
			if !c.pass && (len(notices) != 1 || !strings.Contains(notices[0], "reflinks")) {
				t.Fatalf("notices %q, want one saying reflinks are needed", notices)
			}
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			blk := make([]byte, 1<<20)
			rand.Read(blk)
			for _, off := range []int64{0, 4<<20 + 512, 7 << 20} {
				if _, err := f.WriteAt(blk, off); err != nil {
					t.Fatal(err)
				}
				copy(want[off:], blk)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			// A punched range reads as zeros (fallocate reaches vmfs).
			if err := syscall.Fallocate(int(f.Fd()), 0x01|0x02, 2<<20, 1<<20); err != nil {
				t.Fatal(err)
			}
			clear(want[2<<20 : 3<<20])
			got, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatal("the mount does not read back what was written")
			}
			if c.pass && (reads.Load() != 0 || writes.Load() != 0) {
				t.Errorf("%d reads and %d writes reached vmfs; passthrough serves them", reads.Load(), writes.Load())
			}
			if !c.pass && writes.Load() == 0 {
				t.Error("no write reached vmfs without passthrough")
			}
			stop()
			for path, h := range hashes {
				if fileSHA(t, path) != h {
					t.Errorf("source %s changed", path)
				}
			}

			// The writes are the overlay's: a mount without passthrough
			// reads them through vmfs.
			p, reads, _, _, stop = mountRW(false)
			exp := filepath.Join(t.TempDir(), "want.raw")
			if err := os.WriteFile(exp, want, 0o644); err != nil {
				t.Fatal(err)
			}
			qemuImgT(t, "compare", "-f", "raw", "-F", "raw", p, exp)
			if reads.Load() == 0 {
				t.Error("no read reached vmfs with passthrough off")
			}
			stop()
			for path, h := range hashes {
				if fileSHA(t, path) != h {
					t.Errorf("source %s changed", path)
				}
			}
		})
	}
}

// sharesBlocks says whether dir's file system clones files (FICLONE).
func sharesBlocks(t *testing.T, dir string) bool {
	t.Helper()
	a, err := os.Create(filepath.Join(dir, "clone-a"))
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(a.Name())
	defer a.Close()
	a.Write(make([]byte, 4096))
	b, err := os.Create(filepath.Join(dir, "clone-b"))
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(b.Name())
	defer b.Close()
	return unix.IoctlFileClone(int(b.Fd()), int(a.Fd())) == nil
}
