package layouts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// memFS is a RemoteFS over names and contents.
type memFS map[string][]byte

func (m memFS) Open(p string) (File, error) {
	b, ok := m[p]
	if !ok {
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	return &SectionFile{R: strings.NewReader(string(b)), N: int64(len(b)), Path: p}, nil
}

func (m memFS) Stat(p string) (int64, error) {
	b, ok := m[p]
	if !ok {
		return 0, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	return int64(len(b)), nil
}

func (m memFS) Display(p string) string { return "https://h" + p }

// TestEnvRemote: with Env.Remote, references resolve in the remote tree
// by slash-path rules, absolute ones too (a local file of that name is
// never looked at), opens go to the remote and are recorded by URL.
func TestEnvRemote(t *testing.T) {
	local := filepath.Join(t.TempDir(), "local.raw")
	if err := os.WriteFile(local, []byte("local"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := memFS{"/vm/web.vmdk": []byte("desc"), "/vm/web-flat.vmdk": []byte("flat"), "/base/base.vmdk": []byte("base")}
	e := &Env{Remote: m, Sources: &Sources{}}
	for _, c := range []struct{ ref, want, err string }{
		{"web-flat.vmdk", "/vm/web-flat.vmdk", ""},
		{"../base/base.vmdk", "/base/base.vmdk", ""},
		{"/base/base.vmdk", "/base/base.vmdk", ""},
		{"./../vm/./web-flat.vmdk", "/vm/web-flat.vmdk", ""},
		{local, "", "is missing"},
		{"gone.vmdk", "", "is missing"},
	} {
		p, err := e.Resolve("/vm/web.vmdk", c.ref)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Resolve(%q) = %q, %v; want %q", c.ref, p, err, c.err)
			}
			continue
		}
		if err != nil || p != c.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", c.ref, p, err, c.want)
		}
	}
	f, err := e.OpenRef("/vm/web.vmdk", "web-flat.vmdk")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := e.Open(local); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a local path on a remote env: %v", err)
	}
	if got := e.Sources.Files(); len(got) != 1 || got[0] != (SourceFile{Path: "https://h/vm/web-flat.vmdk"}) {
		t.Errorf("sources %+v", got)
	}
	if n, err := e.Stat("/base/base.vmdk"); n != 4 || err != nil {
		t.Errorf("Stat = %d, %v", n, err)
	}
	if e.RealPath("/vm/../x") != "/vm/../x" || e.Display("/a") != "https://h/a" {
		t.Error("RealPath or Display touched a remote path")
	}
}
