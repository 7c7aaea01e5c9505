package mount

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestDaemonLog mounts with the real vmfs binary: a daemon that unmounts
// cleanly leaves no log behind; the log of a mount that failed, or of one
// that wrote to it, stays.
func TestDaemonLog(t *testing.T) {
	t.Setenv("VMFS_RUN_DIR", t.TempDir())
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("disk-flat.img", strings.Repeat("data", 1<<18))
	write("disk.vmdk", "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"+
		"createType=\"monolithicFlat\"\nRW 2048 FLAT \"disk-flat.img\" 0\n")
	vmx := `.encoding = "UTF-8"
displayName = "log"
memsize = "256"
scsi0.present = "TRUE"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "%s"
`
	good := write("good.vmx", strings.Replace(vmx, "%s", "disk.vmdk", 1))
	missing := write("missing.vmx", strings.Replace(vmx, "%s", "nothere.vmdk", 1))

	for _, tc := range []struct {
		name     string
		args     []string // before SRC MOUNTPOINT
		src      string
		fails    bool
		keepsLog bool
	}{
		{"clean unmount", []string{"--read-only"}, good, false, false},
		{"clean unmount with a log", []string{"--read-only", "--fuse-debug"}, good, false, true},
		{"failed mount", []string{"--read-only"}, missing, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := testenv.MountDir(t)
			log := LogPath(mnt)
			t.Cleanup(func() { os.Remove(log) })
			_, err := testenv.TryMount(t, append(tc.args, tc.src, mnt)...)
			if tc.fails != (err != nil) {
				t.Fatalf("mount: got error %v, want one: %v", err, tc.fails)
			}
			if !tc.fails {
				if _, err := os.Stat(log); err != nil {
					t.Fatalf("while mounted: %v", err)
				}
				if err := testenv.Unmount(t, mnt); err != nil {
					t.Fatal(err)
				}
			}
			// `vmfs unmount` waits for the daemon to exit, and a failed
			// mount's parent for the child: the log is settled already.
			_, err = os.Stat(log)
			switch {
			case tc.keepsLog && err != nil:
				t.Errorf("log %s: %v, want it kept", log, err)
			case !tc.keepsLog && !errors.Is(err, os.ErrNotExist):
				b, _ := os.ReadFile(log)
				t.Errorf("log %s left after a clean unmount (stat: %v), holding %q", log, err, b)
			}
		})
	}
}

// TestReporterForeground: outside a daemon, warnings and messages go to the
// writer given, and Ready and Exit do nothing.
func TestReporterForeground(t *testing.T) {
	t.Setenv(ReadyEnv, "")
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	r := NewReporter(out)
	if r.Daemon() {
		t.Fatal("a process with no readiness pipe counts as a daemon")
	}
	r.Warn("w1")
	r.Info("i1")
	r.Ready(errors.New("e"))
	r.Exit(out.Name(), nil)
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatalf("Exit outside a daemon removed the file: %v", err)
	}
	if want := "vmfs: warning: w1\nvmfs: i1\n"; string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
}
