package translate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadDescriptor(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "vm.vmx")
	if err := os.WriteFile(small, []byte("displayName = \"vm\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.vmx")
	if err := os.WriteFile(big, make([]byte, 101), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       string // "" for success
		pathErr    bool
	}{
		{"small", small, "", false},
		{"directory", dir, "is a directory", false},
		{"too large", big, "101 bytes is too large for a .vmx (limit 100)", false},
		// A file whose size says nothing (a device that never ends) is
		// still read no further than the limit.
		{"endless", "/dev/zero", "more than 100 bytes is too large for a .vmx (limit 100)", false},
		{"missing", filepath.Join(dir, "nope.vmx"), "no such file or directory", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ReadDescriptor(tc.path, 100, "a .vmx")
			if tc.want == "" {
				if err != nil || len(b) == 0 {
					t.Fatalf("ReadDescriptor = %d bytes, %v", len(b), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadDescriptor = %v, want %q", err, tc.want)
			}
			var pe *os.PathError
			if errors.As(err, &pe) != tc.pathErr {
				t.Errorf("path error %v, want %v", errors.As(err, &pe), tc.pathErr)
			}
			msg := DescriptorError("vmx", tc.path, err).Error()
			if strings.Count(msg, tc.path) != 1 || !strings.HasPrefix(msg, "vmx: ") {
				t.Errorf("DescriptorError = %q: want the prefix and the path once", msg)
			}
		})
	}
}
