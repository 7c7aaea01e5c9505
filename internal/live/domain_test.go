package live

import (
	"strings"
	"testing"
)

func TestParseJobInfo(t *testing.T) {
	for _, c := range []struct {
		name, out string
		want      jobInfo
		ready     bool
		err       bool
	}{
		{"no job", "\n", jobInfo{}, false, false},
		{"copying", " type=Block Copy\n bandwidth=0\n cur=16777216\n end=67108864\n\n", jobInfo{true, "Block Copy", 16 << 20, 64 << 20}, false, false},
		{"in sync", " type=Block Copy\n bandwidth=2\n cur=67387392\n end=67387392\n", jobInfo{true, "Block Copy", 67387392, 67387392}, true, false},
		{"not started", " type=Block Copy\n cur=0\n end=0\n", jobInfo{true, "Block Copy", 0, 0}, false, false},
		{"bad number", " type=Block Copy\n cur=x\n end=1\n", jobInfo{}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseJobInfo(c.out)
			if (err != nil) != c.err {
				t.Fatalf("err %v, want error: %v", err, c.err)
			}
			if err == nil && (got != c.want || got.Ready() != c.ready) {
				t.Errorf("got %+v (ready %v), want %+v (ready %v)", got, got.Ready(), c.want, c.ready)
			}
		})
	}
}

const domXML = `<domain type="kvm">
  <name>web</name>
  <os><type arch="x86_64" machine="q35">hvm</type>%OS%</os>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="%FMT%"/>
      <source file="/mnt/web/web-disk0.qcow2"/>
      <target dev="sda" bus="scsi"/>%MIRROR%
    </disk>
    <disk type="file" device="disk">
      <driver name="qemu" type="raw"/>
      <source file="/var/lib/libvirt/images/other.raw"/>
      <target dev="sdb" bus="scsi"/>
    </disk>%EXTRA%
  </devices>
</domain>`

func dom(fmt, os, mirror, extra string) string {
	return strings.NewReplacer("%FMT%", fmt, "%OS%", os, "%MIRROR%", mirror, "%EXTRA%", extra).Replace(domXML)
}

func TestMountDisks(t *testing.T) {
	mnts := []string{"/mnt/web"}
	for _, c := range []struct {
		name, xml string
		want      []disk
		err       string
	}{
		{"one disk in the mount", dom("qcow2", "", "", ""),
			[]disk{{Target: "sda", Source: "/mnt/web/web-disk0.qcow2", Format: "qcow2"}}, ""},
		{"a job running", dom("qcow2", "", `<mirror type="file" job="copy"><format type="qcow2"/><source file="/dest/web-disk0.qcow2"/></mirror>`, ""),
			[]disk{{Target: "sda", Source: "/mnt/web/web-disk0.qcow2", Format: "qcow2", Mirror: "/dest/web-disk0.qcow2"}}, ""},
		{"vmdk", dom("vmdk", "", "", ""), nil, "copies qcow2 and raw disks"},
		{"cdrom in the mount", dom("qcow2", "", "", `<disk type="file" device="cdrom"><source file="/mnt/web/x.iso"/><target dev="sdc" bus="sata"/><readonly/></disk>`), nil, "read-only cdrom"},
		{"nvram in the mount", dom("qcow2", `<loader readonly="yes" type="pflash">/usr/share/OVMF/OVMF_CODE_4M.fd</loader><nvram>/mnt/web/vars.fd</nvram>`, "", ""), nil, "firmware variables"},
		{"kernel in the mount", dom("qcow2", `<kernel>/mnt/web/vmlinuz</kernel>`, "", ""), nil, "kernel"},
		{"a mount of the same prefix", strings.ReplaceAll(dom("qcow2", "", "", ""), "/mnt/web/", "/mnt/web2/"), nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			name, got, err := mountDisks(c.xml, mnts)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one saying %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if name != "web" || len(got) != len(c.want) {
				t.Fatalf("got %s %+v, want %+v", name, got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("disk %d: got %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestRewriteDisks(t *testing.T) {
	moved := map[string]movedDisk{"sda": {From: "/mnt/web/web-disk0.qcow2", To: "/dest/web-disk0.raw", Format: "raw"}}
	for _, c := range []struct {
		name, xml string
		changed   bool
	}{
		{"names the mount", dom("qcow2", "", "", ""), true},
		{"rewritten by libvirt", strings.ReplaceAll(dom("raw", "", "", ""), "/mnt/web/web-disk0.qcow2", "/dest/web-disk0.raw"), false},
		{"rewritten, format not", strings.ReplaceAll(dom("qcow2", "", "", ""), "/mnt/web/web-disk0.qcow2", "/dest/web-disk0.raw"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, changed, err := rewriteDisks(c.xml, moved)
			if err != nil {
				t.Fatal(err)
			}
			if changed != c.changed {
				t.Fatalf("changed %v, want %v", changed, c.changed)
			}
			srcs, err := diskSources(out)
			if err != nil {
				t.Fatal(err)
			}
			if srcs["sda"] != "/dest/web-disk0.raw" || srcs["sdb"] != "/var/lib/libvirt/images/other.raw" {
				t.Errorf("sources after: %v", srcs)
			}
			if _, disks, _ := mountDisks(out, []string{"/dest"}); len(disks) != 1 || disks[0].Format != "raw" {
				t.Errorf("the copy's disk after: %+v", disks)
			}
		})
	}
}

func TestMirrorsReady(t *testing.T) {
	m := func(ready string) string {
		return dom("qcow2", "", `<mirror type="file" job="copy"`+ready+`><source file="/dest/a.qcow2"/></mirror>`, "")
	}
	for _, c := range []struct {
		name, xml string
		want      bool
	}{
		{"ready", m(` ready="yes"`), true},
		{"copying", m(""), false},
		{"no job", dom("qcow2", "", "", ""), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := mirrorsReady(c.xml, []string{"sda"})
			if err != nil || got != c.want {
				t.Errorf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}
