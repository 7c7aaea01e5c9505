package convert

import (
	"fmt"
	"strings"
)

// Inspection is what libguestfs found on the guest's disks, the facts the
// decision to convert rests on.
type Inspection struct {
	// Roots are the operating systems found (inspect-os), by root device.
	Roots []string
	// Type is inspect-get-type of the one root: linux, windows, ...
	Type string
	// Distro, Product, Major and Minor name it (inspect-get-distro,
	// -product-name, -major-version, -minor-version).
	Distro  string
	Product string
	Major   int
	Minor   int
}

// Decide says whether the guest inspected can be converted for the
// mount's virtio devices: nil when it can. virtioWin is the --virtio-win
// driver source ("" when none was given). The errors say what is missing
// and what to do instead.
func Decide(mnt string, in Inspection, virtioWin string) error {
	switch len(in.Roots) {
	case 0:
		return fmt.Errorf("%s: cannot convert: libguestfs found no operating system on the guest's disks (inspection found no root file system), so there is nothing to make ready for virtio", mnt)
	case 1:
	default:
		return fmt.Errorf("%s: cannot convert: the guest's disks hold %d operating systems (%s); converting a multi-boot guest is not supported",
			mnt, len(in.Roots), strings.Join(in.Roots, ", "))
	}
	switch in.Type {
	case "linux":
		return nil
	case "windows":
		if virtioWin == "" {
			return fmt.Errorf("%s: cannot convert %s for virtio: Windows has no virtio drivers of its own and no driver source was given; pass --virtio-win ISO|DIR (the virtio-win drivers), or mount the guest with --devices compat (SATA disks, e1000e NIC), which Windows drives as it is",
				mnt, in.name())
		}
		return nil
	default:
		return fmt.Errorf("%s: cannot convert %s: virt-v2v converts Linux and Windows guests only", mnt, in.name())
	}
}

// Display names the guest for people: its product name, with the
// distribution before it when the product is a bare version (Debian's
// "12.15").
func (in Inspection) Display() string {
	p := in.Product
	if p == "" || p == "unknown" {
		return in.Distro
	}
	if p[0] >= '0' && p[0] <= '9' && in.Distro != "" {
		return in.Distro + " " + p
	}
	return p
}

// name is how the guest is called in messages.
func (in Inspection) name() string {
	if in.Product != "" && in.Product != "unknown" {
		return fmt.Sprintf("%q", in.Product)
	}
	if in.Distro != "" && in.Distro != "unknown" {
		return fmt.Sprintf("the %s guest (%s %d.%d)", in.Type, in.Distro, in.Major, in.Minor)
	}
	return fmt.Sprintf("the %s guest", in.Type)
}
