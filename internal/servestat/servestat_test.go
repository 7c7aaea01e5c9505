package servestat_test

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/servestat"
)

// TestStatusFiles: a record written is listed with its figures while its
// process runs, the record of a process gone is dropped (and its file
// removed), and mount.List, which reads the same run directory, sees no
// mount in them.
func TestStatusFiles(t *testing.T) {
	t.Setenv("VMFS_RUN_DIR", t.TempDir())
	var c servestat.Counters
	done := c.Open()
	c.BytesRead.Add(4096)
	c.Refused.Add(2)
	live := servestat.Record{PID: os.Getpid(), Started: time.Now(), VMs: []string{"web"},
		Serving: []servestat.Listener{{Protocol: "nbds", Addr: "127.0.0.1:10809", Figures: c.Snapshot()}}}
	done()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []servestat.Record{live, {PID: gone.Process.Pid, Started: time.Now()}} {
		if err := servestat.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	all, err := servestat.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].PID != os.Getpid() || !all[0].Alive {
		t.Fatalf("listed %+v, want the live record alone", all)
	}
	f := all[0].Serving[0]
	if f.Clients != 1 || f.Connections != 1 || f.BytesRead != 4096 || f.Refused != 2 {
		t.Errorf("figures %+v", f)
	}
	if c.Clients.Load() != 0 {
		t.Errorf("%d clients after the connection closed", c.Clients.Load())
	}
	if _, err := os.Stat(servestat.Path(gone.Process.Pid)); !os.IsNotExist(err) {
		t.Errorf("the record of a process gone is still there: %v", err)
	}
	if ms, err := mount.List(); err != nil || len(ms) != 0 {
		t.Errorf("mount.List: %v, %v; want no mounts", ms, err)
	}
	servestat.Remove(os.Getpid())
	if all, _ := servestat.List(); len(all) != 0 {
		t.Errorf("after Remove: %+v", all)
	}
}
