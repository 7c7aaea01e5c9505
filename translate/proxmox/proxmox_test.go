package proxmox_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/corpus/corpusvm"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/proxmox"
)

// The keys the target may write and the form of each value, from the
// Proxmox VE admin guide's "Qemu/KVM Virtual Machines" chapter and
// qm.conf(5), restricted to the forms this target writes.
var (
	volume   = `[a-z][a-z0-9_.-]*[a-z0-9]:vm-[1-9][0-9]{2,8}-disk-[0-9]+`
	diskVal  = regexp.MustCompile(`^(` + volume + `(,size=[1-9][0-9]*[KMG])?|none,media=cdrom)$`)
	diskKey  = regexp.MustCompile(`^(scsi([0-9]|[12][0-9]|30)|sata[0-5]|ide[0-3]|virtio([0-9]|1[0-5]))$`)
	netKey   = regexp.MustCompile(`^net([0-9]|[1-2][0-9]|3[01])$`)
	netVal   = regexp.MustCompile(`^(e1000|e1000e|virtio|rtl8139|vmxnet3)(=[0-9A-F]{2}(:[0-9A-F]{2}){5})?,bridge=[A-Za-z0-9_.-]{1,15}$`)
	keyForms = map[string]*regexp.Regexp{
		"name":     regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`),
		"memory":   regexp.MustCompile(`^[1-9][0-9]*$`),
		"sockets":  regexp.MustCompile(`^[1-9][0-9]*$`),
		"cores":    regexp.MustCompile(`^[1-9][0-9]*$`),
		"ostype":   regexp.MustCompile(`^(other|wxp|w2k|w2k3|w2k8|wvista|win7|win8|win10|win11|l24|l26|solaris)$`),
		"machine":  regexp.MustCompile(`^(q35|pc)$`),
		"smbios1":  regexp.MustCompile(`^uuid=[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`),
		"bios":     regexp.MustCompile(`^(seabios|ovmf)$`),
		"vga":      regexp.MustCompile(`^(std|virtio|qxl|vmware|cirrus|none)$`),
		"serial0":  regexp.MustCompile(`^socket$`),
		"serial1":  regexp.MustCompile(`^socket$`),
		"serial2":  regexp.MustCompile(`^socket$`),
		"serial3":  regexp.MustCompile(`^socket$`),
		"scsihw":   regexp.MustCompile(`^(lsi|lsi53c810|virtio-scsi-pci|virtio-scsi-single|megasas|pvscsi)$`),
		"boot":     regexp.MustCompile(`^order=(scsi|sata|ide|virtio)[0-9]+(;(scsi|sata|ide|virtio)[0-9]+)*$`),
		"efidisk0": regexp.MustCompile(`^` + volume + `,efitype=4m(,pre-enrolled-keys=1)?,size=4M$`),
	}
)

// checkConf parses a qemu-server config and checks every key and value
// against the documented forms, the keys sorted as qm writes them; it
// returns the keys and values.
func checkConf(t *testing.T, data string, vmid int, storage string) map[string]string {
	t.Helper()
	if !strings.HasSuffix(data, "\n") {
		t.Fatalf("config does not end in a newline:\n%s", data)
	}
	c := map[string]string{}
	var keys []string
	for _, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("line %q is not key: value", line)
		}
		if _, dup := c[k]; dup {
			t.Errorf("key %s twice", k)
		}
		c[k], keys = v, append(keys, k)
		var form *regexp.Regexp
		switch {
		case diskKey.MatchString(k):
			form = diskVal
		case netKey.MatchString(k):
			form = netVal
		default:
			form = keyForms[k]
		}
		if form == nil {
			t.Errorf("key %q is not one this target writes", k)
			continue
		}
		if !form.MatchString(v) {
			t.Errorf("%s: %q does not match %s", k, v, form)
		}
		if strings.Contains(v, ":vm-") && !strings.HasPrefix(v, fmt.Sprintf("%s:vm-%d-disk-", storage, vmid)) {
			t.Errorf("%s: %q is not a volume of VM %d on %s", k, v, vmid, storage)
		}
	}
	if !slices.IsSorted(keys) {
		t.Errorf("keys are not in qm's order (sorted): %v", keys)
	}
	for _, k := range []string{"name", "memory", "sockets", "cores", "ostype"} {
		if c[k] == "" {
			t.Errorf("config lacks %s", k)
		}
	}
	if b, ok := c["boot"]; ok {
		for _, d := range strings.Split(strings.TrimPrefix(b, "order="), ";") {
			if _, ok := c[d]; !ok {
				t.Errorf("boot order names %s, which the config lacks", d)
			}
		}
	}
	// Volume numbers are distinct.
	seen := map[string]bool{}
	for k, v := range c {
		if vol, _, _ := strings.Cut(v, ","); strings.Contains(vol, ":vm-") {
			if seen[vol] {
				t.Errorf("%s: volume %s used twice", k, vol)
			}
			seen[vol] = true
		}
	}
	return c
}

// qmCalls runs script with a qm that records its arguments, and returns
// the calls.
func qmCalls(t *testing.T, script string) [][]string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	qm := "#!/bin/bash\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done >>" + strconv.Quote(log) + "\nprintf '\\n\\0' >>" + strconv.Quote(log) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "qm"), []byte(qm), 0o755); err != nil {
		t.Fatal(err)
	}
	sh := filepath.Join(dir, "import.sh")
	if err := os.WriteFile(sh, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", sh).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v: %s\n%s", err, out, script)
	}
	cmd := exec.Command("bash", sh)
	// qm is the only command the script may run: an injected one fails.
	cmd.Env = []string{"PATH=" + dir}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script: %v: %s\n%s", err, out, script)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var calls [][]string
	var cur []string
	for _, a := range strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00") {
		if a == "\n" {
			calls, cur = append(calls, cur), nil
			continue
		}
		cur = append(cur, a)
	}
	return calls
}

// checkScript runs the script against a recording qm: it creates VM vmid
// with the config's settings, imports each of the view's disks once onto
// storage, by its absolute path, and names no other file.
func checkScript(t *testing.T, script string, c map[string]string, vmid int, storage string, disks []translate.TargetDisk) {
	t.Helper()
	calls := qmCalls(t, script)
	if len(calls) < 1 || len(calls[0]) < 2 || calls[0][0] != "create" || calls[0][1] != strconv.Itoa(vmid) {
		t.Fatalf("first qm call is not create %d: %q", vmid, calls)
	}
	for i := 2; i+1 < len(calls[0]); i += 2 {
		k, v := strings.TrimPrefix(calls[0][i], "--"), calls[0][i+1]
		if c[k] != v {
			t.Errorf("qm create --%s %q, the config has %q", k, v, c[k])
		}
	}
	var imported []string
	for _, call := range calls[1:] {
		if len(call) < 2 || call[1] != strconv.Itoa(vmid) {
			t.Errorf("qm call %q is not for VM %d", call, vmid)
			continue
		}
		if call[0] == "config" {
			continue
		}
		if call[0] != "set" || len(call) != 4 {
			t.Errorf("unexpected qm call %q", call)
			continue
		}
		k, v := strings.TrimPrefix(call[2], "--"), call[3]
		if _, ok := c[k]; !ok {
			t.Errorf("qm set --%s: the config has no %s", k, k)
		}
		if p, ok := strings.CutPrefix(v, storage+":0,import-from="); ok {
			imported = append(imported, p)
		}
	}
	var want []string
	for _, d := range disks {
		want = append(want, d.Path)
	}
	if !slices.Equal(imported, want) {
		t.Errorf("the script imports %q, the view's disks are %q", imported, want)
	}
}

func viewDisks(m *translate.Machine, dir string) []translate.TargetDisk {
	var out []translate.TargetDisk
	for i := range m.Disks {
		out = append(out, translate.TargetDisk{
			Path: filepath.Join(dir, proxmox.Target{}.DiskName(m, i)+".raw"), Format: "raw", QEMUFormat: "raw",
			Size: int64(i+1)<<30 + 512,
		})
	}
	return out
}

func emit(t *testing.T, m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) (conf, script string, warns []translate.Warning, err error) {
	t.Helper()
	outs, warns, err := proxmox.Target{}.Emit(m, disks, opts)
	if err != nil {
		return "", "", warns, err
	}
	name := translate.FileName(m.Name)
	if len(outs) != 2 || outs[0].Name != name+".conf" || outs[1].Name != name+"-import.sh" || outs[1].Mode != 0o755 {
		t.Fatalf("outputs %+v", outs)
	}
	for _, w := range warns {
		if !regexp.MustCompile(`^[A-Z][A-Z0-9_]+$`).MatchString(w.Code) {
			t.Errorf("warning code %q", w.Code)
		}
	}
	return string(outs[0].Data), string(outs[1].Data), warns, nil
}

// TestCorpus: every corpus source → a config whose keys and values have
// the documented forms, and a script that passes bash -n and, run against
// a recording qm, imports exactly the view's disks.
func TestCorpus(t *testing.T) {
	emitted := 0
	for _, src := range corpusvm.Machines(t) {
		m := src.Machine
		t.Run(filepath.Base(src.File), func(t *testing.T) {
			dir := "/mnt/vmfs/" + translate.FileName(m.Name)
			disks := viewDisks(m, dir)
			for _, opts := range []translate.Options{{}, {VMID: 4242, Storage: "tank.ssd-1"}} {
				conf, script, _, err := emit(t, m, disks, opts)
				if err != nil {
					if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "proxmox: ") {
						t.Errorf("error %q", err)
					}
					t.Logf("refused: %v", err)
					return
				}
				emitted++
				vmid, storage := max(opts.VMID, proxmox.DefaultVMID), cmpOr(opts.Storage, proxmox.DefaultStorage)
				c := checkConf(t, conf, vmid, storage)
				checkScript(t, script, c, vmid, storage, disks)
				if m.Firmware == translate.UEFI && (c["bios"] != "ovmf" || c["efidisk0"] == "") {
					t.Errorf("UEFI source without bios: ovmf and efidisk0:\n%s", conf)
				}
				if m.SecureBoot && !strings.Contains(c["efidisk0"], "pre-enrolled-keys=1") {
					t.Errorf("secure boot source without pre-enrolled keys:\n%s", conf)
				}
				if n := len(m.NICs); n > 0 && c["net"+strconv.Itoa(n-1)] == "" {
					t.Errorf("%d NICs, config:\n%s", n, conf)
				}
			}
		})
	}
	if emitted < 20 {
		t.Errorf("only %d corpus machines emitted", emitted)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestOSType(t *testing.T) {
	for _, c := range []struct{ osinfo, guest, want string }{
		{"http://microsoft.com/win/11", "", "win11"},
		{"http://microsoft.com/win/2k19", "", "win10"},
		{"http://microsoft.com/win/7", "", "win7"},
		{"http://ubuntu.com/ubuntu/22.04", "", "l26"},
		{"", "ubuntu-64", "l26"},
		{"", "Windows11_64", "win11"},
		{"", "freebsd-64", "other"},
		{"", "", "other"},
	} {
		m := &translate.Machine{Name: "os", CPUs: 1, MemoryMiB: 64, OSInfo: c.osinfo, GuestOS: c.guest}
		conf, _, warns, err := emit(t, m, nil, translate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(conf, "ostype: "+c.want+"\n") {
			t.Errorf("%q/%q: want ostype %s:\n%s", c.osinfo, c.guest, c.want, conf)
		}
		said := slices.ContainsFunc(warns, func(w translate.Warning) bool { return w.Code == proxmox.WarnOSType })
		if said != (c.want == "other") {
			t.Errorf("%q/%q: PROXMOX_OSTYPE warning %v", c.osinfo, c.guest, said)
		}
	}
}

// TestVMIDStorage: --vmid and --storage name the volumes and the script's
// VM; values outside Proxmox's ranges are refused.
func TestVMIDStorage(t *testing.T) {
	for _, c := range []struct {
		opts translate.Options
		ok   bool
	}{
		{translate.Options{}, true},
		{translate.Options{VMID: 100, Storage: "a1"}, true},
		{translate.Options{VMID: 999999999, Storage: "ceph.pool_1-x"}, true},
		{translate.Options{VMID: 99}, false},
		{translate.Options{VMID: -1}, false},
		{translate.Options{VMID: 1000000000}, false},
		{translate.Options{Storage: "Local"}, false},
		{translate.Options{Storage: "a"}, false},
		{translate.Options{Storage: "local-"}, false},
		{translate.Options{Storage: "x'; rm -rf /"}, false},
		{translate.Options{Storage: "a\nb"}, false},
	} {
		// Check, as the command line runs it (with a device policy).
		o := c.opts
		o.Devices = translate.Preserve
		if err := o.Check(); (err == nil) != c.ok {
			t.Errorf("%+v: Check: %v", c.opts, err)
		}
		m := &translate.Machine{Name: "v", CPUs: 1, MemoryMiB: 64, Disks: []translate.Disk{{Path: "/s/v.vmdk", Bus: translate.BusSATA}}}
		disks := viewDisks(m, "/mnt/v")
		conf, script, _, err := emit(t, m, disks, c.opts)
		if (err == nil) != c.ok {
			t.Errorf("%+v: Emit: %v", c.opts, err)
		}
		if err != nil {
			continue
		}
		vmid, storage := max(c.opts.VMID, proxmox.DefaultVMID), cmpOr(c.opts.Storage, proxmox.DefaultStorage)
		cf := checkConf(t, conf, vmid, storage)
		checkScript(t, script, cf, vmid, storage, disks)
		if want := fmt.Sprintf("sata0: %s:vm-%d-disk-0,size=1048577K", storage, vmid); !strings.Contains(conf, want+"\n") {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
}

// FuzzNames: whatever the machine's name, source path and mount folder,
// the config stays key: value lines of the documented forms and the
// script, run, passes qm exactly the config's values and the view's paths.
func FuzzNames(f *testing.F) {
	for _, s := range [][3]string{
		{"web01", "/src/web01.vmx", "/mnt/web01"},
		{"a\nbios: seabios", "/src/x\n rm -rf /", "/mnt/a'b"},
		{"'; touch /tmp/vmfs-pwned; '", "$(touch /tmp/vmfs-pwned)", "/mnt/$(touch /tmp/vmfs-pwned)/`touch /tmp/vmfs-pwned`"},
		{"..", "\"", "/mnt/\"x\\"},
		{"", "", "/mnt/dir with spaces"},
		{"Ünïcødé VM ✓", "/src/\u2028", "/mnt/é"},
		{"x,bridge=evil", "/s", "/mnt/a,b"},
		{"-", "/s", "/mnt/\x00"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, name, src, dir string) {
		if !strings.HasPrefix(dir, "/") || strings.ContainsRune(dir, 0) || len(dir) > 200 {
			dir = "/mnt/x"
		}
		m := &translate.Machine{
			Name: name, Source: src, SourceFormat: "vmx", CPUs: 2, MemoryMiB: 512, Firmware: translate.UEFI,
			Disks: []translate.Disk{{Path: "/s/d.vmdk", Bus: translate.BusSCSI, Controller: "lsilogic"}},
			NICs:  []translate.NIC{{MAC: "00:50:56:00:00:01", Model: "e1000", Network: name}},
		}
		disks := viewDisks(m, dir)
		conf, script, _, err := emit(t, m, disks, translate.Options{NetworkMap: map[string]string{name: name}})
		if err != nil {
			if !strings.Contains(dir, ",") {
				t.Fatalf("refused: %v", err)
			}
			return
		}
		c := checkConf(t, conf, proxmox.DefaultVMID, proxmox.DefaultStorage)
		checkScript(t, script, c, proxmox.DefaultVMID, proxmox.DefaultStorage, disks)
	})
}

// TestIDESlots: IDE drives keep their place (ideN is bus N/2, unit N%2):
// a CD-ROM on the secondary master is ide2, as Proxmox puts it.
func TestIDESlots(t *testing.T) {
	m := &translate.Machine{
		Name: "ide", CPUs: 1, MemoryMiB: 64, Firmware: translate.BIOS,
		Disks:  []translate.Disk{{Path: "/s/d.vmdk", Bus: translate.BusIDE, ControllerIndex: 0, Unit: 0}},
		CDROMs: []translate.CDROM{{Bus: translate.BusIDE, ControllerIndex: 1, Unit: 0}},
	}
	disks := viewDisks(m, "/mnt/ide")
	conf, script, _, err := emit(t, m, disks, translate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := checkConf(t, conf, proxmox.DefaultVMID, proxmox.DefaultStorage)
	checkScript(t, script, c, proxmox.DefaultVMID, proxmox.DefaultStorage, disks)
	if !strings.HasPrefix(c["ide0"], "local-lvm:vm-100-disk-0,") || c["ide2"] != "none,media=cdrom" || c["machine"] != "" {
		t.Errorf("config:\n%s", conf)
	}
}

// TestDiskName: disks are named as Proxmox names volumes, by the VM id
// the options give (DefaultVMID for the registered value).
func TestDiskName(t *testing.T) {
	m := &translate.Machine{Name: "any name"}
	for _, c := range []struct {
		tg   translate.Target
		want string
	}{
		{proxmox.Target{}, "vm-100-disk-1"},
		{translate.WithOptions(proxmox.Target{}, translate.Options{}), "vm-100-disk-1"},
		{translate.WithOptions(proxmox.Target{}, translate.Options{VMID: 4242}), "vm-4242-disk-1"},
	} {
		if got := c.tg.DiskName(m, 1); got != c.want {
			t.Errorf("%+v: %q, want %q", c.tg, got, c.want)
		}
	}
}

// TestSerialsAndVideo: serial ports become sockets (serial0..3, the rest
// left out with a warning); --devices virtio gives vga: virtio.
func TestSerialsAndVideo(t *testing.T) {
	m := &translate.Machine{Name: "s", CPUs: 1, MemoryMiB: 64, Serials: []translate.Serial{{Type: "pty"}, {Type: "file", Path: "/tmp/x"}, {}, {}, {}}}
	conf, _, warns, err := emit(t, m, nil, translate.Options{Devices: translate.Virtio})
	if err != nil {
		t.Fatal(err)
	}
	c := checkConf(t, conf, proxmox.DefaultVMID, proxmox.DefaultStorage)
	for i := range 4 {
		if c["serial"+strconv.Itoa(i)] != "socket" {
			t.Errorf("serial%d missing:\n%s", i, conf)
		}
	}
	if c["vga"] != "virtio" {
		t.Errorf("vga %q", c["vga"])
	}
	codes := map[string]int{}
	for _, w := range warns {
		codes[w.Code]++
	}
	if codes[proxmox.WarnSerial] != 1 || codes[proxmox.WarnOmitted] != 1 {
		t.Errorf("warnings %v", warns)
	}
}
