// Package corpusvm parses the VM descriptors of the shared corpus, for
// the tests of targets that run every corpus source.
package corpusvm

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vmfs/vmfs/internal/corpus"
	"github.com/vmfs/vmfs/translate"
	"github.com/vmfs/vmfs/translate/libvirt"
	"github.com/vmfs/vmfs/translate/ovf"
	"github.com/vmfs/vmfs/translate/vbox"
	"github.com/vmfs/vmfs/translate/vmx"
)

// Source is one corpus descriptor and the machine parsed from it.
type Source struct {
	File    string
	Machine *translate.Machine
}

// Machines parses every descriptor of the corpus (.vmx, virt-v2v's
// .vmx, .ovf, .vbox, libvirt XML), in the order of their paths; one
// vmfs does not read is logged and left out. It fails t when a corpus
// folder is missing.
func Machines(t testing.TB) []Source {
	t.Helper()
	type parser func(name string, b []byte) (*translate.Machine, error)
	var files []string
	parsers := map[string]parser{}
	for p, parse := range map[string]parser{
		"vmx/*.vmx": vmx.ParseBytes, "virt-v2v/*.vmx": vmx.ParseBytes, "ovf/*.ovf": ovf.ParseBytes,
		"vbox/*.vbox": vbox.ParseBytes, "libvirt/*.xml": libvirt.ParseBytes,
	} {
		for _, f := range corpus.Glob(t, p) {
			files, parsers[f] = append(files, f), parse
		}
	}
	slices.Sort(files)
	var out []Source
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := parsers[f](f, b)
		if err != nil {
			t.Logf("%s: not a source vmfs reads: %v", filepath.Base(f), err)
			continue
		}
		out = append(out, Source{File: f, Machine: m})
	}
	return out
}
