package qcow2

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"

	"github.com/vmfs/vmfs/layouts"
)

// Compressed clusters are decoded here, from the L2 entry the map already
// checked: a compressed cluster descriptor names the first byte of the
// cluster's compressed data and how many more 512-byte sectors it may
// take, and the data is a raw deflate stream (compression type 0) or a
// zstd frame (type 1) that decompresses to the whole cluster.

// decoders keeps one disk's decompression state for reuse: a compressed
// cluster is small, and building a decoder per read would cost more than
// decoding it. Each disk has its own, which goes with the disk.
type decoders struct {
	input sync.Pool // *[]byte, compressed bytes of one cluster
	flate sync.Pool // io.ReadCloser from flate.NewReader
	zstd  sync.Pool // *zstd.Decoder
}

// maxCompressedInput bounds what one compressed cluster may occupy: a
// descriptor cannot name more than twice the largest cluster size.
const maxCompressedInput = 2<<maxClusterBits + 512

// compressedEntry returns the L2 entry of compressed cluster c, checked.
func (d *Disk) compressedEntry(c int64) (uint64, error) {
	l1i := c >> d.l2Bits
	if l1i >= int64(len(d.l1)) {
		return 0, errf(d.name, "cluster %d is beyond the L1 table: %w", c, layouts.ErrFormat)
	}
	t, err := d.l2Table(l1i)
	if err != nil {
		return 0, err
	}
	idx := c & (1<<d.l2Bits - 1)
	if d.extL2 {
		idx *= 2
	}
	if t == nil || t[idx]&flagCompressed == 0 {
		return 0, errf(d.name, "cluster %d is no longer compressed: %w", c, layouts.ErrFormat)
	}
	e := t[idx]
	return e, d.checkCompressed(e, c)
}

// decompress fills dst with the data of compressed cluster c (dst is the
// cluster, clipped to the disk's end).
func (d *Disk) decompress(dst []byte, c int64) error {
	e, err := d.compressedEntry(c)
	if err != nil {
		return err
	}
	x := 62 - (d.clusterBits - 8)
	host := int64(e & (1<<x - 1))
	sectors := int64(e>>x&(1<<(d.clusterBits-8)-1)) + 1
	n := min(sectors*512-host&511, d.f.Size()-host, maxCompressedInput)
	bp, _ := d.dec.input.Get().(*[]byte)
	if bp == nil || int64(cap(*bp)) < n {
		b := make([]byte, n)
		bp = &b
	}
	defer d.dec.input.Put(bp)
	in := (*bp)[:n]
	if m, err := d.f.ReadAt(in, host); m < len(in) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return errf(d.name, "reading compressed cluster %d at %#x: %v", c, host, err)
	}
	r := bytes.NewReader(in)
	switch d.h.compression {
	case 0:
		fr, _ := d.dec.flate.Get().(io.ReadCloser)
		if fr == nil {
			fr = flate.NewReader(r)
		} else if err := fr.(flate.Resetter).Reset(r, nil); err != nil {
			return errf(d.name, "compressed cluster %d: %v: %w", c, err, layouts.ErrFormat)
		}
		defer d.dec.flate.Put(fr)
		_, err = io.ReadFull(fr, dst)
	case 1:
		zd, _ := d.dec.zstd.Get().(*zstd.Decoder)
		if zd == nil {
			zd, err = zstd.NewReader(r,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxMemory(64<<20),
				zstd.WithDecoderMaxWindow(8<<20))
		} else {
			err = zd.Reset(r)
		}
		if err != nil {
			return errf(d.name, "compressed cluster %d: %v: %w", c, err, layouts.ErrFormat)
		}
		defer d.dec.zstd.Put(zd)
		_, err = io.ReadFull(zd, dst)
	default: // the header check refuses other types
		err = errors.New("unknown compression type")
	}
	if err != nil {
		return errf(d.name, "compressed cluster %d: %v: %w", c, err, layouts.ErrFormat)
	}
	return nil
}

// readCompressed reads compressed clusters covering [pos, pos+len(buf)),
// each decompressed once into a small cache so that small reads in one
// cluster do not decompress it again and again.
func (d *Disk) readCompressed(buf []byte, pos int64) error {
	for len(buf) > 0 {
		c := pos >> d.clusterBits
		in := pos & (d.clusterSize - 1)
		data, err := d.compressedCluster(c)
		if err != nil {
			return err
		}
		n := copy(buf, data[in:])
		buf, pos = buf[n:], pos+int64(n)
	}
	return nil
}

// compressedCluster returns cluster c decompressed (clipped to the disk).
func (d *Disk) compressedCluster(c int64) ([]byte, error) {
	if data := d.zcache.get(c); data != nil {
		return data, nil
	}
	start := c << d.clusterBits
	data := make([]byte, min(d.clusterSize, d.size-start))
	if err := d.decompress(data, c); err != nil {
		return nil, err
	}
	d.zcache.put(c, data)
	return data, nil
}

// maxCachedClusters bounds the memory of decompressed clusters kept.
const maxCachedClusters = 8 << 20

// clusterCache keeps a few decompressed clusters by cluster number.
type clusterCache struct {
	mu  sync.Mutex
	m   map[int64][]byte
	max int
}

func (c *clusterCache) init(clusterSize int64) {
	c.m = make(map[int64][]byte)
	c.max = max(4, int(maxCachedClusters/clusterSize))
}

func (c *clusterCache) get(k int64) []byte {
	c.mu.Lock()
	v := c.m[k]
	c.mu.Unlock()
	return v
}

func (c *clusterCache) put(k int64, v []byte) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = v
	c.mu.Unlock()
}
