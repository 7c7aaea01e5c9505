package probe

import (
	"bytes"
	"fmt"

	"github.com/vmfs/vmfs/layouts"
)

// signature is a file kind vmfs recognizes but does not read. Probing
// refuses it by name rather than letting raw serve its bytes as a disk.
type signature struct {
	what  string
	match func(head []byte) bool
}

func prefix(p string) func([]byte) bool {
	return func(h []byte) bool { return bytes.HasPrefix(h, []byte(p)) }
}

var unsupported = []signature{
	{"a Parallels disk image", func(h []byte) bool {
		return bytes.HasPrefix(h, []byte("WithoutFreeSpace")) || bytes.HasPrefix(h, []byte("WithouFreSpacExt"))
	}},
	{"a Parallels disk descriptor (DiskDescriptor.xml)", func(h []byte) bool {
		return bytes.HasPrefix(h, []byte("<?xml")) && bytes.Contains(h, []byte("<Parallels_disk_image"))
	}},
	{"a QED image", prefix("QED\x00")},
	{"a gzip-compressed file (decompress it first)", prefix("\x1f\x8b")},
	{"an xz-compressed file (decompress it first)", prefix("\xfd7zXZ\x00")},
	{"a zstd-compressed file (decompress it first)", prefix("\x28\xb5\x2f\xfd")},
	{"a bzip2-compressed file (decompress it first)", func(h []byte) bool {
		return len(h) >= 10 && bytes.HasPrefix(h, []byte("BZh")) && h[3] >= '1' && h[3] <= '9' && bytes.HasPrefix(h[4:], []byte("1AY&SY"))
	}},
}

// refuseKnown answers ErrWrongType for files it does not recognize, and a
// clear not-supported error for the kinds listed above.
func refuseKnown(f layouts.File) error {
	head := make([]byte, min(f.Size(), 4096))
	if _, err := f.ReadAt(head, 0); err != nil && int64(len(head)) > 0 {
		return fmt.Errorf("%s: reading the header: %w", f.Name(), err)
	}
	for _, s := range unsupported {
		if s.match(head) {
			return fmt.Errorf("%s: %s is not supported: %w", f.Name(), s.what, layouts.ErrUnsupported)
		}
	}
	return fmt.Errorf("%s: %w", f.Name(), layouts.ErrWrongType)
}
