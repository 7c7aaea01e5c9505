package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/layouts"
)

// TestServeRefusesRemote: plain NBD beyond loopback is a usage error
// unless --insecure-listen; so is an address that is not HOST:PORT.
func TestServeRefusesRemote(t *testing.T) {
	src := filepath.Join(t.TempDir(), "d.raw")
	write(t, src, strings.Repeat("x", 4096))
	for _, tc := range []struct {
		addr string
		want int
	}{
		{"0.0.0.0:0", exitUsage},
		{":10809", exitUsage},
		{"[::]:0", exitUsage},
		{"192.0.2.1:0", exitUsage},
		{"127.0.0.1", exitUsage},
	} {
		if got := run([]string{"vmfs", "serve", "--nbd", tc.addr, src}); got != tc.want {
			t.Errorf("serve --nbd %s: exit %d, want %d", tc.addr, got, tc.want)
		}
	}
	// With --insecure-listen the address is taken (and fails to bind:
	// 192.0.2.1 is not this host's), an operation error, not usage.
	if got := run([]string{"vmfs", "serve", "--insecure-listen", "--nbd", "192.0.2.1:0", src}); got != exitError {
		t.Errorf("serve --insecure-listen --nbd 192.0.2.1:0: exit %d, want %d", got, exitError)
	}
}

// startServe runs runServe with o until the test ends, its status files
// in a run directory of the test's, and returns the first n URIs it
// prints.
func startServe(t *testing.T, o serveOptions, n int) []string {
	t.Helper()
	t.Setenv("VMFS_RUN_DIR", t.TempDir())
	pr, pw := io.Pipe()
	o.out = pw
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, o)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runServe: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("runServe did not stop")
		}
	})
	sc := bufio.NewScanner(pr)
	var uris []string
	for len(uris) < n && sc.Scan() {
		uris = append(uris, sc.Text())
	}
	go io.Copy(io.Discard, pr)
	if len(uris) < n {
		cancel()
		err := <-done
		done <- err
		t.Fatalf("runServe printed %q, want %d URIs: %v", uris, n, err)
	}
	return uris
}

// TestServe: runServe serves each source's disks as VM/diskN; qemu-img
// reads the source's bytes through each, and the server stops when its
// context ends.
func TestServe(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	dir := t.TempDir()
	a := filepath.Join(dir, "a.qcow2")
	qemuImg(t, "create", "-f", "qcow2", a, "16M")
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 64k", a).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	b := filepath.Join(dir, "b.raw")
	write(t, b, strings.Repeat("b", 1<<16))

	uris := startServe(t, serveOptions{
		srcs: []string{a, b}, nbdAddr: "127.0.0.1:0", maxConns: 4,
		session: session.Options{To: "libvirt", Dir: dir, Env: &layouts.Env{}},
	}, 2)
	if len(uris) != 2 {
		t.Fatalf("runServe printed %q, want two NBD URIs", uris)
	}
	for i, src := range []string{a, b} {
		u, err := url.Parse(uris[i])
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(u.Path, "/")
		want := strings.TrimSuffix(filepath.Base(src), filepath.Ext(src)) + "/disk0"
		if name != want {
			t.Errorf("export %q, want %q", name, want)
		}
		js, _ := json.Marshal(map[string]any{"driver": "nbd", "export": name,
			"server": map[string]string{"type": "inet", "host": u.Hostname(), "port": u.Port()}})
		if out, err := exec.Command("qemu-img", "compare", "-q", "json:"+string(js), src).CombinedOutput(); err != nil {
			t.Errorf("qemu-img compare %s %s: %v\n%s", uris[i], src, err, out)
		}
	}
}
