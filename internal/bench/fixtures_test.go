package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	smallSize = 4 << 30        // virtual size of the 4 GiB disk
	smallData = 3 << 29        // 1.5 GiB of random data in it
	bigSize   = 1 << 40        // virtual size of the 1 TiB sparse VMDK
	bigData   = 1 << 30        // 1 GiB of data in it
	fixtureV  = "bench-v1"     // bump when the fixtures change
	genBuf    = 8 << 20        // generation buffer
	minChunk  = 64 << 10       // smallest data chunk
	maxChunk  = 8<<20 + 3<<9   // largest data chunk (not block aligned)
	zeroEvery = 5              // one chunk in zeroEvery carries a zero run
	zeroRun   = 256<<10 + 4096 // length of that zero run
)

// fixture is one source disk of the benchmark.
type fixture struct {
	Name   string // short name in the table: vmdk, stream, qcow2, vhdx
	Path   string
	Format string // qemu format name
	Raw    string // the raw image it was converted from
	Size   int64  // virtual size
}

// fixtures are the benchmark's images, built once into dir.
type fixtures struct {
	Dir    string
	Raw    string    // 4 GiB sparse raw, 1.5 GiB data
	Small  []fixture // the raw converted to each format
	BigVMD string    // 1 TiB monolithicSparse VMDK, 1 GiB data
}

func (fx *fixtures) byName(name string) fixture {
	for _, f := range fx.Small {
		if f.Name == name {
			return f
		}
	}
	panic("bench: no fixture " + name)
}

// cacheDir is where fixtures live: $VMFS_TEST_CACHE/bench-v1 (kept across
// runs) or a temp dir of this run.
func cacheDir(t *testing.T) string {
	base := os.Getenv("VMFS_TEST_CACHE")
	if base == "" {
		if h, err := os.UserHomeDir(); err == nil {
			base = filepath.Join(h, ".cache", "vmfs-test")
		}
	}
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, fixtureV)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildFixtures makes (or finds) every fixture.
func buildFixtures(t *testing.T) *fixtures {
	dir := cacheDir(t)
	fx := &fixtures{Dir: dir, Raw: filepath.Join(dir, "disk.raw"), BigVMD: filepath.Join(dir, "big.vmdk")}
	start := time.Now()
	cached(t, fx.Raw, func(tmp string) error { return writeSparse(tmp, smallSize, smallData, 1) })
	for _, c := range []struct{ name, file, format, opts string }{
		{"vmdk", "disk.vmdk", "vmdk", ""},
		{"stream", "disk-stream.vmdk", "vmdk", "subformat=streamOptimized"},
		{"qcow2", "disk.qcow2", "qcow2", ""},
		{"vhdx", "disk.vhdx", "vhdx", ""},
	} {
		p := filepath.Join(dir, c.file)
		cached(t, p, func(tmp string) error { return qemuConvert(fx.Raw, tmp, c.format, c.opts) })
		fx.Small = append(fx.Small, fixture{Name: c.name, Path: p, Format: c.format, Raw: fx.Raw, Size: smallSize})
	}
	cached(t, fx.BigVMD, func(tmp string) error {
		raw := strings.TrimSuffix(tmp, ".vmdk") + ".raw"
		defer os.Remove(raw)
		if err := writeSparse(raw, bigSize, bigData, 2); err != nil {
			return err
		}
		return qemuConvert(raw, tmp, "vmdk", "")
	})
	t.Logf("fixtures in %s ready after %v", dir, time.Since(start).Round(time.Millisecond))
	return fx
}

// cached runs build into a temp name and renames it to path, unless path
// exists already.
func cached(t *testing.T, path string, build func(tmp string) error) {
	if _, err := os.Stat(path); err == nil {
		return
	}
	// Build under the final name in a temp dir: a VMDK's descriptor names
	// its own file, which other readers (vmdkmount) follow.
	tmpDir := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	os.RemoveAll(tmpDir)
	if err := os.Mkdir(tmpDir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, filepath.Base(path))
	start := time.Now()
	if err := build(tmp); err != nil {
		t.Fatalf("bench: building %s: %v", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %v", filepath.Base(path), time.Since(start).Round(time.Millisecond))
}

func qemuConvert(src, dst, format, opts string) error {
	args := []string{"convert", "-f", "raw", "-O", format}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	args = append(args, src, dst)
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// writeSparse writes a sparse raw image of size bytes holding about data
// bytes of random content in scattered chunks of varied, unaligned sizes,
// with holes between them and zero runs inside some of them.
func writeSparse(path string, size, data int64, seed uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), 'v', 'm', 'f', 's'}))
	avgChunk := int64(minChunk+maxChunk) / 2
	nChunks := data / avgChunk
	avgGap := (size - data) / (nChunks + nChunks/4 + 1) // leave room at the end
	buf := make([]byte, genBuf+maxChunk)
	pos, written, i := int64(0), int64(0), 0
	for written < data {
		gap := rng.Int64N(2*avgGap) &^ 511
		n := minChunk + rng.Int64N(maxChunk-minChunk)
		if n > data-written {
			n = data - written
		}
		if pos+gap+n > size {
			break
		}
		pos += gap
		chunk := buf[:n]
		fillRandom(rng, chunk)
		if i%zeroEvery == 0 && n > 2*zeroRun {
			z := rng.Int64N(n - zeroRun)
			clear(chunk[z : z+zeroRun])
		}
		if _, err := f.WriteAt(chunk, pos); err != nil {
			return err
		}
		pos += n
		written += n
		i++
	}
	return f.Close()
}

func fillRandom(rng *rand.Rand, b []byte) {
	for len(b) >= 8 {
		v := rng.Uint64()
		b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		b[4], b[5], b[6], b[7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
		b = b[8:]
	}
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}
