package qcow2

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
	libqcow2 "github.com/lima-vm/go-qcow2reader/image/qcow2"
	liblog "github.com/lima-vm/go-qcow2reader/log"

	"github.com/vmfs/vmfs/layouts"
)

// compressedReader reads compressed clusters; go-qcow2reader does it.
type compressedReader = *libqcow2.Qcow2

// setUpLibrary configures go-qcow2reader before its first Open. The
// library keeps its decompressors and its warning hook process-wide and
// offers no per-image option, and its Open reads that table: it is set once,
// always to the same values, before any image of this package is opened
// through the library, so no Open races the write. vmfs sets nothing else
// of the library's, and nothing of its own lives in this state: the
// decompressors find the pools of the disk that reads through the reader
// the library hands them (see decodersOf).
var setUpLibrary = sync.OnceFunc(func() {
	// The library logs warnings (experimental extended L2 and the like)
	// with the standard logger; vmfs reports through its own errors.
	liblog.SetWarnFunc(nil)
	libqcow2.SetDecompressor(libqcow2.CompressionTypeZlib, pooledFlate)
	libqcow2.SetDecompressor(libqcow2.CompressionTypeZstd, pooledZstd)
})

// decoders pools one disk's decompressors and compressed input buffers: a
// compressed cluster is small, and building a decoder per read would cost
// more than decoding it.
type decoders struct {
	flate sync.Pool // of *flateReader
	zstd  sync.Pool // of *zstdReader
	input sync.Pool // of *[]byte
}

// close releases the pooled zstd decoders; the disk reads no more.
func (p *decoders) close() {
	for {
		z, ok := p.zstd.Get().(*zstdReader)
		if !ok {
			return
		}
		z.d.Close()
	}
}

type flateReader struct {
	r  io.ReadCloser
	in *compressedInput
}

func pooledFlate(r io.Reader) (io.ReadCloser, error) {
	in, err := slurp(r)
	if err != nil {
		return nil, err
	}
	if fr, ok := in.dec.flate.Get().(*flateReader); ok {
		if err := fr.r.(flate.Resetter).Reset(in, nil); err == nil {
			fr.in = in
			return fr, nil
		}
	}
	return &flateReader{r: flate.NewReader(in), in: in}, nil
}

// Read fills p whole when the stream has enough, so that the library
// decodes a cluster in one pass.
func (f *flateReader) Read(p []byte) (int, error) { return readFull(f.r, p) }

func (f *flateReader) Close() error {
	dec := f.in.dec
	f.in.release()
	f.in = nil
	dec.flate.Put(f)
	return nil
}

// compressedInput holds the compressed bytes of one cluster, read with one
// ReadAt rather than in small pieces, and the pools of the disk they come
// from.
type compressedInput struct {
	bytes.Reader
	buf *[]byte
	dec *decoders
}

// maxCompressedInput bounds what one compressed cluster may occupy: a
// descriptor cannot name more than twice the largest cluster size.
const maxCompressedInput = 2<<maxClusterBits + 512

// decodersOf finds the pools of the disk behind r, the library's section
// of the headerView it was opened on.
func decodersOf(r io.Reader) (*io.SectionReader, *decoders, error) {
	sr, ok := r.(*io.SectionReader)
	if !ok {
		return nil, nil, errors.New("unexpected reader for compressed data")
	}
	outer, _, _ := sr.Outer()
	v, ok := outer.(*headerView)
	if !ok || v.dec == nil {
		return nil, nil, errors.New("unexpected reader for compressed data")
	}
	return sr, v.dec, nil
}

// slurp reads the library's section over a compressed cluster at once.
func slurp(r io.Reader) (*compressedInput, error) {
	sr, dec, err := decodersOf(r)
	if err != nil {
		return nil, err
	}
	n := min(sr.Size(), maxCompressedInput)
	bp, _ := dec.input.Get().(*[]byte)
	if bp == nil || int64(cap(*bp)) < n {
		b := make([]byte, n)
		bp = &b
	}
	buf := (*bp)[:n]
	m, err := sr.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		dec.input.Put(bp)
		return nil, err
	}
	in := &compressedInput{buf: bp, dec: dec}
	in.Reset(buf[:m])
	return in, nil
}

func (c *compressedInput) release() {
	if c != nil && c.buf != nil {
		c.dec.input.Put(c.buf)
		c.buf = nil
	}
}

type zstdReader struct {
	d  *zstd.Decoder
	in *compressedInput
}

func pooledZstd(r io.Reader) (io.ReadCloser, error) {
	in, err := slurp(r)
	if err != nil {
		return nil, err
	}
	if zr, ok := in.dec.zstd.Get().(*zstdReader); ok {
		if err := zr.d.Reset(in); err == nil {
			zr.in = in
			return zr, nil
		}
	}
	d, err := zstd.NewReader(in,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(64<<20),
		zstd.WithDecoderMaxWindow(8<<20))
	if err != nil {
		in.release()
		return nil, err
	}
	return &zstdReader{d: d, in: in}, nil
}

func (z *zstdReader) Read(p []byte) (int, error) { return readFull(z.d, p) }

func (z *zstdReader) Close() error {
	dec := z.in.dec
	z.in.release()
	z.in = nil
	dec.zstd.Put(z)
	return nil
}

func readFull(r io.Reader, p []byte) (int, error) {
	n, err := io.ReadFull(r, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// headerView shows the image to the library with its backing file and
// external data file flags removed: vmfs opens those itself. It carries
// the disk's decoders to the decompressors the library calls.
type headerView struct {
	r     io.ReaderAt
	patch []byte
	dec   *decoders
}

func (v *headerView) ReadAt(p []byte, off int64) (int, error) {
	n, err := v.r.ReadAt(p, off)
	for i := off; i < off+int64(n) && i < int64(len(v.patch)); i++ {
		p[i-off] = v.patch[i]
	}
	return n, err
}

func (d *Disk) openLib() (compressedReader, error) {
	d.libOnce.Do(func() {
		patch := make([]byte, min(int64(d.h.headerLen), 112))
		if _, err := d.f.ReadAt(patch, 0); err != nil && err != io.EOF {
			d.libErr = errf(d.name, "reading header: %v", err)
			return
		}
		clear(patch[8:20])    // backing file offset and length
		if d.h.version >= 3 { // incompatible features, big endian at 72
			patch[79] &^= incDataFile
		}
		setUpLibrary()
		img, err := libqcow2.Open(&headerView{r: d.f, patch: patch, dec: &d.dec}, nil)
		if err == nil {
			err = img.Readable()
		}
		if err != nil {
			d.libErr = errf(d.name, "opening for compressed clusters: %v: %w", err, layouts.ErrFormat)
			return
		}
		d.lib = img
	})
	return d.lib, d.libErr
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
	lib, err := d.openLib()
	if err != nil {
		return nil, err
	}
	start := c << d.clusterBits
	data := make([]byte, min(d.clusterSize, d.size-start))
	n, err := lib.ReadAt(data, start)
	if n != len(data) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, errf(d.name, "compressed cluster %d: %v: %w", c, err, layouts.ErrFormat)
	}
	d.zcache.put(c, data)
	return data, nil
}

// maxCachedClusters bounds the memory of decompressed clusters kept.
const maxCachedClusters = 8 << 20
