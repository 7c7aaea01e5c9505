// Package servestat counts what a running `vmfs serve` does (clients,
// bytes, errors) and publishes it in a status file under the run
// directory, where `vmfs status` finds it as it finds mounts.
package servestat

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vmfs/vmfs/internal/mount"
)

// Counters are one server's figures. Every field is safe to update from
// many connections at once.
type Counters struct {
	// Clients is the number of connections open now.
	Clients atomic.Int64
	// Connections counts every connection accepted.
	Connections atomic.Int64
	// Requests counts commands (NBD) or requests (HTTP) answered.
	Requests atomic.Int64
	// BytesRead is the bytes sent to clients as data; BytesWritten the
	// bytes clients wrote (NBD into the overlay).
	BytesRead    atomic.Int64
	BytesWritten atomic.Int64
	// Errors counts requests answered with an error and connections that
	// broke the protocol; Refused counts clients turned away (no TLS,
	// bad credentials, too many connections).
	Errors  atomic.Int64
	Refused atomic.Int64
}

// Open records one connection starting; the function it returns records
// its end.
func (c *Counters) Open() (closed func()) {
	c.Connections.Add(1)
	c.Clients.Add(1)
	return func() { c.Clients.Add(-1) }
}

// Figures are a snapshot of Counters.
type Figures struct {
	Clients      int64 `json:"clients"`
	Connections  int64 `json:"connections"`
	Requests     int64 `json:"requests"`
	BytesRead    int64 `json:"bytes_read"`
	BytesWritten int64 `json:"bytes_written"`
	Errors       int64 `json:"errors"`
	Refused      int64 `json:"refused"`
}

// Snapshot reads every counter.
func (c *Counters) Snapshot() Figures {
	return Figures{
		Clients: c.Clients.Load(), Connections: c.Connections.Load(), Requests: c.Requests.Load(),
		BytesRead: c.BytesRead.Load(), BytesWritten: c.BytesWritten.Load(),
		Errors: c.Errors.Load(), Refused: c.Refused.Load(),
	}
}

// Listener is one protocol a serve listens with.
type Listener struct {
	// Protocol is "nbd", "nbds" (NBD with TLS required), "https" or "http".
	Protocol string `json:"protocol"`
	Addr     string `json:"addr"`
	Figures
}

// Record is the status file of one serve process.
type Record struct {
	PID      int        `json:"pid"`
	Started  time.Time  `json:"started"`
	Updated  time.Time  `json:"updated"`
	Sources  []string   `json:"sources"`
	VMs      []string   `json:"vms"`
	Writable bool       `json:"writable"`
	Serving  []Listener `json:"listeners"`
	// Alive is set by List: the process still runs.
	Alive bool `json:"alive"`
}

// Dir holds the status files of serve processes: a folder of the run
// directory of mounts (mount.RegistryDir), whose own files it leaves be.
func Dir() string { return filepath.Join(mount.RegistryDir(), "serve") }

// Path is the status file of process pid.
func Path(pid int) string { return filepath.Join(Dir(), fmt.Sprintf("%d.json", pid)) }

// Write replaces the status file of r.PID, atomically.
func Write(r Record) error {
	if err := os.MkdirAll(Dir(), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	p := Path(r.PID)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// Remove deletes the status file of pid.
func Remove(pid int) { os.Remove(Path(pid)) }

// List reads every status file, telling which processes still run; the
// files of processes gone are removed.
func List() ([]Record, error) {
	ents, err := os.ReadDir(Dir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(Dir(), e.Name()))
		if err != nil {
			continue
		}
		var r Record
		if json.Unmarshal(b, &r) != nil {
			continue
		}
		r.Alive = mount.ProcessAlive(r.PID)
		if !r.Alive {
			Remove(r.PID)
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}
