package translate

import (
	"slices"
	"testing"
)

func TestOptionsCheck(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want string // "" : accepted
	}{
		{Options{Devices: "preserve"}, ""},
		{Options{Devices: "virtio", DomainType: "kvm", NetworkFallback: "user"}, ""},
		{Options{Devices: "compat", DomainType: "qemu"}, ""},
		{Options{}, `--devices: "" is not one of preserve, virtio, compat`},
		{Options{Devices: "fast"}, `--devices: "fast" is not one of preserve, virtio, compat`},
		{Options{Devices: "preserve", DomainType: "xen"}, `--domain-type: "xen" is not kvm or qemu`},
		{Options{Devices: "preserve", NetworkFallback: "nat"}, `--network-fallback: "nat" is not user`},
	} {
		err := c.opts.Check()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.opts, err)
		case c.want != "" && (err == nil || err.Error() != c.want):
			t.Errorf("%+v: %v, want %q", c.opts, err, c.want)
		}
	}
}

func TestTakes(t *testing.T) {
	for _, c := range []struct {
		caps Caps
		want []Option
	}{
		{Caps{}, []Option{OptDevices, OptNetworkMap}},
		{Caps{FixedDevices: "one set", NoNetworkNames: "none"}, nil},
		{Caps{DomainType: true, HostNetworks: true}, []Option{OptDevices, OptNetworkMap, OptDomainType, OptNetworkFallback}},
	} {
		if got := Takes(c.caps); !slices.Equal(got, c.want) {
			t.Errorf("Takes(%+v) = %v, want %v", c.caps, got, c.want)
		}
	}
}

func TestDiskName(t *testing.T) {
	if got := DiskName(&Machine{Name: "My VM"}, 2); got != "My_VM-disk2" {
		t.Errorf("DiskName = %q", got)
	}
}
