package libvirt

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/hostfacts"
	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/translate"
)

// TestHostNetworks checks the generated NICs against the system libvirtd:
// a network it has is used and the domain starts; a missing one is a
// MAP_NET_MISSING warning; with --network-fallback user the NIC uses
// user-mode networking and the domain starts; libvirt's 'default'
// network, when the host lacks it, is missing like any other. The test
// defines a network of its own and removes it.
func TestHostNetworks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts VMs")
	}
	testenv.StartLibvirt(t)
	virsh := func(args ...string) (string, error) {
		out, err := exec.Command("virsh", append([]string{"-c", "qemu:///system"}, args...)...).CombinedOutput()
		return string(out), err
	}
	netName := fmt.Sprintf("vmfs-test-net-%d", os.Getpid())
	bridge := fmt.Sprintf("vmfst%d", os.Getpid()%1000000)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	netXML := filepath.Join(dir, "net.xml")
	if err := os.WriteFile(netXML, []byte("<network><name>"+netName+"</name><bridge name='"+bridge+"'/></network>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := virsh("net-define", netXML); err != nil {
		skipIfGone(t, []byte(out))
		t.Fatalf("net-define: %v %s", err, out)
	}
	t.Cleanup(func() {
		virsh("net-destroy", netName)
		if out, err := virsh("net-undefine", netName); err != nil {
			t.Errorf("net-undefine %s: %v %s", netName, err, out)
		}
	})
	if out, err := virsh("net-start", netName); err != nil {
		t.Fatalf("net-start %s (an isolated bridge): %v %s", netName, err, out)
	}

	start := time.Now()
	host := hostfacts.Probe(context.Background(), false, true, os.Getenv)
	t.Logf("probing libvirt's networks took %v", time.Since(start))
	if host.NetworksErr != "" || !slices.Contains(host.Networks, netName) {
		t.Fatalf("probe: %+v, want %s among the active networks", host, netName)
	}
	hasDefault := slices.Contains(host.Networks, "default")
	t.Logf("libvirt networks: active %v, inactive %v", host.Networks, host.Inactive)

	img := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	type result int
	const (
		starts  result = iota // defined and started
		missing               // MAP_NET_MISSING, not started
	)
	type netCase struct {
		name     string
		opts     translate.Options
		want     result
		warn     string // a warning code the mapping must raise
		liveWant string // in the live XML
	}
	cases := []netCase{
		{name: "present", opts: translate.Options{NetworkMap: map[string]string{"VM Network": netName}}, want: starts, liveWant: "network='" + netName + "'"},
		{name: "missing", opts: translate.Options{NetworkMap: map[string]string{"VM Network": "vmfs-no-such-net"}}, want: missing, warn: translate.WarnNetMissing},
		{name: "missing-fallback-user", opts: translate.Options{NetworkMap: map[string]string{"VM Network": "vmfs-no-such-net"}, NetworkFallback: "user"},
			want: starts, warn: translate.WarnNetFallback, liveWant: "<interface type='user'>"},
		{name: "default-fallback-user", opts: translate.Options{NetworkFallback: "user"}, want: starts, warn: translate.WarnNetRenamed},
	}
	if !hasDefault {
		cases = append(cases, netCase{name: "default-missing", want: missing, warn: translate.WarnNetMissing})
	}
	run := func(c netCase, host *translate.Host) {
		t.Run(c.name, func(t *testing.T) {
			m := &translate.Machine{
				Name: "vmfs-net-test-" + c.name, MemoryMiB: 128, CPUs: 1, Firmware: translate.BIOS,
				Disks: []translate.Disk{{Path: "/src/a.vmdk", Bus: translate.BusSATA}},
				NICs:  []translate.NIC{{MAC: "52:54:00:00:00:42", Model: "e1000", Network: "VM Network", Type: "bridge"}},
			}
			opts := c.opts
			opts.DomainType, opts.Host = "qemu", host
			dom, warns, err := Domain(m, []translate.TargetDisk{{Path: img, Format: "qcow2"}}, opts)
			if err != nil {
				t.Fatal(err)
			}
			codes := map[string]bool{}
			for _, w := range warns {
				codes[w.Code] = true
			}
			if c.warn != "" && !codes[c.warn] {
				t.Errorf("no %s warning in %v", c.warn, warns)
			}
			if c.want == starts && codes[translate.WarnNetMissing] {
				t.Errorf("%s warning for a network the host has: %v", translate.WarnNetMissing, warns)
			}
			if c.want == missing {
				return
			}
			dom.Devices.Graphics = nil
			data, err := dom.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "d.xml")
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			virsh("destroy", m.Name)
			virsh("undefine", m.Name)
			if out, err := virsh("define", p); err != nil {
				skipIfGone(t, []byte(out))
				t.Fatalf("define: %v %s", err, out)
			}
			t.Cleanup(func() { virsh("destroy", m.Name); virsh("undefine", m.Name) })
			if out, err := virsh("start", "--paused", m.Name); err != nil {
				skipIfGone(t, []byte(out))
				t.Fatalf("start: %v %s\n%s", err, out, data)
			}
			live, err := virsh("dumpxml", m.Name)
			if err != nil {
				t.Fatal(err)
			}
			if c.liveWant != "" && !strings.Contains(live, c.liveWant) {
				t.Errorf("live XML lacks %q:\n%s", c.liveWant, live)
			}
		})
	}
	for _, c := range cases {
		run(c, host)
	}

	// With a 'default' network: start the host's (or define an isolated
	// one) for the test, and put it back as it was.
	if hasDefault {
		run(netCase{name: "default-present", want: starts, warn: translate.WarnNetRenamed, liveWant: "network='default'"}, host)
		return
	}
	if !slices.Contains(host.Inactive, "default") {
		defXML := filepath.Join(dir, "default.xml")
		if err := os.WriteFile(defXML, []byte("<network><name>default</name><bridge name='"+bridge+"d'/></network>\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := virsh("net-define", defXML); err != nil {
			t.Fatalf("net-define default: %v %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := virsh("net-undefine", "default"); err != nil {
				t.Errorf("net-undefine default: %v %s", err, out)
			}
		})
	}
	if out, err := virsh("net-start", "default"); err != nil {
		t.Fatalf("net-start default: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := virsh("net-destroy", "default"); err != nil {
			t.Errorf("net-destroy default: %v %s", err, out)
		}
	})
	host = hostfacts.Probe(context.Background(), false, true, os.Getenv)
	if !slices.Contains(host.Networks, "default") {
		t.Fatalf("probe after net-start default: %+v", host)
	}
	run(netCase{name: "default-present", want: starts, warn: translate.WarnNetRenamed, liveWant: "network='default'"}, host)
}
