package bootfacts

import (
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/vmfs/vmfs/layouts/probe"
)

// TestPartitions: the entries Partitions reads are those sfdisk lists,
// GPT and MBR, with their numbers, starts and sizes.
func TestPartitions(t *testing.T) {
	for _, tc := range []struct{ name, script string }{
		{"gpt", "label: gpt\nstart=2048, size=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=8192, size=8192, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"},
		{"mbr", "label: dos\nstart=2048, size=4096, type=83\nstart=8192, size=4096, type=7\n"},
		{"none", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := image(t, t.TempDir(), "d.img", 16<<20, tc.script)
			d, err := probe.Open(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			got, err := Partitions(d)
			if err != nil {
				t.Fatal(err)
			}
			var want []Partition
			if tc.script != "" {
				out, err := exec.Command("sfdisk", "-J", p).Output()
				if err != nil {
					t.Fatal(err)
				}
				var j struct {
					PT struct {
						SectorSize int64 `json:"sectorsize"`
						Partitions []struct {
							Node        string `json:"node"`
							Start, Size int64
						} `json:"partitions"`
					} `json:"partitiontable"`
				}
				if err := json.Unmarshal(out, &j); err != nil {
					t.Fatal(err)
				}
				ss := j.PT.SectorSize
				if ss == 0 {
					ss = 512
				}
				for i, sp := range j.PT.Partitions {
					want = append(want, Partition{Index: i + 1, Start: sp.Start * ss, Size: sp.Size * ss})
				}
			}
			if len(got) != len(want) {
				t.Fatalf("Partitions = %+v, sfdisk says %+v", got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("partition %d: %+v, sfdisk says %+v", i, got[i], want[i])
				}
			}
		})
	}
}
