// Package convert makes the guest of a vmfs mount ready for the devices
// its view gives it (virtio), in the mount's copy-on-write overlay: the
// source is never written, the conversion boots at once from the mount,
// `vmfs mount --fresh` discards it, and materialize carries it.
//
// The engine is virt-v2v-in-place (drivers, initramfs), run against the mount's own libvirt descriptor, so every
// byte it writes goes through the mount into the overlay. Before it, one
// libguestfs appliance inspects the guest (what it is, whether it can be
// converted) and, for a Linux guest, pins the names of its NICs to their
// MACs, which virt-v2v does not do, so that static addresses configured
// for ens192 still apply when the NIC appears as enp1s0.
package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/vmfs/vmfs/internal/hostfacts"
	"github.com/vmfs/vmfs/internal/mount"
)

// Options say which mount to convert and how.
type Options struct {
	Mountpoint string
	// VirtioWin is the virtio-win driver source (an ISO or a directory)
	// for a Windows guest, passed to virt-v2v as VIRTIO_WIN.
	VirtioWin string
	// NoKVM runs libguestfs's appliance under TCG (VMFS_NO_KVM=1).
	NoKVM bool
	// Progress receives one line per step, as it starts.
	Progress func(string)
	// EngineLog, when set, receives virt-v2v's whole output.
	EngineLog io.Writer
}

// Result is what a conversion did.
type Result struct {
	Mountpoint string
	Descriptor string // the libvirt XML virt-v2v read
	Guest      Inspection
	Pins       []Pin    // NIC names written into the guest
	NICNotes   []string // why other names were not
	Engine     Engine
	// Inspect is the first appliance's whole run (start, inspection,
	// NIC names); Launch the start of it alone.
	Inspect, Launch time.Duration
	Total           time.Duration
	// OverlayBefore and OverlayAfter are the overlay's allocated bytes.
	OverlayBefore, OverlayAfter int64
	Marker                      Marker
}

// target is the mount being converted, as checked.
type target struct {
	mnt     string
	status  mount.Status
	xmlPath string
	drives  []Drive
	macs    []string
}

// Run converts the guest of the mount at o.Mountpoint. A refusal (not a
// writable libvirt mount of virtio devices, the guest running, a guest
// that cannot be inspected or converted) leaves the overlay as it was.
func Run(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	tg, err := check(o.Mountpoint)
	if err != nil {
		return nil, err
	}
	if o.VirtioWin != "" {
		if _, err := os.Stat(o.VirtioWin); err != nil {
			return nil, fmt.Errorf("--virtio-win %s: %w", o.VirtioWin, errors.Unwrap(err))
		}
	}
	if err := notRunning(ctx, tg); err != nil {
		return nil, err
	}
	res := &Result{Mountpoint: tg.mnt, Descriptor: tg.xmlPath, OverlayBefore: tg.status.OverlayBytes}
	env := engineEnv(o)

	progress("starting the libguestfs appliance to inspect the guest")
	t0 := time.Now()
	fish, err := StartFish(ctx, tg.drives, false, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tg.mnt, err)
	}
	defer fish.Close()
	res.Launch = fish.Launch
	in, err := inspect(fish)
	if err != nil {
		return nil, fmt.Errorf("%s: inspecting the guest: %w", tg.mnt, err)
	}
	res.Guest = in
	if err := Decide(tg.mnt, in, o.VirtioWin); err != nil {
		return nil, err
	}
	progress(fmt.Sprintf("guest: %s (%s) on %s", in.Display(), in.Type, in.Roots[0]))
	if in.Type == "linux" {
		pins, notes, err := pinNICNames(fish, in.Roots[0], tg.macs)
		if err != nil {
			return nil, fmt.Errorf("%s: NIC names: %w", tg.mnt, err)
		}
		res.Pins, res.NICNotes = pins, notes
		for _, p := range pins {
			progress(fmt.Sprintf("NIC %s keeps the name %s (%s)", p.MAC, p.Name, p.File))
		}
	}
	if err := fish.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", tg.mnt, err)
	}
	res.Inspect = time.Since(t0)

	progress("virt-v2v-in-place -i libvirtxml " + tg.xmlPath)
	eng, err := RunV2V(ctx, tg.xmlPath, in.Roots[0], env, o.EngineLog, func(s Stage) {
		progress(fmt.Sprintf("virt-v2v [%6.1f] %s", s.Start, s.Name))
	})
	res.Engine = eng
	if err != nil {
		return res, fmt.Errorf("%s: %w (the overlay holds what was written so far; vmfs mount --fresh discards it)", tg.mnt, err)
	}
	// What the guest wrote reaches the overlay's stable storage.
	for _, d := range tg.drives {
		if err := syncFile(d.Path); err != nil {
			return res, fmt.Errorf("%s: %w", tg.mnt, err)
		}
	}
	res.Marker = Marker{
		Converted: time.Now().UTC().Truncate(time.Second), Guest: in.Display(), Type: in.Type,
		Engine: "virt-v2v-in-place", Descriptor: filepath.Base(tg.xmlPath),
		Seconds: int64(time.Since(start).Round(time.Second).Seconds()),
	}
	for _, p := range res.Pins {
		res.Marker.NICNames = append(res.Marker.NICNames, p.MAC+"="+p.Name)
	}
	if err := WriteMarker(tg.status.Overlay, res.Marker); err != nil {
		return res, fmt.Errorf("%s: %w", tg.mnt, err)
	}
	if st, ok := mount.Lookup(tg.mnt); ok {
		res.OverlayAfter = st.OverlayBytes
	}
	res.Total = time.Since(start)
	return res, nil
}

// engineEnv is what libguestfs and virt-v2v are run with: the direct
// backend (libvirt's would run QEMU as another user, to whom a mount is
// closed), TCG when KVM is hidden, and the driver source.
func engineEnv(o Options) []string {
	var env []string
	if os.Getenv("LIBGUESTFS_BACKEND") == "" {
		env = append(env, "LIBGUESTFS_BACKEND=direct")
	}
	if o.NoKVM {
		s := os.Getenv("LIBGUESTFS_BACKEND_SETTINGS")
		if !strings.Contains(s, "force_tcg") {
			if s != "" {
				s += ":"
			}
			env = append(env, "LIBGUESTFS_BACKEND_SETTINGS="+s+"force_tcg")
		}
	}
	if o.VirtioWin != "" {
		if abs, err := filepath.Abs(o.VirtioWin); err == nil {
			env = append(env, "VIRTIO_WIN="+abs)
		}
	}
	return env
}

// NoKVM says whether vmfs acts as on a host without KVM (VMFS_NO_KVM=1).
func NoKVM() bool { return os.Getenv(hostfacts.NoKVMEnv) == "1" }

// check finds the mount and its descriptor and refuses what cannot be
// converted in place.
func check(mountpoint string) (target, error) {
	mnt, err := filepath.Abs(mountpoint)
	if err != nil {
		return target{}, err
	}
	st, ok := mount.Lookup(mnt)
	switch {
	case !ok:
		return target{}, fmt.Errorf("%s: no vmfs mount recorded there (vmfs status lists them)", mountpoint)
	case !st.Alive || !st.Mounted:
		return target{}, fmt.Errorf("%s: the mount is not served any more (its vmfs process is gone): vmfs unmount it and mount again", mountpoint)
	case st.ReadOnly || st.Overlay == "":
		return target{}, fmt.Errorf("%s: mounted --read-only: a conversion writes to the guest's disks; mount it without --read-only (the writes go to the overlay, never to the source)", mountpoint)
	case st.Target != "libvirt":
		return target{}, fmt.Errorf("%s: a --to %s mount: the conversion reads a libvirt descriptor; mount with --to libvirt --devices virtio", mountpoint, st.Target)
	}
	tg := target{mnt: mnt, status: st}
	xmls, _ := filepath.Glob(filepath.Join(mnt, "*.xml"))
	if len(xmls) != 1 {
		return target{}, fmt.Errorf("%s: %d libvirt descriptors (*.xml) in the mount, one expected", mountpoint, len(xmls))
	}
	tg.xmlPath = xmls[0]
	b, err := os.ReadFile(tg.xmlPath)
	if err != nil {
		return target{}, err
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(string(b)); err != nil {
		return target{}, fmt.Errorf("%s: %v", tg.xmlPath, err)
	}
	if d.Devices == nil {
		return target{}, fmt.Errorf("%s: no devices", tg.xmlPath)
	}
	for _, dd := range d.Devices.Disks {
		if dd.Device != "" && dd.Device != "disk" {
			continue
		}
		if dd.Source == nil || dd.Source.File == nil || dd.Target == nil {
			return target{}, fmt.Errorf("%s: a disk that is not a file of the mount", tg.xmlPath)
		}
		p := dd.Source.File.File
		if filepath.Dir(p) != mnt {
			return target{}, fmt.Errorf("%s: disk %s is not a file of the mount: the conversion writes only to the mount's disks", tg.xmlPath, p)
		}
		if dd.Target.Bus != "virtio" {
			return target{}, fmt.Errorf("%s: the descriptor gives the guest a %s disk (%s): the conversion makes the guest ready for virtio; mount with --devices virtio", mountpoint, dd.Target.Bus, filepath.Base(p))
		}
		f := "raw"
		if dd.Driver != nil && dd.Driver.Type != "" {
			f = dd.Driver.Type
		}
		tg.drives = append(tg.drives, Drive{Path: p, Format: f})
	}
	if len(tg.drives) == 0 {
		return target{}, fmt.Errorf("%s: the descriptor has no disk", tg.xmlPath)
	}
	for _, n := range d.Devices.Interfaces {
		if n.Model != nil && n.Model.Type != "virtio" {
			return target{}, fmt.Errorf("%s: the descriptor gives the guest a %s NIC: the conversion makes the guest ready for virtio; mount with --devices virtio", mountpoint, n.Model.Type)
		}
		mac := ""
		if n.MAC != nil {
			mac = strings.ToLower(n.MAC.Address)
		}
		tg.macs = append(tg.macs, mac)
	}
	return tg, nil
}

// inspect asks libguestfs what the guest is.
func inspect(f *Fish) (Inspection, error) {
	roots, err := f.Do("inspect-os")
	if err != nil {
		return Inspection{}, err
	}
	in := Inspection{Roots: roots}
	if len(roots) != 1 {
		return in, nil
	}
	r := roots[0]
	for _, q := range []struct {
		cmd string
		dst *string
	}{{"inspect-get-type", &in.Type}, {"inspect-get-distro", &in.Distro}, {"inspect-get-product-name", &in.Product}} {
		if *q.dst, err = f.One(q.cmd, r); err != nil {
			return in, err
		}
	}
	for _, q := range []struct {
		cmd string
		dst *int
	}{{"inspect-get-major-version", &in.Major}, {"inspect-get-minor-version", &in.Minor}} {
		s, err := f.One(q.cmd, r)
		if err != nil {
			return in, err
		}
		if *q.dst, err = strconv.Atoi(s); err != nil {
			return in, fmt.Errorf("%s: %q is not a number", q.cmd, s)
		}
	}
	return in, nil
}

// mountGuest mounts the file systems of root (read-only unless rw), the
// shortest mountpoint first.
func mountGuest(f *Fish, root string, rw bool) error {
	lines, err := f.Do("inspect-get-mountpoints", root)
	if err != nil {
		return err
	}
	type mp struct{ dir, dev string }
	var mps []mp
	for _, l := range lines {
		dir, dev, ok := strings.Cut(l, ": ")
		if ok {
			mps = append(mps, mp{dir, dev})
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i].dir) < len(mps[j].dir) })
	for _, m := range mps {
		cmd := "mount-ro"
		if rw {
			cmd = "mount"
		}
		if _, err := f.Do(cmd, m.dev, m.dir); err != nil {
			return err
		}
	}
	return nil
}

// maxConfig bounds what is read of one network configuration file.
const maxConfig = 1 << 20

// pinNICNames reads the guest's network configuration and writes a .link
// file (or udev rule) for each name PinNames can pair with a MAC. The file
// systems are mounted read-only to read, and read-write only when there
// is something to write.
func pinNICNames(f *Fish, root string, macs []string) ([]Pin, []string, error) {
	if err := mountGuest(f, root, false); err != nil {
		return nil, nil, err
	}
	files := map[string]string{}
	for _, p := range netConfigFiles {
		if ok, err := f.Bool("is-file", p); err != nil {
			return nil, nil, err
		} else if ok {
			if files[p], err = f.ReadFile(p, maxConfig); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, d := range netConfigDirs {
		ok, err := f.Bool("is-dir", d.dir)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue
		}
		names, err := f.Do("ls", d.dir)
		if err != nil {
			return nil, nil, err
		}
		for _, n := range names {
			p := d.dir + "/" + n
			if !strings.HasSuffix(n, d.suffix) {
				continue
			}
			if ok, err := f.Bool("is-file", p, "followsymlinks:true"); err != nil {
				return nil, nil, err
			} else if !ok {
				continue
			}
			if files[p], err = f.ReadFile(p, maxConfig); err != nil {
				return nil, nil, err
			}
		}
	}
	names, err := ConfigNames(files)
	if err != nil {
		return nil, nil, err
	}
	udev := ""
	for _, c := range []struct{ path, kind string }{
		{"/usr/lib/systemd/systemd-udevd", "systemd"}, {"/lib/systemd/systemd-udevd", "systemd"},
		{"/sbin/udevd", "udev"}, {"/usr/sbin/udevd", "udev"},
	} {
		if ok, err := f.Bool("is-file", c.path, "followsymlinks:true"); err != nil {
			return nil, nil, err
		} else if ok {
			udev = c.kind
			break
		}
	}
	pins, notes := PinNames(names, macs, udev)
	if len(names) == 0 {
		notes = append(notes, "the guest's network configuration names no interface: nothing to keep")
	}
	if len(pins) == 0 {
		return nil, notes, nil
	}
	if _, err := f.Do("umount-all"); err != nil {
		return nil, nil, err
	}
	if err := mountGuest(f, root, true); err != nil {
		return nil, nil, err
	}
	for _, p := range pins {
		if _, err := f.Do("mkdir-p", filepath.Dir(p.File)); err != nil {
			return nil, nil, err
		}
		if err := f.WriteFile(p.File, p.Content); err != nil {
			return nil, nil, err
		}
	}
	if _, err := f.Do("umount-all"); err != nil {
		return nil, nil, err
	}
	if _, err := f.Do("sync"); err != nil {
		return nil, nil, err
	}
	return pins, notes, nil
}

// syncFile fsyncs a file of the mount: the overlay's durability point.
func syncFile(p string) error {
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = fh.Sync()
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: sync: %w", p, err)
	}
	return nil
}
