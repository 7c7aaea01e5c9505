package nbd

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/vmfs/vmfs/layouts"
)

// request is one command of the transmission phase.
type request struct {
	flags, typ uint16
	handle     uint64
	off        uint64
	n          uint32
}

// transmit answers the client's commands, in order, until it leaves.
func (cn *conn) transmit(ctx context.Context) error {
	var hdr [28]byte
	for {
		if _, err := io.ReadFull(cn.r, hdr[:]); err != nil {
			return err
		}
		if binary.BigEndian.Uint32(hdr[:4]) != magicRequest {
			return fmt.Errorf("%w: bad request magic", errProtocol)
		}
		rq := request{
			flags:  binary.BigEndian.Uint16(hdr[4:6]),
			typ:    binary.BigEndian.Uint16(hdr[6:8]),
			handle: binary.BigEndian.Uint64(hdr[8:16]),
			off:    binary.BigEndian.Uint64(hdr[16:24]),
			n:      binary.BigEndian.Uint32(hdr[24:28]),
		}
		var err error
		switch rq.typ {
		case cmdDisc:
			return cn.flush()
		case cmdRead:
			err = cn.read(rq)
		case cmdWrite:
			// The payload follows the request: read it to stay in step,
			// then refuse.
			if rq.n > MaxRequest {
				return fmt.Errorf("%w: write of %d bytes", errProtocol, rq.n)
			}
			if _, err := io.CopyN(io.Discard, cn.r, int64(rq.n)); err != nil {
				return err
			}
			err = cn.simple(rq, errPerm)
		case cmdTrim, cmdWriteZeroes:
			err = cn.simple(rq, errPerm)
		case cmdFlush:
			err = cn.simple(rq, 0)
		case cmdBlockStatus:
			err = cn.blockStatus(rq)
		default:
			err = cn.fail(rq, errInval, fmt.Sprintf("command %d is not supported", rq.typ))
		}
		if err == nil && cn.r.Buffered() == 0 {
			// Flush when no more requests are already waiting, so that
			// pipelined requests get their replies in one write.
			err = cn.flush()
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return cn.flush()
		}
	}
}

// simple writes a simple reply with no payload.
func (cn *conn) simple(rq request, errno uint32) error {
	cn.u32(magicSimple)
	cn.u32(errno)
	cn.u64(rq.handle)
	return nil
}

// chunk writes the header of one structured reply chunk.
func (cn *conn) chunk(rq request, flags, typ uint16, n int) {
	cn.u32(magicStructured)
	cn.u16(flags)
	cn.u16(typ)
	cn.u64(rq.handle)
	cn.u32(uint32(n))
}

// fail answers rq with errno: a structured error chunk when structured
// replies were negotiated (which READ and BLOCK_STATUS then need), else a
// simple reply.
func (cn *conn) fail(rq request, errno uint32, msg string) error {
	if !cn.structured {
		return cn.simple(rq, errno)
	}
	if len(msg) > maxString {
		msg = msg[:maxString]
	}
	cn.chunk(rq, replyFlagDone, chunkError, 6+len(msg))
	cn.u32(errno)
	cn.u16(uint16(len(msg)))
	_, err := cn.w.WriteString(msg)
	return err
}

// check validates the range of a READ or BLOCK_STATUS.
func (cn *conn) check(rq request) (errno uint32, msg string) {
	size := uint64(cn.exp.Size())
	switch {
	case rq.n == 0:
		return errInval, "zero-length request"
	case rq.off > size || uint64(rq.n) > size-rq.off:
		return errInval, fmt.Sprintf("range %d+%d is past the end of the export (%d bytes)", rq.off, rq.n, size)
	}
	return 0, ""
}

func (cn *conn) read(rq request) error {
	if rq.n > MaxRequest {
		return cn.fail(rq, errOverflow, fmt.Sprintf("read of %d bytes: at most %d", rq.n, MaxRequest))
	}
	if errno, msg := cn.check(rq); errno != 0 {
		return cn.fail(rq, errno, msg)
	}
	off, n := int64(rq.off), int64(rq.n)
	if !cn.structured || rq.flags&cmdFlagDF != 0 {
		// One piece: the bytes, holes included, read whole.
		buf := cn.buffer(n)
		if err := readFull(cn.exp, buf, off); err != nil {
			return cn.fail(rq, errIO, fmt.Sprintf("reading %d+%d: %v", off, n, err))
		}
		if !cn.structured {
			cn.simple(rq, 0)
		} else {
			cn.chunk(rq, replyFlagDone, chunkOffsetData, 8+len(buf))
			cn.u64(rq.off)
		}
		_, err := cn.w.Write(buf)
		return err
	}
	exts, err := cn.exp.Extents(off, n)
	if err != nil {
		return cn.fail(rq, errIO, fmt.Sprintf("mapping %d+%d: %v", off, n, err))
	}
	exts = cover(exts, off, n)
	for i, e := range exts {
		var flags uint16
		if i == len(exts)-1 {
			flags = replyFlagDone
		}
		if e.Kind != layouts.Data {
			cn.chunk(rq, flags, chunkOffsetHole, 12)
			cn.u64(uint64(e.Off))
			cn.u32(uint32(e.Len))
			continue
		}
		buf := cn.buffer(e.Len)
		if err := readFull(cn.exp, buf, e.Off); err != nil {
			// Chunks sent so far stand; the error ends the reply.
			return cn.fail(rq, errIO, fmt.Sprintf("reading %d+%d: %v", e.Off, e.Len, err))
		}
		cn.chunk(rq, flags, chunkOffsetData, 8+len(buf))
		cn.u64(uint64(e.Off))
		if _, err := cn.w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// cover makes exts tile [off, off+n) exactly: clipped, gaps (which an
// Extents implementation should not leave) filled as data, so that a
// client always gets every byte it asked for.
func cover(exts []layouts.Extent, off, n int64) []layouts.Extent {
	var out []layouts.Extent
	pos, end := off, off+n
	for _, e := range exts {
		s, t := max(e.Off, pos), min(e.End(), end)
		if t <= s {
			continue
		}
		if s > pos {
			out = append(out, layouts.Extent{Off: pos, Len: s - pos, Kind: layouts.Data})
		}
		out = append(out, layouts.Extent{Off: s, Len: t - s, Kind: e.Kind})
		pos = t
	}
	if pos < end {
		out = append(out, layouts.Extent{Off: pos, Len: end - pos, Kind: layouts.Data})
	}
	return out
}

// buffer is the connection's read buffer, at least n bytes (n is at most
// MaxRequest).
func (cn *conn) buffer(n int64) []byte {
	if int64(cap(cn.buf)) < n {
		cn.buf = make([]byte, n)
	}
	return cn.buf[:n]
}

// maxDescriptors bounds one BLOCK_STATUS reply.
const maxDescriptors = 4096

func (cn *conn) blockStatus(rq request) error {
	if !cn.structured || !cn.meta {
		return cn.fail(rq, errInval, "NBD_CMD_BLOCK_STATUS needs structured replies and the base:allocation context")
	}
	if errno, msg := cn.check(rq); errno != 0 {
		return cn.fail(rq, errno, msg)
	}
	off, n := int64(rq.off), int64(rq.n)
	exts, err := cn.exp.Extents(off, n)
	if err != nil {
		return cn.fail(rq, errIO, fmt.Sprintf("mapping %d+%d: %v", off, n, err))
	}
	exts = cover(exts, off, n)
	if rq.flags&cmdFlagReqOne != 0 {
		exts = exts[:1]
	}
	if len(exts) > maxDescriptors {
		exts = exts[:maxDescriptors]
	}
	// Data is allocated (0). A hole, and a range the format flags as
	// zeros, store no bytes: a write there allocates, so both are holes
	// that read as zeros, as qemu reports a zero cluster. Neighbours of
	// one state are one descriptor; cover clipped each extent to the
	// request, so none is longer than 4 GiB - 1.
	type desc struct{ n, st uint32 }
	var ds []desc
	for _, e := range exts {
		var st uint32
		if e.Kind != layouts.Data {
			st = stateHole | stateZero
		}
		if k := len(ds) - 1; k >= 0 && ds[k].st == st {
			ds[k].n += uint32(e.Len)
			continue
		}
		ds = append(ds, desc{uint32(e.Len), st})
	}
	cn.chunk(rq, replyFlagDone, chunkBlockStatus, 4+8*len(ds))
	cn.u32(metaBaseAllocationID)
	for _, d := range ds {
		cn.u32(d.n)
		cn.u32(d.st)
	}
	return nil
}

// readFull reads len(p) bytes at off; io.EOF with every byte read is
// success, as io.ReaderAt allows at the end of the export.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
