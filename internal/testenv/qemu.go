package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/vmfs/vmfs/internal/hostfacts"
)

// Firmware a machine boots with.
type Firmware string

const (
	BIOS Firmware = "bios" // SeaBIOS
	UEFI Firmware = "efi"  // OVMF
)

// Disk is one disk of a Machine.
type Disk struct {
	Path   string
	Format string // qemu format name; default raw
	// Bus: ide, sata (AHCI), virtio (virtio-blk), virtio-scsi, pvscsi,
	// lsilogic (lsi53c895a), mptsas (mptsas1068), megasas; default sata.
	Bus      string
	ReadOnly bool
	Snapshot bool // writes go to a throw-away overlay, never to Path
}

// Machine is what Boot starts under qemu-system-x86_64.
type Machine struct {
	Firmware  Firmware
	Type      string // pc or q35; default pc for BIOS, q35 for UEFI
	MemoryMiB int    // default 256
	Accel     string // kvm or tcg; default tcg (see KVMWorks)
	Disks     []Disk // the first one boots
	NIC       string // a -nic model (e1000, virtio-net-pci, vmxnet3...); default none
	MAC       string // the NIC's MAC; default QEMU's
}

// VM is a running QEMU whose first serial port goes to a file.
type VM struct {
	Serial  string // the serial port's file
	Args    []string
	started time.Time

	cmd    *exec.Cmd
	stderr lockedBuffer
	done   chan struct{}
	err    error // set before done closes
}

var kvm struct {
	once sync.Once
	ok   bool
	why  string
}

// KVMWorks probes once whether /dev/kvm can create a VM. Where it can, tiny
// real-mode guests (the boot sector) run under KVM; real kernels still use
// TCG unless VMFS_TEST_KVM=1, as nested KVM on these machines fails for them
// (see docs/TEST-GUEST.md in the shared docs).
//
// VMFS_NO_KVM=1 hides KVM, as it does from vmfs: CI runs the suite so to
// check that every test passes on a host without KVM.
func KVMWorks() bool {
	kvm.once.Do(func() {
		if err := hostfacts.HostKVM(os.Getenv(hostfacts.NoKVMEnv) == "1"); err != nil {
			kvm.why = err.Error()
			return
		}
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			kvm.why = err.Error()
			return
		}
		defer f.Close()
		const kvmGetAPIVersion, kvmCreateVM = 0xAE00, 0xAE01
		v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
		if errno != 0 || v != 12 {
			kvm.why = fmt.Sprintf("KVM_GET_API_VERSION: %d %v", v, errno)
			return
		}
		vm, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmCreateVM, 0)
		if errno != 0 {
			kvm.why = fmt.Sprintf("KVM_CREATE_VM: %v", errno)
			return
		}
		syscall.Close(int(vm))
		kvm.ok = true
	})
	return kvm.ok
}

// KVMWhy says why KVMWorks is false ("" when it is true).
func KVMWhy() string {
	KVMWorks()
	return kvm.why
}

// AccelTiny is the accelerator for the boot sector: kvm where it works.
func AccelTiny() string {
	if KVMWorks() {
		return "kvm"
	}
	return "tcg"
}

// AccelReal is the accelerator for the real Linux guest: tcg, or kvm when
// VMFS_TEST_KVM=1 and KVM works.
func AccelReal() string {
	if os.Getenv("VMFS_TEST_KVM") == "1" && KVMWorks() {
		return "kvm"
	}
	return "tcg"
}

// OVMF returns the OVMF code and vars templates, or skips (fails in CI).
func OVMF(t testing.TB) (code, vars string) {
	t.Helper()
	for _, p := range [][2]string{
		{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
		{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
	} {
		if fileExists(p[0]) && fileExists(p[1]) {
			return p[0], p[1]
		}
	}
	Need(t, "OVMF not installed (Debian package ovmf)")
	return "", ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// QEMUArgs returns the qemu-system-x86_64 arguments for m with the serial
// port going to serial; varsCopy is a writable copy of the OVMF vars.
func QEMUArgs(m Machine, serial, ovmfCode, varsCopy string) ([]string, error) {
	if len(m.Disks) == 0 {
		return nil, fmt.Errorf("machine has no disk")
	}
	typ := m.Type
	if typ == "" {
		typ = "pc"
		if m.Firmware == UEFI {
			typ = "q35"
		}
	}
	mem := m.MemoryMiB
	if mem == 0 {
		mem = 256
	}
	accel := m.Accel
	if accel == "" {
		accel = "tcg"
	}
	args := []string{
		"-machine", typ, "-accel", accel, "-m", fmt.Sprint(mem),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:" + serial,
	}
	if m.Firmware == UEFI {
		args = append(args,
			"-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,file="+varsCopy)
	}
	ctrl := map[string]string{} // bus -> controller id
	ideUnit, ctrlUnit := 0, map[string]int{}
	for i, d := range m.Disks {
		format := d.Format
		if format == "" {
			format = "raw"
		}
		drive := fmt.Sprintf("if=none,id=d%d,format=%s,file=%s", i, format, strings.ReplaceAll(d.Path, ",", ",,"))
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		if d.Snapshot {
			drive += ",snapshot=on"
		}
		args = append(args, "-drive", drive)
		boot := ""
		if i == 0 {
			boot = ",bootindex=1"
		}
		bus := d.Bus
		if bus == "" {
			bus = "sata"
		}
		addCtrl := func(dev string) string {
			id, ok := ctrl[bus]
			if !ok {
				id = fmt.Sprintf("c%d", len(ctrl))
				ctrl[bus] = id
				args = append(args, "-device", dev+",id="+id)
			}
			return id
		}
		switch bus {
		case "ide":
			if ideUnit >= 4 {
				return nil, fmt.Errorf("too many ide disks")
			}
			if typ == "pc" {
				args = append(args, "-device", fmt.Sprintf("ide-hd,drive=d%d,bus=ide.%d,unit=%d%s", i, ideUnit/2, ideUnit%2, boot))
			} else {
				args = append(args, "-device", fmt.Sprintf("ide-hd,drive=d%d,bus=ide.%d%s", i, ideUnit, boot))
			}
			ideUnit++
		case "sata":
			id := addCtrl("ahci")
			args = append(args, "-device", fmt.Sprintf("ide-hd,drive=d%d,bus=%s.%d%s", i, id, ctrlUnit[id], boot))
			ctrlUnit[id]++
		case "virtio":
			args = append(args, "-device", fmt.Sprintf("virtio-blk-pci,drive=d%d%s", i, boot))
		case "virtio-scsi", "pvscsi", "lsilogic", "mptsas", "megasas":
			dev := map[string]string{"virtio-scsi": "virtio-scsi-pci", "pvscsi": "pvscsi",
				"lsilogic": "lsi53c895a", "mptsas": "mptsas1068", "megasas": "megasas"}[bus]
			id := addCtrl(dev)
			args = append(args, "-device", fmt.Sprintf("scsi-hd,drive=d%d,bus=%s.0,scsi-id=%d%s", i, id, ctrlUnit[id], boot))
			ctrlUnit[id]++
		default:
			return nil, fmt.Errorf("unknown disk bus %q", bus)
		}
	}
	if m.NIC != "" {
		nic := "user,model=" + m.NIC
		if m.MAC != "" {
			nic += ",mac=" + m.MAC
		}
		args = append(args, "-nic", nic)
	}
	return args, nil
}

// Boot starts m under qemu-system-x86_64 with its first serial port in a
// file. QEMU is killed in t.Cleanup if it is still running.
func Boot(t testing.TB, m Machine) *VM {
	t.Helper()
	NeedCommands(t, "qemu-system-x86_64")
	dir := t.TempDir()
	var code, vars string
	if m.Firmware == UEFI {
		var tmpl string
		code, tmpl = OVMF(t)
		vars = filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(tmpl, vars); err != nil {
			t.Fatal(err)
		}
	}
	vm := &VM{Serial: filepath.Join(dir, "serial.log"), done: make(chan struct{})}
	args, err := QEMUArgs(m, vm.Serial, code, vars)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	vm.Args = args
	vm.cmd = exec.Command("qemu-system-x86_64", args...)
	vm.cmd.Stderr = &vm.stderr
	vm.started = time.Now()
	if err := vm.cmd.Start(); err != nil {
		t.Fatalf("testenv: qemu-system-x86_64: %v", err)
	}
	go func() {
		vm.err = vm.cmd.Wait()
		close(vm.done)
	}()
	t.Cleanup(func() {
		select {
		case <-vm.done:
		default:
			_ = vm.cmd.Process.Kill()
			<-vm.done
		}
	})
	return vm
}

// lockedBuffer is a bytes.Buffer QEMU's stderr copier and the test may use
// at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Output is what the guest wrote on its serial port so far.
func (vm *VM) Output() string {
	b, _ := os.ReadFile(vm.Serial)
	return string(b)
}

// Exited reports whether QEMU has exited.
func (vm *VM) Exited() bool {
	select {
	case <-vm.done:
		return true
	default:
		return false
	}
}

// WaitFor waits until the serial output contains marker and returns the
// time since QEMU started. It fails the test if QEMU exits first, the
// timeout passes or the output shows a VMFS-GUEST-ERROR line.
func (vm *VM) WaitFor(t testing.TB, marker string, timeout time.Duration) time.Duration {
	t.Helper()
	if _, err := waitSerial(vm.Output, vm.Exited, marker, timeout); err != nil {
		t.Fatalf("qemu-system-x86_64 %s:\n%v\nstderr: %s", strings.Join(vm.Args, " "), err, vm.stderr.String())
	}
	return time.Since(vm.started)
}

// WaitExit waits for QEMU to exit (the guest powered off) and fails the
// test on a timeout or a non-zero exit.
func (vm *VM) WaitExit(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	select {
	case <-vm.done:
	case <-time.After(timeout):
		t.Fatalf("qemu still running after %v; serial:\n%s", timeout, tail(vm.Output(), 30))
	}
	if vm.err != nil {
		t.Fatalf("qemu: %v: %s", vm.err, vm.stderr.String())
	}
	return time.Since(vm.started)
}

// firmwareGaveUp are what SeaBIOS and OVMF print on the serial port when
// they find nothing to boot, so a wait ends at once instead of timing out.
var firmwareGaveUp = []struct{ text, what string }{
	{"No bootable device", "SeaBIOS found no bootable disk"},
	{"Shell> ", "OVMF found no bootable disk and started the UEFI shell"},
	{"Boot failed: not a bootable disk", "SeaBIOS: not a bootable disk"},
}

// waitSerial polls output until it holds marker. exited reports whether
// the producer is gone, after which one last read decides.
func waitSerial(output func() string, exited func() bool, marker string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		gone := exited()
		out := output()
		if strings.Contains(out, marker) {
			return time.Since(start), nil
		}
		if strings.Contains(out, GuestError) {
			return 0, fmt.Errorf("guest error before %q; serial:\n%s", marker, tail(out, 40))
		}
		for _, f := range firmwareGaveUp {
			if strings.Contains(out, f.text) {
				return 0, fmt.Errorf("%s before %q; serial:\n%s", f.what, marker, tail(out, 40))
			}
		}
		if gone {
			return 0, fmt.Errorf("exited before printing %q; serial:\n%s", marker, tail(out, 40))
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no %q after %v; serial:\n%s", marker, timeout, tail(out, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// MachineFromDomain turns the parts of a libvirt domain XML that matter
// for booting (firmware, machine type, memory, disks with their buses and
// formats in boot order, the first NIC's model) into a Machine, so a
// generated XML can be booted with plain QEMU.
func MachineFromDomain(xml []byte) (Machine, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(string(xml)); err != nil {
		return Machine{}, fmt.Errorf("domain xml: %v", err)
	}
	var m Machine
	if d.OS != nil {
		if d.OS.Firmware == "efi" || (d.OS.Loader != nil && d.OS.Loader.Type == "pflash") {
			m.Firmware = UEFI
		} else {
			m.Firmware = BIOS
		}
		if d.OS.Type != nil && strings.Contains(d.OS.Type.Machine, "q35") {
			m.Type = "q35"
		} else if d.OS.Type != nil && d.OS.Type.Machine != "" {
			m.Type = "pc"
		}
	}
	if d.Memory != nil {
		m.MemoryMiB = int(memMiB(d.Memory.Value, d.Memory.Unit))
	}
	scsiModel := map[uint]string{}
	if d.Devices == nil {
		return m, fmt.Errorf("domain xml: no devices")
	}
	for _, c := range d.Devices.Controllers {
		if c.Type == "scsi" {
			idx := uint(0)
			if c.Index != nil {
				idx = *c.Index
			}
			scsiModel[idx] = c.Model
		}
	}
	type ordered struct {
		order uint
		disk  Disk
	}
	var disks []ordered
	for i, dd := range d.Devices.Disks {
		if dd.Device != "" && dd.Device != "disk" {
			continue
		}
		if dd.Source == nil || dd.Source.File == nil || dd.Target == nil {
			return m, fmt.Errorf("domain xml: disk %d is not a file disk with a target", i)
		}
		disk := Disk{Path: dd.Source.File.File, Format: "raw", ReadOnly: dd.ReadOnly != nil}
		if dd.Driver != nil && dd.Driver.Type != "" {
			disk.Format = dd.Driver.Type
		}
		switch dd.Target.Bus {
		case "sata", "ide", "virtio":
			disk.Bus = dd.Target.Bus
		case "scsi":
			ctl := uint(0)
			if dd.Address != nil && dd.Address.Drive != nil && dd.Address.Drive.Controller != nil {
				ctl = *dd.Address.Drive.Controller
			}
			switch model := scsiModel[ctl]; model {
			case "virtio-scsi":
				disk.Bus = "virtio-scsi"
			case "vmpvscsi":
				disk.Bus = "pvscsi"
			case "lsilogic", "":
				disk.Bus = "lsilogic"
			case "lsisas1068":
				disk.Bus = "mptsas"
			case "megasas":
				disk.Bus = "megasas"
			default:
				return m, fmt.Errorf("domain xml: scsi controller model %q not supported here", model)
			}
		default:
			return m, fmt.Errorf("domain xml: disk bus %q not supported here", dd.Target.Bus)
		}
		order := uint(1000 + i)
		if dd.Boot != nil {
			order = dd.Boot.Order
		}
		disks = append(disks, ordered{order, disk})
	}
	sort.SliceStable(disks, func(i, j int) bool { return disks[i].order < disks[j].order })
	for _, o := range disks {
		m.Disks = append(m.Disks, o.disk)
	}
	if len(m.Disks) == 0 {
		return m, fmt.Errorf("domain xml: no disk")
	}
	if len(d.Devices.Interfaces) > 0 && d.Devices.Interfaces[0].Model != nil {
		nic := d.Devices.Interfaces[0].Model.Type
		switch nic {
		case "virtio":
			nic = "virtio-net-pci"
		case "e1000e", "e1000", "vmxnet3", "rtl8139":
		default:
			nic = "e1000"
		}
		m.NIC = nic
		if mac := d.Devices.Interfaces[0].MAC; mac != nil {
			m.MAC = mac.Address
		}
	}
	return m, nil
}

func memMiB(v uint, unit string) uint {
	switch strings.ToLower(unit) {
	case "b", "bytes":
		return v >> 20
	case "", "k", "kib":
		return v >> 10
	case "kb":
		return v * 1000 >> 20
	case "m", "mib":
		return v
	case "mb":
		return v * 1000000 >> 20
	case "g", "gib":
		return v << 10
	case "gb":
		return v * 1000000000 >> 20
	}
	return 256
}

// BootDomainXML boots the libvirt domain XML at path with plain QEMU (see
// MachineFromDomain), accelerated with accel ("" = tcg).
func BootDomainXML(t testing.TB, path, accel string) *VM {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := MachineFromDomain(b)
	if err != nil {
		t.Fatalf("testenv: %s: %v", path, err)
	}
	m.Accel = accel
	return Boot(t, m)
}
