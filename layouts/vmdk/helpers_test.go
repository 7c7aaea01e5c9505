package vmdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/raw"
)

// qemuImg runs qemu-img and returns its stdout; stderr goes in the error.
func qemuImg(t testing.TB, args ...string) string {
	t.Helper()
	out, err := runQemuImg(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runQemuImg(args ...string) (string, error) {
	return runTool("qemu-img", args...)
}

func runTool(tool string, args ...string) (string, error) {
	cmd := exec.Command(tool, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), errors.New(tool + " " + strings.Join(args, " ") + ": " + err.Error() + ": " + strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func needQemu(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
}

// makeRaw writes a sparse raw image of the given size: random data, runs
// of written zeros and holes, in a pattern decided by seed.
func makeRaw(t testing.TB, path string, size int64, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 7))
	buf := make([]byte, 256<<10)
	for off := int64(0); off < size; {
		n := min(int64(r.IntN(192<<10)+512), size-off)
		switch r.IntN(4) {
		case 0, 1: // data
			for i := range buf[:n] {
				buf[i] = byte(r.Uint32())
			}
			// some compressible runs too
			if n > 4096 && r.IntN(2) == 0 {
				clear(buf[100:2100])
			}
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				t.Fatal(err)
			}
		case 2: // written zeros
			clear(buf[:n])
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				t.Fatal(err)
			}
		case 3: // hole
		}
		off += n
	}
}

// placeRaw writes a raw image of n bytes made by makeRaw into dst at off.
func placeRaw(t testing.TB, dst string, off, n int64, seed uint64) {
	t.Helper()
	tmp := dst + ".part"
	makeRaw(t, tmp, n, seed)
	b, err := os.ReadFile(tmp)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(tmp)
	f, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// testEnv opens parents as VMDK, or raw when they are not.
func testEnv() *layouts.Env {
	env := &layouts.Env{}
	env.OpenDisk = openAny
	return env
}

func openAny(path string, env *layouts.Env) (layouts.Disk, error) {
	f, err := layouts.OpenFile(path)
	if err != nil {
		return nil, err
	}
	d, err := Open(f, env)
	if errors.Is(err, layouts.ErrWrongType) {
		return raw.New(f), nil
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

func openPath(t testing.TB, path string) layouts.Disk {
	t.Helper()
	f, err := layouts.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(f, testEnv())
	if err != nil {
		f.Close()
	}
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// dumpRaw writes d to a raw file: data and zero extents are read through
// ReadAt, holes are left as holes. Small disks are also read densely, in
// odd-sized pieces, and the two reads must agree.
func dumpRaw(t testing.TB, d layouts.Disk, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(d.Size()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	err = layouts.Walk(d, 0, d.Size(), func(e layouts.Extent) error {
		for off := e.Off; off < e.End(); {
			n := min(int64(len(buf)), e.End()-off)
			if _, err := d.ReadAt(buf[:n], off); err != nil && err != io.EOF {
				return err
			}
			if e.Kind != layouts.Data && d.Size() > 64<<20 {
				off = e.End()
				continue
			}
			if e.Kind == layouts.Hole && !allZero(buf[:n]) {
				return errors.New("hole does not read as zeros")
			}
			if e.Kind == layouts.Zero && !allZero(buf[:n]) {
				return errors.New("zero extent does not read as zeros")
			}
			if e.Kind == layouts.Data {
				if _, err := f.WriteAt(buf[:n], off); err != nil {
					return err
				}
			}
			off += n
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() > 64<<20 {
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, d.Size())
	step := 12345
	for off := 0; off < len(got); off += step {
		end := min(off+step, len(got))
		if n, err := d.ReadAt(got[off:end], int64(off)); n != end-off || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", end-off, off, n, err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("dense read differs from the read by extents")
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// compareQemu checks with qemu-img compare that ours (raw) holds the same
// bytes as src as qemu reads it.
func compareQemu(t testing.TB, ours, src, srcFmt string) {
	t.Helper()
	if out, err := runQemuImg("compare", "-f", "raw", "-F", srcFmt, ours, src); err != nil {
		t.Fatalf("qemu-img compare: %v %s", err, out)
	}
}

type qemuMapEntry struct {
	Start  int64 `json:"start"`
	Length int64 `json:"length"`
	Data   bool  `json:"data"`
	Zero   bool  `json:"zero"`
}

// checkMap compares the Data extents of d with the ranges qemu-img map says
// hold data.
func checkMap(t testing.TB, d layouts.Disk, src string, subset bool) {
	t.Helper()
	out := qemuImg(t, "map", "--output=json", "-f", "vmdk", src)
	var ents []qemuMapEntry
	if err := json.Unmarshal([]byte(out), &ents); err != nil {
		t.Fatal(err)
	}
	var want layouts.Builder
	for _, e := range ents {
		k := layouts.Hole
		if e.Data {
			k = layouts.Data
		}
		want.Add(e.Start, e.Length, k)
	}
	var got layouts.Builder
	if err := layouts.Walk(d, 0, d.Size(), func(e layouts.Extent) error {
		k := layouts.Hole
		if e.Kind == layouts.Data {
			k = layouts.Data
		}
		got.Add(e.Off, e.Len, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	g, w := got.Extents(), want.Extents()
	if subset {
		for _, e := range g {
			if e.Kind != layouts.Data {
				continue
			}
			for _, q := range w {
				if q.Kind != layouts.Data && q.Off < e.End() && e.Off < q.End() {
					t.Fatalf("data %v where qemu-img map says no data %v", e, q)
				}
			}
		}
		return
	}
	if len(g) != len(w) {
		t.Fatalf("allocation differs from qemu-img map:\n got %v\nwant %v", trimExts(g), trimExts(w))
	}
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("allocation differs from qemu-img map at %d:\n got %v\nwant %v", i, trimExts(g), trimExts(w))
		}
	}
}

func trimExts(e []layouts.Extent) []layouts.Extent {
	if len(e) > 20 {
		return e[:20]
	}
	return e
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func join(dir, name string) string { return filepath.Join(dir, name) }

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
