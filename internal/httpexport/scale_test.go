package httpexport_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/httpexport"
	"github.com/vmfs/vmfs/internal/servestat"
	"github.com/vmfs/vmfs/internal/viewfile"
)

// TestManyClients: 32 clients, each on its own connection reading ranges
// of its own VM's disk for two seconds, get exactly its bytes; a client
// that leaves in the middle of a whole-file GET disturbs none of them.
func TestManyClients(t *testing.T) {
	const (
		vms  = 32
		size = 4 << 20
	)
	var list []httpexport.VM
	for v := range vms {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(v + i/4096)
		}
		list = append(list, httpexport.VM{Name: fmt.Sprintf("vm%02d", v),
			Files: []viewfile.File{{Name: "disk.raw", Content: content{b: b}, Disk: true}}})
	}
	st := &servestat.Counters{}
	h, err := httpexport.New(list, httpexport.Options{Token: "tok", Stats: st})
	if err != nil {
		t.Fatal(err)
	}
	base := serve(t, h, st)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	deadline := time.Now().Add(2 * time.Second)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		n    int
	)
	for v := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
			defer cl.CloseIdleConnections()
			rng := rand.New(rand.NewPCG(uint64(v), 2))
			reads := 0
			err := func() error {
				for time.Now().Before(deadline) {
					ln := int64(512 << rng.IntN(9))
					off := rng.Int64N(size - ln)
					rq, _ := http.NewRequest("GET", fmt.Sprintf("%s/vm%02d/disk.raw", base, v), nil)
					rq.Header.Set("Authorization", "Bearer tok")
					rq.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+ln-1))
					resp, err := cl.Do(rq)
					if err != nil {
						return err
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 206 || int64(len(b)) != ln {
						return fmt.Errorf("range %d+%d: %d, %d bytes, %v", off, ln, resp.StatusCode, len(b), err)
					}
					for i := int64(0); i < ln; i += 512 {
						if want := byte(v + int(off+i)/4096); b[i] != want {
							return fmt.Errorf("byte %d: %#x, want %#x", off+i, b[i], want)
						}
					}
					reads++
				}
				return nil
			}()
			mu.Lock()
			n += reads
			if err != nil {
				errs = append(errs, fmt.Errorf("client %d: %w", v, err))
			}
			mu.Unlock()
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if c, err := net.Dial("tcp", base[len("http://"):]); err != nil {
		t.Error(err)
	} else {
		fmt.Fprintf(c, "GET /vm03/disk.raw HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n\r\n")
		io.ReadFull(c, make([]byte, 64<<10))
		c.Close()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	figs := st.Snapshot()
	t.Logf("%d clients: %d range reads in 2s, %d MiB served, heap in use %.1f MiB (%.1f before), %d errors",
		vms, n, figs.BytesRead>>20, float64(after.HeapInuse)/(1<<20), float64(before.HeapInuse)/(1<<20), figs.Errors)
	if n < vms {
		t.Errorf("%d reads in all", n)
	}
	if figs.Errors != 0 {
		t.Errorf("%d errors counted", figs.Errors)
	}
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 256<<20 {
		t.Errorf("heap grew by %d MiB", grow>>20)
	}
}

// TestConnectionLimit: past MaxConns a connection is closed as accepted
// and counted as refused; a slot freed is taken again.
func TestConnectionLimit(t *testing.T) {
	h, err := httpexport.New(nil, httpexport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := &servestat.Counters{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpexport.Serve(ctx, ln, h, httpexport.ServeOptions{MaxConns: 2, Stats: st}) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := ln.Addr().String()
	get := func(c net.Conn) (string, error) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return "", err
		}
		b := make([]byte, 12)
		_, err := io.ReadFull(c, b)
		return string(b), err
	}
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := get(c); err != nil || got != "HTTP/1.1 200" {
			t.Fatalf("a served connection: %q, %v", got, err)
		}
		held = append(held, c)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := get(c); err == nil {
		t.Errorf("third connection answered %q", got)
	}
	c.Close()
	if st.Refused.Load() != 1 {
		t.Errorf("refused %d, want 1", st.Refused.Load())
	}
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := get(c)
		c.Close()
		if err == nil && got == "HTTP/1.1 200" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a client left: %q %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
