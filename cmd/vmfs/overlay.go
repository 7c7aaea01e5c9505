package main

import "github.com/urfave/cli/v2"

func overlayFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "overlay", Usage: "directory of the copy-on-write overlay (default: derived from SRC and the target options, under the user's cache directory)"},
	}
}
