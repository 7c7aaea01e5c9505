package translate

import (
	"strings"
	"testing"
)

// TestCheckKubernetes: the Kubernetes options' values, as the command
// line checks them (a refusal names the flag).
func TestCheckKubernetes(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		flag string // "": accepted
	}{
		{"none", Options{}, ""},
		{"https", Options{ExportURL: "https://vmfs.vmfs.svc:8443"}, ""},
		{"https-path", Options{ExportURL: "https://10.0.0.1/vmfs/"}, ""},
		{"ipv6", Options{ExportURL: "https://[fd00::1]:8443"}, ""},
		{"http", Options{ExportURL: "http://h:8080"}, ""},
		{"no-scheme", Options{ExportURL: "vmfs:8443"}, "--export-url"},
		{"ftp", Options{ExportURL: "ftp://h/x"}, "--export-url"},
		{"no-host", Options{ExportURL: "https://"}, "--export-url"},
		{"port-only", Options{ExportURL: "https://:8443"}, "--export-url"},
		{"credentials", Options{ExportURL: "https://u:p@h"}, "--export-url"},
		{"query", Options{ExportURL: "https://h/?a=b"}, "--export-url"},
		{"fragment", Options{ExportURL: "https://h/#x"}, "--export-url"},
		{"newline", Options{ExportURL: "https://h/\nx"}, "--export-url"},
		{"names", Options{CertConfigMap: "vmfs-ca.v1", TokenSecret: "t", Namespace: "vms-1", StorageClass: "ceph.rbd"}, ""},
		{"namespace-dot", Options{Namespace: "a.b"}, "--namespace"},
		{"namespace-long", Options{Namespace: strings.Repeat("a", 64)}, "--namespace"},
		{"namespace-63", Options{Namespace: strings.Repeat("a", 63)}, ""},
		{"configmap-upper", Options{CertConfigMap: "CA"}, "--cert-configmap"},
		{"secret-slash", Options{TokenSecret: "a/b"}, "--token-secret"},
		{"storage-class-underscore", Options{StorageClass: "fast_ssd"}, "--storage-class"},
		{"upload", Options{Upload: true, Namespace: "vms", StorageClass: "x"}, ""},
		{"upload-url", Options{Upload: true, ExportURL: "https://h"}, "--export-url"},
		{"upload-cert", Options{Upload: true, CertConfigMap: "ca"}, "--cert-configmap"},
		{"upload-token", Options{Upload: true, TokenSecret: "tok"}, "--token-secret"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.o.CheckKubernetes()
			if c.flag == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), c.flag+": ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("err %v, want one line naming %s", err, c.flag)
			}
		})
	}
}
