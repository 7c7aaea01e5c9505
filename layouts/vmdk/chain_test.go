package vmdk

import (
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	corpusdir "github.com/vmfs/vmfs/internal/corpus"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// qemuIO runs qemu-io commands on a VMDK.
func qemuIO(t testing.TB, img string, cmds ...string) {
	t.Helper()
	args := []string{"-f", "vmdk"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	if _, err := runTool("qemu-io", append(args, img)...); err != nil {
		t.Fatal(err)
	}
}

// TestDeltaChains builds snapshot chains with qemu-img create -b and
// qemu-io writes, and checks each layer against qemu-img.
func TestDeltaChains(t *testing.T) {
	needQemu(t)
	cases := []struct {
		name    string
		base    string // subformat of the base
		depth   int
		topSize int64 // 0: same as the base
	}{
		{name: "sparse-depth1", base: "monolithicSparse", depth: 1},
		{name: "sparse-depth3", base: "monolithicSparse", depth: 3},
		{name: "flat-base-depth2", base: "monolithicFlat", depth: 2},
		{name: "stream-base-depth1", base: "streamOptimized", depth: 1},
		{name: "twoGb-base-depth2", base: "twoGbMaxExtentSparse", depth: 2},
		{name: "larger-top", base: "monolithicSparse", depth: 1, topSize: testSize + 3<<20},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := join(dir, "src.raw")
			makeRaw(t, src, testSize, uint64(100+i))
			prev := join(dir, "base.vmdk")
			qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+c.base, src, prev)
			for k := 1; k <= c.depth; k++ {
				img := join(dir, fmt.Sprintf("base-%06d.vmdk", k))
				args := []string{"create", "-q", "-f", "vmdk", "-b", filepath.Base(prev), "-F", "vmdk", img}
				if c.topSize != 0 && k == c.depth {
					args = append(args, fmt.Sprint(c.topSize))
				}
				qemuImg(t, args...)
				qemuIO(t, img,
					fmt.Sprintf("write -P 0x%02x %d 100k", 0x40+k, int64(k)*300<<10+1024),
					fmt.Sprintf("write -P 0x%02x %d 64k", 0x50+k, int64(k)*1<<20),
					fmt.Sprintf("write -z %d 128k", int64(k)*512<<10+2<<20))
				prev = img
			}
			d := openPath(t, prev)
			vd := d.(*Disk)
			if vd.Parent() == nil {
				t.Fatal("no parent")
			}
			if got, want := len(vd.Files()), c.depth+1; got < want {
				t.Errorf("Files lists %d files, want at least %d: %v", got, want, vd.Files())
				// Say why the base did not open as a VMDK.
				base := join(dir, "base.vmdk")
				if f, err := layouts.OpenFile(base); err != nil {
					t.Logf("base: %v", err)
				} else {
					_, err := Open(f, testEnv())
					head, _ := os.ReadFile(base)
					t.Logf("base reopened: %v; %d bytes: %q", err, len(head), head[:min(len(head), 300)])
				}
			}
			ours := join(dir, "ours.raw")
			dumpRaw(t, d, ours)
			compareQemu(t, ours, prev, "vmdk")
			checkMap(t, d, prev, c.base == "monolithicFlat")
		})
	}
}

// TestHandWritten reads descriptors written by hand as ESXi and VMware
// Workstation write them: vmfs and vmfsThin over a -flat.vmdk, mixed FLAT,
// SPARSE and ZERO extents, odd whitespace, CRLF and comments.
func TestHandWritten(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	flat := join(dir, "disk-flat.vmdk")
	makeRaw(t, flat, testSize, 42)
	sp := join(dir, "sp.vmdk")
	qemuImg(t, "create", "-q", "-f", "vmdk", sp, fmt.Sprint(testSize))
	qemuIO(t, sp, "write -P 0x5a 100k 300k", "write -P 0x33 3M 64k")
	const sectors = testSize / 512
	// What the mixed descriptor below holds, built by hand.
	spRaw := join(dir, "sp.raw")
	qemuImg(t, "convert", "-f", "vmdk", "-O", "raw", sp, spRaw)
	flatBytes, spBytes := mustRead(t, flat), mustRead(t, spRaw)
	var mixed []byte
	mixed = append(mixed, flatBytes[7*512:7*512+4000*512]...)
	mixed = append(mixed, make([]byte, 100*512)...)
	mixed = append(mixed, flatBytes...)
	mixed = append(mixed, spBytes...)
	if err := os.WriteFile(join(dir, "mixed.raw"), mixed, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		text string
		// oracle: "" compares with qemu reading the descriptor; else a
		// raw file that must hold the same bytes.
		oracle  string
		adapter string
		size    int64
	}{
		{name: "vmfs", adapter: "lsilogic", size: testSize, text: fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=4164f1a0
parentCID=ffffffff
createType="vmfs"

# Extent description
RW %d VMFS "disk-flat.vmdk"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.thinProvisioned = "1"
`, sectors)},
		{name: "vmfsThin", oracle: "disk-flat.vmdk", adapter: "pvscsi", size: testSize, text: fmt.Sprintf("# Disk DescriptorFile\r\nversion=1\r\nCID=fffffffe\r\nparentCID=ffffffff\r\ncreateType=\"vmfsThin\"\r\n\r\nRW %d VMFS \"disk-flat.vmdk\"\r\nddb.adapterType = \"pvscsi\"\r\n", sectors)},
		{name: "mixed-extents", oracle: "mixed.raw", adapter: "buslogic", size: (4000 + 100 + 2*sectors) * 512, text: fmt.Sprintf(`# Disk DescriptorFile
  version = 1
CID=12345678
	parentCID = ffffffff
# a comment
createType = "monolithicFlat"

RW 4000 FLAT "disk-flat.vmdk" 7
RDONLY   100   ZERO
  RW	%d	FLAT	"disk-flat.vmdk"	0
NOACCESS %d SPARSE "sp.vmdk"
ddb.adapterType="buslogic"
`, sectors, sectors)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			desc := join(dir, c.name+".vmdk")
			writeFile(t, desc, c.text)
			d := openPath(t, desc)
			if d.Size() != c.size {
				t.Fatalf("size %d, want %d", d.Size(), c.size)
			}
			if got := d.(*Disk).AdapterType(); got != c.adapter {
				t.Errorf("adapter %q, want %q", got, c.adapter)
			}
			ours := join(t.TempDir(), "ours.raw")
			dumpRaw(t, d, ours)
			if c.oracle != "" {
				compareQemu(t, ours, join(dir, filepath.Base(c.oracle)), "raw")
				return
			}
			compareQemu(t, ours, desc, "vmdk")
			checkMap(t, d, desc, true)
		})
	}
}

// buildCOWD writes a vmfsSparse ("COWD") delta extent of the given sectors
// and grain size, with data in some grains, and returns what it holds
// (nil entries are unallocated grains).
func buildCOWD(t testing.TB, path string, sectors, grain int64, seed uint64) [][]byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	gb := grain * 512
	numGrains := (sectors + grain - 1) / grain
	numGD := (numGrains + cowdPerGT - 1) / cowdPerGT
	gdOff := int64(4)
	gtOff := gdOff + (numGD*4+511)/512
	next := gtOff + numGD*cowdPerGT*4/512
	hdr := make([]byte, 2048)
	le := binary.LittleEndian
	le.PutUint32(hdr[0:], cowdMagic)
	le.PutUint32(hdr[4:], 1)
	le.PutUint32(hdr[8:], 3)
	le.PutUint32(hdr[12:], uint32(sectors))
	le.PutUint32(hdr[16:], uint32(grain))
	le.PutUint32(hdr[20:], uint32(gdOff))
	le.PutUint32(hdr[24:], uint32(numGD))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gd := make([]byte, numGD*4)
	gts := make([]byte, numGD*cowdPerGT*4)
	for i := int64(0); i < numGD; i++ {
		le.PutUint32(gd[i*4:], uint32(gtOff+i*cowdPerGT*4/512))
	}
	grains := make([][]byte, numGrains)
	for g := int64(0); g < numGrains; g++ {
		if r.IntN(3) != 0 {
			continue
		}
		b := make([]byte, gb)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		grains[g] = b
		le.PutUint32(gts[g*4:], uint32(next))
		if _, err := f.WriteAt(b, next*512); err != nil {
			t.Fatal(err)
		}
		next += grain
	}
	le.PutUint32(hdr[28:], uint32(next))
	for _, w := range []struct {
		b   []byte
		off int64
	}{{hdr, 0}, {gd, gdOff * 512}, {gts, gtOff * 512}} {
		if _, err := f.WriteAt(w.b, w.off); err != nil {
			t.Fatal(err)
		}
	}
	return grains
}

// TestVMFSSparse reads ESXi vmfsSparse delta disks over a base, with
// qemu-img as the oracle.
func TestVMFSSparse(t *testing.T) {
	needQemu(t)
	for _, grain := range []int64{1, 8, 128} {
		t.Run(fmt.Sprintf("grain-%d-sectors", grain), func(t *testing.T) {
			dir := t.TempDir()
			src := join(dir, "src.raw")
			makeRaw(t, src, testSize, uint64(grain))
			base := join(dir, "base.vmdk")
			qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", src, base)
			bd := openPath(t, base)
			cid := bd.(*Disk).Descriptor().CID
			const sectors = testSize / 512
			buildCOWD(t, join(dir, "top-delta.vmdk"), sectors, grain, 9)
			top := join(dir, "top.vmdk")
			writeFile(t, top, fmt.Sprintf(`# Disk DescriptorFile
version=1
CID=abcdef01
parentCID=%08x
createType="vmfsSparse"
parentFileNameHint="base.vmdk"

# Extent description
RW %d VMFSSPARSE "top-delta.vmdk"

ddb.adapterType = "lsilogic"
`, cid, sectors))
			d := openPath(t, top)
			ours := join(dir, "ours.raw")
			dumpRaw(t, d, ours)
			compareQemu(t, ours, top, "vmdk")
			checkMap(t, d, top, false)
		})
	}
}

// TestSESparse reads the seSparse sample of the corpus through a
// descriptor, with qemu-img as the oracle.
func TestSESparse(t *testing.T) {
	needQemu(t)
	gz := corpusdir.Path("images", "fox-it__dissect.hypervisor__sesparse.vmdk.gz")
	in, err := os.Open(gz)
	if err != nil {
		t.Fatal("no corpus sample")
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ext := join(dir, "disk-sesparse.vmdk")
	out, err := os.Create(ext)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	out.Close()
	desc := join(dir, "disk.vmdk")
	writeFile(t, desc, "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"seSparse\"\n\n# Extent description\nRW 1048576 SESPARSE \"disk-sesparse.vmdk\"\n")
	d := openPath(t, desc)
	ours := join(dir, "ours.raw")
	dumpRaw(t, d, ours)
	compareQemu(t, ours, desc, "vmdk")
	checkMap(t, d, desc, false)
}

// TestRefused checks the one-line errors of descriptors vmfs does not read.
func TestRefused(t *testing.T) {
	dir := t.TempDir()
	makeRaw(t, join(dir, "x-flat.vmdk"), 1<<20, 1)
	outside := t.TempDir()
	makeRaw(t, join(outside, "o-flat.vmdk"), 1<<20, 1)
	desc := func(ct, ext string) string {
		return "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"" + ct + "\"\n" + ext + "\n"
	}
	cases := []struct {
		name, text, want string
		is               error
	}{
		{"fullDevice", desc("fullDevice", `RW 2048 FLAT "/dev/sda" 0`), `createType "fullDevice"`, layouts.ErrUnsupported},
		{"partitionedDevice", desc("partitionedDevice", `RW 2048 FLAT "x-flat.vmdk" 0`), `createType "partitionedDevice"`, layouts.ErrUnsupported},
		{"vmfsRaw", desc("vmfsRaw", `RW 2048 VMFSRAW "x-flat.vmdk"`), `createType "vmfsRaw"`, layouts.ErrUnsupported},
		{"vmfsRDM", desc("vmfsRDM", `RW 2048 VMFSRDM "x-flat.vmdk"`), `createType "vmfsRDM"`, layouts.ErrUnsupported},
		{"rdm-extent", desc("vmfs", `RW 2048 VMFSRDM "x-flat.vmdk"`), "raw device mapping", layouts.ErrUnsupported},
		{"unknown-createType", desc("fancyNewType", `RW 2048 FLAT "x-flat.vmdk" 0`), `unknown createType "fancyNewType"`, layouts.ErrUnsupported},
		{"unknown-extent-type", desc("vmfs", `RW 2048 WEIRD "x-flat.vmdk"`), `unknown type "WEIRD"`, layouts.ErrUnsupported},
		{"no-createType", "# Disk DescriptorFile\nversion=1\nRW 2048 FLAT \"x-flat.vmdk\" 0\n", "no createType", layouts.ErrFormat},
		{"no-extents", desc("vmfs", ""), "no extents", layouts.ErrFormat},
		{"flat-too-short", desc("vmfs", `RW 4096 VMFS "x-flat.vmdk"`), "flat extent needs", layouts.ErrFormat},
		{"bad-extent-size", desc("vmfs", `RW 99999999999999999999 VMFS "x-flat.vmdk"`), "bad extent size", layouts.ErrFormat},
		{"unterminated-name", desc("vmfs", `RW 2048 VMFS "x-flat.vmdk`), "unterminated", layouts.ErrFormat},
		{"missing-extent", desc("vmfs", `RW 2048 VMFS "nothere-flat.vmdk"`), "missing", nil},
		{"outside-dir", desc("vmfs", `RW 2048 VMFS "`+join(outside, "o-flat.vmdk")+`"`), "outside", layouts.ErrRefused},
		{"dotdot", desc("vmfs", `RW 2048 VMFS "../`+filepath.Base(outside)+`/o-flat.vmdk"`), "outside", layouts.ErrRefused},
		{"delta-without-hint", "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=12345678\ncreateType=\"vmfs\"\nRW 2048 VMFS \"x-flat.vmdk\"\n", "parentFileNameHint", layouts.ErrFormat},
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
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v does not wrap %v", err, c.is)
			}
			if errors.Is(err, layouts.ErrWrongType) {
				t.Errorf("error %v wraps ErrWrongType", err)
			}
			checkOneLine(t, err, c.want)
		})
	}
}

// TestWrongType checks that files that are not VMDK are passed on quickly.
func TestWrongType(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"empty":      nil,
		"zeros":      make([]byte, 4096),
		"short":      []byte("KD"),
		"text":       []byte("hello world\nthis is not a disk\n"),
		"qcow2":      append([]byte("QFI\xfb"), make([]byte, 508)...),
		"binary-mix": append([]byte("# Disk DescriptorFile\n"), 0, 1, 2, 3),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			p := join(dir, name)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := layouts.OpenFile(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = Open(f, nil)
			if !errors.Is(err, layouts.ErrWrongType) {
				t.Fatalf("error %v, want ErrWrongType", err)
			}
		})
	}
}

// TestCIDAndLoops checks parentCID mismatches and parent loops.
func TestCIDAndLoops(t *testing.T) {
	dir := t.TempDir()
	makeRaw(t, join(dir, "b-flat.vmdk"), 1<<20, 3)
	makeRaw(t, join(dir, "a-flat.vmdk"), 1<<20, 4)
	d := func(cid, pcid, hint, ext string) string {
		s := "# Disk DescriptorFile\nversion=1\nCID=" + cid + "\nparentCID=" + pcid + "\ncreateType=\"vmfs\"\n"
		if hint != "" {
			s += "parentFileNameHint=\"" + hint + "\"\n"
		}
		return s + "RW 2048 VMFS \"" + ext + "\"\n"
	}
	writeFile(t, join(dir, "base.vmdk"), d("11111111", "ffffffff", "", "b-flat.vmdk"))
	writeFile(t, join(dir, "good.vmdk"), d("22222222", "11111111", "base.vmdk", "a-flat.vmdk"))
	writeFile(t, join(dir, "badcid.vmdk"), d("22222222", "deadbeef", "base.vmdk", "a-flat.vmdk"))
	writeFile(t, join(dir, "loop1.vmdk"), d("33333333", "44444444", "loop2.vmdk", "a-flat.vmdk"))
	writeFile(t, join(dir, "loop2.vmdk"), d("44444444", "33333333", "loop1.vmdk", "b-flat.vmdk"))
	writeFile(t, join(dir, "self.vmdk"), d("55555555", "55555555", "self.vmdk", "b-flat.vmdk"))
	cases := []struct{ file, want string }{
		{"good.vmdk", ""},
		{"badcid.vmdk", "does not match CID 11111111 of parent"},
		{"loop1.vmdk", "loops back"},
		{"self.vmdk", "loops back"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			f, err := layouts.OpenFile(join(dir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			disk, err := Open(f, testEnv())
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer disk.Close()
				files := disk.(*Disk).Files()
				if len(files) != 4 || !strings.HasSuffix(files[3], "b-flat.vmdk") {
					t.Errorf("files %v", files)
				}
				return
			}
			f.Close()
			if err == nil {
				disk.Close()
				t.Fatal("opened")
			}
			checkOneLine(t, err, c.want)
			if !strings.Contains(err.Error(), c.file) {
				t.Errorf("error %q does not name %s", err, c.file)
			}
		})
	}
}
