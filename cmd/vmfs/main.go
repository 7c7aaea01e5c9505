// Command vmfs shows a virtual machine made for one hypervisor as the same
// machine for another, without copying it first.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes: distinct failures, distinct codes.
const (
	exitError = 1 // the operation failed
	exitUsage = 2 // the command line was wrong
)

type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := &cli.App{
		Name:  "vmfs",
		Usage: "move virtual machines between hypervisors without copying first",
		Description: "vmfs mounts a VM (VMware .vmx, OVF/OVA, VirtualBox .vbox, libvirt XML or a bare\n" +
			"disk) as the same VM for another hypervisor: a generated descriptor plus disk\n" +
			"images computed on the fly from the source disks. The source is never written.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn or error"},
		},
		Commands: []*cli.Command{
			mountCommand(),
			unmountCommand(),
			inspectCommand(),
			statusCommand(),
			materializeCommand(),
		},
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		OnUsageError: func(c *cli.Context, err error, isSub bool) error {
			return usageError{err}
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(args)
	if err == nil {
		return 0
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(os.Stderr, "vmfs: %s\n", msg)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "flag provided but not defined") {
		return exitUsage
	}
	return exitError
}

func logger(c *cli.Context) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		lvl = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// needArgs checks the number of positional arguments.
func needArgs(c *cli.Context, n int, names string) error {
	if c.NArg() != n {
		return usagef("%s: expects %s (got %d argument(s))", c.Command.Name, names, c.NArg())
	}
	return nil
}
