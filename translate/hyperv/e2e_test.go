package hyperv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/translate"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// checkOutput checks a materialized or mounted hyperv directory: the
// script names the disk image next to it, and the image is a VHDX that
// qemu-img finds consistent and equal to the source.
func checkOutput(t *testing.T, dir, name, raw string) {
	t.Helper()
	base := translate.FileName(name)
	script, err := os.ReadFile(filepath.Join(dir, base+".ps1"))
	if err != nil {
		ents, _ := os.ReadDir(dir)
		t.Fatalf("%v (directory holds %v)", err, ents)
	}
	lits := checkScript(t, script)
	disk := base + "-disk0.vhdx"
	for _, want := range []string{name, disk} {
		if !contains(lits, want) {
			t.Errorf("script lacks literal %q: %q", want, lits)
		}
	}
	if !strings.Contains(string(script), "-Generation 2 ") || !strings.Contains(string(script), "-StaticMacAddress '005056010203'") {
		t.Errorf("script:\n%s", script)
	}
	img := filepath.Join(dir, disk)
	run(t, "qemu-img", "check", "-f", "vhdx", img)
	run(t, "qemu-img", "compare", "-f", "vhdx", "-F", "raw", img, raw)
}

// TestEndToEnd materializes and mounts a VMware VM as a Hyper-V machine.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs vmfs")
	}
	const name = "e2e vm's"
	vmx, raw := testenv.UEFIVMwareVM(t, name, "numvcpus = \"1\"\n")
	for _, format := range []string{"", "vhdx"} {
		t.Run("materialize/"+format, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := []string{"materialize", "--progress", "none", "--discard-overlay", "--to", "hyperv"}
			if format != "" {
				args = append(args, "--format", format)
			}
			if _, err := testenv.VMFS(t, append(args, vmx, out)...); err != nil {
				t.Fatal(err)
			}
			checkOutput(t, out, name, raw)
		})
	}
	t.Run("mount", func(t *testing.T) {
		mnt := testenv.MountDir(t)
		testenv.Mount(t, "--to", "hyperv", "--format", "vhdx", "--read-only", vmx, mnt)
		checkOutput(t, mnt, name, raw)
	})
}
