package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vmfs/vmfs/internal/materialize"
	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/internal/view"
	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/bootfacts"
	"github.com/vmfs/vmfs/translate"
)

// TestProgressBarPTY: under a terminal of no size the bar keeps its
// width; under one of 100 columns each frame fits in them; neither shows
// a rate in the first second.
func TestProgressBarPTY(t *testing.T) {
	testenv.NeedCommands(t, "script", "stty")
	bin := testenv.BuildVMFS(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(disk, []byte(strings.Repeat("vmfs", 4<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cols int
	}{{"no size", 0}, {"100 columns", 100}} {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "out")
			inner := fmt.Sprintf("stty cols %d rows %d && exec %q materialize --format raw %q %q", tc.cols, tc.cols/4, bin, disk, dest)
			cmd := exec.Command("script", "-q", "-e", "-c", inner, "/dev/null")
			cmd.Stdin = nil
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("script: %v\n%s", err, out)
			}
			var frames []string
			for _, f := range strings.FieldsFunc(string(out), func(r rune) bool { return r == '\r' || r == '\n' }) {
				if strings.Contains(f, "%") && strings.Contains(f, "|") {
					frames = append(frames, f)
				}
			}
			if len(frames) == 0 {
				t.Fatalf("no bar drawn:\n%q", out)
			}
			last := frames[len(frames)-1]
			if !strings.Contains(last, "100%") || strings.Count(last, "█") < 20 {
				t.Errorf("final frame %q: want 100%% and a full bar", last)
			}
			for _, f := range frames {
				if tc.cols > 0 && utf8.RuneCountInString(strings.TrimRight(f, " ")) > tc.cols {
					t.Errorf("frame of %d columns on a terminal of %d: %q", utf8.RuneCountInString(f), tc.cols, f)
				}
				if strings.Contains(f, "[0s]") && strings.Contains(f, "/s") {
					t.Errorf("a rate in the first second: %q", f)
				}
			}
		})
	}
}

// TestRateMeter: no rate in the first second, then bytes over time.
func TestRateMeter(t *testing.T) {
	start := time.Unix(1000, 0)
	r := rateMeter{start: start}
	for _, tc := range []struct {
		after time.Duration
		done  int64
		want  string
	}{
		{time.Millisecond, 1 << 30, "1.0 GiB/2.0 GiB"},
		{999 * time.Millisecond, 1 << 30, "1.0 GiB/2.0 GiB"},
		{2 * time.Second, 1 << 30, "1.0 GiB/2.0 GiB, 512.0 MiB/s, 2s left"},
		{2 * time.Second, 0, "0 B/2.0 GiB"},
	} {
		if got := r.describe(tc.done, 2<<30, start.Add(tc.after)); got != tc.want {
			t.Errorf("after %v: %q, want %q", tc.after, got, tc.want)
		}
	}
}

// TestSummary: the disks' virtual size apart from the bytes of the
// files, and each file by what it is.
func TestSummary(t *testing.T) {
	var b strings.Builder
	files := []viewfile.File{{Name: "vm.xml"}, {Name: view.WarningsName("vm")}, {Name: "vm-disk0.qcow2", Disk: true}}
	sum := materialize.Summary{Files: 3, Bytes: 400 << 20, Written: 399 << 20, HolesSkipped: 1 << 20, Duration: 2 * time.Second}
	printSummary(&b, "/d", sum, 2<<30, 1, files, "/d/vm.warnings.txt")
	want := `materialized 3 files into /d in 2s (200.0 MiB/s)
disks:      1, 2.0 GiB virtual
files:      400.0 MiB: 399.0 MiB written, 1.0 MiB left sparse
descriptor: /d/vm.xml
warnings:   /d/vm.warnings.txt
disk:       /d/vm-disk0.qcow2
`
	if b.String() != want {
		t.Errorf("summary\n%s\nwant\n%s", b.String(), want)
	}
	// Bytes shared with the source by reflinks are said, only when some are.
	b.Reset()
	sum.Shared = 300 << 20
	printSummary(&b, "/d", sum, 2<<30, 1, files, "/d/vm.warnings.txt")
	if line := "files:      400.0 MiB: 399.0 MiB written, 300.0 MiB shared with the source (reflinks), 1.0 MiB left sparse\n"; !strings.Contains(b.String(), line) {
		t.Errorf("summary\n%s\nwant the line\n%s", b.String(), line)
	}
}

// TestInspectText: no field is shown empty, and a chain of more than one
// file is shown.
func TestInspectText(t *testing.T) {
	m := &translate.Machine{Name: "vm", Source: "vm.vmx", SourceFormat: "vmx", CPUs: 1, MemoryMiB: 64,
		Disks: []translate.Disk{{Path: "top.vmdk", Bus: translate.BusSCSI}, {Path: "b.vmdk", Bus: translate.BusSATA, Controller: "ahci"}},
		NICs:  []translate.NIC{{Model: "e1000e", Type: "network"}, {Model: "vmxnet3", MAC: "00:50:56:aa:bb:cc", Network: "lan", Type: "bridge"}, {}},
	}
	disks := []view.DiskInfo{
		{Path: "top.vmdk", Format: "vmdk", Chain: []layouts.Layer{{File: "top.vmdk", Format: "vmdk"}, {File: "base.vmdk", Format: "vmdk"}}},
		{Path: "b.vmdk", Format: "vmdk", Boot: bootfacts.Facts{Table: "gpt", HasESP: true}, Chain: []layouts.Layer{{File: "b.vmdk", Format: "vmdk"}}},
	}
	var b strings.Builder
	printInspect(&b, m, disks)
	out := b.String()
	for _, want := range []string{
		"nic:       e1000e (network)\n",
		"nic:       vmxnet3 mac=00:50:56:aa:bb:cc network=lan (bridge)\n",
		"nic:       (model not stated)\n",
		"chain:     disk 0: top.vmdk (vmdk) <- base.vmdk (vmdk)\n",
		"scsi:0:0  ", "sata:0:0 ahci", "gpt+esp",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	for _, bad := range []string{"=\n", "= ", "()", "disk 1:", "scsi:0:0 \t"} {
		if strings.Contains(out, bad) {
			t.Errorf("%q in\n%s", bad, out)
		}
	}
}

// TestForegroundMountLine: a foreground mount prints one line on stdout
// once it serves, and --read-only is ro in /proc/mounts; SIGTERM ends it.
func TestForegroundMountLine(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and /dev/fuse")
	}
	bin := testenv.BuildVMFS(t)
	disk := filepath.Join(t.TempDir(), "fg.raw")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := testenv.MountDir(t)
	cmd := exec.Command(bin, "mount", "--read-only", "--to", "qemu", disk, mnt)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	waited := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-waited
		}
		if testenv.IsMounted(mnt) {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	lines := make(chan string, 4)
	go func() {
		b := make([]byte, 4096)
		var all []byte
		for {
			n, err := stdout.Read(b)
			all = append(all, b[:n]...)
			if err != nil {
				lines <- string(all)
				return
			}
			if strings.Contains(string(all), "\n") {
				lines <- string(all)
			}
		}
	}()
	var first string
	select {
	case first = <-lines:
	case err := <-exited:
		t.Fatalf("mount exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no line within 30 s")
	}
	want := fmt.Sprintf("serving %s at %s (Ctrl-C or vmfs unmount %s ends it)\n", disk, mnt, mnt)
	if first != want {
		t.Errorf("stdout %q, want %q", first, want)
	}
	if !testenv.IsMounted(mnt) {
		t.Fatalf("%s is not mounted when the line is printed", mnt)
	}
	b, _ := os.ReadFile("/proc/mounts")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == mnt && !strings.HasPrefix(f[3], "ro,") {
			t.Errorf("/proc/mounts: %s", line)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("mount after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("mount still serving 20 s after SIGTERM")
	}
	if rest := <-lines; rest != first {
		t.Errorf("stdout after the line: %q", strings.TrimPrefix(rest, first))
	}
}
