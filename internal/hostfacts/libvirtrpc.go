package hostfacts

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

// networksRPC lists libvirt's active and inactive networks by asking the
// daemon on its socket sock directly (libvirt's RPC protocol, through
// go-libvirt), within timeout: about a millisecond, where a virsh run,
// which loads a hundred libraries first, takes 10-20 ms (much more on a
// busy host), and the network probe sits on the path of every mount.
// Names come sorted as virsh sorts them (case-insensitively). A daemon
// that asks for authentication (polkit, SASL) is an error: virsh knows
// how to provide it.
func networksRPC(ctx context.Context, sock, uri string, timeout time.Duration) (active, inactive []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	// The deadline bounds every request: go-libvirt's calls take no
	// context, and a daemon that never answers must not hold a mount.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	type result struct {
		active, inactive []string
		err              error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.active, r.inactive, r.err = listNetworks(conn, uri)
		done <- r
	}()
	select {
	case r := <-done:
		return r.active, r.inactive, r.err
	case <-ctx.Done():
		conn.Close() // ends the requests in flight
		return nil, nil, ctx.Err()
	}
}

// listNetworks asks the daemon on conn for uri's networks, active and
// inactive.
func listNetworks(conn net.Conn, uri string) (active, inactive []string, err error) {
	l := libvirt.NewWithDialer(dialers.NewAlreadyConnected(conn))
	if err := l.ConnectToURI(libvirt.ConnectURI(uri)); err != nil {
		return nil, nil, err
	}
	defer l.Disconnect()
	list := func(flags libvirt.ConnectListAllNetworksFlags) ([]string, error) {
		nets, _, err := l.ConnectListAllNetworks(1, flags)
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(nets))
		for _, n := range nets {
			if n.Name == "" {
				return nil, errors.New("libvirtd listed a network without a name")
			}
			names = append(names, n.Name)
		}
		slices.SortFunc(names, func(a, b string) int {
			if c := strings.Compare(strings.ToLower(a), strings.ToLower(b)); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		return names, nil
	}
	if active, err = list(libvirt.ConnectListNetworksActive); err != nil {
		return nil, nil, err
	}
	if inactive, err = list(libvirt.ConnectListNetworksInactive); err != nil {
		return nil, nil, err
	}
	return active, inactive, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
