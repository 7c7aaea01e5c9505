package vmdk

import (
	"archive/tar"
	"errors"
	corpusdir "github.com/vmfs/vmfs/internal/corpus"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/vmfs/vmfs/layouts"
)

const testSize = 5<<20 + 7*512 // not a multiple of any grain size

// TestQemuSubformats converts a raw image to every subformat qemu-img
// makes, reads it back through Open and checks bytes and allocation
// against qemu-img.
func TestQemuSubformats(t *testing.T) {
	needQemu(t)
	cases := []struct {
		name    string
		opts    string
		size    int64
		adapter string
		create  string
		// flat: qemu-img map calls all of a flat extent data; ours
		// reports the file's holes, so only check ours is a subset.
		flat bool
	}{
		{name: "monolithicSparse", opts: "subformat=monolithicSparse", size: testSize, adapter: "ide", create: "monolithicSparse"},
		{name: "monolithicSparse-lsilogic", opts: "subformat=monolithicSparse,adapter_type=lsilogic", size: testSize, adapter: "lsilogic"},
		{name: "monolithicSparse-buslogic", opts: "subformat=monolithicSparse,adapter_type=buslogic", size: testSize, adapter: "buslogic"},
		{name: "monolithicSparse-legacyESX", opts: "subformat=monolithicSparse,adapter_type=legacyESX", size: testSize, adapter: "legacyESX"},
		{name: "monolithicSparse-zeroed-grain", opts: "subformat=monolithicSparse,zeroed_grain=on", size: testSize},
		{name: "monolithicSparse-compat6", opts: "subformat=monolithicSparse,compat6=on", size: testSize},
		{name: "monolithicSparse-odd-size", opts: "subformat=monolithicSparse", size: 3<<20 + 512},
		{name: "monolithicFlat", opts: "subformat=monolithicFlat", size: testSize, create: "monolithicFlat", flat: true},
		{name: "twoGbMaxExtentSparse", opts: "subformat=twoGbMaxExtentSparse", size: testSize, create: "twoGbMaxExtentSparse"},
		{name: "twoGbMaxExtentFlat", opts: "subformat=twoGbMaxExtentFlat", size: testSize, create: "twoGbMaxExtentFlat", flat: true},
		{name: "streamOptimized", opts: "subformat=streamOptimized", size: testSize, create: "streamOptimized"},
		{name: "streamOptimized-odd-size", opts: "subformat=streamOptimized", size: 2<<20 + 1536},
		{name: "twoGbMaxExtentSparse-3-extents", opts: "subformat=twoGbMaxExtentSparse", size: 4<<30 + 3<<20 + 512},
		{name: "twoGbMaxExtentFlat-3-extents", opts: "subformat=twoGbMaxExtentFlat", size: 4<<30 + 3<<20 + 512, flat: true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "src.raw")
			if c.size > 64<<20 {
				// Data around the extent boundaries only, the rest holes.
				f, err := os.Create(src)
				if err != nil {
					t.Fatal(err)
				}
				f.Truncate(c.size)
				f.Close()
				for _, at := range []int64{0, 2<<30 - 64<<10 - 512, 4<<30 - 1<<20, c.size - 1<<20} {
					placeRaw(t, src, at, 1<<20, uint64(at))
				}
			} else {
				makeRaw(t, src, c.size, uint64(i+1))
			}
			img := filepath.Join(dir, "disk.vmdk")
			qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", "-o", c.opts, src, img)
			d := openPath(t, img)
			if d.Format() != Type {
				t.Fatalf("format %q", d.Format())
			}
			wantSize := (c.size + 511) &^ 511
			if d.Size() != wantSize {
				t.Fatalf("size %d, want %d", d.Size(), wantSize)
			}
			vd := d.(*Disk)
			if c.adapter != "" && vd.AdapterType() != c.adapter {
				t.Errorf("adapter type %q, want %q", vd.AdapterType(), c.adapter)
			}
			if c.create != "" && vd.CreateType() != c.create {
				t.Errorf("create type %q, want %q", vd.CreateType(), c.create)
			}
			for _, f := range vd.Files() {
				if _, err := os.Stat(f); err != nil {
					t.Errorf("Files lists %s: %v", f, err)
				}
			}
			ours := filepath.Join(dir, "ours.raw")
			dumpRaw(t, d, ours)
			compareQemu(t, ours, img, "vmdk")
			checkMap(t, d, img, c.flat)
			if c.size <= 64<<20 {
				// iotest reads byte by byte: check a window across
				// grains of every kind, not the whole disk.
				const at, n = 1<<20 - 1000, 300 << 10
				if err := iotest.TestReader(io.NewSectionReader(d, at, n), mustRead(t, ours)[at:at+n]); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCorpus opens every VMDK of the shared corpus: those qemu-img opens
// must read as qemu-img convert does; the others must fail with a clear
// error.
func TestCorpus(t *testing.T) {
	needQemu(t)
	dir := corpusdir.Path("images")
	if _, err := os.Stat(dir); err != nil {
		t.Fatal("no corpus")
	}
	cases := []struct {
		file    string
		wantErr string // substring; "" means it must match qemu
	}{
		{file: "log2timeline__dfvfs__ext2.vmdk"},
		{file: "log2timeline__dfvfs__image.vmdk"},
		{file: "masahiro331__go-vmdk-parser__vmdk-monolith.img"},
		{file: "masahiro331__go-vmdk-parser__vmdk-streamoptimized.img"},
		{file: "Nowshin2002__nows__CentOS_64-bit-0_twoGbMaxExtentSparse/CentOS 64-bit-0.vmdk"},
		{file: "masahiro331__go-vmdk-parser__vmdk-invalid.img", wantErr: "truncated"},
		{file: "vmware__govmomi__ttylinux-pc_i486-16.1-disk1.vmdk", wantErr: "truncated"},
		{file: "kubevirt__containerized-data-importer__invalid-qcow-backing-file.img", wantErr: "grain directory"},
		{file: "kubevirt__containerized-data-importer__invalid-qcow-large-memory.img", wantErr: "grain directory"},
		{file: "LanRenLan__config-backup__Windows_10_x64.vmdk", wantErr: "missing"},
		{file: "Nowshin2002__nows__CentOS_64-bit.vmdk", wantErr: "missing"},
		{file: "takahiro-itou__Windows7-Vmware17__Windows7-Data1.vmdk", wantErr: "missing"},
		{file: "takahiro-itou__Windows7-Vmware17__Windows_7_x64.vmdk", wantErr: "missing"},
		{file: "virt-manager__virt-manager__test-vmdk-desc.vmdk", wantErr: "missing"},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			d, err := openAny(path, testEnv())
			if c.wantErr != "" {
				if err == nil {
					d.Close()
					t.Fatalf("opened; want error with %q", c.wantErr)
				}
				checkOneLine(t, err, c.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ours := filepath.Join(t.TempDir(), "ours.raw")
			dumpRaw(t, d, ours)
			compareQemu(t, ours, path, "vmdk")
			checkMap(t, d, path, false)
		})
	}
}

func checkOneLine(t testing.TB, err error, want string) {
	t.Helper()
	msg := err.Error()
	if want != "" && !containsFold(msg, want) {
		t.Errorf("error %q does not mention %q", msg, want)
	}
	for _, r := range msg {
		if r == '\n' {
			t.Errorf("error is not one line: %q", msg)
		}
	}
	if !errors.Is(err, layouts.ErrFormat) && !errors.Is(err, layouts.ErrUnsupported) && !containsFold(msg, "missing") && !errors.Is(err, layouts.ErrRefused) {
		t.Logf("note: error wraps no sentinel: %v", err)
	}
	t.Logf("error: %v", err)
}

// TestExtra checks the VMDKs listed in $VMDK_EXTRA (separated by ':')
// against qemu-img, for ad-hoc runs on real disks.
func TestExtra(t *testing.T) {
	list := os.Getenv("VMDK_EXTRA")
	if list == "" {
		t.Skip("VMDK_EXTRA not set")
	}
	needQemu(t)
	for _, path := range filepath.SplitList(list) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			d := openPath(t, path)
			ours := filepath.Join(t.TempDir(), "ours.raw")
			dumpRaw(t, d, ours)
			compareQemu(t, ours, path, "vmdk")
			checkMap(t, d, path, false)
		})
	}
}

// TestOVASection reads the VMDK inside an OVA in place, through a
// layouts.SectionFile, and checks it against qemu-img on an extracted copy.
func TestOVASection(t *testing.T) {
	needQemu(t)
	ova := corpusdir.Path("ovf", "kubevirt__containerized-data-importer__fake.ova")
	f, err := os.Open(ova)
	if err != nil {
		t.Fatal("no corpus OVA")
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatal("no vmdk in the OVA: ", err)
		}
		if filepath.Ext(h.Name) != ".vmdk" {
			continue
		}
		pos, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		copyPath := filepath.Join(dir, "extracted.vmdk")
		out, err := os.Create(copyPath)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			t.Fatal(err)
		}
		out.Close()
		sec := &layouts.SectionFile{R: f, Base: pos, N: h.Size, Path: filepath.Join(filepath.Dir(ova), h.Name)}
		d, err := Open(sec, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		ours := filepath.Join(dir, "ours.raw")
		dumpRaw(t, d, ours)
		compareQemu(t, ours, copyPath, "vmdk")
		return
	}
}
