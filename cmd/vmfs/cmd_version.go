package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// buildVersion and buildCommit are what the Makefile writes at link
// time: -ldflags "-X main.buildVersion=$(git describe --always --dirty)
// -X main.buildCommit=<full hash>[-modified]". They are vars only because
// -X can set nothing else; no code assigns them, so they are constants of
// the binary. Empty in a plain `go build`: the version and commit then
// come from the build info Go records (vcs.revision, vcs.modified).
var buildVersion, buildCommit string

// versionInfo is what `vmfs version` says.
type versionInfo struct {
	Version  string // buildVersion, else the module's version
	Commit   string // vcs.revision, "" when the build did not record it
	Modified bool   // vcs.modified: the tree had uncommitted changes
	Go       string
}

// readVersion reads the version from the link-time string and the build
// info Go embeds in every binary.
func readVersion() versionInfo {
	v := versionInfo{Version: buildVersion, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if c, ok := strings.CutSuffix(buildCommit, "-modified"); buildCommit != "" {
		v.Commit, v.Modified = c, ok
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	return v
}

// String is the one line of `vmfs --version` after "vmfs version ".
func (v versionInfo) String() string {
	commit := v.Commit
	if commit == "" {
		commit = "not recorded"
	} else if v.Modified {
		commit += ", modified"
	}
	return fmt.Sprintf("%s (commit %s, %s)", v.Version, commit, v.Go)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version and the commit vmfs was built from",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("version: takes no arguments (got %d)", c.NArg())
			}
			cli.ShowVersion(c)
			return nil
		},
	}
}
