package vhdx

import (
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/internal/readtest"
)

var corpus = readtest.Corpus

// --- helpers ---------------------------------------------------------------

var (
	needQemu      = readtest.NeedQemu
	qemuImg       = readtest.QemuImg
	content       = readtest.Content
	writeRaw      = readtest.WriteRaw
	dump          = readtest.Dump
	checkMap      = readtest.CheckMap
	checkExtents  = readtest.CheckExtents
	virtualSizeOf = readtest.VirtualSizeOf
	gunzip        = readtest.Gunzip
	testReader    = readtest.TestReader
)

func openPath(path string, env *layouts.Env) (layouts.Disk, error) {
	f, err := layouts.OpenFile(path)
	if err != nil {
		return nil, err
	}
	d, err := Open(f, env)
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

func testEnv() *layouts.Env { return &layouts.Env{OpenDisk: openPath} }
