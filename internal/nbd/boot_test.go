package nbd_test

import (
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
)

// TestBootFromExport: QEMU boots the boot-sector test guest (a VMware VM,
// lsilogic, BIOS) with its disk on the NBD export; the guest prints the
// sector it reads near the disk's far end.
func TestBootFromExport(t *testing.T) {
	g := testenv.Guest(t)
	exps := exports(t, g.VM(t, testenv.VMBootSector))
	addr := serve(t, exps)
	vm := testenv.Boot(t, testenv.Machine{
		Firmware: testenv.BIOS,
		Accel:    testenv.AccelTiny(),
		Disks:    []testenv.Disk{{Path: "nbd://" + addr + "/" + exps[0].Name(), Bus: "lsilogic", ReadOnly: true}},
	})
	d := vm.WaitFor(t, testenv.BootSectorEnd, testenv.BootTimeout())
	if want := testenv.BootSectorRead + g.BootSectorText; !strings.Contains(vm.Output(), want) {
		t.Fatalf("serial lacks %q:\n%s", want, vm.Output())
	}
	t.Logf("boot sector done %v after QEMU started", d)
}
