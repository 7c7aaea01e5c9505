package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/httpexport"
	"github.com/vmfs/vmfs/internal/nbd"
	"github.com/vmfs/vmfs/internal/servestat"
	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/translate"
)

// serveOptions are the command line of serve, parsed.
type serveOptions struct {
	// srcs are the sources, folders expanded into the descriptors in
	// them.
	srcs []string
	// nbdAddr and httpsAddr are the listen addresses, host:port ("": not
	// served).
	nbdAddr, httpsAddr string
	// tls, when not nil, is required on both listeners.
	tls *tls.Config
	// token, when not "", is required by the HTTPS export.
	token string
	// writable: NBD writes go to each VM's overlay (overlay: its
	// directory, with one VM only).
	writable bool
	overlay  string
	// session shapes the views the HTTPS export serves (target, format);
	// its Dir is the directory the descriptors name their disks in.
	session  session.Options
	maxConns int
	// out receives one URI per NBD export and HTTPS file once served.
	out io.Writer
	log *slog.Logger
	// statusEvery is how often the status file is rewritten (0: 1s).
	statusEvery time.Duration
}

func serveCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "nbd", Usage: "serve every disk over NBD on `HOST:PORT` (without TLS: loopback only, see --insecure-listen; port 0: any free port)"},
		&cli.StringFlag{Name: "https", Usage: "serve the view's files (descriptors and images of --to) over HTTPS on `HOST:PORT`, under /VM/FILE"},
		&cli.StringFlag{Name: "tls-cert", Usage: "TLS certificate `FILE` (PEM, chain first) for NBD and HTTPS; NBD then requires STARTTLS"},
		&cli.StringFlag{Name: "tls-key", Usage: "TLS private key `FILE` (PEM) of --tls-cert"},
		&cli.StringFlag{Name: "tls-ca", Usage: "require client certificates signed by the CA certificates in `FILE` (PEM)"},
		&cli.StringFlag{Name: "token-file", Usage: "HTTPS clients must send the token in `FILE` (Authorization: Bearer, or as a basic-auth password)"},
		&cli.BoolFlag{Name: "insecure-http", Usage: "serve --https as plain HTTP, without TLS (loopback only unless --insecure-listen)"},
		&cli.BoolFlag{Name: "insecure-listen", Usage: "let plain NBD, plain HTTP or an HTTPS export without token or client certificates listen on a non-loopback address"},
		&cli.BoolFlag{Name: "writable", Usage: "NBD clients may write: writes go to each VM's copy-on-write overlay (that of vmfs mount --format raw), never to the source"},
		&cli.StringFlag{Name: "overlay", Usage: "with --writable and one VM: `DIR` of its overlay (default: derived from SRC and the target options, under the user's cache directory)"},
		&cli.StringFlag{Name: "files-dir", Usage: "the served descriptors name their disk files in `DIR` (default: the current directory)"},
		&cli.IntFlag{Name: "max-connections", Value: 16, Usage: "serve at most `N` connections at once on each listener (more are closed as accepted)"},
	}
	flags = append(flags, translateFlags()...)
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the VMs of SRC... to other hosts: their disks over NBD, their files over HTTPS (foreground; Ctrl-C stops)",
		Description: "SRC is a VM (a .vmx, .ovf, .ova, .vbox, domain XML or disk) or a folder: every\n" +
			"descriptor in it and in its subfolders is served. Each VM is served under its\n" +
			"name (two VMs of one name are refused).\n" +
			"NBD: one export per disk, VM/diskN (N from 0 in the VM's disk order), the source\n" +
			"disk's virtual bytes with its allocation, read-only unless --writable.\n" +
			"HTTPS: the files of the view of --to (descriptors and disk images, as a mount shows\n" +
			"them) at https://HOST:PORT/VM/FILE, with ranges and HEAD; / and /VM/ list.\n" +
			"With --tls-cert/--tls-key both listeners require TLS; without them NBD listens only on\n" +
			"loopback addresses and HTTPS needs --insecure-http. `vmfs status` shows the server.",
		ArgsUsage: "SRC...",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			o, err := parseServe(c)
			if err != nil {
				return err
			}
			return runServe(c.Context, o)
		},
	}
}

// parseServe checks serve's flags and arguments into its options.
func parseServe(c *cli.Context) (serveOptions, error) {
	var o serveOptions
	if c.NArg() < 1 {
		return o, usagef("serve: expects SRC... (got 0 arguments)")
	}
	o.nbdAddr, o.httpsAddr = c.String("nbd"), c.String("https")
	if o.nbdAddr == "" && o.httpsAddr == "" {
		return o, usagef("serve: give --nbd HOST:PORT, --https HOST:PORT or both")
	}
	cert, key, ca := c.String("tls-cert"), c.String("tls-key"), c.String("tls-ca")
	switch {
	case (cert == "") != (key == ""):
		return o, usagef("--tls-cert and --tls-key go together")
	case ca != "" && cert == "":
		return o, usagef("--tls-ca needs --tls-cert and --tls-key")
	case c.Bool("insecure-http") && cert != "":
		return o, usagef("--insecure-http serves without TLS: drop it, or --tls-cert and --tls-key")
	case c.Bool("insecure-http") && o.httpsAddr == "":
		return o, usagef("--insecure-http applies to --https")
	case o.httpsAddr != "" && cert == "" && !c.Bool("insecure-http"):
		return o, usagef("--https %s: needs --tls-cert and --tls-key (or --insecure-http for plain HTTP)", o.httpsAddr)
	case c.IsSet("token-file") && o.httpsAddr == "":
		return o, usagef("--token-file applies to --https")
	case c.Bool("writable") && o.nbdAddr == "":
		return o, usagef("--writable applies to --nbd")
	case c.IsSet("overlay") && !c.Bool("writable"):
		return o, usagef("--overlay applies to --writable")
	}
	if n := c.Int("max-connections"); n < 1 || n > 1024 {
		return o, usagef("--max-connections: %d is not from 1 to 1024", n)
	}
	if cert != "" {
		cfg, err := serverTLS(cert, key, ca)
		if err != nil {
			return o, err
		}
		o.tls = cfg
	}
	if p := c.String("token-file"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return o, fmt.Errorf("--token-file %w", pathError(p, err))
		}
		if o.token = strings.TrimSpace(string(b)); o.token == "" || strings.ContainsAny(o.token, "\r\n") {
			return o, usagef("--token-file %s: holds no token (one line, not empty)", p)
		}
	}
	insecure := c.Bool("insecure-listen")
	if o.nbdAddr != "" {
		if err := checkListen("--nbd", o.nbdAddr, insecure || o.tls != nil,
			"plain NBD has no encryption and no authentication; give --tls-cert/--tls-key, or --insecure-listen to serve other hosts anyway"); err != nil {
			return o, err
		}
	}
	if o.httpsAddr != "" {
		why := ""
		switch {
		case o.tls == nil:
			why = "plain HTTP has no encryption; give --tls-cert/--tls-key, or --insecure-listen to serve other hosts anyway"
		case o.token == "" && ca == "":
			why = "the export asks no credentials; give --token-file or --tls-ca, or --insecure-listen to serve other hosts anyway"
		}
		if err := checkListen("--https", o.httpsAddr, insecure || why == "", why); err != nil {
			return o, err
		}
	}
	var err error
	if o.session, err = sessionOptions(c); err != nil {
		return o, err
	}
	dir := c.String("files-dir")
	if dir == "" {
		dir = "."
	}
	if o.session.Dir, err = filepath.Abs(dir); err != nil {
		return o, fmt.Errorf("--files-dir %s: %w", dir, err)
	}
	for _, src := range c.Args().Slice() {
		found, err := serveSources(src)
		if err != nil {
			return o, err
		}
		o.srcs = append(o.srcs, found...)
	}
	o.writable, o.overlay = c.Bool("writable"), c.String("overlay")
	if o.overlay != "" && len(o.srcs) > 1 {
		return o, usagef("--overlay: %d VMs to serve, and one overlay is one VM's: leave it out (each VM has its own default)", len(o.srcs))
	}
	o.maxConns, o.out, o.log = c.Int("max-connections"), os.Stdout, newLogger(c.String("log-level"))
	return o, nil
}

// serverTLS loads the server's key pair and, when ca is not "", the
// authority whose client certificates are required.
func serverTLS(cert, key, ca string) (*tls.Config, error) {
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, usagef("--tls-cert %s, --tls-key %s: %v", cert, key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca %w", pathError(ca, err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, usagef("--tls-ca %s: no PEM certificate in it", ca)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// descriptorExts are the file names serveSources takes from a folder.
var descriptorExts = []string{".vmx", ".ovf", ".ova", ".vbox", ".xml"}

// serveSources is src, or for a folder the VM descriptors in it and in
// its subfolders (one level down), in name order.
func serveSources(src string) ([]string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, pathError(src, err)
	}
	if !st.IsDir() {
		return []string{src}, nil
	}
	var out []string
	root := filepath.Clean(src)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && filepath.Dir(p) != root {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && slices.Contains(descriptorExts, strings.ToLower(filepath.Ext(p))) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: a folder with no VM descriptor (%s) in it or in its subfolders", src, strings.Join(descriptorExts, ", "))
	}
	return out, nil
}

// checkListen refuses a listen address beyond loopback unless ok; why
// says what is missing.
func checkListen(flag, addr string, ok bool, why string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("%s %s: not HOST:PORT: %v", flag, addr, err)
	}
	if ok {
		return nil
	}
	refuse := usagef("%s %s: not a loopback address: %s", flag, addr, why)
	if host == "" {
		return refuse
	}
	ips := []string{host}
	if net.ParseIP(host) == nil {
		if ips, err = net.LookupHost(host); err != nil {
			return usagef("%s %s: %v", flag, addr, err)
		}
	}
	for _, s := range ips {
		if ip := net.ParseIP(s); ip == nil || !ip.IsLoopback() {
			return refuse
		}
	}
	return nil
}

// servedVM is one source, opened.
type servedVM struct {
	src  string
	name string
	// view serves the HTTPS export and, read-only, the NBD exports (its
	// source disks).
	view *session.Session
	// raw, with --writable, is the raw view in its overlay whose disk
	// files the NBD exports write.
	raw *session.Session
}

// openServed opens one source for what o serves.
func openServed(src string, o serveOptions) (*servedVM, error) {
	so := o.session
	if o.httpsAddr == "" {
		// Only the source disks are served: the target only names the VM.
		so.Format, so.Subformat = "", ""
		so.Translate.Devices = translate.Preserve
	}
	v, err := session.Open(src, so)
	if err != nil {
		return nil, err
	}
	vm := &servedVM{src: src, name: v.View.Name, view: v}
	if !o.writable {
		return vm, nil
	}
	ro := o.session
	ro.Format, ro.Subformat = "raw", ""
	if vm.raw, err = session.Open(src, ro); err != nil {
		v.Close()
		return nil, err
	}
	info, err := vm.raw.UseOverlay(session.OverlayOptions{Dir: o.overlay, Logger: o.log})
	if err != nil {
		vm.close(o.log)
		return nil, err
	}
	if info.Unclean {
		o.log.Warn("overlay was not closed cleanly; its map was checked and is consistent", "overlay", info.Dir)
	}
	o.log.Info("NBD writes go to the overlay", "vm", vm.name, "overlay", info.Dir)
	return vm, nil
}

func (vm *servedVM) close(log *slog.Logger) {
	for _, s := range []*session.Session{vm.raw, vm.view} {
		if s != nil {
			if err := s.Close(); err != nil {
				log.Error("closing the session", "src", vm.src, "err", err)
			}
		}
	}
}

// exports are vm's NBD exports, VM/diskN.
func (vm *servedVM) exports() ([]nbd.Export, error) {
	var out []nbd.Export
	if vm.raw == nil {
		for i, d := range vm.view.View.Disks {
			out = append(out, nbd.DiskExport(fmt.Sprintf("%s/disk%d", vm.name, i), d))
		}
		return out, nil
	}
	for _, f := range vm.raw.Files() {
		if !f.Disk {
			continue
		}
		w, ok := f.Content.(nbd.WritableDisk)
		if !ok {
			return nil, fmt.Errorf("%s: %s: the overlay's file takes no writes", vm.src, f.Name)
		}
		out = append(out, nbd.WritableExport(fmt.Sprintf("%s/disk%d", vm.name, len(out)), w))
	}
	if len(out) != len(vm.view.View.Disks) {
		return nil, fmt.Errorf("%s: the raw view has %d disk files for %d disks", vm.src, len(out), len(vm.view.View.Disks))
	}
	return out, nil
}

// runServe opens every source, then serves them until ctx is done or
// SIGINT/SIGTERM.
func runServe(ctx context.Context, o serveOptions) error {
	// From the start: a signal while the sources open stops the server
	// before it serves, cleanly.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var (
		vms  []*servedVM
		exps []nbd.Export
		hvms []httpexport.VM
	)
	defer func() {
		for _, vm := range vms {
			vm.close(o.log)
		}
	}()
	from := map[string]string{}
	for _, src := range o.srcs {
		if ctx.Err() != nil {
			return nil
		}
		vm, err := openServed(src, o)
		if err != nil {
			return err
		}
		vms = append(vms, vm)
		if prev, ok := from[vm.name]; ok {
			return fmt.Errorf("%s: its VM is named %q, as %s's is: the VMs' paths would clash (serve them from two servers)", src, vm.name, prev)
		}
		from[vm.name] = src
		for _, w := range vm.view.View.Warnings {
			o.log.Warn(w.String(), "vm", vm.name)
		}
		e, err := vm.exports()
		if err != nil {
			return err
		}
		exps = append(exps, e...)
		hvms = append(hvms, httpexport.VM{Name: vm.name, Files: vm.view.Files()})
	}

	rec := servestat.Record{PID: os.Getpid(), Started: time.Now(), Writable: o.writable}
	for _, vm := range vms {
		rec.Sources = append(rec.Sources, absOr(vm.src))
		rec.VMs = append(rec.VMs, vm.name)
	}
	type listener struct {
		proto string
		ln    net.Listener
		stats *servestat.Counters
		serve func(context.Context, net.Listener, *servestat.Counters) error
	}
	var lns []listener
	defer func() {
		for _, l := range lns {
			l.ln.Close()
		}
	}()
	if o.nbdAddr != "" {
		ln, err := net.Listen("tcp", o.nbdAddr)
		if err != nil {
			return fmt.Errorf("--nbd %s: %w", o.nbdAddr, err)
		}
		proto := "nbd"
		if o.tls != nil {
			proto = "nbds"
		}
		lns = append(lns, listener{proto, ln, &servestat.Counters{}, func(ctx context.Context, ln net.Listener, st *servestat.Counters) error {
			return (&nbd.Server{Exports: exps, MaxConns: o.maxConns, Log: o.log, TLS: o.tls, Stats: st}).Serve(ctx, ln)
		}})
		for _, e := range exps {
			fmt.Fprintf(o.out, "%s://%s/%s\n", proto, ln.Addr(), strings.ReplaceAll(e.Name(), "/", "%2F"))
		}
		if o.tls != nil && o.tls.ClientCAs == nil && !isLoopback(ln.Addr()) {
			o.log.Warn("NBD with TLS but no --tls-ca: every client that reaches the port reads the disks", "addr", ln.Addr().String())
		}
	}
	if o.httpsAddr != "" {
		ln, err := net.Listen("tcp", o.httpsAddr)
		if err != nil {
			return fmt.Errorf("--https %s: %w", o.httpsAddr, err)
		}
		st := &servestat.Counters{}
		h, err := httpexport.New(hvms, httpexport.Options{Token: o.token, Stats: st, Log: o.log, Modified: rec.Started})
		if err != nil {
			return err
		}
		proto := "https"
		if o.tls == nil {
			proto = "http"
		}
		lns = append(lns, listener{proto, ln, st, func(ctx context.Context, ln net.Listener, st *servestat.Counters) error {
			return httpexport.Serve(ctx, ln, h, httpexport.ServeOptions{TLS: o.tls, MaxConns: o.maxConns, Stats: st, Log: o.log})
		}})
		for _, vm := range hvms {
			for _, f := range vm.Files {
				fmt.Fprintf(o.out, "%s://%s/%s/%s\n", proto, ln.Addr(), url.PathEscape(vm.Name), url.PathEscape(f.Name))
			}
		}
	}

	status := func() {
		rec.Updated = time.Now()
		rec.Serving = rec.Serving[:0]
		for _, l := range lns {
			rec.Serving = append(rec.Serving, servestat.Listener{Protocol: l.proto, Addr: l.ln.Addr().String(), Figures: l.stats.Snapshot()})
		}
		if err := servestat.Write(rec); err != nil {
			o.log.Warn("writing the status file", "err", err)
		}
	}
	status()
	defer servestat.Remove(rec.PID)
	o.log.Info("serving", "vms", len(vms), "nbd exports", len(exps))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for _, l := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.serve(ctx, l.ln, l.stats); err != nil {
				errMu.Lock()
				if first == nil {
					first = err
				}
				errMu.Unlock()
				cancel()
			}
		}()
	}
	every := o.statusEvery
	if every <= 0 {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			status()
		}
	}
	wg.Wait()
	return first
}

// isLoopback says whether a listener's address is a loopback one.
func isLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}
