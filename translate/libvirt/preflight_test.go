package libvirt

import "testing"

// TestTPMFact: a domain's <tpm> reaches the machine for the pre-flight
// report.
func TestTPMFact(t *testing.T) {
	for _, tc := range []struct {
		name, dev string
		want      bool
	}{
		{"none", "", false},
		{"emulated tpm 2.0", `<tpm model="tpm-crb"><backend type="emulator" version="2.0"/></tpm>`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseBytes("/vm/a.xml", []byte(`<domain type="kvm"><name>a</name><memory unit="MiB">64</memory><devices><disk type="file" device="disk"><source file="/vm/a.qcow2"/><target dev="vda" bus="virtio"/></disk>`+tc.dev+`</devices></domain>`))
			if err != nil {
				t.Fatal(err)
			}
			if m.TPM != tc.want {
				t.Errorf("TPM = %v, want %v", m.TPM, tc.want)
			}
		})
	}
}
