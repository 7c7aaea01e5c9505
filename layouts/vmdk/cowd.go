package vmdk

import (
	"encoding/binary"

	"github.com/vmfs/vmfs/layouts"
)

// vmfsSparse extents ("COWD"): ESXi delta disks and old hosted sparse
// disks. Header, little endian: magic, version, flags, numSectors,
// grainSize, gdOffset, numGDEntries, freeSector (all uint32). Grain tables
// hold 4096 entries of sector offsets.
const (
	cowdMagic = 0x44574f43 // "COWD"
	cowdPerGT = 4096
)

func openCOWD(f layouts.File, hdr []byte, id int32, c *caches) (*grainMap, error) {
	name := f.Name()
	le := binary.LittleEndian
	version := le.Uint32(hdr[4:])
	sectors := int64(le.Uint32(hdr[12:]))
	grain := int64(le.Uint32(hdr[16:]))
	gdOff := int64(le.Uint32(hdr[20:]))
	numGD := int64(le.Uint32(hdr[24:]))
	if version != 1 {
		return nil, errf(name, errUnsupported, "COWD header version %d not supported", version)
	}
	m := &grainMap{
		f: f, name: name, id: id,
		size:     sectors * sector,
		grain:    grain * sector,
		perGT:    cowdPerGT,
		entry:    4,
		fileSize: f.Size(),
		gts:      c.gts,
		grains:   c.grains,
		decode: func(v uint64) (int64, error) {
			if v == 0 {
				return gteHole, nil
			}
			return int64(v) * sector, nil
		},
	}
	if grain == 0 || grain > maxGrainSectors {
		return nil, errf(name, errFormat, "COWD grain size of %d sectors out of range", grain)
	}
	if err := m.checkGeometry("COWD header", numGD); err != nil {
		return nil, err
	}
	if sectors == 0 {
		return m, nil
	}
	if err := m.readGD(gdOff*sector, numGD, 4, func(v uint64) (int64, error) {
		return int64(v) * sector, nil
	}); err != nil {
		return nil, err
	}
	return m, nil
}
