package nbd_test

import (
	"bytes"
	"encoding/binary"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/vmfs/vmfs/internal/nbd"
	"github.com/vmfs/vmfs/layouts"
)

// memDisk is a writable disk in memory that records punches and syncs.
type memDisk struct {
	mu      sync.Mutex
	data    []byte
	punched int64
	syncs   int
}

func (m *memDisk) Size() int64    { return int64(len(m.data)) }
func (m *memDisk) Format() string { return "raw" }
func (m *memDisk) Close() error   { return nil }
func (m *memDisk) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.NewReader(m.data).ReadAt(p, off)
}
func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(m.data[off:], p), nil
}
func (m *memDisk) Punch(off, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.data[off : off+n])
	m.punched += n
	return nil
}
func (m *memDisk) Sync() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncs++
	return nil
}
func (m *memDisk) Extents(off, n int64) ([]layouts.Extent, error) {
	return []layouts.Extent{{Off: off, Len: n, Kind: layouts.Data}}, nil
}

// TestWritable: a Writable export advertises writes and takes WRITE,
// WRITE_ZEROES (punched, or written with NO_HOLE), TRIM, FLUSH and FUA;
// a write past the end is ENOSPC and leaves the disk as it was; qemu-io
// writes and reads back through it.
func TestWritable(t *testing.T) {
	d := &memDisk{data: bytes.Repeat([]byte{0x5a}, 4<<20)}
	addr := serve(t, []nbd.Export{nbd.WritableExport("w", d)})
	cl := dial(t, addr)
	ty, datas := cl.option(7, nameData("w", 0, 0))
	if ty[len(ty)-1] != 1 {
		t.Fatalf("go: %v", ty)
	}
	flags := binary.BigEndian.Uint16(datas[0][10:12])
	if flags&(1<<1) != 0 || flags&(1<<3|1<<5|1<<6) != 1<<3|1<<5|1<<6 {
		t.Errorf("transmission flags %#x: want writable, with FUA, TRIM and WRITE_ZEROES", flags)
	}
	for _, tc := range []struct {
		name       string
		typ, flags uint16
		off        uint64
		n          uint32
		payload    []byte
		errno      uint32
		syncs      int
		punched    int64
		at         int64
		want       []byte
	}{
		{"write", 1, 0, 4096, 4, []byte("abcd"), 0, 0, 0, 4096, []byte("abcd")},
		{"write fua", 1, 1, 8192, 2, []byte("xy"), 0, 1, 0, 8192, []byte("xy")},
		{"write past the end", 1, 0, 4<<20 - 1, 2, []byte("zz"), 28, 1, 0, 4<<20 - 1, []byte{0x5a}},
		{"write zeroes", 6, 0, 4096, 2, nil, 0, 1, 2, 4096, []byte{0, 0, 'c'}},
		{"write zeroes no hole", 6, 2, 8192, 1, nil, 0, 1, 2, 8192, []byte{0, 'y'}},
		{"trim", 4, 0, 1 << 20, 1 << 20, nil, 0, 1, 2 + 1<<20, 1 << 20, []byte{0, 0}},
		{"trim past the end", 4, 0, 4 << 20, 1, nil, 28, 1, 2 + 1<<20, 0, []byte{0x5a}},
		{"flush", 3, 0, 0, 0, nil, 0, 2, 2 + 1<<20, 0, []byte{0x5a}},
	} {
		cl.request(tc.typ, tc.flags, 7, tc.off, tc.n, tc.payload)
		simple, errno, _, _, _ := cl.reply()
		if !simple || errno != tc.errno {
			t.Errorf("%s: simple %v errno %d, want %d", tc.name, simple, errno, tc.errno)
		}
		d.mu.Lock()
		got := d.data[tc.at : tc.at+int64(len(tc.want))]
		if !bytes.Equal(got, tc.want) || d.syncs != tc.syncs || d.punched != tc.punched {
			t.Errorf("%s: bytes %q syncs %d punched %d, want %q %d %d", tc.name, got, d.syncs, d.punched, tc.want, tc.syncs, tc.punched)
		}
		d.mu.Unlock()
	}

	need(t, "qemu-io")
	js := strings.Replace(nbdJSON(addr, "w"), "json:", "", 1)
	out, err := exec.Command("qemu-io", "-c", "write -P 0x66 2M 128k", "-c", "read -P 0x66 2M 128k",
		"json:{\"driver\":\"raw\",\"file\":"+js+"}").CombinedOutput()
	if err != nil || strings.Contains(string(out), "failed") {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	if !bytes.Equal(d.data[2<<20:2<<20+128<<10], bytes.Repeat([]byte{0x66}, 128<<10)) {
		t.Error("qemu-io's write did not reach the disk")
	}
}
