package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/overlay"
	"github.com/vmfs/vmfs/internal/view"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
)

func overlayFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "overlay", Usage: "directory of the copy-on-write overlay (default: derived from SRC and the target options, under the user's cache directory)"},
	}
}

// defaultOverlayDir is derived from the source and what shapes the files,
// so that mounting the same VM the same way finds its earlier writes.
func defaultOverlayDir(src string, bo view.BuildOptions) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the overlay (give --overlay): %w", err)
	}
	h := sha256.Sum256([]byte(absOr(src) + "\x00" + bo.To + "\x00" + bo.Format + "\x00" + bo.Subformat))
	name := translate.FileName(filepath.Base(src)) + "-" + hex.EncodeToString(h[:6])
	return filepath.Join(cache, "vmfs", "overlays", name), nil
}

// overlayFiles wraps every file of v in the overlay's writable view.
func overlayFiles(ov *overlay.Overlay, v *view.View) ([]layouts.Disk, error) {
	out := make([]layouts.Disk, len(v.Files))
	for i, f := range v.Files {
		of, err := ov.File(f.Name, f.Content)
		if err != nil {
			return nil, err
		}
		out[i] = of
	}
	return out, nil
}
