package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
)

const passSize = 1 << 30 // the flat VMDK of the passthrough rows

// passStats are one way of reading the 1 GiB flat extent, warm.
type passStats struct {
	tool     string
	warm, r4 []float64
	w4       []float64 // random 4 KiB writes, 4 threads (writable rows)
	err      string
}

// flatFixture makes (or finds) pt.vmdk, a monolithicFlat VMDK whose
// pt-flat.vmdk extent holds 1 GiB of random data, and returns both paths.
func flatFixture(t *testing.T, dir string) (desc, extent string) {
	desc, extent = filepath.Join(dir, "pt.vmdk"), filepath.Join(dir, "pt-flat.vmdk")
	done := filepath.Join(dir, "pt.done")
	if _, err := os.Stat(done); err == nil {
		return desc, extent
	}
	err := func() error {
		if out, err := exec.Command("qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", desc, fmt.Sprint(passSize)).CombinedOutput(); err != nil {
			return fmt.Errorf("qemu-img create: %v: %s", err, strings.TrimSpace(string(out)))
		}
		f, err := os.OpenFile(extent, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		rng := rand.New(rand.NewChaCha8([32]byte{'p', 't'}))
		buf := make([]byte, genBuf)
		for off := int64(0); off < passSize; off += genBuf {
			fillRandom(rng, buf)
			if _, err := f.WriteAt(buf, off); err != nil {
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.WriteFile(done, nil, 0o644)
	}()
	if err != nil {
		os.Remove(desc)
		os.Remove(extent)
		t.Fatalf("bench: building %s: %v", desc, err)
	}
	return desc, extent
}

// benchPassthrough reads a 1 GiB flat VMDK's raw view on a read-only mount,
// warm, with passthrough and without, next to its extent read directly
// from the page cache (the ceiling).
func benchPassthrough(t *testing.T, s settings, fx *fixtures, r *report) {
	desc, extent := flatFixture(t, fx.Dir)
	mountWith := func(args ...string) func() (*mounted, error) {
		return func() (*mounted, error) { return mountRawView(t, desc, args...) }
	}
	configs := []passConfig{
		{&passStats{tool: "vmfs (passthrough)"}, mountWith()},
		{&passStats{tool: "vmfs --no-passthrough"}, mountWith("--no-passthrough")},
		{&passStats{tool: "raw file (ceiling)"}, func() (*mounted, error) {
			return &mounted{File: extent, stop: func() error { return nil }}, nil
		}},
	}
	for _, c := range configs {
		r.pass = append(r.pass, c.st)
	}
	runPass(t, s, configs, false)
	benchPassthroughWritable(t, s, desc, r)
}

// benchPassthroughWritable is benchPassthrough for writable mounts: the
// same flat VMDK copied onto a fresh XFS (reflink=1) with the overlay
// there too, so that the mount serves the disk by passthrough from the
// overlay's clone of the extent; against --no-passthrough and the extent
// read and written directly on that file system. Every mount starts from
// a fresh overlay (a new clone); the writes go to the page cache.
func benchPassthroughWritable(t *testing.T, s settings, desc string, r *report) {
	xfs, err := benchLoopFS(t, "xfs", "mkfs.xfs", "-q", "-m", "reflink=1")
	if err != nil {
		r.passRWNote = "writable rows not measured: " + oneLine(err)
		return
	}
	dir := filepath.Join(xfs, "vm")
	os.Mkdir(dir, 0o755)
	for _, p := range []string{desc, strings.TrimSuffix(desc, ".vmdk") + "-flat.vmdk"} {
		if out, err := exec.Command("cp", p, dir).CombinedOutput(); err != nil {
			r.passRWNote = fmt.Sprintf("writable rows not measured: cp %s: %v %s", p, err, out)
			return
		}
	}
	src := filepath.Join(dir, filepath.Base(desc))
	extent := strings.TrimSuffix(src, ".vmdk") + "-flat.vmdk"
	ovl := filepath.Join(xfs, "overlay")
	mountRW := func(args ...string) func() (*mounted, error) {
		return func() (*mounted, error) {
			return mountView(t, src, false, append([]string{"--fresh", "--overlay", ovl}, args...)...)
		}
	}
	configs := []passConfig{
		{&passStats{tool: "vmfs writable (passthrough, overlay clone on xfs)"}, mountRW()},
		{&passStats{tool: "vmfs writable --no-passthrough (xfs)"}, mountRW("--no-passthrough")},
		{&passStats{tool: "raw file on xfs (ceiling)"}, func() (*mounted, error) {
			return &mounted{File: extent, stop: func() error { return nil }}, nil
		}},
	}
	for _, c := range configs {
		r.passRW = append(r.passRW, c.st)
	}
	runPass(t, s, configs, true)
}

// passConfig is one way of reaching the flat extent.
type passConfig struct {
	st    *passStats
	mount func() (*mounted, error)
}

// runPass measures each config s.reps times, alternating: one whole read
// first (warm means the source in the page cache and, without
// passthrough, the mount's own cache too), then a sequential read, random
// 4 KiB reads with 4 threads and, with writes, random 4 KiB writes.
func runPass(t *testing.T, s settings, configs []passConfig, writes bool) {
	buf := make([]byte, seqBlock)
	for rep := 0; rep < s.reps; rep++ {
		for _, c := range configs {
			if c.st.err != "" {
				continue
			}
			m, err := c.mount()
			if err != nil {
				c.st.err = oneLine(err)
				t.Errorf("%s: %v", c.st.tool, err)
				continue
			}
			_, err = seqRead(m.File, passSize, buf)
			var w, r4, w4 float64
			if err == nil {
				w, err = seqRead(m.File, passSize, buf)
			}
			if err == nil {
				r4, err = randRead(m.File, passSize, 4, s.randDur, uint64(rep))
			}
			if err == nil && writes {
				w4, err = randWrite(m.File, passSize, 4, s.randDur, uint64(rep))
			}
			if serr := m.stop(); serr != nil {
				t.Errorf("%s: %v", c.st.tool, serr)
			}
			if err != nil {
				c.st.err = oneLine(err)
				t.Errorf("%s: %v", c.st.tool, err)
				continue
			}
			c.st.warm, c.st.r4 = append(c.st.warm, w), append(c.st.r4, r4)
			if writes {
				c.st.w4 = append(c.st.w4, w4)
			}
			t.Logf("rep %d %-50s warm %7.0f MB/s  rand4 %7.0f /s  write4 %7.0f /s", rep+1, c.st.tool, w, r4, w4)
		}
	}
}

// mountRawView mounts src read-only with its disk as raw (and args) and
// returns the disk's file in the mount.
func mountRawView(t *testing.T, src string, args ...string) (*mounted, error) {
	return mountView(t, src, true, args...)
}

// mountView is mountRawView, writable unless readOnly.
func mountView(t *testing.T, src string, readOnly bool, args ...string) (*mounted, error) {
	mnt := testenv.MountDir(t)
	a := append([]string{"--format", "raw"}, args...)
	if readOnly {
		a = append([]string{"--read-only"}, a...)
	}
	if _, err := testenv.TryMount(t, append(a, src, mnt)...); err != nil {
		return nil, err
	}
	m := &mounted{stop: func() error { return testenv.Unmount(t, mnt) }}
	disks, _ := filepath.Glob(filepath.Join(mnt, "*-disk0.raw"))
	if len(disks) != 1 {
		m.stop()
		return nil, fmt.Errorf("vmfs mount of %s shows %d disks", src, len(disks))
	}
	m.File = disks[0]
	return m, nil
}

// passMarkdown is the passthrough table: each row against the ceiling.
func (r *report) passMarkdown(b *strings.Builder) {
	b.WriteString("#### Passthrough: a 1 GiB flat VMDK's raw view, read-only mount, warm\n\n")
	b.WriteString("Sequential: 1 MiB buffered reads of the whole file after one read that warms the cache. " +
		"Random: 4 KiB preads, 4 threads, thousands per second. Ratios are the row / the flat extent read directly from the page cache.\n\n")
	b.WriteString("| tool | seq warm MB/s | rand 4K ×4 k/s | /ceiling seq | /ceiling ×4 |\n|---|--:|--:|--:|--:|\n")
	var ceil *passStats
	for _, s := range r.pass {
		if strings.HasPrefix(s.tool, "raw file") {
			ceil = s
		}
	}
	for _, s := range r.pass {
		if s.err != "" && len(s.warm) == 0 {
			fmt.Fprintf(b, "| %s | %s | | | |\n", s.tool, s.err)
			continue
		}
		rs, r4 := "—", "—"
		if ceil != nil && ceil != s {
			rs, r4 = ratio(median(s.warm), median(ceil.warm)), ratio(median(s.r4), median(ceil.r4))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", s.tool, num(s.warm, "%.0f"), num(scale(s.r4, 1e-3), "%.1f"), rs, r4)
	}
	b.WriteString("\n")
	if len(r.passRW) == 0 && r.passRWNote == "" {
		return
	}
	b.WriteString("#### Passthrough on a writable mount: the same VMDK on XFS (reflink=1), overlay on it, warm\n\n")
	b.WriteString("As above, plus random 4 KiB pwrites with 4 threads (buffered). Every mount starts from a fresh overlay: a new clone of the extent. " +
		"The ceiling is the extent read and written directly on that file system.\n\n")
	if r.passRWNote != "" {
		b.WriteString(r.passRWNote + "\n\n")
		return
	}
	b.WriteString("| tool | seq warm MB/s | rand 4K ×4 k/s | write 4K ×4 k/s | /ceiling seq | /ceiling ×4 | /ceiling write ×4 |\n|---|--:|--:|--:|--:|--:|--:|\n")
	var ceilRW *passStats
	for _, s := range r.passRW {
		if strings.HasPrefix(s.tool, "raw file") {
			ceilRW = s
		}
	}
	for _, s := range r.passRW {
		if s.err != "" && len(s.warm) == 0 {
			fmt.Fprintf(b, "| %s | %s | | | | | |\n", s.tool, s.err)
			continue
		}
		rs, r4, w4 := "—", "—", "—"
		if ceilRW != nil && ceilRW != s {
			rs, r4, w4 = ratio(median(s.warm), median(ceilRW.warm)), ratio(median(s.r4), median(ceilRW.r4)), ratio(median(s.w4), median(ceilRW.w4))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", s.tool, num(s.warm, "%.0f"), num(scale(s.r4, 1e-3), "%.1f"), num(scale(s.w4, 1e-3), "%.1f"), rs, r4, w4)
	}
	b.WriteString("\n")
}
