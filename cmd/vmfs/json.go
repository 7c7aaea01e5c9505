package main

import (
	"encoding/json"
	"io"
	"strings"
)

// schemaVersion is the version of the JSON that vmfs writes: every --json
// document, every --progress=json event and every JSON error carries it
// as schema_version. It changes when a key changes meaning or goes away;
// new keys do not change it. The schema: docs/json.md and
// docs/vmfs.schema.json.
const schemaVersion = 1

// writeJSON writes v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonError is an error as --json reports it on stderr.
type jsonError struct {
	SchemaVersion int    `json:"schema_version"`
	Error         string `json:"error"`
	// Code is the exit code: 1 the operation failed, 2 the command line
	// was wrong.
	Code int `json:"code"`
	// Hint says where the right usage is, for a usage error.
	Hint string `json:"hint,omitempty"`
}

// wantsJSON says whether args ask for JSON output: --json, or
// --progress=json, before any "--".
func wantsJSON(args []string) bool {
	for i, a := range args {
		if a == "--" {
			return false
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		switch name {
		case "json":
			if !hasValue || value == "true" || value == "1" {
				return true
			}
		case "progress":
			if hasValue && value == "json" || !hasValue && i+1 < len(args) && args[i+1] == "json" {
				return true
			}
		}
	}
	return false
}
