package convert

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// The output of virt-v2v-in-place 2.2.0 converting the Debian 12 test
// guest (testdata/convert-guest) on a vmfs mount, and its refusal of the
// busybox test guest, as they were printed.
const (
	v2vConverted = `[   0.0] Setting up the source: -i libvirtxml /tmp/w19/deb/mnt/debian12.xml
[   1.0] Opening the source
[  22.0] Inspecting the source
[  42.6] Checking for sufficient free disk space in the guest
[  42.6] Converting 12.15 to run on KVM
virt-v2v-in-place: warning: could not determine a way to update the configuration of Grub2
virt-v2v-in-place: The QEMU Guest Agent will be installed for this guest at first boot.
virt-v2v-in-place: This guest has virtio drivers installed.
[ 142.6] Mapping filesystem data to avoid copying unused and blank areas
[ 146.1] Closing the overlay
[ 146.4] Assigning disks to buses
[ 146.4] Checking if the guest needs BIOS or UEFI to boot
[ 146.4] Finishing off
`
	v2vRefused = `[   0.1] Setting up the source: -i libvirtxml mnt/vmfs-test-linux-bios.xml
[   1.1] Opening the source
[  31.1] Inspecting the source
virt-v2v-in-place: error: inspection could not detect the source guest (or physical machine).

Assuming that you are running virt-v2v/virt-p2v on a source which is supported (and not, for example, a blank disk), then this should not happen.

No root device found in this operating system image.

If reporting bugs, run virt-v2v-in-place with debugging enabled and include the complete output:

  virt-v2v-in-place -v -x [...]
`
)

func parse(out string, total time.Duration) parser {
	var p parser
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		p.line(l)
	}
	p.finish(total)
	return p
}

func TestParseV2V(t *testing.T) {
	p := parse(v2vConverted, 146500*time.Millisecond)
	var names []string
	var took []time.Duration
	for _, s := range p.e.Stages {
		names = append(names, s.Name)
		took = append(took, s.Took.Round(100*time.Millisecond))
	}
	wantNames := []string{"Setting up the source: -i libvirtxml /tmp/w19/deb/mnt/debian12.xml", "Opening the source",
		"Inspecting the source", "Checking for sufficient free disk space in the guest", "Converting 12.15 to run on KVM",
		"Mapping filesystem data to avoid copying unused and blank areas", "Closing the overlay", "Assigning disks to buses",
		"Checking if the guest needs BIOS or UEFI to boot", "Finishing off"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("stages %q", names)
	}
	wantTook := []time.Duration{time.Second, 21 * time.Second, 20600 * time.Millisecond, 0, 100 * time.Second,
		3500 * time.Millisecond, 300 * time.Millisecond, 0, 0, 100 * time.Millisecond}
	if !reflect.DeepEqual(took, wantTook) {
		t.Errorf("durations %v, want %v", took, wantTook)
	}
	if !reflect.DeepEqual(p.e.Warnings, []string{"could not determine a way to update the configuration of Grub2"}) {
		t.Errorf("warnings %q", p.e.Warnings)
	}
	if !reflect.DeepEqual(p.e.Notes, []string{"The QEMU Guest Agent will be installed for this guest at first boot.", "This guest has virtio drivers installed."}) {
		t.Errorf("notes %q", p.e.Notes)
	}
	if p.errorText() != "" {
		t.Errorf("an error in a successful run: %q", p.errorText())
	}

	p = parse(v2vRefused, 37*time.Second)
	want := "inspection could not detect the source guest (or physical machine). Assuming that you are running virt-v2v/virt-p2v on a source which is supported (and not, for example, a blank disk), then this should not happen. No root device found in this operating system image."
	if got := p.errorText(); got != want {
		t.Errorf("error\n%q, want\n%q", got, want)
	}
	if n := len(p.e.Stages); n != 3 || p.e.Stages[2].Took.Round(100*time.Millisecond) != 5900*time.Millisecond {
		t.Errorf("stages %+v", p.e.Stages)
	}
}

// A wrapped warning is one warning.
func TestParseV2VContinuation(t *testing.T) {
	p := parse("virt-v2v-in-place: warning: the first line\n  and its continuation\n\n[ 1.0] Next\n", time.Second)
	if !reflect.DeepEqual(p.e.Warnings, []string{"the first line and its continuation"}) {
		t.Errorf("warnings %q", p.e.Warnings)
	}
}
