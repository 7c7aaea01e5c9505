package kubevirt

import (
	"strconv"
	"strings"

	"github.com/vmfs/vmfs/translate"
)

// maxLabel is the length of a DNS-1123 label.
const maxLabel = 63

// ObjectName is a VM name as a Kubernetes object name takes it, a
// DNS-1123 label: lowercase letters and digits, every other run of
// characters one '-', no '-' at either end, at most 63 characters; "vm"
// when nothing is left. A valid label is kept as it is.
func ObjectName(s string) string {
	if translate.IsDNSLabel(s) {
		return s
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if b.Len() >= maxLabel {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if out == "" {
		return "vm"
	}
	return out
}

// DataVolumeName is the name of the DataVolume of disk i of the VM named
// vm (an ObjectName): "<vm>-disk<i>", vm shortened so that it stays a
// label.
func DataVolumeName(vm string, i int) string {
	suffix := "-disk" + strconv.Itoa(i)
	if len(vm)+len(suffix) > maxLabel {
		vm = strings.TrimRight(vm[:maxLabel-len(suffix)], "-")
	}
	return vm + suffix
}
