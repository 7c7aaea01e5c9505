package vdi

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/raw"
)

// TestImageUUID: the UUID read back from a synthesized header is the
// "create" UUID, a version 4 UUID once the little-endian fields are
// turned around, and stable across syntheses.
func TestImageUUID(t *testing.T) {
	p := filepath.Join(t.TempDir(), "src.raw")
	if err := os.WriteFile(p, bytes.Repeat([]byte("vmfs uuid "), 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 2; i++ {
		f, err := layouts.OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		src := raw.New(f)
		img, err := Synthesize(src)
		if err != nil {
			t.Fatal(err)
		}
		u, err := ImageUUID(img)
		if err != nil {
			t.Fatal(err)
		}
		src.Close()
		got = append(got, u)
	}
	if got[0] != got[1] || len(got[0]) != 36 || got[0][14] != '4' || !bytes.ContainsRune([]byte("89ab"), rune(got[0][19])) {
		t.Fatalf("UUIDs %v: want one stable version 4 UUID", got)
	}
	if _, err := ImageUUID(bytes.NewReader(make([]byte, 0x200))); !errors.Is(err, layouts.ErrWrongType) {
		t.Fatalf("zeros: %v", err)
	}
}
