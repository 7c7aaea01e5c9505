package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/hostfacts"
	"github.com/vmfs/vmfs/internal/materialize"
	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/formats"
	"github.com/vmfs/vmfs/layouts/target"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/targets"
)

// translateFlags are shared by mount and materialize.
func translateFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "to", Value: "libvirt", Usage: targets.Help()},
		&cli.StringFlag{Name: "format", Usage: "disk image format: " + strings.Join(target.Formats(), ", ") + " (default: the target's)"},
		&cli.StringFlag{Name: "subformat", Usage: "image variant: " + formats.SubformatHelp()},
		&cli.StringFlag{Name: "devices", Value: "preserve", Usage: "device mapping: preserve, virtio or compat"},
		&cli.StringSliceFlag{Name: "network-map", Usage: "rename a source network: SRC=DST (repeatable)"},
		&cli.StringFlag{Name: "domain-type", Usage: "libvirt domain type: kvm or qemu (software emulation) (default: mount: kvm where this host's /dev/kvm works, else qemu; materialize: kvm)"},
		&cli.StringFlag{Name: "network-fallback", Usage: "user: NICs whose libvirt network is missing on this host use user-mode networking"},
		&cli.IntFlag{Name: "vmid", Usage: "proxmox: the VM id, 100..999999999", DefaultText: "100"},
		&cli.StringFlag{Name: "storage", Usage: "proxmox: the storage the disks are imported onto", DefaultText: "local-lvm"},
		&cli.StringFlag{Name: "export-url", Usage: "kubevirt: the vmfs HTTPS export the DataVolumes import from, https://HOST:PORT[/PATH]", DefaultText: "https://vmfs.vmfs.svc:8443"},
		&cli.StringFlag{Name: "cert-configmap", Usage: "kubevirt: the ConfigMap holding the export's CA", DefaultText: "vmfs-ca"},
		&cli.StringFlag{Name: "token-secret", Usage: "kubevirt: the Secret holding the export's token header", DefaultText: "vmfs-token"},
		&cli.StringFlag{Name: "namespace", Usage: "kubevirt: the namespace of the VM and its DataVolumes (default: kubectl's)"},
		&cli.StringFlag{Name: "storage-class", Usage: "kubevirt: the StorageClass of the volumes (default: the cluster's)"},
		&cli.BoolFlag{Name: "upload", Usage: "kubevirt: the DataVolumes wait for virtctl image-upload instead of importing from the export"},
		&cli.StringSliceFlag{Name: "allow-path", Usage: "let disk references reach files under DIR (repeatable)"},
		allowDeviceFlag(),
	}, append(remoteFlags(), vsphereSourceFlags()...)...)
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
			return nil, usageError{error: fmt.Errorf("--allow-device %w", pathError(d, err))}
		}
		if st.Mode()&os.ModeDevice == 0 {
			return nil, usagef("--allow-device %s: not a device file", d)
		}
		out = append(out, abs)
	}
	return out, nil
}

// sessionOptions parses the flags mount and materialize share into the
// options of a session (its Dir is the command's to set).
func sessionOptions(c *cli.Context) (session.Options, error) {
	topts := translate.Options{
		Devices:         c.String("devices"),
		NetworkMap:      map[string]string{},
		DomainType:      c.String("domain-type"),
		NetworkFallback: c.String("network-fallback"),
		VMID:            c.Int("vmid"),
		Storage:         c.String("storage"),
		ExportURL:       c.String("export-url"),
		CertConfigMap:   c.String("cert-configmap"),
		TokenSecret:     c.String("token-secret"),
		Namespace:       c.String("namespace"),
		StorageClass:    c.String("storage-class"),
		Upload:          c.Bool("upload"),
	}
	if c.IsSet("vmid") && topts.VMID == 0 {
		return session.Options{}, usagef("--vmid: 0 is not between %d and %d", translate.MinVMID, translate.MaxVMID)
	}
	if err := topts.Check(); err != nil {
		return session.Options{}, usageError{error: err}
	}
	for _, m := range c.StringSlice("network-map") {
		src, dst, ok := strings.Cut(m, "=")
		if !ok || src == "" || dst == "" {
			return session.Options{}, usagef("--network-map: %q is not SRC=DST", m)
		}
		topts.NetworkMap[src] = dst
	}
	devs, err := allowDevices(c)
	if err != nil {
		return session.Options{}, err
	}
	env := &layouts.Env{AllowDevices: devs}
	for _, d := range c.StringSlice("allow-path") {
		abs, err := filepath.Abs(d)
		if err != nil {
			return session.Options{}, fmt.Errorf("--allow-path %s: %w", d, err)
		}
		env.AllowDirs = append(env.AllowDirs, abs)
	}
	ro, err := remoteOptions(c)
	if err == nil {
		err = vsphereSourceOptions(c, &ro)
	}
	if err != nil {
		return session.Options{}, err
	}
	return session.Options{
		To:        c.String("to"),
		Format:    c.String("format"),
		Subformat: c.String("subformat"),
		Env:       env,
		Translate: topts,
		Remote:    ro,
	}, nil
}

// hostFacts probes what this host offers the output of a target whose
// networks are this host's libvirt networks: a mount's host runs it (KVM
// for the domain type, libvirt's networks); a materialized machine
// usually runs elsewhere, so only an explicit --network-fallback has its
// networks checked here.
func hostFacts(ctx context.Context, o session.Options, mount bool) *translate.Host {
	t, err := targets.Get(o.To)
	if err != nil || !t.Caps().HostNetworks {
		return nil
	}
	if !mount && o.Translate.NetworkFallback == "" {
		return nil
	}
	return hostfacts.Probe(ctx, mount, true, os.Getenv)
}

// checkGlobalFlags checks the flags given before the command.
func checkGlobalFlags(c *cli.Context) error {
	switch lvl := c.String("log-level"); strings.ToLower(lvl) {
	case "debug", "info", "warn", "error":
	default:
		return usagef("--log-level: %q is not debug, info, warn or error", lvl)
	}
	return nil
}

// checkFlags checks every flag c's command takes, before anything is
// opened: a wrong command line is a usage error however far the command
// would have gone.
func checkFlags(c *cli.Context) error {
	if hasFlag(c, "to") && (c.String("to") != "" || c.Command.Name != "inspect") {
		t, err := targets.Get(c.String("to"))
		if err != nil {
			return usagef("--to: %w", err)
		}
		format := c.String("format")
		if format == "" {
			format = t.DefaultFormat()
		} else if err := target.CheckFormat(format); err != nil {
			return usagef("--format: %w", err)
		}
		if err := target.CheckSubformat(format, c.String("subformat")); err != nil {
			return usagef("--subformat: %w", err)
		}
		if err := target.CheckOneFile(format, c.String("subformat"), t.Caps().OneFilePerDisk); err != nil {
			return usagef("--subformat: --to %s: %w", t.Name(), err)
		}
		if _, err := sessionOptions(c); err != nil {
			return err
		}
	}
	if hasFlag(c, "allow-path") {
		if err := checkAllowPaths(c.StringSlice("allow-path")); err != nil {
			return err
		}
	}
	if hasFlag(c, "jobs") {
		if j := c.Int("jobs"); j < 1 || j > materialize.MaxWorkers {
			return usagef("--jobs: %d is not from 1 to %d", j, materialize.MaxWorkers)
		}
	}
	if hasFlag(c, "progress") {
		switch p := c.String("progress"); p {
		case "auto", "bar", "json", "none":
		default:
			return usagef("--progress: %q is not auto, bar, json or none", p)
		}
	}
	return nil
}

// checkAllowPaths: each --allow-path must be a directory.
func checkAllowPaths(dirs []string) error {
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil {
			return usageError{error: fmt.Errorf("--allow-path %v", pathError(d, err))}
		}
		if !st.IsDir() {
			return usagef("--allow-path %s: not a directory", d)
		}
	}
	return nil
}

// hasFlag says whether c's command takes the flag name.
func hasFlag(c *cli.Context, name string) bool {
	if c.Command == nil {
		return false
	}
	for _, f := range c.Command.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}
