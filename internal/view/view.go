// Package view assembles the target VM that vmfs shows: the generated
// descriptor files plus one synthesized image per source disk. The same
// value feeds the FUSE mount and materialize, so what boots from the mount
// is byte for byte what cutover writes.
package view

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmfs/vmfs/internal/viewfile"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/bootfacts"
	"github.com/vmfs/vmfs/layouts/formats"
	"github.com/vmfs/vmfs/layouts/probe"
	"github.com/vmfs/vmfs/layouts/target"
	"github.com/vmfs/vmfs/translate"
)

// Options say what to build.
type Options struct {
	// Format of the disk images; "" is the target's default.
	Format string
	// Subformat of the disk images ("monolithicFlat", "fixed" ...).
	Subformat string
	// Dir is the absolute directory in which the target will see the
	// files: the mountpoint, or materialize's destination.
	Dir string
	// Env is the path policy for references inside source disks.
	Env *layouts.Env
	// Translate steers the device mapping.
	Translate translate.Options
	// BootFacts, when set, reads what the partition table of disk i (the
	// machine's index) says about booting it.
	BootFacts func(i int, d layouts.Disk) (bootfacts.Facts, error)
	// Opened holds, by the machine's disk index, disks the caller opened
	// already (a bare disk, opened to make its machine), under Env; a nil
	// entry, or one past the list's end, is opened here. The view owns
	// them from New on, whether New succeeds or not.
	Opened []layouts.Disk
	// Preflight, when set, looks at the machine and its opened disks
	// (in the machine's order; nil for a missing one) before the
	// mapping, and warns on m of what a migration must know.
	Preflight func(m *translate.Machine, disks []layouts.Disk)
	// Missing are the indexes of the machine's disks whose file is not
	// there: Inspect lists them without opening them. New does not read
	// it (a machine with a missing disk fails to open it).
	Missing []int
}

// View is the target VM.
type View struct {
	Name     string
	Machine  *translate.Machine
	Target   translate.Target
	Format   string
	Files    []viewfile.File
	Warnings []translate.Warning
	// Disks are the opened source disks, in the machine's disk order.
	Disks []layouts.Disk
	// TargetDisks are the disks as the descriptors name them, in the
	// same order (what Emit was given).
	TargetDisks []translate.TargetDisk
	// Sources are the source files the view reads: the descriptor (or OVA
	// archive, or the bare disk), every disk file, VMDK extent, parent and
	// backing file. What writes into real storage must replace none of
	// them, and a mount must not hide them.
	Sources *layouts.Sources

	manifests []*Manifest
}

// Bind tells the view what is finally served for each of its files
// (contents[i] for Files[i]: the overlay's view of it, say), so that
// manifests hash the disks as they are served.
func (v *View) Bind(contents []layouts.Disk) {
	for _, m := range v.manifests {
		for i, f := range v.Files {
			if f.Disk && i < len(contents) {
				m.bind(f.Name, contents[i])
			}
		}
	}
}

// New opens the disks of m and builds the view of m for t.
func New(m *translate.Machine, t translate.Target, opts Options) (*View, error) {
	if len(m.Disks) == 0 {
		closeAll(opts.Opened)
		return nil, fmt.Errorf("%s: the machine has no disk", m.Source)
	}
	t = translate.WithOptions(t, opts.Translate)
	format := opts.Format
	if format == "" {
		format = t.DefaultFormat()
	}
	env := withSources(opts.Env)
	recordDescriptor(m, env)
	v := &View{Name: translate.FileName(m.Name), Machine: m, Target: t, Format: format, Sources: env.Sources}
	ok := false
	defer func() {
		if !ok {
			closeAll(opts.Opened[min(len(v.Disks), len(opts.Opened)):])
			v.Close()
		}
	}()
	if err := target.CheckOneFile(format, opts.Subformat, t.Caps().OneFilePerDisk); err != nil {
		return nil, fmt.Errorf("--to %s: %w", t.Name(), err)
	}
	var tdisks []translate.TargetDisk
	for i, d := range m.Disks {
		var disk layouts.Disk
		if i < len(opts.Opened) && opts.Opened[i] != nil {
			disk = opts.Opened[i]
			sizeWarning(m, d, disk)
		} else {
			var err error
			if disk, err = openMachineDisk(m, d, env); err != nil {
				return nil, err
			}
		}
		v.Disks = append(v.Disks, disk)
		base := t.DiskName(m, i)
		files, err := target.Build(format, disk, filepath.Join(opts.Dir, base), target.Options{
			AdapterType: translate.VMDKAdapter(d),
			Subformat:   opts.Subformat,
		})
		if err != nil {
			return nil, diskError(d.Path, err)
		}
		ff, _ := formats.ByName(format)
		td := translate.TargetDisk{Format: format, QEMUFormat: ff.QEMUName(), OVFFormat: ff.OVFURI, Size: disk.Size()}
		for _, f := range files {
			name := base + f.Suffix
			if f.Primary {
				td.Path = filepath.Join(opts.Dir, name)
				if ff.Identity != nil {
					// A .vbox names a VDI by its header's UUID.
					if u, ok := ff.Identity(f.Content); ok {
						td.UUID = u
					}
				}
			}
			v.Files = append(v.Files, viewfile.File{Name: name, Content: f.Content, Mode: 0o600, Disk: true})
		}
		if opts.BootFacts != nil {
			bf, err := opts.BootFacts(i, disk)
			if err != nil {
				return nil, diskError(d.Path, err)
			}
			td.Boot = bf
		}
		tdisks = append(tdisks, td)
	}
	if opts.Preflight != nil {
		opts.Preflight(m, v.Disks)
	}
	translate.SettleFirmware(m, tdisks)
	v.TargetDisks = tdisks
	outs, warns, err := t.Emit(m, tdisks, opts.Translate)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Source, err)
	}
	v.Warnings = append(append([]translate.Warning(nil), m.Warnings...), warns...)
	var descs []viewfile.File
	for _, o := range outs {
		mode := o.Mode
		if mode == 0 {
			mode = 0o600
		}
		var content layouts.Disk = layouts.Bytes("text", o.Data)
		if o.DiskDigests {
			var names []string
			var disks []layouts.Disk
			for _, f := range v.Files {
				if f.Disk {
					names = append(names, f.Name)
					disks = append(disks, f.Content)
				}
			}
			m := newManifest(o.Data, names, disks)
			v.manifests = append(v.manifests, m)
			content = m
		}
		descs = append(descs, viewfile.File{Name: o.Name, Content: content, Mode: mode})
	}
	if len(v.Warnings) > 0 {
		descs = append(descs, viewfile.File{Name: WarningsName(v.Name), Content: layouts.Bytes("text", []byte(Report(v.Warnings))), Mode: 0o600})
	}
	v.Files = append(descs, v.Files...)
	ok = true
	return v, nil
}

// WarningsName is the file of a view named name that lists its warnings.
func WarningsName(name string) string { return name + ".warnings.txt" }

// Report renders warnings one per line.
func Report(ws []translate.Warning) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// openMachineDisk opens disk d of m. A disk named by a VM directory's
// descriptor (.vmx, .vbox, .ovf) is a reference like any other: it must
// stay inside the descriptor's directory or one of env's allowed
// directories and be a regular file, as the extents and parents the disk
// itself names must.
func openMachineDisk(m *translate.Machine, d translate.Disk, env *layouts.Env) (layouts.Disk, error) {
	if d.Open == nil {
		switch m.SourceFormat {
		case "vmx", "vbox", "ovf":
			// d.Path is already joined to the descriptor's directory
			// (relative to the working directory): make it absolute, so
			// that Resolve does not join it again.
			p, err := filepath.Abs(d.Path)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Path, err)
			}
			if _, err := env.Resolve(m.Source, p); err != nil {
				return nil, err
			}
			env = vmDirEnv(m, env)
		case "disk":
			// The disk named on the command line may be a block device;
			// the files it names are held to the policy.
			env = withDevice(env, d.Path)
		}
	}
	disk, err := openDisk(d, env)
	if err != nil && m.SourceFormat == "libvirt" && errors.Is(err, layouts.ErrRefused) {
		// A domain XML names its disks by absolute path: say which
		// descriptor named the refused one.
		return nil, fmt.Errorf("%s: %w", m.Source, err)
	}
	if err == nil {
		sizeWarning(m, d, disk)
	}
	return disk, err
}

// sizeWarning warns, on m, of a disk whose size guests may not read whole.
func sizeWarning(m *translate.Machine, d translate.Disk, disk layouts.Disk) {
	if code, msg, ok := probe.SizeWarning(disk); ok {
		m.Warn(code, "%s: %s", d.Path, msg)
	}
}

// withSources is env (nil: the default policy) with a set recording the
// files opened through it: env's own, or a new one.
func withSources(env *layouts.Env) *layouts.Env {
	var e layouts.Env
	if env != nil {
		e = *env
	}
	if e.Sources == nil {
		e.Sources = &layouts.Sources{}
	}
	return &e
}

// recordDescriptor adds to s the files the parsers read besides the
// disks: the descriptor or OVA archive, and an .ovf's manifest.
func recordDescriptor(m *translate.Machine, env *layouts.Env) {
	s := env.Sources
	if m.Source == "" {
		return
	}
	if env.IsRemote() {
		// By the name it is shown with: no device and inode here.
		s.AddRemote(env.Display(m.Source))
		if mf := strings.TrimSuffix(m.Source, filepath.Ext(m.Source)) + ".mf"; m.SourceFormat == "ovf" {
			if _, err := env.Stat(mf); err == nil {
				s.AddRemote(env.Display(mf))
			}
		}
		return
	}
	s.Add(m.Source) // a machine parsed from bytes has no file
	if m.SourceFormat == "ovf" {
		s.Add(strings.TrimSuffix(m.Source, filepath.Ext(m.Source)) + ".mf")
	}
}

// withDevice is env that also allows the device dev.
func withDevice(env *layouts.Env, dev string) *layouts.Env {
	var e layouts.Env
	if env != nil {
		e = *env
	}
	e.AllowDevices = append(slices.Clone(e.AllowDevices), dev)
	return &e
}

// vmDirEnv lets the disks of a machine reach the descriptor's directory:
// a snapshot layer in VM/Snapshots names its parent in VM/, which the
// descriptor could name itself. The policy is otherwise unchanged.
func vmDirEnv(m *translate.Machine, env *layouts.Env) *layouts.Env {
	if env == nil || env.AllowAny {
		return env
	}
	dir, err := filepath.Abs(filepath.Dir(m.Source))
	if err != nil {
		return env
	}
	e := *env
	e.AllowDirs = append(slices.Clone(env.AllowDirs), dir)
	return &e
}

func openDisk(d translate.Disk, env *layouts.Env) (layouts.Disk, error) {
	if d.Open != nil {
		f, err := d.Open()
		if err != nil {
			return nil, err
		}
		lf, ok := f.(layouts.File)
		if !ok {
			f.Close()
			return nil, fmt.Errorf("%s: disk opener returned %T", d.Path, f)
		}
		disk, err := probe.OpenFile(lf, env)
		if err != nil {
			lf.Close()
			return nil, err
		}
		return disk, nil
	}
	return diskOpener(env)(d.Path, env)
}

// diskOpener is how a disk named by path is opened under env:
// env.OpenDisk when set (a test counts opens so), else probing.
func diskOpener(env *layouts.Env) func(string, *layouts.Env) (layouts.Disk, error) {
	if env != nil && env.OpenDisk != nil {
		return env.OpenDisk
	}
	return probe.Open
}

// Close releases the source disks.
func (v *View) Close() error {
	var first error
	for _, d := range v.Disks {
		if err := d.Close(); err != nil && first == nil {
			first = err
		}
	}
	v.Disks = nil
	return first
}
