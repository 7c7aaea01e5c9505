package vmdk

import (
	"encoding/binary"
	"fmt"

	"github.com/vmfs/vmfs/layouts"
)

// seSparse extents (ESXi space-efficient sparse delta disks). A constant
// header of uint64 fields in sector 0, a volatile header in sector 1; a
// grain directory of 64-bit entries pointing at grain tables by index, and
// grain tables of 64-bit entries whose top nibble says what the grain is.
const (
	seSparseMagic    = 0x00000000cafebabe
	seSparseVolMagic = 0x00000000cafecafe
	seSparseVersion  = 0x0000000200000001
)

func openSESparse(f layouts.File, hdr []byte, id int32, c *caches) (*grainMap, error) {
	name := f.Name()
	le := binary.LittleEndian
	u := func(i int) uint64 { return le.Uint64(hdr[i*8:]) }
	version, capacity, grainSize, gtSize, flags := u(1), u(2), u(3), u(4), u(5)
	gdOff, gdSize := u(16), u(17)
	gtsOff := u(18)
	grainsOff := u(24)
	if version != seSparseVersion {
		return nil, errf(name, errUnsupported, "seSparse version %#x not supported", version)
	}
	if grainSize != 8 || gtSize != 64 || flags != 0 {
		return nil, errf(name, errUnsupported, "seSparse grain size %d, grain table size %d, flags %#x not supported", grainSize, gtSize, flags)
	}
	if capacity > maxSectors {
		return nil, errf(name, errFormat, "seSparse capacity of %d sectors overflows", capacity)
	}
	vol := make([]byte, sector)
	if err := readFull(f, vol, sector); err != nil {
		return nil, errf(name, errFormat, "reading seSparse volatile header: %v", err)
	}
	if le.Uint64(vol) != seSparseVolMagic {
		return nil, errf(name, errFormat, "seSparse volatile header has a bad magic")
	}
	if le.Uint64(vol[24:]) != 0 {
		return nil, errf(name, errUnsupported, "seSparse journal needs replaying: not supported")
	}
	fileSize := f.Size()
	if gtsOff > uint64(fileSize)/sector || grainsOff > uint64(fileSize)/sector || gdOff > uint64(fileSize)/sector {
		return nil, errf(name, errFormat, "seSparse tables lie past end of file")
	}
	m := &grainMap{
		f: f, name: name, id: id,
		size:     int64(capacity) * sector,
		grain:    int64(grainSize) * sector,
		perGT:    int64(gtSize) * sector / 8,
		entry:    8,
		fileSize: fileSize,
		gts:      c.gts,
		grains:   c.grains,
	}
	grains := int64(grainsOff)
	m.decode = func(v uint64) (int64, error) {
		switch v >> 60 {
		case 0:
			if v != 0 {
				return 0, fmt.Errorf("bad unallocated entry %#x", v)
			}
			return gteHole, nil
		case 1, 2: // unmapped, zero
			return gteZero, nil
		case 3:
			idx := int64((v&0x0fff000000000000)>>48 | (v&0x0000ffffffffffff)<<12)
			if idx > (maxSectors-grains)/8 {
				return 0, fmt.Errorf("grain index %d overflows", idx)
			}
			return (grains + idx*8) * sector, nil
		}
		return 0, fmt.Errorf("bad entry %#x", v)
	}
	numGD := (m.size + m.gtSpan() - 1) / m.gtSpan()
	if int64(gdSize)*sector/8 < numGD {
		return nil, errf(name, errFormat, "seSparse grain directory has %d entries, capacity needs %d", gdSize*sector/8, numGD)
	}
	if numGD == 0 {
		return m, nil
	}
	gtBytes := uint64(m.perGT * 8)
	if err := m.readGD(int64(gdOff)*sector, numGD, 8, func(v uint64) (int64, error) {
		if v>>32 != 0x10000000 {
			return 0, fmt.Errorf("bad grain directory entry %#x", v)
		}
		o := gtsOff*sector + (v&0xffffffff)*gtBytes
		if o > uint64(fileSize) {
			return 0, fmt.Errorf("points past end of file")
		}
		return int64(o), nil
	}); err != nil {
		return nil, err
	}
	return m, nil
}
