package vsphere

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmfs/vmfs/internal/remote"
)

// PasswordEnv is the environment variable that holds the password.
const PasswordEnv = "VMFS_VSPHERE_PASSWORD"

// MaxConns caps the connections to one host: ESXi throttles clients of its
// file API that open many.
const MaxConns = 4

// Options say how to reach and trust a host.
type Options struct {
	// Password of the URL's user (never on a command line: see Password).
	Password string
	// Thumbprint pins the host's certificate by the SHA-256 of its DER
	// form, in hex with or without colons; any other certificate is
	// refused, whoever signed it.
	Thumbprint string
	// Insecure accepts any certificate (a warning is logged).
	Insecure bool
	// Logger gets the warnings and the session renewals; nil: none.
	Logger *slog.Logger
	// Timeout bounds one request (default 60 s).
	Timeout time.Duration
}

// Password finds the password: the file passwordFile when given (its first
// line), else $VMFS_VSPHERE_PASSWORD.
func Password(getenv func(string) string, passwordFile string) (string, error) {
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", fmt.Errorf("--password-file %s: %w", passwordFile, err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		pw = strings.TrimSuffix(pw, "\r")
		if pw == "" {
			return "", fmt.Errorf("--password-file %s: empty first line", passwordFile)
		}
		return pw, nil
	}
	if pw := getenv(PasswordEnv); pw != "" {
		return pw, nil
	}
	return "", fmt.Errorf("no password: set %s or pass --password-file FILE", PasswordEnv)
}

// NormalizeThumbprint checks a SHA-256 thumbprint and writes it as
// govmomi and vSphere show it: upper-case hex pairs joined by colons.
func NormalizeThumbprint(s string) (string, error) {
	b, err := remote.ParseThumbprint(s)
	if err != nil {
		return "", fmt.Errorf("--thumbprint: %w", err)
	}
	return thumbprint(b), nil
}

func thumbprint(sum []byte) string {
	parts := make([]string, len(sum))
	for i, c := range sum {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// CertThumbprint is the SHA-256 thumbprint of a certificate.
func CertThumbprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return thumbprint(s[:])
}

// Client is one logged-in session with a host, in one datacenter.
type Client struct {
	loc      Location
	password string
	log      *slog.Logger
	timeout  time.Duration

	vim *vim25.Client
	sm  *session.Manager
	dc  *object.Datacenter
	// dcPath is the datacenter's inventory path without its leading
	// slash, as the file API's dcPath wants it.
	dcPath string

	mu       sync.Mutex // serialises re-logins
	loginGen int        // counts logins, so a burst of 401s logs in once
}

// Connect logs in to loc's host and finds loc's datacenter.
func Connect(ctx context.Context, loc Location, o Options) (*Client, error) {
	if o.Password == "" {
		return nil, fmt.Errorf("%s: no password: set %s or pass --password-file FILE", loc, PasswordEnv)
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &url.URL{Scheme: "https", Host: loc.Host, Path: "/sdk"}
	sc := soap.NewClient(u, o.Insecure)
	t := sc.DefaultTransport()
	t.MaxConnsPerHost = MaxConns
	t.MaxIdleConnsPerHost = MaxConns
	t.ResponseHeaderTimeout = o.Timeout
	switch {
	case o.Thumbprint != "":
		want, err := NormalizeThumbprint(o.Thumbprint)
		if err != nil {
			return nil, err
		}
		// The pin replaces the chain check: a self-signed host is
		// trusted by its fingerprint, and no other certificate is.
		t.TLSClientConfig = &tls.Config{
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("the host sent no certificate")
				}
				if got := CertThumbprint(cs.PeerCertificates[0]); got != want {
					return &thumbprintError{got: got, want: want}
				}
				return nil
			},
		}
	case o.Insecure:
		log.Warn("--insecure: the host's TLS certificate is not checked; anyone on the path can read the password and the disks", "host", loc.Host)
	}
	c := &Client{loc: loc, password: o.Password, log: log, timeout: o.Timeout}
	cctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	vc, err := vim25.NewClient(cctx, sc)
	if err != nil {
		return nil, c.connectError(err, o)
	}
	c.vim = vc
	c.sm = session.NewManager(vc)
	if err := c.login(cctx); err != nil {
		return nil, err
	}
	f := find.NewFinder(vc, false)
	dc, err := f.Datacenter(cctx, loc.Datacenter)
	if err != nil {
		var nf *find.NotFoundError
		if errors.As(err, &nf) {
			err = fmt.Errorf("%s: no datacenter %q on %s%s", loc, loc.Datacenter, loc.Host, c.datacenters(cctx, f))
		} else {
			err = fmt.Errorf("%s: datacenter: %w", loc, err)
		}
		_ = c.Logout(context.WithoutCancel(ctx))
		return nil, err
	}
	c.dc = dc
	c.dcPath = strings.TrimPrefix(dc.InventoryPath, "/")
	return c, nil
}

// datacenters lists the host's datacenters for an error message.
func (c *Client) datacenters(ctx context.Context, f *find.Finder) string {
	dcs, err := f.DatacenterList(ctx, "/...")
	if err != nil || len(dcs) == 0 {
		return ""
	}
	names := make([]string, len(dcs))
	for i, d := range dcs {
		names[i] = d.Name()
	}
	return " (it has: " + strings.Join(names, ", ") + ")"
}

type thumbprintError struct{ got, want string }

func (e *thumbprintError) Error() string {
	return fmt.Sprintf("the host's certificate has SHA-256 thumbprint %s, not the %s --thumbprint pins", e.got, e.want)
}

// connectError makes the first round trip's failure one line that says
// what to do.
func (c *Client) connectError(err error, o Options) error {
	var te *thumbprintError
	if errors.As(err, &te) {
		return fmt.Errorf("%s: refused: %s", c.loc, te)
	}
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || soap.IsCertificateUntrusted(err) {
		hint := "pass --thumbprint SHA256 to pin it"
		if tp := c.peekThumbprint(); tp != "" {
			hint = fmt.Sprintf("if %s is this host's certificate, pass --thumbprint %s to pin it", tp, tp)
		}
		return fmt.Errorf("%s: the host's TLS certificate is not trusted (%s): %s, or --insecure", c.loc, certReason(err), hint)
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return fmt.Errorf("%s: cannot reach %s: %v", c.loc, c.loc.Host, op.Err)
	}
	return fmt.Errorf("%s: %w", c.loc, err)
}

func certReason(err error) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	switch {
	case errors.As(err, &ua):
		return "signed by an unknown authority"
	case errors.As(err, &he):
		return "issued for another host name"
	}
	return "invalid"
}

// peekThumbprint fetches the host's certificate without trusting it, to
// show its thumbprint in the error that refuses it.
func (c *Client) peekThumbprint() string {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", c.loc.hostPort(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return ""
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	return CertThumbprint(certs[0])
}

// login opens a session with the user and password.
func (c *Client) login(ctx context.Context) error {
	err := c.sm.Login(ctx, url.UserPassword(c.loc.User, c.password))
	if err == nil {
		c.loginGen++
		return nil
	}
	if isInvalidLogin(err) {
		return fmt.Errorf("%s: login refused: wrong user or password", c.loc)
	}
	return fmt.Errorf("%s: login: %w", c.loc, err)
}

// relogin renews the session once, unless another caller renewed it
// since gen was read.
func (c *Client) relogin(ctx context.Context, gen int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loginGen != gen {
		return nil
	}
	c.log.Info("vSphere session expired; logging in again", "host", c.loc.Host)
	return c.login(ctx)
}

func (c *Client) generation() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loginGen
}

// call runs f, logging in again and retrying once when the session has
// expired.
func (c *Client) call(ctx context.Context, f func(context.Context) error) error {
	gen := c.generation()
	err := f(ctx)
	if err == nil || !isNotAuthenticated(err) {
		return err
	}
	if err := c.relogin(ctx, gen); err != nil {
		return err
	}
	return f(ctx)
}

// Logout ends the session.
func (c *Client) Logout(ctx context.Context) error {
	if c.sm == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.sm.Logout(ctx)
}

// Location is where the client is connected.
func (c *Client) Location() Location { return c.loc }

func isInvalidLogin(err error) bool {
	if soap.IsSoapFault(err) {
		_, ok := soap.ToSoapFault(err).VimFault().(types.InvalidLogin)
		return ok
	}
	if soap.IsVimFault(err) {
		_, ok := soap.ToVimFault(err).(*types.InvalidLogin)
		return ok
	}
	return false
}

func isNotAuthenticated(err error) bool {
	if soap.IsSoapFault(err) {
		switch soap.ToSoapFault(err).VimFault().(type) {
		case types.NotAuthenticated, *types.NotAuthenticated:
			return true
		}
	}
	if soap.IsVimFault(err) {
		_, ok := soap.ToVimFault(err).(*types.NotAuthenticated)
		return ok
	}
	return false
}
