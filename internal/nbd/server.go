// Package nbd serves block devices over the NBD protocol: the fixed
// newstyle handshake (NBD_OPT_LIST, NBD_OPT_INFO, NBD_OPT_GO,
// NBD_OPT_EXPORT_NAME, NBD_OPT_STARTTLS, structured replies, the
// base:allocation metadata context) and the READ, BLOCK_STATUS, FLUSH and
// DISC commands; WRITE, WRITE_ZEROES and TRIM for a Writable export, EPERM
// for the others. With TLS configured, every option but STARTTLS (and
// ABORT) is refused until TLS is up.
package nbd

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/vmfs/vmfs/internal/servestat"
	"github.com/vmfs/vmfs/layouts"
)

// Export is one block device the server offers, read-only unless it is
// also a Writable.
type Export interface {
	// Name is the export name clients ask for.
	Name() string
	// Size in bytes.
	Size() int64
	io.ReaderAt
	// Extents describes [off, off+n), as layouts.Disk.Extents does.
	Extents(off, n int64) ([]layouts.Extent, error)
}

// Server serves its exports to every connection it accepts.
type Server struct {
	Exports []Export
	// MaxConns bounds the connections served at once (0: 16). Others are
	// closed as soon as accepted.
	MaxConns int
	// HandshakeTimeout bounds the negotiation phase (0: 30s).
	HandshakeTimeout time.Duration
	// Log receives one line per connection event (nil: discarded).
	Log *slog.Logger
	// TLS, when not nil, is required: a client must negotiate it with
	// NBD_OPT_STARTTLS before any other option (NBD_REP_ERR_TLS_REQD).
	// ClientAuth and ClientCAs in it decide whether clients show a
	// certificate.
	TLS *tls.Config
	// Stats, when not nil, counts connections, bytes and errors.
	Stats *servestat.Counters
}

func (s *Server) stats() *servestat.Counters {
	if s.Stats == nil {
		// Counted, and nobody reads them.
		return &servestat.Counters{}
	}
	return s.Stats
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return s.Log
}

// Serve accepts connections on ln until ctx is done, then closes ln and
// every connection and returns once they have all stopped. It returns nil
// when stopped by ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = 16
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := s.stats()
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	var err error
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				break
			}
			// Out of descriptors and the like: wait, then accept again.
			s.log().Warn("nbd: accept", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		mu.Lock()
		if len(conns) >= maxConns || ctx.Err() != nil {
			mu.Unlock()
			s.log().Warn("nbd: too many connections, closing", "remote", c.RemoteAddr().String(), "max", maxConns)
			st.Refused.Add(1)
			c.Close()
			continue
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c, st)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
	stopped := ctx.Err() != nil
	cancel()
	wg.Wait()
	if stopped {
		return nil
	}
	return fmt.Errorf("nbd: accepting on %s: %w", ln.Addr(), err)
}

// ServeConn runs the protocol on one connection and closes it. Errors end
// the connection and are logged; they never stop the server.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) { s.serveConn(ctx, c, s.stats()) }

func (s *Server) serveConn(ctx context.Context, c net.Conn, st *servestat.Counters) {
	defer c.Close()
	defer st.Open()()
	cn := &conn{srv: s, st: st, c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
	remote := "pipe"
	if a := c.RemoteAddr(); a != nil {
		remote = a.String()
	}
	err := cn.run(ctx)
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.log().Debug("nbd: connection closed", "remote", remote)
	default:
		if !errors.Is(err, errTLSRequired) {
			st.Errors.Add(1)
		}
		s.log().Info("nbd: connection ended", "remote", remote, "err", err)
	}
}

// conn is the state of one connection.
type conn struct {
	srv *Server
	st  *servestat.Counters
	c   net.Conn
	r   *bufio.Reader
	w   *bufio.Writer

	noZeroes   bool
	structured bool
	// tls: STARTTLS succeeded; refused: the client was told TLS is
	// required (counted once).
	tls, refused bool
	// metaExport is the export base:allocation was selected for ("" and
	// metaSet false: none).
	metaSet    bool
	metaExport string
	exp        Export
	meta       bool
	buf        []byte
}

// errProtocol ends a connection whose peer broke the protocol.
var errProtocol = errors.New("protocol violation")

// errTLSRequired ends a connection that asked for an export before TLS.
var errTLSRequired = errors.New("TLS is required")

func (cn *conn) run(ctx context.Context) error {
	timeout := cn.srv.HandshakeTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	cn.c.SetDeadline(time.Now().Add(timeout))
	done, err := cn.handshake()
	if err != nil || done {
		return err
	}
	cn.c.SetDeadline(time.Time{})
	return cn.transmit(ctx)
}

func (cn *conn) flush() error { return cn.w.Flush() }

func (cn *conn) u16(v uint16) { cn.w.Write(binary.BigEndian.AppendUint16(nil, v)) }
func (cn *conn) u32(v uint32) { cn.w.Write(binary.BigEndian.AppendUint32(nil, v)) }
func (cn *conn) u64(v uint64) { cn.w.Write(binary.BigEndian.AppendUint64(nil, v)) }

func (cn *conn) find(name string) Export {
	for _, e := range cn.srv.Exports {
		if e.Name() == name {
			return e
		}
	}
	if name == "" && len(cn.srv.Exports) == 1 {
		// The default export, when there is only one.
		return cn.srv.Exports[0]
	}
	return nil
}

// handshake negotiates until the client picks an export (done false) or
// leaves (done true).
func (cn *conn) handshake() (done bool, err error) {
	cn.u64(magicInit)
	cn.u64(magicOpt)
	cn.u16(flagFixedNewstyle | flagNoZeroes)
	if err := cn.flush(); err != nil {
		return false, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(cn.r, hdr[:]); err != nil {
		return false, err
	}
	flags := binary.BigEndian.Uint32(hdr[:])
	if flags&^(flagFixedNewstyle|flagNoZeroes) != 0 {
		return false, fmt.Errorf("%w: unknown client flags %#x", errProtocol, flags)
	}
	cn.noZeroes = flags&flagNoZeroes != 0
	for {
		var oh [16]byte
		if _, err := io.ReadFull(cn.r, oh[:]); err != nil {
			return false, err
		}
		if binary.BigEndian.Uint64(oh[:8]) != magicOpt {
			return false, fmt.Errorf("%w: bad option magic", errProtocol)
		}
		opt := binary.BigEndian.Uint32(oh[8:12])
		n := binary.BigEndian.Uint32(oh[12:16])
		if n > maxOptionData {
			return false, fmt.Errorf("%w: option %d carries %d bytes", errProtocol, opt, n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(cn.r, data); err != nil {
			return false, err
		}
		if cn.srv.TLS != nil && !cn.tls && opt != optStartTLS && opt != optAbort {
			if !cn.refused {
				cn.refused = true
				cn.st.Refused.Add(1)
			}
			if opt == optExportName {
				// No reply can say why: the connection ends.
				return false, fmt.Errorf("%w: NBD_OPT_EXPORT_NAME before STARTTLS", errTLSRequired)
			}
			err = cn.replyErr(opt, repErrTLSReqd, "TLS is required: negotiate NBD_OPT_STARTTLS first")
			if err == nil {
				err = cn.flush()
			}
			if err != nil {
				return false, err
			}
			continue
		}
		switch opt {
		case optExportName:
			e := cn.find(string(data))
			if e == nil {
				return false, fmt.Errorf("export %q: no such export", data)
			}
			cn.exp = e
			cn.meta = cn.metaSet && cn.metaExport == e.Name()
			cn.u64(uint64(e.Size()))
			cn.u16(transmitFlags(e))
			if !cn.noZeroes {
				cn.w.Write(make([]byte, 124))
			}
			return false, cn.flush()
		case optAbort:
			cn.reply(opt, repAck, nil)
			cn.flush()
			return true, nil
		case optList:
			if n != 0 {
				err = cn.replyErr(opt, repErrInvalid, "NBD_OPT_LIST takes no data")
				break
			}
			for _, e := range cn.srv.Exports {
				b := binary.BigEndian.AppendUint32(nil, uint32(len(e.Name())))
				cn.reply(opt, repServer, append(b, e.Name()...))
			}
			err = cn.reply(opt, repAck, nil)
		case optInfo, optGo:
			var e Export
			e, err = cn.info(opt, data)
			if err == nil && e != nil && opt == optGo {
				cn.exp = e
				cn.meta = cn.metaSet && cn.metaExport == e.Name()
				return false, cn.flush()
			}
		case optStructured:
			if n != 0 {
				err = cn.replyErr(opt, repErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data")
				break
			}
			cn.structured = true
			err = cn.reply(opt, repAck, nil)
		case optListMetaCtx, optSetMetaCtx:
			err = cn.metaContext(opt, data)
		case optStartTLS:
			err = cn.startTLS(opt, n)
		default:
			err = cn.replyErr(opt, repErrUnsup, fmt.Sprintf("option %d is not supported", opt))
		}
		if err == nil {
			err = cn.flush()
		}
		if err != nil {
			return false, err
		}
	}
}

// transmitFlags are e's: read-only, or writable with FUA, TRIM and
// WRITE_ZEROES. Multi-connection holds for both: every connection reads
// and writes the one export, and a flush on one syncs all writes.
func transmitFlags(e Export) uint16 {
	f := uint16(tflagHasFlags | tflagSendFlush | tflagSendDF | tflagCanMultiConn)
	if _, ok := e.(Writable); ok {
		return f | tflagSendFUA | tflagSendTrim | tflagSendZeroes
	}
	return f | tflagReadOnly
}

// startTLS answers NBD_OPT_STARTTLS: acknowledge, then the TLS handshake
// on the same connection, after which negotiation starts afresh inside
// TLS.
func (cn *conn) startTLS(opt, n uint32) error {
	switch {
	case cn.srv.TLS == nil:
		return cn.replyErr(opt, repErrUnsup, "TLS is not configured on this server")
	case cn.tls:
		return cn.replyErr(opt, repErrInvalid, "TLS is already negotiated")
	case n != 0:
		return cn.replyErr(opt, repErrInvalid, "NBD_OPT_STARTTLS takes no data")
	case cn.r.Buffered() != 0:
		return fmt.Errorf("%w: data sent after NBD_OPT_STARTTLS before its reply", errProtocol)
	}
	if err := cn.reply(opt, repAck, nil); err != nil {
		return err
	}
	if err := cn.flush(); err != nil {
		return err
	}
	tc := tls.Server(cn.c, cn.srv.TLS)
	if err := tc.Handshake(); err != nil {
		cn.st.Refused.Add(1)
		return fmt.Errorf("%w: TLS handshake: %v", errTLSRequired, err)
	}
	cn.c, cn.r, cn.w = tc, bufio.NewReader(tc), bufio.NewWriter(tc)
	cn.tls = true
	// Whatever was negotiated in clear text is forgotten.
	cn.structured, cn.metaSet, cn.metaExport = false, false, ""
	return nil
}

// reply writes one option reply.
func (cn *conn) reply(opt, typ uint32, data []byte) error {
	cn.u64(magicOptReply)
	cn.u32(opt)
	cn.u32(typ)
	cn.u32(uint32(len(data)))
	_, err := cn.w.Write(data)
	return err
}

func (cn *conn) replyErr(opt, typ uint32, msg string) error {
	return cn.reply(opt, typ, []byte(msg))
}

// cursor reads the fields of an option's data.
type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) u16() uint16 {
	if len(c.b) < 2 {
		c.bad = true
		return 0
	}
	v := binary.BigEndian.Uint16(c.b)
	c.b = c.b[2:]
	return v
}

func (c *cursor) u32() uint32 {
	if len(c.b) < 4 {
		c.bad = true
		return 0
	}
	v := binary.BigEndian.Uint32(c.b)
	c.b = c.b[4:]
	return v
}

func (c *cursor) str() string {
	n := c.u32()
	if c.bad || n > maxString || int(n) > len(c.b) {
		c.bad = true
		return ""
	}
	s := string(c.b[:n])
	c.b = c.b[n:]
	return s
}

// info answers NBD_OPT_INFO and NBD_OPT_GO: the export, or nil when the
// client was told why not.
func (cn *conn) info(opt uint32, data []byte) (Export, error) {
	c := cursor{b: data}
	name := c.str()
	nreq := c.u16()
	for range nreq {
		c.u16()
	}
	if c.bad || len(c.b) != 0 {
		return nil, cn.replyErr(opt, repErrInvalid, "malformed NBD_OPT_INFO/GO request")
	}
	e := cn.find(name)
	if e == nil {
		return nil, cn.replyErr(opt, repErrUnknown, fmt.Sprintf("export %q: no such export", name))
	}
	b := binary.BigEndian.AppendUint16(nil, infoExport)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Size()))
	b = binary.BigEndian.AppendUint16(b, transmitFlags(e))
	cn.reply(opt, repInfo, b)
	b = binary.BigEndian.AppendUint16(nil, infoName)
	cn.reply(opt, repInfo, append(b, e.Name()...))
	b = binary.BigEndian.AppendUint16(nil, infoBlockSize)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, 4096)
	b = binary.BigEndian.AppendUint32(b, MaxRequest)
	cn.reply(opt, repInfo, b)
	return e, cn.reply(opt, repAck, nil)
}

// metaContext answers NBD_OPT_LIST_META_CONTEXT and _SET_: the one
// context is base:allocation.
func (cn *conn) metaContext(opt uint32, data []byte) error {
	if opt == optSetMetaCtx && !cn.structured {
		return cn.replyErr(opt, repErrInvalid, "NBD_OPT_SET_META_CONTEXT needs structured replies first")
	}
	c := cursor{b: data}
	name := c.str()
	nq := c.u32()
	var queries []string
	for range nq {
		if c.bad {
			break
		}
		queries = append(queries, c.str())
	}
	if c.bad || len(c.b) != 0 {
		return cn.replyErr(opt, repErrInvalid, "malformed meta context request")
	}
	e := cn.find(name)
	if e == nil {
		return cn.replyErr(opt, repErrUnknown, fmt.Sprintf("export %q: no such export", name))
	}
	match := false
	if len(queries) == 0 {
		// An empty list asks for every context; an empty set selects none.
		match = opt == optListMetaCtx
	}
	for _, q := range queries {
		if q == metaBaseAllocation || (opt == optListMetaCtx && q == "base:") {
			match = true
		}
	}
	if opt == optSetMetaCtx {
		cn.metaSet, cn.metaExport = match, e.Name()
	}
	if match {
		b := binary.BigEndian.AppendUint32(nil, metaBaseAllocationID)
		cn.reply(opt, repMetaContext, append(b, metaBaseAllocation...))
	}
	return cn.reply(opt, repAck, nil)
}
