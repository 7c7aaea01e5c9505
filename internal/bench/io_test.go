package bench

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	seqBlock  = 1 << 20 // sequential request size
	randBlock = 4 << 10 // random request size
)

// dropCaches writes dirty pages back and drops the page cache, dentries
// and inodes, so the next read comes from the disk.
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}

// seqRead reads the whole file with plain buffered 1 MiB reads and returns
// MB/s over its size.
func seqRead(path string, size int64, buf []byte) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	var n int64
	for {
		m, err := f.Read(buf[:seqBlock])
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	d := time.Since(start)
	if n != size {
		return 0, fmt.Errorf("%s: read %d bytes, want %d", path, n, size)
	}
	return float64(size) / d.Seconds() / 1e6, nil
}

// randRead runs threads readers of 4 KiB at random 4 KiB aligned offsets
// (pread, readahead off) for d and returns reads per second.
func randRead(path string, size int64, threads int, d time.Duration, seed uint64) (float64, error) {
	return randIO(path, size, threads, d, seed, false)
}

// randWrite is randRead with 4 KiB pwrites of random bytes (buffered, no
// flush): the file's content changes.
func randWrite(path string, size int64, threads int, d time.Duration, seed uint64) (float64, error) {
	return randIO(path, size, threads, d, seed, true)
}

func randIO(path string, size int64, threads int, d time.Duration, seed uint64, write bool) (float64, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
	var (
		ops  atomic.Int64
		stop atomic.Bool
		wg   sync.WaitGroup
		errs = make(chan error, threads)
	)
	blocks := size / randBlock
	start := time.Now()
	for i := 0; i < threads; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			buf := make([]byte, randBlock)
			for j := range buf {
				buf[j] = byte(rng.Uint32())
			}
			var n int64
			for !stop.Load() {
				off := rng.Int64N(blocks) * randBlock
				var err error
				if write {
					_, err = f.WriteAt(buf, off)
				} else {
					_, err = f.ReadAt(buf, off)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: 4 KiB I/O at %d: %v", path, off, err)
					stop.Store(true)
					break
				}
				n++
			}
			ops.Add(n)
		}(i)
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	el := time.Since(start)
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return float64(ops.Load()) / el.Seconds(), nil
}
