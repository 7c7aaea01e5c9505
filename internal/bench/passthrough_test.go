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
	configs := []struct {
		st    *passStats
		mount func() (*mounted, error)
	}{
		{&passStats{tool: "vmfs (passthrough)"}, mountWith()},
		{&passStats{tool: "vmfs --no-passthrough"}, mountWith("--no-passthrough")},
		{&passStats{tool: "raw file (ceiling)"}, func() (*mounted, error) {
			return &mounted{File: extent, stop: func() error { return nil }}, nil
		}},
	}
	for _, c := range configs {
		r.pass = append(r.pass, c.st)
	}
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
			// One read first: warm means the source in the page cache
			// (and, without passthrough, the mount's own cache too).
			_, err = seqRead(m.File, passSize, buf)
			var w, r4 float64
			if err == nil {
				w, err = seqRead(m.File, passSize, buf)
			}
			if err == nil {
				r4, err = randRead(m.File, passSize, 4, s.randDur, uint64(rep))
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
			t.Logf("rep %d %-22s warm %7.0f MB/s  rand4 %7.0f /s", rep+1, c.st.tool, w, r4)
		}
	}
}

// mountRawView mounts src read-only with its disk as raw (and args) and
// returns the disk's file in the mount.
func mountRawView(t *testing.T, src string, args ...string) (*mounted, error) {
	mnt := testenv.MountDir(t)
	a := append([]string{"--read-only", "--format", "raw"}, args...)
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
}
