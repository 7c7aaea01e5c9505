package layouts

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// OpenParentOf opens the parent of child, a differencing disk of format
// that names its parent by several references (relative, absolute, ...),
// tried in order. References whose file does not exist are skipped; a
// parent opened (through OpenParent) must pass check, which returns the
// format's own error otherwise, and is closed when it does not. The first
// error met is returned; when no reference exists, a "parent disk not
// found" error naming them.
func (e *Env) OpenParentOf(format, child string, refs []string, check func(parent Disk, ref string) error) (Disk, error) {
	var tried []string
	var firstErr error
	for _, ref := range refs {
		p := ref
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(child), p)
		}
		if _, err := e.Stat(p); errors.Is(err, os.ErrNotExist) {
			tried = append(tried, ref)
			continue
		}
		parent, err := e.OpenParent(child, ref)
		if err != nil {
			firstErr = cmp.Or(firstErr, fmt.Errorf("%s: %s: parent: %w", format, child, err))
			continue
		}
		if err := check(parent, ref); err != nil {
			parent.Close()
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		return parent, nil
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, fmt.Errorf("%s: %s: parent disk not found (tried %s)", format, child, strings.Join(tried, ", "))
}

// TopOf is the top layer of d when d is a chain (see Stack), else d.
func TopOf(d Disk) Disk {
	for {
		t, ok := d.(interface{ Top() Disk })
		if !ok {
			return d
		}
		d = t.Top()
	}
}
