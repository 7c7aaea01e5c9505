package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/internal/vsphere/vspheretest"
)

// TestLs: vmfs ls lists a VM uploaded to vcsim's datastore, in text and
// in JSON the schema accepts; the password never shows, a wrong one or a
// wrong thumbprint is a one-line error.
func TestLs(t *testing.T) {
	bin := testenv.BuildVMFS(t)
	srv := vspheretest.Start(t)
	dir, disks := vspheretest.TestVM(t, 8)
	srv.AddVM(t, "testvm", dir, disks)
	env := []string{"VMFS_VSPHERE_PASSWORD=" + vspheretest.Password}
	tp := "--thumbprint=" + srv.Thumbprint

	out, stderr, code := runBinEnv(t, env, bin, "ls", tp, srv.URL(""))
	if code != 0 {
		t.Fatalf("vmfs ls: exit %d: %s", code, stderr)
	}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "testvm ") {
			line = l
		}
	}
	for _, want := range []string{"poweredOff", "[LocalDS_0] testvm/disk0.vmdk", "[LocalDS_0] testvm/disk2.vmdk", "[LocalDS_0] testvm/testvm.vmx"} {
		if !strings.Contains(line, want) {
			t.Errorf("vmfs ls: the testvm line %q lacks %q\n%s", line, want, out)
		}
	}

	out, stderr, code = runBinEnv(t, env, bin, "ls", "--json", tp, srv.URL(""))
	if code != 0 {
		t.Fatalf("vmfs ls --json: exit %d: %s", code, stderr)
	}
	if err := validate(t, "ls", out); err != nil {
		t.Errorf("vmfs ls --json: %v\n%s", err, out)
	}
	if !strings.Contains(out, `"url": "`+srv.URL("vm/testvm")+`"`) || !strings.Contains(out, `"power_state": "poweredOff"`) {
		t.Errorf("vmfs ls --json lacks testvm:\n%s", out)
	}

	// The password from a file works the same.
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(vspheretest.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runBinEnv(t, nil, bin, "ls", "--password-file", pwFile, tp, srv.URL("vm/testvm")); code != 0 {
		t.Errorf("--password-file: exit %d: %s", code, stderr)
	}

	// --insecure reads the host unchecked, and says so on one line.
	out, stderr, code = runBinEnv(t, env, bin, "ls", "--insecure", srv.URL(""))
	if code != 0 || !strings.Contains(out, "testvm") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "--insecure: the host's TLS certificate is not checked") {
		t.Errorf("--insecure: exit %d, stdout %q, stderr %q", code, out, stderr)
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"wrong password", []string{"VMFS_VSPHERE_PASSWORD=wrong-one"}, []string{"ls", tp, srv.URL("")}, 1, "login refused: wrong user or password"},
		{"wrong thumbprint", env, []string{"ls", "--thumbprint", strings.Repeat("ab", 32), srv.URL("")}, 1, "refused: the host's certificate has SHA-256 thumbprint " + srv.Thumbprint},
		{"untrusted", env, []string{"ls", srv.URL("")}, 1, "--thumbprint " + srv.Thumbprint},
		{"no password", []string{"VMFS_VSPHERE_PASSWORD="}, []string{"ls", tp, srv.URL("")}, 1, "no password"},
		{"password in the URL", env, []string{"ls", "vsphere://u:" + vspheretest.Password + "@" + srv.Host + "/DC0"}, 2, "a password in the URL is refused"},
		{"bad thumbprint", env, []string{"ls", "--thumbprint", "xyz", srv.URL("")}, 2, "is not a SHA-256 fingerprint"},
		{"no such VM", env, []string{"ls", tp, srv.URL("vm/nosuch")}, 1, `no VM "nosuch"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := runBinEnv(t, tc.env, bin, tc.args...)
			if code != tc.code || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and one line saying %q", code, out, stderr, tc.code, tc.want)
			}
			if strings.Contains(stderr, vspheretest.Password) {
				t.Errorf("the password shows: %s", stderr)
			}
		})
	}
}

func TestDaemonArgs(t *testing.T) {
	t.Setenv("VMFS_VSPHERE_PASSWORD", "")
	for _, tc := range []struct{ in, want string }{
		{"mount --password-file /p vsphere://u@h/DC/vm/x /mnt", "mount vsphere://u@h/DC/vm/x /mnt"},
		{"mount --password-file=/p --read-only vsphere://u@h/DC/vm/x /mnt", "mount --read-only vsphere://u@h/DC/vm/x /mnt"},
		{"mount -password-file /p a b", "mount a b"},
		{"mount --read-only a -- --password-file", "mount --read-only a -- --password-file"},
	} {
		got, err := daemonArgs(strings.Fields(tc.in), "pw")
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("%s: %q, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if got := os.Getenv("VMFS_VSPHERE_PASSWORD"); got != "pw" {
		t.Errorf("the child's environment holds %q", got)
	}
	if got, _ := daemonArgs([]string{"mount", "--password-file", "x"}, ""); len(got) != 3 {
		t.Errorf("without a password the arguments change: %q", got)
	}
}
