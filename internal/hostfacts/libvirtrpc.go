package hostfacts

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"
)

// libvirtd's RPC protocol, as far as listing networks needs it: the remote
// program's calls over its UNIX socket, XDR-encoded. Asking libvirtd
// directly takes about a millisecond; a virsh run, which loads a hundred
// libraries first, 10-20 ms (much more on a busy host), and the network
// probe sits on the path of every mount.
const (
	rpcProgram = 0x20008086
	rpcVersion = 1

	procConnectOpen     = 1
	procConnectClose    = 2
	procAuthList        = 66
	procListAllNetworks = 283

	rpcCall  = 0
	rpcReply = 1

	authNone = 0

	listInactive = 1
	listActive   = 2

	// maxReply bounds a reply read from the socket.
	maxReply = 4 << 20
	// maxNetworks is libvirt's own bound on a network list.
	maxNetworks = 16384
)

// errNeedsAuth: the daemon wants authentication (polkit, SASL) before it
// answers; virsh knows how to provide it.
var errNeedsAuth = errors.New("libvirtd asks for authentication")

// networksRPC lists libvirt's active and inactive networks by asking the
// daemon on sock the calls virsh net-list --all makes, within timeout.
// Names come sorted as virsh sorts them (case-insensitively).
func networksRPC(ctx context.Context, sock, uri string, timeout time.Duration) (active, inactive []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c := &rpcConn{rw: conn}
	auth, err := c.call(procAuthList, nil)
	if err != nil {
		return nil, nil, err
	}
	if err := checkAuth(auth); err != nil {
		return nil, nil, err
	}
	var open xdrBuf
	open.u32(1) // the URI is present
	open.str(uri)
	open.u32(0) // flags
	if _, err := c.call(procConnectOpen, open); err != nil {
		return nil, nil, err
	}
	list := func(flags uint32) ([]string, error) {
		var a xdrBuf
		a.u32(1) // need_results
		a.u32(flags)
		r, err := c.call(procListAllNetworks, a)
		if err != nil {
			return nil, err
		}
		return parseNetworks(r)
	}
	if active, err = list(listActive); err != nil {
		return nil, nil, err
	}
	if inactive, err = list(listInactive); err != nil {
		return nil, nil, err
	}
	_, _ = c.call(procConnectClose, nil)
	if active == nil {
		active = []string{}
	}
	return active, inactive, nil
}

// checkAuth accepts an auth list that allows no authentication (root on
// the local socket: libvirtd waives polkit for it).
func checkAuth(r []byte) error {
	if len(r) < 4 {
		return errors.New("libvirtd: short auth list")
	}
	n := binary.BigEndian.Uint32(r)
	if n == 0 {
		return nil
	}
	if uint64(len(r)) < 4+4*uint64(n) {
		return errors.New("libvirtd: short auth list")
	}
	for i := range n {
		if binary.BigEndian.Uint32(r[4+4*i:]) == authNone {
			return nil
		}
	}
	return errNeedsAuth
}

// parseNetworks decodes a list-all-networks reply: the networks (name and
// UUID each), then their count.
func parseNetworks(r []byte) ([]string, error) {
	bad := errors.New("libvirtd: malformed network list")
	if len(r) < 4 {
		return nil, bad
	}
	n := binary.BigEndian.Uint32(r)
	if n > maxNetworks {
		return nil, bad
	}
	r = r[4:]
	var names []string
	for range n {
		name, rest, ok := xdrString(r)
		if !ok || len(rest) < 16 {
			return nil, bad
		}
		names = append(names, name)
		r = rest[16:] // the UUID
	}
	if len(r) != 4 {
		return nil, bad
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := strings.Compare(strings.ToLower(a), strings.ToLower(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return names, nil
}

// xdrString decodes one XDR string (length, bytes, padding to 4).
func xdrString(r []byte) (string, []byte, bool) {
	if len(r) < 4 {
		return "", nil, false
	}
	l := uint64(binary.BigEndian.Uint32(r))
	padded := (l + 3) &^ 3
	if uint64(len(r)-4) < padded {
		return "", nil, false
	}
	return string(r[4 : 4+l]), r[4+padded:], true
}

type xdrBuf []byte

func (b *xdrBuf) u32(v uint32) { *b = binary.BigEndian.AppendUint32(*b, v) }

func (b *xdrBuf) str(s string) {
	b.u32(uint32(len(s)))
	*b = append(*b, s...)
	for len(*b)%4 != 0 {
		*b = append(*b, 0)
	}
}

// rpcConn makes calls one at a time on one connection.
type rpcConn struct {
	rw     io.ReadWriter
	serial uint32
}

// call sends procedure proc with its encoded args and returns the reply's
// body, or the daemon's error.
func (c *rpcConn) call(proc uint32, args []byte) ([]byte, error) {
	c.serial++
	var m xdrBuf
	m.u32(uint32(28 + len(args)))
	for _, v := range []uint32{rpcProgram, rpcVersion, proc, rpcCall, c.serial, 0} {
		m.u32(v)
	}
	m = append(m, args...)
	if _, err := c.rw.Write(m); err != nil {
		return nil, fmt.Errorf("libvirtd: %w", err)
	}
	var hdr [28]byte
	if _, err := io.ReadFull(c.rw, hdr[:]); err != nil {
		return nil, fmt.Errorf("libvirtd: reading the reply: %w", err)
	}
	be := binary.BigEndian
	n := be.Uint32(hdr[:])
	if n < 28 || n > maxReply {
		return nil, fmt.Errorf("libvirtd: reply of %d bytes", n)
	}
	body := make([]byte, n-28)
	if _, err := io.ReadFull(c.rw, body); err != nil {
		return nil, fmt.Errorf("libvirtd: reading the reply: %w", err)
	}
	if be.Uint32(hdr[4:]) != rpcProgram || be.Uint32(hdr[12:]) != proc || be.Uint32(hdr[16:]) != rpcReply || be.Uint32(hdr[20:]) != c.serial {
		return nil, errors.New("libvirtd: unexpected reply")
	}
	if st := be.Uint32(hdr[24:]); st != 0 {
		// remote_error: code, domain, then the optional message.
		if len(body) >= 12 && be.Uint32(body[8:]) == 1 {
			if msg, _, ok := xdrString(body[12:]); ok {
				return nil, fmt.Errorf("libvirtd: %s", msg)
			}
		}
		return nil, fmt.Errorf("libvirtd: call %d failed", proc)
	}
	return body, nil
}

// isTimeout says whether err is the daemon not answering in time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
