package vsphere

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/vsphere/vspheretest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Location
		err  string
	}{
		{in: "vsphere://admin@vc.example/DC1", want: Location{User: "admin", Host: "vc.example", Datacenter: "DC1"}},
		{in: "vsphere://admin@vc.example:8443/DC1/vm/web01", want: Location{User: "admin", Host: "vc.example:8443", Datacenter: "DC1", VM: "web01"}},
		{in: "vsphere://root@esxi1/ha-datacenter/vm/prod/db02", want: Location{User: "root", Host: "esxi1", Datacenter: "ha-datacenter", VM: "prod/db02"}},
		{in: "vsphere://a%40corp@vc/DC/web01", want: Location{User: "a@corp", Host: "vc", Datacenter: "DC", VM: "web01"}},
		{in: "vsphere://admin:hunter2@vc/DC1", err: "a password in the URL is refused"},
		{in: "vsphere://vc/DC1", err: "no user"},
		{in: "vsphere://admin@/DC1", err: "no host"},
		{in: "vsphere://admin@vc", err: "no datacenter"},
		{in: "vsphere://admin@vc/DC1/host/x/y", err: "is not /vm/INVENTORY/PATH"},
		{in: "vsphere://admin@vc:99999/DC1", err: "port"},
		{in: "vsphere://admin@vc/DC1/vm/a/../b", err: "not an inventory name"},
		{in: "vsphere://admin@vc/DC1?x=1", err: "query"},
		{in: "https://admin@vc/DC1", err: "not a vsphere:// URL"},
	} {
		got, err := ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one saying %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: the error repeats the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestPassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from-file\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == PasswordEnv {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		env, file, want, err string
	}{
		{env: "from-env", want: "from-env"},
		{env: "from-env", file: file, want: "from-file"},
		{file: file, want: "from-file"},
		{err: "no password: set VMFS_VSPHERE_PASSWORD or pass --password-file"},
		{file: empty, err: "empty first line"},
		{file: filepath.Join(dir, "nope"), err: "no such file"},
	} {
		got, err := Password(env(tc.env), tc.file)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: error %v, want %q", tc, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%+v: %q, %v", tc, got, err)
		}
	}
}

func TestNormalizeThumbprint(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	want := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	for _, in := range []string{hex, strings.ToUpper(hex), want, strings.ToLower(want)} {
		if got, err := NormalizeThumbprint(in); err != nil || got != want {
			t.Errorf("%s: %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "ab:cd", strings.Repeat("zz", 32), strings.Repeat("ab", 20)} {
		if _, err := NormalizeThumbprint(in); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
}

func TestPaths(t *testing.T) {
	for _, tc := range []struct{ ds, local string }{
		{"[LocalDS_0] web01/web01.vmx", "/vmfs/volumes/LocalDS_0/web01/web01.vmx"},
		{"[datastore 1] a b/c.vmdk", "/vmfs/volumes/datastore 1/a b/c.vmdk"},
		{"[ds] ../../etc/passwd", "/vmfs/volumes/ds/etc/passwd"},
	} {
		got, err := LocalPath(tc.ds)
		if err != nil || got != tc.local {
			t.Errorf("%s: %q, %v; want %q", tc.ds, got, err, tc.local)
		}
	}
	for _, bad := range []string{"web01.vmx", "[] x", "[a/b] x"} {
		if got, err := LocalPath(bad); err == nil {
			t.Errorf("%s: %q accepted", bad, got)
		}
	}
	for _, bad := range []string{"/etc/passwd", "/vmfs/volumes/ds", "/vmfs/volumes/../../etc/x", "vmfs/volumes/ds/x"} {
		if _, _, err := DatastorePath(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	if got := Display("/vmfs/volumes/ds/f/x.vmdk"); got != "[ds] f/x.vmdk" {
		t.Errorf("Display: %q", got)
	}
}

func TestRewriteDisks(t *testing.T) {
	vmx := "displayName = \"x\"\nscsi0:0.fileName = \"x-000001.vmdk\"\nSCSI0:1.FileName=\"/vmfs/volumes/ds2/y/y-000002.vmdk\"\nsata0:0.fileName = \"cd.iso\"\n"
	for _, tc := range []struct {
		name string
		keys map[string]string
		want string
		err  string
	}{
		{
			name: "frozen parents",
			keys: map[string]string{"scsi0:0": "/vmfs/volumes/ds/x/x.vmdk", "scsi0:1": "/vmfs/volumes/ds2/y/y-000001.vmdk"},
			want: "displayName = \"x\"\nscsi0:0.fileName = \"x.vmdk\"\nSCSI0:1.FileName = \"/vmfs/volumes/ds2/y/y-000001.vmdk\"\nsata0:0.fileName = \"cd.iso\"\n",
		},
		{
			name: "a disk the vmx lacks",
			keys: map[string]string{"nvme0:0": "/vmfs/volumes/ds/x/z.vmdk"},
			err:  "nvme0:0",
		},
	} {
		got, err := rewriteDisks([]byte(vmx), tc.keys, "/vmfs/volumes/ds/x")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %v\n%s\nwant\n%s", tc.name, err, got, tc.want)
		}
	}
}

// TestSimulator runs against vcsim on loopback: a test VM uploaded to its
// datastore and registered is listed, found, and read back byte for byte;
// login and TLS failures are one-line errors; a powered-on VM is refused,
// and read through a snapshot that Close removes.
func TestSimulator(t *testing.T) {
	srv := vspheretest.Start(t)
	dir, disks := vspheretest.TestVM(t, 8)
	srv.AddVM(t, "testvm", dir, disks)
	srv.RequireSession(t, "testvm")
	ctx := context.Background()
	opts := Options{Password: vspheretest.Password, Thumbprint: srv.Thumbprint}
	loc, err := ParseURL(srv.URL(""))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("list", func(t *testing.T) {
		c, err := Connect(ctx, loc, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Logout(ctx)
		vms, err := c.VMs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(vms, func(v VM) bool { return v.Name == "testvm" })
		if i < 0 {
			t.Fatalf("testvm not listed: %+v", vms)
		}
		v := vms[i]
		if v.Path != "testvm" || v.PowerState != "poweredOff" || v.VMX != "[LocalDS_0] testvm/testvm.vmx" {
			t.Errorf("testvm: %+v", v)
		}
		var files []string
		for _, d := range v.Disks {
			files = append(files, d.File)
		}
		want := []string{"[LocalDS_0] testvm/disk0.vmdk", "[LocalDS_0] testvm/disk1.vmdk", "[LocalDS_0] testvm/disk2.vmdk"}
		if !slices.Equal(files, want) {
			t.Errorf("disks %q, want %q", files, want)
		}
		// The simulator's own VM runs.
		if !slices.ContainsFunc(vms, func(v VM) bool { return v.PoweredOn() }) {
			t.Errorf("no powered-on VM listed: %+v", vms)
		}
	})

	t.Run("read", func(t *testing.T) {
		s, err := Open(ctx, srv.URL("vm/testvm"), OpenOptions{Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(ctx)
		if s.VMX != "/vmfs/volumes/LocalDS_0/testvm/testvm.vmx" {
			t.Errorf("VMX %q", s.VMX)
		}
		entries, _ := os.ReadDir(dir)
		rng := rand.New(rand.NewPCG(1, 2))
		for _, e := range entries {
			want, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			f, err := s.Store.Open(ctx, "/vmfs/volumes/LocalDS_0/testvm/"+e.Name())
			if err != nil {
				t.Fatal(err)
			}
			if f.Size() != int64(len(want)) {
				t.Fatalf("%s: size %d, want %d", e.Name(), f.Size(), len(want))
			}
			got := make([]byte, len(want))
			if n, err := f.ReadRange(ctx, got, 0); n != len(want) || (err != nil && err != io.EOF) {
				t.Fatalf("%s: read %d, %v", e.Name(), n, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: bytes differ", e.Name())
			}
			for range 20 {
				if len(want) == 0 {
					break
				}
				off := rng.Int64N(int64(len(want)))
				p := make([]byte, 1+rng.IntN(9000))
				n, err := f.ReadRange(ctx, p, off)
				end := min(off+int64(len(p)), int64(len(want)))
				if n != int(end-off) || !bytes.Equal(p[:n], want[off:end]) {
					t.Fatalf("%s at %d: %d bytes, %v", e.Name(), off, n, err)
				}
				if (end < off+int64(len(p))) != (err == io.EOF) {
					t.Fatalf("%s at %d+%d: err %v", e.Name(), off, len(p), err)
				}
			}
		}
		if _, err := s.Store.Open(ctx, "/vmfs/volumes/LocalDS_0/testvm/nope.vmdk"); err == nil || !strings.Contains(err.Error(), "[LocalDS_0] testvm/nope.vmdk: no such file") {
			t.Errorf("missing file: %v", err)
		}
	})

	t.Run("find", func(t *testing.T) {
		for _, u := range []string{srv.URL("vm/testvm"), srv.URL("testvm")} {
			s, err := Open(ctx, u, OpenOptions{Options: opts})
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			s.Close(ctx)
		}
		_, err := Open(ctx, srv.URL("vm/nosuch"), OpenOptions{Options: opts})
		if err == nil || !strings.Contains(err.Error(), `no VM "nosuch"`) {
			t.Errorf("no such VM: %v", err)
		}
		_, err = Connect(ctx, Location{User: vspheretest.User, Host: srv.Host, Datacenter: "DCX"}, opts)
		if err == nil || !strings.Contains(err.Error(), `no datacenter "DCX"`) || !strings.Contains(err.Error(), "DC0") {
			t.Errorf("no such datacenter: %v", err)
		}
	})

	t.Run("login and TLS", func(t *testing.T) {
		wrong := opts
		wrong.Password = "not-the-password"
		_, err := Connect(ctx, loc, wrong)
		if err == nil || !strings.HasSuffix(err.Error(), "login refused: wrong user or password") || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), wrong.Password) {
			t.Errorf("wrong password: %v", err)
		}
		pinned := opts
		pinned.Thumbprint = strings.Repeat("00", 32)
		_, err = Connect(ctx, loc, pinned)
		if err == nil || !strings.Contains(err.Error(), "refused: the host's certificate has SHA-256 thumbprint "+srv.Thumbprint) {
			t.Errorf("wrong thumbprint: %v", err)
		}
		plain := opts
		plain.Thumbprint = ""
		_, err = Connect(ctx, loc, plain)
		if err == nil || !strings.Contains(err.Error(), "not trusted") || !strings.Contains(err.Error(), "--thumbprint "+srv.Thumbprint) {
			t.Errorf("untrusted certificate: %v", err)
		}
		plain.Insecure = true
		c, err := Connect(ctx, loc, plain)
		if err != nil {
			t.Fatalf("--insecure: %v", err)
		}
		c.Logout(ctx)
	})

	t.Run("session renewed", func(t *testing.T) {
		c, err := Connect(ctx, loc, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Logout(ctx)
		// The host forgets the session (it expired).
		if err := c.sm.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.VMs(ctx); err != nil {
			t.Fatalf("after the session ended: %v", err)
		}
		if c.generation() != 2 {
			t.Errorf("logins: %d, want 2", c.generation())
		}
		// The file API refuses an expired session with 401: the read
		// logs in again and is sent again.
		srv.ExpireSessions(t)
		f, err := c.Store().Open(ctx, "/vmfs/volumes/LocalDS_0/testvm/testvm.vmx")
		if err != nil {
			t.Fatalf("a file read after the session ended: %v", err)
		}
		if _, err := f.ReadRange(ctx, make([]byte, f.Size()), 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if c.generation() != 3 {
			t.Errorf("logins: %d, want 3", c.generation())
		}
	})

	t.Run("powered on", func(t *testing.T) {
		srv.PowerOn(t, "testvm")
		_, err := Open(ctx, srv.URL("vm/testvm"), OpenOptions{Options: opts})
		if err == nil || !strings.Contains(err.Error(), "VM testvm is powered on") || !strings.Contains(err.Error(), "--snapshot") {
			t.Fatalf("powered-on VM: %v", err)
		}
		at := time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC)
		s, err := Open(ctx, srv.URL("vm/testvm"), OpenOptions{Options: opts, Snapshot: true, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		if s.Snapshot != "vmfs-20261207T010203Z" {
			t.Errorf("snapshot %q", s.Snapshot)
		}
		if got := srv.Snapshots(t, "testvm"); !slices.Equal(got, []string{s.Snapshot}) {
			t.Errorf("snapshots while open: %q", got)
		}
		f, err := s.Store.Open(ctx, s.VMX)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, f.Size())
		if _, err := f.ReadRange(ctx, b, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		for _, d := range disks {
			if !strings.Contains(string(b), `.fileName = "`+d+`"`) {
				t.Errorf("the frozen .vmx does not name %s:\n%s", d, b)
			}
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if got := srv.Snapshots(t, "testvm"); len(got) != 0 {
			t.Errorf("snapshots after Close: %q", got)
		}
	})
}
