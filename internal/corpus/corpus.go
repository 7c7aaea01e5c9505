// Package corpus locates the shared corpus of real VM descriptors and disk
// images that tests run against: $VMFS_CORPUS when set, else the
// shared/corpus folder beside the repository (as it lies on developers'
// machines and in CI).
package corpus

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir is the corpus folder; it may not exist (tests then say so).
func Dir() string {
	if d := os.Getenv("VMFS_CORPUS"); d != "" {
		return d
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return filepath.Join(filepath.Dir(d), "shared", "corpus")
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return "/work/shared/corpus"
}

// Path joins elements below the corpus folder.
func Path(elem ...string) string {
	return filepath.Join(append([]string{Dir()}, elem...)...)
}

// Glob returns the corpus files matching pattern (relative to the corpus
// folder) and fails t when there are none: the corpus is part of every
// checkout's surroundings, so its absence is an error, not a skip.
func Glob(t testing.TB, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(Dir(), pattern))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("corpus %s not found", filepath.Join(Dir(), pattern))
	}
	return files
}
