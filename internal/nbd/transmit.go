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
		w, writable := cn.exp.(Writable)
		if rq.typ != cmdDisc {
			cn.st.Requests.Add(1)
		}
		switch rq.typ {
		case cmdDisc:
			return cn.flush()
		case cmdRead:
			err = cn.read(rq)
		case cmdWrite:
			// The payload follows the request: read it to stay in step,
			// then write it or refuse.
			if rq.n > MaxRequest {
				return fmt.Errorf("%w: write of %d bytes", errProtocol, rq.n)
			}
			if !writable {
				if _, err := io.CopyN(io.Discard, cn.r, int64(rq.n)); err != nil {
					return err
				}
				err = cn.fail(rq, errPerm, "the export is read-only")
				break
			}
			buf := cn.buffer(int64(rq.n))
			if _, err := io.ReadFull(cn.r, buf); err != nil {
				return err
			}
			err = cn.write(w, rq, buf)
		case cmdTrim, cmdWriteZeroes:
			if !writable {
				err = cn.fail(rq, errPerm, "the export is read-only")
				break
			}
			err = cn.zero(w, rq)
		case cmdFlush:
			if writable {
				if e := w.Sync(); e != nil {
					err = cn.fail(rq, errIO, fmt.Sprintf("flush: %v", e))
					break
				}
			}
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
	cn.st.Errors.Add(1)
	if !cn.structured || (rq.typ != cmdRead && rq.typ != cmdBlockStatus) {
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

// check validates the range of a request: zero lengths are EINVAL, a
// range past the end EINVAL for reads and ENOSPC for writes, as the
// protocol asks.
func (cn *conn) check(rq request) (errno uint32, msg string) {
	size := uint64(cn.exp.Size())
	switch {
	case rq.n == 0:
		return errInval, "zero-length request"
	case rq.off > size || uint64(rq.n) > size-rq.off:
		errno = errInval
		if rq.typ == cmdWrite || rq.typ == cmdWriteZeroes || rq.typ == cmdTrim {
			errno = errNoSpc
		}
		return errno, fmt.Sprintf("range %d+%d is past the end of the export (%d bytes)", rq.off, rq.n, size)
	}
	return 0, ""
}

// write writes buf at the request's offset into w (the overlay; never
// past the export's end, which the overlay would grow), synced first
// with NBD_CMD_FLAG_FUA.
func (cn *conn) write(w Writable, rq request, buf []byte) error {
	if errno, msg := cn.check(rq); errno != 0 {
		return cn.fail(rq, errno, msg)
	}
	if _, err := w.WriteAt(buf, int64(rq.off)); err != nil {
		return cn.fail(rq, errIO, fmt.Sprintf("writing %d+%d: %v", rq.off, rq.n, err))
	}
	cn.st.BytesWritten.Add(int64(len(buf)))
	return cn.done(w, rq)
}

// zero answers TRIM and WRITE_ZEROES: the range reads as zeros after
// both. Punching frees the overlay's space; WRITE_ZEROES with
// NBD_CMD_FLAG_NO_HOLE writes zero bytes instead, so the range stays
// allocated.
func (cn *conn) zero(w Writable, rq request) error {
	if errno, msg := cn.check(rq); errno != 0 {
		return cn.fail(rq, errno, msg)
	}
	off, n := int64(rq.off), int64(rq.n)
	if rq.typ == cmdWriteZeroes && rq.flags&cmdFlagNoHole != 0 {
		buf := cn.buffer(min(n, 1<<20))
		clear(buf)
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.WriteAt(buf[:k], off); err != nil {
				return cn.fail(rq, errIO, fmt.Sprintf("writing zeros at %d: %v", off, err))
			}
			off, n = off+k, n-k
		}
	} else if err := w.Punch(off, n); err != nil {
		return cn.fail(rq, errIO, fmt.Sprintf("zeroing %d+%d: %v", off, n, err))
	}
	return cn.done(w, rq)
}

// done answers a write that succeeded, syncing first with FUA.
func (cn *conn) done(w Writable, rq request) error {
	if rq.flags&cmdFlagFUA != 0 {
		if err := w.Sync(); err != nil {
			return cn.fail(rq, errIO, fmt.Sprintf("sync: %v", err))
		}
	}
	return cn.simple(rq, 0)
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
		cn.st.BytesRead.Add(int64(len(buf)))
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
		cn.st.BytesRead.Add(int64(len(buf)))
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
