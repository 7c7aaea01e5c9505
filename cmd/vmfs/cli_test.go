package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// runCLI runs the built vmfs and returns stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(testenv.BuildVMFS(t), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stderr.String(), code
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
}

const vmxTemplate = `.encoding = "UTF-8"
displayName = "bad"
memsize = "256"
scsi0.present = "TRUE"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "%s"
`

// TestBadInput: each case is one line on stderr naming the file and the
// problem, a non-zero exit, and never a panic.
func TestBadInput(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	dir := t.TempDir()
	// A good sparse VMDK, and damaged copies of it.
	raw := filepath.Join(dir, "src.raw")
	qemuImg(t, "create", "-f", "raw", raw, "8M")
	if err := os.WriteFile(raw, []byte(strings.Repeat("data", 1<<18)), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.vmdk")
	qemuImg(t, "convert", "-O", "vmdk", raw, good)
	b, _ := os.ReadFile(good)

	write(t, filepath.Join(dir, "missing.vmx"), strings.Replace(vmxTemplate, "%s", "nothere.vmdk", 1))
	write(t, filepath.Join(dir, "notvmx.vmx"), string(b[:4096]))
	write(t, filepath.Join(dir, "unknown.vmdk"), "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"bogusType\"\nRW 16384 FLAT \"src.raw\" 0\n")
	write(t, filepath.Join(dir, "unknown.vmx"), strings.Replace(vmxTemplate, "%s", "unknown.vmdk", 1))
	// Truncated inside the grain tables: keep the header, descriptor and part of the GD/GTs.
	write(t, filepath.Join(dir, "trunc.vmdk"), string(b[:0x30000]))
	write(t, filepath.Join(dir, "trunc.vmx"), strings.Replace(vmxTemplate, "%s", "trunc.vmdk", 1))
	write(t, filepath.Join(dir, "good.vmx"), strings.Replace(vmxTemplate, "%s", "good.vmdk", 1))

	busy := t.TempDir()
	inUse := testenv.Mount(t, "--read-only", "--format", "raw", filepath.Join(dir, "good.vmx"), busy)

	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the one line
		code int
	}{
		{"missing disk file", []string{"inspect", filepath.Join(dir, "missing.vmx")}, []string{"nothere.vmdk", "missing"}, 1},
		{"vmdk where vmx expected", []string{"inspect", filepath.Join(dir, "notvmx.vmx")}, []string{"notvmx.vmx"}, 1},
		{"unknown createType", []string{"inspect", filepath.Join(dir, "unknown.vmx")}, []string{"unknown.vmdk", "bogusType"}, 1},
		{"truncated grain table", []string{"inspect", filepath.Join(dir, "trunc.vmx")}, []string{"trunc.vmdk"}, 1},
		{"missing source", []string{"mount", filepath.Join(dir, "absent.vmx"), t.TempDir()}, []string{"absent.vmx"}, 1},
		{"missing mountpoint", []string{"mount", filepath.Join(dir, "good.vmx"), filepath.Join(dir, "nomnt")}, []string{"nomnt", "does not exist"}, 1},
		{"mountpoint in use", []string{"mount", filepath.Join(dir, "good.vmx"), inUse}, []string{inUse, "in use"}, 1},
		{"wrong argument count", []string{"mount", filepath.Join(dir, "good.vmx")}, []string{"MOUNTPOINT"}, 2},
		{"unknown flag", []string{"mount", "--bogus", "a", "b"}, []string{"bogus"}, 2},
		{"bad devices policy", []string{"materialize", "--devices", "fancy", filepath.Join(dir, "good.vmx"), t.TempDir()}, []string{"fancy"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderr, code := runCLI(t, tc.args...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, stderr)
			}
			if len(lines) != 1 || strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine") {
				t.Fatalf("want one line, got:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("%q does not mention %q", lines[0], w)
				}
			}
		})
	}
}
