package vmdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// TestDescriptorTooLarge: a file that starts as a descriptor but is larger
// than vmfs reads is refused by name, never opened as a raw disk whose
// bytes would be the descriptor's text.
func TestDescriptorTooLarge(t *testing.T) {
	dir := t.TempDir()
	head := "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentFlat\"\n\n"
	var lines strings.Builder
	lines.WriteString(head)
	for i := 0; lines.Len() < 2621440; i++ {
		fmt.Fprintf(&lines, "RW 1 FLAT \"big-f%06d.vmdk\" 0\n", i)
	}
	big := lines.String()[:2621440]
	cases := []struct{ name, text, want string }{
		{"extent-lines", big, "descriptor is 2.5 MiB, more than the 1 MiB vmfs reads"},
		{"keys-without-header", "version=1\ncreateType=\"monolithicFlat\"\nRW 1 ZERO\n" + strings.Repeat("# padding\n", 150000), "descriptor is 1.4 MiB, more than the 1 MiB vmfs reads"},
		{"nul-padded", head + "RW 1 ZERO\n" + string(make([]byte, 2<<20)), "descriptor is 2.0 MiB, more than"},
		{"bom-header", "\xef\xbb\xbf" + big, "descriptor is 2.5 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := join(dir, c.name+".vmdk")
			writeFile(t, p, c.text)
			f, err := layouts.OpenFile(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d, err := Open(f, testEnv())
			if err == nil {
				d.Close()
				t.Fatal("opened")
			}
			if errors.Is(err, layouts.ErrWrongType) || !errors.Is(err, layouts.ErrFormat) {
				t.Fatalf("error %q does not wrap ErrFormat alone", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, p) || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line naming %s and saying %q", msg, p, c.want)
			}
			// The opener that falls back to raw must not fall back.
			if d, err := openAny(p, testEnv()); err == nil {
				d.Close()
				t.Fatal("opened as another format")
			}
		})
	}
	// Exactly the limit is a descriptor still.
	t.Run("at-limit", func(t *testing.T) {
		p := join(dir, "at-limit.vmdk")
		text := head + "RW 8 ZERO\n"
		writeFile(t, p, text+strings.Repeat("#", maxDescriptor-len(text)-1)+"\n")
		d := openPath(t, p)
		if d.Size() != 8*512 {
			t.Fatalf("size %d", d.Size())
		}
	})
}

// TestEmbeddedDescriptorTooLarge: a sparse file whose embedded descriptor
// is text past the 1 MiB vmfs reads is refused, not cut short.
func TestEmbeddedDescriptorTooLarge(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	src := join(dir, "src.raw")
	makeRaw(t, src, 1<<20, 3)
	sparse := join(dir, "sparse.vmdk")
	qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", src, sparse)
	b := mustRead(t, sparse)
	text := []byte("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\nRW 2048 SPARSE \"sparse.vmdk\"\n")
	text = append(text, bytes.Repeat([]byte("#\n"), (3<<19)/2)...)
	le := binary.LittleEndian
	for _, c := range []struct {
		name string
		text []byte
		ok   bool
	}{{"over", text, false}, {"nul-inside", append(text[:4096:4096], make([]byte, len(text)-4096)...), true}} {
		t.Run(c.name, func(t *testing.T) {
			img := bytes.Clone(b)
			img = append(img, c.text...)
			img = append(img, make([]byte, (512-len(img)%512)%512)...)
			le.PutUint64(img[28:], uint64(len(b)/512))
			le.PutUint64(img[36:], uint64(len(c.text)+511)/512)
			p := join(dir, c.name+".vmdk")
			writeFile(t, p, string(img))
			f, err := layouts.OpenFile(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d, err := Open(f, testEnv())
			if err == nil {
				defer d.Close()
			}
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("opened")
			}
			if !errors.Is(err, layouts.ErrFormat) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "embedded descriptor is longer than the 1 MiB") {
				t.Fatalf("error %q", err)
			}
		})
	}
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestManyExtentsOneFile: 30,000 extent lines over one flat file, in a
// shuffled order, open with one file descriptor and read the flat file's
// sectors in the order the lines give. (qemu-img cannot be the oracle: it
// opens the file once per line and runs out of descriptors.)
func TestManyExtentsOneFile(t *testing.T) {
	const n = 30000
	dir := t.TempDir()
	flat := join(dir, "flat.raw")
	makeRaw(t, flat, n*512, 9)
	want := mustRead(t, flat)
	r := rand.New(rand.NewPCG(5, 5))
	perm := r.Perm(n)
	var desc strings.Builder
	desc.WriteString("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n")
	for i, p := range perm {
		// Two spellings of the same file: one open file still.
		name := "flat.raw"
		if i%2 == 1 {
			name = "./flat.raw"
		}
		fmt.Fprintf(&desc, "RW 1 FLAT \"%s\" %d\n", name, p)
	}
	dp := join(dir, "many.vmdk")
	writeFile(t, dp, desc.String())
	before := openFDs(t)
	d := openPath(t, dp)
	if got := openFDs(t) - before; got > 2 {
		t.Errorf("%d file descriptors open for one extent file", got)
	}
	if d.Size() != n*512 {
		t.Fatalf("size %d", d.Size())
	}
	got := make([]byte, n*512)
	if _, err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	for i, p := range perm {
		if !bytes.Equal(got[i*512:(i+1)*512], want[p*512:(p+1)*512]) {
			t.Fatalf("sector %d differs from flat sector %d", i, p)
		}
	}
	if fs := d.(*Disk).Files(); len(fs) != 2 {
		t.Errorf("files %q", fs)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := openFDs(t); got > before {
		t.Errorf("%d file descriptors left open after Close", got-before)
	}
}

// TestManySparseExtentsOneFile: sparse extent lines naming one file share
// its grain map as well as its descriptor.
func TestManySparseExtentsOneFile(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	src := join(dir, "src.raw")
	makeRaw(t, src, 4096, 4)
	s := join(dir, "s.vmdk")
	qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", src, s)
	want := mustRead(t, src)
	var desc strings.Builder
	desc.WriteString("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n\n")
	const n = 5000
	for range n {
		desc.WriteString("RW 8 SPARSE \"s.vmdk\"\n")
	}
	dp := join(dir, "d.vmdk")
	writeFile(t, dp, desc.String())
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	d := openPath(t, dp)
	runtime.ReadMemStats(&m1)
	if a := m1.TotalAlloc - m0.TotalAlloc; a > 16*uint64(desc.Len()) {
		t.Errorf("opening a %d-byte descriptor allocated %d bytes", desc.Len(), a)
	}
	got := make([]byte, d.Size())
	if _, err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if !bytes.Equal(got[i*len(want):(i+1)*len(want)], want) {
			t.Fatalf("extent %d reads wrong", i)
		}
	}
}

// TestTooManyExtentFiles: a descriptor naming more distinct files than
// vmfs holds open is refused with a clear error, before running out of
// file descriptors.
func TestTooManyExtentFiles(t *testing.T) {
	dir := t.TempDir()
	var desc strings.Builder
	desc.WriteString("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentFlat\"\n\n")
	for i := range maxExtentFiles + 1 {
		name := fmt.Sprintf("f%05d.raw", i)
		if err := os.WriteFile(join(dir, name), make([]byte, 512), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&desc, "RW 1 FLAT \"%s\" 0\n", name)
	}
	dp := join(dir, "d.vmdk")
	writeFile(t, dp, desc.String())
	before := openFDs(t)
	f, err := layouts.OpenFile(dp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := Open(f, testEnv())
	if err == nil {
		d.Close()
		t.Fatal("opened")
	}
	if !errors.Is(err, layouts.ErrUnsupported) || !strings.Contains(err.Error(), dp) || !strings.Contains(err.Error(), "more than 8192 extent files") {
		t.Fatalf("error %q", err)
	}
	if got := openFDs(t) - before; got > 1 {
		t.Errorf("%d file descriptors left open after the failed open", got-1)
	}
}

// TestDescriptorMemory: opening a descriptor of the largest size, in the
// shortest extent lines, allocates a small multiple of its size.
func TestDescriptorMemory(t *testing.T) {
	dir := t.TempDir()
	makeRaw(t, join(dir, "f.raw"), 512, 1)
	head := "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
	cases := []struct{ name, line string }{
		{"zero", "RW 1 ZERO\n"},
		{"flat", "RW 1 FLAT f.raw\n"},
		{"ddb", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString(head + "RW 1 ZERO\n")
			if c.line != "" {
				b.WriteString(strings.Repeat(c.line, (maxDescriptor-b.Len())/len(c.line)))
			}
			for i := 0; b.Len() < maxDescriptor-16; i++ {
				fmt.Fprintf(&b, "ddb.k%x=1\n", i)
			}
			text := b.String()
			p := join(dir, c.name+".vmdk")
			writeFile(t, p, text)
			f, err := layouts.OpenFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			d, err := Open(f, testEnv())
			runtime.ReadMemStats(&m1)
			if err != nil {
				f.Close()
				t.Fatal(err)
			}
			defer d.Close()
			a := m1.TotalAlloc - m0.TotalAlloc
			t.Logf("%d-byte descriptor: %d bytes allocated (%.1fx)", len(text), a, float64(a)/float64(len(text)))
			if a > 16*uint64(len(text)) {
				t.Errorf("opening a %d-byte descriptor allocated %d bytes, more than 16 times its size", len(text), a)
			}
		})
	}
}
