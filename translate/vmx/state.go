package vmx

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmfs/vmfs/translate"
)

// maxVMSD bounds the .vmsd read: real ones are a few KiB per snapshot.
const maxVMSD = 1 << 20

// locks lists VMware's lock files and folders (*.lck) beside the .vmx at
// path and beside each of m's disks: VMware holds them while the VM runs,
// and leaves them behind when it was not shut down.
func locks(path string, m *translate.Machine) []string {
	cands := []string{path}
	for _, d := range m.Disks {
		cands = append(cands, d.Path)
	}
	var out []string
	dirs := map[string]bool{}
	for _, c := range cands {
		// VMware names a lock after the locked file: vm.vmx.lck,
		// disk.vmdk.lck; a folder's other *.lck are locks of its files.
		dir := filepath.Dir(c)
		if dirs[dir] {
			continue
		}
		dirs[dir] = true
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.EqualFold(filepath.Ext(e.Name()), ".lck") {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// snapshots reads the names of the snapshots the .vmsd beside the .vmx at
// path lists (snapshotN.displayName): a VM with snapshots runs from its
// newest delta disks, which the .vmx names.
func snapshots(path string) []string {
	vmsd := strings.TrimSuffix(path, filepath.Ext(path)) + ".vmsd"
	f, err := os.Open(vmsd)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(io.LimitReader(f, maxVMSD))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if !strings.HasPrefix(k, "snapshot") || !strings.HasSuffix(k, ".displayname") {
			continue
		}
		out = append(out, strings.Trim(strings.TrimSpace(v), `"`))
	}
	return out
}
