package view

import (
	"errors"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

func TestDiskErrorNamesThePathOnce(t *testing.T) {
	for _, tc := range []struct {
		path string
		err  error
		want string
	}{
		{"/vm/disk.vmdk", errors.New("vmdk: /vm/disk.vmdk: grain table 0 points past end of file"), "vmdk: /vm/disk.vmdk: grain table 0 points past end of file"},
		{"/vm/disk.vmdk", errors.New("partition table: bad CRC"), "/vm/disk.vmdk: partition table: bad CRC"},
	} {
		err := diskError(tc.path, tc.err)
		if err.Error() != tc.want {
			t.Errorf("%q", err)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%v does not wrap %v", err, tc.err)
		}
	}
	wrapped := diskError("/vm/d.qcow2", layouts.ErrFormat)
	if !errors.Is(wrapped, layouts.ErrFormat) {
		t.Error("sentinel lost")
	}
}
