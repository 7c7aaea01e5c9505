package qcow2

import (
	"bytes"
	"compress/gzip"
	corpusdir "github.com/vmfs/vmfs/internal/corpus"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

var corpus = corpusdir.Path("images")

// TestCorpus opens the qcow2 files of the shared corpus: each reads as
// qemu-img convert -O raw does, or fails with a one-line error naming the
// problem.
func TestCorpus(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(corpus); err != nil {
		t.Fatal("corpus not present")
	}
	fox := filepath.Join(corpus, "decompressed/fox-it__dissect.hypervisor")
	cases := []struct {
		name     string
		path     func(t *testing.T) string
		sentinel error  // nil with msg "" means: opens and matches qemu
		msg      string // error text expected
	}{
		{"basic", in(fox, "basic.qcow2"), nil, ""},
		{"basic-zstd", in(fox, "basic-zstd.qcow2"), nil, ""},
		{"backing-chain", in(fox, "backing-chain-1.qcow2"), nil, ""},
		{"backing-chain-3", in(fox, "backing-chain-3.qcow2"), nil, ""},
		{"data-file-missing", in(fox, "data-file.qcow2"), nil, `referenced file "data-file.bin" is missing`},
		{"data-file", gunzipped("data-file.qcow2", "data-file.bin"), nil, ""},
		{"snapshot", gunzipped("snapshot.qcow2"), nil, ""},
		{"dfvfs-v2", in(corpus, "log2timeline__dfvfs__image.qcow2"), nil, ""},
		{"dfvfs-ext2", in(corpus, "log2timeline__dfvfs__ext2.qcow2"), nil, ""},
		{"fs-overhead", in(corpus, "kubevirt__containerized-data-importer__fs-overhead.qcow2"), nil, ""},
		{"cirros-snapshot2", in(corpus, "kubevirt__containerized-data-importer__cirros-chain/cirros-snapshot2.qcow2"), nil, `referenced file "cirros.raw" is missing`},
		// qemu-img takes ~30 s over its 65536 snapshots; it reads 512 zero
		// bytes, unallocated (checked by hand), so that is asserted here.
		{"invalid-large-json", in(corpus, "kubevirt__containerized-data-importer__invalid-qcow-large-json.img"), nil, "=zero"},
		{"invalid-large-size", in(corpus, "kubevirt__containerized-data-importer__invalid-qcow-large-size.img"), layouts.ErrUnsupported, "qcow version 1"},
		{"invalid-large-memory", in(corpus, "kubevirt__containerized-data-importer__invalid-qcow-large-memory.img"), layouts.ErrWrongType, "no qcow2 magic"},
		{"invalid-backing-file", in(corpus, "kubevirt__containerized-data-importer__invalid-qcow-backing-file.img"), layouts.ErrWrongType, "no qcow2 magic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.path(t)
			open := testOpen
			if tc.sentinel == layouts.ErrWrongType {
				open = openOnly
			}
			d, err := open(p, testEnv())
			if tc.msg == "=zero" {
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				got := readAll(t, d)
				exts, err := d.Extents(0, d.Size())
				if len(got) != 512 || !bytes.Equal(got, make([]byte, 512)) || err != nil || len(exts) != 1 || exts[0].Kind != layouts.Hole {
					t.Fatalf("want 512 unallocated zero bytes, got %d bytes, extents %v, %v", len(got), exts, err)
				}
				return
			}
			if tc.msg != "" {
				mustErr(t, err, tc.sentinel, tc.msg)
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer d.Close()
			if d.Format() != Type {
				t.Fatalf("format %s", d.Format())
			}
			compareChunked(t, p, "qcow2", d)
			checkMap(t, p, "qcow2", d)
		})
	}
}

func in(dir, name string) func(t *testing.T) string {
	return func(*testing.T) string { return filepath.Join(dir, name) }
}

// gunzipped decompresses the corpus's fox-it files into one temporary
// directory, sparse, and returns the first.
func gunzipped(names ...string) func(t *testing.T) string {
	return func(t *testing.T) string {
		dir := t.TempDir()
		for _, n := range names {
			gunzipSparse(t, filepath.Join(corpus, "fox-it__dissect.hypervisor__"+n+".gz"), filepath.Join(dir, n))
		}
		return filepath.Join(dir, names[0])
	}
}

func gunzipSparse(t testing.TB, src, dst string) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	var off int64
	for {
		n, err := io.ReadFull(zr, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				t.Fatal(err)
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Truncate(off); err != nil {
		t.Fatal(err)
	}
}

// compareChunked compares d with qemu-img convert -O raw, a piece at a time
// (corpus disks are up to 512 MiB of mostly holes).
func compareChunked(t testing.TB, path, format string, d layouts.Disk) {
	t.Helper()
	conv := filepath.Join(t.TempDir(), "qemu.raw")
	runIn(t, filepath.Dir(path), "qemu-img", "convert", "-f", format, "-O", "raw", path, conv)
	f, err := os.Open(conv)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Size() != d.Size() {
		t.Fatalf("size %d, qemu-img %d", d.Size(), st.Size())
	}
	const chunk = 4 << 20
	got, want := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < d.Size(); off += chunk {
		n := min(chunk, d.Size()-off)
		if m, err := d.ReadAt(got[:n], off); m != int(n) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", n, off, m, err)
		}
		if _, err := f.ReadAt(want[:n], off); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:n], want[:n]) {
			t.Fatalf("bytes differ from qemu-img convert at %d", off+int64(firstDiff(got[:n], want[:n])))
		}
	}
}

// openOnly opens path as qcow2, without falling back to other formats.
func openOnly(path string, env *layouts.Env) (layouts.Disk, error) {
	f, err := layouts.OpenFile(path)
	if err != nil {
		return nil, err
	}
	d, err := Open(f, env)
	if err != nil {
		f.Close()
	}
	return d, err
}
