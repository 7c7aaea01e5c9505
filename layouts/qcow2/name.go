package qcow2

import (
	"path/filepath"
	"slices"
	"strings"
)

// Suffixes are the file name endings that say a file is a QCOW2.
func Suffixes() []string { return []string{".qcow2"} }

// Signature names what Open looks for, for errors about files that lack it.
const Signature = "QFI magic"

// ClaimsName says whether a file of this name must be a QCOW2.
func ClaimsName(name string) bool {
	return slices.Contains(Suffixes(), strings.ToLower(filepath.Ext(name)))
}
