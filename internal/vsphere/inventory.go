package vsphere

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// VM is one virtual machine of the inventory.
type VM struct {
	Name string
	// Path is the inventory path under the datacenter's vm folder.
	Path string
	// PowerState: "poweredOn", "poweredOff" or "suspended".
	PowerState string
	Template   bool
	// VMX is the .vmx's datastore path: "[ds] folder/name.vmx".
	VMX   string
	Disks []Disk

	ref types.ManagedObjectReference
}

// Disk is one virtual disk as the inventory states it.
type Disk struct {
	Label string
	// File is the disk's datastore path: "[ds] folder/disk.vmdk" (the
	// newest file of its chain).
	File     string
	Capacity int64 // bytes
}

// PoweredOn says whether the VM runs (or is paused: suspended counts as
// off, its disks do not change).
func (v VM) PoweredOn() bool { return v.PowerState == string(types.VirtualMachinePowerStatePoweredOn) }

var vmProps = []string{"name", "runtime.powerState", "config.template", "config.files.vmPathName", "config.hardware.device"}

// VMs lists the datacenter's virtual machines, ordered by inventory path.
func (c *Client) VMs(ctx context.Context) ([]VM, error) {
	var out []VM
	err := c.call(ctx, func(ctx context.Context) error {
		f := find.NewFinder(c.vim, false)
		f.SetDatacenter(c.dc)
		list, err := f.VirtualMachineList(ctx, c.vmFolder()+"/...")
		var nf *find.NotFoundError
		if errors.As(err, &nf) {
			out = nil
			return nil
		}
		if err != nil {
			return err
		}
		out, err = c.describe(ctx, list)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: listing VMs: %w", c.loc, err)
	}
	slices.SortFunc(out, func(a, b VM) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func (c *Client) vmFolder() string { return "/" + c.dcPath + "/vm" }

// describe reads the properties of the VMs in one round trip.
func (c *Client) describe(ctx context.Context, list []*object.VirtualMachine) ([]VM, error) {
	if len(list) == 0 {
		return nil, nil
	}
	refs := make([]types.ManagedObjectReference, len(list))
	paths := map[types.ManagedObjectReference]string{}
	for i, v := range list {
		refs[i] = v.Reference()
		paths[v.Reference()] = strings.TrimPrefix(v.InventoryPath, c.vmFolder()+"/")
	}
	var mos []mo.VirtualMachine
	if err := property.DefaultCollector(c.vim).Retrieve(ctx, refs, vmProps, &mos); err != nil {
		return nil, err
	}
	out := make([]VM, 0, len(mos))
	for _, m := range mos {
		v := VM{Name: m.Name, Path: paths[m.Self], PowerState: string(m.Runtime.PowerState), ref: m.Self}
		if m.Config != nil {
			v.Template = m.Config.Template
			v.VMX = m.Config.Files.VmPathName
			v.Disks = disks(m.Config.Hardware.Device)
		}
		out = append(out, v)
	}
	return out, nil
}

// disks are the virtual disks among devices, in the order the host lists
// them.
func disks(devices []types.BaseVirtualDevice) []Disk {
	var out []Disk
	for _, d := range devices {
		vd, ok := d.(*types.VirtualDisk)
		if !ok {
			continue
		}
		disk := Disk{Capacity: vd.CapacityInBytes}
		if disk.Capacity == 0 {
			disk.Capacity = vd.CapacityInKB * 1024
		}
		if info := vd.DeviceInfo; info != nil {
			disk.Label = info.GetDescription().Label
		}
		if b, ok := vd.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
			disk.File = b.GetVirtualDeviceFileBackingInfo().FileName
		}
		out = append(out, disk)
	}
	return out
}

// FindVM finds the VM the location names: by inventory path under the vm
// folder, else, for a name without a slash, by name anywhere in it.
func (c *Client) FindVM(ctx context.Context, name string) (VM, error) {
	if name == "" {
		return VM{}, fmt.Errorf("%s: names no VM: the form is %s://USER@HOST/DATACENTER/vm/PATH", c.loc, Scheme)
	}
	var found []*object.VirtualMachine
	err := c.call(ctx, func(ctx context.Context) error {
		f := find.NewFinder(c.vim, false)
		f.SetDatacenter(c.dc)
		vm, err := f.VirtualMachine(ctx, path.Join(c.vmFolder(), name))
		if err == nil {
			found = []*object.VirtualMachine{vm}
			return nil
		}
		var nf *find.NotFoundError
		if !errors.As(err, &nf) || strings.Contains(name, "/") {
			return err
		}
		all, err := f.VirtualMachineList(ctx, c.vmFolder()+"/...")
		if errors.As(err, &nf) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, v := range all {
			if v.Name() == name {
				found = append(found, v)
			}
		}
		return nil
	})
	var nf *find.NotFoundError
	if errors.As(err, &nf) {
		err, found = nil, nil
	}
	if err != nil {
		return VM{}, fmt.Errorf("%s: finding the VM: %w", c.loc, err)
	}
	switch len(found) {
	case 0:
		return VM{}, fmt.Errorf("%s: no VM %q in datacenter %s (vmfs ls %s lists them)", c.loc, name, c.loc.Datacenter, Location{User: c.loc.User, Host: c.loc.Host, Datacenter: c.loc.Datacenter})
	case 1:
	default:
		var paths []string
		for _, v := range found {
			paths = append(paths, strings.TrimPrefix(v.InventoryPath, c.vmFolder()+"/"))
		}
		return VM{}, fmt.Errorf("%s: %d VMs are named %q (%s): name one by its path, /vm/PATH", c.loc, len(found), name, strings.Join(paths, ", "))
	}
	var vms []VM
	err = c.call(ctx, func(ctx context.Context) error {
		var err error
		vms, err = c.describe(ctx, found)
		return err
	})
	if err != nil {
		return VM{}, fmt.Errorf("%s: reading the VM: %w", c.loc, err)
	}
	if len(vms) != 1 {
		return VM{}, fmt.Errorf("%s: the VM %q went away", c.loc, name)
	}
	return vms[0], nil
}
