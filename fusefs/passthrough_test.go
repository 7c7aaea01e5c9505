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

	"github.com/vmfs/vmfs/internal/session"
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
