package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/nbd"
	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/translate"
)

// serveOptions are the command line of serve, parsed.
type serveOptions struct {
	srcs []string
	// addr is the --nbd listen address, host:port.
	addr string
	// insecure lets plain NBD listen beyond loopback.
	insecure bool
	maxConns int
	env      *layouts.Env
	// out receives one NBD URI per export once the server listens.
	out io.Writer
	log *slog.Logger
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve every disk of each SRC over NBD, read-only, as the guest sees it (foreground; Ctrl-C stops)",
		Description: "Each disk is one export named VM/diskN (VM: the view's name, N from 0 in the VM's\n" +
			"disk order), listed by `nbdinfo --list`. The bytes are the source disk's virtual\n" +
			"bytes, with its allocation (holes, zeros) in reads and block status.\n" +
			"TLS is not supported yet: plain NBD listens only on loopback addresses unless\n" +
			"--insecure-listen is given.",
		ArgsUsage: "SRC...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "nbd", Required: true, Usage: "listen for NBD clients on `HOST:PORT` (loopback only, see --insecure-listen; port 0: any free port)"},
			&cli.BoolFlag{Name: "insecure-listen", Usage: "let plain NBD (no TLS, no authentication) listen on a non-loopback address"},
			&cli.IntFlag{Name: "max-connections", Value: 16, Usage: "clients served at once"},
			&cli.StringSliceFlag{Name: "allow-path", Usage: "let disk references reach files under DIR (repeatable)"},
			allowDeviceFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return usagef("serve: expects SRC... (got 0 arguments)")
			}
			for _, src := range c.Args().Slice() {
				if err := statSource(src); err != nil {
					return err
				}
			}
			addr := c.String("nbd")
			if err := checkListen(addr, c.Bool("insecure-listen")); err != nil {
				return err
			}
			if n := c.Int("max-connections"); n < 1 || n > 1024 {
				return usagef("--max-connections: %d is not from 1 to 1024", n)
			}
			devs, err := allowDevices(c)
			if err != nil {
				return err
			}
			env := &layouts.Env{AllowDevices: devs}
			for _, d := range c.StringSlice("allow-path") {
				abs, err := filepath.Abs(d)
				if err != nil {
					return fmt.Errorf("--allow-path %s: %w", d, err)
				}
				env.AllowDirs = append(env.AllowDirs, abs)
			}
			return runServe(c.Context, serveOptions{
				srcs: c.Args().Slice(), addr: addr, insecure: c.Bool("insecure-listen"),
				maxConns: c.Int("max-connections"), env: env, out: os.Stdout,
				log: newLogger(c.String("log-level")),
			})
		},
	}
}

// checkListen refuses a listen address beyond loopback for plain NBD,
// unless insecure: the protocol has no authentication and, without TLS,
// no encryption.
func checkListen(addr string, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--nbd %s: not HOST:PORT: %v", addr, err)
	}
	if insecure {
		return nil
	}
	refuse := usagef("--nbd %s: not a loopback address: plain NBD has no TLS (not supported yet) and no authentication; give --insecure-listen to serve other hosts anyway", addr)
	if host == "" {
		return refuse
	}
	ips := []string{host}
	if net.ParseIP(host) == nil {
		if ips, err = net.LookupHost(host); err != nil {
			return usagef("--nbd %s: %v", addr, err)
		}
	}
	for _, s := range ips {
		if ip := net.ParseIP(s); ip == nil || !ip.IsLoopback() {
			return refuse
		}
	}
	return nil
}

// runServe opens every source, then serves their disks until ctx is done
// or SIGINT/SIGTERM.
func runServe(ctx context.Context, o serveOptions) error {
	// From the start: a signal while the sources open stops the server
	// before it serves, cleanly.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := filepath.Abs(".")
	if err != nil {
		return err
	}
	var exps []nbd.Export
	from := map[string]string{}
	for _, src := range o.srcs {
		// The target only names the view; the exports are the source
		// disks as opened, not a target's images.
		s, err := session.Open(src, session.Options{
			To: "libvirt", Dir: dir, Env: o.env,
			Translate: translate.Options{Devices: translate.Preserve},
		})
		if err != nil {
			return err
		}
		defer s.Close()
		name := s.View.Name
		if prev, ok := from[name]; ok {
			return fmt.Errorf("%s: its VM is named %q, as %s's is: the exports' names would clash", src, name, prev)
		}
		from[name] = src
		for i, d := range s.View.Disks {
			exps = append(exps, nbd.DiskExport(fmt.Sprintf("%s/disk%d", name, i), d))
		}
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("--nbd %s: %w", o.addr, err)
	}
	for _, e := range exps {
		fmt.Fprintf(o.out, "nbd://%s/%s\n", ln.Addr(), strings.ReplaceAll(e.Name(), "/", "%2F"))
	}
	o.log.Info("serving", "addr", ln.Addr().String(), "exports", len(exps))
	return (&nbd.Server{Exports: exps, MaxConns: o.maxConns, Log: o.log}).Serve(ctx, ln)
}
