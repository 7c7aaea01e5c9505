package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
	"github.com/vmfs/vmfs/internal/vsphere/vspheretest"
)

// vsphereSize is the disk the vSphere rows read: a flat VMDK of random
// bytes, so that every byte crosses the wire.
const vsphereSize = 256 << 20

// vsphereCache is the remote mount's --cache-size: the whole disk.
const vsphereCache = "512M"

// vsphereStats are one way of reading the vSphere disk.
type vsphereStats struct {
	tool          string
	seq, r1, rHot []float64
	err           string
}

// benchVSphere reads one flat disk of a VM on vcsim (loopback, TLS)
// through a vsphere:// mount, with curl sending the same ranged GETs over
// one keep-alive connection, and through a mount of the same VM's local
// files.
func benchVSphere(t *testing.T, s settings, r *report) {
	testenv.NeedCommands(t, "curl")
	srv := vspheretest.Start(t)
	dir := t.TempDir()
	flat := filepath.Join(dir, "disk0-flat.vmdk")
	if err := writeRandomFile(flat, vsphereSize); err != nil {
		t.Fatal(err)
	}
	desc := fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW %d FLAT \"disk0-flat.vmdk\" 0\n\nddb.adapterType = \"lsilogic\"\n", vsphereSize/512)
	vmx := "displayName = \"benchvm\"\nguestOS = \"other-64\"\nmemsize = \"256\"\nscsi0.present = \"TRUE\"\nscsi0.virtualDev = \"lsilogic\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"disk0.vmdk\"\n"
	for name, body := range map[string]string{"disk0.vmdk": desc, "benchvm.vmx": vmx} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv.AddVM(t, "benchvm", dir, []string{"disk0.vmdk"})
	t.Setenv("VMFS_VSPHERE_PASSWORD", vspheretest.Password)

	remote := &vsphereStats{tool: "**vmfs**, vsphere:// mount (vcsim)"}
	curl := &vsphereStats{tool: "curl, ranged GETs on one keep-alive connection"}
	local := &vsphereStats{tool: "vmfs, mount of the local files"}
	r.vsphere = append(r.vsphere, remote, curl, local)
	fileURL := fmt.Sprintf("https://%s/folder/benchvm/disk0-flat.vmdk?dcPath=%s&dsName=%s", srv.Host, vspheretest.Datacenter, vspheretest.Datastore)
	buf := make([]byte, seqBlock)
	for rep := 0; rep < s.reps; rep++ {
		for _, st := range []*vsphereStats{remote, local} {
			if st.err != "" {
				continue
			}
			src := filepath.Join(dir, "benchvm.vmx")
			var args []string
			if st == remote {
				src = srv.URL("vm/benchvm")
				// A cache that holds the whole disk: repeated random
				// reads are then all hits.
				args = []string{"--thumbprint", srv.Thumbprint, "--cache-size", vsphereCache}
			}
			m, err := mountRawView(t, src, args...)
			if err != nil {
				st.err = oneLine(err)
				continue
			}
			_ = dropCaches()
			if mbs, err := seqRead(m.File, vsphereSize, buf); err != nil {
				st.err = oneLine(err)
			} else {
				st.seq = append(st.seq, mbs)
			}
			// Random reads on a fresh mount: the sequential pass would
			// have filled the cache.
			m.stop()
			if m, err = mountRawView(t, src, args...); err != nil {
				st.err = oneLine(err)
				continue
			}
			disk := m.File
			offsets := randomOffsets(uint64(rep + 1))
			_ = dropCaches()
			if ops, err := preads(disk, offsets); err != nil {
				st.err = oneLine(err)
			} else {
				st.r1 = append(st.r1, ops)
			}
			_ = dropCaches()
			// The same offsets again: vmfs's cache serves them.
			if ops, err := preads(disk, offsets); err != nil {
				st.err = oneLine(err)
			} else {
				st.rHot = append(st.rHot, ops)
			}
			m.stop()
			t.Logf("rep %d %-40s seq %6.0f MB/s rand %6.0f/s again %6.0f/s", rep+1, st.tool, last(st.seq), last(st.r1), last(st.rHot))
		}
		// As for the mounts, the host reads the file from its disk.
		_ = dropCaches()
		var seqRanges, randRanges [][2]int64
		for off := int64(0); off < vsphereSize; off += seqBlock {
			seqRanges = append(seqRanges, [2]int64{off, seqBlock})
		}
		for _, off := range randomOffsets(uint64(rep + 1)) {
			randRanges = append(randRanges, [2]int64{off, randBlock})
		}
		if d, err := curlRanges(t, fileURL, seqRanges); err != nil {
			curl.err = oneLine(err)
		} else {
			curl.seq = append(curl.seq, vsphereSize/d.Seconds()/1e6)
		}
		_ = dropCaches()
		if d, err := curlRanges(t, fileURL, randRanges); err != nil {
			curl.err = oneLine(err)
		} else {
			curl.r1 = append(curl.r1, remoteRandReads/d.Seconds())
		}
		t.Logf("rep %d %-40s seq %6.0f MB/s rand %6.0f/s", rep+1, curl.tool, last(curl.seq), last(curl.r1))
	}
}

// writeRandomFile writes size random bytes to path.
func writeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(7, 7))
	b := make([]byte, 1<<20)
	for done := int64(0); done < size; done += int64(len(b)) {
		fillRandom(rng, b)
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// randomOffsets are remoteRandReads 4 KiB aligned offsets in the disk,
// the same for each reader of one repetition.
func randomOffsets(seed uint64) []int64 {
	rng := rand.New(rand.NewPCG(seed, 0))
	out := make([]int64, remoteRandReads)
	for i := range out {
		out[i] = rng.Int64N(vsphereSize/randBlock) * randBlock
	}
	return out
}

func (r *report) vsphereMarkdown(b *strings.Builder) {
	b.WriteString("#### vSphere: a VM on vcsim (loopback, TLS), 256 MiB flat disk of random bytes\n\n")
	b.WriteString("Sequential: 1 MiB reads of the whole disk, MB/s, page cache dropped before (curl: 1 MiB ranged GETs). " +
		"Random: 2000 preads of 4 KiB at the same random aligned offsets for every reader, one after the other, reads per second, on a fresh mount " +
		"(each a miss of the mount's block cache); again = the same offsets once more, page cache dropped " +
		"(the mount's block cache, --cache-size 512M, holds the whole disk and serves them). curl: the same 2000 ranges as GETs, one process, one keep-alive connection.\n\n")
	b.WriteString("| reader | seq MB/s | rand 4K /s | rand 4K again /s | seq / curl |\n|---|--:|--:|--:|--:|\n")
	var curl *vsphereStats
	for _, s := range r.vsphere {
		if strings.HasPrefix(s.tool, "curl") {
			curl = s
		}
	}
	for _, s := range r.vsphere {
		if s.err != "" && len(s.seq) == 0 {
			fmt.Fprintf(b, "| %s | %s | | | |\n", s.tool, s.err)
			continue
		}
		rt := "—"
		if curl != nil && s != curl {
			rt = ratio(median(s.seq), median(curl.seq))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", s.tool, num(s.seq, "%.0f"), num(s.r1, "%.0f"), num(s.rHot, "%.0f"), rt)
	}
	b.WriteString("\n")
}
