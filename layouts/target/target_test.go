package target

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

func TestCheckSubformat(t *testing.T) {
	for _, tc := range []struct {
		format, sub string
		want        string // "" when valid
	}{
		{"qcow2", "", ""},
		{"vmdk", "", ""},
		{"vmdk", "monolithicSparse", ""},
		{"vmdk", "monolithicFlat", ""},
		{"vhd", "fixed", ""},
		{"vhd", "dynamic", ""},
		{"raw", "", ""},
		{"qcow2", "fixed", `"fixed" is not a variant of qcow2 (qcow2 has none)`},
		{"vdi", "fixed", `"fixed" is not a variant of vdi (vdi has none)`},
		{"vmdk", "fixed", `"fixed" is not a variant of vmdk (known: monolithicSparse, monolithicFlat)`},
		{"vhd", "monolithicFlat", `"monolithicFlat" is not a variant of vhd (known: dynamic, fixed)`},
		{"bar", "", `"bar" is not an image format vmfs makes (known: qcow2, raw, vdi, vhd, vhdx, vmdk)`},
	} {
		err := CheckSubformat(tc.format, tc.sub)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s/%s: %v", tc.format, tc.sub, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !errors.Is(err, layouts.ErrUnsupported) {
			t.Errorf("%s/%s: error %v, want %q wrapping ErrUnsupported", tc.format, tc.sub, err, tc.want)
		}
		// Build refuses the same, before looking at the source.
		if _, err := Build(tc.format, nil, "x", Options{Subformat: tc.sub}); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Build %s/%s: error %v, want %q", tc.format, tc.sub, err, tc.want)
		}
	}
}
