package remote

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzContentRange: a header that parses is a well-formed range of the
// size it names, and prints back to what was parsed.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-0/1", "bytes 10-19/100", "bytes */0", "bytes 0-99/*", "bytes 5-4/10", "bytes -1-2/3", "bytes +1-2/3", "BYTES 1-1/2", "bytes 0-9/9", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		cr, err := ParseContentRange(h)
		if err != nil {
			return
		}
		if cr.First == -1 {
			if cr.Last != -1 || cr.Size < 0 {
				t.Fatalf("%q: unsatisfied range %+v", h, cr)
			}
			return
		}
		if cr.First < 0 || cr.Last < cr.First || (cr.Size >= 0 && cr.Last >= cr.Size) || cr.Size < -1 {
			t.Fatalf("%q: parsed to %+v", h, cr)
		}
		size := "*"
		if cr.Size >= 0 {
			size = strconv.FormatInt(cr.Size, 10)
		}
		again, err := ParseContentRange("bytes " + strconv.FormatInt(cr.First, 10) + "-" + strconv.FormatInt(cr.Last, 10) + "/" + size)
		if err != nil || again != cr {
			t.Fatalf("%q: %+v does not print back: %+v, %v", h, cr, again, err)
		}
	})
}

// FuzzParseURL: an accepted URL is https (or http with insecure), has a
// host, no credentials, and a clean file path; the error of a refused one
// never shows a password.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"https://h/a.ova", "https://h:8443/x/../y.vmdk", "http://h/a", "https://u:pw@h/a", "https://h/", "https://h/a?b", "https:///a", "ftp://h/a", "https://h/a%00b", "https://h//a"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, insecure bool) {
		base, p, err := ParseURL(raw, insecure)
		if err != nil {
			if i := strings.Index(raw, "://"); i >= 0 {
				if at := strings.LastIndex(raw, "@"); at > i {
					if _, pw, ok := strings.Cut(raw[i+3:at], ":"); ok && len(pw) > 3 && !strings.Contains(raw[:i+3]+raw[at:], pw) && strings.Contains(err.Error(), pw) {
						t.Fatalf("%q: error shows the password: %v", raw, err)
					}
				}
			}
			return
		}
		if base.Host == "" || base.User != nil || (base.Scheme != "https" && !(insecure && base.Scheme == "http")) {
			t.Fatalf("%q: base %v", raw, base)
		}
		if CleanPath(p) != nil || strings.HasSuffix(p, "/") {
			t.Fatalf("%q: path %q", raw, p)
		}
	})
}

// FuzzThumbprint: an accepted thumbprint is 32 bytes.
func FuzzThumbprint(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add(strings.Repeat("AB:", 31) + "AB")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseThumbprint(s)
		if err == nil && len(b) != 32 {
			t.Fatalf("%q: %d bytes", s, len(b))
		}
	})
}
