package view

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/vmfs/vmfs/layouts"
)

// manifestChunk is the read size used to hash a disk.
const manifestChunk = 4 << 20

// Manifest is the content of a manifest file (an OVF .mf): the lines the
// target wrote, then "SHA256(FILE)= HEX" for each disk file. Its size is
// known from the file names alone; the digests are computed when it is
// first read, so a mount serves the disks at once and pays for the hashing
// only when someone reads the manifest. Computed once: writes made to the
// disks afterwards (through a writable mount) are not reflected.
type Manifest struct {
	head []byte

	mu    sync.Mutex
	names []string
	disks []layouts.Disk
	size  int64

	once sync.Once
	data []byte
	err  error
}

func newManifest(head []byte, names []string, disks []layouts.Disk) *Manifest {
	m := &Manifest{head: head, names: names, disks: disks, size: int64(len(head))}
	for _, n := range names {
		m.size += int64(len(manifestLine(n, "")))
	}
	return m
}

// manifestLine is the line of one file; sum "" gives its length with a
// digest of the right width.
func manifestLine(name, sum string) string {
	if sum == "" {
		sum = string(make([]byte, 2*sha256.Size))
	}
	return fmt.Sprintf("SHA256(%s)= %s\n", name, sum)
}

// bind makes the manifest hash d for the file name (the overlay's view of
// it instead of the source's). It has no effect once the manifest was read.
func (m *Manifest) bind(name string, d layouts.Disk) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, n := range m.names {
		if n == name {
			m.disks[i] = d
		}
	}
}

func (m *Manifest) compute() {
	m.mu.Lock()
	disks := append([]layouts.Disk(nil), m.disks...)
	m.mu.Unlock()
	out := append([]byte(nil), m.head...)
	buf := make([]byte, manifestChunk)
	for i, d := range disks {
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(d, 0, d.Size()), buf); err != nil {
			m.err = fmt.Errorf("manifest: hashing %s: %w", m.names[i], err)
			return
		}
		out = append(out, manifestLine(m.names[i], hex.EncodeToString(h.Sum(nil)))...)
	}
	if int64(len(out)) != m.size {
		m.err = fmt.Errorf("manifest: %d bytes computed, %d announced", len(out), m.size)
		return
	}
	m.data = out
}

func (m *Manifest) ReadAt(p []byte, off int64) (int, error) {
	n, eof := layouts.CheckRead(m.size, p, off)
	if n == 0 {
		return 0, eof
	}
	m.once.Do(m.compute)
	if m.err != nil {
		return 0, m.err
	}
	copy(p[:n], m.data[off:])
	return n, eof
}

// Identity identifies the manifest without computing it (the overlay
// fingerprints its bases): the lines the target wrote and the files it
// lists, whose own contents the overlay fingerprints separately.
func (m *Manifest) Identity() []byte {
	b := append([]byte(nil), m.head...)
	for _, n := range m.names {
		b = append(b, manifestLine(n, "")...)
	}
	return b
}

func (m *Manifest) Size() int64    { return m.size }
func (m *Manifest) Format() string { return "text" }
func (m *Manifest) Close() error   { return nil }

func (m *Manifest) Extents(off, n int64) ([]layouts.Extent, error) {
	off, n, ok := layouts.Clip(m.size, off, n)
	if !ok {
		return nil, nil
	}
	var b layouts.Builder
	b.Add(off, n, layouts.Data)
	return b.Extents(), nil
}
