package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/view"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
)

// translateFlags are shared by mount and materialize.
func translateFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "to", Value: "libvirt", Usage: "target: libvirt, qemu, vmware, virtualbox, ovf, hyperv"},
		&cli.StringFlag{Name: "format", Usage: "disk image format: raw, qcow2, vmdk, vhdx, vhd, vdi (default: the target's)"},
		&cli.StringFlag{Name: "subformat", Usage: "image variant: monolithicSparse|monolithicFlat (vmdk), dynamic|fixed (vhd)"},
		&cli.StringFlag{Name: "devices", Value: "preserve", Usage: "device mapping: preserve, virtio or compat"},
		&cli.StringSliceFlag{Name: "network-map", Usage: "rename a source network: SRC=DST (repeatable)"},
		&cli.StringFlag{Name: "domain-type", Value: "kvm", Usage: "libvirt domain type: kvm or qemu (software emulation)"},
		&cli.StringSliceFlag{Name: "allow-path", Usage: "let disk references reach files under DIR (repeatable)"},
		allowDeviceFlag(),
	}
}

// allowDeviceFlag lets descriptors and images name a block device.
func allowDeviceFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "allow-device", Usage: "let descriptors and images name the block device DEV (repeatable)"}
}

// allowDevices are the --allow-device paths, made absolute; each must be a
// device file.
func allowDevices(c *cli.Context) ([]string, error) {
	var out []string
	for _, d := range c.StringSlice("allow-device") {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("--allow-device %s: %w", d, err)
		}
		st, err := os.Stat(abs)
		if err != nil {
			return nil, usagef("--allow-device %s: %v", d, unwrapPathErr(err))
		}
		if st.Mode()&os.ModeDevice == 0 {
			return nil, usagef("--allow-device %s: not a device file", d)
		}
		out = append(out, abs)
	}
	return out, nil
}

// buildOptions turns the shared flags into view options for dir.
func buildOptions(c *cli.Context, dir string) (view.BuildOptions, error) {
	devices := c.String("devices")
	switch devices {
	case "preserve", "virtio", "compat":
	default:
		return view.BuildOptions{}, usagef("--devices: %q is not one of preserve, virtio, compat", devices)
	}
	dt := c.String("domain-type")
	if dt != "kvm" && dt != "qemu" {
		return view.BuildOptions{}, usagef("--domain-type: %q is not kvm or qemu", dt)
	}
	nm := map[string]string{}
	for _, m := range c.StringSlice("network-map") {
		src, dst, ok := strings.Cut(m, "=")
		if !ok || src == "" || dst == "" {
			return view.BuildOptions{}, usagef("--network-map: %q is not SRC=DST", m)
		}
		nm[src] = dst
	}
	devs, err := allowDevices(c)
	if err != nil {
		return view.BuildOptions{}, err
	}
	env := &layouts.Env{AllowDevices: devs}
	for _, d := range c.StringSlice("allow-path") {
		abs, err := filepath.Abs(d)
		if err != nil {
			return view.BuildOptions{}, fmt.Errorf("--allow-path %s: %w", d, err)
		}
		env.AllowDirs = append(env.AllowDirs, abs)
	}
	return view.BuildOptions{
		To: c.String("to"),
		Options: view.Options{
			Format:    c.String("format"),
			Subformat: c.String("subformat"),
			Dir:       dir,
			Env:       env,
			Translate: translate.Options{Devices: devices, NetworkMap: nm, DomainType: dt},
		},
	}, nil
}
