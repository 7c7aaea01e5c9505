// Command vmfs shows a virtual machine made for one hypervisor as the same
// machine for another, without copying it first.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/session"
	"github.com/vmfs/vmfs/layouts"
)

// Exit codes: distinct failures, distinct codes.
const (
	exitError = 1 // the operation failed
	exitUsage = 2 // the command line was wrong
)

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := &cli.App{
		Name:    "vmfs",
		Version: readVersion().String(),
		Usage:   "move virtual machines between hypervisors without copying first",
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
			lsCommand(),
			materializeCommand(),
			convertCommand(),
			serveCommand(),
			versionCommand(),
			manCommand(),
			completionCommand(),
		},
		EnableBashCompletion: true,
		Before:               func(c *cli.Context) error { return in(c, checkGlobalFlags(c)) },
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return in(c, usagef("unknown command %q", c.Args().First()))
			}
			return cli.ShowAppHelp(c)
		},
		OnUsageError:   onUsageError,
		ExitErrHandler: func(*cli.Context, error) {},
	}
	for _, cmd := range app.Commands {
		// Every flag and argument is checked before any source is
		// opened, and a usage error is one line, not the help.
		cmd.OnUsageError = onUsageError
		cmd.Before = checkCommand
	}
	app.Setup()
	for i, cmd := range app.Commands {
		if cmd.Name == "help" {
			// A copy: the library's help command is shared.
			h := *cmd
			h.Before = checkHelpTopic
			app.Commands[i] = &h
		}
	}
	err := app.Run(args)
	if err == nil {
		return 0
	}
	e := jsonError{SchemaVersion: schemaVersion, Error: message(err), Code: exitError}
	var ue usageError
	if errors.As(err, &ue) {
		e.Code, e.Hint = exitUsage, hint(app, args, ue.command)
	}
	switch {
	case wantsJSON(args):
		// One object on one line, for a script to read.
		b, _ := json.Marshal(e)
		fmt.Fprintf(os.Stderr, "%s\n", b)
	case e.Hint != "":
		fmt.Fprintf(os.Stderr, "vmfs: %s; %s\n", e.Error, e.Hint)
	default:
		fmt.Fprintf(os.Stderr, "vmfs: %s\n", e.Error)
	}
	return e.Code
}

// message is the one line an error shows. The sentinels of layouts for
// corrupt images and unsupported features are categories for errors.Is;
// their text is not shown as it stands ("...: corrupt image"): a corrupt
// structure's message says what is wrong, and an unsupported feature is
// said "not supported" once, by the message or here. ErrRefused's
// "reference refused" is kept: it says what vmfs did. Line breaks become
// spaces.
func message(err error) string {
	msg := err.Error()
	if errors.Is(err, layouts.ErrFormat) {
		msg = strings.ReplaceAll(msg, ": "+layouts.ErrFormat.Error(), "")
	}
	if errors.Is(err, layouts.ErrUnsupported) {
		rest := strings.ReplaceAll(msg, ": "+layouts.ErrUnsupported.Error(), "")
		if l := strings.ToLower(rest); strings.Contains(l, "not supported") || strings.Contains(l, "unsupported") {
			msg = rest
		} else {
			msg = strings.ReplaceAll(msg, ": "+layouts.ErrUnsupported.Error(), ": not supported")
		}
	}
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(msg)
}

// hint is what a usage error adds: where the right usage is, for command
// ("vmfs" for the global flags, "" for the command args name).
func hint(app *cli.App, args []string, command string) string {
	if command == "" {
		for _, a := range args[min(len(args), 1):] {
			if cmd := app.Command(a); cmd != nil {
				command = cmd.Name
				break
			}
		}
	}
	if command == "" || command == app.Name {
		return "see 'vmfs --help'"
	}
	return fmt.Sprintf("see 'vmfs %s --help'", command)
}

// usageError is a command line the user must change, in command when
// known.
type usageError struct {
	error
	command string
}

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error {
	return usageError{error: fmt.Errorf(format, args...)}
}

// in says which command a usage error is about.
func in(c *cli.Context, err error) error {
	var ue usageError
	if errors.As(err, &ue) && ue.command == "" {
		ue.command = c.App.Name
		if c.Command != nil && c.Command.Name != "" {
			ue.command = c.Command.Name
		}
		return ue
	}
	return err
}

// Messages of the flag package, reworded for people.
var (
	undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	invalidValue  = regexp.MustCompile(`^invalid value "(.*)" for flag -+([^:]*): (.*)$`)
	needsArgument = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
)

// onUsageError rewords an error of flag parsing as one line naming the
// flag once.
func onUsageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if m := undefinedFlag.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("unknown flag --%s", m[1])
	} else if m := invalidValue.FindStringSubmatch(msg); m != nil {
		why := "not a valid value"
		if strings.Contains(m[3], "parse error") || strings.Contains(m[3], "invalid syntax") {
			why = "not a number"
		} else if strings.Contains(m[3], "out of range") {
			why = "out of range"
		}
		msg = fmt.Sprintf("--%s: %q is %s", m[2], m[1], why)
	} else if m := needsArgument.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("--%s needs a value", m[1])
	}
	return in(c, usageError{error: errors.New(msg)})
}

// checkCommand runs before a command's action: its flags, then the count
// of its arguments, then that SRC exists.
func checkCommand(c *cli.Context) error {
	if err := checkFlags(c); err != nil {
		return in(c, err)
	}
	want := strings.Fields(c.Command.ArgsUsage)
	optional := 0
	for _, w := range want {
		if strings.HasPrefix(w, "[") {
			optional++
		}
	}
	variadic := len(want) > 0 && strings.HasSuffix(want[len(want)-1], "...")
	if n := c.NArg(); n < len(want)-optional || (n > len(want) && !variadic) {
		names := strings.NewReplacer("[", "", "]", "").Replace(c.Command.ArgsUsage)
		if optional > 0 {
			names = "at most " + names
		}
		return in(c, usagef("%s: expects %s (got %d argument(s))", c.Command.Name, names, n))
	}
	if len(want) > 0 && want[0] == "SRC" {
		return statSource(c.Args().First())
	}
	return nil
}

// checkHelpTopic makes `vmfs help NOSUCH` a usage error, as an unknown
// command is.
func checkHelpTopic(c *cli.Context) error {
	if name := c.Args().First(); name != "" && c.App.Command(name) == nil {
		return usageError{error: fmt.Errorf("help: unknown command %q", name), command: c.App.Name}
	}
	return nil
}

// statSource checks that the source exists, with the wording every
// command uses: "nope.vmx: no such file or directory".
func statSource(path string) error {
	if session.IsRemote(path) {
		// A URL is looked at when the session opens it.
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return pathError(path, err)
	}
	return nil
}

// pathError says what went wrong with path, naming it once.
func pathError(path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", path, pe.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// newLogger logs to stderr from level (the --log-level flag) up.
func newLogger(level string) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
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
