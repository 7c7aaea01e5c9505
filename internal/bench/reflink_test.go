package bench

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/testenv"
)

// reflinkSize is the flat VMDK of the reflink cutover: all data.
const reflinkSize = 512 << 20

// reflinkStats are one tool's runs of the cutover on one file system.
type reflinkStats struct {
	fs, tool string
	secs     []float64
	extra    []float64 // bytes the file system's used space grew by
	same     string
}

// benchReflink converts a 512 MiB flat VMDK to raw on a loop-mounted file
// system with reflinks, vmfs materialize and qemu-img convert side by
// side: time (with fsync) and the space the output took.
func benchReflink(t *testing.T, s settings, r *report) {
	vmfs := testenv.BuildVMFS(t)
	for _, fs := range []struct {
		name string
		mkfs []string
	}{
		{"xfs", []string{"mkfs.xfs", "-q", "-m", "reflink=1"}},
		{"btrfs", []string{"mkfs.btrfs", "-q"}},
	} {
		vm := &reflinkStats{fs: fs.name, tool: "vmfs materialize"}
		qi := &reflinkStats{fs: fs.name, tool: "qemu-img convert"}
		r.reflink = append(r.reflink, vm, qi)
		mnt, err := benchLoopFS(t, fs.name, fs.mkfs...)
		if err != nil {
			vm.same, qi.same = oneLine(err), oneLine(err)
			t.Logf("reflink %s: %v", fs.name, err)
			continue
		}
		src := filepath.Join(mnt, "src")
		os.Mkdir(src, 0o755)
		raw := filepath.Join(src, "data.raw")
		if err := writeRandom(raw, reflinkSize); err != nil {
			t.Fatal(err)
		}
		flat := filepath.Join(src, "disk.vmdk")
		if out, err := exec.Command("qemu-img", "convert", "-O", "vmdk", "-o", "subformat=monolithicFlat", raw, flat).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img convert: %v %s", err, out)
		}
		work := filepath.Join(mnt, "out")
		runs := []struct {
			st  *reflinkStats
			cmd func() *exec.Cmd
			out func() string
		}{
			{vm, func() *exec.Cmd {
				return exec.Command(vmfs, "materialize", "--format", "raw", "--progress", "none", flat, work)
			}, func() string { return filepath.Join(work, "disk-disk0.raw") }},
			{qi, func() *exec.Cmd {
				return exec.Command("qemu-img", "convert", "-f", "vmdk", "-O", "raw", flat, filepath.Join(work, "out.raw"))
			}, func() string { return filepath.Join(work, "out.raw") }},
		}
		for rep := 0; rep < s.reps; rep++ {
			for _, rn := range runs {
				os.RemoveAll(work)
				os.Mkdir(work, 0o755)
				u0, err := fsSettled(mnt)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				out, err := rn.cmd().CombinedOutput()
				if err == nil {
					err = fsyncFile(rn.out())
				}
				d := time.Since(start)
				if err != nil {
					rn.st.same = "failed: " + oneLine(fmt.Errorf("%v %s", err, out))
					t.Errorf("reflink %s: %s: %v: %s", fs.name, rn.st.tool, err, out)
					continue
				}
				u1, err := fsUsed(mnt)
				if err != nil {
					t.Fatal(err)
				}
				rn.st.secs = append(rn.st.secs, d.Seconds())
				rn.st.extra = append(rn.st.extra, float64(u1-u0))
				if rep == 0 {
					if o, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", raw, rn.out()).CombinedOutput(); err != nil {
						rn.st.same = "DIFFERS"
						t.Errorf("reflink %s: %s: output differs: %v %s", fs.name, rn.st.tool, err, o)
					} else {
						rn.st.same = "identical"
					}
				}
				t.Logf("rep %d reflink %-6s %-18s %6.3fs extra %6.1f MiB", rep+1, fs.name, rn.st.tool, d.Seconds(), float64(u1-u0)/(1<<20))
			}
		}
		os.RemoveAll(work)
	}
}

// benchLoopFS mounts a fresh file system of the kind fstype on a loop
// device over a sparse 2 GiB image; unmounted and detached when t ends.
func benchLoopFS(t *testing.T, fstype string, mkfs ...string) (string, error) {
	if _, err := exec.LookPath(mkfs[0]); err != nil {
		return "", fmt.Errorf("not installed: %s", mkfs[0])
	}
	dir := t.TempDir()
	img := filepath.Join(dir, fstype+".img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Truncate(img, 2<<30); err != nil {
		return "", err
	}
	if out, err := exec.Command(mkfs[0], append(mkfs[1:], img)...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %v %s", mkfs[0], err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("no free loop device: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", fstype, dev, mnt).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mount %s: %v %s", dev, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt, nil
}

func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		rand.Read(buf)
		if _, err := f.WriteAt(buf, off); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fsSettled is fsUsed once the file system has stopped freeing the blocks
// of files removed before (XFS frees them in the background), at most 5 s.
func fsSettled(dir string) (int64, error) {
	prev, err := fsUsed(dir)
	for i := 0; i < 50 && err == nil; i++ {
		time.Sleep(100 * time.Millisecond)
		var u int64
		if u, err = fsUsed(dir); err == nil && u == prev {
			return u, nil
		}
		prev = u
	}
	return prev, err
}

// fsUsed is the used space of the file system holding dir, after a sync.
func fsUsed(dir string) (int64, error) {
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	unix.Syncfs(int(d.Fd()))
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(d.Fd()), &st); err != nil {
		return 0, err
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize, nil
}

// reflinkMarkdown is the reflink cutover's table.
func (r *report) reflinkMarkdown(b *strings.Builder) {
	b.WriteString("#### Cutover on a file system with reflinks (512 MiB flat VMDK → raw, same loop-mounted file system; time includes fsync)\n\n")
	b.WriteString("| file system | tool | seconds | peer/vmfs time | extra space MiB | extra space / data | output |\n|---|---|--:|--:|--:|--:|---|\n")
	vm := map[string]*reflinkStats{}
	for _, s := range r.reflink {
		if s.tool == "vmfs materialize" {
			vm[s.fs] = s
		}
	}
	for _, s := range r.reflink {
		rt := "—"
		if ref := vm[s.fs]; ref != nil && ref != s {
			rt = ratio(median(s.secs), median(ref.secs))
		}
		extra, frac := "—", "—"
		if len(s.extra) > 0 {
			extra = fmt.Sprintf("%.2f", median(s.extra)/(1<<20))
			frac = fmt.Sprintf("%.2f %%", 100*median(s.extra)/reflinkSize)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", s.fs, s.tool, num(s.secs, "%.3f"), rt, extra, frac, s.same)
	}
	b.WriteString("\n")
}
