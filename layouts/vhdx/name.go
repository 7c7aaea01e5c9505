package vhdx

import (
	"path/filepath"
	"slices"
	"strings"
)

// Suffixes are the file name endings that say a file is a VHDX.
func Suffixes() []string { return []string{".vhdx", ".avhdx"} }

// Signature names what Open looks for, for errors about files that lack it.
const Signature = "vhdxfile signature"

// ClaimsName says whether a file of this name must be a VHDX.
func ClaimsName(name string) bool {
	return slices.Contains(Suffixes(), strings.ToLower(filepath.Ext(name)))
}
