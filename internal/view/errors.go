package view

import (
	"fmt"
	"path/filepath"
	"strings"
)

// diskError names the disk at path in err, unless err names it already
// (the errors of layouts name the file they read): a path said twice
// makes a line no clearer.
func diskError(path string, err error) error {
	msg := err.Error()
	if strings.Contains(msg, path) {
		return err
	}
	if abs, aerr := filepath.Abs(path); aerr == nil && strings.Contains(msg, abs) {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}
