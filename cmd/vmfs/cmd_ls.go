package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/remote"
	"github.com/vmfs/vmfs/internal/units"
	"github.com/vmfs/vmfs/internal/vsphere"
)

// vsphereFlags are the flags a vsphere:// source takes: where the
// password is (never the password itself) and how the host is trusted.
func vsphereFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "password-file", Usage: "vsphere://: read the password from the first line of FILE (default: $" + vsphere.PasswordEnv + ")"},
	}
}

// lsTLSFlags are the remote flags that concern ls: how the host is
// trusted.
func lsTLSFlags() []cli.Flag {
	var out []cli.Flag
	for _, f := range remoteFlags() {
		if n := f.Names()[0]; n == "thumbprint" || n == "insecure" {
			out = append(out, f)
		}
	}
	return out
}

// vsphereOptions parses the vsphere flags of c.
func vsphereOptions(c *cli.Context) (vsphere.Options, error) {
	o := vsphere.Options{Thumbprint: c.String("thumbprint"), Insecure: c.Bool("insecure")}
	if o.Thumbprint != "" {
		tp, err := vsphere.NormalizeThumbprint(o.Thumbprint)
		if err != nil {
			return o, usageError{error: err}
		}
		if o.Insecure {
			return o, usagef("--thumbprint and --insecure: give one")
		}
		o.Thumbprint = tp
	}
	pw, err := password(c)
	if err != nil {
		return o, err
	}
	o.Password = pw
	return o, nil
}

// vsphereSourceFlags are the flags of a vsphere:// SRC that every remote
// source does not take.
func vsphereSourceFlags() []cli.Flag {
	return append(vsphereFlags(),
		&cli.BoolFlag{Name: "snapshot", Usage: "vsphere://: read a powered-on VM through a snapshot vmfs takes (no memory, not quiesced) and removes at the end"},
	)
}

// vsphereSourceOptions adds to o what a vsphere:// SRC (c's first
// argument) needs: the password, looked for only then, and --snapshot.
func vsphereSourceOptions(c *cli.Context, o *remote.Options) error {
	src := c.Args().First()
	if !vsphere.IsURL(src) {
		for _, f := range []string{"password-file", "snapshot"} {
			if c.IsSet(f) {
				return usagef("--%s is for a vsphere:// SRC", f)
			}
		}
		return nil
	}
	if _, err := vsphere.ParseURL(src); err != nil {
		return usageError{error: err}
	}
	pw, err := password(c)
	if err != nil {
		return err
	}
	o.Password, o.Snapshot = pw, c.Bool("snapshot")
	return nil
}

// passwordKey keys the password in the app's metadata.
const passwordKey = "vsphere-password"

// password reads the password once per run (the flags are checked, then
// parsed again): --password-file may be a pipe, readable once.
func password(c *cli.Context) (string, error) {
	if pw, ok := c.App.Metadata[passwordKey].(string); ok {
		return pw, nil
	}
	pw, err := vsphere.Password(os.Getenv, c.String("password-file"))
	if err != nil {
		return "", err
	}
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	c.App.Metadata[passwordKey] = pw
	return pw, nil
}

// daemonArgs are the arguments of the --daemon child: the password read
// here goes to it in its environment (readable by its user alone), never
// in its arguments, and --password-file is left out, as the file may have
// been a pipe that is now empty.
func daemonArgs(args []string, pw string) ([]string, error) {
	if pw == "" {
		return args, nil
	}
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "password-file" {
			if !hasValue {
				i++ // its value
			}
			continue
		}
		out = append(out, a)
	}
	if err := os.Setenv(vsphere.PasswordEnv, pw); err != nil {
		return nil, err
	}
	return out, nil
}

// lsOptions are the command line of ls, parsed.
type lsOptions struct {
	url      string
	vsphere  vsphere.Options
	json     bool
	logLevel string
}

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list the VMs of a vSphere datacenter: power state, .vmx, disks",
		ArgsUsage: "vsphere://USER@HOST[:PORT]/DATACENTER",
		Flags: append(append(vsphereFlags(), lsTLSFlags()...),
			&cli.BoolFlag{Name: "json", Usage: "machine-readable output"},
		),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "vsphere://USER@HOST[:PORT]/DATACENTER"); err != nil {
				return err
			}
			u := c.Args().First()
			if _, err := vsphere.ParseURL(u); err != nil {
				return usageError{error: err}
			}
			vo, err := vsphereOptions(c)
			if err != nil {
				return err
			}
			return runLs(c.Context, os.Stdout, lsOptions{url: u, vsphere: vo, json: c.Bool("json"), logLevel: c.String("log-level")})
		},
	}
}

// runLs lists the datacenter's VMs (or the one VM the URL names).
func runLs(ctx context.Context, w io.Writer, o lsOptions) error {
	loc, err := vsphere.ParseURL(o.url)
	if err != nil {
		return err
	}
	o.vsphere.Logger = newLogger(o.logLevel)
	c, err := vsphere.Connect(ctx, loc, o.vsphere)
	if err != nil {
		return err
	}
	defer c.Logout(ctx)
	var vms []vsphere.VM
	if loc.VM != "" {
		vm, err := c.FindVM(ctx, loc.VM)
		if err != nil {
			return err
		}
		vms = []vsphere.VM{vm}
	} else if vms, err = c.VMs(ctx); err != nil {
		return err
	}
	if o.json {
		doc := lsJSON{SchemaVersion: schemaVersion, Source: loc.String(), VMs: []lsVM{}}
		for _, v := range vms {
			j := lsVM{Name: v.Name, Path: v.Path, PowerState: v.PowerState, Template: v.Template, VMX: v.VMX, URL: vmURL(loc, v), Disks: []lsDisk{}}
			for _, d := range v.Disks {
				j.Disks = append(j.Disks, lsDisk{Label: d.Label, File: d.File, Capacity: d.Capacity})
			}
			doc.VMs = append(doc.VMs, j)
		}
		return writeJSON(w, doc)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VM\tPOWER\tDISKS\tVMX")
	for _, v := range vms {
		var ds []string
		for _, d := range v.Disks {
			ds = append(ds, fmt.Sprintf("%s (%s)", d.File, units.Bytes(d.Capacity)))
		}
		if len(ds) == 0 {
			ds = []string{"-"}
		}
		power := v.PowerState
		if v.Template {
			power += ", template"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Path, power, strings.Join(ds, ", "), v.VMX)
	}
	return tw.Flush()
}

// vmURL is the URL that mounts v.
func vmURL(loc vsphere.Location, v vsphere.VM) string {
	loc.VM = v.Path
	return loc.String()
}

// lsJSON is ls's --json document.
type lsJSON struct {
	SchemaVersion int    `json:"schema_version"`
	Source        string `json:"source"`
	VMs           []lsVM `json:"vms"`
}

type lsVM struct {
	Name       string   `json:"name"`
	Path       string   `json:"path"`
	URL        string   `json:"url"`
	PowerState string   `json:"power_state"`
	Template   bool     `json:"template"`
	VMX        string   `json:"vmx"`
	Disks      []lsDisk `json:"disks"`
}

type lsDisk struct {
	Label    string `json:"label"`
	File     string `json:"file"`
	Capacity int64  `json:"capacity"`
}
