package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/vmfs/vmfs/internal/overlay"
)

// MarkerName is the file in the overlay directory that says the overlay
// holds a conversion. It lives and dies with the overlay's writes: a
// remount keeps it, `--fresh` discards it with them (the overlay removes
// its "note-" files).
const MarkerName = overlay.NotePrefix + "converted.json"

// Marker is what `vmfs status` shows of a converted mount.
type Marker struct {
	Converted  time.Time `json:"converted"`
	Guest      string    `json:"guest"`
	Type       string    `json:"type"`
	Engine     string    `json:"engine"`
	Descriptor string    `json:"descriptor"`
	// NICNames are the names pinned, as MAC=name.
	NICNames []string `json:"nic_names"`
	Seconds  int64    `json:"seconds"`
}

// WriteMarker records a conversion in the overlay directory dir,
// atomically.
func WriteMarker(dir string, m Marker) error {
	if m.NICNames == nil {
		m.NICNames = []string{}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+MarkerName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("overlay %s: %w", dir, err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, MarkerName))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("overlay %s: recording the conversion: %w", dir, err)
	}
	return nil
}

// ReadMarker returns the conversion recorded in the overlay directory
// dir, or nil when there is none.
func ReadMarker(dir string) (*Marker, error) {
	if dir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, MarkerName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, MarkerName), err)
	}
	return &m, nil
}
