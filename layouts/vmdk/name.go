package vmdk

import (
	"path/filepath"
	"slices"
	"strings"
)

// Suffixes are the file name endings that say a file is a VMDK.
func Suffixes() []string { return []string{".vmdk"} }

// Signature names what Open looks for, for errors about files that lack it.
const Signature = "sparse header or descriptor"

// ClaimsName says whether a file of this name must be a VMDK: it ends in
// .vmdk and is not a flat extent (NAME-flat.vmdk of monolithicFlat and
// vmfs, NAME-fNNN.vmdk of twoGbMaxExtentFlat), whose bytes are the raw
// disk and which has no VMDK structure of its own.
func ClaimsName(name string) bool {
	return slices.Contains(Suffixes(), strings.ToLower(filepath.Ext(name))) && !FlatExtentName(name)
}

// FlatExtentName says whether name is that of a flat extent file.
func FlatExtentName(name string) bool {
	base := strings.ToLower(filepath.Base(name))
	stem, ok := strings.CutSuffix(base, ".vmdk")
	if !ok {
		return false
	}
	if strings.HasSuffix(stem, "-flat") {
		return true
	}
	i := strings.LastIndex(stem, "-f")
	if i < 0 || len(stem)-(i+2) != 3 {
		return false
	}
	for _, c := range stem[i+2:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
