package nbd_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/nbd"
	"github.com/vmfs/vmfs/internal/session"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sparseImage makes a 64 MiB image of format with data, a zeroed range
// and holes.
func sparseImage(t *testing.T, dir, name, format string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	run(t, "qemu-img", "create", "-q", "-f", format, p, "64M")
	run(t, "qemu-io", "-f", format, "-c", "write -P 0xab 1M 2M", "-c", "write -P 0x11 40M 64k", "-c", "write -z 10M 1M", "-c", "write -P 0x22 63M 1M", p)
	return p
}

// exports opens src in a session and offers its source disks.
func exports(t *testing.T, src string) []nbd.Export {
	t.Helper()
	s, err := session.Open(src, session.Options{To: "libvirt", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var out []nbd.Export
	for i, d := range s.View.Disks {
		out = append(out, nbd.DiskExport(fmt.Sprintf("%s/disk%d", s.View.Name, i), d))
	}
	return out
}

// serve starts a server of exps on a loopback port, stopped at cleanup.
func serve(t *testing.T, exps []nbd.Export) string {
	t.Helper()
	return serveWith(t, &nbd.Server{Exports: exps})
}

// nbdJSON names an export for qemu: the export name has a slash, which a
// JSON filename carries as it is.
func nbdJSON(addr, export string) string {
	host, port, _ := net.SplitHostPort(addr)
	b, _ := json.Marshal(map[string]any{
		"driver": "nbd", "export": export,
		"server": map[string]string{"type": "inet", "host": host, "port": port},
	})
	return "json:" + string(b)
}

// twoDiskVM writes a VMware VM with two sparse disks.
func twoDiskVM(t *testing.T, dir string) (vmx string, disks []string) {
	t.Helper()
	a := sparseImage(t, dir, "two.vmdk", "vmdk")
	b := filepath.Join(dir, "two_1.vmdk")
	run(t, "qemu-img", "create", "-q", "-f", "vmdk", b, "8M")
	run(t, "qemu-io", "-f", "vmdk", "-c", "write -P 0x33 4M 4k", b)
	vmx = filepath.Join(dir, "two.vmx")
	text := `.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "14"
displayName = "two"
guestOS = "other-64"
memsize = "512"
numvcpus = "1"
scsi0.present = "TRUE"
scsi0.virtualDev = "lsilogic"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "two.vmdk"
scsi0:1.present = "TRUE"
scsi0:1.fileName = "two_1.vmdk"
`
	if err := os.WriteFile(vmx, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return vmx, []string{a, b}
}

// TestQEMUClient: qemu-img, through the server, sees the bytes and the
// allocation of the source disks; qemu-nbd --list sees every export.
func TestQEMUClient(t *testing.T) {
	need(t, "qemu-img", "qemu-io", "qemu-nbd")
	dir := t.TempDir()
	vmx, two := twoDiskVM(t, dir)
	for _, tc := range []struct {
		name  string
		src   string
		disks []string
	}{
		{"qcow2", sparseImage(t, dir, "one.qcow2", "qcow2"), nil},
		{"vmdk", sparseImage(t, dir, "one.vmdk", "vmdk"), nil},
		{"two disks", vmx, two},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disks := tc.disks
			if disks == nil {
				disks = []string{tc.src}
			}
			exps := exports(t, tc.src)
			if len(exps) != len(disks) {
				t.Fatalf("%d exports, want %d", len(exps), len(disks))
			}
			addr := serve(t, exps)
			host, port, _ := net.SplitHostPort(addr)
			list := run(t, "qemu-nbd", "--list", "--bind="+host, "--port="+port)
			for _, e := range exps {
				if !strings.Contains(list, "export: '"+e.Name()+"'") {
					t.Errorf("qemu-nbd --list does not show %s:\n%s", e.Name(), list)
				}
			}
			for i, e := range exps {
				run(t, "qemu-img", "compare", "-q", nbdJSON(addr, e.Name()), disks[i])
				got, want := qemuMap(t, nbdJSON(addr, e.Name())), qemuMap(t, disks[i])
				if got != want {
					t.Errorf("%s: map over NBD\n%s\nwant (the source's)\n%s", e.Name(), got, want)
				}
			}
		})
	}
}

type mapRun struct {
	Start, Length int64
	Data, Zero    bool
}

// qemuMap is qemu-img map's allocation of img: runs of data and zero.
func qemuMap(t *testing.T, img string) string {
	t.Helper()
	var runs []mapRun
	if err := json.Unmarshal([]byte(run(t, "qemu-img", "map", "--output=json", img)), &runs); err != nil {
		t.Fatal(err)
	}
	return mapString(runs)
}

// nbdinfoMap is nbdinfo --map's base:allocation of uri, as qemuMap.
func nbdinfoMap(t *testing.T, uri string) string {
	t.Helper()
	var runs []mapRun
	for _, line := range strings.Split(strings.TrimSpace(run(t, "nbdinfo", "--map", uri)), "\n") {
		var off, n int64
		var st uint32
		if _, err := fmt.Sscan(line, &off, &n, &st); err != nil {
			t.Fatalf("nbdinfo --map: line %q: %v", line, err)
		}
		runs = append(runs, mapRun{Start: off, Length: n, Data: st&1 == 0, Zero: st&2 != 0})
	}
	return mapString(runs)
}

func mapString(runs []mapRun) string {
	var b strings.Builder
	var cur struct {
		start, end int64
		data, zero bool
	}
	flush := func() {
		if cur.end > cur.start {
			fmt.Fprintf(&b, "%d+%d data=%v zero=%v\n", cur.start, cur.end-cur.start, cur.data, cur.zero)
		}
	}
	for _, r := range runs {
		if r.Data == cur.data && r.Zero == cur.zero && r.Start == cur.end {
			cur.end += r.Length
			continue
		}
		flush()
		cur.start, cur.end, cur.data, cur.zero = r.Start, r.Start+r.Length, r.Data, r.Zero
	}
	flush()
	return b.String()
}

// TestLibnbdClients: nbdinfo lists and maps, nbdcopy copies sparsely.
func TestLibnbdClients(t *testing.T) {
	need(t, "nbdinfo", "nbdcopy", "qemu-img", "qemu-io")
	dir := t.TempDir()
	src := sparseImage(t, dir, "one.qcow2", "qcow2")
	exps := exports(t, src)
	addr := serve(t, exps)
	uri := "nbd://" + addr
	list := run(t, "nbdinfo", "--list", uri)
	if !strings.Contains(list, exps[0].Name()) {
		t.Errorf("nbdinfo --list does not show %s:\n%s", exps[0].Name(), list)
	}
	if got, want := nbdinfoMap(t, nbdURI(addr, exps[0].Name())), qemuMap(t, src); got != want {
		t.Errorf("nbdinfo --map\n%s\nwant (qemu-img map of the source)\n%s", got, want)
	}
	out := filepath.Join(dir, "copy.raw")
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(out, exps[0].Size()); err != nil {
		t.Fatal(err)
	}
	run(t, "nbdcopy", "--destination-is-zero", nbdURI(addr, exps[0].Name()), out)
	run(t, "qemu-img", "compare", "-q", "-f", "qcow2", "-F", "raw", src, out)
	var st syscallStat
	if used := st.used(t, out); used > 8<<20 {
		t.Errorf("nbdcopy wrote %d bytes of a disk with 3 MiB+64k of data", used)
	}
}

// nbdURI is an NBD URI with the export name's slash escaped.
func nbdURI(addr, export string) string {
	return "nbd://" + addr + "/" + strings.ReplaceAll(export, "/", "%2F")
}

// client is a minimal NBD client for what qemu does not send.
type client struct {
	t *testing.T
	c net.Conn
}

// greets says whether the server greets a new connection at addr.
func greets(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadFull(c, make([]byte, 18))
	return err
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	cl := &client{t: t, c: c}
	var hello [18]byte
	cl.read(hello[:])
	if string(hello[:8]) != "NBDMAGIC" || string(hello[8:16]) != "IHAVEOPT" {
		t.Fatalf("greeting %q", hello)
	}
	cl.write(binary.BigEndian.AppendUint32(nil, 3))
	return cl
}

func (cl *client) read(b []byte) {
	cl.t.Helper()
	if _, err := io.ReadFull(cl.c, b); err != nil {
		cl.t.Fatal(err)
	}
}

func (cl *client) write(b []byte) {
	cl.t.Helper()
	if _, err := cl.c.Write(b); err != nil {
		cl.t.Fatal(err)
	}
}

// option sends one option and returns the replies' types and data up to
// (with) the first that is not NBD_REP_INFO, _SERVER or _META_CONTEXT.
func (cl *client) option(opt uint32, data []byte) (types []uint32, datas [][]byte) {
	cl.t.Helper()
	b := binary.BigEndian.AppendUint64(nil, 0x49484156454f5054)
	b = binary.BigEndian.AppendUint32(b, opt)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	cl.write(append(b, data...))
	for {
		var h [20]byte
		cl.read(h[:])
		typ := binary.BigEndian.Uint32(h[12:16])
		d := make([]byte, binary.BigEndian.Uint32(h[16:20]))
		cl.read(d)
		types, datas = append(types, typ), append(datas, d)
		if typ != 2 && typ != 3 && typ != 4 {
			return
		}
	}
}

func nameData(name string, tail ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	return append(append(b, name...), tail...)
}

// open negotiates structured replies and base:allocation, then GO.
func (cl *client) open(name string) {
	cl.t.Helper()
	if ty, _ := cl.option(8, nil); ty[len(ty)-1] != 1 {
		cl.t.Fatalf("structured reply: %v", ty)
	}
	q := nameData(name, 0, 0, 0, 1)
	q = append(q, nameData("base:allocation")...)
	if ty, _ := cl.option(10, q); len(ty) != 2 || ty[0] != 4 || ty[1] != 1 {
		cl.t.Fatalf("set meta context: %v", ty)
	}
	if ty, _ := cl.option(7, nameData(name, 0, 0)); ty[len(ty)-1] != 1 {
		cl.t.Fatalf("go: %v", ty)
	}
}

func (cl *client) request(typ, flags uint16, handle, off uint64, n uint32, payload []byte) {
	b := binary.BigEndian.AppendUint32(nil, 0x25609513)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, handle)
	b = binary.BigEndian.AppendUint64(b, off)
	b = binary.BigEndian.AppendUint32(b, n)
	cl.write(append(b, payload...))
}

// reply reads one reply: a simple reply's error, or a structured chunk's
// type, flags and payload.
func (cl *client) reply() (simple bool, errno uint32, typ, flags uint16, payload []byte) {
	cl.t.Helper()
	var m [4]byte
	cl.read(m[:])
	switch binary.BigEndian.Uint32(m[:]) {
	case 0x67446698:
		var h [12]byte
		cl.read(h[:])
		return true, binary.BigEndian.Uint32(h[:4]), 0, 0, nil
	case 0x668e33ef:
		var h [16]byte
		cl.read(h[:])
		payload = make([]byte, binary.BigEndian.Uint32(h[12:16]))
		cl.read(payload)
		typ = binary.BigEndian.Uint16(h[2:4])
		if typ == 1<<15+1 {
			errno = binary.BigEndian.Uint32(payload)
		}
		return false, errno, typ, binary.BigEndian.Uint16(h[:2]), payload
	}
	cl.t.Fatalf("reply magic %x", m)
	return
}

// TestRawProtocol: what the clients above do not send — refused writes,
// unknown options and commands, bad ranges, block status — answered with
// the protocol's codes.
func TestRawProtocol(t *testing.T) {
	need(t, "qemu-img", "qemu-io")
	src := sparseImage(t, t.TempDir(), "one.qcow2", "qcow2")
	exps := exports(t, src)
	name := exps[0].Name()
	addr := serve(t, exps)

	cl := dial(t, addr)
	if ty, _ := cl.option(99, []byte("x")); ty[0] != 1<<31+1 {
		t.Errorf("unknown option: reply %#x, want NBD_REP_ERR_UNSUP", ty[0])
	}
	if ty, _ := cl.option(5, nil); ty[0] != 1<<31+1 {
		t.Errorf("STARTTLS: reply %#x, want NBD_REP_ERR_UNSUP", ty[0])
	}
	if ty, _ := cl.option(7, nameData("nope", 0, 0)); ty[0] != 1<<31+6 {
		t.Errorf("GO to an unknown export: reply %#x, want NBD_REP_ERR_UNKNOWN", ty[0])
	}
	if ty, _ := cl.option(10, nameData(name, 0, 0, 0, 0)); ty[0] != 1<<31+3 {
		t.Errorf("SET_META_CONTEXT before structured replies: %#x, want NBD_REP_ERR_INVALID", ty[0])
	}
	ty, ds := cl.option(6, nameData(name, 0, 0))
	if len(ty) < 2 || ty[0] != 3 || binary.BigEndian.Uint16(ds[0]) != 0 {
		t.Fatalf("INFO: %v", ty)
	}
	if size, flags := binary.BigEndian.Uint64(ds[0][2:]), binary.BigEndian.Uint16(ds[0][10:]); size != 64<<20 || flags&2 == 0 {
		t.Errorf("INFO: size %d flags %#x, want 64 MiB, read-only", size, flags)
	}
	cl.open(name)

	for _, tc := range []struct {
		name    string
		typ     uint16
		off     uint64
		n       uint32
		payload []byte
		want    uint32
	}{
		{"write", 1, 0, 512, make([]byte, 512), 1},
		{"write zeroes", 6, 0, 512, nil, 1},
		{"trim", 4, 0, 512, nil, 1},
		{"flush", 3, 0, 0, nil, 0},
		{"unknown command", 42, 0, 0, nil, 22},
		{"read past the end", 0, 64 << 20, 512, nil, 22},
		{"read too big", 0, 0, 33 << 20, nil, 75},
		{"block status past the end", 7, 63 << 20, 2 << 20, nil, 22},
	} {
		cl.request(tc.typ, 0, 7, tc.off, tc.n, tc.payload)
		_, errno, _, _, _ := cl.reply()
		if errno != tc.want {
			t.Errorf("%s: errno %d, want %d", tc.name, errno, tc.want)
		}
	}

	// A structured read of [0, 4M): hole, data (1M+2M), hole, in chunks.
	cl.request(0, 0, 8, 0, 4<<20, nil)
	var got []string
	for {
		_, errno, typ, flags, p := cl.reply()
		if errno != 0 {
			t.Fatalf("read: errno %d", errno)
		}
		switch typ {
		case 1:
			if !bytes.Equal(p[8:], bytes.Repeat([]byte{0xab}, len(p)-8)) {
				t.Errorf("data chunk at %d is not the written bytes", binary.BigEndian.Uint64(p))
			}
			got = append(got, fmt.Sprintf("data %d+%d", binary.BigEndian.Uint64(p), len(p)-8))
		case 2:
			got = append(got, fmt.Sprintf("hole %d+%d", binary.BigEndian.Uint64(p), binary.BigEndian.Uint32(p[8:])))
		}
		if flags&1 != 0 {
			break
		}
	}
	if want := "hole 0+1048576,data 1048576+2097152,hole 3145728+1048576"; strings.Join(got, ",") != want {
		t.Errorf("read chunks %s, want %s", strings.Join(got, ","), want)
	}

	// Block status of the same range.
	cl.request(7, 0, 9, 0, 4<<20, nil)
	_, errno, typ, _, p := cl.reply()
	if errno != 0 || typ != 5 {
		t.Fatalf("block status: errno %d type %d", errno, typ)
	}
	var desc []string
	for d := p[4:]; len(d) >= 8; d = d[8:] {
		desc = append(desc, fmt.Sprintf("%d:%d", binary.BigEndian.Uint32(d), binary.BigEndian.Uint32(d[4:])))
	}
	if want := "1048576:3,2097152:0,1048576:3"; strings.Join(desc, ",") != want {
		t.Errorf("block status %s, want %s", strings.Join(desc, ","), want)
	}
	// [9M, 12M): a hole, the zeroed 1M, a hole: one hole, as qemu-img
	// map of the source says.
	cl.request(7, 0, 9, 9<<20, 3<<20, nil)
	if _, errno, _, _, p := cl.reply(); errno != 0 || len(p) != 12 || binary.BigEndian.Uint32(p[4:]) != 3<<20 || binary.BigEndian.Uint32(p[8:]) != 3 {
		t.Errorf("block status of a zeroed range: errno %d, descriptors %x, want one 3 MiB hole,zero", errno, p)
	}

	// A client that leaves mid-read does not stop the server.
	gone := dial(t, addr)
	gone.open(name)
	gone.request(0, 1<<2, 1, 0, 32<<20, nil)
	var some [100]byte
	gone.read(some[:])
	gone.c.Close()
	cl.request(0, 0, 10, 40<<20, 4096, nil)
	if _, errno, typ, _, p := cl.reply(); errno != 0 || typ != 1 || p[8] != 0x11 {
		t.Errorf("read after another client left: errno %d type %d", errno, typ)
	}
	other := dial(t, addr)
	other.open(name)
	other.request(2, 0, 0, 0, 0, nil)
}

// FuzzServer: whatever a client sends, the server neither panics nor
// hangs.
func FuzzServer(f *testing.F) {
	hello := binary.BigEndian.AppendUint32(nil, 3)
	opt := func(o uint32, d []byte) []byte {
		b := binary.BigEndian.AppendUint64(nil, 0x49484156454f5054)
		b = binary.BigEndian.AppendUint32(b, o)
		b = binary.BigEndian.AppendUint32(b, uint32(len(d)))
		return append(b, d...)
	}
	req := func(typ uint16, off uint64, n uint32) []byte {
		b := binary.BigEndian.AppendUint32(nil, 0x25609513)
		b = binary.BigEndian.AppendUint16(b, 0)
		b = binary.BigEndian.AppendUint16(b, typ)
		b = binary.BigEndian.AppendUint64(b, 1)
		b = binary.BigEndian.AppendUint64(b, off)
		return binary.BigEndian.AppendUint32(b, n)
	}
	f.Add(append(hello, opt(3, nil)...))
	seed := append(append([]byte{}, hello...), opt(8, nil)...)
	seed = append(seed, opt(10, append(nameData("d", 0, 0, 0, 1), nameData("base:allocation")...))...)
	seed = append(seed, opt(7, nameData("d", 0, 0))...)
	seed = append(seed, req(0, 0, 4096)...)
	seed = append(seed, req(7, 0, 1<<20)...)
	seed = append(seed, req(1, 0, 4)...)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, in []byte) {
		exp := memExport{name: "d", data: make([]byte, 1<<20)}
		srv := &nbd.Server{Exports: []nbd.Export{exp}, HandshakeTimeout: 2 * time.Second}
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() { srv.ServeConn(context.Background(), a); close(done) }()
		go io.Copy(io.Discard, b)
		b.SetWriteDeadline(time.Now().Add(2 * time.Second))
		b.Write(in)
		b.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("server hangs")
		}
	})
}

// TestConnectionLimit: past MaxConns a connection is closed at once; the
// ones served go on, and a slot freed is taken again. Many clients at
// once each get their own answers.
func TestConnectionLimit(t *testing.T) {
	exp := memExport{name: "d", data: bytes.Repeat([]byte{7}, 1<<20)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&nbd.Server{Exports: []nbd.Export{exp}, MaxConns: 2}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addr := ln.Addr().String()
	a, b := dial(t, addr), dial(t, addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("third connection: read %d bytes, %v; want it closed", n, err)
	}
	c.Close()
	for _, cl := range []*client{a, b} {
		cl.open("d")
		cl.request(0, 0, 1, 512<<10, 4096, nil)
		if _, errno, typ, _, p := cl.reply(); errno != 0 || typ != 2 || binary.BigEndian.Uint32(p[8:]) != 4096 {
			t.Errorf("read of the hole: errno %d type %d", errno, typ)
		}
	}
	a.request(2, 0, 0, 0, 0, nil)
	a.c.Close()
	// The slot is freed once the server has seen a leave.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := greets(addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a client left: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
