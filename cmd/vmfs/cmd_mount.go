package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/fusefs"
	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/translate"
)

// mountOptions are the command line of mount, parsed.
type mountOptions struct {
	src, mountpoint string
	// session: the shared flags; its Dir is set to the mountpoint.
	session    session.Options
	daemon     bool
	readOnly   bool
	share      bool
	debug      bool
	overlay    string
	fresh      bool
	nonEmpty   bool
	noPass     bool
	cpuProfile string
	logLevel   string
}

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "show SRC as a target VM at MOUNTPOINT (foreground; Ctrl-C unmounts)",
		ArgsUsage: "SRC MOUNTPOINT",
		Flags: append(append(translateFlags(), overlayFlags()...),
			&cli.BoolFlag{Name: "fresh", Usage: "discard the overlay's earlier writes"},
			&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "run in the background; return once the mount serves"},
			&cli.BoolFlag{Name: "read-only", Usage: "refuse writes (EROFS)"},
			&cli.BoolFlag{Name: "share", Usage: "let every local user read the mount (default: only you and the hypervisor's user)"},
			&cli.BoolFlag{Name: "fuse-debug", Usage: "log every FUSE request"},
			&cli.BoolFlag{Name: "nonempty", Usage: "allow a MOUNTPOINT that holds files (the mount hides them)"},
			&cli.BoolFlag{Name: "no-passthrough", Usage: "serve every read and write through vmfs, none by FUSE passthrough"},
			&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "write a CPU profile (go tool pprof) to FILE until unmount"},
		),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 2, "SRC MOUNTPOINT"); err != nil {
				return err
			}
			so, err := sessionOptions(c)
			if err != nil {
				return err
			}
			return runMount(c.Context, mountOptions{
				src: c.Args().Get(0), mountpoint: c.Args().Get(1), session: so,
				daemon: c.Bool("daemon"), readOnly: c.Bool("read-only"),
				share: c.Bool("share"), debug: c.Bool("fuse-debug"),
				overlay: c.String("overlay"), fresh: c.Bool("fresh"),
				nonEmpty: c.Bool("nonempty"), noPass: c.Bool("no-passthrough"), cpuProfile: c.String("cpuprofile"),
				logLevel: c.String("log-level"),
			})
		},
	}
}

// runMount checks the mountpoint, then serves, or starts the daemon that
// does. The view is built where it is served: the checks that need it (no
// source file under the mountpoint, emptiness) run there, and a daemon's
// refusal reaches the user through its readiness pipe as the same one line.
func runMount(ctx context.Context, o mountOptions) error {
	mnt, err := filepath.Abs(o.mountpoint)
	if err != nil {
		return err
	}
	if err := statSource(o.src); err != nil {
		return err
	}
	// What needs no view first; the source and emptiness checks follow
	// once the view says which files it reads.
	if err := mount.CheckMountpoint(mnt, mount.MountpointOptions{NonEmpty: true}); err != nil {
		return err
	}
	if o.daemon && !mount.IsDaemonChild() {
		if err := os.MkdirAll(mount.RegistryDir(), 0o700); err != nil {
			return err
		}
		logPath := mount.LogPath(mnt)
		args, err := daemonArgs(os.Args[1:], o.session.Remote.Password)
		if err != nil {
			return err
		}
		if err := mount.Daemonize(args, logPath, 2*time.Minute); err != nil {
			return err
		}
		fmt.Printf("mounted %s at %s\n", o.src, mnt)
		return nil
	}
	o.session.Dir = mnt
	rep := mount.NewReporter(os.Stderr)
	err = serve(ctx, o, rep)
	rep.Ready(err) // no-op once readiness was reported
	rep.Exit(mount.LogPath(mnt), err)
	return err
}

func serve(ctx context.Context, o mountOptions, rep *mount.Reporter) error {
	log := newLogger(o.logLevel)
	mnt := o.session.Dir
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	o.session.Translate.Host = hostFacts(ctx, o.session, true)
	s, err := session.Open(o.src, o.session)
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Close(); err != nil {
			log.Error("closing the session", "err", err)
		}
	}()
	v := s.View
	if err := mount.CheckMountpoint(mnt, mount.MountpointOptions{Sources: v.Sources.Paths(), NonEmpty: o.nonEmpty}); err != nil {
		return err
	}
	for _, w := range v.Warnings {
		rep.Warn(w.String())
	}
	if !o.readOnly {
		ov, err := s.UseOverlay(session.OverlayOptions{Dir: o.overlay, Fresh: o.fresh, Logger: log})
		if err != nil {
			return err
		}
		if ov.Unclean {
			rep.Warn(fmt.Sprintf("overlay %s was not closed cleanly; its map was checked and is consistent", ov.Dir))
		}
		rep.Info(fmt.Sprintf("writes go to the overlay %s", ov.Dir))
	}
	entries := s.Files()
	fo := fusefs.Options{
		ReadOnly: o.readOnly,
		UID:      uint32(os.Getuid()),
		GID:      uint32(os.Getgid()),
		DirMode:  0o700,
		FsName:   "vmfs:" + sourceName(o.src),
		Logger:   log,
		Debug:    o.debug,
		// A disk that is one whole source file is read by the kernel
		// from the source (read-only) or from the overlay's clone of
		// it (writable, where the file system shares blocks).
		Passthrough: !o.noPass,
		Notice:      rep.Info,
		Opens:       new(atomic.Int64),
	}
	var passing []string
	fo.OnPassthrough = func(names []string) { passing = names }
	if gid, ok := hypervisorGroup(v.Target); ok {
		fo.GID, fo.DirMode = gid, 0o710
		if o.readOnly {
			// A ro mount refuses the chown by which libvirt hands
			// the disks to QEMU: the group reads them instead.
			for i := range entries {
				entries[i].Mode |= 0o040
			}
		}
	}
	if o.share {
		fo.DirMode = 0o755
		for i := range entries {
			entries[i].Mode |= 0o044
		}
	}
	srv, err := fusefs.Mount(mnt, entries, fo)
	if err != nil {
		return err
	}
	conn, err := mount.ConnOf(mnt)
	if err != nil {
		srv.Unmount()
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	source := sourceName(o.src)
	if r, ok := s.Remote(); ok {
		// The remote source as its store names it: a vsphere:// VM
		// says which snapshot vmfs took, should vmfs be killed.
		source = r.Name
	}
	rec := mount.Record{
		Mountpoint: mnt, Source: source, Target: o.session.To, Format: v.Format,
		ReadOnly: o.readOnly, Overlay: s.OverlayDir(), PID: os.Getpid(), Started: time.Now(),
		Passthrough: passing,
	}
	mount.Remember(rec)
	defer mount.Forget(mnt)
	if r, ok := s.Remote(); ok {
		defer recordRemoteStats(rec, r)()
	}
	rep.Ready(nil)
	if !rep.Daemon() {
		// The one line a foreground mount prints: it serves now.
		fmt.Printf("serving %s at %s (Ctrl-C or vmfs unmount %s ends it)\n", o.src, mnt, mnt)
	}
	for {
		select {
		case <-done:
			return nil
		case s := <-sigs:
			log.Info("unmounting", "signal", s.String())
			if err := mount.Release(srv, mnt, conn, fo.Opens.Load, log); err != nil {
				mount.Refused(mnt, err)
				log.Warn("unmount failed; still serving", "err", err)
				continue
			}
			<-done
			return nil
		}
	}
}

// startCPUProfile writes a CPU profile to path (resolved against the
// directory vmfs was started in) until the returned stop runs.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// hypervisorGroup is the group the target's hypervisor runs as (QEMU
// under libvirt: libvirt-qemu), which must traverse the mount to open the
// disks, when the target names one and this host has it.
func hypervisorGroup(t translate.Target) (uint32, bool) {
	if t.Group() == "" {
		return 0, false
	}
	g, err := user.LookupGroup(t.Group())
	if err != nil {
		return 0, false
	}
	id, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, false
	}
	return uint32(id), true
}

func absOr(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
