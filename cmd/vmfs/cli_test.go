package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/layouts"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// runCLI runs the built vmfs and returns stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	// A command that should fail but serves (a mount) is stopped as
	// Ctrl-C would, after a while.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.BuildVMFS(t), args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
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

	// A qcow2 that needs a feature no reader knows (bit 63 of the
	// incompatible features at byte 72).
	feat := filepath.Join(dir, "feature.qcow2")
	qemuImg(t, "create", "-f", "qcow2", feat, "8M")
	q, err := os.ReadFile(feat)
	if err != nil {
		t.Fatal(err)
	}
	q[72] |= 0x80
	if err := os.WriteFile(feat, q, 0o644); err != nil {
		t.Fatal(err)
	}

	busy := t.TempDir()
	inUse := testenv.Mount(t, "--read-only", "--format", "raw", filepath.Join(dir, "good.vmx"), busy)

	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the one line
		code int
	}{
		// inspect shows a VM whose disk is missing (TestInspectMissingDiskCLI);
		// what builds the target refuses it.
		{"missing disk file", []string{"mount", filepath.Join(dir, "missing.vmx"), t.TempDir()}, []string{"nothere.vmdk", "missing"}, 1},
		{"missing disk file, preview", []string{"inspect", "--to", "libvirt", filepath.Join(dir, "missing.vmx")}, []string{"nothere.vmdk", "missing"}, 1},
		{"vmdk where vmx expected", []string{"inspect", filepath.Join(dir, "notvmx.vmx")}, []string{"notvmx.vmx"}, 1},
		{"unknown createType", []string{"inspect", filepath.Join(dir, "unknown.vmx")}, []string{"unknown.vmdk", "bogusType"}, 1},
		{"truncated grain table", []string{"inspect", filepath.Join(dir, "trunc.vmx")}, []string{"trunc.vmdk", "points past end of file"}, 1},
		{"unknown qcow2 feature", []string{"inspect", feat}, []string{feat + ": unknown incompatible feature bits 0x8000000000000000: not supported"}, 1},
		{"missing source", []string{"mount", filepath.Join(dir, "absent.vmx"), t.TempDir()}, []string{"absent.vmx"}, 1},
		{"missing mountpoint", []string{"mount", filepath.Join(dir, "good.vmx"), filepath.Join(dir, "nomnt")}, []string{"nomnt", "does not exist"}, 1},
		{"mountpoint in use", []string{"mount", filepath.Join(dir, "good.vmx"), inUse}, []string{inUse, "in use"}, 1},
		{"wrong argument count", []string{"mount", filepath.Join(dir, "good.vmx")}, []string{"MOUNTPOINT"}, 2},
		{"unknown flag", []string{"mount", "--bogus", "a", "b"}, []string{"bogus"}, 2},
		{"bad devices policy", []string{"materialize", "--devices", "fancy", filepath.Join(dir, "good.vmx"), t.TempDir()}, []string{"fancy"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderr, code := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, stderr)
			}
			line := oneLine(t, stderr, tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("%q does not mention %q", line, w)
				}
			}
		})
	}
}

// oneLine checks the shape of an error on stderr and returns its line: one
// line, no panic, no text of an internal sentinel, no Go slice, and each
// path of the command line said at most once.
func oneLine(t *testing.T, stderr string, args ...string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("want one line, got:\n%s", stderr)
	}
	line := lines[0]
	for _, bad := range []string{"panic", "goroutine", "corrupt image", "unsupported feature", "wrong image type", "[", "Incorrect Usage", "NAME:"} {
		if strings.Contains(line, bad) {
			t.Errorf("%q holds %q", line, bad)
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "/") && strings.Count(line, a) > 1 {
			t.Errorf("%q names %s %d times", line, a, strings.Count(line, a))
		}
	}
	return line
}

// TestUsageErrors: every wrong flag is refused with exit 2 and one line
// naming the flag, before any source is opened (the source here does not
// exist, so an error about it would mean the flag was checked too late).
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	nope := filepath.Join(dir, "nope.vmx")
	dest := filepath.Join(dir, "dest")
	mnt := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string // the whole line
	}{
		{"unknown target", []string{"materialize", "--to", "foo", nope, dest},
			`vmfs: --to: unknown target "foo" (known: hyperv, kubevirt, libvirt, ovf, proxmox, qemu, virtualbox, vmware); see 'vmfs materialize --help'`},
		{"unknown format", []string{"materialize", "--format", "bar", nope, dest},
			`vmfs: --format: image format "bar" is not supported (vmfs makes qcow2, raw, vdi, vhd, vhdx, vmdk); see 'vmfs materialize --help'`},
		{"format of mount", []string{"mount", "--format", "bar", nope, mnt},
			`vmfs: --format: image format "bar" is not supported (vmfs makes qcow2, raw, vdi, vhd, vhdx, vmdk); see 'vmfs mount --help'`},
		{"subformat of qcow2", []string{"materialize", "--format", "qcow2", "--subformat", "fixed", nope, dest},
			`vmfs: --subformat: qcow2 variant "fixed" is not supported (qcow2 has no variants); see 'vmfs materialize --help'`},
		{"a split variant for a one-file target", []string{"materialize", "--to", "ovf", "--subformat", "monolithicFlat", nope, dest},
			`vmfs: --subformat: --to ovf: vmdk monolithicFlat makes more than one file per disk and an OVF package refers to each disk by one file: choose another variant (monolithicSparse); see 'vmfs materialize --help'`},
		{"subformat of the target's format", []string{"mount", "--to", "vmware", "--subformat", "fixed", nope, mnt},
			`vmfs: --subformat: vmdk variant "fixed" is not supported (known: monolithicSparse, monolithicFlat); see 'vmfs mount --help'`},
		{"jobs not a number", []string{"materialize", "--jobs", "abc", nope, dest},
			`vmfs: --jobs: "abc" is not a number; see 'vmfs materialize --help'`},
		{"jobs zero", []string{"materialize", "--jobs", "0", nope, dest},
			`vmfs: --jobs: 0 is not from 1 to 64; see 'vmfs materialize --help'`},
		{"jobs negative", []string{"materialize", "--jobs", "-3", nope, dest},
			`vmfs: --jobs: -3 is not from 1 to 64; see 'vmfs materialize --help'`},
		{"jobs huge", []string{"materialize", "--jobs", "100000", nope, dest},
			`vmfs: --jobs: 100000 is not from 1 to 64; see 'vmfs materialize --help'`},
		{"progress", []string{"materialize", "--progress", "fancy", nope, dest},
			`vmfs: --progress: "fancy" is not auto, bar, json or none; see 'vmfs materialize --help'`},
		{"log level", []string{"--log-level", "loud", "inspect", nope},
			`vmfs: --log-level: "loud" is not debug, info, warn or error; see 'vmfs --help'`},
		{"allow-path missing", []string{"materialize", "--allow-path", "/nonexistent", nope, dest},
			`vmfs: --allow-path /nonexistent: no such file or directory; see 'vmfs materialize --help'`},
		{"allow-path of inspect", []string{"inspect", "--allow-path", "/nonexistent", nope},
			`vmfs: --allow-path /nonexistent: no such file or directory; see 'vmfs inspect --help'`},
		{"allow-path a file", []string{"inspect", "--allow-path", "/etc/passwd", nope},
			`vmfs: --allow-path /etc/passwd: not a directory; see 'vmfs inspect --help'`},
		{"devices", []string{"mount", "--devices", "fancy", nope, mnt},
			`vmfs: --devices: "fancy" is not one of preserve, virtio, compat; see 'vmfs mount --help'`},
		{"network map", []string{"materialize", "--network-map", "x", nope, dest},
			`vmfs: --network-map: "x" is not SRC=DST; see 'vmfs materialize --help'`},
		{"unknown flag", []string{"materialize", "--bogus", nope, dest},
			`vmfs: unknown flag --bogus; see 'vmfs materialize --help'`},
		{"flag without value", []string{"mount", "--to"},
			`vmfs: --to needs a value; see 'vmfs mount --help'`},
		{"unknown global flag", []string{"--bogus", "status"},
			`vmfs: unknown flag --bogus; see 'vmfs --help'`},
		{"unknown command", []string{"frobnicate"},
			`vmfs: unknown command "frobnicate"; see 'vmfs --help'`},
		{"argument count", []string{"inspect"},
			`vmfs: inspect: expects SRC (got 0 argument(s)); see 'vmfs inspect --help'`},
		{"too many arguments", []string{"unmount", mnt, mnt},
			`vmfs: unmount: expects MOUNTPOINT (got 2 argument(s)); see 'vmfs unmount --help'`},
		{"convert without a mountpoint", []string{"convert"},
			`vmfs: convert: expects MOUNTPOINT (got 0 argument(s)); see 'vmfs convert --help'`},
		{"convert without drivers", []string{"convert", "--virtio-win"},
			`vmfs: --virtio-win needs a value; see 'vmfs convert --help'`},
		{"too many optional arguments", []string{"status", mnt, mnt},
			`vmfs: status: expects at most MOUNTPOINT (got 2 argument(s)); see 'vmfs status --help'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderr, code := runCLI(t, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if line := oneLine(t, stderr, tc.args...); line != tc.want {
				t.Errorf("stderr\n%s\nwant\n%s", line, tc.want)
			}
			if _, err := os.Stat(dest); err == nil {
				t.Errorf("%s was created", dest)
			}
		})
	}
}

// TestUnreadableSources: a source that is not what its name says, or is
// missing, is one line naming it once, with the same words in every
// command.
func TestUnreadableSources(t *testing.T) {
	dir := t.TempDir()
	random := make([]byte, 1<<20)
	if _, err := rand.New(rand.NewSource(7)).Read(random); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.vmdk")
	text := filepath.Join(dir, "notes.vhd")
	tiny := filepath.Join(dir, "tiny.img")
	nope := filepath.Join(dir, "nope.vmx")
	if err := os.WriteFile(garbage, random, 0o644); err != nil {
		t.Fatal(err)
	}
	write(t, text, strings.Repeat("a text file named as a disk\n", 100))
	write(t, tiny, "short")
	for _, tc := range []struct {
		src, want string
	}{
		{garbage, garbage + ": not a VMDK image (no sparse header or descriptor found): refusing to serve it as raw"},
		{text, text + ": not a VHD image (no conectix footer found): refusing to serve it as raw"},
		{tiny, tiny + ": 5 bytes, smaller than one 512-byte sector: not a disk"},
		{nope, nope + ": no such file or directory"},
	} {
		for _, args := range [][]string{
			{"inspect", tc.src},
			{"mount", "--read-only", tc.src, mountpoint(t)},
			{"materialize", tc.src, filepath.Join(t.TempDir(), "dest")},
		} {
			t.Run(args[0]+"/"+filepath.Base(tc.src), func(t *testing.T) {
				stderr, code := runCLI(t, args...)
				if code != 1 {
					t.Errorf("exit %d, want 1", code)
				}
				if line := oneLine(t, stderr, tc.src); line != "vmfs: "+tc.want {
					t.Errorf("stderr\n%s\nwant\nvmfs: %s", line, tc.want)
				}
			})
		}
	}
}

// mountpoint is an empty directory that is unmounted at the end of the
// test should a mount have been made there.
func mountpoint(t *testing.T) string {
	mnt := t.TempDir()
	t.Cleanup(func() {
		if err := testenv.Unmount(t, mnt); err != nil {
			t.Error(err)
		}
	})
	return mnt
}

// TestPartialSectorWarning: a disk that is not a whole number of sectors
// is served, with a warning that inspect shows.
func TestPartialSectorWarning(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "odd.img")
	write(t, odd, strings.Repeat("x", 1000))
	cmd := exec.Command(testenv.BuildVMFS(t), "inspect", odd)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	want := "warning:   DISK_PARTIAL_SECTOR: " + odd + ": size 1000 bytes is not a multiple of 512"
	if !strings.Contains(string(out), want) {
		t.Errorf("inspect output lacks %q:\n%s", want, out)
	}
}

// TestMessage: the sentinels' text is not shown as it stands, an
// unsupported feature is said "not supported" once, and an error is one
// line.
func TestMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("vmdk: d.vmdk: grain table 3 points past end of file: %w", layouts.ErrFormat), "vmdk: d.vmdk: grain table 3 points past end of file"},
		{fmt.Errorf("x.vmx: %w", fmt.Errorf("qcow2: d.qcow2: L1 table at 0: %w", layouts.ErrFormat)), "x.vmx: qcow2: d.qcow2: L1 table at 0"},
		{fmt.Errorf("qcow2: d.qcow2: encrypted image (aes): %w", layouts.ErrUnsupported), "qcow2: d.qcow2: encrypted image (aes): not supported"},
		{fmt.Errorf("d.hdd: a Parallels disk image is not supported: %w", layouts.ErrUnsupported), "d.hdd: a Parallels disk image is not supported"},
		{fmt.Errorf("d.vmx: reference %q leads outside: %w", "/dev/zero", layouts.ErrRefused), `d.vmx: reference "/dev/zero" leads outside: reference refused`},
		{errors.New("line one\nline two\r\nthree"), "line one line two three"},
	} {
		if got := message(tc.err); got != tc.want {
			t.Errorf("message(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
