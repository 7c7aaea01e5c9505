package vhd

import (
	"path/filepath"
	"slices"
	"strings"
)

// Suffixes are the file name endings that say a file is a VHD.
func Suffixes() []string { return []string{".vhd", ".avhd"} }

// Signature names what Open looks for, for errors about files that lack it.
const Signature = "conectix footer"

// ClaimsName says whether a file of this name must be a VHD.
func ClaimsName(name string) bool {
	return slices.Contains(Suffixes(), strings.ToLower(filepath.Ext(name)))
}
