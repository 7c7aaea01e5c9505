package kubevirt_test

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kv "kubevirt.io/api/core/v1"
	cdi "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/vmfs/vmfs/internal/corpus/corpusvm"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/kubevirt"
)

// output is a decoded <name>.yaml.
type output struct {
	dvs []cdi.DataVolume
	vm  kv.VirtualMachine
}

// decode splits data into its YAML documents and decodes each strictly
// (no field the API types lack) into the type its kind names: comment
// lines, then DataVolumes, then one VirtualMachine.
func decode(t testing.TB, data string) output {
	t.Helper()
	docs := strings.Split(data, "---\n")
	for _, l := range strings.Split(strings.TrimSuffix(docs[0], "\n"), "\n") {
		if !strings.HasPrefix(l, "# ") {
			t.Fatalf("preamble line %q is not a comment:\n%s", l, data)
		}
	}
	var out output
	vms := 0
	for i, doc := range docs[1:] {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		switch tm {
		case metav1.TypeMeta{APIVersion: "cdi.kubevirt.io/v1beta1", Kind: "DataVolume"}:
			if vms > 0 {
				t.Errorf("document %d: a DataVolume after the VirtualMachine", i)
			}
			var dv cdi.DataVolume
			if err := yaml.UnmarshalStrict([]byte(doc), &dv); err != nil {
				t.Fatalf("document %d: strict decoding: %v\n%s", i, err, doc)
			}
			out.dvs = append(out.dvs, dv)
		case metav1.TypeMeta{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachine"}:
			vms++
			if err := yaml.UnmarshalStrict([]byte(doc), &out.vm); err != nil {
				t.Fatalf("document %d: strict decoding: %v\n%s", i, err, doc)
			}
		default:
			t.Fatalf("document %d: apiVersion %q kind %q\n%s", i, tm.APIVersion, tm.Kind, doc)
		}
	}
	if vms != 1 {
		t.Fatalf("%d VirtualMachines:\n%s", vms, data)
	}
	return out
}

func label(t testing.TB, what, s string) {
	t.Helper()
	if errs := validation.IsDNS1123Label(s); len(errs) > 0 {
		t.Errorf("%s %q is not a DNS-1123 label: %v", what, s, errs)
	}
}

func subdomain(t testing.TB, what, s string) {
	t.Helper()
	if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
		t.Errorf("%s %q is not a DNS-1123 subdomain: %v", what, s, errs)
	}
}

// check checks what every output must hold: names of their forms, one
// DataVolume per disk at least its size, importing the view's file of
// the disk from the export (or waiting for an upload), every volume,
// disk, interface and network matched, boot orders unique, the
// firmware, CPUs, memory and MACs of m.
func check(t testing.TB, m *translate.Machine, disks []translate.TargetDisk, opts translate.Options, o output) {
	t.Helper()
	vm := o.vm
	name := kubevirt.ObjectName(m.Name)
	if vm.Name != name {
		t.Errorf("VM name %q, want %q", vm.Name, name)
	}
	label(t, "VM name", vm.Name)
	objects := []metav1.ObjectMeta{vm.ObjectMeta}
	for _, dv := range o.dvs {
		objects = append(objects, dv.ObjectMeta)
	}
	for _, om := range objects {
		if om.Namespace != opts.Namespace {
			t.Errorf("%s: namespace %q, want %q", om.Name, om.Namespace, opts.Namespace)
		}
		if om.Labels[kubevirt.LabelPartOf] != name || om.Labels[kubevirt.LabelManagedBy] != "vmfs" {
			t.Errorf("%s: labels %v", om.Name, om.Labels)
		}
		for k, v := range om.Labels {
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				t.Errorf("%s: label %s=%q: %v", om.Name, k, v, errs)
			}
		}
	}
	if len(o.dvs) != len(disks) {
		t.Fatalf("%d DataVolumes for %d disks", len(o.dvs), len(disks))
	}
	spec := vm.Spec.Template.Spec
	vols := map[string]string{} // volume → DataVolume
	for _, v := range spec.Volumes {
		label(t, "volume", v.Name)
		if v.DataVolume == nil {
			t.Errorf("volume %s is not a DataVolume", v.Name)
			continue
		}
		vols[v.Name] = v.DataVolume.Name
	}
	referenced := map[string]bool{}
	boots := map[uint]bool{}
	for _, d := range spec.Domain.Devices.Disks {
		dv, ok := vols[d.Name]
		if !ok {
			t.Errorf("disk %s has no volume", d.Name)
		}
		referenced[dv] = true
		if d.Disk == nil || !slices.Contains([]kv.DiskBus{kv.DiskBusVirtio, kv.DiskBusSATA, kv.DiskBusSCSI}, d.Disk.Bus) {
			t.Errorf("disk %s: %+v", d.Name, d.DiskDevice)
		}
		if d.BootOrder != nil {
			if *d.BootOrder == 0 || boots[*d.BootOrder] {
				t.Errorf("disk %s: boot order %d zero or twice", d.Name, *d.BootOrder)
			}
			boots[*d.BootOrder] = true
		}
	}
	if len(spec.Domain.Devices.Disks) != len(spec.Volumes) {
		t.Errorf("%d disks, %d volumes", len(spec.Domain.Devices.Disks), len(spec.Volumes))
	}
	export := cmpOr(opts.ExportURL, kubevirt.DefaultExportURL)
	for i, dv := range o.dvs {
		if want := kubevirt.DataVolumeName(name, i); dv.Name != want {
			t.Errorf("DataVolume %d named %q, want %q", i, dv.Name, want)
		}
		label(t, "DataVolume name", dv.Name)
		if !referenced[dv.Name] {
			t.Errorf("DataVolume %s is no VM volume", dv.Name)
		}
		if dv.Annotations[kubevirt.AnnImmediateBinding] != "true" {
			t.Errorf("%s: annotations %v", dv.Name, dv.Annotations)
		}
		st := dv.Spec.Storage
		if st == nil {
			t.Fatalf("%s has no storage", dv.Name)
		}
		q := st.Resources.Requests[corev1.ResourceStorage]
		if q.Cmp(*resource.NewQuantity(disks[i].Size, resource.BinarySI)) < 0 {
			t.Errorf("%s: storage %s < disk size %d", dv.Name, q.String(), disks[i].Size)
		}
		if got := ptrOr(st.StorageClassName); got != opts.StorageClass {
			t.Errorf("%s: storageClassName %q, want %q", dv.Name, got, opts.StorageClass)
		} else if got != "" {
			subdomain(t, "storageClassName", got)
		}
		src := dv.Spec.Source
		switch {
		case src == nil:
			t.Errorf("%s has no source", dv.Name)
		case opts.Upload:
			if src.Upload == nil || src.HTTP != nil {
				t.Errorf("%s: source %+v, want upload", dv.Name, src)
			}
		case src.HTTP == nil || src.Upload != nil:
			t.Errorf("%s: source %+v, want http", dv.Name, src)
		default:
			h := src.HTTP
			u, err := url.Parse(h.URL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
				t.Errorf("%s: url %q: %v", dv.Name, h.URL, err)
			}
			// The export's scheme, host and path, then /<vm>/<file>.
			e, err := url.Parse(export)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.TrimRight(e.Path, "/") + "/" + translate.FileName(m.Name) + "/" + filepath.Base(disks[i].Path)
			if u == nil || u.Scheme != strings.ToLower(e.Scheme) || u.Host != e.Host || u.Path != want || u.RawQuery != "" || u.Fragment != "" {
				t.Errorf("%s: url %q, want %s://%s%s", dv.Name, h.URL, e.Scheme, e.Host, want)
			}
			if h.CertConfigMap != cmpOr(opts.CertConfigMap, kubevirt.DefaultCertConfigMap) || !slices.Equal(h.SecretExtraHeaders, []string{cmpOr(opts.TokenSecret, kubevirt.DefaultTokenSecret)}) || h.SecretRef != "" {
				t.Errorf("%s: http source %+v", dv.Name, h)
			}
			subdomain(t, "certConfigMap", h.CertConfigMap)
			subdomain(t, "secretExtraHeaders", h.SecretExtraHeaders[0])
		}
	}

	nets := map[string]kv.Network{}
	pods := 0
	for _, n := range spec.Networks {
		label(t, "network", n.Name)
		nets[n.Name] = n
		if n.Pod != nil {
			pods++
		}
		if (n.Pod == nil) == (n.Multus == nil) {
			t.Errorf("network %s: %+v", n.Name, n.NetworkSource)
		}
	}
	if pods > 1 {
		t.Errorf("%d pod networks", pods)
	}
	for _, i := range spec.Domain.Devices.Interfaces {
		n, ok := nets[i.Name]
		if !ok {
			t.Errorf("interface %s has no network", i.Name)
		}
		if !slices.Contains([]string{"e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139", "virtio"}, i.Model) {
			t.Errorf("interface %s: model %q", i.Name, i.Model)
		}
		if (n.Pod != nil) != (i.Masquerade != nil) || (n.Multus != nil) != (i.Bridge != nil) {
			t.Errorf("interface %s: binding %+v on network %+v", i.Name, i.InterfaceBindingMethod, n.NetworkSource)
		}
		var idx int
		if _, err := fmt.Sscanf(i.Name, "nic%d", &idx); err != nil || idx >= len(m.NICs) {
			t.Errorf("interface %s names no NIC of the source", i.Name)
			continue
		}
		if mac := strings.ToLower(m.NICs[idx].MAC); translate.IsMAC(mac) && i.MacAddress != mac {
			t.Errorf("interface %s: MAC %q, the source's %q", i.Name, i.MacAddress, mac)
		}
	}
	if len(spec.Domain.Devices.Interfaces) != len(spec.Networks) {
		t.Errorf("%d interfaces, %d networks", len(spec.Domain.Devices.Interfaces), len(spec.Networks))
	}
	if len(spec.Networks) == 0 && (spec.Domain.Devices.AutoattachPodInterface == nil || *spec.Domain.Devices.AutoattachPodInterface) {
		t.Errorf("no interfaces, and KubeVirt would attach one")
	}

	d := spec.Domain
	if d.Machine == nil || d.Machine.Type != "q35" {
		t.Errorf("machine %+v", d.Machine)
	}
	if d.CPU == nil || int(d.CPU.Sockets*d.CPU.Cores*d.CPU.Threads) != m.CPUs {
		t.Errorf("CPU %+v for %d CPUs", d.CPU, m.CPUs)
	}
	mem := resource.NewQuantity(m.MemoryMiB<<20, resource.BinarySI)
	if d.Memory == nil || d.Memory.Guest == nil || d.Memory.Guest.Cmp(*mem) != 0 {
		t.Errorf("memory %+v, want %s", d.Memory, mem)
	}
	if r := d.Resources.Requests[corev1.ResourceMemory]; r.Cmp(*mem) != 0 {
		t.Errorf("memory request %s, want %s", r.String(), mem)
	}
	bl := d.Firmware.Bootloader
	smm := d.Features != nil && d.Features.SMM != nil && d.Features.SMM.Enabled != nil && *d.Features.SMM.Enabled
	switch {
	case m.Firmware == translate.UEFI:
		if bl.EFI == nil || bl.BIOS != nil || bl.EFI.SecureBoot == nil || *bl.EFI.SecureBoot != m.SecureBoot {
			t.Errorf("UEFI source (secure boot %v): bootloader %+v", m.SecureBoot, bl)
		}
		if m.SecureBoot && !smm {
			t.Errorf("secure boot without SMM")
		}
	default:
		if bl.BIOS == nil || bl.EFI != nil {
			t.Errorf("BIOS source: bootloader %+v", bl)
		}
	}
	if u := strings.ToLower(m.UUID); translate.IsUUID(u) && string(d.Firmware.UUID) != u {
		t.Errorf("firmware UUID %q, the source's %q", d.Firmware.UUID, u)
	}
	if vm.Spec.RunStrategy == nil || *vm.Spec.RunStrategy != kv.RunStrategyHalted || vm.Spec.Running != nil {
		t.Errorf("run strategy %v", vm.Spec.RunStrategy)
	}
	if vm.Spec.Template.ObjectMeta.Labels[kubevirt.LabelDomain] != name {
		t.Errorf("template labels %v", vm.Spec.Template.ObjectMeta.Labels)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func ptrOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func viewDisks(m *translate.Machine, dir, format string) []translate.TargetDisk {
	var out []translate.TargetDisk
	for i := range m.Disks {
		out = append(out, translate.TargetDisk{
			Path: filepath.Join(dir, kubevirt.Target{}.DiskName(m, i)+"."+format), Format: format, QEMUFormat: format,
			Size: int64(i+1)<<30 + 512,
		})
	}
	return out
}

var codeForm = regexp.MustCompile(`^[A-Z][A-Z0-9_]+$`)

// emit runs Emit and decodes its one file.
func emit(t testing.TB, m *translate.Machine, disks []translate.TargetDisk, opts translate.Options) (output, string, []translate.Warning, error) {
	t.Helper()
	outs, warns, err := kubevirt.Target{}.Emit(m, disks, opts)
	for _, w := range warns {
		if !codeForm.MatchString(w.Code) || strings.Contains(w.Message, "\n") {
			t.Errorf("warning %q", w)
		}
	}
	if err != nil {
		if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "kubevirt: ") {
			t.Errorf("error %q", err)
		}
		return output{}, "", warns, err
	}
	if len(outs) != 1 || outs[0].Name != translate.FileName(m.Name)+".yaml" || outs[0].Mode != 0o644 {
		t.Fatalf("outputs %+v", outs)
	}
	return decode(t, string(outs[0].Data)), string(outs[0].Data), warns, nil
}

// TestCorpus: every corpus source, under several options, gives YAML
// that decodes strictly into the API types and holds what check asks.
func TestCorpus(t *testing.T) {
	emitted := 0
	for _, src := range corpusvm.Machines(t) {
		m := src.Machine
		t.Run(filepath.Base(src.File), func(t *testing.T) {
			dir := "/mnt/vmfs/" + translate.FileName(m.Name)
			for _, c := range []struct {
				opts   translate.Options
				format string
			}{
				{translate.Options{}, "qcow2"},
				{translate.Options{Devices: translate.Virtio, Namespace: "vms", StorageClass: "ceph-rbd.fast", ExportURL: "https://10.0.0.7:9443/base/", CertConfigMap: "ca", TokenSecret: "tok"}, "raw"},
				{translate.Options{Devices: translate.Compat, Upload: true}, "qcow2"},
			} {
				disks := viewDisks(m, dir, c.format)
				o, _, _, err := emit(t, m, disks, c.opts)
				if err != nil {
					t.Errorf("%+v: %v", c.opts, err)
					continue
				}
				emitted++
				check(t, m, disks, c.opts, o)
			}
		})
	}
	if emitted < 60 {
		t.Errorf("only %d corpus outputs emitted", emitted)
	}
}
