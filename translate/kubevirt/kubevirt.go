// Package kubevirt writes the "kubevirt" target: one YAML file,
// <name>.yaml, of a KubeVirt VirtualMachine (kubevirt.io/v1) and one
// CDI DataVolume (cdi.kubevirt.io/v1beta1) per disk, for `kubectl apply
// -f`. Each DataVolume imports its disk from the vmfs HTTPS export
// (`vmfs serve --https`), at <export-url>/<vm>/<file> with <vm> the
// view's name and <file> the disk's file in the view, over CDI's http
// source: the CA in the ConfigMap --cert-configmap names, the bearer
// token in the Secret --token-secret names (sent as a header line
// through secretExtraHeaders: CDI's secretRef is basic auth). With
// --upload the DataVolumes wait for `virtctl image-upload` instead.
//
// The objects are built from the projects' own Go API types
// (kubevirt.io/api, kubevirt.io/containerized-data-importer-api) and
// marshalled with sigs.k8s.io/yaml; the tests decode them back strictly.
// Devices are placed on the hardware KubeVirt offers (Hardware): a q35
// machine, disks on virtio, SATA or SCSI (virtio-scsi), KubeVirt's NIC
// models.
package kubevirt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kv "kubevirt.io/api/core/v1"
	cdi "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/vmfs/vmfs/translate"
)

// Warning codes. They are stable.
const (
	WarnName      = "KUBEVIRT_NAME"       // the VM name is not a DNS-1123 label: changed
	WarnExportURL = "KUBEVIRT_EXPORT_URL" // no --export-url: the default Service is named
	WarnPlainHTTP = "KUBEVIRT_PLAIN_HTTP" // an http:// export: token and disks unencrypted
	WarnCDROM     = "KUBEVIRT_CDROM"      // a CD-ROM is left out: nothing imports its image
	WarnNIC       = "KUBEVIRT_NIC"        // a NIC model KubeVirt lacks, or a second pod network
	WarnBus       = "KUBEVIRT_BUS"        // a disk moved to another bus
	WarnSerial    = "KUBEVIRT_SERIAL"     // serial ports beyond KubeVirt's one console
	WarnOmitted   = "KUBEVIRT_OMITTED"    // a drive the mapping leaves out
)

// Defaults of the options: the Service, ConfigMap and Secret
// docs/kubevirt.md sets up, in the namespace vmfs.
const (
	DefaultExportURL     = "https://vmfs.vmfs.svc:8443"
	DefaultCertConfigMap = "vmfs-ca"
	DefaultTokenSecret   = "vmfs-token"
	// PodNetwork is the --network-map name of the pod network, where
	// unmapped NICs go; any other name is a Multus
	// NetworkAttachmentDefinition, [NAMESPACE/]NAME.
	PodNetwork = "pod"
)

// Labels every object carries: the VM it belongs to, and who made it.
const (
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// LabelDomain is the label KubeVirt's guides select a VM's pod by.
	LabelDomain = "kubevirt.io/domain"
	// AnnImmediateBinding asks CDI to bind and import at once, on a
	// WaitForFirstConsumer StorageClass too: the VM is created halted, so
	// no consumer would come before the import.
	AnnImmediateBinding = "cdi.kubevirt.io/storage.bind.immediate.requested"
)

// Target is the kubevirt target.
type Target struct{}

func (Target) Name() string { return "kubevirt" }

// DefaultFormat is qcow2: CDI's http importer reads qcow2 as well as
// raw, and a qcow2 image carries the disk's allocation: qemu-img, which
// CDI converts with, fetches only the clusters that hold data (a range
// request each), and where CDI first downloads the image to scratch
// space (with a custom CA, as vmfs serve's own certificate needs) it
// downloads the data, not the disk's virtual size. A raw image sends
// every zero over the network.
func (Target) DefaultFormat() string { return "qcow2" }

// Caps: KubeVirt's hardware; NICs on the pod network unless
// --network-map names a Multus network; the Kubernetes options.
func (Target) Caps() translate.Caps {
	return translate.Caps{
		Target:         "kubevirt",
		DefaultNetwork: PodNetwork,
		Kubernetes:     true,
		Hardware:       Hardware(),
	}
}

// Hardware is what a KubeVirt VM offers: QEMU's q35 machine with disks on
// virtio, SATA or SCSI (one virtio-scsi controller: KubeVirt emulates no
// LSI, pvscsi or BusLogic, and no IDE), NICs of the models KubeVirt
// takes (e1000, e1000e, igb, ne2k_pci, pcnet, rtl8139, virtio).
func Hardware() translate.Hardware {
	toSATA := func(from translate.Bus, say string) translate.BusRule {
		return translate.BusRule{Bus: from, To: translate.BusSATA, Code: WarnBus, Say: say}
	}
	return translate.Hardware{
		Layout: translate.LayoutQEMU,
		Disks: []translate.BusRule{
			{Bus: translate.BusSCSI, Models: []string{"virtio-scsi", "virtio"}, To: translate.BusSCSI},
			toSATA(translate.BusSCSI, "{what} is on a {ctl} SCSI controller; KubeVirt's SCSI bus is virtio-scsi, which the guest may not drive: moved to SATA (--devices virtio moves it to virtio)"),
			{Bus: translate.BusSATA, To: translate.BusSATA},
			{Bus: translate.BusVirtio, To: translate.BusVirtio},
			toSATA(translate.BusIDE, "{what} is an IDE disk; KubeVirt has no IDE bus: moved to SATA"),
			toSATA(translate.BusNVMe, "{what} is an NVMe disk; KubeVirt has no NVMe bus: moved to SATA"),
			toSATA("", "{what} is on a {bus?} bus KubeVirt lacks: moved to SATA"),
		},
		CDROMs: []translate.BusRule{
			{Bus: translate.BusSCSI, Models: []string{"virtio-scsi", "virtio"}, To: translate.BusSCSI},
			{To: translate.BusSATA},
		},
		VirtioDisk:  translate.BusRule{To: translate.BusVirtio},
		CompatDisk:  translate.BusRule{To: translate.BusSATA},
		VirtioCDROM: translate.BusRule{To: translate.BusSATA},
		CompatCDROM: translate.BusRule{To: translate.BusSATA},
		NICs: []translate.ModelRule{
			{Models: []string{"virtio"}, To: "virtio"},
			{Models: []string{"e1000"}, To: "e1000"},
			{Models: []string{"e1000e"}, To: "e1000e"},
			{Models: []string{"igb"}, To: "igb"},
			{Models: []string{"rtl8139"}, To: "rtl8139"},
			{Models: []string{"pcnet", "vlance", "am79c970a", "am79c973", "pcnet32"}, To: "pcnet"},
			{Models: []string{"ne2k_pci"}, To: "ne2k_pci"},
			{Models: []string{"", "82540em", "82543gc", "82545em"}, To: "e1000"},
			{To: "e1000e", Code: WarnNIC, Say: "NIC {i} model {model} is not one KubeVirt emulates: e1000e used"},
		},
		VirtioNIC: "virtio", CompatNIC: "e1000e",
	}
}

// models are the interface models KubeVirt takes.
var models = map[string]bool{"e1000": true, "e1000e": true, "igb": true, "ne2k_pci": true, "pcnet": true, "rtl8139": true, "virtio": true}

// Emit writes <name>.yaml.
func (Target) Emit(m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) ([]translate.OutFile, []translate.Warning, error) {
	fail := func(warns []translate.Warning, format string, args ...any) ([]translate.OutFile, []translate.Warning, error) {
		return nil, warns, fmt.Errorf("kubevirt: %s: %s", m.Name, fmt.Sprintf(format, args...))
	}
	if err := opts.CheckKubernetes(); err != nil {
		return fail(nil, "%v", err)
	}
	mp, err := translate.Map(m, disks, opts, Target{}.Caps())
	if err != nil {
		return fail(mp.Said(), "%v", err)
	}
	warns := mp.Warnings
	warn := func(code, format string, args ...any) {
		warns = append(warns, translate.Warning{Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if m.CPUs <= 0 || m.MemoryMiB <= 0 {
		return fail(warns, "machine has %d CPUs and %d MiB of memory", m.CPUs, m.MemoryMiB)
	}
	if mp.Machine != "q35" {
		return fail(warns, "machine type %q: KubeVirt runs q35", mp.Machine)
	}
	name := ObjectName(m.Name)
	if name != m.Name {
		warn(WarnName, "VM name %q is not a Kubernetes object name: %s", m.Name, name)
	}
	export := opts.ExportURL
	if export == "" && !opts.Upload {
		export = DefaultExportURL
		warn(WarnExportURL, "no --export-url: the DataVolumes import from %s, the Service of docs/kubevirt.md; name the vmfs HTTPS export with --export-url", export)
	}
	if u, err := url.Parse(export); err == nil && u.Scheme == "http" {
		warn(WarnPlainHTTP, "--export-url %s is plain HTTP: the token and the disks cross the network unencrypted", export)
	}
	cert := cmpOr(opts.CertConfigMap, DefaultCertConfigMap)
	token := cmpOr(opts.TokenSecret, DefaultTokenSecret)
	meta := func(n string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: n, Namespace: opts.Namespace, Labels: map[string]string{LabelPartOf: name, LabelManagedBy: "vmfs"}}
	}

	var dvs []*cdi.DataVolume
	var vdisks []kv.Disk
	var volumes []kv.Volume
	var uploads [][2]string // DataVolume, file
	// Boot orders: KubeVirt wants them unique; the mapping's order kept.
	boot := bootOrders(mp.Drives)
	for i, d := range mp.Drives {
		if d.Omit {
			warn(WarnOmitted, "%s has no place on KubeVirt: left out", what(d))
			continue
		}
		if d.CDROM {
			img := "empty"
			if d.Path != "" {
				img = "image " + d.Path
			}
			warn(WarnCDROM, "CD-ROM %d (%s) is left out: a KubeVirt CD-ROM needs a volume, and no DataVolume imports it", d.Index, img)
			continue
		}
		if d.Index >= len(disks) {
			return fail(warns, "drive %d names disk %d of %d", i, d.Index, len(disks))
		}
		td := disks[d.Index]
		if f := strings.ToLower(td.Format); f != "raw" && f != "qcow2" {
			return fail(warns, "disk %d is %s: the DataVolumes import raw or qcow2 (--format qcow2 or raw)", d.Index, td.Format)
		}
		if td.Size <= 0 {
			return fail(warns, "disk %d has no size", d.Index)
		}
		file := filepath.Base(td.Path)
		if td.Path == "" || file == "." || file == "/" {
			return fail(warns, "disk %d has no file in the view", d.Index)
		}
		bus := map[translate.Bus]kv.DiskBus{translate.BusVirtio: kv.DiskBusVirtio, translate.BusSATA: kv.DiskBusSATA, translate.BusSCSI: kv.DiskBusSCSI}[d.Bus]
		if bus == "" {
			return fail(warns, "disk %d on bus %q, which KubeVirt lacks", d.Index, d.Bus)
		}
		dvName := DataVolumeName(name, d.Index)
		src := &cdi.DataVolumeSource{}
		if opts.Upload {
			src.Upload = &cdi.DataVolumeSourceUpload{}
			uploads = append(uploads, [2]string{dvName, td.Path})
		} else {
			u, err := diskURL(export, translate.FileName(m.Name), file)
			if err != nil {
				return fail(warns, "%v", err)
			}
			src.HTTP = &cdi.DataVolumeSourceHTTP{URL: u, CertConfigMap: cert, SecretExtraHeaders: []string{token}}
		}
		dv := &cdi.DataVolume{
			TypeMeta:   metav1.TypeMeta{APIVersion: cdi.SchemeGroupVersion.String(), Kind: "DataVolume"},
			ObjectMeta: meta(dvName),
			Spec: cdi.DataVolumeSpec{
				Source: src,
				Storage: &cdi.StorageSpec{
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: *mib(td.Size)}},
				},
			},
		}
		dv.Annotations = map[string]string{AnnImmediateBinding: "true"}
		if opts.StorageClass != "" {
			sc := opts.StorageClass
			dv.Spec.Storage.StorageClassName = &sc
		}
		dvs = append(dvs, dv)
		vol := fmt.Sprintf("disk%d", d.Index)
		vd := kv.Disk{Name: vol, DiskDevice: kv.DiskDevice{Disk: &kv.DiskTarget{Bus: bus, ReadOnly: d.ReadOnly}}}
		if boot[i] > 0 {
			b := uint(boot[i])
			vd.BootOrder = &b
		}
		vdisks = append(vdisks, vd)
		volumes = append(volumes, kv.Volume{Name: vol, VolumeSource: kv.VolumeSource{DataVolume: &kv.DataVolumeSource{Name: dvName}}})
	}

	var ifaces []kv.Interface
	var nets []kv.Network
	pod := -1
	for i, n := range mp.NICs {
		if n.Omit {
			warn(WarnOmitted, "NIC %d has no place on KubeVirt: left out", i)
			continue
		}
		if !models[n.Model] {
			return fail(warns, "NIC %d: model %q, which KubeVirt lacks", i, n.Model)
		}
		netName := fmt.Sprintf("nic%d", i)
		iface := kv.Interface{Name: netName, Model: n.Model}
		if mac := m.NICs[i].MAC; translate.IsMAC(mac) {
			iface.MacAddress = strings.ToLower(mac)
		}
		nw := kv.Network{Name: netName}
		if n.Network == PodNetwork {
			if pod >= 0 {
				warn(WarnNIC, "NIC %d: KubeVirt gives a VM one pod network, which NIC %d has: left out (put it on a Multus network with --network-map %q)", i, pod, m.NICs[i].Network+"=NAD")
				continue
			}
			pod = i
			iface.InterfaceBindingMethod = kv.InterfaceBindingMethod{Masquerade: &kv.InterfaceMasquerade{}}
			nw.NetworkSource = kv.NetworkSource{Pod: &kv.PodNetwork{}}
		} else {
			if !nadOK(n.Network) {
				return fail(warns, "NIC %d: network %q is neither %s nor a NetworkAttachmentDefinition, [NAMESPACE/]NAME (--network-map)", i, n.Network, PodNetwork)
			}
			iface.InterfaceBindingMethod = kv.InterfaceBindingMethod{Bridge: &kv.InterfaceBridge{}}
			nw.NetworkSource = kv.NetworkSource{Multus: &kv.MultusNetwork{NetworkName: n.Network}}
		}
		ifaces = append(ifaces, iface)
		nets = append(nets, nw)
	}
	if n := len(m.Serials); n > 1 {
		warn(WarnSerial, "%d serial ports: KubeVirt gives a VM one serial console (virtctl console): the other %d are left out", n, n-1)
	}

	dom := kv.DomainSpec{
		Resources: kv.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: *mib(m.MemoryMiB << 20)}},
		CPU:       cpu(m),
		Memory:    &kv.Memory{Guest: mib(m.MemoryMiB << 20)},
		Machine:   &kv.Machine{Type: mp.Machine},
		Firmware:  &kv.Firmware{Bootloader: &kv.Bootloader{BIOS: &kv.BIOS{}}},
		Devices:   kv.Devices{Disks: vdisks, Interfaces: ifaces},
	}
	if m.UUID != "" && translate.IsUUID(m.UUID) {
		dom.Firmware.UUID = types.UID(strings.ToLower(m.UUID))
	}
	if m.Firmware == translate.UEFI {
		sb := m.SecureBoot
		dom.Firmware.Bootloader = &kv.Bootloader{EFI: &kv.EFI{SecureBoot: &sb}}
		if sb {
			// Secure boot needs SMM: KubeVirt refuses it without.
			on := true
			dom.Features = &kv.Features{SMM: &kv.FeatureState{Enabled: &on}}
		}
	}
	if len(ifaces) == 0 {
		// Without interfaces KubeVirt adds one on the pod network; the
		// source has none.
		off := false
		dom.Devices.AutoattachPodInterface = &off
	}
	if m.TPM {
		dom.Devices.TPM = &kv.TPMDevice{}
	}
	halted := kv.RunStrategyHalted
	tmplMeta := metav1.ObjectMeta{Labels: map[string]string{LabelDomain: name}}
	vm := &kv.VirtualMachine{
		TypeMeta:   metav1.TypeMeta{APIVersion: kv.GroupVersion.String(), Kind: "VirtualMachine"},
		ObjectMeta: meta(name),
		Spec: kv.VirtualMachineSpec{
			RunStrategy: &halted,
			Template: &kv.VirtualMachineInstanceTemplateSpec{
				ObjectMeta: tmplMeta,
				Spec:       kv.VirtualMachineInstanceSpec{Domain: dom, Networks: nets, Volumes: volumes},
			},
		},
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s: generated by vmfs from %s (%s).\n", translate.OneLine(m.Name), translate.OneLine(m.Source), translate.OneLine(m.SourceFormat))
	apply := "kubectl apply -f " + translate.FileName(m.Name) + ".yaml"
	if opts.Namespace == "" {
		apply += " [-n NAMESPACE]"
	}
	if opts.Upload {
		fmt.Fprintf(&b, "# %s, then upload each disk into its DataVolume:\n", apply)
		for _, u := range uploads {
			fmt.Fprintf(&b, "#   virtctl image-upload dv %s --no-create --image-path=%s%s\n", u[0], translate.OneLine(translate.ShellQuote(u[1])), nsFlag(opts.Namespace))
		}
	} else {
		fmt.Fprintf(&b, "# %s: each DataVolume imports its disk from %s\n", apply, translate.OneLine(export))
		fmt.Fprintf(&b, "# (CA in ConfigMap %s, token header in Secret %s).\n", cert, token)
	}
	fmt.Fprintf(&b, "# The VM is created halted: virtctl start %s%s once the DataVolumes have succeeded.\n", name, nsFlag(opts.Namespace))
	for _, dv := range dvs {
		if err := document(&b, dv); err != nil {
			return fail(warns, "%v", err)
		}
	}
	if err := document(&b, vm); err != nil {
		return fail(warns, "%v", err)
	}
	return []translate.OutFile{{Name: translate.FileName(m.Name) + ".yaml", Data: b.Bytes(), Mode: 0o644}}, warns, nil
}

// document appends obj to b as one YAML document, without the fields a
// client leaves to the server (status, a null creationTimestamp).
func document(b *bytes.Buffer, obj any) error {
	j, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	var tree map[string]any
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	if err := d.Decode(&tree); err != nil {
		return err
	}
	delete(tree, "status")
	prune(tree)
	y, err := yaml.Marshal(tree)
	if err != nil {
		return err
	}
	b.WriteString("---\n")
	b.Write(y)
	return nil
}

// prune drops every null creationTimestamp below v.
func prune(v any) {
	switch t := v.(type) {
	case map[string]any:
		if ts, ok := t["creationTimestamp"]; ok && ts == nil {
			delete(t, "creationTimestamp")
		}
		for _, c := range t {
			prune(c)
		}
	case []any:
		for _, c := range t {
			prune(c)
		}
	}
}

// diskURL is the export's URL of file of the VM vm: <export>/<vm>/<file>.
func diskURL(export, vm, file string) (string, error) {
	u, err := url.Parse(strings.TrimRight(export, "/"))
	if err != nil {
		return "", fmt.Errorf("--export-url %q: %w", export, err)
	}
	return u.JoinPath(url.PathEscape(vm), url.PathEscape(file)).String(), nil
}

// bootOrders numbers the drives with a boot order 1, 2 ... in the order
// of theirs (ties: drive order); 0 for the others.
func bootOrders(drives []translate.Drive) []int {
	var idx []int
	for i, d := range drives {
		if d.Boot > 0 && !d.Omit && !d.CDROM {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return drives[idx[a]].Boot < drives[idx[b]].Boot })
	out := make([]int, len(drives))
	for n, i := range idx {
		out[i] = n + 1
	}
	return out
}

// cpu is m's topology: sockets of CoresPerSocket cores when that divides
// the CPUs, else one socket; one thread per core.
func cpu(m *translate.Machine) *kv.CPU {
	sockets, cores := 1, m.CPUs
	if m.CoresPerSocket > 0 && m.CPUs%m.CoresPerSocket == 0 {
		sockets, cores = m.CPUs/m.CoresPerSocket, m.CoresPerSocket
	}
	return &kv.CPU{Sockets: uint32(sockets), Cores: uint32(cores), Threads: 1}
}

// mib is n bytes rounded up to the MiB, as a quantity ("2Gi", "1025Mi").
func mib(n int64) *resource.Quantity {
	return resource.NewQuantity((n+(1<<20)-1)>>20<<20, resource.BinarySI)
}

func what(d translate.Drive) string {
	if d.CDROM {
		return fmt.Sprintf("CD-ROM %d", d.Index)
	}
	return fmt.Sprintf("disk %d", d.Index)
}

// nadOK: s names a NetworkAttachmentDefinition, [NAMESPACE/]NAME.
func nadOK(s string) bool {
	ns, n, ok := strings.Cut(s, "/")
	if !ok {
		return translate.IsDNSSubdomain(s)
	}
	return translate.IsDNSLabel(ns) && translate.IsDNSSubdomain(n)
}

func nsFlag(ns string) string {
	if ns == "" {
		return ""
	}
	return " -n " + ns
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
