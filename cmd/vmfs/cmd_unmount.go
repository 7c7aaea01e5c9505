package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vmfs/vmfs/internal/mount"
)

func unmountCommand() *cli.Command {
	return &cli.Command{
		Name:      "unmount",
		Aliases:   []string{"umount"},
		Usage:     "unmount a vmfs mount (also one whose process died)",
		ArgsUsage: "MOUNTPOINT",
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "MOUNTPOINT"); err != nil {
				return err
			}
			return runUnmount(c.Args().Get(0))
		},
	}
}

// runUnmount stops the mount at mountpoint, waiting for it to flush.
func runUnmount(mountpoint string) error { return mount.Stop(mountpoint, 30*time.Second) }
