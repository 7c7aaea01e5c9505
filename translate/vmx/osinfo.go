package vmx

import "strings"

// osinfo maps VMware guestOS identifiers to libosinfo ids. Identifiers
// that do not name one release (ubuntu-64, freebsd, centos-64 ...) map to
// nothing rather than to a guess.
var osinfo = map[string]string{
	"winxppro":              "http://microsoft.com/win/xp",
	"winxppro-64":           "http://microsoft.com/win/xp",
	"winvista":              "http://microsoft.com/win/vista",
	"winvista-64":           "http://microsoft.com/win/vista",
	"windows7":              "http://microsoft.com/win/7",
	"windows7-64":           "http://microsoft.com/win/7",
	"windows8":              "http://microsoft.com/win/8",
	"windows8-64":           "http://microsoft.com/win/8",
	"windows9":              "http://microsoft.com/win/10",
	"windows9-64":           "http://microsoft.com/win/10",
	"windows11-64":          "http://microsoft.com/win/11",
	"winnetenterprise":      "http://microsoft.com/win/2k3",
	"winnetenterprise-64":   "http://microsoft.com/win/2k3",
	"winnetstandard":        "http://microsoft.com/win/2k3",
	"winnetstandard-64":     "http://microsoft.com/win/2k3",
	"longhorn":              "http://microsoft.com/win/2k8",
	"longhorn-64":           "http://microsoft.com/win/2k8",
	"windows7srv-64":        "http://microsoft.com/win/2k8r2",
	"windows8srv-64":        "http://microsoft.com/win/2k12r2",
	"windows9srv-64":        "http://microsoft.com/win/2k16",
	"windows2019srv-64":     "http://microsoft.com/win/2k19",
	"windows2019srvnext-64": "http://microsoft.com/win/2k22",
	"windows2022srvnext-64": "http://microsoft.com/win/2k25",
	"rhel4":                 "http://redhat.com/rhel/4.0",
	"rhel4-64":              "http://redhat.com/rhel/4.0",
	"rhel5":                 "http://redhat.com/rhel/5.0",
	"rhel5-64":              "http://redhat.com/rhel/5.0",
	"rhel6":                 "http://redhat.com/rhel/6.0",
	"rhel6-64":              "http://redhat.com/rhel/6.0",
	"rhel7-64":              "http://redhat.com/rhel/7.0",
	"rhel8-64":              "http://redhat.com/rhel/8.0",
	"rhel9-64":              "http://redhat.com/rhel/9.0",
	"centos6-64":            "http://centos.org/centos/6.0",
	"centos7-64":            "http://centos.org/centos/7.0",
	"centos8-64":            "http://centos.org/centos/8",
	"debian8-64":            "http://debian.org/debian/8",
	"debian9-64":            "http://debian.org/debian/9",
	"debian10-64":           "http://debian.org/debian/10",
	"debian11-64":           "http://debian.org/debian/11",
	"debian12-64":           "http://debian.org/debian/12",
	"other4xlinux-64":       "http://libosinfo.org/linux/2020",
	"other5xlinux-64":       "http://libosinfo.org/linux/2022",
	"other6xlinux-64":       "http://libosinfo.org/linux/2024",
}

// OSInfo returns the libosinfo id of a VMware guestOS, "" when unknown.
func OSInfo(guestOS string) string {
	return osinfo[strings.ToLower(strings.TrimSpace(guestOS))]
}

// GuestOS returns the VMware guestOS for a libosinfo id, "" when unknown.
func GuestOS(osInfo string) string {
	best := ""
	for g, id := range osinfo {
		// Prefer the 64-bit identifier, then the shortest, for stability.
		if id != osInfo {
			continue
		}
		if best == "" || (strings.HasSuffix(g, "-64") && !strings.HasSuffix(best, "-64")) ||
			(strings.HasSuffix(g, "-64") == strings.HasSuffix(best, "-64") && g < best) {
			best = g
		}
	}
	return best
}
