package vsphere

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// OpenOptions say how to open a VM.
type OpenOptions struct {
	Options
	// Snapshot lets a powered-on VM be read: a snapshot (no memory, not
	// quiesced) freezes its disks, vmfs reads those, and Close removes
	// the snapshot.
	Snapshot bool
	// Now names the snapshot (default time.Now).
	Now func() time.Time
}

// MaxVMXSize bounds the .vmx vmfs reads whole.
const MaxVMXSize = 1 << 20

// Source is one VM opened for reading.
type Source struct {
	Client *Client
	Store  *Store
	VM     VM
	// VMX is the path of the .vmx to read, in the Store's namespace.
	VMX string
	// Snapshot is the name of the snapshot vmfs took, "" for none.
	Snapshot string

	snap *types.ManagedObjectReference
}

// Open logs in, finds the VM the URL names and checks that its disks can
// be read: a powered-on VM is refused unless o.Snapshot.
func Open(ctx context.Context, raw string, o OpenOptions) (*Source, error) {
	loc, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	if loc.VM == "" {
		return nil, fmt.Errorf("%s: names no VM: the form is %s://USER@HOST/DATACENTER/vm/PATH (vmfs ls %s lists them)", loc, Scheme, loc)
	}
	c, err := Connect(ctx, loc, o.Options)
	if err != nil {
		return nil, err
	}
	s, err := open(ctx, c, loc, o)
	if err != nil {
		_ = c.Logout(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

func open(ctx context.Context, c *Client, loc Location, o OpenOptions) (*Source, error) {
	vm, err := c.FindVM(ctx, loc.VM)
	if err != nil {
		return nil, err
	}
	if vm.VMX == "" {
		return nil, fmt.Errorf("%s: the host states no .vmx for VM %s", loc, vm.Path)
	}
	vmx, err := LocalPath(vm.VMX)
	if err != nil {
		return nil, fmt.Errorf("%s: VM %s: %w", loc, vm.Path, err)
	}
	s := &Source{Client: c, Store: c.Store(), VM: vm, VMX: vmx}
	if !o.Snapshot {
		if vm.PoweredOn() {
			return nil, fmt.Errorf("%s: VM %s is powered on: its disks change under a reader; power it off, or pass --snapshot to read a snapshot vmfs takes (and removes at unmount)", loc, vm.Path)
		}
		return s, nil
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if err := s.takeSnapshot(ctx, now()); err != nil {
		return nil, err
	}
	return s, nil
}

// takeSnapshot freezes the VM's disks and makes the Store serve a .vmx
// that names the frozen files.
func (s *Source) takeSnapshot(ctx context.Context, at time.Time) error {
	c, loc := s.Client, s.Client.loc
	name := "vmfs-" + at.UTC().Format("20060102T150405Z")
	host, _ := os.Hostname()
	desc := fmt.Sprintf("taken by vmfs (pid %d on %s) to read the disks; vmfs removes it at unmount, delete it if vmfs was killed", os.Getpid(), host)
	vm := object.NewVirtualMachine(c.vim, s.VM.ref)
	var ref types.ManagedObjectReference
	err := c.call(ctx, func(ctx context.Context) error {
		task, err := vm.CreateSnapshot(ctx, name, desc, false, false)
		if err != nil {
			return err
		}
		res, err := task.WaitForResult(ctx)
		if err != nil {
			return err
		}
		r, ok := res.Result.(types.ManagedObjectReference)
		if !ok {
			return fmt.Errorf("the snapshot task returned %T", res.Result)
		}
		ref = r
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: taking a snapshot of VM %s: %w", loc, s.VM.Path, err)
	}
	s.Snapshot, s.snap = name, &ref
	c.log.Warn("took a snapshot to read the VM's frozen disks; vmfs removes it at unmount; if vmfs is killed, remove it in vSphere", "vm", s.VM.Path, "snapshot", name, "host", loc.Host)
	if err := s.freeze(ctx, ref); err != nil {
		if rerr := s.removeSnapshot(context.WithoutCancel(ctx)); rerr != nil {
			return fmt.Errorf("%w (and removing snapshot %s failed: %v)", err, name, rerr)
		}
		return err
	}
	return nil
}

// freeze reads the snapshot's disks (the files it froze) and holds a copy
// of the .vmx naming them.
func (s *Source) freeze(ctx context.Context, ref types.ManagedObjectReference) error {
	loc := s.Client.loc
	var snap mo.VirtualMachineSnapshot
	err := s.Client.call(ctx, func(ctx context.Context) error {
		return property.DefaultCollector(s.Client.vim).RetrieveOne(ctx, ref, []string{"config"}, &snap)
	})
	if err != nil {
		return fmt.Errorf("%s: reading snapshot %s: %w", loc, s.Snapshot, err)
	}
	keys, err := diskKeys(snap.Config.Hardware.Device)
	if err != nil {
		return fmt.Errorf("%s: snapshot %s: %w", loc, s.Snapshot, err)
	}
	f, err := s.Store.Open(ctx, s.VMX)
	if err != nil {
		return err
	}
	if f.Size() > MaxVMXSize {
		return fmt.Errorf("%s: %d bytes, more than a .vmx holds", Display(s.VMX), f.Size())
	}
	b := make([]byte, f.Size())
	if _, err := f.ReadRange(ctx, b, 0); err != nil && err != io.EOF {
		return err
	}
	out, err := rewriteDisks(b, keys, path.Dir(s.VMX))
	if err != nil {
		return fmt.Errorf("%s: %w", Display(s.VMX), err)
	}
	s.Store.hold(s.VMX, out)
	return nil
}

// diskKeys maps each disk's .vmx key prefix (scsi0:1, sata0:0, nvme0:0,
// ide0:1) to the namespace path of its file.
func diskKeys(devices []types.BaseVirtualDevice) (map[string]string, error) {
	ctrl := map[int32]string{}
	for _, d := range devices {
		var kind string
		switch d.(type) {
		case types.BaseVirtualSCSIController:
			kind = "scsi"
		case *types.VirtualAHCIController:
			kind = "sata"
		case *types.VirtualNVMEController:
			kind = "nvme"
		case *types.VirtualIDEController:
			kind = "ide"
		default:
			continue
		}
		c := d.(types.BaseVirtualController).GetVirtualController()
		ctrl[c.Key] = fmt.Sprintf("%s%d", kind, c.BusNumber)
	}
	out := map[string]string{}
	for _, d := range devices {
		vd, ok := d.(*types.VirtualDisk)
		if !ok {
			continue
		}
		prefix, ok := ctrl[vd.ControllerKey]
		if !ok || vd.UnitNumber == nil {
			return nil, fmt.Errorf("disk %d sits on no controller vmfs knows", vd.Key)
		}
		b, ok := vd.Backing.(types.BaseVirtualDeviceFileBackingInfo)
		if !ok {
			return nil, fmt.Errorf("disk %s:%d is not backed by a file (%T)", prefix, *vd.UnitNumber, vd.Backing)
		}
		p, err := LocalPath(b.GetVirtualDeviceFileBackingInfo().FileName)
		if err != nil {
			return nil, err
		}
		out[fmt.Sprintf("%s:%d", prefix, *vd.UnitNumber)] = p
	}
	return out, nil
}

var vmxLine = regexp.MustCompile(`^\s*([A-Za-z0-9_.:\[\]-]+)\s*=`)

// rewriteDisks sets each key's fileName in a .vmx to its file: a name
// beside the .vmx stays relative, another is an absolute namespace path,
// as ESXi writes them.
func rewriteDisks(vmx []byte, keys map[string]string, dir string) ([]byte, error) {
	done := map[string]bool{}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(vmx))
	sc.Buffer(make([]byte, 64<<10), MaxVMXSize)
	for sc.Scan() {
		line := sc.Text()
		if m := vmxLine.FindStringSubmatch(line); m != nil {
			k := strings.ToLower(m[1])
			if prefix, ok := strings.CutSuffix(k, ".filename"); ok {
				if p, ok := keys[prefix]; ok {
					ref := p
					if path.Dir(p) == dir {
						ref = path.Base(p)
					}
					line = fmt.Sprintf("%s = %q", m[1], ref)
					done[prefix] = true
				}
			}
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for k := range keys {
		if !done[k] {
			return nil, fmt.Errorf("the snapshot has a disk %s the .vmx does not name", k)
		}
	}
	return out.Bytes(), nil
}

// removeSnapshot removes the snapshot vmfs took, merging nothing into the
// running disks but what the VM wrote since.
func (s *Source) removeSnapshot(ctx context.Context) error {
	if s.snap == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	ref := *s.snap
	err := s.Client.call(ctx, func(ctx context.Context) error {
		consolidate := true
		req := types.RemoveSnapshot_Task{This: ref, RemoveChildren: false, Consolidate: &consolidate}
		res, err := methods.RemoveSnapshot_Task(ctx, s.Client.vim, &req)
		if err != nil {
			return err
		}
		return object.NewTask(s.Client.vim, res.Returnval).Wait(ctx)
	})
	if err != nil {
		return fmt.Errorf("%s: removing snapshot %s of VM %s: %w (remove it in vSphere)", s.Client.loc, s.Snapshot, s.VM.Path, err)
	}
	s.Client.log.Info("removed the snapshot vmfs took", "vm", s.VM.Path, "snapshot", s.Snapshot)
	s.snap = nil
	return nil
}

// Close removes the snapshot vmfs took, if any, and logs out.
func (s *Source) Close(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	err := s.removeSnapshot(ctx)
	if lerr := s.Client.Logout(ctx); err == nil && lerr != nil {
		s.Client.log.Debug("logging out", "err", lerr)
	}
	return err
}
