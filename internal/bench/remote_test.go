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

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/remote/remotetest"
	"github.com/vmfs/vmfs/internal/testenv"
)

// remoteRandReads is how many 4 KiB reads a random run makes (the same
// offsets in every run, so that the repeated run asks for what the
// first one fetched).
const remoteRandReads = 2000

// remoteStats are one way of reading the 1 GiB file of the remote rows.
type remoteStats struct {
	tool           string
	seq, r4k, r4kR []float64 // MB/s; 4 KiB reads per second, first and repeated
	err            string
}

// benchRemote serves the 1 GiB random file of the passthrough rows over
// HTTPS on loopback and reads it through a vmfs https:// mount, next to
// curl reading the same ranges over one keep-alive connection, and next
// to a vmfs mount of the local file.
func benchRemote(t *testing.T, s settings, fx *fixtures, r *report) {
	testenv.NeedCommands(t, "curl")
	_, extent := flatFixture(t, fx.Dir)
	dir := t.TempDir()
	if err := os.Symlink(extent, filepath.Join(dir, "disk.raw")); err != nil {
		t.Fatal(err)
	}
	srv := remotetest.Start(t, dir)
	url := srv.URL + "/disk.raw"
	rng := rand.New(rand.NewPCG(14, 1))
	offs := make([]int64, remoteRandReads)
	for i := range offs {
		offs[i] = rng.Int64N(passSize/randBlock) * randBlock
	}
	mountOf := func(src string, args ...string) (*mounted, error) { return mountRawView(t, src, args...) }
	curlSeq := &remoteStats{tool: "curl, 1 MiB ranges, one connection"}
	curlGet := &remoteStats{tool: "curl, one GET of the whole file"}
	curlRand := &remoteStats{tool: "curl, 4 KiB ranges, one connection"}
	vmfsHTTPS := &remoteStats{tool: "**vmfs https:// mount**"}
	vmfsLocal := &remoteStats{tool: "vmfs mount of the local file"}
	r.remote = append(r.remote, curlSeq, curlGet, curlRand, vmfsHTTPS, vmfsLocal)
	var seqRanges, randRanges [][2]int64
	for off := int64(0); off < passSize; off += seqBlock {
		seqRanges = append(seqRanges, [2]int64{off, seqBlock})
	}
	for _, o := range offs {
		randRanges = append(randRanges, [2]int64{o, randBlock})
	}
	buf := make([]byte, seqBlock)
	for rep := 0; rep < s.reps; rep++ {
		if d, err := curlRanges(t, url, seqRanges); err != nil {
			curlSeq.err = oneLine(err)
		} else {
			curlSeq.seq = append(curlSeq.seq, passSize/d.Seconds()/1e6)
		}
		if d, err := curlRanges(t, url, nil); err != nil {
			curlGet.err = oneLine(err)
		} else {
			curlGet.seq = append(curlGet.seq, passSize/d.Seconds()/1e6)
		}
		if d, err := curlRanges(t, url, randRanges); err != nil {
			curlRand.err = oneLine(err)
		} else {
			curlRand.r4k = append(curlRand.r4k, remoteRandReads/d.Seconds())
		}
		for _, c := range []struct {
			st   *remoteStats
			src  string
			args []string
		}{
			{vmfsHTTPS, url, []string{"--cache-size", "256M", "--thumbprint", srv.Thumbprint}},
			{vmfsLocal, filepath.Join(dir, "disk.raw"), []string{"--no-passthrough"}},
		} {
			err := func() error {
				m, err := mountOf(c.src, c.args...)
				if err != nil {
					return err
				}
				defer m.stop()
				if err := dropCaches(); err != nil {
					return err
				}
				mbs, err := seqRead(m.File, passSize, buf)
				if err != nil {
					return err
				}
				m.stop()
				if m, err = mountOf(c.src, c.args...); err != nil {
					return err
				}
				defer m.stop()
				var rs [2]float64
				for i := range rs {
					// The page cache dropped each time: the second run
					// is served by the mount's own cache.
					if err := dropCaches(); err != nil {
						return err
					}
					if rs[i], err = preads(m.File, offs); err != nil {
						return err
					}
				}
				c.st.seq, c.st.r4k, c.st.r4kR = append(c.st.seq, mbs), append(c.st.r4k, rs[0]), append(c.st.r4kR, rs[1])
				return nil
			}()
			if err != nil {
				c.st.err = oneLine(err)
				t.Errorf("%s: %v", c.st.tool, err)
			}
		}
		t.Logf("rep %d: curl ranges %.0f MB/s, one GET %.0f MB/s, 4K %.0f/s; https mount %.0f MB/s, 4K %.0f/s, repeated %.0f/s; local mount %.0f MB/s, 4K %.0f/s",
			rep+1, last(curlSeq.seq), last(curlGet.seq), last(curlRand.r4k), last(vmfsHTTPS.seq), last(vmfsHTTPS.r4k), last(vmfsHTTPS.r4kR), last(vmfsLocal.seq), last(vmfsLocal.r4k))
	}
}

// curlRanges runs one curl that asks for each range of url in turn over
// one keep-alive connection (nil: one GET of the whole file), and times
// it.
func curlRanges(t *testing.T, url string, ranges [][2]int64) (time.Duration, error) {
	var cfg strings.Builder
	entry := func(rng string) {
		fmt.Fprintf(&cfg, "url = \"%s\"\noutput = \"/dev/null\"\ninsecure\nsilent\nshow-error\nfail\n", url)
		if rng != "" {
			fmt.Fprintf(&cfg, "range = \"%s\"\n", rng)
		}
	}
	if ranges == nil {
		entry("")
	}
	for i, r := range ranges {
		if i > 0 {
			cfg.WriteString("next\n")
		}
		entry(fmt.Sprintf("%d-%d", r[0], r[0]+r[1]-1))
	}
	p := filepath.Join(t.TempDir(), "curl.cfg")
	if err := os.WriteFile(p, []byte(cfg.String()), 0o600); err != nil {
		return 0, err
	}
	start := time.Now()
	out, err := exec.Command("curl", "--config", p).CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("curl: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return d, nil
}

// preads reads 4 KiB at each of offs, in order, and returns reads per
// second.
func preads(path string, offs []int64) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// No read-ahead: each pread asks for its 4 KiB.
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
	buf := make([]byte, randBlock)
	start := time.Now()
	for _, o := range offs {
		if _, err := f.ReadAt(buf, o); err != nil {
			return 0, err
		}
	}
	return float64(len(offs)) / time.Since(start).Seconds(), nil
}

// remoteMarkdown is the remote table: the https:// mount against curl on
// the same loopback.
func (r *report) remoteMarkdown(b *strings.Builder) {
	b.WriteString("#### Remote: a 1 GiB random file over HTTPS on loopback (in-process Go server, TLS)\n\n")
	b.WriteString("Sequential: 1 MiB reads of the whole file on a fresh read-only mount, page cache dropped, MB/s; curl asks for the same 1 MiB ranges one after the other over one keep-alive connection (and, as the ceiling, the whole file in one GET). " +
		fmt.Sprintf("Random: %d preads of 4 KiB at fixed random aligned offsets, one thread, reads per second; repeated = the same offsets again on the same mount, page cache dropped (served by the mount's block cache). ", remoteRandReads) +
		"The https:// mount uses --cache-size 256M; the local mount --no-passthrough.\n\n")
	b.WriteString("| reader | seq MB/s | rand 4K /s | rand 4K repeated /s | https mount / row, seq | rand |\n|---|--:|--:|--:|--:|--:|\n")
	var mnt *remoteStats
	for _, s := range r.remote {
		if strings.Contains(s.tool, "https://") {
			mnt = s
		}
	}
	for _, s := range r.remote {
		if s.err != "" && len(s.seq) == 0 && len(s.r4k) == 0 {
			fmt.Fprintf(b, "| %s | %s | | | | |\n", s.tool, s.err)
			continue
		}
		rs, rr := "—", "—"
		if mnt != nil && mnt != s {
			rs, rr = ratio(median(mnt.seq), median(s.seq)), ratio(median(mnt.r4k), median(s.r4k))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", s.tool, num(s.seq, "%.0f"), num(s.r4k, "%.0f"), num(s.r4kR, "%.0f"), rs, rr)
	}
	b.WriteString("\n")
}
