package vdi

import (
	"path/filepath"
	"slices"
	"strings"
)

// Suffixes are the file name endings that say a file is a VDI.
func Suffixes() []string { return []string{".vdi"} }

// Signature names what Open looks for, for errors about files that lack it.
const Signature = "VDI signature"

// ClaimsName says whether a file of this name must be a VDI.
func ClaimsName(name string) bool {
	return slices.Contains(Suffixes(), strings.ToLower(filepath.Ext(name)))
}
