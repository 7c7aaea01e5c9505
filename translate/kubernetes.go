package translate

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// The forms of Kubernetes object names (RFC 1123, as the API server
// checks them): a label of at most 63 lowercase letters, digits and '-',
// alphanumeric at both ends; a subdomain, labels joined by '.', of at
// most 253.
var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// IsDNSLabel says s is a DNS-1123 label: the form of a namespace, a
// VirtualMachine's name, a network's.
func IsDNSLabel(s string) bool { return len(s) <= 63 && dnsLabel.MatchString(s) }

// IsDNSSubdomain says s is a DNS-1123 subdomain: the form of a
// ConfigMap's, a Secret's, a StorageClass's name.
func IsDNSSubdomain(s string) bool { return len(s) <= 253 && dnsSubdomain.MatchString(s) }

// CheckKubernetes refuses Kubernetes options that no cluster takes:
// names not of their form, an export URL that is not http(s)://HOST
// with an optional port and path, and --upload with the options of an
// import from the export ("" and false take the target's defaults).
func (o Options) CheckKubernetes() error {
	if o.ExportURL != "" {
		if err := checkExportURL(o.ExportURL); err != nil {
			return err
		}
	}
	for _, n := range []struct {
		flag, v   string
		subdomain bool
	}{
		{"--cert-configmap", o.CertConfigMap, true},
		{"--token-secret", o.TokenSecret, true},
		{"--namespace", o.Namespace, false},
		{"--storage-class", o.StorageClass, true},
	} {
		switch {
		case n.v == "":
		case n.subdomain && !IsDNSSubdomain(n.v):
			return fmt.Errorf("%s: %q is not a Kubernetes object name (lowercase letters, digits, '-' and '.', alphanumeric at both ends, at most 253)", n.flag, n.v)
		case !n.subdomain && !IsDNSLabel(n.v):
			return fmt.Errorf("%s: %q is not a Kubernetes namespace name (lowercase letters, digits and '-', alphanumeric at both ends, at most 63)", n.flag, n.v)
		}
	}
	if o.Upload {
		for _, n := range []struct{ flag, v string }{{"--export-url", o.ExportURL}, {"--cert-configmap", o.CertConfigMap}, {"--token-secret", o.TokenSecret}} {
			if n.v != "" {
				return fmt.Errorf("%s: the disks are uploaded (--upload), not imported from the export", n.flag)
			}
		}
	}
	return nil
}

func checkExportURL(s string) error {
	bad := func(why string) error {
		return fmt.Errorf("--export-url: %q is not https://HOST[:PORT][/PATH]: %s", s, why)
	}
	u, err := url.Parse(s)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return bad(err.Error())
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return bad("the scheme is not https (or http)")
	case u.Opaque != "" || u.Hostname() == "":
		return bad("no host")
	case u.User != nil:
		return bad("it holds credentials: the token goes in the Secret --token-secret names")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return bad("it has a query or fragment")
	}
	return nil
}

// kubernetesIgnored warns of each Kubernetes option a target that
// creates no Kubernetes objects ignores.
func (mp *Mapping) kubernetesIgnored(o Options, caps Caps, name string) {
	if caps.Kubernetes {
		return
	}
	for _, n := range []struct{ flag, v string }{
		{"--export-url", o.ExportURL}, {"--cert-configmap", o.CertConfigMap}, {"--token-secret", o.TokenSecret},
		{"--namespace", o.Namespace}, {"--storage-class", o.StorageClass},
	} {
		if n.v != "" {
			mp.warn(WarnIgnored, "%s %s has no effect on the %s target: it creates no Kubernetes objects", n.flag, n.v, name)
		}
	}
	if o.Upload {
		mp.warn(WarnIgnored, "--upload has no effect on the %s target: it creates no Kubernetes objects", name)
	}
}
