package qcow2

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/raw"
	"github.com/vmfs/vmfs/layouts/vdi"
)

// testOpen opens a disk of the formats this package's tests build (qcow2,
// vdi, raw), as the probe package would.
func testOpen(path string, env *layouts.Env) (layouts.Disk, error) {
	f, err := layouts.OpenFile(path)
	if err != nil {
		return nil, err
	}
	for _, open := range []func(layouts.File, *layouts.Env) (layouts.Disk, error){Open, vdi.Open} {
		d, err := open(f, env)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, layouts.ErrWrongType) {
			f.Close()
			return nil, err
		}
	}
	return raw.New(f), nil
}

func testEnv() *layouts.Env {
	return &layouts.Env{OpenDisk: testOpen, FormatByQEMUName: testFormat}
}

// testFormat finds the formats of testOpen by their QEMU names, as the
// registry (layouts/formats, which imports this package) does.
func testFormat(name string) (layouts.Format, bool) {
	for _, f := range []layouts.Format{Format, vdi.Format, raw.Format} {
		if slices.Contains(f.QEMUNames, name) {
			return f, true
		}
	}
	return layouts.Format{}, false
}

func openPath(t testing.TB, path string) layouts.Disk {
	t.Helper()
	d, err := testOpen(path, testEnv())
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// qemuImg runs qemu-img (or qemu-io) and returns its stdout; stderr goes
// into the error.
func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	return runIn(t, "", name, args...)
}

// runIn runs a tool in dir: qemu 7 resolves a relative external data file
// name against its working directory.
func runIn(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func qemuImg(t testing.TB, args ...string) string { return runTool(t, "qemu-img", args...) }

// makeRaw writes a raw image of size bytes in 4 KiB pieces: random data,
// written zeros and holes (never written), chosen by seed.
func makeRaw(t testing.TB, path string, size int64, seed int64) []byte {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	want := make([]byte, size)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	const piece = 4096
	for off := int64(0); off < size; {
		n := int64(piece) * int64(1+rng.Intn(24))
		n = min(n, size-off)
		switch rng.Intn(5) {
		case 0, 1: // random
			rng.Read(want[off : off+n])
			// sprinkle a zero run inside data
			if n > 1024 {
				z := rng.Int63n(n - 512)
				clear(want[off+z : off+z+512])
			}
			if _, err := f.WriteAt(want[off:off+n], off); err != nil {
				t.Fatal(err)
			}
		case 2: // written zeros
			if _, err := f.WriteAt(want[off:off+n], off); err != nil {
				t.Fatal(err)
			}
		default: // hole
		}
		off += n
	}
	return want
}

// readAll reads d whole with ReadAt in odd-sized pieces.
func readAll(t testing.TB, d layouts.Disk) []byte {
	t.Helper()
	got := make([]byte, d.Size())
	const step = 100_003
	for off := int64(0); off < d.Size(); off += step {
		end := min(off+step, d.Size())
		n, err := d.ReadAt(got[off:end], off)
		if n != int(end-off) || (err != nil && !(err.Error() == "EOF" && end == d.Size())) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", end-off, off, n, err)
		}
	}
	return got
}

// checkAgainstQemu reads path through d and checks it against qemu-img:
// bytes with qemu-img compare (on a raw dump of d) and convert, allocation
// with qemu-img map.
func checkAgainstQemu(t *testing.T, path, format string, d layouts.Disk) []byte {
	t.Helper()
	dir := t.TempDir()
	got := readAll(t, d)
	dump := filepath.Join(dir, "ours.raw")
	if err := os.WriteFile(dump, got, 0o644); err != nil {
		t.Fatal(err)
	}
	qemuImg(t, "compare", "-q", "-f", "raw", "-F", format, dump, path)
	conv := filepath.Join(dir, "qemu.raw")
	qemuImg(t, "convert", "-f", format, "-O", "raw", path, conv)
	want, err := os.ReadFile(conv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("bytes differ from qemu-img convert at %d", firstDiff(got, want))
	}
	checkMap(t, path, format, d)
	return got
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

type mapEntry struct {
	Start   int64 `json:"start"`
	Length  int64 `json:"length"`
	Depth   int   `json:"depth"`
	Present *bool `json:"present"`
	Zero    bool  `json:"zero"`
	Data    bool  `json:"data"`
}

// checkMap compares d's extents with qemu-img map: qemu's data flag must
// match our Data kind, and its present flag our non-Hole kinds.
func checkMap(t *testing.T, path, format string, d layouts.Disk) {
	t.Helper()
	var qm []mapEntry
	if err := json.Unmarshal([]byte(runIn(t, filepath.Dir(path), "qemu-img", "map", "--output=json", "-f", format, path)), &qm); err != nil {
		t.Fatal(err)
	}
	var ours []layouts.Extent
	if err := layouts.Walk(d, 0, d.Size(), func(e layouts.Extent) error {
		ours = append(ours, e)
		return nil
	}); err != nil {
		t.Fatalf("walk: %v", err)
	}
	checkExtents(t, ours, 0, d.Size())
	for _, q := range qm {
		for _, e := range ours {
			lo, hi := max(e.Off, q.Start), min(e.End(), q.Start+q.Length)
			if lo >= hi {
				continue
			}
			if (e.Kind == layouts.Data) != q.Data {
				t.Fatalf("[%d,%d): ours %v, qemu-img map %+v", lo, hi, e.Kind, q)
			}
			// A raw file's holes are "present" to qemu, holes to us.
			if q.Present != nil && !*q.Present && e.Kind != layouts.Hole {
				t.Fatalf("[%d,%d): ours %v, qemu-img map present=%v", lo, hi, e.Kind, *q.Present)
			}
		}
	}
}

// checkExtents checks the Disk contract for an extent list.
func checkExtents(t testing.TB, exts []layouts.Extent, off, n int64) {
	t.Helper()
	pos := off
	for i, e := range exts {
		if e.Off != pos || e.Len <= 0 {
			t.Fatalf("extent %d %+v does not continue at %d", i, e, pos)
		}
		if i > 0 && exts[i-1].Kind == e.Kind {
			t.Fatalf("extents %d and %d not merged: %+v %+v", i-1, i, exts[i-1], e)
		}
		pos = e.End()
	}
	if pos != off+n {
		t.Fatalf("extents end at %d, want %d", pos, off+n)
	}
}

func qemuIO(t testing.TB, format, path string, cmds ...string) {
	t.Helper()
	args := []string{"-f", format}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	runTool(t, "qemu-io", append(args, path)...)
}

func mustErr(t *testing.T, err error, sentinel error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v %q", sentinel, substr)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %v", err, sentinel)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not mention %q", err, substr)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error is not one line: %q", err)
	}
}
