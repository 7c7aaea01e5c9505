package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
