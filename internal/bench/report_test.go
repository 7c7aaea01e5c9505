package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

type report struct {
	started  time.Time
	total    time.Duration
	settings settings
	reads    []*readStats
	pass     []*passStats
	passRW   []*passStats // writable passthrough rows
	// passRWNote says why the writable rows are missing, if they are.
	passRWNote string
	cutover    []*cutStats
	reflink    []*reflinkStats
	mounts     []*mountStats
	boot       *bootStats
	vsphere    []*vsphereStats
	remote     []*remoteStats
}

const (
	docBegin = "<!-- bench:results:begin -->"
	docEnd   = "<!-- bench:results:end -->"
)

// ratio formats a/b, or "—" when either is missing.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func num(v []float64, format string) string {
	if len(v) == 0 {
		return "—"
	}
	return fmt.Sprintf(format, median(v))
}

func (r *report) markdown() string {
	var b strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	qv, _ := exec.Command("qemu-img", "--version").Output()
	qfirst, _, _ := strings.Cut(string(qv), "\n")
	fmt.Fprintf(&b, "Run of %s UTC, %d CPUs, load average at start %s, kernel %s, %s; "+
		"%d repetitions, medians; random reads %v per run; whole run %v.\n\n",
		r.started.UTC().Format("2006-01-02 15:04"), runtime.NumCPU(),
		strings.Join(strings.Fields(string(load))[:3], " "), kernel(), strings.TrimSpace(qfirst),
		r.settings.reps, r.settings.randDur, r.total.Round(time.Second))
	if r.settings.sources != nil {
		var src []string
		for k := range r.settings.sources {
			src = append(src, k)
		}
		sort.Strings(src)
		fmt.Fprintf(&b, "Read sources limited to %s (VMFS_BENCH_SOURCES).\n\n", strings.Join(src, ", "))
	}

	if len(r.reads) > 0 {
		b.WriteString("#### Reads through FUSE (4 GiB virtual, 1.5 GiB data; fresh mount per run)\n\n")
		b.WriteString("Sequential: 1 MiB buffered reads of the whole disk, MB/s over the virtual size; cold = page cache dropped before, warm = source file cached. " +
			"Random: 4 KiB preads at aligned offsets over the whole disk, thousands per second. Ratios are vmfs / peer on the same source (raw-input rows: vmfs on the sparse VMDK).\n\n")
		b.WriteString("| source | tool | seq cold MB/s | seq warm MB/s | rand 4K ×1 k/s | rand 4K ×4 k/s | vmfs/peer cold | warm | ×1 | ×4 |\n")
		b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		vm := map[string]*readStats{}
		for _, s := range r.reads {
			if s.tool == "vmfs" {
				vm[s.source] = s
			}
		}
		for _, s := range r.reads {
			if s.err != "" && len(s.cold) == 0 {
				fmt.Fprintf(&b, "| %s | %s | %s | | | | | | | |\n", s.source, s.tool, s.err)
				continue
			}
			ref := vm[s.source]
			if s.source == "raw" {
				ref = vm["vmdk"]
			}
			rs := [4]string{"—", "—", "—", "—"}
			if ref != nil && ref != s {
				rs = [4]string{
					ratio(median(ref.cold), median(s.cold)), ratio(median(ref.warm), median(s.warm)),
					ratio(median(ref.r1), median(s.r1)), ratio(median(ref.r4), median(s.r4)),
				}
			}
			name := s.tool
			if s.tool == "vmfs" {
				name = "**vmfs**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.source, name,
				num(s.cold, "%.0f"), num(s.warm, "%.0f"), num(scale(s.r1, 1e-3), "%.1f"), num(scale(s.r4, 1e-3), "%.1f"),
				rs[0], rs[1], rs[2], rs[3])
		}
		b.WriteString("\n")
	}

	if len(r.pass) > 0 {
		r.passMarkdown(&b)
	}

	if len(r.remote) > 0 {
		r.remoteMarkdown(&b)
	}

	if len(r.cutover) > 0 {
		b.WriteString("#### Cutover (source in the page cache; time includes fsync of the output)\n\n")
		b.WriteString("| case | tool | seconds | MB/s virtual | vmfs/peer time | output |\n|---|---|--:|--:|--:|---|\n")
		vm := map[string]*cutStats{}
		for _, s := range r.cutover {
			if s.tool == "vmfs materialize" {
				vm[s.cas] = s
			}
		}
		for _, s := range r.cutover {
			rt := "—"
			if ref := vm[s.cas]; ref != nil && ref != s {
				rt = ratio(median(ref.secs), median(s.secs))
			}
			mbs := "—"
			if len(s.secs) > 0 {
				mbs = fmt.Sprintf("%.0f", float64(smallSize)/median(s.secs)/1e6)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", s.cas, s.tool, num(s.secs, "%.2f"), mbs, rt, s.same)
		}
		b.WriteString("\n")
	}

	if len(r.reflink) > 0 {
		r.reflinkMarkdown(&b)
	}

	if len(r.mounts) > 0 {
		b.WriteString("#### Mount: ready time and memory\n\n")
		b.WriteString("Ready = from starting the mount command until the disk file is listed with its size. " +
			"Peak RSS (VmHWM) of the serving process right after the mount and after one full sequential read " +
			"(nbdfuse: the nbdfuse process only, not qemu-nbd), and the anonymous part of its RSS after the read " +
			"(RssAnon: heap and stacks, which no other process shares; the rest is pages of the program's files, " +
			"shared with the page cache).\n\n")
		b.WriteString("| image | tool | ready ms | peak RSS after mount MiB | peak RSS after full read MiB | anonymous RSS after full read MiB |\n|---|---|--:|--:|--:|--:|\n")
		for _, s := range r.mounts {
			if s.err != "" && len(s.ms) == 0 {
				fmt.Fprintf(&b, "| %s | %s | %s | | | |\n", s.image, s.tool, s.err)
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", s.image, s.tool, num(s.ms, "%.1f"),
				num(scale(s.hwmKiB, 1.0/1024), "%.1f"), num(scale(s.readHWMKiB, 1.0/1024), "%.1f"),
				num(scale(s.readAnonKiB, 1.0/1024), "%.1f"))
		}
		b.WriteString("\n")
	}

	if len(r.vsphere) > 0 {
		r.vsphereMarkdown(&b)
	}

	if r.boot != nil {
		b.WriteString("#### Boot of the test guest\n\n")
		if len(r.boot.local) == 0 || len(r.boot.mount) == 0 {
			fmt.Fprintf(&b, "%s\n\n", r.boot.note)
		} else {
			b.WriteString("| disk | seconds to power-off | mount / local |\n|---|--:|--:|\n")
			fmt.Fprintf(&b, "| local copy (vmfs materialize) | %.2f | |\n", median(r.boot.local))
			fmt.Fprintf(&b, "| vmfs mount | %.2f | %s |\n\n", median(r.boot.mount), ratio(median(r.boot.mount), median(r.boot.local)))
			fmt.Fprintf(&b, "%s; %d boots each, medians.\n\n", r.boot.note, len(r.boot.local))
		}
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func scale(v []float64, k float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * k
	}
	return out
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// writeDoc replaces the results section of docs/benchmarks.md.
func writeDoc(path, table string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i := bytes.Index(b, []byte(docBegin))
	j := bytes.Index(b, []byte(docEnd))
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %s ... %s section", path, docBegin, docEnd)
	}
	var out bytes.Buffer
	out.Write(b[:i+len(docBegin)])
	out.WriteString("\n\n" + table + "\n")
	out.Write(b[j:])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
