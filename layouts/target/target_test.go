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
		{"qcow2", "fixed", `qcow2 variant "fixed" is not supported (qcow2 has no variants)`},
		{"vdi", "fixed", `vdi variant "fixed" is not supported (vdi has no variants)`},
		{"vmdk", "fixed", `vmdk variant "fixed" is not supported (known: monolithicSparse, monolithicFlat)`},
		{"vhd", "monolithicFlat", `vhd variant "monolithicFlat" is not supported (known: dynamic, fixed)`},
		{"bar", "", `image format "bar" is not supported (vmfs makes qcow2, raw, vdi, vhd, vhdx, vmdk)`},
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
