package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vmfs/vmfs/internal/testenv"
)

// schemaOf compiles the definition def of docs/vmfs.schema.json.
func schemaOf(t *testing.T, def string) *jsonschema.Schema {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(t), "docs", "vmfs.schema.json")
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(path + "#/$defs/" + def)
	if err != nil {
		t.Fatalf("schema %s: %v", def, err)
	}
	return s
}

// validate checks that doc is one JSON value that def accepts.
func validate(t *testing.T, def, doc string) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	return schemaOf(t, def).Validate(v)
}

// runBinEnv is runBin with extra environment variables.
func runBinEnv(t *testing.T, env []string, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return stdout.String(), stderr.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}

// TestJSONSchema: every --json output, every --progress=json event and
// every JSON error validates against the documented schema.
func TestJSONSchema(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	bin := testenv.BuildVMFS(t)
	dir := t.TempDir()
	// A libvirt domain over a qcow2 chain, a NIC without a MAC (a
	// warning) and no CD-ROM or serial port (empty lists).
	base, top := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "top.qcow2")
	qemuImg(t, "create", "-f", "qcow2", base, "16M")
	qemuImg(t, "create", "-f", "qcow2", "-b", base, "-F", "qcow2", top)
	domain := filepath.Join(dir, "vm.xml")
	write(t, domain, `<domain type='kvm'><name>jsonvm</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='`+top+`'/><target dev='vda' bus='virtio'/></disk>
<interface type='network'><source network='default'/><model type='e1000e'/></interface>
</devices></domain>`)
	// A bare disk: a made-up machine.
	bare := filepath.Join(dir, "bare.raw")
	if err := os.WriteFile(bare, bytes.Repeat([]byte{1}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	run := t.TempDir()
	mnt := t.TempDir()
	write(t, filepath.Join(run, "rec.json"), fmt.Sprintf(`{"mountpoint": %q, "source": %q, "target": "libvirt", "format": "qcow2",
		"read_only": true, "pid": %d, "started": "2026-01-02T03:04:05Z"}`, mnt, domain, os.Getpid()))
	env := []string{"VMFS_RUN_DIR=" + run}
	empty := []string{"VMFS_RUN_DIR=" + t.TempDir()}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		def  string // of stdout, "" when stdout must be empty
		code int    // 0: stderr must be empty; else the exit code, stderr an error
		// lines: stdout is one JSON value a line (events).
		lines bool
		want  []string // keys stdout must hold
	}{
		{name: "inspect libvirt", args: []string{"inspect", "--json", domain}, def: "inspect",
			want: []string{`"schema_version": 1`, `"memory_mib": 256`, `"cdroms": []`, `"serials": []`, `"file": "` + base + `"`, `"has_esp": false`}},
		{name: "inspect preview", args: []string{"inspect", "--json", "--to", "libvirt", "--domain-type", "qemu", domain}, def: "inspect",
			want: []string{`"target": {`, `"machine_type":`, `"files": [`, `"missing": []`}},
		{name: "inspect bare disk", args: []string{"inspect", "--json", bare}, def: "inspect",
			want: []string{`"serials": []`, `"code": "SOURCE_BARE_DISK"`, `"source_format": "disk"`}},
		{name: "status", env: env, args: []string{"status", "--json"}, def: "status",
			want: []string{`"mountpoint": "` + mnt + `"`, `"alive": true`}},
		{name: "status of none", env: empty, args: []string{"status", "--json"}, def: "status", want: []string{`"mounts": []`}},
		{name: "materialize progress", args: []string{"materialize", "--progress=json", "--format", "qcow2", domain, filepath.Join(dir, "out")},
			def: "event", lines: true, want: []string{`"event":"warning"`, `"event":"progress"`, `"event":"done"`, `"warnings_file":`}},
		{name: "error of inspect", args: []string{"inspect", "--json", filepath.Join(dir, "nope.vmx")}, code: 1},
		{name: "usage error", args: []string{"inspect", "--json"}, code: 2},
		{name: "usage error of materialize", args: []string{"materialize", "--progress", "json", "--jobs", "0", domain, filepath.Join(dir, "out2")}, code: 2},
		{name: "error of status", env: empty, args: []string{"status", "--json", "/nonexistent"}, code: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runBinEnv(t, tc.env, bin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			if tc.code != 0 {
				line := strings.TrimSuffix(stderr, "\n")
				if strings.Contains(line, "\n") {
					t.Errorf("stderr is not one line: %q", stderr)
				}
				if err := validate(t, "error", line); err != nil {
					t.Errorf("stderr %q: %v", stderr, err)
				}
				var e jsonError
				if json.Unmarshal([]byte(line), &e) != nil || e.Code != tc.code {
					t.Errorf("stderr %q: code is not the exit code %d", line, tc.code)
				}
			} else if strings.Contains(stderr, "{") || strings.Contains(stderr, "warning") && !tc.lines {
				t.Errorf("stderr %q", stderr)
			}
			if tc.def == "" {
				if stdout != "" {
					t.Errorf("stdout %q, want none", stdout)
				}
				return
			}
			docs := []string{stdout}
			if tc.lines {
				docs = strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			}
			for _, d := range docs {
				if err := validate(t, tc.def, d); err != nil {
					t.Errorf("%s: %v\n%s", tc.def, err, d)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %s:\n%s", w, stdout)
				}
			}
		})
	}
}

// TestJSONSchemaRejects: the schema is a check, not a formality: the keys
// vmfs wrote before (MemoryMiB, Boot.Table) and null lists fail it.
func TestJSONSchemaRejects(t *testing.T) {
	good := map[string]any{
		"schema_version": 1, "name": "a", "uuid": "", "memory_mib": 1, "cpus": 1, "cores_per_socket": 0,
		"firmware": "bios", "secure_boot": false, "guest_os": "", "os_info": "", "disks": []any{}, "cdroms": []any{},
		"nics": []any{}, "serials": []any{}, "video": "", "source": "a.vmx", "source_format": "vmx",
		"warnings": []any{}, "disk_info": []any{},
	}
	doc := func(edit func(m map[string]any)) string {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		edit(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	if err := validate(t, "inspect", doc(func(map[string]any) {})); err != nil {
		t.Fatalf("the good document fails: %v", err)
	}
	for name, edit := range map[string]func(m map[string]any){
		"CamelCase key": func(m map[string]any) { m["MemoryMiB"] = 1 },
		"null list":     func(m map[string]any) { m["warnings"] = nil },
		"missing key":   func(m map[string]any) { delete(m, "schema_version") },
		"other version": func(m map[string]any) { m["schema_version"] = 2 },
		"nested CamelCase": func(m map[string]any) {
			m["disk_info"] = []any{map[string]any{"path": "d", "format": "raw", "virtual_size": 1, "allocated": 1,
				"boot": map[string]any{"Table": "", "has_esp": false, "has_bios_boot": false}, "chain": []any{}}}
		},
	} {
		if err := validate(t, "inspect", doc(edit)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
