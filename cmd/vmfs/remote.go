package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/mount"
	"github.com/vmfs/vmfs/internal/remote"
	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/internal/units"
)

// remoteFlags are the flags of a remote source (an https:// URL), taken
// by mount, materialize and inspect.
func remoteFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "thumbprint", Usage: "remote source: accept the server whose TLS certificate has this SHA-256 (hex, colons allowed) instead of checking it against the system's roots"},
		&cli.BoolFlag{Name: "insecure", Usage: "remote source: do not verify TLS at all, and allow plain http:// (a warning says so)"},
		&cli.StringFlag{Name: "cache-size", Usage: "remote source: block cache of each remote file, e.g. 256M", DefaultText: units.Bytes(remote.DefaultCacheSize)},
	}
}

// remoteOptions parses the remote flags; a wrong value is a usage error.
func remoteOptions(c *cli.Context) (remote.Options, error) {
	o := remote.Options{Thumbprint: c.String("thumbprint"), Insecure: c.Bool("insecure"), Logger: newLogger(c.String("log-level"))}
	if o.Thumbprint != "" {
		if _, err := remote.ParseThumbprint(o.Thumbprint); err != nil {
			return o, usagef("--thumbprint: %w", err)
		}
		if o.Insecure {
			return o, usagef("--thumbprint and --insecure exclude each other: a pinned server is verified")
		}
	}
	if s := c.String("cache-size"); s != "" {
		n, err := remote.ParseSize(s)
		if err != nil {
			return o, usagef("--cache-size: %w", err)
		}
		if n < remote.MinCacheSize {
			return o, usagef("--cache-size: %s is less than %s", s, units.Bytes(remote.MinCacheSize))
		}
		o.CacheSize = n
	}
	return o, nil
}

// sourceName is src as recorded and shown: a URL as given (it holds no
// password: those are refused), a local path made absolute.
func sourceName(src string) string {
	if session.IsRemote(src) {
		return src
	}
	return absOr(src)
}

// remoteStatsLine is one line of status for a remote source's counters.
func remoteStatsLine(s remote.StatsSnapshot) string {
	return fmt.Sprintf("fetched %s in %d requests, cache %d hits / %d misses, %d retries, %d errors",
		units.Bytes(s.BytesFetched), s.Requests, s.CacheHits, s.CacheMisses, s.Retries, s.Errors)
}

// remoteStatsEvery is how often a mount of a remote source rewrites its
// record with the counters status shows.
const remoteStatsEvery = 2 * time.Second

// recordRemoteStats keeps rec's remote counters current in the registry
// until the returned stop runs.
func recordRemoteStats(rec mount.Record, r session.Remote) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	write := func() {
		snap := r.Stats.Snapshot()
		rec.Remote = &snap
		mount.Remember(rec)
	}
	write()
	go func() {
		defer close(finished)
		t := time.NewTicker(remoteStatsEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				write()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}
