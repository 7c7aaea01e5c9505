package convert

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/testenv"
)

// TestBenchConvert is `make bench-convert`: each stage of vmfs convert of
// the Debian 12 test guest, next to virt-v2v's copying conversion of the
// same VM (-i libvirtxml on a read-only mount of it, -o local), on this
// host as it is (under TCG with VMFS_NO_KVM=1).
func TestBenchConvert(t *testing.T) {
	if os.Getenv("VMFS_BENCH_CONVERT") != "1" {
		t.Skip("VMFS_BENCH_CONVERT=1 (make bench-convert) runs it: two conversions, minutes each under TCG")
	}
	testenv.NeedCommands(t, "virt-v2v")
	g := buildDebianGuest(t)
	vmx := g.vm(t)
	ov := filepath.Join(t.TempDir(), "overlay")
	mnt := testenv.Mount(t, "--devices", "virtio", "--overlay", ov, vmx, testenv.MountDir(t))

	noKVM := testenv.AccelReal() != "kvm"
	res, err := Run(context.Background(), Options{Mountpoint: mnt, NoKVM: noKVM})
	if err != nil {
		t.Fatal(err)
	}

	// virt-v2v's copying run, of the unconverted guest.
	ro := testenv.Mount(t, "--read-only", "--devices", "virtio", vmx, testenv.MountDir(t))
	outDir := t.TempDir()
	cmd := exec.Command("virt-v2v", "-i", "libvirtxml", filepath.Join(ro, "debian12.xml"), "-o", "local", "-os", outDir, "-of", "qcow2")
	cmd.Env = append(os.Environ(), engineEnv(Options{NoKVM: noKVM})...)
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var p parser
	var all strings.Builder
	sc := bufio.NewScanner(outPipe)
	for sc.Scan() {
		all.WriteString(sc.Text() + "\n")
		p.line(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("virt-v2v -o local: %v\n%s", err, all.String())
	}
	p.finish(time.Since(start))
	copied := int64(0)
	if fs, _ := filepath.Glob(filepath.Join(outDir, "*")); len(fs) > 0 {
		for _, f := range fs {
			if st, err := os.Stat(f); err == nil {
				copied += st.Size()
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "accelerator: %s; guest %s\n", map[bool]string{true: "tcg", false: "kvm"}[noKVM], g.dir)
	fmt.Fprintf(&b, "vmfs convert (in place, in the overlay)               %8.1f s\n", res.Total.Seconds())
	fmt.Fprintf(&b, "  inspection and NIC names (vmfs's appliance)         %8.1f s\n", res.Inspect.Seconds())
	fmt.Fprintf(&b, "    of which the appliance's start                    %8.1f s\n", res.Launch.Seconds())
	for _, s := range res.Engine.Stages {
		fmt.Fprintf(&b, "  virt-v2v-in-place: %-33.33s %8.1f s\n", s.Name, s.Took.Seconds())
	}
	fmt.Fprintf(&b, "  overlay after: %d bytes allocated\n", res.OverlayAfter)
	fmt.Fprintf(&b, "virt-v2v -o local (copying)                           %8.1f s\n", p.e.Elapsed.Seconds())
	for _, s := range p.e.Stages {
		fmt.Fprintf(&b, "  virt-v2v: %-42.42s %8.1f s\n", s.Name, s.Took.Seconds())
	}
	fmt.Fprintf(&b, "  output: %d bytes\n", copied)
	t.Logf("\n%s", b.String())
}
