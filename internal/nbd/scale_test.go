package nbd_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/nbd"
	"github.com/vmfs/vmfs/internal/servestat"
)

// reader is an NBD client for many goroutines at once: each has its
// own, and errors are returned, not reported to the test.
type reader struct {
	c net.Conn
	r *bufio.Reader
}

func opt(w io.Writer, o uint32, data []byte) error {
	b := binary.BigEndian.AppendUint64(nil, 0x49484156454f5054)
	b = binary.BigEndian.AppendUint32(b, o)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	_, err := w.Write(append(b, data...))
	return err
}

// optReplies reads replies to one option up to its last (ACK or error).
func (rd *reader) optReplies() (last uint32, err error) {
	for {
		var h [20]byte
		if _, err := io.ReadFull(rd.r, h[:]); err != nil {
			return 0, err
		}
		typ := binary.BigEndian.Uint32(h[12:16])
		if _, err := rd.r.Discard(int(binary.BigEndian.Uint32(h[16:20]))); err != nil {
			return 0, err
		}
		if typ != 2 && typ != 3 && typ != 4 {
			return typ, nil
		}
	}
}

// openReader connects to export name with structured replies.
func openReader(addr, name string) (*reader, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	rd := &reader{c: c, r: bufio.NewReaderSize(c, 256<<10)}
	fail := func(err error) (*reader, error) { c.Close(); return nil, err }
	if _, err := rd.r.Discard(18); err != nil {
		return fail(err)
	}
	if _, err := c.Write([]byte{0, 0, 0, 3}); err != nil {
		return fail(err)
	}
	for _, o := range []struct {
		o    uint32
		data []byte
	}{{8, nil}, {7, nameData(name, 0, 0)}} {
		if err := opt(c, o.o, o.data); err != nil {
			return fail(err)
		}
		if typ, err := rd.optReplies(); err != nil || typ != 1 {
			return fail(fmt.Errorf("option %d: reply %#x, %v", o.o, typ, err))
		}
	}
	return rd, nil
}

// read reads [off, off+len(p)) into p from structured chunks.
func (rd *reader) read(p []byte, off uint64) error {
	b := binary.BigEndian.AppendUint32(nil, 0x25609513)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint64(b, 1)
	b = binary.BigEndian.AppendUint64(b, off)
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
	if _, err := rd.c.Write(b); err != nil {
		return err
	}
	for {
		var h [20]byte
		if _, err := io.ReadFull(rd.r, h[:]); err != nil {
			return err
		}
		if binary.BigEndian.Uint32(h[:4]) != 0x668e33ef {
			return errors.New("not a structured reply")
		}
		flags, typ := binary.BigEndian.Uint16(h[4:6]), binary.BigEndian.Uint16(h[6:8])
		n := binary.BigEndian.Uint32(h[16:20])
		var co [8]byte
		switch typ {
		case 1, 2:
			if _, err := io.ReadFull(rd.r, co[:]); err != nil {
				return err
			}
			at := binary.BigEndian.Uint64(co[:]) - off
			if typ == 1 {
				if _, err := io.ReadFull(rd.r, p[at:at+uint64(n-8)]); err != nil {
					return err
				}
			} else {
				var l [4]byte
				if _, err := io.ReadFull(rd.r, l[:]); err != nil {
					return err
				}
				clear(p[at : at+uint64(binary.BigEndian.Uint32(l[:]))])
			}
		case 0:
		default:
			return fmt.Errorf("chunk type %d", typ)
		}
		if flags&1 != 0 {
			return nil
		}
	}
}

// vmByte is what VM v holds at off: data in the first half of each MiB,
// holes in the second.
func vmByte(v int, off int64) byte {
	if off%(1<<20) >= 1<<19 {
		return 0
	}
	return byte(v*7 + int(off>>20) + 1)
}

// TestManyClients: 32 clients, each reading its own VM for a few seconds
// at random offsets through one server, get exactly their VM's bytes;
// one more client leaving in the middle of a 32 MiB read does not
// disturb them; the server's memory stays bounded (the figures are
// logged; the bound is a safety net).
func TestManyClients(t *testing.T) {
	const (
		vms  = 32
		size = 16 << 20
	)
	dur := 3 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	dir := t.TempDir()
	var exps []nbd.Export
	for v := range vms {
		p := filepath.Join(dir, fmt.Sprintf("vm%02d.raw", v))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		for mib := int64(0); mib < size>>20; mib++ {
			if _, err := f.WriteAt(bytes.Repeat([]byte{vmByte(v, mib<<20)}, 1<<19), mib<<20); err != nil {
				t.Fatal(err)
			}
		}
		f.Truncate(size)
		f.Close()
		exps = append(exps, exports(t, p)...)
	}
	var st servestat.Counters
	addr := serveWith(t, &nbd.Server{Exports: exps, MaxConns: vms + 4, Stats: &st})

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peakHeap atomic.Uint64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peakHeap.Load() {
				peakHeap.Store(m.HeapInuse)
			}
			select {
			case <-stopSample:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	deadline := time.Now().Add(dur)
	var (
		wg    sync.WaitGroup
		reads atomic.Int64
		mu    sync.Mutex
		errs  []error
	)
	for v := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				rd, err := openReader(addr, exps[v].Name())
				if err != nil {
					return err
				}
				defer rd.c.Close()
				rng := rand.New(rand.NewPCG(uint64(v), 1))
				buf := make([]byte, 256<<10)
				for time.Now().Before(deadline) {
					n := int64(4096 << rng.IntN(7)) // 4 KiB to 256 KiB
					off := rng.Int64N(size-n) &^ 511
					if err := rd.read(buf[:n], uint64(off)); err != nil {
						return fmt.Errorf("read %d+%d: %w", off, n, err)
					}
					for i := int64(0); i < n; i += 4096 {
						if got, want := buf[i], vmByte(v, off+i); got != want {
							return fmt.Errorf("byte %d: %#x, want %#x", off+i, got, want)
						}
					}
					reads.Add(1)
				}
				return nil
			}()
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("client %d: %w", v, err))
				mu.Unlock()
			}
		}()
	}
	// In the middle, a client asks for 32 MiB and leaves after a little.
	time.Sleep(dur / 3)
	if rd, err := openReader(addr, exps[0].Name()); err != nil {
		t.Errorf("leaving client: %v", err)
	} else {
		b := binary.BigEndian.AppendUint32(nil, 0x25609513)
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint64(b, 9)
		b = binary.BigEndian.AppendUint64(b, 0)
		b = binary.BigEndian.AppendUint32(b, 16<<20)
		rd.c.Write(b)
		rd.r.Discard(64 << 10)
		rd.c.Close()
	}
	wg.Wait()
	close(stopSample)
	<-sampled
	for _, err := range errs {
		t.Error(err)
	}
	// After all that, a new client is served.
	if rd, err := openReader(addr, exps[5].Name()); err != nil {
		t.Errorf("client after the run: %v", err)
	} else {
		buf := make([]byte, 4096)
		if err := rd.read(buf, 3<<20); err != nil || buf[0] != vmByte(5, 3<<20) {
			t.Errorf("client after the run: %v, byte %#x", err, buf[0])
		}
		rd.c.Close()
	}
	figs := st.Snapshot()
	peak := peakHeap.Load()
	t.Logf("%d clients, %v: %d reads (%.0f/s), %s served, peak heap in use %.1f MiB (%.1f MiB before), VmHWM %s; errors %d",
		vms, dur, reads.Load(), float64(reads.Load())/dur.Seconds(), mib(figs.BytesRead), float64(peak)/(1<<20), float64(base.HeapInuse)/(1<<20), vmHWM(), figs.Errors)
	if reads.Load() < vms {
		t.Errorf("%d reads in all: some clients were not served", reads.Load())
	}
	if figs.Errors != 0 && figs.Errors != 1 {
		// The leaving client's broken write is the one error allowed.
		t.Errorf("server counted %d errors", figs.Errors)
	}
	// Clients and server share this process: 32 connections with 256 KiB
	// buffers each side, and the leaving client's 16 MiB read buffer.
	if limit := uint64(256 << 20); peak-min(peak, base.HeapInuse) > limit {
		t.Errorf("heap grew by %d MiB, over the %d MiB safety bound", (peak-base.HeapInuse)>>20, limit>>20)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// vmHWM is the process's peak resident set, from /proc.
func vmHWM() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(v)
			if kb, err := strconv.Atoi(f[0]); err == nil {
				return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
			}
		}
	}
	return "?"
}
