// Package vsphere reads a virtual machine where it lives: on the datastores
// of an ESXi host or a vCenter, through the vSphere API (github.com/vmware/
// govmomi) for the inventory and the datastore file API (HTTP GET with a
// Range header) for the bytes. It never writes to a datastore, but for the
// snapshot --snapshot asks for, which it removes again.
//
// A VM's files are named in one namespace, the one ESXi itself uses in a
// .vmx: /vmfs/volumes/<datastore>/<folder>/<file>. The .vmx and VMDK
// readers resolve the references they hold in it unchanged.
package vsphere

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Scheme is the URL scheme of a vSphere source.
const Scheme = "vsphere"

// Location is a parsed vsphere://USER@HOST[:PORT]/DATACENTER[/vm/PATH] URL.
type Location struct {
	User       string
	Host       string // host, or host:port
	Datacenter string
	// VM is the inventory path under the datacenter's vm folder ("web01",
	// "prod/web01"), or a bare name; "" names no VM (vmfs ls).
	VM string
}

// IsURL says whether s is a vsphere:// URL.
func IsURL(s string) bool {
	return strings.HasPrefix(strings.ToLower(s), Scheme+"://")
}

// ParseURL parses a vsphere:// URL. A password in it is refused: a command
// line is visible to every user of the host.
func ParseURL(raw string) (Location, error) {
	if !IsURL(raw) {
		return Location{}, fmt.Errorf("%q: not a %s:// URL", raw, Scheme)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url's message quotes the whole URL: keep ours to the point.
		var ue *url.Error
		msg := err.Error()
		if ok := asURLError(err, &ue); ok {
			msg = ue.Err.Error()
		}
		return Location{}, fmt.Errorf("%s: %s", redact(raw), msg)
	}
	if _, has := u.User.Password(); has {
		return Location{}, fmt.Errorf("%s: a password in the URL is refused (it would show in the process list): set VMFS_VSPHERE_PASSWORD or pass --password-file", u.Redacted())
	}
	loc := Location{Host: u.Host}
	if u.User != nil {
		loc.User = u.User.Username()
	}
	if loc.User == "" {
		return Location{}, fmt.Errorf("%s: no user: the form is %s://USER@HOST[:PORT]/DATACENTER[/vm/PATH]", raw, Scheme)
	}
	if u.Hostname() == "" {
		return Location{}, fmt.Errorf("%s: no host: the form is %s://USER@HOST[:PORT]/DATACENTER[/vm/PATH]", raw, Scheme)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Location{}, fmt.Errorf("%s: port %q is not from 1 to 65535", raw, p)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Location{}, fmt.Errorf("%s: a query or fragment is not part of a %s:// URL", raw, Scheme)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	for _, p := range parts {
		if p == "." || p == ".." {
			return Location{}, fmt.Errorf("%s: %q is not an inventory name", raw, p)
		}
	}
	if parts[0] == "" {
		return Location{}, fmt.Errorf("%s: no datacenter: the form is %s://USER@HOST[:PORT]/DATACENTER[/vm/PATH] (an ESXi host's is ha-datacenter)", raw, Scheme)
	}
	loc.Datacenter = parts[0]
	rest := parts[1:]
	switch {
	case len(rest) == 0:
	case rest[0] == "vm" && len(rest) > 1:
		loc.VM = strings.Join(rest[1:], "/")
	case len(rest) == 1:
		// DC/NAME: a VM by name, wherever it is in the vm folder.
		loc.VM = rest[0]
	default:
		return Location{}, fmt.Errorf("%s: %q is not /vm/INVENTORY/PATH under the datacenter", raw, "/"+strings.Join(rest, "/"))
	}
	for _, p := range strings.Split(loc.VM, "/") {
		if loc.VM != "" && p == "" {
			return Location{}, fmt.Errorf("%s: empty name in the inventory path", raw)
		}
	}
	return loc, nil
}

// String is the URL again, without a password (there is none).
func (l Location) String() string {
	s := Scheme + "://" + url.User(l.User).String() + "@" + l.Host + "/" + l.Datacenter
	if l.VM != "" {
		s += "/vm/" + l.VM
	}
	return s
}

// hostPort is Host with the port made explicit (443 by default).
func (l Location) hostPort() string {
	if _, _, err := net.SplitHostPort(l.Host); err == nil {
		return l.Host
	}
	return net.JoinHostPort(strings.Trim(l.Host, "[]"), "443")
}

func asURLError(err error, target **url.Error) bool {
	ue, ok := err.(*url.Error)
	if ok {
		*target = ue
	}
	return ok
}

// redact drops what sits between "://" and the last "@" of a URL that does
// not parse, so that a password it may hold is not repeated.
func redact(raw string) string {
	i := strings.Index(raw, "://")
	j := strings.LastIndex(raw, "@")
	if i < 0 || j < i {
		return raw
	}
	return raw[:i+3] + "***" + raw[j:]
}
