package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/corpus"
	"github.com/vmfs/vmfs/internal/testenv"
)

// inspectJSONOf runs `vmfs inspect --json ARGS` and decodes its output.
func inspectJSONOf(t *testing.T, args ...string) map[string]json.RawMessage {
	t.Helper()
	out, err := exec.Command(testenv.BuildVMFS(t), append([]string{"inspect", "--json"}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("inspect %v: %v\n%s", args, err, stderr)
	}
	var v map[string]json.RawMessage
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("inspect %v: %v\n%s", args, err, out)
	}
	return v
}

// warningsOf renders the warnings of an inspect --json output as the
// mount's <name>.warnings.txt does, one "CODE: message" a line.
func warningsOf(t *testing.T, v map[string]json.RawMessage) string {
	t.Helper()
	raw, ok := v["warnings"]
	if !ok {
		raw = v["Warnings"]
	}
	var ws []struct{ Code, Message string }
	if err := json.Unmarshal(raw, &ws); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w.Code + ": " + w.Message + "\n")
	}
	return b.String()
}

// sourceWithDisks copies the corpus descriptor rel into a new directory
// and creates the disks it names (read from inspect's missing list) as
// small images of the format their names say.
func sourceWithDisks(t *testing.T, rel string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, filepath.Base(rel))
	b, err := os.ReadFile(corpus.Path(rel))
	if err != nil {
		t.Fatal(err)
	}
	write(t, src, string(b))
	var missing []struct{ Path string }
	if err := json.Unmarshal(inspectJSONOf(t, src)["missing"], &missing); err != nil {
		t.Fatal(err)
	}
	if len(missing) == 0 {
		t.Fatalf("%s: inspect lists no missing disk", rel)
	}
	for _, m := range missing {
		if !strings.HasPrefix(m.Path, dir+string(filepath.Separator)) {
			t.Fatalf("%s: disk %s lies outside the descriptor's folder", rel, m.Path)
		}
		if err := os.MkdirAll(filepath.Dir(m.Path), 0o755); err != nil {
			t.Fatal(err)
		}
		format := map[string]string{".vmdk": "vmdk", ".vdi": "vdi", ".vhd": "vpc", ".vhdx": "vhdx", ".qcow2": "qcow2"}[strings.ToLower(filepath.Ext(m.Path))]
		if format == "" {
			format = "raw"
		}
		qemuImg(t, "create", "-q", "-f", format, m.Path, "16M")
	}
	return src
}

// TestInspectPreviewEqualsMount: `inspect --to T OPTS` shows the
// warnings a mount of the same options writes to <name>.warnings.txt,
// the same in the same order, and lists the files the mount serves.
func TestInspectPreviewEqualsMount(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	for _, tc := range []struct {
		src  string
		opts []string
	}{
		{"vmx/AlexusLee90__VMs11__Windows_11_x64.vmx", []string{"--to", "libvirt"}},
		{"vmx/AlexusLee90__VMs11__Windows_11_x64.vmx", []string{"--to", "vmware", "--format", "vmdk", "--subformat", "monolithicFlat"}},
		{"vmx/0x1ns4n3__foresty-os__Debian_10.x_64-bit.vmx", []string{"--to", "qemu", "--devices", "virtio"}},
		{"vmx/PhuIsagi__CoSoDuLieuPhanTan__Windows_Server_2016.vmx", []string{"--to", "libvirt", "--devices", "compat", "--domain-type", "qemu", "--network-map", "nat=default"}},
	} {
		t.Run(filepath.Base(tc.src)+strings.Join(tc.opts, "_"), func(t *testing.T) {
			src := sourceWithDisks(t, tc.src)
			v := inspectJSONOf(t, append(tc.opts, src)...)
			got := warningsOf(t, v)
			var target struct {
				Files []struct{ Name string }
			}
			if err := json.Unmarshal(v["target"], &target); err != nil {
				t.Fatal(err)
			}
			mnt := testenv.Mount(t, append(tc.opts, src, testenv.MountDir(t))...)
			var warnFile string
			ents, err := os.ReadDir(mnt)
			if err != nil {
				t.Fatal(err)
			}
			var served []string
			for _, e := range ents {
				served = append(served, e.Name())
				if strings.HasSuffix(e.Name(), ".warnings.txt") {
					warnFile = filepath.Join(mnt, e.Name())
				}
			}
			var listed []string
			for _, f := range target.Files {
				listed = append(listed, f.Name)
			}
			slices.Sort(listed) // ReadDir sorts by name
			if strings.Join(listed, " ") != strings.Join(served, " ") {
				t.Errorf("inspect lists %v, the mount serves %v", listed, served)
			}
			if warnFile == "" {
				t.Fatalf("the mount has no warnings file: %v", served)
			}
			want, err := os.ReadFile(warnFile)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("inspect's warnings differ from the mount's:\ninspect:\n%s\nmount:\n%s", got, want)
			}
			if !strings.Contains(got, "PREFLIGHT_") && strings.Contains(tc.src, "Windows_11") {
				t.Errorf("no pre-flight warning for a vTPM, encrypted source:\n%s", got)
			}
		})
	}
}

// TestInspectMissingDiskCLI: inspect shows a VM whose disk is missing
// (exit 0, the disk in "missing"); mount refuses it (exit 1).
func TestInspectMissingDiskCLI(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "m.vmx")
	write(t, src, strings.Replace(vmxTemplate, "%s", "gone.vmdk", 1))
	out, err := exec.Command(testenv.BuildVMFS(t), "inspect", src).Output()
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	for _, want := range []string{"name:      bad", "missing:   disk 0 on scsi0:0: " + filepath.Join(dir, "gone.vmdk"), "SOURCE_DISK_MISSING"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	var missing []struct{ Path string }
	if err := json.Unmarshal(inspectJSONOf(t, src)["missing"], &missing); err != nil || len(missing) != 1 {
		t.Errorf("--json missing = %+v (%v)", missing, err)
	}
	stderr, code := runCLI(t, "mount", src, mountpoint(t))
	if code != 1 || !strings.Contains(stderr, "disk gone.vmdk on scsi0:0 is missing") {
		t.Errorf("mount: exit %d, %s", code, stderr)
	}
}

// TestInspectPreviewEqualsMaterialize: `inspect --to T --dest DIR` shows
// the warnings and files a materialize into DIR writes.
func TestInspectPreviewEqualsMaterialize(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	src := sourceWithDisks(t, "vmx/AlexusLee90__VMs11__Windows_11_x64.vmx")
	dest := t.TempDir()
	opts := []string{"--to", "qemu", "--devices", "virtio"}
	v := inspectJSONOf(t, append(opts, "--dest", dest, src)...)
	got := warningsOf(t, v)
	var target struct {
		Dir   string
		Files []struct{ Name string }
	}
	if err := json.Unmarshal(v["target"], &target); err != nil {
		t.Fatal(err)
	}
	if target.Dir != dest {
		t.Errorf("preview in %s, want %s", target.Dir, dest)
	}
	if out, err := exec.Command(testenv.BuildVMFS(t), append(append([]string{"materialize", "--progress", "none"}, opts...), src, dest)...).CombinedOutput(); err != nil {
		t.Fatalf("materialize: %v\n%s", err, out)
	}
	var listed, written []string
	for _, f := range target.Files {
		listed = append(listed, f.Name)
	}
	ents, err := os.ReadDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, e := range ents {
		written = append(written, e.Name())
		if strings.HasSuffix(e.Name(), ".warnings.txt") {
			if want, err = os.ReadFile(filepath.Join(dest, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.Sort(listed)
	if strings.Join(listed, " ") != strings.Join(written, " ") {
		t.Errorf("inspect lists %v, materialize wrote %v", listed, written)
	}
	if got != string(want) {
		t.Errorf("inspect's warnings differ from materialize's:\ninspect:\n%s\nmaterialize:\n%s", got, want)
	}
}

// TestInspectFlagsNeedTo: a translation flag without --to is a usage
// error, not silently ignored.
func TestInspectFlagsNeedTo(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "m.vmx")
	write(t, src, strings.Replace(vmxTemplate, "%s", "gone.vmdk", 1))
	for _, args := range [][]string{{"--devices", "virtio"}, {"--format", "qcow2"}, {"--network-map", "a=b"}, {"--vmid", "123"}, {"--upload"}, {"--namespace", "vms"}} {
		stderr, code := runCLI(t, append(append([]string{"inspect"}, args...), src)...)
		if code != 2 || !strings.Contains(stderr, args[0]) || !strings.Contains(stderr, "--to") {
			t.Errorf("inspect %v: exit %d, %s", args, code, stderr)
		}
	}
}
