package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/hostfacts"
	"github.com/vmfs/vmfs/internal/view"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/targets"
)

// translateFlags are shared by mount and materialize.
func translateFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "to", Value: "libvirt", Usage: "target: libvirt, qemu, vmware, virtualbox, ovf, hyperv"},
		&cli.StringFlag{Name: "format", Usage: "disk image format: raw, qcow2, vmdk, vhdx, vhd, vdi (default: the target's)"},
		&cli.StringFlag{Name: "subformat", Usage: "image variant: monolithicSparse|monolithicFlat (vmdk), dynamic|fixed (vhd)"},
		&cli.StringFlag{Name: "devices", Value: "preserve", Usage: "device mapping: preserve, virtio or compat"},
		&cli.StringSliceFlag{Name: "network-map", Usage: "rename a source network: SRC=DST (repeatable)"},
		&cli.StringFlag{Name: "domain-type", Usage: "libvirt domain type: kvm or qemu (software emulation) (default: mount: kvm where this host's /dev/kvm works, else qemu; materialize: kvm)"},
		&cli.StringFlag{Name: "network-fallback", Usage: "user: NICs whose libvirt network is missing on this host use user-mode networking"},
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
	if dt != "" && dt != "kvm" && dt != "qemu" {
		return view.BuildOptions{}, usagef("--domain-type: %q is not kvm or qemu", dt)
	}
	fallback := c.String("network-fallback")
	if fallback != "" && fallback != translate.FallbackUser {
		return view.BuildOptions{}, usagef("--network-fallback: %q is not user", fallback)
	}
	nm := map[string]string{}
	for _, m := range c.StringSlice("network-map") {
		src, dst, ok := strings.Cut(m, "=")
		if !ok || src == "" || dst == "" {
			return view.BuildOptions{}, usagef("--network-map: %q is not SRC=DST", m)
		}
		nm[src] = dst
	}
	// A subformat the format has not would be ignored: refuse it.
	if sub := c.String("subformat"); sub != "" {
		format := c.String("format")
		if format == "" {
			t, err := targets.Get(c.String("to"))
			if err != nil {
				return view.BuildOptions{}, usagef("--to: %v", err)
			}
			format = t.DefaultFormat()
		}
		if format != "vmdk" && format != "vhd" {
			return view.BuildOptions{}, usagef("--subformat %s: format %s has no subformats (vmdk: monolithicSparse, monolithicFlat; vhd: dynamic, fixed)", sub, format)
		}
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
			Translate: translate.Options{Devices: devices, NetworkMap: nm, DomainType: dt, NetworkFallback: fallback},
		},
	}, nil
}

// hostFacts probes what this host offers the output of --to to: a mount's
// host runs it (KVM for the domain type, libvirt's networks); a
// materialized machine usually runs elsewhere, so only an explicit
// --network-fallback has its networks checked here.
func hostFacts(c *cli.Context, to string, mount bool) *translate.Host {
	if !strings.EqualFold(to, "libvirt") {
		return nil
	}
	if !mount && c.String("network-fallback") == "" {
		return nil
	}
	return hostfacts.Probe(c.Context, mount, true, os.Getenv)
}
