package qemu

import (
	"bytes"
	"fmt"
	corpusdir "github.com/vmfs/vmfs/internal/corpus"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/vmx"
)

var corpus = corpusdir.Path("virt-v2v")

// machines parses the virt-v2v .vmx vectors.
func machines(t *testing.T) map[string]*translate.Machine {
	files, _ := filepath.Glob(filepath.Join(corpus, "test-i-vmx-*.vmx"))
	if len(files) == 0 {
		t.Fatal("corpus not found")
	}
	out := map[string]*translate.Machine{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := vmx.ParseBytes(f, b)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = m
	}
	return out
}

// writeScript emits m into dir with disks named there and returns the
// script's path.
func writeScript(t *testing.T, dir string, m *translate.Machine, opts translate.Options) (string, []translate.TargetDisk) {
	t.Helper()
	var td []translate.TargetDisk
	for i := range m.Disks {
		td = append(td, translate.TargetDisk{Path: filepath.Join(dir, fmt.Sprintf("disk '%d', x.qcow2", i)), Format: "qcow2"})
	}
	out, warns, err := Target{}.Emit(m, td, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Name != translate.FileName(m.Name)+".sh" || out[0].Mode != 0o755 {
		t.Fatalf("files: %d, first %q mode %v", len(out), out[0].Name, out[0].Mode)
	}
	if !bytes.HasPrefix(out[0].Data, []byte("#!/bin/sh\n")) {
		t.Fatalf("no shebang")
	}
	for _, w := range warns {
		if w.Code == "" {
			t.Errorf("warning without code: %v", w)
		}
	}
	p := filepath.Join(dir, out[0].Name)
	if err := os.WriteFile(p, out[0].Data, out[0].Mode); err != nil {
		t.Fatal(err)
	}
	return p, td
}

// TestScriptArgs runs each script with a stand-in QEMU that records its
// arguments, so that the shell quoting is checked too.
func TestScriptArgs(t *testing.T) {
	for _, policy := range []string{"preserve", "virtio", "compat"} {
		for name, m := range machines(t) {
			t.Run(policy+"/"+name, func(t *testing.T) {
				dir := t.TempDir()
				script, td := writeScript(t, dir, m, translate.Options{Devices: policy})
				if out, err := exec.Command("sh", "-n", script).CombinedOutput(); err != nil {
					t.Fatalf("sh -n: %v %s", err, out)
				}
				stub := filepath.Join(dir, "stub")
				argsFile := filepath.Join(dir, "args")
				os.WriteFile(stub, []byte("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > \""+argsFile+"\"\n"), 0o755)
				cmd := exec.Command(script, "-S")
				cmd.Env = append(os.Environ(), "QEMU="+stub)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%v %s", err, out)
				}
				b, err := os.ReadFile(argsFile)
				if err != nil {
					t.Fatal(err)
				}
				args := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
				if args[len(args)-1] != "-S" || args[0] != "-name" || args[1] != strings.ReplaceAll(m.Name, ",", ",,") {
					t.Errorf("args %q", args)
				}
				joined := strings.Join(args, "\n")
				for _, d := range td {
					if !strings.Contains(joined, "file="+strings.ReplaceAll(d.Path, ",", ",,")+",format=qcow2") {
						t.Errorf("disk %s not in args:\n%s", d.Path, joined)
					}
				}
				for _, n := range m.NICs {
					if !strings.Contains(joined, "mac="+n.MAC) {
						t.Errorf("MAC %s not in args", n.MAC)
					}
				}
				if m.Firmware == translate.UEFI {
					vars := filepath.Join(dir, translate.FileName(m.Name)+"_VARS.fd")
					if _, err := os.Stat(vars); err != nil {
						t.Errorf("UEFI variable store not created: %v", err)
					}
					if !strings.Contains(joined, "if=pflash,format=raw,file="+vars) {
						t.Errorf("vars drive missing:\n%s", joined)
					}
				}
			})
		}
	}
}

// TestRun starts QEMU (TCG, paused) on each generated script with real
// disk images: QEMU checks every device and drive option at start-up.
func TestRun(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	if testing.Short() {
		t.Skip("starts QEMU")
	}
	ms := machines(t)
	iso := filepath.Join(t.TempDir(), "cd.iso")
	if err := os.WriteFile(iso, make([]byte, 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		vector string
		policy string
		edit   func(m *translate.Machine)
	}{
		{"21 pvscsi disks and IDE CD-ROM", "test-i-vmx-1.vmx", "preserve", nil},
		{"secure boot with lsisas1068 and SATA", "test-i-vmx-7.vmx", "preserve", nil},
		{"UEFI", "test-i-vmx-3.vmx", "preserve", nil},
		{"NVMe as SATA", "test-i-vmx-6.vmx", "preserve", nil},
		{"virtio", "test-i-vmx-4.vmx", "virtio", nil},
		{"compat", "test-i-vmx-2.vmx", "compat", nil},
		{"IDE disk on i440fx", "test-i-vmx-4.vmx", "preserve", func(m *translate.Machine) {
			m.Disks[0].Bus, m.Disks[0].ControllerIndex, m.Disks[0].Unit = translate.BusIDE, 0, 0
		}},
		{"topology", "test-i-vmx-5.vmx", "preserve", func(m *translate.Machine) { m.CPUs, m.CoresPerSocket = 4, 2 }},
		{"name with comma and quote", "test-i-vmx-2.vmx", "preserve", func(m *translate.Machine) { m.Name = "web, 'prod' $x" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m0 := ms[c.vector]
			if m0 == nil {
				t.Fatalf("%s not in corpus", c.vector)
			}
			m := *m0
			m.Disks = append([]translate.Disk(nil), m0.Disks...)
			m.CDROMs = append([]translate.CDROM(nil), m0.CDROMs...)
			m.MemoryMiB = 128
			for i := range m.CDROMs {
				if m.CDROMs[i].Path != "" {
					m.CDROMs[i].Path = iso
				}
			}
			if c.edit != nil {
				c.edit(&m)
			}
			dir := t.TempDir()
			script, td := writeScript(t, dir, &m, translate.Options{Devices: c.policy, DomainType: "qemu"})
			for _, d := range td {
				if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", d.Path, "1M").CombinedOutput(); err != nil {
					t.Fatalf("qemu-img create: %v %s", err, out)
				}
			}
			// Paused, with a QMP socket: QEMU greets on it only once the
			// machine is built, then quits on request.
			sock := filepath.Join(dir, "qmp.sock") // test names hold no commas
			cmd := exec.Command(script, "-S", "-qmp", "unix:"+sock+",server=on,wait=off")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Stdin = strings.NewReader("")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			exited := false
			defer func() {
				if !exited {
					cmd.Process.Kill()
					<-done
				}
			}()
			deadline := time.Now().Add(60 * time.Second)
			for {
				select {
				case err := <-done:
					exited = true
					t.Fatalf("QEMU exited: %v\n%s", err, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("QEMU did not come up in 60 s\n%s", stderr.String())
				}
				conn, err := net.Dial("unix", sock)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				greeting := make([]byte, 4096)
				n, err := conn.Read(greeting)
				if err != nil || !bytes.Contains(greeting[:n], []byte(`"QMP"`)) {
					conn.Close()
					t.Fatalf("no QMP greeting (%v): %s\n%s", err, greeting[:n], stderr.String())
				}
				fmt.Fprint(conn, "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n")
				io.Copy(io.Discard, conn) // until QEMU closes it on quit
				conn.Close()
				break
			}
			select {
			case err := <-done:
				exited = true
				if err != nil {
					t.Errorf("QEMU: %v\n%s", err, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Errorf("QEMU did not quit")
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
		{"$HOME", "'$HOME'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := quote(tt.in); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
