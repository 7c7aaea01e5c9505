package probe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

func TestProbeRefusesKnownUnsupported(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"parallels", "WithoutFreeSpace" + strings.Repeat("\x00", 600), "Parallels"},
		{"parallels-xml", "<?xml version='1.0'?>\n<Parallels_disk_image Version=\"1.0\">", "Parallels"},
		{"qed", "QED\x00" + strings.Repeat("\x00", 600), "QED"},
		{"gzip", "\x1f\x8b\x08\x00" + strings.Repeat("\x00", 600), "gzip"},
		{"xz", "\xfd7zXZ\x00" + strings.Repeat("\x00", 600), "xz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			os.WriteFile(p, []byte(tc.content), 0o644)
			d, err := Open(p, nil)
			if err == nil {
				d.Close()
				t.Fatal("opened as a disk")
			}
			if !errors.Is(err, layouts.ErrUnsupported) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %q: want ErrUnsupported naming %q and the file", err, tc.want)
			}
		})
	}
	// Anything else is raw, also an empty file.
	for _, content := range []string{"", "\xeb\x63\x90" + strings.Repeat("\x00", 509) + "\x55\xaa"} {
		p := filepath.Join(dir, "plain")
		os.WriteFile(p, []byte(content), 0o644)
		d, err := Open(p, nil)
		if err != nil {
			t.Fatalf("raw: %v", err)
		}
		if d.Format() != "raw" || d.Size() != int64(len(content)) {
			t.Errorf("format %s size %d", d.Format(), d.Size())
		}
		d.Close()
	}
}
