package formats_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/layouts/formats"
)

// TestRegistry checks what the rest of vmfs relies on: names, QEMU names
// and suffixes name one format each; raw, the fallback, comes last and is
// the only one; every format opens; subformats belong to formats that
// synthesize; the lookups find every format by its names.
func TestRegistry(t *testing.T) {
	all := formats.All()
	names, qemu, suffixes := map[string]bool{}, map[string]bool{}, map[string]string{}
	for i, f := range all {
		if f.Name == "" || f.Name != strings.ToLower(f.Name) || names[f.Name] {
			t.Errorf("format %d: name %q empty, not lower case or repeated", i, f.Name)
		}
		names[f.Name] = true
		if len(f.QEMUNames) == 0 {
			t.Errorf("%s: no QEMU name", f.Name)
		}
		for _, q := range f.QEMUNames {
			if qemu[q] {
				t.Errorf("%s: QEMU name %q is another format's too", f.Name, q)
			}
			qemu[q] = true
			if g, ok := formats.ByQEMUName(q); !ok || g.Name != f.Name {
				t.Errorf("ByQEMUName(%q) = %q, %v", q, g.Name, ok)
			}
		}
		for _, s := range f.Suffixes {
			if other, ok := suffixes[s]; ok || !strings.HasPrefix(s, ".") || s != strings.ToLower(s) {
				t.Errorf("%s: suffix %q malformed or claimed by %s too", f.Name, s, other)
			}
			suffixes[s] = f.Name
			if !f.ClaimsName("/d/disk" + strings.ToUpper(s)) {
				t.Errorf("%s: does not claim disk%s", f.Name, strings.ToUpper(s))
			}
		}
		if len(f.Suffixes) > 0 && f.Signature == "" {
			t.Errorf("%s: claims names but has no signature to name in errors", f.Name)
		}
		if f.Fallback != (i == len(all)-1) {
			t.Errorf("%s: fallback %v at position %d of %d", f.Name, f.Fallback, i, len(all))
		}
		if f.Open == nil {
			t.Errorf("%s: no Open", f.Name)
		}
		if f.Synthesize == nil && (len(f.Subformats) > 0 || f.Identity != nil) {
			t.Errorf("%s: subformats or identity without Synthesize", f.Name)
		}
		if g, ok := formats.ByName(f.Name); !ok || g.Name != f.Name {
			t.Errorf("ByName(%q) = %q, %v", f.Name, g.Name, ok)
		}
	}
	if _, ok := formats.ByName("parallels"); ok {
		t.Error("ByName finds a format vmfs does not read")
	}
	// All hands out a copy: changing it changes no later answer.
	a := formats.All()
	a[0].Name = "changed"
	if formats.All()[0].Name == "changed" {
		t.Error("All returns shared state")
	}
}

// TestDoc checks docs/formats.md against the registry: the probing order,
// the suffixes that claim a file, and the targets table's formats and
// subformats (with the default marked).
func TestDoc(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "formats.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	m := regexp.MustCompile(`(?s)Probing order \(the order of ` + "`layouts/formats`" + `\): (.*?), raw last`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/formats.md: no probing order sentence")
	}
	var order []string
	for _, w := range strings.Split(m[1], ",") {
		order = append(order, strings.ToLower(strings.Fields(w)[0]))
	}
	var want []string
	for _, f := range formats.All() {
		if !f.Fallback {
			want = append(want, f.Name)
		}
		for _, s := range f.Suffixes {
			if !strings.Contains(doc, "`"+s+"`") {
				t.Errorf("docs/formats.md does not name %s's suffix %s", f.Name, s)
			}
		}
	}
	if !slices.Equal(order, want) {
		t.Errorf("docs/formats.md: probing order %v, the registry's %v", order, want)
	}

	// The targets table: | `--format` | `--subformat` | ...
	section := doc[strings.Index(doc, "## Targets"):]
	subs := map[string][]string{}
	defaults := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || strings.HasPrefix(strings.TrimSpace(cells[1]), "-") || strings.Contains(cells[1], "`--format`") {
			continue
		}
		name := strings.Fields(cells[1])[0]
		if _, ok := subs[name]; !ok {
			subs[name] = nil
		}
		for _, s := range strings.Split(cells[2], ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if v, ok := strings.CutSuffix(s, " (default)"); ok {
				s = v
				defaults[name] = s
			}
			subs[name] = append(subs[name], s)
		}
	}
	for _, f := range formats.All() {
		if f.Synthesize == nil {
			continue
		}
		got, ok := subs[f.Name]
		if !ok {
			t.Errorf("docs/formats.md: no target row for %s", f.Name)
			continue
		}
		delete(subs, f.Name)
		if !slices.Equal(got, f.Subformats) {
			t.Errorf("docs/formats.md: %s subformats %v, the registry's %v", f.Name, got, f.Subformats)
		}
		if len(f.Subformats) > 0 && defaults[f.Name] != f.Subformats[0] {
			t.Errorf("docs/formats.md: %s default %q, the registry's %q", f.Name, defaults[f.Name], f.Subformats[0])
		}
	}
	for name := range subs {
		t.Errorf("docs/formats.md: target row for %s, which the registry does not write", name)
	}
}
