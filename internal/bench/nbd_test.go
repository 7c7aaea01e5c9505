package bench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/testenv"
)

// nbdServer is one NBD server of the side-by-side run.
type nbdServer struct {
	name, serves string
	// start runs the server on port and returns the export's URI.
	start func(t *testing.T, fx *fixtures, bin string, port int) (*exec.Cmd, string)
}

func nbdServers() []nbdServer {
	return []nbdServer{
		{"vmfs serve", "the VMDK (monolithicSparse), read-only", func(t *testing.T, fx *fixtures, bin string, port int) (*exec.Cmd, string) {
			return exec.Command(bin, "serve", "--nbd", fmt.Sprintf("127.0.0.1:%d", port), fx.byName("vmdk").Path),
				fmt.Sprintf("nbd://127.0.0.1:%d/disk%%2Fdisk0", port)
		}},
		{"qemu-nbd -f vmdk", "the VMDK, read-only, 16 clients shared", func(t *testing.T, fx *fixtures, bin string, port int) (*exec.Cmd, string) {
			return exec.Command("qemu-nbd", "-r", "-f", "vmdk", "-t", "-e", "16", "-x", "disk", "-b", "127.0.0.1", "-p", strconv.Itoa(port),
				fx.byName("vmdk").Path), fmt.Sprintf("nbd://127.0.0.1:%d/disk", port)
		}},
		{"nbdkit file", "the raw image the VMDK was converted from (nbdkit has no VMDK reader; its vddk plugin is absent)", func(t *testing.T, fx *fixtures, bin string, port int) (*exec.Cmd, string) {
			return exec.Command("nbdkit", "-r", "-f", "-i", "127.0.0.1", "-p", strconv.Itoa(port), "file", fx.Raw),
				fmt.Sprintf("nbd://127.0.0.1:%d", port)
		}},
	}
}

// freePort is a loopback TCP port free now.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitNBD waits until uri answers nbdinfo.
func waitNBD(uri string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		out, err := exec.Command("nbdinfo", "--size", uri).CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nbdinfo --size %s: %v: %s", uri, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var benchRun = regexp.MustCompile(`Run completed in ([0-9.]+) seconds`)

// qemuBench runs qemu-img bench over uri: count reads of 4 KiB, queue
// depth depth, from offset, step bytes apart (wrapping at the disk's
// end), and returns reads per second.
func qemuBench(uri string, count, depth int, offset, step int64) (float64, error) {
	out, err := exec.Command("qemu-img", "bench", "-f", "raw", "-c", strconv.Itoa(count), "-d", strconv.Itoa(depth),
		"-s", "4096", "-S", strconv.FormatInt(step, 10), "-o", strconv.FormatInt(offset, 10), uri).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("qemu-img bench: %v: %s", err, out)
	}
	m := benchRun.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("qemu-img bench: no time in %q", out)
	}
	s, _ := strconv.ParseFloat(string(m[1]), 64)
	return float64(count) / s, nil
}

// TestBenchNBD: vmfs serve next to qemu-nbd and nbdkit, each serving the
// 4 GiB bench disk (1.5 GiB of data), from the page cache: 4 KiB reads
// (qemu-img bench, sequential, and scattered with a stride that visits
// the disk in a pseudo-random order), then nbdcopy of the whole disk to
// null:. The table goes to stdout (docs/nbd.md keeps one run).
func TestBenchNBD(t *testing.T) {
	if os.Getenv("VMFS_BENCH") != "1" {
		t.Skip("set VMFS_BENCH=1 (make bench) to run the benchmarks")
	}
	s := loadSettings()
	if !s.want("nbd") {
		t.Skip("VMFS_BENCH_ONLY leaves out nbd")
	}
	testenv.NeedCommands(t, "qemu-img", "qemu-nbd", "nbdkit", "nbdinfo", "nbdcopy")
	bin := testenv.BuildVMFS(t)
	fx := buildFixtures(t)
	// Warm the page cache with both files the servers read.
	for _, p := range []string{fx.byName("vmdk").Path, fx.Raw} {
		if err := exec.Command("cat", p).Run(); err != nil {
			t.Fatal(err)
		}
	}
	const (
		count = 20000
		// 7919 blocks of 4 KiB apart (a prime, so co-prime with the
		// disk's 2^20 blocks): reads land all over the disk.
		scatter = 4096 * 7919
	)
	type row struct {
		seq1, seq16, rnd1, rnd16, copyMBs []float64
		rss                               int64
		err                               string
	}
	servers := nbdServers()
	rows := make([]row, len(servers))
	for rep := 0; rep < s.reps; rep++ {
		for i, srv := range servers {
			if rows[i].err != "" {
				continue
			}
			port := freePort(t)
			cmd, uri := srv.start(t, fx, bin, port)
			cmd.Env = append(os.Environ(), "VMFS_RUN_DIR="+t.TempDir())
			if err := cmd.Start(); err != nil {
				rows[i].err = err.Error()
				continue
			}
			stop := func() { cmd.Process.Kill(); cmd.Wait() }
			err := func() error {
				if err := waitNBD(uri, 30*time.Second); err != nil {
					return err
				}
				for _, m := range []struct {
					dst       *[]float64
					depth     int
					off, step int64
				}{
					{&rows[i].seq1, 1, 1 << 20, 4096},
					{&rows[i].seq16, 16, 1 << 20, 4096},
					{&rows[i].rnd1, 1, 0, scatter},
					{&rows[i].rnd16, 16, 0, scatter},
				} {
					v, err := qemuBench(uri, count, m.depth, m.off, m.step)
					if err != nil {
						return err
					}
					*m.dst = append(*m.dst, v)
				}
				start := time.Now()
				if out, err := exec.Command("nbdcopy", uri, "null:").CombinedOutput(); err != nil {
					return fmt.Errorf("nbdcopy: %v: %s", err, out)
				}
				rows[i].copyMBs = append(rows[i].copyMBs, float64(smallSize)/time.Since(start).Seconds()/1e6)
				if hwm, _ := memKiB(cmd.Process.Pid); hwm > rows[i].rss {
					rows[i].rss = hwm
				}
				return nil
			}()
			stop()
			if err != nil {
				rows[i].err = oneLine(err)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "NBD servers, %s, %d run(s), median; 4 KiB reads by `qemu-img bench -c %d -s 4096` (reads/s), QD 1 and 16; sequential: -S 4096 from 1 MiB; scattered: -S %d; nbdcopy URI null: of the 4 GiB disk (MB/s of virtual size); peak RSS of the server\n\n",
		time.Now().UTC().Format("2006-01-02"), s.reps, count, scatter)
	b.WriteString("| server | serves | seq QD1 | seq QD16 | scattered QD1 | scattered QD16 | nbdcopy MB/s | RSS MiB |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for i, srv := range servers {
		r := rows[i]
		if r.err != "" {
			fmt.Fprintf(&b, "| %s | %s | failed: %s |||||\n", srv.name, srv.serves, r.err)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", srv.name, srv.serves,
			median(r.seq1), median(r.seq16), median(r.rnd1), median(r.rnd16), median(r.copyMBs), float64(r.rss)/1024)
	}
	fmt.Println(b.String())
}
