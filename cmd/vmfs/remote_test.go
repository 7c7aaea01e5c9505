package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/remote"
	"github.com/vmfs/vmfs/internal/servestat"
	"github.com/vmfs/vmfs/internal/testenv"
)

// TestStatusRemoteJSON: a mount of a remote source, with its counters,
// validates against the documented schema, and the text line says them.
func TestStatusRemoteJSON(t *testing.T) {
	snap := remote.StatsSnapshot{BytesFetched: 3 << 20, Requests: 4, CacheHits: 10, CacheMisses: 2, Retries: 1}
	s := mount.Status{Record: mount.Record{Mountpoint: "/mnt/x", Source: "https://h/a.ova", Target: "libvirt", Format: "qcow2", PID: 1, Started: time.Now(), Remote: &snap}}
	b, err := json.Marshal(statusJSON{SchemaVersion: schemaVersion, Mounts: []statusEntry{{Status: s}}, Servers: []servestat.Record{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, "status", string(b)); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	line := remoteStatsLine(snap)
	for _, want := range []string{"3.0 MiB", "4 requests", "10 hits / 2 misses", "1 retries", "0 errors"} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %q", line, want)
		}
	}
}

// TestRemoteFlags: --thumbprint and --cache-size are checked with the
// other flags, exit 2.
func TestRemoteFlags(t *testing.T) {
	bin := testenv.BuildVMFS(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", "--thumbprint", "12", "https://h/a.ova"}, "--thumbprint"},
		{[]string{"inspect", "--cache-size", "1K", "https://h/a.ova"}, "--cache-size: 1K is less than"},
		{[]string{"inspect", "--thumbprint", strings.Repeat("a", 64), "--insecure", "https://h/a.ova"}, "exclude each other"},
		{[]string{"inspect", "ftp://h/a.ova"}, "does not read ftp://"},
		{[]string{"inspect", "http://h/a.ova"}, "pass --insecure"},
	} {
		_, stderr, code := runBinEnv(t, nil, bin, c.args...)
		if !strings.Contains(stderr, c.want) || code == 0 {
			t.Errorf("%v: exit %d, %s", c.args, code, stderr)
		}
		if strings.HasPrefix(c.want, "--") && code != 2 {
			t.Errorf("%v: exit %d, want 2", c.args, code)
		}
	}
}
