package vmx

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
)

// maxVMSD bounds the .vmsd read: real ones are a few KiB per snapshot.
const maxVMSD = 1 << 20

// locks lists VMware's lock files and folders beside the .vmx at path:
// Workstation's *.lck (vm.vmx.lck, disk.vmdk.lck ...) and ESXi's .lck-*
// on NFS datastores; and, for a disk outside the .vmx's folder, that
// disk's own <disk>.lck. VMware holds them while the VM runs and leaves
// them behind when it was not shut down.
func locks(path string, m *translate.Machine) []string {
	dir := filepath.Dir(path)
	var out []string
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			n := e.Name()
			if strings.EqualFold(filepath.Ext(n), ".lck") || strings.HasPrefix(n, ".lck-") {
				out = append(out, filepath.Join(dir, n))
			}
		}
	}
	for _, d := range m.Disks {
		if filepath.Dir(d.Path) == dir {
			continue
		}
		if _, err := os.Lstat(d.Path + ".lck"); err == nil {
			out = append(out, d.Path+".lck")
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// snapshots reads the names of the snapshots the .vmsd beside the .vmx at
// path lists (snapshotN.displayName): a VM with snapshots runs from its
// newest delta disks, which the .vmx names.
func snapshots(path string, env *layouts.Env) []string {
	vmsd := strings.TrimSuffix(path, filepath.Ext(path)) + ".vmsd"
	var r io.Reader
	if env.IsRemote() {
		if _, err := env.Stat(vmsd); err != nil {
			return nil
		}
		b, err := translate.ReadDescriptorIn(env, vmsd, maxVMSD, "a .vmsd")
		if err != nil {
			return nil
		}
		r = bytes.NewReader(b)
	} else {
		f, err := os.Open(vmsd)
		if err != nil {
			return nil
		}
		defer f.Close()
		r = f
	}
	var out []string
	sc := bufio.NewScanner(io.LimitReader(r, maxVMSD))
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
